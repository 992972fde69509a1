/**
 * Hardening (issue 10, sections 4 and 6): what timeouts, cancel and retry mean, and closing the
 * client, against a real gearmand 1.1.20. The fault proxy (test/support/fault-proxy.ts) cuts the
 * client's link where a test needs it; workers connect directly, so only the client is cut.
 *
 * - A burst of submits whose JOB_CREATED comes after submitTimeout: those jobs are cancelled while
 *   queued, so (almost) none runs after its caller got TIMEOUT.
 * - retry is at-least-once, and the avoidable duplicates are avoided: after a cut, the resubmit
 *   goes to the job's own server once it is back (merging there with the original), and to another
 *   server only when its own is gone.
 * - Cancelling (or unsubscribing) one caller of a coalesced job detaches that caller only.
 * - job() of a background or epoch record completes once the job is created.
 * - Timeouts are whole milliseconds from 1 (0 for close) to 2^31 - 1; anything else is INVALID_ARGUMENT.
 * - ClientGearman.close() drains: calls in flight may finish, new ones fail at once with CLOSED,
 *   the rest fail with CLOSED after closeTimeout.
 */
import 'reflect-metadata';
import { lastValueFrom, toArray } from 'rxjs';
import {
  GearmanCancelledError,
  type GearmanAdmin,
  GearmanClient,
  type GearmanError,
  GearmanWorker,
} from '../../lib/engine/index.js';
import { ServerPool } from '../../lib/engine/server-pool.js';
import { ClientGearman, GearmanRecord, GearmanRecordBuilder, ServerGearman } from '../../lib/index.js';
import { invalidArgument, rejection } from '../support/errors.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { fnName, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, quietPeriod, within } from '../support/wait.js';

const BACKOFF = { initialDelay: 20, maxDelay: 200 };
const figures: string[] = [];
const g = useGearmand();
const res = useResources(g);

afterAll(() => console.log(`client semantics figures:\n  ${figures.join('\n  ')}`));

async function faultProxy(target = g.address): Promise<FaultProxy> {
  const proxy = await FaultProxy.start(target);
  res.defer(() => proxy.close());
  return proxy;
}

/** A unique the client's hash ring gives to `address`. */
function uniqueOwnedBy(client: GearmanClient, address: string, prefix: string): string {
  const pool = new ServerPool(client.connections);
  for (let i = 0; ; i++) if (pool.owner(`${prefix}-${i}`).address === address) return `${prefix}-${i}`;
}

/** gearmand's row for a handle in `show jobs` (cancelled jobs linger, marked ignored, until a GRAB drops them). */
async function jobRow(admin: GearmanAdmin, handle: string) {
  return (await admin.showJobs()).find((j) => j.handle === handle);
}

const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (e: GearmanError) => e.code,
  );

