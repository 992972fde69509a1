/**
 * ServerGearman against a real gearmand: how handlers' values, streams, errors and events reach
 * callers (ClientGearman, and the raw engine client that sees the Gearman packets themselves),
 * Nest's enhancers (guards, pipes, interceptors, exception filters), @Ctx() GearmanContext and
 * progress, per-pattern codecs and error modes, odd payloads, and metadata.
 * (Lifecycle, hybrid apps, CAN_DO_TIMEOUT: lifecycle.spec.ts; client features: client.spec.ts;
 * the gearman CLI: interop.spec.ts.)
 */
import 'reflect-metadata';
import {
  type ArgumentsHost,
  type CallHandler,
  type CanActivate,
  Catch,
  Controller,
  Inject,
  type ExecutionContext,
  type NestInterceptor,
  type PipeTransform,
  type RpcExceptionFilter,
  Scope,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import {
  CONTEXT,
  Ctx,
  EventPattern,
  MessagePattern,
  Payload,
  type RequestContext,
  RpcException,
} from '@nestjs/microservices';
import { EmptyError, lastValueFrom, map, Observable, of, ReplaySubject, throwError, toArray } from 'rxjs';
import { GearmanJobError } from '../../lib/engine/index.js';
import { GearmanContext, GearmanRecordBuilder } from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { deferred, waitForEvent, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** What handlers report to the test that is running. */
let probe = newProbe();
function newProbe() {
  return {
    event: deferred<{ data: unknown; handle: string; metadata: unknown }>(),
    pipeInput: [] as unknown[],
    second: deferred<unknown>(),
    streamContext: deferred<GearmanContext>(),
    values: new ReplaySubject<number>(),
  };
}

// ---------------------------------------------------------------- enhancers

class KeyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToRpc().getData<{ key?: string }>()?.key === 'secret';
  }
}

/** A ValidationPipe-like pipe: checks and converts `{ n: '5' }` into `{ n: 5 }`. */
class PositiveIntPipe implements PipeTransform {
  transform(value: unknown): { n: number } {
    probe.pipeInput.push(value);
    const n = Number((value as { n?: unknown } | undefined)?.n);
    if (!Number.isInteger(n) || n <= 0) {
      throw new RpcException({ code: 'VALIDATION', message: 'n must be a positive integer' });
    }
    return { n };
  }
}

class WrapInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const fn = context.switchToRpc().getContext<GearmanContext>().getFunction();
    return next.handle().pipe(map((value) => ({ fn, wrapped: value })));
  }
}

@Catch(RpcException)
class ShapeFilter implements RpcExceptionFilter<RpcException> {
  catch(exception: RpcException, host: ArgumentsHost): Observable<never> {
    const fn = host.switchToRpc().getContext<GearmanContext>().getFunction();
    return throwError(() => ({ shaped: true, fn, error: exception.getError() }));
  }
}

// ---------------------------------------------------------------- controllers

