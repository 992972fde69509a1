/**
 * Several real gearmand processes behind one client: how the strategies place jobs, coalescing
 * across clients by hashing the unique (gearmand only merges inside one server;
 * docs/gearmand-behaviour.md#coalescing), and what happens when a server dies and comes back.
 */
import type { GearmanConnection } from '../../lib/engine/connection.js';
import {
  type GearmanAdmin,
  GearmanClient,
  type GearmanClientOptions,
  type GearmanJob,
  GearmanWorker,
} from '../../lib/engine/index.js';
import { ServerPool } from '../../lib/engine/server-pool.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { freePort } from '../support/servers.js';
import { waitForEvent, within } from '../support/wait.js';

/** Small delays so a restarted server is found again quickly. */
const FAST_RECONNECT = { initialDelay: 50, maxDelay: 500 };

// A test that failed half-way may leave a server killed: useGearmand brings it back for the next test.
const gearmands = [useGearmand(), useGearmand(), useGearmand()];
const res = useResources();

/** The three gearmands (the same objects all along: restart() keeps them). */
const servers = () => gearmands.map((g) => g.server);

/** Addresses of servers()[i] for each index, in that order. */
function addresses(...order: number[]): string[] {
  return order.map((i) => servers()[i].address);
}

/** A client whose connections are all up (hash routing only agrees across clients when they see the same live servers). */
async function connectedClient(options: GearmanClientOptions): Promise<GearmanClient> {
  const client = await res.client({ reconnect: FAST_RECONNECT, connectTimeout: 2000, ...options });
  await Promise.all(client.connections.map((c) => c.waitConnected(2000)));
  return client;
}

function admin(): GearmanAdmin {
  return res.admin({ servers: addresses(0, 1, 2) });
}