describe('submitTimeout: a job created after its caller got TIMEOUT is taken back', () => {
  it('of 5000 submits with a 5 ms submitTimeout and a worker slower than the submits, almost none runs after TIMEOUT', async () => {
    const fn = fnName('burst');
    const N = 5000;
    const ran: { index: number; at: number }[] = [];
    const worker = res.worker({ maxJobs: 4 });
    worker.register(fn, async (job) => {
      ran.push({ index: Number(job.payload.toString()), at: performance.now() });
      await new Promise((resolve) => setTimeout(resolve, 1));
      return 'ok';
    });
    await worker.start();
    const client = await res.client({ submitTimeout: 5 });
    const admin = res.admin();

    // Submitted in one turn: no JOB_CREATED can be read before the loop ends, so most deadlines pass first.
    const timedOutAt = new Map<number, number>();
    const answers = Array.from({ length: N }, (_, i) =>
      client.run(fn, String(i)).then(
        () => 'ok',
        (e: GearmanError) => {
          if (e.code === 'TIMEOUT') timedOutAt.set(i, performance.now());
          return e.code;
        },
      ),
    );
    const codes = await within(Promise.all(answers), 30_000, 'every caller to get an answer');
    expect(codes.filter((c) => c !== 'ok' && c !== 'TIMEOUT')).toEqual([]);
    // Cancelled jobs stay counted until a worker's GRAB drops them: wait for the queue to empty.
    await eventually(async () => (await functionStatus(admin, fn)).total === 0, 30_000, 'the queue to drain');

    const runAfterTimeout = ran.filter((r) => (timedOutAt.get(r.index) ?? Infinity) < r.at).length;
    figures.push(
      `burst: ${N} submits, submitTimeout 5 ms: ${timedOutAt.size} TIMEOUT, ${ran.length} jobs ran, ` +
        `${runAfterTimeout} of them after their caller got TIMEOUT`,
    );
    expect(timedOutAt.size).toBeGreaterThan(N / 2);
    // Only jobs a worker grabbed before the client read their JOB_CREATED (before: 87 % of them ran).
    expect(runAfterTimeout).toBeLessThanOrEqual(Math.ceil(timedOutAt.size / 100));
  }, 90_000);

  it('with no worker during the burst, none of the jobs whose caller got TIMEOUT runs later', async () => {
    const fn = fnName('burst-queued');
    const N = 2000;
    const client = await res.client({ submitTimeout: 5 });
    const admin = res.admin();
    const jobs = Array.from({ length: N }, (_, i) => client.submit(fn, String(i)));
    const codes = await within(Promise.all(jobs.map((j) => codeOf(j.created()))), 10_000, 'JOB_CREATED or TIMEOUT');
    const timedOut = jobs.filter((_, i) => codes[i] === 'TIMEOUT');
    expect(timedOut.length).toBeGreaterThan(N / 2);
    // Every late JOB_CREATED came: the timed-out jobs learnt their handle, and gearmand marks them cancelled.
    await eventually(
      async () => {
        const ignored = new Set((await admin.showJobs()).filter((r) => r.ignoreJob).map((r) => r.handle));
        return timedOut.every((j) => j.handle !== undefined && ignored.has(j.handle));
      },
      10_000,
      'every timed-out job to be cancelled on gearmand',
    );

    const ran = new Set<string>();
    const worker = res.worker({ maxJobs: 8 });
    worker.register(fn, (job) => {
      ran.add(job.payload.toString());
      return 'done';
    });
    await worker.start();
    await eventually(async () => (await functionStatus(admin, fn)).total === 0, 15_000, 'the queue to drain');
    const lateRuns = jobs.filter((_, i) => codes[i] === 'TIMEOUT' && ran.has(String(i))).length;
    figures.push(`burst, no worker: ${timedOut.length} of ${N} TIMEOUT, ${lateRuns} ran once a worker came`);
    expect(lateRuns).toBe(0);
    expect(ran.size).toBe(N - timedOut.length);
    const created = jobs.filter((_, i) => codes[i] === 'ok');
    await within(Promise.all(created.map((j) => j.result())), 10_000, 'the jobs created in time to complete');
  }, 60_000);
});

