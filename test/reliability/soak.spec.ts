/**
 * Soak, CI profile: the same script as `npm run test:soak` (test/soak/soak.ts), with 20 000 jobs
 * instead of 1 000 000, through ClientGearman -> gearmand -> ServerGearman in a child process run
 * with --expose-gc. Every job completes, RSS grows by less than 20 MB after warm-up, and active
 * handles, resources and connection listener counts stay the same; the process exits by itself.
 */
import { fileURLToPath } from 'node:url';
import { useResources } from '../support/harness.js';

const SOAK = fileURLToPath(new URL('../soak/soak.ts', import.meta.url));
const JOBS = Number(process.env.SOAK_CI_JOBS ?? 20_000);

const res = useResources();

it(`${JOBS} jobs through the Nest transport: nothing grows`, async () => {
  const child = res.tsx(SOAK, ['--jobs', String(JOBS), '--warmup', String(Math.floor(JOBS / 4))], {
    nodeArgs: ['--expose-gc'],
  });
  const line = await child.line('REPORT ', 60_000);
  const exit = await child.exit(10_000);
  const report = JSON.parse(line.slice('REPORT '.length)) as {
    completed: number;
    seconds: number;
    jobsPerSecond: number;
    rssMb: { afterWarmup: number; end: number; growth: number };
    handles: { afterWarmup: number; end: number };
    failures: string[];
  };
  console.log(
    `soak (CI profile): ${report.completed} jobs in ${report.seconds} s, ${report.jobsPerSecond} jobs/s after warm-up; ` +
      `RSS ${report.rssMb.afterWarmup} -> ${report.rssMb.end} MB (+${report.rssMb.growth}); handles ${report.handles.afterWarmup} -> ${report.handles.end}`,
  );
  expect(report.failures).toEqual([]);
  expect(report.completed).toBe(JOBS);
  expect(report.rssMb.growth).toBeLessThan(20);
  expect(exit).toEqual({ code: 0, signal: null });
}, 90_000);
