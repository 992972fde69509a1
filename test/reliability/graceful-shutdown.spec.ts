/**
 * Reliability: SIGTERM to a Nest worker app process (ServerGearman, `enableShutdownHooks()`) while a
 * client keeps it busy. The jobs it is running finish and reach their callers, it takes no job it
 * then abandons, the process exits within its deadline, and nothing is lost: every job submitted
 * completes for the client (the rest are taken by a replacement worker).
 */
import 'reflect-metadata';
import { lastValueFrom } from 'rxjs';
import { fixturePath } from '../support/child.js';
import { useGearmand, useResources } from '../support/harness.js';
import { within } from '../support/wait.js';

const JOBS = 300;
const MAX_JOBS = 8;
const CLOSE_TIMEOUT = 5000;
const EXIT_DEADLINE = CLOSE_TIMEOUT + 2000;

const g = useGearmand({ perTest: true });
const res = useResources(g);

it.each([100, 1])(
  `SIGTERM under load (handlers of %i ms): in-flight jobs finish, the process exits within ${EXIT_DEADLINE} ms, all ${JOBS} jobs complete`,
  async (HANDLER_MS) => {
    const fn = 'graceful-work';
    const app = res.tsx(fixturePath('nest-worker-app.ts'), [
      g.address,
      fn,
      String(HANDLER_MS),
      String(MAX_JOBS),
      String(CLOSE_TIMEOUT),
    ]);
    const appPid = Number((await app.line('READY', 20_000)).split(' ')[1]);

    const client = res.clientProxy();
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
    const replacement = res.worker({ maxJobs: 16 });
    replacement.register(fn, (job) =>
      JSON.stringify({ id: (JSON.parse(job.payload.toString()) as { id: number }).id, pid: 0 }),
    );
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
  },
  60_000,
);
