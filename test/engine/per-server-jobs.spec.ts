/**
 * `maxJobsPerServer` with two real gearmands: a server with a long queue takes at most that many
 * of the worker's slots, so the other server's jobs still run.
 */
import { EventEmitter } from 'node:events';
import type { GearmanJob, GearmanWorkerOptions } from '../../lib/engine/index.js';
import { GearmanWorker } from '../../lib/engine/index.js';
import { invalidArgument } from '../support/errors.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { quietPeriod, recordEvents, waitForCount, within } from '../support/wait.js';

const busy = useGearmand();
const quiet = useGearmand();
const res = useResources();

/**
 * A worker on both servers whose handlers hold their jobs until the test's cleanup (or `release`),
 * recording the server of each job that starts; six jobs queued on the busy server first.
 */
async function setup(options: GearmanWorkerOptions) {
  const fn = fnName('per-server');
  const release = res.gate();
  const starts = new EventEmitter();
  const started = recordEvents<[string]>(starts, 'started');
  /** Jobs running per server now, and the most seen at once. */
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  const worker = res.worker({ servers: [busy.address, quiet.address], ...options });
  worker.register(fn, async (job) => {
    const now = (running.get(job.server) ?? 0) + 1;
    running.set(job.server, now);
    peak.set(job.server, Math.max(now, peak.get(job.server) ?? 0));
    starts.emit('started', job.server);
    await release.promise;
    running.set(job.server, running.get(job.server)! - 1);
    return job.server;
  });
  await worker.start();
  await Promise.all(worker.connections.map((c) => c.waitConnected(3000)));
  const busyClient = await res.client({ servers: busy.address });
  const quietClient = await res.client({ servers: quiet.address });
  const busyJobs = Array.from({ length: 6 }, (_, i) => busyClient.submit(fn, `busy-${i}`));
  const servers = () => started.events.map((e) => e.args[0]);
  return { fn, release, starts, started, servers, busyJobs, quietClient, peak };
}

const results = (jobs: GearmanJob[]) => within(Promise.all(jobs.map((j) => j.result())), 5000, 'the jobs');

describe('maxJobsPerServer', () => {
  it("keeps slots for the other server: its jobs run while the busy server's queue is long", async () => {
    const { fn, release, starts, started, servers, busyJobs, quietClient, peak } = await setup({
      maxJobs: 4,
      maxJobsPerServer: 2,
    });
    await waitForCount(starts, 'started', started, 2);
    await quietPeriod(200);
    expect(servers()).toEqual([busy.address, busy.address]);

    const quietJobs = [
      quietClient.submit(fn, 'quiet-0'),
      quietClient.submit(fn, 'quiet-1'),
      quietClient.submit(fn, 'q'),
    ];
    await waitForCount(starts, 'started', started, 4);
    expect(servers().slice(2)).toEqual([quiet.address, quiet.address]);
    // maxJobs still bounds the whole: 2 + 2.
    await quietPeriod(200);
    expect(started.events).toHaveLength(4);

    release.resolve();
    await expect(results(busyJobs)).resolves.toEqual(busyJobs.map(() => Buffer.from(busy.address)));
    await expect(results(quietJobs)).resolves.toEqual(quietJobs.map(() => Buffer.from(quiet.address)));
    // Never more than 2 at once from one server, while the queues drained.
    expect(Object.fromEntries(peak)).toEqual({ [busy.address]: 2, [quiet.address]: 2 });
  });

  it('without it, the busy server takes every slot and the other waits (why the option exists)', async () => {
    const { fn, release, starts, started, servers, busyJobs, quietClient } = await setup({ maxJobs: 4 });
    await waitForCount(starts, 'started', started, 4);
    const quietJob = quietClient.submit(fn, 'quiet');
    await quietJob.created();
    await quietPeriod(300);
    expect(servers()).toEqual([busy.address, busy.address, busy.address, busy.address]);
    release.resolve();
    await expect(results([...busyJobs, quietJob])).resolves.toHaveLength(7);
  });

  it('refuses a value that is not a whole number from 1', () => {
    invalidArgument(() => new GearmanWorker({ maxJobsPerServer: 0 }));
    invalidArgument(() => new GearmanWorker({ maxJobsPerServer: 1.5 }));
  });
});