@Controller()
class RpcController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('user')
  async user(@Payload() data: { id: number }): Promise<{ id: number; name: string; tags: string[] }> {
    return { id: data.id, name: 'Ada', tags: ['x', 'y'] };
  }

  @MessagePattern('stream')
  stream(): Observable<number> {
    return of(1, 2, 3);
  }

  /** The test drives this stream (probe.values) and sends progress through the context it gets. */
  @MessagePattern('stream.status')
  withStatus(@Ctx() ctx: GearmanContext): Observable<number> {
    probe.streamContext.resolve(ctx);
    return probe.values;
  }

  /** Values spread over time, completion coming after the last value. */
  @MessagePattern('stream.late')
  late(): Observable<string> {
    return new Observable<string>((o) => {
      o.next('a');
      const t1 = setTimeout(() => o.next('b'), 10);
      const t2 = setTimeout(() => o.complete(), 30);
      return () => {
        clearTimeout(t1);
        clearTimeout(t2);
      };
    });
  }

  @MessagePattern('stream.error')
  streamError(): Observable<number> {
    return new Observable<number>((o) => {
      o.next(1);
      o.error(new RpcException({ code: 'MID_STREAM', message: 'broke after one' }));
    });
  }

  @MessagePattern('void')
  nothing(): void {
    return undefined;
  }

  @MessagePattern('null')
  nothingFound(): null {
    return null;
  }

  @MessagePattern('unserialisable')
  unserialisable(): unknown {
    return { big: 10n };
  }

  @MessagePattern('rpc.object')
  rpcObject(): never {
    throw new RpcException({ code: 'E_NOPE', message: 'nope' });
  }

  @MessagePattern('rpc.string')
  async rpcString(): Promise<never> {
    throw new RpcException('text');
  }

  @MessagePattern('plain.error')
  plainError(): never {
    throw new Error('secret internal detail');
  }

  @MessagePattern('observable.error')
  observableError(): Observable<never> {
    return throwError(() => new RpcException({ code: 'OBS', message: 'from an observable' }));
  }

  @UseGuards(KeyGuard)
  @MessagePattern('guarded')
  guarded(@Payload() data: { key: string; value: number }): number {
    return data.value * 2;
  }

  @MessagePattern('piped')
  piped(@Payload(new PositiveIntPipe()) data: { n: number }): { n: number; type: string; square: number } {
    return { n: data.n, type: typeof data.n, square: data.n * data.n };
  }

  @UseInterceptors(WrapInterceptor)
  @MessagePattern('intercepted')
  intercepted(@Payload() data: number): number {
    return data + 1;
  }

  @UseFilters(ShapeFilter)
  @MessagePattern('filtered')
  filtered(@Payload() data: { fail: boolean }): string {
    if (data.fail) throw new RpcException({ code: 'FILTER_ME', message: 'raw error' });
    return 'fine';
  }

  @MessagePattern('ctx.info')
  info(@Payload() _data: unknown, @Ctx() ctx: GearmanContext) {
    return {
      handle: ctx.getHandle(),
      function: ctx.getFunction(),
      pattern: ctx.getPattern(),
      unique: ctx.getUnique(),
      server: ctx.getServer(),
      payload: ctx.getJob().payload.toString('utf8'),
    };
  }

  @MessagePattern('ctx.progress')
  async progress(@Payload() data: { steps: number }, @Ctx() ctx: GearmanContext) {
    ctx.sendStatus(1, data.steps);
    ctx.sendWarning({ warn: 'disk almost full' });
    ctx.sendData({ part: 1 });
    ctx.sendStatus(data.steps, data.steps);
    return { done: true };
  }

  @MessagePattern('upper', { codec: 'text' })
  upper(@Payload() text: string): string {
    return text.toUpperCase();
  }

  @MessagePattern('bytes', { codec: 'raw' })
  bytes(@Payload() data: Buffer): Buffer {
    return Buffer.from([...data].reverse());
  }

  @MessagePattern('failing', { errorMode: 'fail' })
  failing(): never {
    throw new RpcException('not for foreign callers');
  }

  @MessagePattern('describe')
  describe(@Payload() data: unknown): { type: string; value: unknown } {
    return { type: data === undefined ? 'undefined' : typeof data, value: data ?? 'none' };
  }

  @MessagePattern('meta')
  meta(@Payload() data: unknown, @Ctx() ctx: GearmanContext) {
    return { data, metadata: ctx.getMetadata() ?? 'none' };
  }
}

@Controller()
class EventsController {
  @EventPattern<string>('ev.ok')
  ok(@Payload() data: unknown, @Ctx() ctx: GearmanContext): void {
    probe.event.resolve({ data, handle: ctx.getHandle(), metadata: ctx.getMetadata() ?? 'none' });
  }

  @EventPattern<string>('ev.fail')
  async fail(): Promise<void> {
    throw new RpcException('disk full');
  }

  @EventPattern<string>('ev.crash')
  crash(): void {
    throw new Error('secret internal detail');
  }
}

/** A second handler for 'ev.ok' (Nest chains event handlers of one pattern) and an object pattern. */
@Controller()
class MoreController {
  @EventPattern<string>('ev.ok')
  alsoOk(@Payload() data: unknown): void {
    probe.second.resolve(data);
  }

  @MessagePattern({ cmd: 'sum', version: 2 })
  sumV2(@Payload() data: number[]): { v: number; sum: number } {
    return { v: 2, sum: data.reduce((a, b) => a + b, 0) };
  }
}

/** Request scope: Nest builds the controller per job and injects the RequestContext. */
@Controller({ scope: Scope.REQUEST })
class PerJobController {
  private static instances = 0;
  readonly instance = ++PerJobController.instances;

  constructor(@Inject(CONTEXT) private readonly request: RequestContext<unknown, GearmanContext>) {}

  @MessagePattern('scoped')
  scoped(@Payload() data: unknown) {
    return {
      data,
      pattern: this.request.getPattern(),
      requestData: this.request.getData(),
      handle: this.request.getContext().getHandle().startsWith('H:'),
      instance: this.instance,
    };
  }
}

