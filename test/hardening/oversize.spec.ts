/**
 * Issue 10 §1, poison jobs and oversized packets, against a real gearmand 1.1.20. gearmand takes a
 * payload of any size, so a job above the workers' `maxPacketSize` must fail once and touch nothing
 * else: no reconnect, no rerun of the jobs that share its connections. A result above a client's
 * limit fails only its own job; a handler's result above the worker's limit is not sent; a submit
 * above the client's limit is refused before anything is sent; function names longer than gearmand
 * handles are refused at register() and submit() (docs/gearmand-behaviour.md#function-names).
 *
 * Small limits (64 KiB) keep it fast: gearmand does not care about the size.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  type GearmanClient,
  GearmanError,
  GearmanJobError,
  type GearmanWorker,
  type WorkerJob,
} from '../../lib/engine/index.js';
import { MAX_FUNCTION_NAME_LENGTH, MAX_UNIQUE_LENGTH, PacketType, readJobAssign } from '../../lib/protocol/index.js';
import { invalidArgument, rejection, thrown } from '../support/errors.js';
import { fnName, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { RawConnection } from '../support/raw-connection.js';
import { eventually, quietPeriod, recordEvents, within } from '../support/wait.js';

const LIMIT = 64 * 1024;
const g = useGearmand();
const res = useResources(g);
const figures: string[] = [];
afterAll(() => console.log(`oversize figures:\n  ${figures.join('\n  ')}`));

/** Every event of a worker or client that says its connection went. */
function connectionLosses(emitter: GearmanWorker | GearmanClient) {
  const reconnecting = recordEvents(emitter, 'reconnecting');
  const disconnected = recordEvents(emitter, 'disconnected');
  return { count: () => reconnecting.events.length + disconnected.events.length };
}

function expectTooLarge(error: unknown): void {
  expect(error).toBeInstanceOf(GearmanError);
  expect((error as GearmanError).code).toBe('PACKET_TOO_LARGE');
  expect((error as Error).message).toMatch(/maxPacketSize/);
  expect((error as Error).message).toMatch(/[Rr]aise maxPacketSize/);
}

describe('a poison job: a payload above the workers’ maxPacketSize', () => {
  it('fails once, with both workers keeping their connections and their other jobs, and they serve on', async () => {
    const fn = fnName('poison');
    const runs = new Map<string, number>();
    const release = res.gate();
    const running = { w1: res.gate(), w2: res.gate() };
    // Each worker serves the poison job's function and one of its own, whose job stays running on
    // the same connection while the poison job goes by.
    const workers = (['w1', 'w2'] as const).map((id) => {
      const worker = res.worker({ maxPacketSize: LIMIT, maxJobs: 2 });
      const handler = async (job: WorkerJob) => {
        const key = job.payload.toString();
        runs.set(key, (runs.get(key) ?? 0) + 1);
        if (key.startsWith('innocent')) {
          running[id].resolve();
          await release.promise;
        }
        return `done ${key}`;
      };
      worker.register(fn, handler).register(`${fn}.${id}`, handler);
      return worker;
    });
    const losses = workers.map(connectionLosses);
    const errors: Error[] = [];
    const firstError = res.gate();
    for (const w of workers)
      w.on('error', (e) => {
        errors.push(e);
        firstError.resolve();
      });
    await Promise.all(workers.map((w) => w.start()));
    const client = await res.client();
    const admin = res.admin();

    const innocent = [client.run(`${fn}.w1`, 'innocent-1'), client.run(`${fn}.w2`, 'innocent-2')];
    await within(Promise.all([running.w1.promise, running.w2.promise]), 5000, 'an innocent job running on each worker');

    // One byte above the workers' limit: gearmand takes it.
    const big = Buffer.alloc(LIMIT + 1, 0x62);
    await within(client.submit(fn, big, { background: true }).created(), 5000, 'JOB_CREATED of the big job');
    await within(firstError.promise, 5000, 'a worker failing the big job');
    await eventually(async () => (await functionStatus(admin, fn)).total === 0, 5000, 'the big job gone from gearmand');

    // A foreground caller of such a job gets the failure, not a wait without end.
    const started = performance.now();
    const failure = await within(rejection(client.run(fn, big)), 5000, 'the foreground caller of the big job');
    const failedInMs = Math.round(performance.now() - started);
    expect(failure).toBeInstanceOf(GearmanJobError);
    expect((failure as GearmanJobError).code).toBe('JOB_EXCEPTION');
    expect((failure as GearmanJobError).data!.toString()).toMatch(
      /too large for this worker: JOB_ASSIGN_UNIQ of \d+ bytes, above its maxPacketSize of 65536.*Raise maxPacketSize/,
    );

    release.resolve();
    await expect(Promise.all(innocent)).resolves.toEqual([
      Buffer.from('done innocent-1'),
      Buffer.from('done innocent-2'),
    ]);
    await expect(client.run(fn, 'later-1')).resolves.toEqual(Buffer.from('done later-1'));
    await expect(client.run(fn, 'later-2')).resolves.toEqual(Buffer.from('done later-2'));

    // One failure (and one log line) per big job, nothing run twice, no connection lost.
    expect(errors.map((e) => (e as GearmanError).code)).toEqual(['PACKET_TOO_LARGE', 'PACKET_TOO_LARGE']);
    expect(Object.fromEntries(runs)).toEqual({ 'innocent-1': 1, 'innocent-2': 1, 'later-1': 1, 'later-2': 1 });
    const reconnects = losses.map((l) => l.count());
    expect(reconnects).toEqual([0, 0]);
    const reruns = [...runs.values()].reduce((sum, n) => sum + n - 1, 0);
    expect((await functionStatus(admin, fn)).total).toBe(0);
    figures.push(
      `poison job (${big.length} bytes, workers' maxPacketSize ${LIMIT}): each submit failed once ` +
        `(${errors.length} failures for 2 submits, the foreground caller's in ${failedInMs} ms); ` +
        `reconnects W1 ${reconnects[0]}, W2 ${reconnects[1]}; reruns of bystander jobs ${reruns}`,
    );
  });

  it('is answered with WORK_FAIL for a function with errorMode "fail"', async () => {
    const fn = fnName('poison-fail');
    const worker = res.worker({ maxPacketSize: LIMIT });
    const errors = recordEvents(worker, 'error');
    let runs = 0;
    worker.register(fn, () => void runs++, { errorMode: 'fail' });
    await worker.start();
    const client = await res.client();
    const failure = await within(rejection(client.run(fn, Buffer.alloc(LIMIT))), 5000, 'the big job');
    expect((failure as GearmanJobError).code).toBe('JOB_FAILED');
    expect(runs).toBe(0);
    expect(errors.events).toHaveLength(1);
    expectTooLarge(errors.events[0].args[0]);
  });
});