describe('retry is at-least-once; a cut resubmits to the job’s own server', () => {
  /** Two gearmands: A behind a fault proxy for the client (the worker connects directly), B direct. */
  async function twoServers() {
    const b = await res.gearmand();
    const proxyA = await faultProxy();
    const client = await res.client({ servers: [proxyA.address, b.address], reconnect: BACKOFF, connectTimeout: 2000 });
    client.on('error', () => undefined);
    const worker = res.worker({ servers: [g.address, b.address], maxJobs: 4, reconnect: BACKOFF });
    const runs: string[] = [];
    return { b, proxyA, client, worker, runs, adminA: res.admin({ servers: [g.address] }) };
  }

  it('a job that completed just before the cut runs again, on its own server and not on the other one', async () => {
    const { b, proxyA, client, worker, runs, adminA } = await twoServers();
    const fn = fnName('retry-done');
    const started = deferred();
    const release = res.gate();
    worker.register(fn, async (job) => {
      runs.push(job.server);
      if (runs.length === 1) {
        started.resolve();
        await release.promise;
      }
      return `done:${runs.length}`;
    });
    await worker.start();
    const unique = uniqueOwnedBy(client, proxyA.address, 'done');
    const job = client.submit(fn, 'x', { unique, retry: true });
    await within(started.promise, 5000, 'the job to start');
    await within(job.created(), 5000, 'JOB_CREATED');
    expect(job.server).toBe(proxyA.address);

    // The worker completes while the link is stalled: the WORK_COMPLETE waits in the proxy, and the
    // cut drops it. gearmand has finished the job: the client cannot tell it from a lost one.
    proxyA.stall();
    release.resolve();
    await eventually(async () => (await functionStatus(adminA, fn)).total === 0, 5000, 'gearmand to finish the job');
    proxyA.cutAll();
    proxyA.heal();

    expect((await within(job.result(), 10_000, 'the retried job')).toString()).toBe('done:2');
    // Ran twice (unavoidable: at-least-once), both times on its own server (before: the second on B).
    expect(runs).toEqual([g.address, g.address]);
    expect(runs).not.toContain(b.address);
  }, 30_000);

  it('a job still running when the link is cut runs once: the resubmit merges with it on its own server', async () => {
    const { proxyA, client, worker, runs } = await twoServers();
    const fn = fnName('retry-running');
    const started = deferred();
    const release = res.gate();
    worker.register(fn, async (job) => {
      runs.push(job.server);
      started.resolve();
      await release.promise;
      return 'done once';
    });
    await worker.start();
    const unique = uniqueOwnedBy(client, proxyA.address, 'running');
    const job = client.submit(fn, 'x', { unique, retry: true });
    const createdTwice = new Promise<string>((resolve) => {
      let n = 0;
      job.on('created', (handle) => ++n === 2 && resolve(handle));
    });
    await within(started.promise, 5000, 'the job to start');
    // The worker can start before this client has read its JOB_CREATED.
    const firstHandle = await within(job.created(), 5000, 'JOB_CREATED');

    proxyA.cutAll();
    // Back on A within the backoff, the resubmit joins the running original (same handle).
    expect(await within(createdTwice, 5000, 'the resubmit after the cut')).toBe(firstHandle);
    expect(job.server).toBe(proxyA.address);
    release.resolve();
    expect((await within(job.result(), 5000, 'the result')).toString()).toBe('done once');
    await quietPeriod(200);
    // Before: resubmitted to B, where it ran a second time.
    expect(runs).toEqual([g.address]);
  }, 30_000);

  it('a job whose server is gone (its reconnect refused) moves to the other server and completes there', async () => {
    const a = await res.gearmand();
    const b = await res.gearmand();
    const client = await res.client({ servers: [a.address, b.address], reconnect: BACKOFF, connectTimeout: 2000 });
    client.on('error', () => undefined);
    const worker = res.worker({ servers: [a.address, b.address], maxJobs: 4, reconnect: BACKOFF });
    worker.on('error', () => undefined);
    const fn = fnName('retry-gone');
    const runs: string[] = [];
    const started = deferred();
    worker.register(fn, async (job) => {
      runs.push(job.server);
      if (runs.length === 1) {
        started.resolve();
        await new Promise(() => undefined); // dies with its server
      }
      return `done on ${job.server}`;
    });
    await worker.start();
    const unique = uniqueOwnedBy(client, a.address, 'gone');
    const job = client.submit(fn, 'x', { unique, retry: true });
    await within(started.promise, 5000, 'the job to start');
    await within(job.created(), 5000, 'JOB_CREATED');
    await a.kill();
    expect((await within(job.result(), 10_000, 'the job to complete on B')).toString()).toBe(`done on ${b.address}`);
    expect(runs).toEqual([a.address, b.address]);
  }, 30_000);
});

