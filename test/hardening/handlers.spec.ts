/**
 * Hardening (issue 10, §3): stuck and misbehaving handlers, against a real gearmand.
 *
 * - Odd failures: a handler rejecting or throwing `Object.create(null)`, undefined, a symbol, a
 *   BigInt, null or an object whose toString/message/toJSON throw gives its caller a typed failure;
 *   the worker (maxJobs 1, in its own process so a crash cannot take Jest down) keeps its one
 *   connection and serves the next job. Same through ServerGearman.
 * - Deadlines (`handlerTimeout`): a handler that never settles has its job answered with a
 *   failure that says it timed out, its slot freed and its signal aborted; a late result is ignored.
 * - Close: a running handler's signal is aborted at the close timeout; a ServerGearman process
 *   whose handler returns an endless Observable ends the subscription at closeTimeout, produces
 *   no value after, and exits by itself.
 * - Stream flood: 100k x 1 KiB WORK_DATA with a stalled link keeps the worker's buffered bytes
 *   bounded: paced when the handler awaits sendData, failed with BACKPRESSURE when it does not.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom, map, Observable, range, tap, toArray } from 'rxjs';
import { GearmanError, GearmanJobError, type GearmanWorker, type WorkerJob } from '../../lib/engine/index.js';
import { GearmanContext, GearmanRpcError } from '../../lib/index.js';
import { fixturePath } from '../support/child.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { type Deferred, deferred, eventually, quietPeriod, within } from '../support/wait.js';

const g = useGearmand();
const res = useResources(g);

const KINDS = ['null-proto', 'undefined', 'symbol', 'bigint', 'bad-tostring', 'null'] as const;

/** The rejection of `promise` (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got a result');
}

/**
 * Records the largest number of bytes queued on a worker's connection (its writer's pending bytes
 * plus the socket's writableLength: what `bufferedBytes` reports, read directly so the figure
 * means the same on the code before the change) after every packet queued on it.
 */
function trackPeak(worker: GearmanWorker): { readonly peak: number } {
  const conn = worker.connections[0];
  const internals = conn as unknown as { writer: { pendingBytes: number }; socket?: { writableLength: number } };
  const send = conn.send.bind(conn);
  const tracker = { peak: 0 };
  conn.send = (type, args) => {
    send(type, args);
    const buffered = internals.writer.pendingBytes + (internals.socket?.writableLength ?? 0);
    if (buffered > tracker.peak) tracker.peak = buffered;
  };
  return tracker;
}

async function faultProxy(): Promise<FaultProxy> {
  const proxy = await FaultProxy.start(g.address);
  res.defer(() => proxy.close());
  return proxy;
}

const MiB = 1024 * 1024;
const mb = (n: number) => `${(n / MiB).toFixed(2)} MiB`;