describe('a result above the client’s maxPacketSize', () => {
  it('fails that job alone with PACKET_TOO_LARGE; a bystander on the same connection completes', async () => {
    const fn = fnName('big-result');
    const release = res.gate();
    const running = res.gate();
    const worker = res.worker({ maxJobs: 3 });
    worker.register(fn, async (job) => {
      const key = job.payload.toString();
      if (key === 'bystander') {
        running.resolve();
        await release.promise;
        return 'small';
      }
      if (key === 'big-data') {
        await job.sendData(Buffer.alloc(LIMIT, 0x64));
        return 'ignored';
      }
      return Buffer.alloc(LIMIT, 0x72);
    });
    await worker.start();
    const client = await res.client({ maxPacketSize: LIMIT });
    const losses = connectionLosses(client);
    const bystander = client.run(fn, 'bystander');
    await within(running.promise, 5000, 'the bystander running');

    const error = await within(rejection(client.run(fn, 'big')), 5000, 'the big result');
    expectTooLarge(error);
    expect(error.message).toMatch(
      /too large for this client: WORK_COMPLETE of \d+ bytes, above its maxPacketSize of 65536/,
    );
    // A WORK_DATA too large fails its job too; the job's later WORK_COMPLETE finds nobody.
    const dataError = await within(rejection(client.run(fn, 'big-data')), 5000, 'the big WORK_DATA');
    expectTooLarge(dataError);
    expect(dataError.message).toMatch(/WORK_DATA/);

    release.resolve();
    await expect(bystander).resolves.toEqual(Buffer.from('small'));
    await expect(client.run(fn, 'big', { timeout: 5000 }).catch((e: GearmanError) => e.code)).resolves.toBe(
      'PACKET_TOO_LARGE',
    );
    expect(losses.count()).toBe(0);
  });
});