/** Jobs per server address (every server listed, zero if none). */
function countByServer(jobs: readonly GearmanJob[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(servers().map((s) => [s.address, 0]));
  for (const job of jobs) counts[job.server ?? 'none'] = (counts[job.server ?? 'none'] ?? 0) + 1;
  return counts;
}

/** TOTAL of `fn` on each server, from the admin `status` command: what gearmand itself holds (0 on a killed one). */
async function queuedByServer(fn: string): Promise<Record<string, number>> {
  const results = await admin().statusByServer();
  return Object.fromEntries(
    results.map((r) => {
      if (!r.ok) {
        if (servers().find((s) => s.address === r.server)?.running === false) return [r.server, 0];
        throw r.error;
      }
      return [r.server, r.value.find((row) => row.function === fn)?.total ?? 0];
    }),
  );
}

/** Submits background jobs (no worker needed: they stay queued) and waits until gearmand created all of them. */
async function submitBackground(
  client: GearmanClient,
  fn: string,
  uniques: (string | undefined)[],
): Promise<GearmanJob[]> {
  const jobs = uniques.map((unique, i) => client.submit(fn, `payload-${i}`, { background: true, unique }));
  await within(Promise.all(jobs.map((j) => j.created())), 5000, `JOB_CREATED for ${jobs.length} jobs`);
  return jobs;
}

const range = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('hash strategy (default)', () => {
  it('coalesces the same unique from two separate clients: one server, one handle, one execution, both get the result', async () => {
    const fn = fnName('coalesce');
    const a = await connectedClient({ servers: addresses(0, 1, 2) });
    const b = await connectedClient({ servers: addresses(2, 0, 1) });
    const uniques = range(30, 'order');

    // No worker yet: every job stays queued while the second client submits the same unique.
    const fromA = uniques.map((u) => a.submit(fn, `data-${u}`, { unique: u }));
    const fromB = uniques.map((u) => b.submit(fn, `data-${u}`, { unique: u }));
    await within(Promise.all([...fromA, ...fromB].map((j) => j.created())), 5000, 'JOB_CREATED for every submit');

    for (let i = 0; i < uniques.length; i++) {
      expect(fromB[i].server).toBe(fromA[i].server);
      expect(fromB[i].handle).toBe(fromA[i].handle);
    }
    // gearmand holds one job per unique, not two.
    const queued = await queuedByServer(fn);
    expect(Object.values(queued).reduce((x, y) => x + y, 0)).toBe(uniques.length);
    expect(queued).toEqual(countByServer(fromA));
    expect(Object.values(queued).filter((n) => n > 0).length).toBeGreaterThan(1);

    const executions = new Map<string, number>();
    const worker = new GearmanWorker({ servers: addresses(0, 1, 2), maxJobs: 5, reconnect: FAST_RECONNECT });
    res.defer(() => worker.close(1000));
    worker.register(fn, (job) => {
      executions.set(job.unique, (executions.get(job.unique) ?? 0) + 1);
      return `done:${job.payload.toString()}`;
    });
    await worker.start();

    const results = await within(Promise.all([...fromA, ...fromB].map((j) => j.result())), 10_000, 'every result');
    results.forEach((r, i) => expect(r.toString()).toBe(`done:data-${uniques[i % uniques.length]}`));
    expect(executions.size).toBe(uniques.length);
    for (const n of executions.values()) expect(n).toBe(1);
  });

  it('spreads 300 different uniques over all three servers', async () => {
    const fn = fnName('spread');
    const client = await connectedClient({ servers: addresses(0, 1, 2) });
    const jobs = await submitBackground(client, fn, range(300, 'spread'));

    const counts = countByServer(jobs);
    expect(Object.keys(counts)).toHaveLength(3);
    // 160 points per server on the ring: each gets about a third; far from all-or-nothing.
    for (const n of Object.values(counts)) expect(n).toBeGreaterThanOrEqual(50);
    expect(await queuedByServer(fn)).toEqual(counts);
  });

  it('maps a unique to the same server whatever order the servers are listed in', async () => {
    const fn = fnName('order');
    const orders = [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
    ];
    const clients = await Promise.all(orders.map((o) => connectedClient({ servers: addresses(...o) })));
    const uniques = range(100, 'any-order');
    const perClient = [];
    for (const c of clients) perClient.push(await submitBackground(c, fn, uniques));

    for (let i = 0; i < uniques.length; i++) {
      expect(perClient[1][i].server).toBe(perClient[0][i].server);
      expect(perClient[2][i].server).toBe(perClient[0][i].server);
      expect(perClient[1][i].handle).toBe(perClient[0][i].handle);
      expect(perClient[2][i].handle).toBe(perClient[0][i].handle);
    }
    // Background jobs with one unique coalesce too: 100 jobs in gearmand, not 300.
    const queued = await queuedByServer(fn);
    expect(queued).toEqual(countByServer(perClient[0]));
    expect(Object.values(queued).reduce((x, y) => x + y, 0)).toBe(100);
  });

  it('agrees across clients for jobs submitted right after connect() or without it, before every server is up', async () => {
    // Reference: a client that waited for all three connections.
    const settled = await connectedClient({ servers: addresses(0, 1, 2) });
    const uniques = range(100, 'startup');
    const reference = await submitBackground(settled, fnName('startup-ref'), uniques);

    // connect() resolves once ONE server is connected; the others are still on their first attempt.
    const quick = new GearmanClient({ servers: addresses(1, 0, 2), reconnect: FAST_RECONNECT });
    res.defer(() => quick.close());
    await quick.connect();
    // No connect() at all: the first submit starts the connections.
    const lazy = new GearmanClient({ servers: addresses(2, 1, 0), reconnect: FAST_RECONNECT });
    res.defer(() => lazy.close());

    const fromQuick = await submitBackground(quick, fnName('startup-quick'), uniques);
    const fromLazy = await submitBackground(lazy, fnName('startup-lazy'), uniques);
    expect(fromQuick.map((j) => j.server)).toEqual(reference.map((j) => j.server));
    expect(fromLazy.map((j) => j.server)).toEqual(reference.map((j) => j.server));
  });

  it('does not wait for a server that is down from the start: its uniques go to the next server on the ring at once', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const client = new GearmanClient({
      servers: [...addresses(0, 1), dead],
      connectTimeout: 3000,
      reconnect: FAST_RECONNECT,
    });
    res.defer(() => client.close());
    const uniques = range(60, 'dead-start');
    const started = performance.now();
    const jobs = await submitBackground(client, fnName('dead-start'), uniques);
    // Well under connectTimeout: the refused first attempt is enough to route around the server.
    expect(performance.now() - started).toBeLessThan(1000);
    const counts = countByServer(jobs);
    expect(counts[dead]).toBeUndefined();
    expect(counts[servers()[0].address] + counts[servers()[1].address]).toBe(60);
    // The dead server's share went to both others (ring successors differ per unique), not one fallback.
    expect(counts[servers()[0].address]).toBeGreaterThan(0);
    expect(counts[servers()[1].address]).toBeGreaterThan(0);
  });

  it('sends the uniques of a killed server to the next live server on the ring, and back once it restarts', async () => {
    const a = await connectedClient({ servers: addresses(0, 1, 2) });
    const b = await connectedClient({ servers: addresses(1, 2, 0) });
    const uniques = range(60, 'ring');
    const victim = servers()[0];

    const before = await submitBackground(a, fnName('ring-before'), uniques);
    const home = before.map((j) => j.server!);
    const victimUniques = uniques.filter((_, i) => home[i] === victim.address);
    expect(victimUniques.length).toBeGreaterThan(0);
    expect(victimUniques.length).toBeLessThan(uniques.length);

    const aDown = waitForEvent(a, 'disconnected', { filter: (s: string) => s === victim.address });
    const bDown = waitForEvent(b, 'disconnected', { filter: (s: string) => s === victim.address });
    await victim.kill();
    await Promise.all([aDown, bDown]);

    const fnDuring = fnName('ring-during');
    const duringA = await submitBackground(a, fnDuring, uniques);
    const duringB = await submitBackground(b, fnDuring, uniques);
    // The ring's own answer with the victim down (stub connections: the pool only reads address and state).
    const ring = new ServerPool(
      servers().map((s) => ({
        address: s.address,
        connected: s !== victim,
        state: s === victim ? 'reconnecting' : 'connected',
      })) as unknown as GearmanConnection[],
    );
    uniques.forEach((u, i) => {
      expect(duringA[i].server).toBe(ring.pick('hash', u)!.address);
      if (home[i] === victim.address) expect(duringA[i].server).not.toBe(victim.address);
      // Consistent hashing: only the dead server's uniques move.
      else expect(duringA[i].server).toBe(home[i]);
      // Both clients still agree, so coalescing keeps working during the outage.
      expect(duringB[i].server).toBe(duringA[i].server);
      expect(duringB[i].handle).toBe(duringA[i].handle);
    });
    expect(await queuedByServer(fnDuring)).toEqual(countByServer(duringA));

    const aUp = waitForEvent(a, 'connected', { filter: (s: string) => s === victim.address, timeoutMs: 5000 });
    const bUp = waitForEvent(b, 'connected', { filter: (s: string) => s === victim.address, timeoutMs: 5000 });
    await victim.restart();
    await Promise.all([aUp, bUp]);

    const after = await submitBackground(a, fnName('ring-after'), uniques);
    expect(after.map((j) => j.server)).toEqual(home);
  });
});

