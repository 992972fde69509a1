/**
 * Recovery against real gearmand processes: the server crashes (SIGKILL) and comes back on the same
 * port, a worker process dies mid-job, or there is no server at all. Everything must recover by
 * itself, fail fast with a typed error, or stop cleanly: never hang.
 */
import { fileURLToPath } from 'node:url';
import {
  GearmanClient,
  GearmanConnectionError,
  GearmanError,
  GearmanWorker,
  type WorkerJob,
} from '../../lib/engine/index.js';
import { fnName, useResources } from '../support/harness.js';
import { freePort } from '../support/servers.js';
import { rejection } from '../support/errors.js';
import { deferred, quietPeriod, recordEvents, waitForCount, waitForEvent, within } from '../support/wait.js';

const FAST_RECONNECT = { initialDelay: 50, maxDelay: 500 };
const SLOW_WORKER = fileURLToPath(new URL('../support/fixtures/slow-worker.ts', import.meta.url));

const res = useResources();
/** Recovery times, printed once at the end. */
const measured: string[] = [];

afterAll(() => {
  if (measured.length > 0) console.log(`recovery times:\n  ${measured.join('\n  ')}`);
});

function client(servers: string[], options: ConstructorParameters<typeof GearmanClient>[0] = {}): GearmanClient {
  const c = new GearmanClient({ servers, reconnect: FAST_RECONNECT, connectTimeout: 3000, ...options });
  res.defer(() => c.close());
  return c;
}

function worker(servers: string[], options: ConstructorParameters<typeof GearmanWorker>[0] = {}): GearmanWorker {
  const w = new GearmanWorker({ servers, reconnect: FAST_RECONNECT, connectTimeout: 3000, ...options });
  res.defer(() => w.close(500));
  return w;
}

function expectConnectionError(error: unknown, code: string, server?: string): void {
  expect(error).toBeInstanceOf(GearmanConnectionError);
  expect((error as GearmanConnectionError).code).toBe(code);
  if (server) expect((error as GearmanConnectionError).server).toBe(server);
}