describe('odd failures', () => {
  it('engine worker (own process, maxJobs 1): every odd value rejected or thrown fails only its job, typed; same connection, slot free', async () => {
    const fn = fnName('odd');
    const child = res.tsx(fixturePath('odd-handlers.ts'), [g.address, fn]);
    await child.line('READY', 15_000);
    const client = await res.client();
    const figures: string[] = [];
    for (const mode of ['reject', 'throw']) {
      for (const kind of KINDS) {
        const err = await within(
          rejection(client.submit(fn, `${mode}:${kind}`, { timeout: 5000 }).result()),
          6000,
          `${mode} ${kind}`,
        );
        expect(err).toBeInstanceOf(GearmanJobError);
        expect((err as GearmanJobError).code).toBe('JOB_EXCEPTION');
        const text = (err as GearmanJobError).data!.toString('utf8');
        expect(text.length).toBeGreaterThan(0);
        figures.push(`${mode} ${kind}: "${text}"`);
        // errorMode 'fail': a plain WORK_FAIL.
        const failed = await within(
          rejection(client.submit(`${fn}-fail`, `${mode}:${kind}`, { timeout: 5000 }).result()),
          6000,
          `${mode} ${kind} (fail)`,
        );
        expect((failed as GearmanJobError).code).toBe('JOB_FAILED');
      }
    }
    // The one slot is free and the connection is the first one.
    const ok = await within(client.submit(fn, 'still-serving', { timeout: 5000 }).result(), 6000, 'the next job');
    expect(ok.toString()).toBe('still-serving');
    expect(child.lines.filter((l) => l.startsWith('CONNECTED'))).toEqual(['CONNECTED 1']);
    expect(child.lines.filter((l) => l.startsWith('JOBERROR'))).toHaveLength(KINDS.length * 4);
    expect(child.lines.some((l) => l.startsWith('CRASH'))).toBe(false);
    expect(child.child.exitCode).toBeNull();
    console.log(`odd failures, WORK_EXCEPTION text per value:\n  ${figures.join('\n  ')}`);
  }, 60_000);

  it('ServerGearman (maxJobs 1): odd values thrown, rejected or errored by an Observable reach the caller as a GearmanRpcError; the next job runs', async () => {
    const fn = fnName('nest-odd');
    const odd = (kind: string): unknown =>
      kind === 'null-proto'
        ? Object.create(null)
        : kind === 'undefined'
          ? undefined
          : kind === 'symbol'
            ? Symbol('odd')
            : kind === 'bigint'
              ? 10n
              : kind === 'null'
                ? null
                : {
                    toString() {
                      throw new Error('toString throws');
                    },
                  };
    @Controller()
    class OddController {
      @MessagePattern(fn)
      run(@Payload() p: { mode: string; kind: string }): unknown {
        if (p.mode === 'ok') return 'ok';
        if (p.mode === 'reject') return Promise.reject(odd(p.kind));
        if (p.mode === 'observable') {
          return range(0, 1).pipe(
            map(() => {
              throw odd(p.kind);
            }),
          );
        }
        throw odd(p.kind);
      }
    }
    await res.microservice({ controllers: [OddController] }, { maxJobs: 1 });
    const client = res.clientProxy();
    for (const mode of ['reject', 'throw', 'observable']) {
      for (const kind of KINDS) {
        const err = await within(rejection(lastValueFrom(client.send(fn, { mode, kind }))), 6000, `${mode} ${kind}`);
        expect(err).toBeInstanceOf(GearmanRpcError);
        expect((err as GearmanRpcError).error).toEqual({ status: 'error', message: 'Internal server error' });
      }
    }
    await expect(within(lastValueFrom(client.send(fn, { mode: 'ok' })), 6000, 'the next job')).resolves.toBe('ok');
  }, 60_000);
});

