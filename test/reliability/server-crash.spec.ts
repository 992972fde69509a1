/**
 * Reliability: gearmand killed with SIGKILL and restarted on the same port while a client keeps 64
 * round trips in flight. Every job completes or fails with a typed error within its own timeout;
 * with `retry` on unique jobs over two servers, every job completes; client and worker work again
 * within 2 s of the server's return.
 *
 * Reconnect backoff used here (and reported): 20 ms doubling to at most 200 ms, 20 % jitter. With
 * the default (100 ms doubling to 10 s) a longer outage would stretch the return time to seconds.
 */
import { GearmanClient, GearmanWorker } from '../../lib/engine/index.js';
import { useResources } from '../support/harness.js';
import { RoundTripLoad } from '../support/load.js';
import type { Gearmand } from '../support/servers.js';
import { waitForEvent } from '../support/wait.js';

const BACKOFF = { initialDelay: 20, maxDelay: 200 };
const IN_FLIGHT = 64;
const JOB_TIMEOUT = 3000;
const RECOVERY_LIMIT = 2000;

const res = useResources();
const figures: string[] = [];

afterAll(() =>
  console.log(
    `gearmand SIGKILL/restart figures (backoff ${JSON.stringify(BACKOFF)}; times from the restart() call):\n  ${figures.join('\n  ')}`,
  ),
);

function echoWorker(servers: string[], fn: string): GearmanWorker {
  const w = new GearmanWorker({ servers, reconnect: BACKOFF, connectTimeout: 2000, maxJobs: 16 });
  w.on('error', () => undefined);
  // Answers on a later turn, so jobs are really in flight on the worker when the server dies.
  w.register(fn, (job) => new Promise((resolve) => setImmediate(() => resolve(`ok:${job.payload.toString()}`))));
  res.defer(() => w.close(500));
  return w;
}

function client(servers: string[]): GearmanClient {
  const c = new GearmanClient({ servers, reconnect: BACKOFF, connectTimeout: 2000 });
  c.on('error', () => undefined);
  res.defer(() => c.close());
  return c;
}

/**
 * A client and an echo worker for `fn` on `servers`, every connection up, and a load of IN_FLIGHT
 * round trips with `timeout` (and, given `unique`, unique `${unique}-${n}` and retry).
 */
async function startLoad(servers: string[], fn: string, timeout: number, unique?: string) {
  const c = client(servers);
  const w = echoWorker(servers, fn);
  await Promise.all([c.connect(), w.start()]);
  await Promise.all([...c.connections, ...w.connections].map((conn) => conn.waitConnected(3000)));
  const options = (n: number) =>
    unique === undefined ? { timeout } : { unique: `${unique}-${n}`, retry: true, timeout };
  const load = new RoundTripLoad((n) => c.run(fn, String(n), options(n)), {
    inFlight: IN_FLIGHT,
    limitMs: timeout,
    expected: (n) => `ok:${n}`,
  }).start();
  res.defer(() => load.stop().catch(() => undefined));
  return { c, w, load };
}

/**
 * Kills `g`, keeps it down until client and worker have each failed `downAttempts` reconnects (so
 * their backoff has grown), restarts it, and measures how long client, worker and the load take to
 * work again: from the restart() call (gearmand's own start-up included) and from the moment
 * gearmand answered again.
 */
async function killAndRestart(
  g: Gearmand,
  c: GearmanClient,
  w: GearmanWorker,
  load: RoundTripLoad,
  label: string,
  downAttempts = 4,
) {
  const isG = (s: string) => s === g.address;
  const clientDown = waitForEvent(c, 'disconnected', { filter: isG, what: 'the client to see the kill' });
  const workerDown = waitForEvent(w, 'disconnected', { filter: isG, what: 'the worker to see the kill' });
  const retried = (e: GearmanClient | GearmanWorker) =>
    waitForEvent(e, 'reconnecting', {
      filter: (s: string, attempt: number) => isG(s) && attempt >= downAttempts,
      timeoutMs: 5000,
      what: `reconnect attempt ${downAttempts}`,
    });
  const outage = Promise.all([retried(c), retried(w)]);
  const completedBefore = load.completed;
  const failedBefore = load.failed;
  await g.kill();
  const killedAt = performance.now();
  await Promise.all([clientDown, workerDown, outage]);
  const stamp = (e: GearmanClient | GearmanWorker) =>
    waitForEvent(e, 'connected', { filter: isG, timeoutMs: 10_000, what: 'a reconnect' }).then(() => performance.now());
  const clientUp = stamp(c);
  const workerUp = stamp(w);
  const restartCalled = performance.now();
  await g.restart();
  const answering = performance.now(); // gearmand answers `version` again
  const [clientAt, workerAt] = await Promise.all([clientUp, workerUp]);
  const firstJobAt = await load.firstCompletionSince(restartCalled, 10_000);
  const since = (t: number, from: number) => Math.round(t - from);
  const times = {
    down: since(restartCalled, killedAt),
    gearmandStart: since(answering, restartCalled),
    client: since(clientAt, restartCalled),
    worker: since(workerAt, restartCalled),
    firstJob: since(firstJobAt, restartCalled),
    clientAfterAnswering: since(clientAt, answering),
  };
  figures.push(
    `${label}: ${completedBefore} completed before the kill, ${load.failed - failedBefore} failed during the outage; ms: ${JSON.stringify(times)}`,
  );
  return times;
}

