/**
 * Reliability: SIGTERM to a Nest worker app process (ServerGearman, `enableShutdownHooks()`) while a
 * client keeps it busy. The jobs it is running finish and reach their callers, it takes no job it
 * then abandons, the process exits within its deadline, and nothing is lost: every job submitted
 * completes for the client (the rest are taken by a replacement worker).
 */
import 'reflect-metadata';
import { lastValueFrom } from 'rxjs';
import { ClientGearman } from '../../lib/nest/index.js';
import { GearmanWorker } from '../../lib/engine/index.js';
import { fixturePath, spawnTsx } from '../support/child.js';
import { Gearmand } from '../support/gearmand.js';
import { within } from '../support/wait-for.js';

const JOBS = 300;
const MAX_JOBS = 8;
const CLOSE_TIMEOUT = 5000;
const EXIT_DEADLINE = CLOSE_TIMEOUT + 2000;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it.each([100, 1])(`SIGTERM under load (handlers of %i ms): in-flight jobs finish, the process exits within ${EXIT_DEADLINE} ms, all ${JOBS} jobs complete`, async (HANDLER_MS) => {
  const g = await Gearmand.start();
  cleanups.push(() => g.dispose());
  const fn = 'graceful-work';
  const app = spawnTsx(fixturePath('nest-worker-app.ts'), [g.address, fn, String(HANDLER_MS), String(MAX_JOBS), String(CLOSE_TIMEOUT)]);
  cleanups.push(() => app.kill());
  const appPid = Number((await app.line('READY', 20_000)).split(' ')[1]);

  const client = new ClientGearman({ servers: [g.address] });
  cleanups.push(() => client.close());
  await client.connect();
  const results = Array.from({ length: JOBS }, (_, id) =>
    lastValueFrom(client.send<{ id: number; pid: number }>(fn, { id })).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    ),
  );

  // Busy: two rounds of maxJobs started, the rest queued in gearmand.
  await app.lineCount('START ', 2 * MAX_JOBS, 5000);
  const signalledAt = performance.now();
  app.child.kill('SIGTERM');
  const exit = await app.exit(EXIT_DEADLINE);
  const exitMs = Math.round(performance.now() - signalledAt);

  const started = app.lines.filter((l) => l.startsWith('START ')).map((l) => Number(l.split(' ')[1]));
  const done = app.lines.filter((l) => l.startsWith('DONE ')).map((l) => Number(l.split(' ')[1]));
  // Every job the app started, it finished (none abandoned for gearmand to run again).
  expect(done.sort((a, b) => a - b)).toEqual([...started].sort((a, b) => a - b));
  expect(app.lines).toContain('SHUTDOWN SIGTERM');
  // Nest re-raises the signal after its shutdown hooks.
  expect(exit.signal === 'SIGTERM' || exit.code === 0).toBe(true);

  // A replacement worker takes what is left in the queue.
  const replacement = new GearmanWorker({ servers: [g.address], maxJobs: 16 });
  cleanups.push(() => replacement.close(500));
  replacement.register(fn, (job) => JSON.stringify({ id: (JSON.parse(job.payload.toString()) as { id: number }).id, pid: 0 }));
  await replacement.start();
  const settled = await within(Promise.all(results), 15_000, 'every job to complete');

  const failed = settled.filter((s) => !s.ok);
  expect(failed).toEqual([]);
  const byApp = settled.filter((s) => s.ok && s.r.pid === appPid).map((s) => (s.ok ? s.r.id : -1));
  expect(settled.map((s) => (s.ok ? s.r.id : -1))).toEqual(Array.from({ length: JOBS }, (_, i) => i));
  // The app's results are exactly the jobs it ran: each completed once, by the process that ran it.
  expect(byApp.sort((a, b) => a - b)).toEqual([...started].sort((a, b) => a - b));
  console.log(
    `SIGTERM to the Nest worker app (pid ${appPid}) with ${MAX_JOBS} jobs of ${HANDLER_MS} ms in flight: exited after ${exitMs} ms ` +
      `(${exit.signal ?? `code ${exit.code}`}); it ran ${started.length} jobs, all finished; the replacement ran ${JOBS - started.length}; ${JOBS}/${JOBS} completed`,
  );
  expect(exitMs).toBeLessThan(EXIT_DEADLINE);
}, 60_000);
