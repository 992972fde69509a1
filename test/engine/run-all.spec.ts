/**
 * `client.runAll(requests, { concurrency, timeout })` on a real gearmand: a list of jobs with a
 * bound on jobs in flight and one deadline, and each job's outcome in the order given.
 */
import { GearmanError, type JobOutcome } from '../../lib/engine/index.js';
import { rejection } from '../support/errors.js';
import { fnName, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** An outcome as plain data: the value as text, or the error's code. */
function summary(outcome: JobOutcome): string {
  return outcome.status === 'fulfilled' ? outcome.value.toString() : `${outcome.reason.code}`;
}

describe('runAll', () => {
  it('runs every job with at most `concurrency` in flight and gives the outcomes in order', async () => {
    const fn = fnName('all');
    let running = 0;
    let peak = 0;
    const worker = res.worker({ maxJobs: 10 });
    worker.register(fn, async (job) => {
      peak = Math.max(peak, ++running);
      // Long enough for the jobs in flight to overlap on the worker.
      await new Promise((resolve) => setTimeout(resolve, 50));
      running--;
      return `${job.payload.toString()}!`;
    });
    await worker.start();
    const client = await res.client();
    const requests = Array.from({ length: 10 }, (_, i) => ({ functionName: fn, payload: `job-${i}` }));

    const outcomes = await within(client.runAll(requests, { concurrency: 3 }), 10_000, 'runAll');
    expect(outcomes.map(summary)).toEqual(requests.map((r) => `${r.payload}!`));
    expect(peak).toBe(3);
    for (const outcome of outcomes) expect(outcome.job?.state).toBe('complete');
  });

  it("settles each job on its own: a failure or a refused submit is that job's outcome only", async () => {
    const fn = fnName('mixed');
    const worker = res.worker({ maxJobs: 4 });
    worker.register(fn, (job) => {
      if (job.payload.toString() === 'bad') throw new Error('bad input');
      return 'ok';
    });
    await worker.start();
    const client = await res.client();
    const outcomes = await client.runAll([
      { functionName: fn, payload: 'good' },
      { functionName: fn, payload: 'bad' },
      { functionName: '', payload: 'no name' },
      { functionName: fn, payload: 'queued', options: { background: true } },
    ]);
    expect(outcomes.map(summary)).toEqual(['ok', 'JOB_EXCEPTION', 'INVALID_ARGUMENT', '']);
    const [, failed, refused, background] = outcomes;
    expect(failed.status === 'rejected' && failed.job?.state).toBe('failed');
    expect(refused.job).toBeUndefined();
    expect(background.job?.background).toBe(true);
  });

  it('one deadline for the list: the job still running then gets TIMEOUT, the ones not submitted are never sent', async () => {
    const fn = fnName('deadline');
    const release = res.gate<string>();
    const worker = res.worker();
    worker.register(fn, () => release.promise);
    await worker.start();
    const client = await res.client();
    const requests = Array.from({ length: 4 }, (_, i) => ({ functionName: fn, payload: `${i}` }));

    const before = performance.now();
    const outcomes = await within(client.runAll(requests, { concurrency: 1, timeout: 300 }), 5000, 'runAll');
    expect(performance.now() - before).toBeGreaterThanOrEqual(290);
    expect(outcomes.map(summary)).toEqual(['TIMEOUT', 'TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
    expect(outcomes[0].job?.state).toBe('failed');
    expect(outcomes.slice(1).map((o) => o.job)).toEqual([undefined, undefined, undefined]);
    const notSent = outcomes[1].status === 'rejected' ? outcomes[1].reason : undefined;
    expect(notSent?.message).toMatch(/runAll's 300 ms deadline passed before job 1 .* was submitted: it was not sent/);
    // Only the first reached gearmand (running, so it was left to finish).
    expect(await functionStatus(res.admin(), fn)).toEqual({ total: 1, running: 1, workers: 1 });
    release.resolve('done');
  });

  it('a job with a shorter timeout of its own keeps it', async () => {
    const fn = fnName('own-timeout');
    const client = await res.client();
    const before = performance.now();
    const [outcome] = await client.runAll([{ functionName: fn, options: { timeout: 100 } }], { timeout: 5000 });
    expect(performance.now() - before).toBeLessThan(2000);
    expect(summary(outcome)).toBe('TIMEOUT');
  });

  it('resolves at once for an empty list, and rejects bad options with INVALID_ARGUMENT', async () => {
    const client = await res.client();
    await expect(client.runAll([])).resolves.toEqual([]);
    for (const options of [{ concurrency: 0 }, { concurrency: 1.5 }, { timeout: -1 }]) {
      const error = await rejection(client.runAll([{ functionName: 'x' }], options));
      expect(error).toBeInstanceOf(GearmanError);
      expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
    }
    const error = await rejection(client.runAll('x' as never));
    expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
  });
});