describe('gearmand killed (SIGKILL) and restarted on the same port', () => {
  it('client and worker reconnect by themselves and jobs flow again within a few seconds', async () => {
    const server = await res.gearmand();
    const fn = fnName('flow');
    const c = client([server.address]);
    const w = worker([server.address], { maxJobs: 4 });
    w.register(fn, (job) => `ok:${job.payload.toString()}`);
    await Promise.all([c.connect(), w.start()]);
    expect((await c.run(fn, 'before')).toString()).toBe('ok:before');

    for (let cycle = 1; cycle <= 2; cycle++) {
      const clientDown = waitForEvent(c, 'disconnected', { what: 'the client to see the server die' });
      const workerDown = waitForEvent(w, 'disconnected', { what: 'the worker to see the server die' });
      await server.kill();
      await Promise.all([clientDown, workerDown]);

      const clientUp = waitForEvent(c, 'connected', { timeoutMs: 5000, what: 'the client to reconnect' });
      const workerUp = waitForEvent(w, 'connected', { timeoutMs: 5000, what: 'the worker to reconnect' });
      // Timed from the restart() call: gearmand's own start-up is part of the recovery time.
      const restarted = performance.now();
      const since = () => Math.round(performance.now() - restarted);
      await server.restart();
      const answeredAt = since();

      // Submitted at once: parked until the client is connected again, run once the worker re-registered.
      const first = c.run(fn, `after-${cycle}`);
      const [clientAt, workerAt] = await Promise.all([clientUp.then(since), workerUp.then(since)]);
      expect((await within(first, 5000, 'the first job after the restart')).toString()).toBe(`ok:after-${cycle}`);
      const firstJobAt = since();
      measured.push(
        `gearmand restart #${cycle}: gearmand answered after ${answeredAt} ms, client connected after ${clientAt} ms, ` +
          `worker after ${workerAt} ms, first job completed after ${firstJobAt} ms`,
      );
      expect(firstJobAt).toBeLessThan(3000);

      // And jobs keep flowing.
      const payloads = Array.from({ length: 20 }, (_, i) => `p${cycle}-${i}`);
      const results = await within(Promise.all(payloads.map((p) => c.run(fn, p))), 5000, '20 jobs after the restart');
      expect(results.map(String)).toEqual(payloads.map((p) => `ok:${p}`));
    }
  });

  it('fails a foreground job in flight at once with CONNECTION_LOST, whether it was running or queued', async () => {
    const server = await res.gearmand();
    const fn = fnName('inflight');
    const idle = fnName('no-worker');
    const c = client([server.address]);
    const w = worker([server.address]);
    const started = deferred<WorkerJob>();
    const never = res.gate<string>();
    w.register(fn, (job) => {
      started.resolve(job);
      return never.promise;
    });
    await Promise.all([c.connect(), w.start()]);

    const running = c.submit(fn, 'running');
    const queued = c.submit(idle, 'queued'); // no worker for it: stays queued
    const runningFailed = rejection(running.result());
    const queuedFailed = rejection(queued.result());
    await within(started.promise, 5000, 'the worker to start the job');
    await queued.created();

    const killedAt = performance.now();
    await server.kill();
    const [e1, e2] = await within(Promise.all([runningFailed, queuedFailed]), 1000, 'the jobs to fail after the kill');
    const failedAfter = Math.round(performance.now() - killedAt);
    measured.push(`in-flight foreground jobs failed ${failedAfter} ms after the SIGKILL`);

    expectConnectionError(e1, 'CONNECTION_LOST', server.address);
    expectConnectionError(e2, 'CONNECTION_LOST', server.address);
    expect(running.state).toBe('failed');
    expect(queued.state).toBe('failed');
  });

  it('fails jobs whose JOB_CREATED had not arrived yet with CONNECTION_LOST too (none hangs)', async () => {
    const server = await res.gearmand();
    const c = client([server.address]);
    await c.connect();
    const fn = fnName('racing');
    // Submitted in the same turn as the kill: some reach gearmand, some die in the socket.
    const jobs = Array.from({ length: 50 }, (_, i) => c.submit(fn, `x${i}`));
    const errors = jobs.map((j) => rejection(j.result()));
    await server.kill();
    for (const error of await within(Promise.all(errors), 1000, 'all 50 jobs to fail')) {
      expectConnectionError(error, 'CONNECTION_LOST', server.address);
    }
  });

  it('resubmits a job with a unique and retry:true on the other server when its server dies, and it completes', async () => {
    const servers = await Promise.all([res.gearmand(), res.gearmand()]);
    const addresses = servers.map((s) => s.address);
    const fn = fnName('retry');
    const firstRun = deferred<string>();
    const never = res.gate<string>();
    const runs: string[] = [];
    const w = worker(addresses, { maxJobs: 2 });
    w.register(fn, (job) => {
      runs.push(job.server);
      if (runs.length === 1) {
        firstRun.resolve(job.server);
        return never.promise; // the first run hangs until its server dies
      }
      return `done:${job.payload.toString()}@${job.server}`;
    });
    const c = client(addresses);
    await Promise.all([c.connect(), w.start()]);
    await Promise.all([...c.connections, ...w.connections].map((conn) => conn.waitConnected(3000)));

    const job = c.submit(fn, 'important', { unique: 'retry-me', retry: true });
    const created = recordEvents(job, 'created');
    const firstServer = await within(firstRun.promise, 5000, 'the first run to start');
    expect(job.server).toBe(firstServer);
    const victim = servers.find((s) => s.address === firstServer)!;
    const survivor = addresses.find((a) => a !== firstServer)!;

    const killedAt = performance.now();
    await victim.kill();
    const result = await within(job.result(), 5000, 'the retried job to complete');
    measured.push(
      `retry:true job completed on the other server ${Math.round(performance.now() - killedAt)} ms after the SIGKILL`,
    );

    expect(result.toString()).toBe(`done:important@${survivor}`);
    expect(job.server).toBe(survivor);
    expect(created.events).toHaveLength(2);
    expect(runs).toEqual([firstServer, survivor]);
  });

  it('with one server, retry:true resubmits the lost job to that server once it is back (the crash lost it)', async () => {
    const server = await res.gearmand();
    const fn = fnName('retry-same');
    const firstRun = deferred<void>();
    const never = res.gate<string>();
    const runs: string[] = [];
    // maxJobs 2: the first run's handler is still running (it cannot report), the retry needs a slot.
    const w = worker([server.address], { maxJobs: 2 });
    w.register(fn, (job) => {
      runs.push(job.handle);
      if (runs.length === 1) {
        firstRun.resolve();
        return never.promise;
      }
      return `done:${job.payload.toString()}`;
    });
    const c = client([server.address]);
    await Promise.all([c.connect(), w.start()]);

    const job = c.submit(fn, 'again', { unique: 'retry-same-server', retry: true });
    const created = recordEvents(job, 'created');
    await within(firstRun.promise, 5000, 'the first run to start');
    await server.kill();
    await server.restart();
    const restartedAt = performance.now();
    const result = await within(job.result(), 5000, 'the resubmitted job to complete');
    measured.push(
      `retry:true job resubmitted to its restarted server completed ${Math.round(performance.now() - restartedAt)} ms after the restart`,
    );
    expect(result.toString()).toBe('done:again');
    expect(created.events).toHaveLength(2);
    expect(runs).toHaveLength(2);
  });
});