describe('handler deadlines (handlerTimeout)', () => {
  it('a handler that never settles: the caller gets "timed out after N ms", the slot is freed, job.signal aborts, a late result is ignored', async () => {
    const fn = fnName('stuck');
    const w = res.worker({ maxJobs: 1 });
    const late = res.gate();
    const aborted: Deferred<unknown> = deferred();
    const jobErrors: unknown[] = [];
    w.on('jobError', (err) => jobErrors.push(err));
    let stuckJob: WorkerJob | undefined;
    w.register(
      fn,
      (job) => {
        if (job.payload.toString() === 'ok') return 'ok';
        stuckJob = job;
        job.signal.addEventListener('abort', () => aborted.resolve(job.signal.reason));
        // Settles only when the test says so: after the deadline, a late result.
        return late.promise.then(() => 'late result');
      },
      { handlerTimeout: 300 },
    );
    await w.start();
    const client = await res.client();
    const job = client.submit(fn, 'stuck', { timeout: 5000 });
    const completes: Buffer[] = [];
    job.on('complete', (d) => completes.push(d));
    const started = performance.now();
    const err = (await within(rejection(job.result()), 5000, 'the deadline failure')) as GearmanJobError;
    const ms = Math.round(performance.now() - started);
    expect(err.code).toBe('JOB_EXCEPTION');
    expect(err.data!.toString()).toMatch(/timed out after 300 ms/);
    const reason = await within(aborted.promise, 1000, 'the signal to abort');
    expect(reason).toBeInstanceOf(GearmanError);
    expect((reason as GearmanError).code).toBe('TIMEOUT');
    expect(stuckJob!.finished).toBe(true);
    expect(w.activeJobs).toBe(0);
    expect(jobErrors).toHaveLength(1);
    // The one slot is free: the next job runs while the stuck handler is still pending.
    const next = await within(client.submit(fn, 'ok', { timeout: 5000 }).result(), 5000, 'the next job');
    expect(next.toString()).toBe('ok');
    // The late result goes nowhere: no second outcome, no error, nothing thrown.
    late.resolve();
    await quietPeriod(200);
    expect(completes).toHaveLength(0);
    expect(jobErrors).toHaveLength(1);
    console.log(`handlerTimeout 300 ms: the caller got the timeout failure after ${ms} ms`);
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(2000);
  });

  it('worker-wide handlerTimeout with errorMode fail, a per-function override, and 0 for none', async () => {
    const fn = fnName('deadline');
    const w = res.worker({ maxJobs: 3, handlerTimeout: 200, errorMode: 'fail' });
    const never = () => new Promise<never>(() => undefined);
    const signals: Record<string, AbortSignal> = {};
    const track = (name: string) => (job: WorkerJob) => {
      signals[name] = job.signal;
      return never();
    };
    w.register(`${fn}-worker`, track('worker'));
    w.register(`${fn}-own`, track('own'), { handlerTimeout: 600, errorMode: 'exception' });
    w.register(`${fn}-none`, track('none'), { handlerTimeout: 0 });
    await w.start();
    const client = await res.client();
    const t0 = performance.now();
    const at = (p: Promise<unknown>) => rejection(p).then((e) => ({ e, ms: performance.now() - t0 }));
    const none = client.submit(`${fn}-none`, 'x', { timeout: 1500 });
    const [a, b] = await within(
      Promise.all([
        at(client.submit(`${fn}-worker`, 'x', { timeout: 5000 }).result()),
        at(client.submit(`${fn}-own`, 'x', { timeout: 5000 }).result()),
      ]),
      5000,
      'both deadlines',
    );
    expect((a.e as GearmanJobError).code).toBe('JOB_FAILED');
    expect((b.e as GearmanJobError).code).toBe('JOB_EXCEPTION');
    expect((b.e as GearmanJobError).data!.toString()).toMatch(/timed out after 600 ms/);
    expect(a.ms).toBeLessThan(b.ms);
    expect(b.ms).toBeGreaterThanOrEqual(580);
    expect(signals.worker.aborted && signals.own.aborted).toBe(true);
    // No deadline: still running (the client's own 1.5 s timeout ends the wait), signal untouched.
    const noneErr = (await within(rejection(none.result()), 3000, 'the client timeout')) as GearmanError;
    expect(noneErr.code).toBe('TIMEOUT');
    expect(signals.none.aborted).toBe(false);
    expect(w.activeJobs).toBe(1);
  });

  it("formatException shapes WORK_EXCEPTION for the handler's errors and the worker's own; a throwing one falls back to the description", async () => {
    const fn = fnName('format');
    const w = res.worker({ maxJobs: 2 });
    const format = (err: unknown) => JSON.stringify({ failed: err instanceof GearmanError ? err.code : String(err) });
    w.register(
      fn,
      (job) =>
        job.payload.toString() === 'stuck' ? new Promise<never>(() => undefined) : Promise.reject(new Error('boom')),
      {
        handlerTimeout: 200,
        formatException: format,
      },
    );
    w.register(`${fn}-bad`, () => Promise.reject(new Error('boom')), {
      formatException: () => {
        throw new Error('formatter throws');
      },
    });
    await w.start();
    const client = await res.client();
    const data = async (f: string, p: string) =>
      (
        (await within(rejection(client.submit(f, p, { timeout: 5000 }).result()), 5000, f)) as GearmanJobError
      ).data!.toString();
    expect(await data(fn, 'stuck')).toBe('{"failed":"TIMEOUT"}');
    expect(await data(fn, 'x')).toBe('{"failed":"Error: boom"}');
    expect(await data(`${fn}-bad`, 'x')).toBe('boom');
  });

  it('invalid handlerTimeout values are refused with INVALID_ARGUMENT', () => {
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 31]) {
      expect(() => res.worker({ handlerTimeout: bad })).toThrow(/handlerTimeout/);
      expect(() => res.worker().register('x', () => undefined, { handlerTimeout: bad })).toThrow(/handlerTimeout/);
    }
  });

  it('ServerGearman: extras.handlerTimeout fails the call with the timeout (code TIMEOUT) and aborts ctx.getSignal()', async () => {
    const fn = fnName('nest-stuck');
    const aborted: Deferred<unknown> = deferred();
    @Controller()
    class StuckController {
      @MessagePattern(fn, { handlerTimeout: 250 })
      stuck(@Payload() p: string, @Ctx() ctx: GearmanContext): Promise<string> | string {
        if (p === 'ok') return 'ok';
        ctx.getSignal().addEventListener('abort', () => aborted.resolve(ctx.getSignal().reason));
        return new Promise<string>(() => undefined);
      }
    }
    const { logger } = await res.microservice({ controllers: [StuckController] }, { maxJobs: 1 });
    const client = res.clientProxy();
    const err = (await within(
      rejection(lastValueFrom(client.send(fn, 'stuck'))),
      5000,
      'the failure',
    )) as GearmanRpcError;
    expect(err).toBeInstanceOf(GearmanRpcError);
    expect(err.error).toMatchObject({ status: 'error', code: 'TIMEOUT' });
    expect(err.message).toMatch(/timed out after 250 ms/);
    expect(((await within(aborted.promise, 1000, 'the signal')) as GearmanError).code).toBe('TIMEOUT');
    await logger.waitFor('warn', /timed out after 250 ms/);
    await expect(within(lastValueFrom(client.send(fn, 'ok')), 5000, 'the next job')).resolves.toBe('ok');
  });
});