describe('cancelling one caller of a coalesced job detaches that caller only', () => {
  it('cancel() of one of two submits of a unique (one client, or two) leaves the other waiting; the last one cancels the job', async () => {
    const fn = fnName('coalesced-cancel');
    const client = await res.client();
    const other = await res.client();
    const admin = res.admin();

    const leaving = client.submit(fn, 'x', { unique: 'cc-1' });
    const staying = client.submit(fn, 'x', { unique: 'cc-1' });
    const [h1, h2] = await within(Promise.all([leaving.created(), staying.created()]), 5000, 'JOB_CREATED');
    expect(h2).toBe(h1);
    await leaving.cancel();
    expect(await rejection(leaving.result())).toBeInstanceOf(GearmanCancelledError);

    // Across clients: the other client's submit of the same unique keeps the job.
    const elsewhere = other.submit(fn, 'x', { unique: 'cc-2' });
    const h3 = await within(elsewhere.created(), 5000, 'JOB_CREATED');
    const mine = client.submit(fn, 'x', { unique: 'cc-2' });
    expect(await within(mine.created(), 5000, 'JOB_CREATED')).toBe(h3);
    await mine.cancel();
    expect(mine.state).toBe('failed');

    // When every caller has left, the job is cancelled on gearmand.
    const last1 = client.submit(fn, 'x', { unique: 'cc-3' });
    const last2 = client.submit(fn, 'x', { unique: 'cc-3' });
    const [h4] = await within(Promise.all([last1.created(), last2.created()]), 5000, 'JOB_CREATED');
    await last1.cancel();
    expect((await jobRow(admin, h4))?.ignoreJob).toBe(false);
    await last2.cancel();
    expect((await jobRow(admin, h4))?.ignoreJob).toBe(true);

    await quietPeriod(100);
    expect(staying.state).toBe('created');
    expect(elsewhere.state).toBe('created');
    expect((await jobRow(admin, h1))?.ignoreJob).toBe(false);
    expect((await jobRow(admin, h3))?.ignoreJob).toBe(false);

    const ran: string[] = [];
    const worker = res.worker();
    worker.register(fn, (job) => {
      ran.push(job.unique);
      return `for ${job.unique}`;
    });
    await worker.start();
    // Before: the other callers failed with JOB_FAILED (gearmand's WORK_FAIL for the cancel reached them too).
    expect((await within(staying.result(), 5000, 'the staying caller')).toString()).toBe('for cc-1');
    expect((await within(elsewhere.result(), 5000, 'the other client')).toString()).toBe('for cc-2');
    await eventually(async () => (await functionStatus(admin, fn)).total === 0, 5000, 'the queue to drain');
    expect(ran.sort()).toEqual(['cc-1', 'cc-2']);
  });

  it('an abort of one coalesced caller leaves the other; a job no caller waits for is cancelled', async () => {
    const fn = fnName('coalesced-abort');
    const client = await res.client();
    const admin = res.admin();
    const controller = new AbortController();
    const aborted = client.submit(fn, 'x', { unique: 'ca-1', signal: controller.signal });
    const staying = client.submit(fn, 'x', { unique: 'ca-1' });
    const [handle] = await within(Promise.all([aborted.created(), staying.created()]), 5000, 'JOB_CREATED');
    controller.abort();
    expect(await codeOf(aborted.result())).toBe('CANCELLED');
    await quietPeriod(200);
    expect((await jobRow(admin, handle))?.ignoreJob).toBe(false);
    expect(staying.state).toBe('created');

    // Both callers abort: nobody waits any more, the job is cancelled.
    const both = new AbortController();
    const first = client.submit(fn, 'x', { unique: 'ca-2', signal: both.signal });
    const second = client.submit(fn, 'x', { unique: 'ca-2', signal: both.signal });
    const [h2] = await within(Promise.all([first.created(), second.created()]), 5000, 'JOB_CREATED');
    both.abort();
    await eventually(async () => (await jobRow(admin, h2))?.ignoreJob === true, 3000, 'the job to be cancelled');

    const ran: string[] = [];
    const worker = res.worker();
    worker.register(fn, (job) => {
      ran.push(job.unique);
      return 'kept';
    });
    await worker.start();
    expect((await within(staying.result(), 5000, 'the staying caller')).toString()).toBe('kept');
    await eventually(async () => (await functionStatus(admin, fn)).total === 0, 5000, 'the queue to drain');
    expect(ran).toEqual(['ca-1']);
  });

  it('ClientGearman: unsubscribing one of two send() calls of one unique leaves the other its result', async () => {
    const fn = fnName('nest-coalesced');
    const proxy = res.clientProxy({ codec: 'text' });
    const record = new GearmanRecordBuilder('x').setUnique('nest-cc-1').build();
    const leaving = proxy.send(fn, record).subscribe({ error: () => undefined });
    res.defer(() => leaving.unsubscribe());
    const staying = lastValueFrom(proxy.send(fn, record));
    await eventually(
      async () => (await proxy.unwrap().getStatusByUnique('nest-cc-1')).waitingClients === 2,
      5000,
      'both calls to wait on one job',
    );
    leaving.unsubscribe();
    await quietPeriod(200);
    const worker = res.worker();
    worker.register(fn, () => 'still wanted');
    await worker.start();
    // Before: the unsubscribe cancelled the job, and the other call failed with JOB_FAILED.
    expect(await within(staying, 5000, 'the other call')).toBe('still wanted');
  });
});

