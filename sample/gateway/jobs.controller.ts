import { BadRequestException, Body, Controller, HttpCode, HttpStatus, Post } from '@nestjs/common';
import { type ClientGearman, GearmanRecordBuilder, InjectGearmanClient } from 'nestjs-gearman';
import { lastValueFrom, type Observable, toArray } from 'rxjs';
import { toHttpException } from './rpc-errors.js';

/** What the worker's `report.generate` emits (see sample/worker/reports.controller.ts). */
export interface ReportRow {
  report: string;
  row: number;
  value: number;
}

export interface ReportResult {
  handle: string | undefined;
  server: string | undefined;
  values: ReportRow[];
  progress: Array<{ numerator: number; denominator: number }>;
}

/** REST in front of the Gearman functions the sample worker serves. */
@Controller()
export class JobsController {
  constructor(@InjectGearmanClient() private readonly gearman: ClientGearman) {}

  /** Request/response: `{ "numbers": [1, 2, 3] }` → `{ "sum": 6 }`. */
  @Post('math/sum')
  @HttpCode(HttpStatus.OK)
  async sum(@Body() body: { numbers?: unknown }): Promise<{ sum: number }> {
    if (!Array.isArray(body?.numbers)) throw new BadRequestException('send { "numbers": [1, 2, 3] }');
    const sum = await this.call(this.gearman.send<number>('math.sum', body.numbers), 'math.sum');
    return { sum };
  }

  /**
   * Streaming with progress: `job()` emits the job's created/status/data/complete events; the
   * values are every WORK_DATA plus the final WORK_COMPLETE, the progress every WORK_STATUS.
   */
  @Post('reports')
  @HttpCode(HttpStatus.OK)
  async report(@Body() body: { name?: string; rows?: number }): Promise<ReportResult> {
    const events = await this.call(
      this.gearman.job<ReportRow>('report.generate', { name: body?.name, rows: body?.rows }).pipe(toArray()),
      'report.generate',
    );
    const result: ReportResult = { handle: undefined, server: undefined, values: [], progress: [] };
    for (const event of events) {
      if (event.type === 'created') {
        result.handle = event.handle;
        result.server = event.server;
      } else if (event.type === 'status')
        result.progress.push({ numerator: event.numerator, denominator: event.denominator });
      else if (event.type === 'data') result.values.push(event.data);
      else if (event.type === 'complete' && event.data !== undefined) result.values.push(event.data);
    }
    return result;
  }

  /** Background job: answers 202 with the job handle as soon as gearmand has queued it. */
  @Post('emails')
  @HttpCode(HttpStatus.ACCEPTED)
  async email(
    @Body() body: { to?: unknown; subject?: unknown; body?: unknown },
  ): Promise<{ queued: true; handle: string }> {
    if (typeof body?.to !== 'string' || typeof body.subject !== 'string') {
      throw new BadRequestException('send { "to": "someone@example.com", "subject": "..." }');
    }
    const email = { to: body.to, subject: body.subject, body: typeof body.body === 'string' ? body.body : undefined };
    const handle = await this.call(this.gearman.emit<string>('email.send', email), 'email.send');
    return { queued: true, handle };
  }

  /** A worker-side RpcException({ code: 'INVALID', message }) comes back as a 422 with that body. */
  @Post('orders/validate')
  @HttpCode(HttpStatus.OK)
  validate(@Body() order: unknown): Promise<unknown> {
    return this.call(this.gearman.send('orders.validate', order), 'orders.validate');
  }

  /** The plain-text function: sent and read with the `text` codec, no JSON on the wire. */
  @Post('text/upper')
  @HttpCode(HttpStatus.OK)
  async upper(@Body() body: { text?: unknown }): Promise<{ text: string }> {
    if (typeof body?.text !== 'string') throw new BadRequestException('send { "text": "hello" }');
    const record = new GearmanRecordBuilder(body.text).setCodec('text').build();
    const text = await this.call(this.gearman.send<string>('text.upper', record), 'text.upper');
    return { text };
  }

  private async call<T>(result: Observable<T>, fn: string): Promise<T> {
    try {
      return await lastValueFrom(result);
    } catch (err) {
      throw toHttpException(err, fn);
    }
  }
}