const controllers = [RpcController, EventsController, MoreController, PerJobController];

beforeEach(() => {
  probe = newProbe();
});

describe('request/response', () => {
  it('returns a handler value to send()', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('sum', [1, 2, 3, 4]))).toBe(10);
    expect(await lastValueFrom(client.send('user', { id: 7 }))).toEqual({ id: 7, name: 'Ada', tags: ['x', 'y'] });
    // Several calls in flight at once, each with its own answer.
    const many = await Promise.all([1, 2, 3, 4, 5].map((n) => lastValueFrom(client.send('sum', [n, n]))));
    expect(many).toEqual([2, 4, 6, 8, 10]);
  });

  it('serves object patterns under the function name Nest normalises them to', async () => {
    const { logger } = await res.microservice({ controllers });
    expect(await lastValueFrom(res.clientProxy().send({ version: 2, cmd: 'sum' }, [1, 2]))).toEqual({ v: 2, sum: 3 });
    // Keys sorted, as Nest's own transports route them: what a foreign client must call.
    expect(logger.find('log', /functions: /)[0]).toContain('{"cmd":"sum","version":2}');
    const raw = await res.client();
    expect((await raw.run('{"cmd":"sum","version":2}', '[4,5]')).toString()).toBe('{"v":2,"sum":9}');
  });

  it('puts the plain JSON of the value on the wire (what a foreign client reads)', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    expect((await raw.run('user', '{"id":3}')).toString()).toBe('{"id":3,"name":"Ada","tags":["x","y"]}');
  });
});

describe('streams', () => {
  it('emits every value of an Observable handler to send()', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('stream', {}).pipe(toArray()))).toEqual([1, 2, 3]);
    expect(await lastValueFrom(client.send('stream.late', {}).pipe(toArray()))).toEqual(['a', 'b']);
  });

  it('sends the values before the last as WORK_DATA and the last as WORK_COMPLETE', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    for (const [fn, data, complete] of [
      ['stream', ['1', '2'], '3'],
      ['stream.late', ['"a"'], '"b"'],
    ] as const) {
      const job = raw.submit(fn, '{}');
      const seen: string[] = [];
      job.on('data', (d) => seen.push(d.toString()));
      const result = await within(job.result(), 5000, `${fn} result`);
      expect({ fn, data: seen, complete: result.toString() }).toEqual({ fn, data, complete });
    }
  });

  it('holds each value until the next: a status sent after a value reaches callers before it', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    const job = raw.submit('stream.status', '{}');
    const seen: string[] = [];
    job.on('data', (d) => seen.push(`data ${d.toString()}`));
    job.on('status', (n, d) => seen.push(`status ${n}/${d}`));
    const ctx = await within(probe.streamContext.promise, 5000, 'the handler');
    probe.values.next(1);
    const status = waitForEvent(job, 'status');
    await ctx.sendStatus(1, 2);
    await status;
    // Value 1 is held until value 2 comes: the status got there first.
    const data = waitForEvent(job, 'data');
    probe.values.next(2);
    await data;
    probe.values.complete();
    const result = await within(job.result(), 5000, 'stream.status result');
    expect([...seen, `complete ${result.toString()}`]).toEqual(['status 1/2', 'data 1', 'complete 2']);
  });

  it('delivers the values before an error, then the error', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    const values: unknown[] = [];
    const error = await new Promise((resolve, reject) => {
      client
        .send('stream.error', {})
        .subscribe({ next: (v) => values.push(v), error: resolve, complete: () => reject(new Error('completed')) });
    });
    expect(values).toEqual([1]);
    expect(error).toHaveProperty('error', { code: 'MID_STREAM', message: 'broke after one' });
  });

  it('completes send() with no value for a void handler (an empty WORK_COMPLETE)', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('void', {}), { defaultValue: 'none' })).toBe('none');
    await expect(lastValueFrom(client.send('void', {}))).rejects.toBeInstanceOf(EmptyError);
    const raw = await res.client();
    expect((await raw.run('void', '{}')).length).toBe(0);
  });

  it('delivers a null result as null, as Nest transports do', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('null', {}), { defaultValue: 'none' })).toBeNull();
  });
});

