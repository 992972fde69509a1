/**
 * GearmanClient and GearmanWorker against a real gearmand 1.1.20: timeouts, abort signals,
 * cancelling, worker concurrency, CAN_DO_TIMEOUT and worker shutdown.
 */
import { getEventListeners } from 'node:events';
import {
  GearmanCancelledError,
  GearmanError,
  GearmanTimeoutError,
  type GearmanAdmin,
  type GearmanClient,
  type WorkerJob,
} from '../../lib/engine/index.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, quietPeriod, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** A started worker whose handler for a new function signals `started`, then holds the job until `release`. */
async function heldJob(label: string, result: string) {
  const fn = fnName(label);
  const started = deferred<WorkerJob>();
  const release = res.gate();
  const worker = res.worker();
  worker.register(fn, async (job) => {
    started.resolve(job);
    await release.promise;
    return result;
  });
  await worker.start();
  const client = await res.client();
  return { fn, started, release, worker, client };
}

/**
 * gearmand 1.1.20's `cancel job` does not remove a queued job: it marks it ignored (`show jobs`
 * ignore_job 1; `status` still counts it) and drops it when a worker next grabs it. (`show jobs`'
 * last column, `queued`, is 1 only for background jobs, and `cancel job` clears it.)
 */
async function cancelledOnServer(admin: GearmanAdmin, handle: string): Promise<boolean> {
  const row = (await admin.showJobs()).find((j) => j.handle === handle);
  return row === undefined || row.ignoreJob;
}

/** Starts a worker for `fn` and runs one marker job: cancelled jobs of `fn` must be dropped, not run. */
async function expectOnlyMarkerRuns(
  fn: string,
  client: GearmanClient,
  admin: GearmanAdmin,
  handles: string[],
): Promise<void> {
  const runs: string[] = [];
  const worker = res.worker();
  worker.register(fn, (j) => {
    runs.push(j.payload.toString());
    return 'ran';
  });
  await worker.start();
  await expect(within(client.run(fn, 'marker'), 5000, 'the marker job')).resolves.toEqual(Buffer.from('ran'));
  expect(runs).toEqual(['marker']);
  const left = (await admin.showJobs()).map((j) => j.handle);
  for (const h of handles) expect(left).not.toContain(h);
  expect((await admin.status()).find((s) => s.function === fn)).toMatchObject({ total: 0, running: 0 });
}

