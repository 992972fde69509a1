/**
 * Reliability: worker processes killed with SIGKILL while each holds a job (the slow-worker fixture,
 * which never finishes what it takes). gearmand requeues the jobs under the same handles
 * (docs/gearmand-behaviour.md#lost-workers), a worker that has gone to sleep meanwhile is woken and
 * completes them, and each client receives exactly one result per job: no loss, no duplicate, no
 * failure.
 */
import type { GearmanJob } from '../../lib/engine/index.js';
import { fixturePath, type TsxChild } from '../support/child.js';
import { useGearmand, useResources } from '../support/harness.js';
import { eventually, quietPeriod, recordEvents, within } from '../support/wait.js';

const SLOW_WORKERS = 3;
const OTHER_JOBS = 30;

const g = useGearmand();
const res = useResources(g);

it(`${SLOW_WORKERS} worker processes SIGKILLed mid-job: gearmand requeues, a sleeping worker completes them, one result per job`, async () => {
  const fn = 'crashing-worker';

  const slow: TsxChild[] = [];
  for (let i = 0; i < SLOW_WORKERS; i++) {
    slow.push(res.tsx(fixturePath('slow-worker.ts'), [fn, g.address]));
  }
  await Promise.all(slow.map((s) => s.line('READY', 15_000)));

  const c = await res.client();
  const track = (job: GearmanJob) => ({
    job,
    complete: recordEvents(job, 'complete'),
    fail: recordEvents(job, 'fail'),
  });

  // One job for each slow worker: each takes one and holds it.
  const held = Array.from({ length: SLOW_WORKERS }, (_, i) => track(c.submit(fn, `held-${i}`)));
  const got = await Promise.all(slow.map((s) => s.line('GOT ', 5000)));
  const heldHandles = await Promise.all(held.map((h) => h.job.created()));
  expect(got.map((l) => l.split(' ')[1]).sort()).toEqual([...heldHandles].sort());

  // The in-process worker does everything else, then goes to sleep (PRE_SLEEP) with nothing to do.
  const runs: { handle: string; payload: string }[] = [];
  const w = res.worker({ maxJobs: 4 });
  w.register(fn, (job) => {
    runs.push({ handle: job.handle, payload: job.payload.toString() });
    return `done:${job.payload.toString()}`;
  });
  await w.start();
  const others = Array.from({ length: OTHER_JOBS }, (_, i) => track(c.submit(fn, `other-${i}`)));
  const otherResults = await within(Promise.all(others.map((o) => o.job.result())), 5000, 'the other jobs');
  expect(otherResults.map(String)).toEqual(others.map((_, i) => `done:other-${i}`));
  expect(w.activeJobs).toBe(0);

  // SIGKILL every slow worker by PID: their held jobs go back to the queue.
  const killedAt = performance.now();
  await Promise.all(slow.map((s) => s.kill()));
  const heldResults = await within(Promise.all(held.map((h) => h.job.result())), 5000, 'the requeued jobs to complete');
  const recoveredMs = Math.round(performance.now() - killedAt);
  console.log(
    `${SLOW_WORKERS} worker processes SIGKILLed: their jobs completed by the sleeping worker ${recoveredMs} ms after the kill`,
  );
  expect(heldResults.map(String)).toEqual(held.map((_, i) => `done:held-${i}`));

  // Requeued under the same handles (docs/gearmand-behaviour.md#lost-workers), run once more each,
  // by the in-process worker only.
  const heldRuns = runs.filter((r) => r.payload.startsWith('held-'));
  expect(heldRuns.map((r) => r.handle).sort()).toEqual([...heldHandles].sort());
  expect(runs).toHaveLength(SLOW_WORKERS + OTHER_JOBS);

  // Exactly one outcome per job; nothing more arrives in a bounded window.
  await quietPeriod(300);
  for (const t of [...held, ...others]) {
    expect(t.complete.events).toHaveLength(1);
    expect(t.fail.events).toHaveLength(0);
  }
  const admin = res.admin();
  await eventually(
    async () => ((await admin.status()).find((r) => r.function === fn)?.total ?? 0) === 0,
    3000,
    'the queue to be empty',
  );
}, 30_000);
