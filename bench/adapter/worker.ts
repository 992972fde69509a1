/**
 * Bench worker on this project's engine. `--mode echo` answers `bench_echo` with the payload until
 * SIGTERM; `--mode drain --n N` exits after N jobs. `BENCH_WORKER_CONCURRENCY` sets `maxJobs`
 * (default 64: the engine GRABs ahead only while slots are free, so it does not busy-loop on a
 * short queue).
 */
import { GearmanWorker } from '../../lib/engine/index.js';
import { driver } from './driver.js';

const B = driver();
const o = B.parseArgs();
const maxJobs = Number(process.env.BENCH_WORKER_CONCURRENCY || 64);
const worker = new GearmanWorker({ servers: [`${o.host}:${o.port}`], maxJobs, reconnect: false });
const counter = B.workerCounter(o);

worker.register('bench_echo', (job) => {
  if (counter.onJob(job.payload)) setImmediate(() => B.finish(counter.bad === 0, () => worker.close()));
  return job.payload;
});
worker.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`));
worker.start().catch((err) => B.die(err));
