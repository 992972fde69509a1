/**
 * `job.wait(ms)` on a real gearmand: a deadline on the waiting, not on the job. The job stays
 * queued or running, and its result is there for the next wait() or result().
 */
import { GearmanError, GearmanJobError, GearmanTimeoutError } from '../../lib/engine/index.js';
import { rejection } from '../support/errors.js';
import { fnName, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

describe('job.wait(ms)', () => {
  it('gives up waiting with TIMEOUT and keeps the job: it runs on, and its result comes to the next wait', async () => {
    const fn = fnName('wait');
    const { started, release } = await res.heldWorker(fn);
    const client = await res.client();
    const job = client.submit(fn, 'x');
    await within(started.promise, 5000, 'the job to start');

    const before = performance.now();
    const error = await rejection(job.wait(150));
    expect(performance.now() - before).toBeGreaterThanOrEqual(140);
    expect(error).toBeInstanceOf(GearmanTimeoutError);
    expect((error as GearmanError).code).toBe('TIMEOUT');
    expect(error.message).toMatch(/Stopped waiting for job .* after 150 ms; the job goes on \(created\)/);
    expect(job.finished).toBe(false);
    expect(job.state).toBe('created');
    // Still running on its worker: nothing was cancelled.
    expect(await functionStatus(res.admin(), fn)).toEqual({ total: 1, running: 1, workers: 1 });

    const again = job.wait(5000);
    release.resolve('late result');
    await expect(again).resolves.toEqual(Buffer.from('late result'));
    await expect(job.result()).resolves.toEqual(Buffer.from('late result'));
    await expect(job.wait(1)).resolves.toEqual(Buffer.from('late result'));
  });

  it('keeps a queued job queued (no worker yet), and a short wait does not cut a longer one', async () => {
    const fn = fnName('queued');
    const client = await res.client();
    const job = client.submit(fn, 'x');
    await job.created();
    const long = job.wait(10_000);
    await expect(job.wait(50)).rejects.toBeInstanceOf(GearmanTimeoutError);
    expect(await functionStatus(res.admin(), fn)).toEqual({ total: 1, running: 0, workers: 0 });

    const worker = res.worker();
    worker.register(fn, () => 'now');
    await worker.start();
    await expect(within(long, 5000, 'the long wait')).resolves.toEqual(Buffer.from('now'));
  });

  it("rejects with the job's own failure when that comes first", async () => {
    const fn = fnName('fails');
    const worker = res.worker();
    worker.register(fn, () => {
      throw new Error('broken');
    });
    await worker.start();
    const client = await res.client();
    const job = client.submit(fn, 'x');
    const error = await rejection(job.wait(5000));
    expect(error).toBeInstanceOf(GearmanJobError);
    expect((error as GearmanJobError).code).toBe('JOB_EXCEPTION');
    await expect(job.wait(1)).rejects.toBe(error);
  });

  it('refuses a wait that is not whole milliseconds from 0', async () => {
    const client = await res.client();
    const job = client.submit(fnName('never'), 'x', { background: true });
    for (const ms of [-1, 1.5, Number.NaN, 2 ** 31]) {
      const error = await rejection(job.wait(ms));
      expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
    }
    await job.created();
  });
});