describe('errors reach the client as Nest transports deliver them', () => {
  it('RpcException with an object: that object', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    await expect(lastValueFrom(client.send('rpc.object', {}))).rejects.toHaveProperty('error', {
      code: 'E_NOPE',
      message: 'nope',
    });
    await expect(lastValueFrom(client.send('observable.error', {}))).rejects.toHaveProperty('error', {
      code: 'OBS',
      message: 'from an observable',
    });
  });

  it("RpcException with a string: { status: 'error', message }", async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    await expect(lastValueFrom(client.send('rpc.string', {}))).rejects.toHaveProperty('error', {
      status: 'error',
      message: 'text',
    });
  });

  it('a plain Error: Internal server error, without its detail', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    await expect(lastValueFrom(client.send('plain.error', {}))).rejects.toHaveProperty('error', {
      status: 'error',
      message: 'Internal server error',
    });
  });

  it('a result the codec cannot write: a clear error instead of a hang', async () => {
    await res.microservice({ controllers });
    const error = await within(
      lastValueFrom(res.clientProxy().send('unserialisable', {})).catch((e: unknown) => e),
      5000,
      'the error',
    );
    expect(error).toMatchObject({
      status: 'error',
      message: expect.stringContaining('The json codec cannot serialise this value'),
    });
  });

  it('goes on the wire as WORK_EXCEPTION carrying that JSON', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    const job = raw.submit('rpc.object', '{}');
    const exception = new Promise<Buffer>((resolve) => job.on('exception', resolve));
    const error = await job.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanJobError);
    expect((error as GearmanJobError).code).toBe('JOB_EXCEPTION');
    expect(JSON.parse((await exception).toString())).toEqual({ code: 'E_NOPE', message: 'nope' });
  });

  it("errorMode 'fail' sends a plain WORK_FAIL and logs the error", async () => {
    const { logger } = await res.microservice({ controllers });
    const client = res.clientProxy();
    const error = await lastValueFrom(client.send('failing', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error).toMatchObject({ code: 'JOB_FAILED', functionName: 'failing' });
    expect(await logger.waitFor('warn', /"failing" failed: not for foreign callers/)).toMatch(/^Job H:/);
    // The worker goes on serving.
    expect(await lastValueFrom(client.send('sum', [2, 2]))).toBe(4);
  });
});

describe('request-scoped controllers', () => {
  it('get a fresh instance per job and the RequestContext with pattern, data and GearmanContext', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    const first = await lastValueFrom(client.send('scoped', { n: 1 }));
    const second = await lastValueFrom(client.send('scoped', { n: 2 }));
    expect(first).toMatchObject({ data: { n: 1 }, pattern: 'scoped', requestData: { n: 1 }, handle: true });
    expect(second).toMatchObject({ data: { n: 2 }, pattern: 'scoped', requestData: { n: 2 }, handle: true });
    expect(second.instance).not.toBe(first.instance);
  });
});

describe('Nest enhancers', () => {
  it('a guard: allowed calls run, rejected ones reach the client as Forbidden resource', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('guarded', { key: 'secret', value: 21 }))).toBe(42);
    await expect(lastValueFrom(client.send('guarded', { key: 'wrong', value: 21 }))).rejects.toHaveProperty('error', {
      status: 'error',
      message: 'Forbidden resource',
    });
  });

  it('a pipe: transforms valid input and rejects invalid input with its own error', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('piped', { n: '12' }))).toEqual({ n: 12, type: 'number', square: 144 });
    await expect(lastValueFrom(client.send('piped', { n: 'x' }))).rejects.toHaveProperty('error', {
      code: 'VALIDATION',
      message: 'n must be a positive integer',
    });
    expect(probe.pipeInput).toEqual([{ n: '12' }, { n: 'x' }]);
  });

  it('an interceptor: maps the result (and sees the Gearman context)', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('intercepted', 41))).toEqual({ fn: 'intercepted', wrapped: 42 });
  });

  it('an exception filter: shapes the error the client gets', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('filtered', { fail: false }))).toBe('fine');
    await expect(lastValueFrom(client.send('filtered', { fail: true }))).rejects.toHaveProperty('error', {
      shaped: true,
      fn: 'filtered',
      error: { code: 'FILTER_ME', message: 'raw error' },
    });
  });
});