describe('ClientGearman.job() of background and epoch records', () => {
  it('completes once the job is created: created, then complete with the handle', async () => {
    const proxy = res.clientProxy();
    const fn = fnName('job-bg');
    const bg = await within(
      lastValueFrom(proxy.job(fn, new GearmanRecordBuilder({ n: 1 }).setBackground().build()).pipe(toArray())),
      5000,
      'job() of a background record to complete',
    );
    expect(bg).toEqual([
      { type: 'created', handle: expect.stringMatching(/^H:/), server: g.address },
      { type: 'complete', data: (bg[0] as { handle: string }).handle },
    ]);
    const inAnHour = new Date(Date.now() + 3_600_000);
    const epoch = await within(
      lastValueFrom(proxy.job(fn, new GearmanRecordBuilder({ n: 2 }).setEpoch(inAnHour).build()).pipe(toArray())),
      5000,
      'job() of an epoch record to complete',
    );
    expect(epoch.map((e) => e.type)).toEqual(['created', 'complete']);
  });
});

describe('timeouts are validated', () => {
  const BAD = [Infinity, -Infinity, -1, NaN, 2 ** 31, 1.5];

  it('per-submit timeout and submitTimeout: INVALID_ARGUMENT before anything is sent', async () => {
    const client = await res.client();
    const fn = fnName('bad-timeout');
    for (const value of [...BAD, 0]) {
      expect(invalidArgument(() => client.submit(fn, 'x', { timeout: value })).message).toContain('timeout');
      expect(invalidArgument(() => client.submit(fn, 'x', { submitTimeout: value })).message).toContain(
        'submitTimeout',
      );
    }
    expect((await functionStatus(res.admin(), fn)).total).toBe(0);
  });

  it('GearmanRecordBuilder, a record passed to send(), and the close timeouts of client, worker and Nest transports', async () => {
    for (const value of [...BAD, 0]) {
      invalidArgument(() => new GearmanRecordBuilder('x').setTimeout(value));
      invalidArgument(() => new GearmanRecordBuilder('x').setSubmitTimeout(value));
    }
    const proxy = res.clientProxy();
    const error = await rejection(lastValueFrom(proxy.send('any', new GearmanRecord('x', { timeout: Infinity }))));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    const viaJob = await rejection(lastValueFrom(proxy.job('any', new GearmanRecord('x', { submitTimeout: -1 }))));
    expect(viaJob).toMatchObject({ code: 'INVALID_ARGUMENT' });

    for (const value of BAD.filter((v) => v !== 1.5)) {
      invalidArgument(() => new GearmanClient({ closeTimeout: value }));
      invalidArgument(() => new ClientGearman({ closeTimeout: value }));
      invalidArgument(() => new ServerGearman({ closeTimeout: value, logger: false }));
      const client = new GearmanClient({ servers: g.address });
      expect(await rejection(client.close(value))).toMatchObject({ code: 'INVALID_ARGUMENT' });
      await client.close(0);
      const worker = new GearmanWorker({ servers: g.address });
      expect(await rejection(worker.close(value))).toMatchObject({ code: 'INVALID_ARGUMENT' });
      await worker.close(0);
    }
  });
});