describe('a worker process killed (SIGKILL) mid-job', () => {
  it('gearmand requeues the job, another worker completes it, and the client sees exactly one completion', async () => {
    const server = await res.gearmand();
    const fn = fnName('crash');
    const slow = res.tsx(SLOW_WORKER, [fn, server.address]);
    await slow.line('READY', 15_000);

    const c = client([server.address]);
    await c.connect();
    const job = c.submit(fn, 'hello');
    const completions = recordEvents(job, 'complete');
    const failures = recordEvents(job, 'fail');
    const got = await slow.line('GOT ', 5000);
    const handle = await job.created();
    expect(got).toBe(`GOT ${handle} hello`);

    // The replacement worker starts only now, so the crashed one certainly had the job first.
    const runs: { handle: string; payload: string }[] = [];
    const w = worker([server.address]);
    w.register(fn, (j) => {
      runs.push({ handle: j.handle, payload: j.payload.toString() });
      return j.payload.toString().split('').reverse().join('');
    });
    await w.start();

    const killedAt = performance.now();
    await slow.kill();
    const result = await within(job.result(), 5000, 'the requeued job to complete');
    measured.push(
      `job of a SIGKILLed worker completed by another worker ${Math.round(performance.now() - killedAt)} ms after the kill`,
    );

    expect(result.toString()).toBe('olleh');
    // See docs/gearmand-behaviour.md#lost-workers: requeued under the same handle, run once more
    // (by the in-process worker only).
    expect(runs).toEqual([{ handle, payload: 'hello' }]);
    await quietPeriod(200); // bounded window: nothing more may arrive for this job
    expect(completions.events).toHaveLength(1);
    expect(failures.events).toHaveLength(0);
    const admin = res.admin({ servers: [server.address] });
    expect((await admin.status()).find((r) => r.function === fn)?.total ?? 0).toBe(0);
  });
});

