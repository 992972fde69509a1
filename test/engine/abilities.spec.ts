/**
 * A worker's abilities on a real gearmand: `unregister()` (CANT_DO) and `resetAbilities()`
 * (RESET_ABILITIES) stop jobs of those functions coming to the worker, as the admin `workers`
 * reply shows, while the functions it keeps go on (docs/gearmand-behaviour.md#packets-with-their-own-rules).
 */
import type { GearmanWorker, WorkerJob } from '../../lib/engine/index.js';
import { fnName, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, quietPeriod, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** The functions gearmand lists for the worker connection with this client id, once `check` holds for them. */
async function workerFunctions(clientId: string, check: (functions: string[]) => boolean): Promise<string[]> {
  const admin = res.admin();
  return eventually(
    async () => {
      const row = (await admin.workers()).find((w) => w.clientId === clientId);
      return row && check(row.functions) && row.functions;
    },
    3000,
    `the functions of worker ${clientId} in admin workers`,
  );
}

/** A started worker (with a client id to find it in `workers`) whose handlers answer with their function's name. */
async function workerOf(clientId: string, ran: string[], ...functions: string[]): Promise<GearmanWorker> {
  const worker = res.worker({ clientId, maxJobs: 2 });
  for (const fn of functions) {
    worker.register(fn, () => {
      ran.push(fn);
      return fn;
    });
  }
  await worker.start();
  return worker;
}

describe('unregister (CANT_DO)', () => {
  it('gearmand gives the worker no more jobs of that function, and its other functions still flow', async () => {
    const kept = fnName('kept');
    const dropped = fnName('dropped');
    const id = fnName('worker');
    const ran: string[] = [];
    const worker = await workerOf(id, ran, kept, dropped);
    const client = await res.client();
    await expect(client.run(dropped)).resolves.toEqual(Buffer.from(dropped));
    expect(await workerFunctions(id, (f) => f.length === 2)).toEqual(expect.arrayContaining([kept, dropped]));

    worker.unregister(dropped);
    expect(worker.functionNames).toEqual([kept]);
    expect(await workerFunctions(id, (f) => !f.includes(dropped))).toEqual([kept]);

    // Queued before the job of `kept`: the GRABs that take that one, and the one after it, pass it over.
    const waiting = client.submit(dropped, 'later');
    await waiting.created();
    await expect(client.run(kept)).resolves.toEqual(Buffer.from(kept));
    await quietPeriod(300);
    expect(ran).toEqual([dropped, kept]);
    expect(waiting.finished).toBe(false);
    expect(await functionStatus(res.admin(), dropped)).toEqual({ total: 1, running: 0, workers: 0 });

    // The job was left intact for a worker that has the function.
    await workerOf(fnName('other'), [], dropped);
    await expect(within(waiting.result(), 5000, 'the job of the unregistered function')).resolves.toEqual(
      Buffer.from(dropped),
    );
  });

  it('a job of that function running on the worker is requeued by gearmand and runs again elsewhere', async () => {
    const fn = fnName('requeued');
    const started = deferred<WorkerJob>();
    const release = res.gate();
    const first = res.worker();
    first.register(fn, async (job) => {
      started.resolve(job);
      await release.promise;
      return 'first';
    });
    await first.start();
    const client = await res.client();
    const job = client.submit(fn, 'x');
    await within(started.promise, 5000, 'the job to start on the first worker');

    await workerOf(fnName('second'), [], fn);
    first.unregister(fn);
    await expect(within(job.result(), 5000, 'the requeued job')).resolves.toEqual(Buffer.from(fn));
  });

  it('does nothing for a function that is not registered', async () => {
    const fn = fnName('absent');
    const id = fnName('worker');
    const worker = await workerOf(id, [], fn);
    expect(worker.unregister(fnName('never'))).toBe(worker);
    expect(await workerFunctions(id, (f) => f.length > 0)).toEqual([fn]);
  });
});

describe('resetAbilities (RESET_ABILITIES)', () => {
  it('unregisters every function at once; the worker takes jobs again once a function is registered', async () => {
    const a = fnName('a');
    const b = fnName('b');
    const id = fnName('worker');
    const ran: string[] = [];
    const worker = await workerOf(id, ran, a, b);
    const client = await res.client();
    await expect(client.run(a)).resolves.toEqual(Buffer.from(a));
    await workerFunctions(id, (f) => f.length === 2);

    expect(worker.resetAbilities()).toBe(worker);
    expect(worker.functionNames).toEqual([]);
    expect(await workerFunctions(id, (f) => f.length === 0)).toEqual([]);

    const jobA = client.submit(a, 'x');
    const jobB = client.submit(b, 'y');
    await Promise.all([jobA.created(), jobB.created()]);
    await quietPeriod(300);
    expect(ran).toEqual([a]);
    expect(await functionStatus(res.admin(), b)).toEqual({ total: 1, running: 0, workers: 0 });

    worker.register(a, () => {
      ran.push(`${a} again`);
      return 'again';
    });
    await expect(within(jobA.result(), 5000, 'the job of the function registered again')).resolves.toEqual(
      Buffer.from('again'),
    );
    expect(await workerFunctions(id, (f) => f.length === 1)).toEqual([a]);
    expect(jobB.finished).toBe(false);
    expect(ran).toEqual([a, `${a} again`]);
  });
});