async function failureOf(promise: Promise<unknown>, ms = 5000): Promise<GearmanError> {
  const outcome = await within(
    promise.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    ms,
    'the job to fail',
  );
  if (!('error' in outcome)) throw new Error(`Expected a failure, got ${String(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(GearmanError);
  return outcome.error as GearmanError;
}

describe('timeouts', () => {
  it('fails with GearmanTimeoutError when the server accepts but never sends JOB_CREATED (submitTimeout)', async () => {
    const silent = await res.silentServer();
    const client = await res.client({ servers: silent.address, submitTimeout: 300 });
    expect(silent.connections).toHaveLength(1);

    const started = Date.now();
    const error = await failureOf(client.submit('anything', 'x').result(), 3000);
    expect(error).toBeInstanceOf(GearmanTimeoutError);
    expect(error.code).toBe('TIMEOUT');
    expect(error.message).toMatch(/No JOB_CREATED .* within 300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);

    // Per-submit option overrides the client's.
    const error2 = await failureOf(client.submit('anything', 'x', { submitTimeout: 100 }).created(), 3000);
    expect(error2).toBeInstanceOf(GearmanTimeoutError);
  });

  it('times out a job no worker takes, and cancels it on the server', async () => {
    const fn = fnName('nobody');
    const client = await res.client();
    const admin = res.admin();

    const job = client.submit(fn, 'x', { timeout: 400 });
    const handle = await within(job.created(), 5000, 'JOB_CREATED');
    expect((await admin.showJobs()).map((j) => j.handle)).toContain(handle);

    const error = await failureOf(job.result(), 3000);
    expect(error).toBeInstanceOf(GearmanTimeoutError);
    expect(error.message).toContain(handle);
    await eventually(() => cancelledOnServer(admin, handle), 3000, 'the job to be cancelled');
    await expectOnlyMarkerRuns(fn, client, admin, [handle]);
  });

  it('uses the client-wide timeout option for foreground jobs only', async () => {
    const fn = fnName('nobody-default');
    const client = await res.client({ timeout: 300 });
    const admin = res.admin();
    const fg = client.submit(fn, 'fg');
    const bg = client.submit(fn, 'bg', { background: true });
    const bgHandle = await within(bg.created(), 5000, 'JOB_CREATED');
    expect(await failureOf(fg.result(), 3000)).toBeInstanceOf(GearmanTimeoutError);
    await eventually(() => cancelledOnServer(admin, fg.handle!), 3000, 'the foreground job to be cancelled');
    // The background job stays queued, until cancelled.
    expect((await admin.showJobs()).find((j) => j.handle === bgHandle)).toMatchObject({
      ignoreJob: false,
      queued: true,
    });
    await bg.cancel();
    expect((await admin.showJobs()).find((j) => j.handle === bgHandle)).toMatchObject({
      ignoreJob: true,
      queued: false,
    });
    await expectOnlyMarkerRuns(fn, client, admin, [fg.handle!, bgHandle]);
  });

  it('times out a running job without cancelling it: the worker finishes, the client has moved on', async () => {
    const { fn, started, release, client } = await heldJob('slow-running', 'late');
    const admin = res.admin();
    const job = client.submit(fn, 'x', { timeout: 300 });
    let completions = 0;
    job.on('complete', () => completions++);
    await within(started.promise, 5000, 'the job to start');
    expect(await failureOf(job.result())).toBeInstanceOf(GearmanTimeoutError);
    expect((await admin.showJobs()).find((j) => j.handle === job.handle)).toMatchObject({ ignoreJob: false });

    release.resolve();
    await eventually(
      async () => (await admin.status()).find((s) => s.function === fn)?.total === 0,
      3000,
      'the job to finish',
    );
    // The client is still healthy.
    await expect(client.run(fn, 'y')).resolves.toEqual(Buffer.from('late'));
    expect(completions).toBe(0);
  });

  it('a timeout of one of two coalesced submits does not cancel the job the other still waits for', async () => {
    const fn = fnName('coalesced-timeout');
    const client = await res.client();
    const admin = res.admin();
    const impatient = client.submit(fn, 'x', { unique: 'shared-1', timeout: 300 });
    const patient = client.submit(fn, 'x', { unique: 'shared-1' });
    const [h1, h2] = await within(Promise.all([impatient.created(), patient.created()]), 5000, 'JOB_CREATED');
    expect(h2).toBe(h1);
    expect(await failureOf(impatient.result())).toBeInstanceOf(GearmanTimeoutError);
    // Give a (wrong) cancel time to reach gearmand, then check the job is still queued.
    await quietPeriod(200);
    expect((await admin.showJobs()).find((j) => j.handle === h1)).toMatchObject({ ignoreJob: false });
    expect(patient.state).toBe('created');

    // The same across clients: gearmand's waiting-clients count (GET_STATUS_UNIQUE) shows the other one.
    const otherClient = await res.client();
    const elsewhere = otherClient.submit(fn, 'x', { unique: 'shared-2' });
    const h3 = await within(elsewhere.created(), 5000, 'JOB_CREATED');
    const impatient2 = client.submit(fn, 'x', { unique: 'shared-2', timeout: 300 });
    expect(await within(impatient2.created(), 5000, 'JOB_CREATED')).toBe(h3);
    expect(await failureOf(impatient2.result())).toBeInstanceOf(GearmanTimeoutError);
    await quietPeriod(200);
    expect((await admin.showJobs()).find((j) => j.handle === h3)).toMatchObject({ ignoreJob: false });

    const worker = res.worker();
    worker.register(fn, (job) => `for the patient one ${job.unique}`);
    await worker.start();
    await expect(within(patient.result(), 5000, 'the patient result')).resolves.toEqual(
      Buffer.from('for the patient one shared-1'),
    );
    await expect(within(elsewhere.result(), 5000, 'the other client result')).resolves.toEqual(
      Buffer.from('for the patient one shared-2'),
    );
  });
});

describe('abort signals', () => {
  it('fails a job whose signal is already aborted with CANCELLED, and takes it back from gearmand', async () => {
    const fn = fnName('abort-before');
    const client = await res.client();
    const admin = res.admin();
    const controller = new AbortController();
    controller.abort(new Error('user left'));

    const job = client.submit(fn, 'x', { signal: controller.signal });
    const error = await failureOf(job.result());
    expect(error).toBeInstanceOf(GearmanCancelledError);
    expect(error.code).toBe('CANCELLED');
    expect((error.cause as Error).message).toBe('user left');
    // The SUBMIT went out before the abort was seen: the job is cancelled once JOB_CREATED arrives.
    // (The client learns the handle from that late JOB_CREATED.)
    const handle = await eventually(
      async () => job.handle !== undefined && (await cancelledOnServer(admin, job.handle)) && job.handle,
      3000,
      'the job to be cancelled',
    );
    expect((await admin.showJobs()).find((j) => j.handle === handle)).toMatchObject({ ignoreJob: true });
    await expectOnlyMarkerRuns(fn, client, admin, [handle]);
  });

  it('aborting after JOB_CREATED fails the job with CANCELLED and cancels it on the server', async () => {
    const fn = fnName('abort-after');
    const client = await res.client();
    const admin = res.admin();
    const controller = new AbortController();
    const job = client.submit(fn, 'x', { signal: controller.signal });
    const handle = await within(job.created(), 5000, 'JOB_CREATED');
    expect((await admin.showJobs()).map((j) => j.handle)).toContain(handle);

    controller.abort();
    const error = await failureOf(job.result());
    expect(error).toBeInstanceOf(GearmanCancelledError);
    await eventually(() => cancelledOnServer(admin, handle), 3000, 'the job to be cancelled');
    await expectOnlyMarkerRuns(fn, client, admin, [handle]);
  });
  it('releases its abort listener when a job settles (one signal shared by many jobs)', async () => {
    const fn = fnName('abort-shared');
    const worker = res.worker({ maxJobs: 4 });
    worker.register(fn, (job) => job.payload);
    await worker.start();
    const client = await res.client();
    const controller = new AbortController();
    const jobs = Array.from({ length: 50 }, (_, i) =>
      client.submit(fn, String(i), { signal: controller.signal, timeout: 10_000 }),
    );
    // One listener for all 50 jobs (a listener per job would trip Node's MaxListeners warning).
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await within(Promise.all(jobs.map((j) => j.result())), 10_000, 'all results');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // Aborting now touches none of them.
    controller.abort();
    expect(jobs.every((j) => j.state === 'complete')).toBe(true);
  });
});

describe('client close', () => {
  it('fails jobs still waiting with CLOSED and refuses new submits', async () => {
    const fn = fnName('client-close');
    const client = await res.client();
    const queued = client.submit(fn, 'x');
    await within(queued.created(), 5000, 'JOB_CREATED');
    const inFlight = client.submit(fn, 'y');
    await client.close();
    for (const job of [queued, inFlight]) {
      const error = await failureOf(job.result());
      expect(error.code).toBe('CLOSED');
    }
    expect(() => client.submit(fn, 'z')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await expect(client.close()).resolves.toBeUndefined();
  });
});

describe('cancel()', () => {
  it('cancels a queued job: it leaves the queue and the job fails with CANCELLED', async () => {
    const fn = fnName('cancel-queued');
    const client = await res.client();
    const admin = res.admin();

    // Several rounds: gearmand's WORK_FAIL to the client and the admin OK race each other.
    const handles: string[] = [];
    for (let round = 0; round < 20; round++) {
      const job = client.submit(fn, `x${round}`);
      const handle = await within(job.created(), 5000, 'JOB_CREATED');
      await job.cancel();
      const error = await failureOf(job.result());
      expect(error).toBeInstanceOf(GearmanCancelledError);
      expect(error.message).toContain(handle);
      expect(job.state).toBe('failed');
      expect(await cancelledOnServer(admin, handle)).toBe(true);
      handles.push(handle);
      // Cancelling again is harmless.
      await expect(job.cancel()).resolves.toBeUndefined();
    }
    await expectOnlyMarkerRuns(fn, client, admin, handles);
  });

  it('refuses to cancel a running job with NOT_CANCELLABLE, and the job still completes', async () => {
    const { fn, started, release, client } = await heldJob('cancel-running', 'finished anyway');

    const job = client.submit(fn, 'x');
    await within(started.promise, 5000, 'the worker to take the job');
    const error = await failureOf(job.cancel());
    expect(error.code).toBe('NOT_CANCELLABLE');
    expect(error.message).toContain(job.handle!);
    expect(job.state).toBe('created');

    release.resolve();
    await expect(within(job.result(), 5000, 'the result')).resolves.toEqual(Buffer.from('finished anyway'));
  });
});

describe('worker concurrency', () => {
  it('never runs more than maxJobs handlers at once (maxJobs 3, 20 queued jobs)', async () => {
    const fn = fnName('max3');
    const client = await res.client();
    const jobs = Array.from({ length: 20 }, (_, i) => client.submit(fn, String(i)));
    await within(Promise.all(jobs.map((j) => j.created())), 5000, 'JOB_CREATED for all');

    let active = 0;
    let peak = 0;
    const worker = res.worker({ maxJobs: 3 });
    worker.register(fn, async (job) => {
      active++;
      peak = Math.max(peak, active);
      expect(worker.activeJobs).toBeLessThanOrEqual(3);
      await new Promise((r) => setTimeout(r, 15)); // simulated work
      active--;
      return `done ${job.payload}`;
    });
    await worker.start();
    const results = await within(Promise.all(jobs.map((j) => j.result())), 10_000, 'all 20 results');
    expect(results.map(String)).toEqual(jobs.map((_, i) => `done ${i}`));
    expect(peak).toBe(3);
  });

  it('does not hoard: gearmand shows no more jobs running than handlers are busy', async () => {
    const fn = fnName('hoard');
    const client = await res.client();
    const admin = res.admin();
    const jobs = Array.from({ length: 6 }, (_, i) => client.submit(fn, String(i)));
    await within(Promise.all(jobs.map((j) => j.created())), 5000, 'JOB_CREATED for all');

    const busy = new Map<string, () => void>();
    let startedCount = 0;
    let onStart: (() => void) | undefined;
    const makeWorker = () => {
      const w = res.worker({ maxJobs: 1 });
      w.register(fn, async (job) => {
        const gate = res.gate();
        busy.set(job.handle, () => gate.resolve());
        startedCount++;
        onStart?.();
        await gate.promise;
        busy.delete(job.handle);
        return 'ok';
      });
      return w;
    };
    const waitBusy = async (n: number) => {
      if (busy.size < n) {
        await within(
          new Promise<void>((resolve) => {
            onStart = () => busy.size >= n && resolve();
          }),
          5000,
          `${n} busy handlers`,
        );
      }
    };
    await Promise.all([makeWorker().start(), makeWorker().start()]);

    for (let remaining = 6; remaining > 0; remaining--) {
      await waitBusy(Math.min(2, remaining));
      // Give any over-eager GRAB time to be answered, then compare with gearmand's view.
      await quietPeriod(100);
      const row = (await admin.status()).find((s) => s.function === fn)!;
      expect(row.running).toBe(busy.size);
      expect(row.running).toBeLessThanOrEqual(2);
      expect(row.total).toBe(remaining);
      // Finish one job.
      const [first] = busy.values();
      first();
      await eventually(
        () => jobs.filter((j) => j.state === 'complete').length === 7 - remaining,
        5000,
        'one more result',
      );
    }
    expect(startedCount).toBe(6);
  });
});

describe('CAN_DO_TIMEOUT', () => {
  it('is sent in milliseconds: gearmand requeues a job that runs longer than 1500 ms to another worker', async () => {
    const fn = fnName('cdt');
    const first = deferred<{ handle: string; at: number }>();
    const release = res.gate();
    const slow = res.worker({ maxJobs: 1 });
    const slowErrors: Error[] = [];
    slow.on('error', (e) => slowErrors.push(e));
    slow.register(
      fn,
      async (job) => {
        first.resolve({ handle: job.handle, at: Date.now() });
        await release.promise;
        return 'too late';
      },
      { timeout: 1500 },
    );
    await slow.start();
    const client = await res.client();
    const job = client.submit(fn, 'x');
    const assigned = await within(first.promise, 5000, 'the first assignment');

    const second = deferred<{ handle: string; at: number }>();
    const other = res.worker();
    other.register(fn, (j) => {
      second.resolve({ handle: j.handle, at: Date.now() });
      return 'second worker';
    });
    await other.start();

    const again = await within(second.promise, 5000, 'gearmand to requeue the job');
    expect(again.handle).toBe(assigned.handle);
    // 1500 ms, not 1 s (what a worker sending seconds, "1", would get after the 1000 ms floor).
    expect(again.at - assigned.at).toBeGreaterThanOrEqual(1400);
    expect(again.at - assigned.at).toBeLessThan(3500);
    await expect(within(job.result(), 5000, 'the result')).resolves.toEqual(Buffer.from('second worker'));

    // The first worker's late WORK_COMPLETE is refused: JOB_NOT_FOUND.
    release.resolve();
    await eventually(() => slowErrors.length > 0, 3000, 'ERROR JOB_NOT_FOUND on the slow worker');
    expect(slowErrors[0].message).toContain('JOB_NOT_FOUND');
  });
});

describe('worker close', () => {
  it('finishes jobs in flight, takes no new ones, and loses nothing', async () => {
    const fn = fnName('close-graceful');
    const started: WorkerJob[] = [];
    const allStarted = deferred();
    const release = res.gate();
    const worker = res.worker({ maxJobs: 3 });
    worker.register(fn, async (job) => {
      started.push(job);
      if (started.length === 3) allStarted.resolve();
      await release.promise;
      return `graceful ${job.payload}`;
    });
    await worker.start();
    const client = await res.client();
    const jobs = Array.from({ length: 4 }, (_, i) => client.submit(fn, String(i)));
    await within(allStarted.promise, 5000, 'three jobs running');

    let closed = false;
    const closing = worker.close(5000).then((abandoned) => {
      closed = true;
      return abandoned;
    });
    await quietPeriod(100);
    expect(closed).toBe(false);
    release.resolve();
    await expect(within(closing, 5000, 'close')).resolves.toBe(0);

    const ran = started.map((j) => Number(j.payload.toString()));
    const done = await within(Promise.all(ran.map((i) => jobs[i].result())), 5000, 'the three results');
    expect(done.map(String)).toEqual(ran.map((i) => `graceful ${i}`));
    expect(started).toHaveLength(3);

    // The fourth is still queued, and another worker runs it.
    const leftover = jobs.find((j) => j.state === 'created')!;
    expect(leftover).toBeDefined();
    const next = res.worker();
    next.register(fn, (job) => `next ${job.payload}`);
    await next.start();
    await expect(within(leftover.result(), 5000, 'the leftover job')).resolves.toEqual(
      Buffer.from(`next ${leftover.payload}`),
    );
  });

  it('with a short deadline, abandons the unfinished job to gearmand, which requeues it to another worker', async () => {
    const { fn, started, release, worker, client } = await heldJob('close-deadline', 'from the closed worker');
    const job = client.submit(fn, 'x');
    let completions = 0;
    job.on('complete', () => completions++);
    const first = await within(started.promise, 5000, 'the job to start');

    await expect(within(worker.close(200), 3000, 'close')).resolves.toBe(1);

    const second = deferred<string>();
    const other = res.worker();
    other.register(fn, (j) => {
      second.resolve(j.handle);
      return 'from the second worker';
    });
    await other.start();
    await expect(within(second.promise, 5000, 'the requeued job')).resolves.toBe(first.handle);
    await expect(within(job.result(), 5000, 'the result')).resolves.toEqual(Buffer.from('from the second worker'));

    // The abandoned handler finishing later sends nothing.
    release.resolve();
    await quietPeriod(100);
    expect(first.finished).toBe(true);
    expect(completions).toBe(1);
  });
});