describe('@EventPattern: background jobs', () => {
  it('emit() completes with the job handle and the handler runs with the data', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    const handle = await within(lastValueFrom(client.emit('ev.ok', { order: 42 })), 5000, 'emit()');
    expect(handle).toMatch(/^H:/);
    expect(await within(probe.event.promise, 5000, 'the event handler')).toEqual({
      data: { order: 42 },
      handle,
      metadata: 'none',
    });
    // Every handler of the pattern runs (Nest chains them on one Gearman function).
    expect(await within(probe.second.promise, 5000, 'the second event handler')).toEqual({ order: 42 });
  });

  it('a failing event handler ends its job with WORK_FAIL and logs the error', async () => {
    const { logger } = await res.microservice({ controllers });
    const client = res.clientProxy();
    const handle = await within(lastValueFrom(client.emit('ev.fail', { x: 1 })), 5000, 'emit()');
    expect(handle).toMatch(/^H:/);
    const line = await logger.waitFor('error', /Event handler for "ev\.fail" failed/);
    expect(line).toContain(`(job ${handle})`);
    expect(line).toContain('disk full');
    // A plain Error went through Nest's exception handling first, which hides its detail (Nest's own
    // logger has it), as for message handlers.
    await lastValueFrom(client.emit('ev.crash', {}));
    expect(await logger.waitFor('error', /Event handler for "ev\.crash" failed/)).toContain('Internal server error');

    // Submitted as a foreground job, the same handler's failure is a plain WORK_FAIL.
    const raw = await res.client();
    await expect(raw.run('ev.fail', '{}')).rejects.toMatchObject({ code: 'JOB_FAILED', functionName: 'ev.fail' });
    // And a successful event handler completes its job with an empty result.
    expect((await raw.run('ev.ok', '"fg"')).length).toBe(0);
  });
});

describe("Nest's processing hooks", () => {
  it('run once around every job: values, streams, errors and events', async () => {
    const { app, server } = await res.createMicroservice({ controllers });
    const seen: string[] = [];
    server.setOnProcessingStartHook((_transport, context, done) => {
      seen.push(`start ${(context as GearmanContext).getFunction()}`);
      return done();
    });
    server.setOnProcessingEndHook((_transport, context) =>
      seen.push(`end ${(context as GearmanContext).getFunction()}`),
    );
    await within(app.listen(), 10_000, 'app.listen()');
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('sum', [1, 2]))).toBe(3);
    expect(await lastValueFrom(client.send('stream', {}).pipe(toArray()))).toEqual([1, 2, 3]);
    await expect(lastValueFrom(client.send('filtered', { fail: true }))).rejects.toBeDefined();
    await lastValueFrom(client.emit('ev.ok', { order: 1 }));
    await within(probe.event.promise, 5000, 'the event handler');
    await within(probe.second.promise, 5000, 'the second event handler');
    const count = (line: string) => seen.filter((l) => l === line).length;
    for (const fn of ['sum', 'stream', 'filtered', 'ev.ok']) {
      expect([fn, count(`start ${fn}`), count(`end ${fn}`)]).toEqual([fn, 1, 1]);
    }
    expect(seen.indexOf('start sum')).toBeLessThan(seen.indexOf('end sum'));
  });

  it("a start hook that does not return done()'s promise still gets every reply out", async () => {
    const { app, server } = await res.createMicroservice({ controllers });
    server.setOnProcessingStartHook((_transport, _context, done) => {
      void done();
    });
    await within(app.listen(), 10_000, 'app.listen()');
    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('sum', [2, 3]))).toBe(5);
    expect(await lastValueFrom(client.send('stream', {}).pipe(toArray()))).toEqual([1, 2, 3]);
  });
});

describe('GearmanContext', () => {
  it('gives the handle, function, unique and server', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    const events = await lastValueFrom(
      client
        .job<Record<string, string>>('ctx.info', new GearmanRecordBuilder({ a: 1 }).setUnique('u-ctx-1').build())
        .pipe(toArray()),
    );
    const created = events[0];
    const complete = events[events.length - 1];
    expect(created).toMatchObject({ type: 'created', server: gearmand.address });
    expect(complete).toEqual({
      type: 'complete',
      data: {
        handle: (created as { handle: string }).handle,
        function: 'ctx.info',
        pattern: 'ctx.info',
        unique: 'u-ctx-1',
        server: gearmand.address,
        payload: '{"a":1}',
      },
    });
    // Without a unique, the handler sees ''.
    expect(await lastValueFrom(client.send('ctx.info', {}))).toMatchObject({ unique: '' });
  });

  it('progress reaches client.job() in order: created, status, warning, data, status, complete', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy();
    const events = await within(
      lastValueFrom(client.job('ctx.progress', { steps: 4 }).pipe(toArray())),
      5000,
      'job events',
    );
    expect(events).toEqual([
      { type: 'created', handle: expect.stringMatching(/^H:/), server: gearmand.address },
      { type: 'status', numerator: 1, denominator: 4 },
      { type: 'warning', data: { warn: 'disk almost full' } },
      { type: 'data', data: { part: 1 } },
      { type: 'status', numerator: 4, denominator: 4 },
      { type: 'complete', data: { done: true } },
    ]);
    // send() sees the WORK_DATA value, then the result.
    expect(await lastValueFrom(client.send('ctx.progress', { steps: 2 }).pipe(toArray()))).toEqual([
      { part: 1 },
      { done: true },
    ]);
  });
});