describe('a worker connected to all three servers', () => {
  it('keeps running jobs while one server is down and takes jobs from it again after its restart', async () => {
    const fn = fnName('serve');
    const ran: string[] = [];
    const worker = new GearmanWorker({ servers: addresses(0, 1, 2), maxJobs: 4, reconnect: FAST_RECONNECT });
    res.defer(() => worker.close(1000));
    worker.register(fn, (job) => {
      ran.push(job.server);
      return `${job.payload.toString()}@${job.server}`;
    });
    await worker.start();
    await Promise.all(worker.connections.map((c) => c.waitConnected(2000)));
    const client = await connectedClient({ servers: addresses(0, 1, 2) });
    const uniques = range(30, 'serve');
    const victim = servers()[2];

    const runAll = async (label: string) => {
      const jobs = uniques.map((u) => client.submit(fn, `${label}-${u}`, { unique: `${label}-${u}` }));
      const results = await within(Promise.all(jobs.map((j) => j.result())), 10_000, `${label} results`);
      results.forEach((r, i) => expect(r.toString()).toBe(`${label}-${uniques[i]}@${jobs[i].server}`));
      return jobs;
    };

    const before = await runAll('before');
    expect(new Set(before.map((j) => j.server)).size).toBe(3);

    const clientDown = waitForEvent(client, 'disconnected', { filter: (s: string) => s === victim.address });
    const workerDown = waitForEvent(worker, 'disconnected', { filter: (s: string) => s === victim.address });
    await victim.kill();
    await Promise.all([clientDown, workerDown]);
    const during = await runAll('during');
    expect(during.filter((j) => j.server === victim.address)).toHaveLength(0);

    const clientUp = waitForEvent(client, 'connected', {
      filter: (s: string) => s === victim.address,
      timeoutMs: 5000,
    });
    const workerUp = waitForEvent(worker, 'connected', {
      filter: (s: string) => s === victim.address,
      timeoutMs: 5000,
    });
    await victim.restart();
    await Promise.all([clientUp, workerUp]);
    ran.length = 0;
    const after = await runAll('after');
    const onVictim = after.filter((j) => j.server === victim.address).length;
    expect(onVictim).toBeGreaterThan(0);
    // Every job on the restarted server was run through the worker's new connection to it.
    expect(ran.filter((s) => s === victim.address)).toHaveLength(onVictim);
  });
});