describe('close', () => {
  it('worker.close(): a handler still running at the close timeout has its signal aborted (CLOSED); gearmand requeues the job', async () => {
    const fn = fnName('close-abort');
    const w = res.worker({ maxJobs: 1 });
    const started = deferred();
    const aborted: Deferred<unknown> = deferred();
    w.register(fn, (job) => {
      job.signal.addEventListener('abort', () => aborted.resolve(job.signal.reason));
      started.resolve();
      return new Promise<never>(() => undefined);
    });
    await w.start();
    const client = await res.client();
    const job = client.submit(fn, 'x', { timeout: 10_000 });
    await within(started.promise, 5000, 'the handler to start');
    const abandoned = await within(w.close(200), 3000, 'close');
    expect(abandoned).toBe(1);
    const reason = (await within(aborted.promise, 1000, 'the signal')) as GearmanError;
    expect(reason.code).toBe('CLOSED');
    const replacement = res.worker();
    replacement.register(fn, () => 'by the replacement');
    await replacement.start();
    expect((await within(job.result(), 5000, 'the requeued job')).toString()).toBe('by the replacement');
  });

  it('a lost connection aborts the signal of the handlers it carried (CONNECTION_LOST); their streamed reports then throw', async () => {
    const fn = fnName('lost');
    const proxy = await faultProxy();
    const w = res.worker({ servers: [proxy.address], maxJobs: 1, reconnect: { initialDelay: 50, maxDelay: 100 } });
    const started = deferred();
    const aborted: Deferred<unknown> = deferred();
    let thrown: unknown;
    let runs = 0;
    w.register(fn, async (job) => {
      if (++runs > 1) return `run ${runs}`;
      job.signal.addEventListener('abort', () => aborted.resolve(job.signal.reason));
      started.resolve();
      await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve()));
      try {
        await job.sendData('after the loss');
      } catch (err) {
        thrown = err;
      }
      return 'not reported';
    });
    await w.start();
    const client = await res.client();
    const job = client.submit(fn, 'x', { timeout: 10_000 });
    await within(started.promise, 5000, 'the handler to start');
    proxy.cutAll();
    const reason = (await within(aborted.promise, 3000, 'the signal')) as GearmanError;
    expect(reason.code).toBe('CONNECTION_LOST');
    await eventually(() => thrown !== undefined, 3000, 'sendData to throw');
    expect(thrown).toBe(reason);
    // gearmand requeued the job: the reconnected worker runs it again, and that run reports.
    expect((await within(job.result(), 5000, 'the requeued job')).toString()).toBe('run 2');
    expect(proxy.counters.accepted).toBe(2);
  });

  it('ServerGearman process with an endless Observable handler: at closeTimeout the subscription ends, no value follows, the process exits by itself', async () => {
    const fn = fnName('endless');
    const CLOSE_TIMEOUT = 400;
    const app = res.tsx(fixturePath('nest-endless-app.ts'), [g.address, fn, String(CLOSE_TIMEOUT)]);
    await app.line('READY', 20_000);
    const client = res.clientProxy();
    const values: number[] = [];
    const result = lastValueFrom(
      client.send<number>(fn, {}).pipe(
        tap((v) => values.push(v)),
        toArray(),
      ),
    );
    await app.lineCount('VALUE ', 5, 5000);
    const signalledAt = performance.now();
    app.child.kill('SIGTERM');
    const exit = await app.exit(CLOSE_TIMEOUT + 5000);
    const exitMs = Math.round(performance.now() - signalledAt);
    const lines = app.lines;
    const ended = lines.indexOf('ENDED');
    expect(lines).toContain('ABORTED CLOSED');
    expect(ended).toBeGreaterThan(0);
    // No value after the subscription ended.
    expect(lines.slice(ended).filter((l) => l.startsWith('VALUE '))).toEqual([]);
    expect(lines).toContain('CLOSED');
    // Nothing kept the process alive: it ran out of work and exited with code 0.
    expect(lines[lines.length - 1]).toBe('EXIT 0');
    expect(exit.code).toBe(0);
    const produced = lines.filter((l) => l.startsWith('VALUE ')).length;
    // gearmand requeued the unfinished job: a replacement completes it for the caller.
    const replacement = res.worker();
    replacement.register(fn, () => JSON.stringify(-1));
    await replacement.start();
    const all = await within(result, 5000, 'the requeued job');
    expect(all[all.length - 1]).toBe(-1);
    console.log(
      `endless Observable, closeTimeout ${CLOSE_TIMEOUT} ms: ${produced} values, none after the subscription ended; the process exited by itself ${exitMs} ms after SIGTERM`,
    );
    expect(exitMs).toBeLessThan(CLOSE_TIMEOUT + 3000);
  }, 40_000);
});