describe('a handler result above the worker’s maxPacketSize', () => {
  it('is not sent: the job fails with a clear error, once, even with retry; bystanders are untouched', async () => {
    const fn = fnName('big-handler-result');
    const release = res.gate();
    const running = res.gate();
    const worker = res.worker({ maxPacketSize: LIMIT, maxJobs: 3 });
    const jobErrors = recordEvents(worker, 'jobError');
    const runs = new Map<string, number>();
    let dataRefusal: unknown;
    worker.register(fn, async (job) => {
      const key = job.payload.toString();
      runs.set(key, (runs.get(key) ?? 0) + 1);
      if (key === 'bystander') {
        running.resolve();
        await release.promise;
        return 'small';
      }
      if (key === 'big-data') {
        // Refused before anything is sent; the job goes on.
        dataRefusal = thrown(() => void job.sendData(Buffer.alloc(LIMIT)));
        return 'streamed nothing';
      }
      return Buffer.alloc(LIMIT); // with the handle, above the limit
    });
    await worker.start();
    const workerLosses = connectionLosses(worker);
    // The client's limit is likely the same as the worker's: today such a result dropped its connection.
    const client = await res.client({ maxPacketSize: LIMIT });
    const clientLosses = connectionLosses(client);
    const bystander = client.run(fn, 'bystander');
    await within(running.promise, 5000, 'the bystander running');

    const error = await within(
      rejection(client.run(fn, 'big', { unique: fnName('u'), retry: true })),
      5000,
      'the job with the big result',
    );
    expect(error).toBeInstanceOf(GearmanJobError);
    expect((error as GearmanJobError).code).toBe('JOB_EXCEPTION');
    expect((error as GearmanJobError).data!.toString()).toMatch(
      /WORK_COMPLETE of \d+ bytes is above this worker's maxPacketSize of 65536, so it was not sent.*Raise maxPacketSize/,
    );
    expect(jobErrors.events).toHaveLength(1);
    expectTooLarge(jobErrors.events[0].args[0]);

    await expect(client.run(fn, 'big-data')).resolves.toEqual(Buffer.from('streamed nothing'));
    expectTooLarge(dataRefusal);

    release.resolve();
    await expect(bystander).resolves.toEqual(Buffer.from('small'));
    expect(Object.fromEntries(runs)).toEqual({ bystander: 1, big: 1, 'big-data': 1 });
    expect(workerLosses.count() + clientLosses.count()).toBe(0);
  });
});

describe('a reply above the limit', () => {
  it('fails its own request with PACKET_TOO_LARGE; the connection stays, in step', async () => {
    const client = await res.client({ maxPacketSize: LIMIT });
    const losses = connectionLosses(client);
    expectTooLarge(await within(rejection(client.echo(g.address, Buffer.alloc(LIMIT + 1))), 5000, 'the big ECHO_RES'));
    await expect(client.echo(g.address, 'after')).resolves.toBeGreaterThanOrEqual(0);
    expect(losses.count()).toBe(0);
  });
});

describe('a submit above the client’s maxPacketSize', () => {
  it('throws PACKET_TOO_LARGE before anything is sent: gearmand never hears of the job', async () => {
    const fn = fnName('big-submit');
    const client = await res.client({ maxPacketSize: LIMIT });
    const big = Buffer.alloc(LIMIT);
    for (const submit of [
      () => client.submit(fn, big),
      () => client.submit(fn, big, { background: true }),
      () => client.run(fn, big.toString('latin1'), { unique: 'u' }),
    ]) {
      const error = thrown(submit);
      expectTooLarge(error);
      expect(error.message).toMatch(/nothing was sent/);
    }
    await quietPeriod(100);
    expect(await functionStatus(res.admin(), fn)).toEqual({ total: 0, running: 0, workers: 0 });
    // At the limit exactly, it goes.
    const fits = Buffer.alloc(LIMIT - Buffer.byteLength(fn) - 2);
    await expect(within(client.submit(fn, fits).created(), 5000, 'JOB_CREATED')).resolves.toMatch(/^H:/);
  });
});