describe('no gearmand listening', () => {
  const BACKOFF = { initialDelay: 20, maxDelay: 100, factor: 2 }; // default jitter (20 %)

  /** Each attempt's delay lies within the jitter band around its base, and never above maxDelay. */
  function expectBackoff(events: { args: unknown[] }[], count: number): void {
    const attempts = events.slice(0, count).map((e) => e.args[1] as number);
    const delays = events.slice(0, count).map((e) => e.args[2] as number);
    expect(attempts).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    delays.forEach((delay, i) => {
      const base = Math.min(BACKOFF.maxDelay, BACKOFF.initialDelay * BACKOFF.factor ** i);
      expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
      expect(delay).toBeLessThanOrEqual(Math.min(BACKOFF.maxDelay, Math.ceil(base * 1.2)));
    });
    // Growing: 20 → 40 → 80 bases do not overlap even with jitter.
    expect(delays[0]).toBeLessThan(delays[1]);
    expect(delays[1]).toBeLessThan(delays[2]);
  }

  it('client.connect() rejects with NO_SERVER within connectTimeout, retries with growing capped delays, and close() stops it', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const c = new GearmanClient({ servers: [address], connectTimeout: 300, reconnect: BACKOFF });
    res.defer(() => c.close());
    const reconnecting = recordEvents(c, 'reconnecting');

    const started = performance.now();
    const error = await rejection(c.connect());
    const elapsed = performance.now() - started;
    expectConnectionError(error, 'NO_SERVER');
    expect((error as GearmanError).message).toContain(address);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1000);

    // It keeps trying in the background.
    await waitForCount(c, 'reconnecting', reconnecting, 7, 3000);
    expectBackoff(reconnecting.events, 7);

    await c.close();
    const seen = reconnecting.events.length;
    await quietPeriod(300); // three maxDelays: an attempt would have happened by now
    expect(reconnecting.events.length).toBe(seen);
    expect(c.connections.every((conn) => conn.state === 'closed')).toBe(true);
  });

  it('a submit fails with NO_SERVER after connectTimeout instead of hanging', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const c = new GearmanClient({ servers: [address], connectTimeout: 300, reconnect: BACKOFF });
    res.defer(() => c.close());
    const started = performance.now();
    const error = await within(rejection(c.run(fnName('nowhere'), 'x', { unique: 'u1' })), 2000, 'the submit to fail');
    expectConnectionError(error, 'NO_SERVER');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('worker.start() rejects with NO_SERVER and keeps retrying until close()', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const w = new GearmanWorker({ servers: [address], connectTimeout: 300, reconnect: BACKOFF });
    res.defer(() => w.close(100));
    w.register('anything', () => 'x');
    const reconnecting = recordEvents(w, 'reconnecting');
    expectConnectionError(await rejection(w.start()), 'NO_SERVER');
    await waitForCount(w, 'reconnecting', reconnecting, 5, 3000);
    expectBackoff(reconnecting.events, 5);
    await w.close(100);
    const seen = reconnecting.events.length;
    await quietPeriod(300);
    expect(reconnecting.events.length).toBe(seen);
  });

  it('close() while connect() is still trying rejects connect() promptly and stops reconnecting', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const c = new GearmanClient({ servers: [address], connectTimeout: 5000, reconnect: BACKOFF });
    res.defer(() => c.close());
    const reconnecting = recordEvents(c, 'reconnecting');
    const connecting = rejection(c.connect());
    await waitForCount(c, 'reconnecting', reconnecting, 2, 3000);
    const closedAt = performance.now();
    await c.close();
    const error = await within(connecting, 1000, 'connect() to reject after close()');
    expect(performance.now() - closedAt).toBeLessThan(500);
    expectConnectionError(error, 'CLOSED');
    const seen = reconnecting.events.length;
    await quietPeriod(300);
    expect(reconnecting.events.length).toBe(seen);
  });

  it('a server that appears later is picked up by a client that failed to connect', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const c = new GearmanClient({ servers: [address], connectTimeout: 300, reconnect: BACKOFF });
    res.defer(() => c.close());
    expectConnectionError(await rejection(c.connect()), 'NO_SERVER');

    const up = waitForEvent(c, 'connected', { timeoutMs: 5000 });
    const startedAt = performance.now();
    await res.gearmand({ port });
    await up;
    measured.push(
      `client that failed connect() was connected ${Math.round(performance.now() - startedAt)} ms after the late gearmand was spawned`,
    );
    const w = worker([address]);
    const fn = fnName('late');
    w.register(fn, () => 'late-ok');
    await w.start();
    expect((await within(c.run(fn), 5000, 'a job on the late server')).toString()).toBe('late-ok');
  });
});