describe('gearmand SIGKILL and restart under a round-trip load of 64 in flight', () => {
  it('every foreground job completes or fails with a typed error within its timeout; client and worker work again within 2 s', async () => {
    const g = await res.gearmand();
    const { c, w, load } = await startLoad([g.address], 'crash-roundtrip', JOB_TIMEOUT);

    for (let cycle = 1; cycle <= 3; cycle++) {
      await load.until(() => load.completed >= cycle * 1000, 10_000, `${cycle * 1000} completions`);
      const times = await killAndRestart(g, c, w, load, `single server, kill #${cycle}`);
      expect(times.client).toBeLessThan(RECOVERY_LIMIT);
      expect(times.worker).toBeLessThan(RECOVERY_LIMIT);
      expect(times.firstJob).toBeLessThan(RECOVERY_LIMIT);
    }
    await load.until(() => load.completed >= 4000, 10_000, '4000 completions');
    await load.stop();
    figures.push(`single server: ${load.summary()}`);

    expect(load.untyped).toEqual([]);
    expect(load.wrong).toEqual([]);
    expect(load.late).toEqual([]);
    expect(load.pending).toBe(0);
    expect(load.completed + load.failed).toBe(load.started);
    // The kills did hit jobs in flight, and those failed with the lost connection (or no server yet).
    expect(load.failed).toBeGreaterThan(0);
    for (const key of Object.keys(load.failures)) {
      expect([
        'GearmanConnectionError:CONNECTION_LOST',
        'GearmanConnectionError:NO_SERVER',
        'GearmanTimeoutError:TIMEOUT',
      ]).toContain(key);
    }
  }, 60_000);

  it('with retry on unique jobs over two servers, every job completes through kills of either server', async () => {
    const servers = [await res.gearmand(), await res.gearmand()];
    const { c, w, load } = await startLoad(
      servers.map((s) => s.address),
      'crash-retry',
      10_000,
      'retry',
    );

    for (let cycle = 1; cycle <= 4; cycle++) {
      await load.until(() => load.completed >= cycle * 1000, 10_000, `${cycle * 1000} completions`);
      const victim = servers[cycle % 2];
      const times = await killAndRestart(victim, c, w, load, `two servers, kill #${cycle} (${victim.address})`);
      expect(times.client).toBeLessThan(RECOVERY_LIMIT);
      expect(times.worker).toBeLessThan(RECOVERY_LIMIT);
    }
    await load.until(() => load.completed >= 5000, 10_000, '5000 completions');
    await load.stop();
    figures.push(`two servers with retry: ${load.summary()}`);

    expect(load.untyped).toEqual([]);
    expect(load.wrong).toEqual([]);
    expect(load.late).toEqual([]);
    expect(load.failures).toEqual({});
    expect(load.completed).toBe(load.started);
  }, 60_000);

  it('with retry on unique jobs and a single server, every job completes once the server is back', async () => {
    const g = await res.gearmand();
    const { c, w, load } = await startLoad([g.address], 'crash-retry-single', 10_000, 'single');
    for (let cycle = 1; cycle <= 2; cycle++) {
      await load.until(() => load.completed >= cycle * 1000, 10_000, `${cycle * 1000} completions`);
      const times = await killAndRestart(g, c, w, load, `single server with retry, kill #${cycle}`);
      expect(times.firstJob).toBeLessThan(RECOVERY_LIMIT);
    }
    await load.until(() => load.completed >= 3000, 10_000, '3000 completions');
    await load.stop();
    figures.push(`single server with retry: ${load.summary()}`);
    expect(load.untyped).toEqual([]);
    expect(load.wrong).toEqual([]);
    expect(load.failures).toEqual({});
    expect(load.completed).toBe(load.started);
  }, 60_000);
});