describe('round-robin strategy', () => {
  it('spreads jobs without a unique evenly', async () => {
    const fn = fnName('rr');
    const client = await connectedClient({ servers: addresses(0, 1, 2), strategy: 'round-robin' });
    const jobs = await submitBackground(client, fn, new Array(90).fill(undefined));

    const expected = Object.fromEntries(servers().map((s) => [s.address, 30]));
    expect(countByServer(jobs)).toEqual(expected);
    expect(await queuedByServer(fn)).toEqual(expected);
  });

  it('skips a killed server and uses it again once it restarts', async () => {
    const client = await connectedClient({ servers: addresses(0, 1, 2), strategy: 'round-robin' });
    const victim = servers()[1];
    const down = waitForEvent(client, 'disconnected', { filter: (s: string) => s === victim.address });
    await victim.kill();
    await down;

    const during = await submitBackground(client, fnName('rr-during'), new Array(40).fill(undefined));
    expect(countByServer(during)).toEqual({
      [servers()[0].address]: 20,
      [servers()[1].address]: 0,
      [servers()[2].address]: 20,
    });

    const up = waitForEvent(client, 'connected', { filter: (s: string) => s === victim.address, timeoutMs: 5000 });
    await victim.restart();
    await up;

    const fnAfter = fnName('rr-after');
    const after = await submitBackground(client, fnAfter, new Array(30).fill(undefined));
    const expected = Object.fromEntries(servers().map((s) => [s.address, 10]));
    expect(countByServer(after)).toEqual(expected);
    expect(await queuedByServer(fnAfter)).toEqual(expected);
  });
});

describe('failover strategy', () => {
  it('uses the first live server in the order given, the next one while it is down, and returns to it', async () => {
    const client = await connectedClient({ servers: addresses(2, 0, 1), strategy: 'failover' });
    const [first, second] = [servers()[2], servers()[0]];

    const before = await submitBackground(client, fnName('fo-before'), [
      ...new Array(10).fill(undefined),
      ...range(10, 'fo'),
    ]);
    expect(new Set(before.map((j) => j.server))).toEqual(new Set([first.address]));

    const down = waitForEvent(client, 'disconnected', { filter: (s: string) => s === first.address });
    await first.kill();
    await down;
    const fnDuring = fnName('fo-during');
    const during = await submitBackground(client, fnDuring, [...new Array(10).fill(undefined), ...range(10, 'fo')]);
    expect(new Set(during.map((j) => j.server))).toEqual(new Set([second.address]));
    expect(await queuedByServer(fnDuring)).toEqual({
      [servers()[0].address]: 20,
      [servers()[1].address]: 0,
      [servers()[2].address]: 0,
    });

    const up = waitForEvent(client, 'connected', { filter: (s: string) => s === first.address, timeoutMs: 5000 });
    await first.restart();
    await up;
    const after = await submitBackground(client, fnName('fo-after'), new Array(10).fill(undefined));
    expect(new Set(after.map((j) => j.server))).toEqual(new Set([first.address]));
  });
});