describe('stream flood: 100k x 1 KiB WORK_DATA, stalled link', () => {
  const COUNT = 100_000;
  const CHUNK = Buffer.alloc(1024, 0x61);

  it('awaiting sendData paces the handler: buffered bytes stay near highWaterMark, every chunk arrives', async () => {
    const fn = fnName('flood-paced');
    const proxy = await faultProxy();
    const w = res.worker({ servers: [proxy.address], maxJobs: 1, heartbeat: false });
    let sent = 0;
    const started = deferred();
    const go = res.gate();
    w.register(fn, async (job) => {
      started.resolve();
      await go.promise;
      for (let i = 0; i < COUNT; i++) {
        await job.sendData(CHUNK);
        sent++;
      }
      return 'done';
    });
    await w.start();
    const tracker = trackPeak(w);
    const client = await res.client();
    const job = client.submit(fn, 'go', { timeout: 60_000 });
    let received = 0;
    let bytes = 0;
    job.on('data', (d) => {
      received++;
      bytes += d.length;
    });
    // The link between the worker and gearmand stalls once the job is running: nothing the
    // worker writes reaches gearmand (a reader that stopped reading).
    await within(started.promise, 5000, 'the handler to start');
    proxy.stall();
    go.resolve();
    // The handler runs into the stalled link (once the proxy's queue and the kernel's buffers are
    // full) and waits: the connection stays congested and nothing more is sent for 300 ms.
    await eventually(
      async () => {
        const before = sent;
        await quietPeriod(300);
        return w.connections[0].congested && sent === before;
      },
      15_000,
      'the handler to be held by the stalled link',
    );
    const sentAtStall = sent;
    expect(sentAtStall).toBeLessThan(COUNT);
    const stalledPeak = tracker.peak;
    proxy.resume();
    const result = await within(job.result(), 60_000, 'the paced stream to complete');
    expect(result.toString()).toBe('done');
    expect(received).toBe(COUNT);
    expect(bytes).toBe(COUNT * CHUNK.length);
    const hwm = MiB;
    console.log(
      `stream flood, handler awaits sendData: peak buffered ${mb(tracker.peak)} (${tracker.peak} bytes; highWaterMark ${mb(hwm)}), ` +
        `${sentAtStall} chunks sent before the stalled link held the handler; all ${COUNT} delivered`,
    );
    expect(stalledPeak).toBeLessThan(hwm + 64 * 1024);
    expect(tracker.peak).toBeLessThan(hwm + 64 * 1024);
  }, 90_000);

  it('a highWaterMark below the socket buffer (4 KiB): awaiting sendData still resumes after every drain', async () => {
    const fn = fnName('flood-small-hwm');
    const w = res.worker({ maxJobs: 1, highWaterMark: 4096 });
    const N = 5000;
    w.register(fn, async (job) => {
      for (let i = 0; i < N; i++) await job.sendData(CHUNK);
      return 'done';
    });
    await w.start();
    const tracker = trackPeak(w);
    const client = await res.client();
    const job = client.submit(fn, 'go', { timeout: 20_000 });
    let received = 0;
    job.on('data', () => received++);
    expect((await within(job.result(), 20_000, 'the paced stream')).toString()).toBe('done');
    expect(received).toBe(N);
    expect(tracker.peak).toBeLessThan(4096 + 2 * CHUNK.length);
  });

  it('not awaiting sendData: the job fails with BACKPRESSURE at maxOutgoing, buffered bytes bounded, the worker keeps serving', async () => {
    const fn = fnName('flood-hot');
    const proxy = await faultProxy();
    const w = res.worker({ servers: [proxy.address], maxJobs: 1, heartbeat: false });
    let thrown: unknown;
    let attempted = 0;
    const started = deferred();
    const go = res.gate();
    w.register(fn, async (job) => {
      if (job.payload.toString() === 'ok') return 'ok';
      started.resolve();
      await go.promise;
      try {
        for (let i = 0; i < COUNT; i++) {
          attempted++;
          void job.sendData(CHUNK);
        }
      } catch (err) {
        thrown = err;
        throw err;
      }
      return 'not reached';
    });
    await w.start();
    const tracker = trackPeak(w);
    const client = await res.client();
    const job = client.submit(fn, 'go', { timeout: 30_000 });
    const failed = rejection(job.result());
    await within(started.promise, 5000, 'the handler to start');
    proxy.stall();
    go.resolve();
    await eventually(() => thrown !== undefined, 10_000, 'sendData to throw');
    expect(w.activeJobs).toBe(0);
    // The failure waits behind the stalled bytes: it arrives once the link resumes.
    proxy.resume();
    const failure = (await within(failed, 30_000, 'the BACKPRESSURE failure')) as GearmanJobError;
    expect(thrown).toBeInstanceOf(GearmanError);
    expect((thrown as GearmanError).code).toBe('BACKPRESSURE');
    expect(failure.code).toBe('JOB_EXCEPTION');
    expect(failure.data!.toString()).toMatch(/maxOutgoing/);
    const cap = 32 * MiB;
    console.log(
      `stream flood, handler does not await: BACKPRESSURE after ${attempted} of ${COUNT} chunks; peak buffered ${mb(tracker.peak)} ` +
        `(${tracker.peak} bytes; maxOutgoing ${mb(cap)})`,
    );
    expect(tracker.peak).toBeLessThanOrEqual(cap + 2 * CHUNK.length);
    expect(attempted).toBeLessThan(COUNT);
    const next = await within(client.submit(fn, 'ok', { timeout: 10_000 }).result(), 15_000, 'the next job');
    expect(next.toString()).toBe('ok');
    expect(proxy.counters.accepted).toBe(1);
  }, 90_000);

  it('ServerGearman, a handler awaiting ctx.sendData: paced the same way, every value arrives', async () => {
    const fn = fnName('nest-flood-paced');
    const proxy = await faultProxy();
    const started = deferred();
    const go = res.gate();
    const text = 'b'.repeat(1024);
    let sent = 0;
    @Controller()
    class PacedController {
      @MessagePattern(fn)
      async stream(@Ctx() ctx: GearmanContext): Promise<string> {
        started.resolve();
        await go.promise;
        for (let i = 0; i < COUNT; i++) {
          await ctx.sendData(text);
          sent++;
        }
        return 'done';
      }
    }
    const { server } = await res.microservice(
      { controllers: [PacedController] },
      { servers: [proxy.address], maxJobs: 1, heartbeat: false },
    );
    const tracker = trackPeak(server.unwrap<GearmanWorker>());
    const client = res.clientProxy();
    let received = 0;
    const result = lastValueFrom(client.send<string>(fn, {}).pipe(tap(() => received++)));
    await within(started.promise, 5000, 'the handler to start');
    proxy.stall();
    go.resolve();
    await eventually(
      async () => {
        const before = sent;
        await quietPeriod(300);
        return server.unwrap<GearmanWorker>().connections[0].congested && sent === before;
      },
      15_000,
      'the handler to be held by the stalled link',
    );
    const sentAtStall = sent;
    expect(sentAtStall).toBeLessThan(COUNT);
    proxy.resume();
    await expect(within(result, 60_000, 'the paced stream')).resolves.toBe('done');
    expect(received).toBe(COUNT + 1);
    console.log(
      `stream flood through ServerGearman, handler awaits ctx.sendData: peak buffered ${mb(tracker.peak)} (${tracker.peak} bytes), ` +
        `${sentAtStall} values sent before the stalled link held the handler; all ${COUNT} delivered`,
    );
    expect(tracker.peak).toBeLessThan(MiB + 64 * 1024);
  }, 90_000);

  it('ServerGearman, a hot Observable (cannot be paused): the job fails with BACKPRESSURE at maxOutgoing and the subscription ends', async () => {
    const fn = fnName('nest-flood-hot');
    const proxy = await faultProxy();
    const started = deferred();
    const go = res.gate();
    const ended = deferred();
    const text = 'c'.repeat(1024);
    let emitted = 0;
    let emittedAfterEnd = 0;
    let isEnded = false;
    @Controller()
    class HotController {
      @MessagePattern(fn)
      stream(): Observable<string> {
        started.resolve();
        // 1000 values per event-loop turn, for ever, until unsubscribed.
        return new Observable<string>((subscriber) => {
          let timer: NodeJS.Immediate | undefined;
          const tick = () => {
            for (let i = 0; i < 1000 && !subscriber.closed; i++) {
              emitted++;
              if (isEnded) emittedAfterEnd++;
              subscriber.next(text);
            }
            if (!subscriber.closed) timer = setImmediate(tick);
          };
          void go.promise.then(tick);
          return () => {
            clearImmediate(timer);
            isEnded = true;
            ended.resolve();
          };
        });
      }
    }
    const { server, logger } = await res.microservice(
      { controllers: [HotController] },
      { servers: [proxy.address], maxJobs: 1, heartbeat: false },
    );
    const worker = server.unwrap<GearmanWorker>();
    const tracker = trackPeak(worker);
    const client = res.clientProxy();
    let received = 0;
    const failed = rejection(lastValueFrom(client.send<string>(fn, {}).pipe(tap(() => received++))));
    await within(started.promise, 5000, 'the handler to start');
    proxy.stall();
    go.resolve();
    await within(ended.promise, 15_000, 'the subscription to end');
    expect(worker.activeJobs).toBe(0);
    proxy.resume();
    const err = (await within(failed, 30_000, 'the BACKPRESSURE failure')) as GearmanRpcError;
    expect(err).toBeInstanceOf(GearmanRpcError);
    expect(err.error).toMatchObject({ status: 'error', code: 'BACKPRESSURE' });
    await logger.waitFor('warn', /maxOutgoing/);
    await quietPeriod(100);
    expect(emittedAfterEnd).toBe(0);
    const cap = 32 * MiB;
    console.log(
      `stream flood through ServerGearman, hot Observable: BACKPRESSURE after ${emitted} values (${received} reached the caller); ` +
        `peak buffered ${mb(tracker.peak)} (${tracker.peak} bytes; maxOutgoing ${mb(cap)}); the subscription ended`,
    );
    expect(tracker.peak).toBeLessThanOrEqual(cap + 4 * 1024);
  }, 90_000);
});