describe('per-pattern codecs and payloads', () => {
  it("codec 'text': the handler reads and writes plain text", async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    expect((await raw.run('upper', 'hello gearman')).toString()).toBe('HELLO GEARMAN');
    const client = res.clientProxy({ codec: 'text' });
    expect(await lastValueFrom(client.send('upper', 'abc'))).toBe('ABC');
  });

  it("codec 'raw': the handler gets and returns bytes", async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    expect(await raw.run('bytes', Buffer.from([0, 1, 2, 255]))).toEqual(Buffer.from([255, 2, 1, 0]));
  });

  it('an empty payload reaches a JSON handler as undefined', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    expect(JSON.parse((await raw.run('describe', Buffer.alloc(0))).toString())).toEqual({
      type: 'undefined',
      value: 'none',
    });
  });

  it('invalid JSON gets a WORK_EXCEPTION naming the function and the fix, and the worker keeps serving', async () => {
    const { logger } = await res.microservice({ controllers });
    const raw = await res.client();
    const job = raw.submit('describe', 'not json at all');
    const exception = new Promise<Buffer>((resolve) => job.on('exception', resolve));
    await expect(job.result()).rejects.toMatchObject({ code: 'JOB_EXCEPTION' });
    const body = JSON.parse((await exception).toString()) as { status: string; message: string };
    expect(body.status).toBe('error');
    expect(body.message).toContain('Gearman function "describe" could not read its payload');
    expect(body.message).toContain('not valid JSON');
    expect(body.message).toContain("extras.codec: 'text' or 'raw'");
    expect(logger.find('warn', /could not read its payload/)).toHaveLength(1);

    expect(JSON.parse((await raw.run('describe', '{"ok":true}')).toString())).toEqual({
      type: 'object',
      value: { ok: true },
    });
    const client = res.clientProxy();
    await expect(lastValueFrom(client.send('describe', 5))).resolves.toEqual({ type: 'number', value: 5 });
  });
});

describe('metadata', () => {
  it('with sendMetadata, setOnDispatchHook metadata reaches ctx.getMetadata() (send and emit)', async () => {
    await res.microservice({ controllers }, { readMetadata: true });
    const client = res.clientProxy({ sendMetadata: true });
    client.setOnDispatchHook((packet) => {
      packet.metadata = { trace: 'x' };
    });
    expect(await lastValueFrom(client.send('meta', { a: 1 }))).toEqual({ data: { a: 1 }, metadata: { trace: 'x' } });
    await lastValueFrom(client.emit('ev.ok', 'payload'));
    expect(await within(probe.event.promise, 5000, 'the event handler')).toMatchObject({
      data: 'payload',
      metadata: { trace: 'x' },
    });
  });

  it('without sendMetadata, a plain Gearman worker sees only the JSON payload', async () => {
    await res.microservice({ controllers }, { readMetadata: ['meta'] });
    const seen: string[] = [];
    const worker = res.worker();
    worker.register('plain.peer', (job) => {
      seen.push(job.payload.toString('latin1'));
      return '"ok"';
    });
    await worker.start();
    const client = res.clientProxy();
    client.setOnDispatchHook((packet) => {
      packet.metadata = { trace: 'x' };
    });
    expect(await lastValueFrom(client.send('plain.peer', { a: 1 }))).toBe('ok');
    // The metadata was not sent, and a Nest handler sees none either.
    expect(await lastValueFrom(client.send('meta', { a: 2 }))).toEqual({ data: { a: 2 }, metadata: 'none' });
    // sendMetadata as a list of patterns: only those get the envelope.
    const listed = res.clientProxy({ sendMetadata: ['meta'] });
    listed.setOnDispatchHook((packet) => {
      packet.metadata = { trace: 'y' };
    });
    expect(await lastValueFrom(listed.send('plain.peer', { a: 3 }))).toBe('ok');
    expect(await lastValueFrom(listed.send('meta', { a: 4 }))).toEqual({ data: { a: 4 }, metadata: { trace: 'y' } });
    expect(seen).toEqual(['{"a":1}', '{"a":3}']);
  });
});