describe('function names: gearmand 1.1.20 handles at most MAX_FUNCTION_NAME_LENGTH bytes', () => {
  const atLimit = fnName('limit').padEnd(MAX_FUNCTION_NAME_LENGTH, 'f');

  it('refuses longer names at register() and submit(), in UTF-8 bytes, naming the limit', async () => {
    const client = await res.client();
    const worker = res.worker();
    for (const name of ['f'.repeat(MAX_FUNCTION_NAME_LENGTH + 1), 'é'.repeat(MAX_FUNCTION_NAME_LENGTH / 2 + 1)]) {
      for (const error of [
        invalidArgument(() => worker.register(name, () => 'x')),
        invalidArgument(() => client.submit(name, 'x')),
      ]) {
        expect(error.message).toContain(
          `${Buffer.byteLength(name)} bytes (UTF-8), above the ${MAX_FUNCTION_NAME_LENGTH} bytes`,
        );
      }
    }
    expect(worker.functionNames).toEqual([]);
    invalidArgument(() => client.submit('f', 'x', { reducer: 'r'.repeat(65) }));
  });

  it('works end to end at the limit, with the longest handle, unique and reducer gearmand sends', async () => {
    // Handles of 63 bytes, the most gearmand stores: `<61 p>:<n>`.
    const server = await res.gearmand({ args: ['--job-handle-prefix', 'p'.repeat(61)] });
    const client = await res.client({ servers: server.address });
    const seen: { handle: number; reducer?: string }[] = [];
    const worker = res.worker({ servers: server.address, grab: 'all' });
    worker.register(atLimit, (job) => {
      seen.push({ handle: job.handle.length, reducer: job.reducer });
      return `ok ${job.payload.toString()}`;
    });
    const losses = connectionLosses(worker);
    await worker.start();
    const unique = (s: string) => s.repeat(MAX_UNIQUE_LENGTH);
    await expect(client.run(atLimit, 'plain', { unique: unique('a') })).resolves.toEqual(Buffer.from('ok plain'));
    await expect(client.run(atLimit, 'reduce', { unique: unique('b'), reducer: 'r'.repeat(64) })).resolves.toEqual(
      Buffer.from('ok reduce'),
    );
    expect(seen).toEqual([{ handle: 63 }, { handle: 63, reducer: 'r'.repeat(64) }]);
    expect(losses.count()).toBe(0);
  });

  it('(gearmand itself) drops a worker whose JOB_ASSIGN_ALL would be one byte longer, and a SUBMIT of a name of 8192 bytes', async () => {
    const server = await res.gearmand({ args: ['--job-handle-prefix', 'p'.repeat(61)] });
    const open = async () => {
      const raw = await RawConnection.open(server.port);
      res.defer(() => raw.close());
      return raw;
    };
    const submitter = await open();
    const assigned: Record<number, string> = {};
    for (const length of [MAX_FUNCTION_NAME_LENGTH, MAX_FUNCTION_NAME_LENGTH + 1]) {
      const name = 'g'.repeat(length);
      submitter.send(PacketType.SUBMIT_REDUCE_JOB_BACKGROUND, [name, 'u'.repeat(63), 'r'.repeat(64), '', 'x']);
      const [handle] = await submitter.expect(PacketType.JOB_CREATED);
      expect(handle.length).toBe(63);
      const worker = await open();
      worker.send(PacketType.CAN_DO, [name]);
      worker.send(PacketType.GRAB_JOB_ALL, []);
      assigned[length] = await worker.next().then(
        (p) =>
          `${readJobAssign(p).functionName.length} ${p.type === PacketType.JOB_ASSIGN_ALL ? 'JOB_ASSIGN_ALL' : p.type}`,
        (e: Error) => e.message,
      );
    }
    expect(assigned).toEqual({
      [MAX_FUNCTION_NAME_LENGTH]: `${MAX_FUNCTION_NAME_LENGTH} JOB_ASSIGN_ALL`,
      [MAX_FUNCTION_NAME_LENGTH + 1]: 'gearmand closed the connection',
    });
    // Its receive buffer: a NUL-terminated argument of 8192 bytes with its NUL never fits.
    const results: Record<number, string> = {};
    for (const length of [8191, 8192]) {
      const raw = await open();
      raw.send(PacketType.SUBMIT_JOB_BG, ['s'.repeat(length), '', 'x']);
      results[length] = await raw.next().then(
        (p) => (p.type === PacketType.JOB_CREATED ? 'JOB_CREATED' : String(p.type)),
        (e: Error) => e.message,
      );
    }
    expect(results).toEqual({ 8191: 'JOB_CREATED', 8192: 'gearmand closed the connection' });
  });
});

@Controller()
class OversizeController {
  static calls = 0;

  @MessagePattern('oversize.nest')
  handle(@Payload() data: string) {
    OversizeController.calls++;
    return data.length;
  }
}

describe('the Nest transport', () => {
  it('runs no handler for a job above the server’s maxPacketSize; the caller gets the failure, the log says why', async () => {
    const { logger } = await res.microservice({ controllers: [OversizeController] }, { maxPacketSize: LIMIT });
    const client = res.clientProxy();
    const error = await within(
      rejection(lastValueFrom(client.send('oversize.nest', 'x'.repeat(LIMIT)))),
      5000,
      'the big send',
    );
    expect(`${error.message} ${JSON.stringify(error)}`).toMatch(/above its maxPacketSize of 65536/);
    await expect(lastValueFrom(client.send('oversize.nest', 'small'))).resolves.toBe(5);
    expect(OversizeController.calls).toBe(1);
    expect(logger.find('warn', /maxPacketSize/)).toHaveLength(1);
  });
});