describe('closing the client drains', () => {
  async function heldFunction(maxJobs: number) {
    const fn = fnName('drain');
    const release = res.gate();
    const worker = res.worker({ maxJobs });
    const done: string[] = [];
    worker.register(fn, async (job) => {
      await release.promise;
      done.push(job.payload.toString());
      return `done ${job.payload.toString()}`;
    });
    await worker.start();
    return { fn, release, done };
  }

  it('ClientGearman.close() with 100 calls in flight: all complete, a new call fails at once with CLOSED', async () => {
    const { fn, release, done } = await heldFunction(10);
    const admin = res.admin();
    const client = res.clientProxy({ codec: 'text', closeTimeout: 10_000 });
    await client.connect();
    const calls = Array.from({ length: 100 }, (_, i) => lastValueFrom(client.send(fn, `call-${i}`)));
    await eventually(async () => (await functionStatus(admin, fn)).total === 100, 5000, '100 jobs on gearmand');

    const closing = client.close();
    let closed = false;
    void closing.then(() => (closed = true));
    const t0 = performance.now();
    const refused = await within(
      rejection(lastValueFrom(client.send(fn, 'during close'))),
      1000,
      'a call during close',
    );
    const refusedMs = performance.now() - t0;
    expect(refused).toMatchObject({ code: 'CLOSED' });
    expect(refusedMs).toBeLessThan(100);
    const emitted = await within(
      rejection(lastValueFrom(client.emit(fn, 'during close'))),
      1000,
      'an emit during close',
    );
    expect(emitted).toMatchObject({ code: 'CLOSED' });
    expect(closed).toBe(false);

    release.resolve();
    const results = await within(Promise.all(calls), 5000, 'the 100 calls in flight');
    expect(results).toEqual(Array.from({ length: 100 }, (_, i) => `done call-${i}`));
    await within(closing, 2000, 'close() once the calls are done');
    expect(done).not.toContain('during close');
    figures.push(
      `close drain: 100 calls in flight completed; a call during close refused in ${refusedMs.toFixed(1)} ms`,
    );
  });

  it('after closeTimeout, the calls still in flight fail with CLOSED and close() resolves', async () => {
    const { fn } = await heldFunction(2);
    const client = res.clientProxy({ codec: 'text', closeTimeout: 300 });
    await client.connect();
    const calls = Array.from({ length: 5 }, (_, i) => lastValueFrom(client.send(fn, `held-${i}`)).catch((e) => e));
    await eventually(async () => (await functionStatus(res.admin(), fn)).total === 5, 5000, '5 jobs on gearmand');
    const t0 = performance.now();
    await within(client.close(), 3000, 'close()');
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(290);
    for (const outcome of await within(Promise.all(calls), 1000, 'the calls to fail')) {
      expect(outcome).toMatchObject({ code: 'CLOSED' });
    }
    figures.push(`close drain: bound 300 ms, close() took ${ms.toFixed(0)} ms, 5 held calls got CLOSED`);
  });

  it('GearmanClient.close(timeout): jobs in flight finish, submits during the drain throw CLOSED', async () => {
    const { fn, release } = await heldFunction(4);
    const client = await res.client();
    const jobs = Array.from({ length: 10 }, (_, i) => client.submit(fn, String(i)));
    await within(Promise.all(jobs.map((j) => j.created())), 5000, 'JOB_CREATED');
    const closing = client.close(5000);
    expect(() => client.submit(fn, 'late')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    release.resolve();
    const results = await within(Promise.all(jobs.map((j) => j.result())), 5000, 'the jobs in flight');
    expect(results.map(String)).toEqual(Array.from({ length: 10 }, (_, i) => `done ${i}`));
    await within(closing, 2000, 'close()');
  });
});
