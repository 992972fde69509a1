/**
 * Reliability: network faults between the library and gearmand, injected by a TCP proxy on
 * loopback (test/support/fault-proxy.ts): a stall longer than the timeouts, repeated connection
 * cuts under load, and slow, fragmented delivery. Jobs fail with typed errors within their own
 * timeouts while the fault lasts, nothing hangs, and work resumes by itself when it ends.
 */
import { GearmanClient, GearmanTimeoutError } from '../../lib/engine/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { useGearmand, useResources } from '../support/harness.js';
import { prng } from '../support/packets.js';
import { RoundTripLoad } from '../support/load.js';
import { rejection } from '../support/errors.js';
import { within } from '../support/wait.js';

const BACKOFF = { initialDelay: 20, maxDelay: 200 };
const figures: string[] = [];
const g = useGearmand();
const res = useResources(g);

afterAll(() => console.log(`network fault figures:\n  ${figures.join('\n  ')}`));

/** A fault proxy in front of the gearmand. */
async function faultProxy(): Promise<FaultProxy> {
  const proxy = await FaultProxy.start(g.address);
  res.defer(() => proxy.close());
  return proxy;
}

async function setup(fn: string, options: { submitTimeout?: number; maxJobs?: number } = {}) {
  const proxy = await faultProxy();
  const c = new GearmanClient({
    servers: [proxy.address],
    reconnect: BACKOFF,
    connectTimeout: 2000,
    submitTimeout: options.submitTimeout,
  });
  c.on('error', () => undefined);
  res.defer(() => c.close());
  const w = res.worker({
    servers: [proxy.address],
    reconnect: BACKOFF,
    connectTimeout: 2000,
    maxJobs: options.maxJobs ?? 16,
  });
  w.on('error', () => undefined);
  w.register(fn, (job) => new Promise((resolve) => setImmediate(() => resolve(`ok:${job.payload.toString()}`))));
  await Promise.all([c.connect(), w.start()]);
  return { proxy, c, w };
}

describe('a network stall longer than the timeouts (sockets open, nothing forwarded)', () => {
  it('jobs submitted during the stall fail with GearmanTimeoutError, and new jobs complete once it ends', async () => {
    const fn = 'stall';
    const TIMEOUT = 500;
    const { proxy, c } = await setup(fn, { submitTimeout: TIMEOUT });
    const load = new RoundTripLoad((n) => c.run(fn, String(n), { timeout: TIMEOUT }), {
      inFlight: 64,
      limitMs: TIMEOUT,
      expected: (n) => `ok:${n}`,
    }).start();
    res.defer(() => load.stop().catch(() => undefined));
    await load.until(() => load.completed >= 1000, 10_000, '1000 completions before the stall');

    proxy.stall();
    const stalledAt = performance.now();
    const startedBefore = load.started;
    // Submitted during the stall, with and without a timeout of their own, and the other requests.
    const during = c.submit(fn, 'during', { timeout: TIMEOUT });
    const noJobTimeout = c.submit(fn, 'no-job-timeout'); // only submitTimeout applies
    const status = c.getStatus('H:nowhere:1', proxy.address);
    const echo = c.echo(proxy.address);
    const errors = await within(
      Promise.all([rejection(during.result()), rejection(noJobTimeout.result()), rejection(status), rejection(echo)]),
      TIMEOUT + 1000,
      'the requests made during the stall to fail',
    );
    for (const e of errors) expect(e).toBeInstanceOf(GearmanTimeoutError);
    // Hold the stall until every job in flight when it began, and a full round of replacements, failed.
    await load.until(
      () => load.started >= startedBefore + 128 && load.failed >= 128,
      5000,
      'two rounds of jobs to time out',
    );
    const stalledMs = Math.round(performance.now() - stalledAt);
    const failedDuring = load.failed;

    proxy.resume();
    const resumedAt = performance.now();
    const firstJob = Math.round((await load.firstCompletionSince(resumedAt, 5000)) - resumedAt);
    const direct = await within(c.run(fn, 'after', { timeout: 2000 }), 2000, 'a job after the stall');
    expect(direct.toString()).toBe('ok:after');
    await load.until(() => load.completed >= 2000, 10_000, '1000 more completions after the stall');
    await load.stop();
    figures.push(
      `stall of ${stalledMs} ms (job timeout and submitTimeout ${TIMEOUT} ms): ${failedDuring} jobs timed out; first new job completed ${firstJob} ms after the stall ended; ` +
        `proxy ${JSON.stringify(proxy.counters)}; ${load.summary()}`,
    );
    expect(firstJob).toBeLessThan(2000);
    expect(load.untyped).toEqual([]);
    expect(load.wrong).toEqual([]);
    expect(load.late).toEqual([]);
    expect(Object.keys(load.failures)).toEqual(['GearmanTimeoutError:TIMEOUT']);
    expect(load.completed + load.failed).toBe(load.started);
  }, 30_000);
});

