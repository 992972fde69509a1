import { Controller } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';

/** Request/response: `math.sum` takes a JSON array of numbers and answers their sum. */
@Controller()
export class MathController {
  @MessagePattern('math.sum')
  sum(@Payload() numbers: unknown): number {
    if (!Array.isArray(numbers) || !numbers.every((n) => typeof n === 'number' && Number.isFinite(n))) {
      throw new RpcException({
        code: 'BAD_REQUEST',
        message: 'math.sum takes a JSON array of numbers, e.g. [1, 2, 3]',
      });
    }
    return (numbers as number[]).reduce((a, b) => a + b, 0);
  }
}
