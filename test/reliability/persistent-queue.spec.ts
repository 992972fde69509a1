/**
 * gearmand only (its libsqlite3 queue; jest.config.js leaves this suite out where gearmand is
 * missing). Reliability: background jobs in gearmand's libsqlite3 queue survive a restart (only
 * background jobs are persisted, replayed with new handles;
 * docs/gearmand-behaviour.md#persistent-queues). N background jobs are submitted with no worker,
 * gearmand is stopped (SIGTERM) or killed (SIGKILL) and restarted on the same port and queue file,
 * then a worker starts: every job runs at least once (distinct payloads counted).
 */
import { GearmanClient } from '../../lib/engine/index.js';
import { useResources } from '../support/harness.js';
import { eventually, waitForEvent } from '../support/wait.js';

const N = 500;
const BACKOFF = { initialDelay: 20, maxDelay: 200 };
const res = useResources();
const figures: string[] = [];

afterAll(() => console.log(`persistent queue (libsqlite3) figures:\n  ${figures.join('\n  ')}`));

type Stop = 'stop' | 'kill';

async function run(how: Stop, uniques: 'distinct' | 'none') {
  const g = await res.gearmand({ queueType: 'libsqlite3' });
  const fn = `persist-${how}-${uniques}`;

  // gearmand writes each submit to sqlite before it answers: on a loaded disk its replies stall for
  // seconds, which the default heartbeat (2 s) would take for a dead server.
  const c = new GearmanClient({
    servers: [g.address],
    reconnect: BACKOFF,
    connectTimeout: 3000,
    heartbeat: { interval: 1000, timeout: 10_000 },
  });
  c.on('error', () => undefined);
  res.defer(() => c.close());
  await c.connect();
  const payloads = Array.from({ length: N }, (_, i) => `job-${i}-${'x'.repeat(i % 40)}`);
  const handles = await Promise.all(
    payloads.map((p, i) =>
      c
        .submit(fn, p, {
          background: true,
          priority: (['high', 'normal', 'low'] as const)[i % 3],
          unique: uniques === 'distinct' ? `u-${i}` : undefined,
        })
        .created(),
    ),
  );
  expect(new Set(handles).size).toBe(N);

  // Down with the jobs queued and no worker; the client sees it and keeps retrying.
  const down = waitForEvent(c, 'disconnected', { what: 'the client to see gearmand go' });
  const stoppedAt = performance.now();
  if (how === 'stop') await g.stop();
  else await g.kill();
  await down;
  const up = waitForEvent(c, 'connected', { timeoutMs: 5000, what: 'the client to reconnect' });
  await g.restart();
  await up;
  const restartMs = Math.round(performance.now() - stoppedAt);

  // The queue is back before any worker exists.
  const admin = res.admin({ servers: [g.address] });
  const queued = (await admin.status()).find((r) => r.function === fn)?.total ?? 0;

  const seen = new Map<string, number>();
  let allSeen: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allSeen = resolve));
  const w = res.worker({ servers: [g.address], reconnect: BACKOFF, maxJobs: 8 });
  w.register(fn, (job) => {
    const p = job.payload.toString();
    seen.set(p, (seen.get(p) ?? 0) + 1);
    if (seen.size === N) allSeen();
  });
  const workerStarted = performance.now();
  await w.start();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    done,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 10_000);
    }),
  ]).finally(() => clearTimeout(timer));
  const drainMs = Math.round(performance.now() - workerStarted);

  const missing = payloads.filter((p) => !seen.has(p));
  const unexpected = [...seen.keys()].filter((p) => !payloads.includes(p));
  const duplicates = [...seen.values()].reduce((a, n) => a + n - 1, 0);
  figures.push(
    `${how} (${how === 'stop' ? 'SIGTERM' : 'SIGKILL'}), uniques ${uniques}: ${N} submitted, ${queued} queued after the restart (${restartMs} ms down+up), ` +
      `${seen.size} distinct run in ${drainMs} ms, ${duplicates} duplicate runs, ${missing.length} missing`,
  );
  return { missing, unexpected, queued, admin, fn };
}

describe.each<Stop>(['stop', 'kill'])(
  'background jobs in a libsqlite3 queue across a gearmand %s and restart',
  (how) => {
    it(`every one of ${N} jobs with distinct uniques runs at least once`, async () => {
      const r = await run(how, 'distinct');
      expect(r.missing).toEqual([]);
      expect(r.unexpected).toEqual([]);
      expect(r.queued).toBe(N);
      // Nothing left behind: the queue drains to 0 once the last WORK_COMPLETEs reach gearmand
      // (only observable through the admin protocol, so polled, bounded).
      await eventually(
        async () => ((await r.admin.status()).find((s) => s.function === r.fn)?.total ?? 0) === 0,
        5000,
        'the queue to drain',
      );
    }, 30_000);

    it(`every one of ${N} jobs submitted without a unique runs at least once`, async () => {
      const r = await run(how, 'none');
      expect(r.missing).toEqual([]);
      expect(r.unexpected).toEqual([]);
      expect(r.queued).toBe(N);
    }, 30_000);
  },
);
