/**
 * The client's per-connection submit queue: one reply handler for every job awaiting JOB_CREATED
 * (in request order, among other requests), and submitTimeout enforced without a timer per job.
 */
import { GearmanClient, GearmanTimeoutError, type GearmanJob } from '../../lib/engine/index.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { freePort } from '../support/servers.js';
import { within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** Milliseconds from now until the job fails, and the error. */
function failsAfter(job: GearmanJob, start: number): Promise<{ ms: number; error: Error }> {
  return new Promise((resolve) => job.once('fail', (error) => resolve({ ms: Date.now() - start, error })));
}

describe('submit queue', () => {
  it('hands every JOB_CREATED to its own job, in order, with other requests in between', async () => {
    const fn = fnName('queued');
    const client = await res.client();
    const jobs: GearmanJob[] = [];
    const statuses: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      jobs.push(client.submit(fn, `p${i}`, { background: true }));
      if (i % 20 === 0) statuses.push(client.getStatus('H:nowhere:1', gearmand.address));
    }
    const handles = await within(Promise.all(jobs.map((j) => j.created())), 5000, 'all JOB_CREATED');
    await within(Promise.all(statuses), 5000, 'the status replies');
    expect(new Set(handles).size).toBe(200);
    // gearmand numbers handles in creation order: the replies went to the jobs in submit order.
    const numbers = handles.map((h) => Number(h.split(':').pop()));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  it('times out queued jobs by their own deadlines, whatever their order in the queue', async () => {
    const client = await res.client({ servers: (await res.silentServer()).address, submitTimeout: 400 });
    const start = Date.now();
    const first = failsAfter(client.submit('anything', 'a'), start);
    const quick = failsAfter(client.submit('anything', 'b', { submitTimeout: 100 }), start);
    await new Promise((r) => setTimeout(r, 150));
    const later = failsAfter(client.submit('anything', 'c'), start);
    const [f, q, l] = await within(Promise.all([first, quick, later]), 5000, 'the timeouts');
    for (const o of [f, q, l]) expect(o.error).toBeInstanceOf(GearmanTimeoutError);
    expect(q.ms).toBeGreaterThanOrEqual(95);
    expect(q.ms).toBeLessThan(350);
    expect(f.ms).toBeGreaterThanOrEqual(395);
    expect(l.ms).toBeGreaterThanOrEqual(545);
    expect(f.error.message).toMatch(/within 400 ms/);
  });

  it('times out a job parked for lack of a server by submitTimeout, not only connectTimeout', async () => {
    const port = await freePort(); // nothing listens there
    const client = new GearmanClient({ servers: `127.0.0.1:${port}`, connectTimeout: 4000, submitTimeout: 200 });
    res.defer(() => client.close());
    const start = Date.now();
    const { ms, error } = await within(failsAfter(client.submit('anything', 'x'), start), 3000, 'the submit timeout');
    expect(error).toBeInstanceOf(GearmanTimeoutError);
    expect(ms).toBeGreaterThanOrEqual(195);
    expect(ms).toBeLessThan(2000);
  });
});