describe('connections cut under load (both sides, repeatedly)', () => {
  it('every job completes or fails typed within its timeout, jobs with a unique and retry all complete, and work resumes after each cut', async () => {
    const fn = 'cut';
    const { proxy, c, w } = await setup(fn);
    const plain = new RoundTripLoad((n) => c.run(fn, `p${n}`, { timeout: 3000 }), {
      inFlight: 32,
      limitMs: 3000,
      expected: (n) => `ok:p${n}`,
    }).start();
    const retried = new RoundTripLoad((n) => c.run(fn, `r${n}`, { unique: `cut-${n}`, retry: 5, timeout: 5000 }), {
      inFlight: 32,
      limitMs: 5000,
      expected: (n) => `ok:r${n}`,
    }).start();
    res.defer(() => Promise.all([plain.stop(), retried.stop()]).catch(() => undefined));
    const recovery: number[] = [];
    const CUTS = 10;
    for (let i = 1; i <= CUTS; i++) {
      await retried.until(() => retried.completed >= i * 300, 10_000, `${i * 300} retried completions`);
      const up = Promise.all([new Promise((r) => c.once('connected', r)), new Promise((r) => w.once('connected', r))]);
      expect(proxy.cutAll()).toBeGreaterThanOrEqual(2);
      const cutAt = performance.now();
      await within(up, 2000, 'client and worker to reconnect after the cut');
      recovery.push(Math.round((await retried.firstCompletionSince(cutAt, 3000)) - cutAt));
    }
    await Promise.all([plain.stop(), retried.stop()]);
    figures.push(
      `${CUTS} cuts (${proxy.counters.cut} connections cut): first retried job completed after ${JSON.stringify(recovery)} ms`,
    );
    figures.push(`  plain jobs: ${plain.summary()}`);
    figures.push(`  unique+retry jobs: ${retried.summary()}`);

    for (const load of [plain, retried]) {
      expect(load.untyped).toEqual([]);
      expect(load.wrong).toEqual([]);
      expect(load.late).toEqual([]);
      expect(load.completed + load.failed).toBe(load.started);
    }
    for (const key of Object.keys(plain.failures)) expect(key).toBe('GearmanConnectionError:CONNECTION_LOST');
    expect(plain.failed).toBeGreaterThan(0);
    expect(retried.failures).toEqual({});
    expect(Math.max(...recovery)).toBeLessThan(2000);
  }, 30_000);
});

describe('a connection cut while a long job runs', () => {
  it('a job with a unique and retry, lost after its submitTimeout has passed, is resubmitted and completes', async () => {
    const fn = 'long-cut';
    const proxy = await faultProxy();
    const SUBMIT_TIMEOUT = 300;
    const c = await res.client({ servers: [proxy.address], reconnect: BACKOFF, submitTimeout: SUBMIT_TIMEOUT });
    // The worker connects directly: only the client's connection is cut.
    const w = res.worker({ reconnect: BACKOFF });
    let runs = 0;
    let firstStarted: () => void = () => undefined;
    const started = new Promise<void>((r) => (firstStarted = r));
    w.register(fn, async (job) => {
      runs++;
      firstStarted();
      // Longer than submitTimeout, so the cut comes after the first submit's deadline.
      await new Promise((r) => setTimeout(r, SUBMIT_TIMEOUT * 2));
      return `done:${job.payload.toString()}:${runs}`;
    });
    await w.start();
    const job = c.submit(fn, 'long', { unique: 'long-cut-1', retry: true, timeout: 10_000 });
    await within(started, 3000, 'the job to start');
    // The fault is timed, not synchronised: it must come after the first submit's deadline.
    await new Promise((r) => setTimeout(r, SUBMIT_TIMEOUT + 50));
    proxy.cutAll();
    const result = await within(job.result(), 8000, 'the retried job to complete');
    expect(result.toString()).toMatch(/^done:long:\d$/);
  }, 20_000);
});

describe('slow and fragmented delivery', () => {
  it('jobs with binary payloads round-trip byte-exact when every chunk is delayed and cut into pieces', async () => {
    const fn = 'fragments';
    const proxy = await faultProxy();
    const c = await res.client({ servers: [proxy.address], reconnect: BACKOFF });
    const w = res.worker({ servers: [proxy.address], reconnect: BACKOFF, maxJobs: 8 });
    // Echoes the payload reversed, with a WORK_DATA and a WORK_STATUS first.
    w.register(fn, (job) => {
      job.sendData(job.payload.subarray(0, 5));
      job.sendStatus(1, 2);
      return Buffer.from(job.payload).reverse();
    });
    await w.start();
    const rand = prng(7);
    const payload = (size: number) =>
      Buffer.from(Array.from({ length: size }, (_, i) => (i % 7 === 0 ? 0 : Math.floor(rand() * 256))));
    const rounds: { label: string; slow: number; fragment: number; sizes: number[] }[] = [
      { label: '1-byte pieces', slow: 0, fragment: 1, sizes: [0, 1, 11, 12, 13, 100, 300] },
      { label: '7-byte pieces, 5 ms per chunk', slow: 5, fragment: 7, sizes: [0, 5, 64, 1000, 4000] },
      { label: '997-byte pieces, 2 ms per chunk', slow: 2, fragment: 997, sizes: [65_535, 65_536, 70_000, 200_000] },
    ];
    for (const round of rounds) {
      proxy.slow(round.slow);
      proxy.fragment(round.fragment);
      const writesBefore = proxy.counters.writes;
      const started = performance.now();
      const inputs = round.sizes.map(payload);
      const jobs = inputs.map((p) => c.submit(fn, p, { timeout: 15_000 }));
      const data = jobs.map(() => [] as Buffer[]);
      jobs.forEach((j, i) => j.on('data', (d) => data[i].push(Buffer.from(d))));
      const results = await within(Promise.all(jobs.map((j) => j.result())), 15_000, `the ${round.label} round`);
      results.forEach((r, i) => {
        expect(r.equals(Buffer.from(inputs[i]).reverse())).toBe(true);
        expect(Buffer.concat(data[i]).equals(inputs[i].subarray(0, 5))).toBe(true);
      });
      figures.push(
        `${round.label}: ${round.sizes.length} jobs byte-exact in ${Math.round(performance.now() - started)} ms, ${proxy.counters.writes - writesBefore} proxy writes`,
      );
    }
    proxy.heal();
  }, 60_000);
});
