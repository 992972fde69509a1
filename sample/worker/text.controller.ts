import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import type { GearmanPatternExtras } from 'nestjs-gearman';

const plainText: GearmanPatternExtras = { codec: 'text', errorMode: 'fail' };

/**
 * For callers that are not Nest: the `text` codec reads and writes plain UTF-8 (no JSON), and
 * `errorMode: 'fail'` reports errors as a plain WORK_FAIL that every Gearman client understands.
 * Try it with the Gearman CLI: `gearman -h 127.0.0.1 -p PORT -f text.upper 'hello'`.
 */
@Controller()
export class TextController {
  @MessagePattern('text.upper', plainText)
  upper(@Payload() text: string | undefined): string {
    if (text === undefined || text.trim() === '') throw new Error('text.upper needs some text');
    return text.toUpperCase();
  }
}
