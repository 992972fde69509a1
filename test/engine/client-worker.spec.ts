/**
 * GearmanClient and GearmanWorker against a real gearmand 1.1.20: jobs, priorities, uniques,
 * streaming, errors, status, scheduled and reduce jobs, payloads, pipelining.
 * (Timeouts, cancelling, concurrency and shutdown: client-worker-control.spec.ts;
 * TLS, client ids and the gearman CLI: client-worker-interop.spec.ts.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { GearmanJobError, GearmanError } from '../../lib/engine/errors.js';
import type { WorkerJob } from '../../lib/engine/index.js';
import { PacketType } from '../../lib/protocol/index.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, nextEvent, quietPeriod, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

describe('jobs', () => {
  it('runs a foreground job and returns the worker result', async () => {
    const fn = fnName('reverse');
    const worker = res.worker();
    const seen: { payload: string; handle: string; fn: string; server: string }[] = [];
    worker.register(fn, (job) => {
      seen.push({ payload: job.payload.toString(), handle: job.handle, fn: job.functionName, server: job.server });
      return job.payload.toString().split('').reverse().join('');
    });
    await worker.start();
    const client = await res.client();

    const job = client.submit(fn, 'hello gearman');
    const created = nextEvent<[string]>(job, 'created', 5000);
    await expect(job.result()).resolves.toEqual(Buffer.from('namraeg olleh'));
    const [handle] = await created;
    expect(handle).toMatch(/^H:/);
    expect(job.handle).toBe(handle);
    expect(job.state).toBe('complete');
    expect(job.server).toBe(gearmand.address);
    expect(seen).toEqual([{ payload: 'hello gearman', handle, fn, server: gearmand.address }]);

    // run() is submit + result.
    await expect(client.run(fn, 'abc')).resolves.toEqual(Buffer.from('cba'));
  });

  it('creates a background job with no worker, and a worker started later runs it', async () => {
    const fn = fnName('bg');
    const client = await res.client();
    const admin = res.admin();

    const job = client.submit(fn, 'later', { background: true });
    const handle = await within(job.created(), 5000, 'JOB_CREATED');
    expect(handle).toMatch(/^H:/);
    // A background job resolves (with nothing) once created.
    await expect(job.result()).resolves.toEqual(Buffer.alloc(0));
    expect((await admin.status()).find((s) => s.function === fn)).toEqual({
      function: fn,
      total: 1,
      running: 0,
      workers: 0,
    });

    const ran = deferred<{ payload: string; handle: string }>();
    const worker = res.worker();
    worker.register(fn, (j) => {
      ran.resolve({ payload: j.payload.toString(), handle: j.handle });
      return 'ignored';
    });
    await worker.start();
    await expect(within(ran.promise, 5000, 'the background job to run')).resolves.toEqual({ payload: 'later', handle });
    await eventually(
      async () => (await admin.status()).find((s) => s.function === fn)?.total === 0,
      3000,
      'the job to leave the queue',
    );
  });

  it('runs queued jobs HIGH first, then NORMAL, then LOW', async () => {
    const fn = fnName('prio');
    const client = await res.client();
    const order = ['low-1', 'normal-1', 'high-1', 'low-2', 'normal-2', 'high-2'];
    const jobs = order.map((name) =>
      client.submit(fn, name, { background: true, priority: name.split('-')[0] as 'high' | 'normal' | 'low' }),
    );
    await within(Promise.all(jobs.map((j) => j.created())), 5000, 'JOB_CREATED for all');
    const admin = res.admin();
    expect((await admin.priorityStatus()).find((s) => s.function === fn)).toEqual({
      function: fn,
      high: 2,
      normal: 2,
      low: 2,
      workers: 0,
    });

    const ran: string[] = [];
    const all = deferred();
    const worker = res.worker({ maxJobs: 1 });
    worker.register(fn, (j) => {
      ran.push(j.payload.toString());
      if (ran.length === order.length) all.resolve();
    });
    await worker.start();
    await within(all.promise, 5000, 'all six jobs');
    expect(ran).toEqual(['high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', 'low-2']);
  });
});

describe('unique keys', () => {
  it('hands the unique to the worker (GRAB_JOB_UNIQ), up to 63 bytes', async () => {
    const fn = fnName('uniq');
    const worker = res.worker();
    worker.register(fn, (job) => `[${job.unique}]`);
    await worker.start();
    const client = await res.client();

    await expect(client.run(fn, 'x', { unique: 'order-42' })).resolves.toEqual(Buffer.from('[order-42]'));
    await expect(client.run(fn, 'x')).resolves.toEqual(Buffer.from('[]'));
    const max = 'u'.repeat(61) + 'é'; // 63 bytes
    expect(Buffer.byteLength(max)).toBe(63);
    await expect(client.run(fn, 'x', { unique: max })).resolves.toEqual(Buffer.from(`[${max}]`));
  });

  it('rejects a unique longer than 63 bytes with INVALID_ARGUMENT before sending anything', async () => {
    const fn = fnName('uniq-long');
    const client = await res.client();
    for (const unique of ['a'.repeat(64), 'é'.repeat(32), 'x'.repeat(500)]) {
      let error: unknown;
      try {
        client.submit(fn, 'x', { unique });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(GearmanError);
      expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
      expect((error as GearmanError).message).toMatch(/at most 63 bytes/);
    }
    const admin = res.admin();
    expect((await admin.status()).find((s) => s.function === fn)).toBeUndefined();
  });

  it('coalesces two submits with the same unique on one client: same handle, both complete, one run', async () => {
    const fn = fnName('coalesce');
    const client = await res.client();
    const a = client.submit(fn, 'first', { unique: 'same-key' });
    const b = client.submit(fn, 'second', { unique: 'same-key' });
    const [ha, hb] = await within(Promise.all([a.created(), b.created()]), 5000, 'JOB_CREATED');
    expect(hb).toBe(ha);

    const runs: string[] = [];
    const worker = res.worker();
    worker.register(fn, (job) => {
      runs.push(job.payload.toString());
      return `done:${job.payload}`;
    });
    await worker.start();
    const [ra, rb] = await within(Promise.all([a.result(), b.result()]), 5000, 'both results');
    expect(ra.toString()).toBe('done:first');
    expect(rb.toString()).toBe('done:first');
    expect(runs).toEqual(['first']);

    // A later submit with the same unique is a new job.
    await expect(client.run(fn, 'third', { unique: 'same-key' })).resolves.toEqual(Buffer.from('done:third'));
  });
});

describe('streaming and errors', () => {
  it('delivers WORK_DATA, WORK_WARNING and WORK_STATUS to the job events in order, then the result', async () => {
    const fn = fnName('stream');
    const worker = res.worker();
    worker.register(fn, (job) => {
      job.sendData('part-1');
      job.sendWarning('careful');
      job.sendStatus(1, 3);
      job.sendData(Buffer.from([0, 1, 2]));
      job.sendStatus(2, 3);
      job.sendWarning('');
      return 'final';
    });
    await worker.start();
    const client = await res.client();

    const events: unknown[][] = [];
    const job = client.submit(fn, 'go');
    job.on('data', (d) => events.push(['data', d]));
    job.on('warning', (d) => events.push(['warning', d]));
    job.on('status', (n, d) => events.push(['status', n, d]));
    job.on('complete', (d) => events.push(['complete', d]));
    await within(job.result(), 5000, 'the result');
    expect(events).toEqual([
      ['data', Buffer.from('part-1')],
      ['warning', Buffer.from('careful')],
      ['status', 1, 3],
      ['data', Buffer.from([0, 1, 2])],
      ['status', 2, 3],
      ['warning', Buffer.alloc(0)],
      ['complete', Buffer.from('final')],
    ]);
  });

  it('reports a throwing handler as WORK_EXCEPTION: JOB_EXCEPTION with the data (exceptions on by default)', async () => {
    const fn = fnName('throws');
    const worker = res.worker();
    const jobErrors: unknown[] = [];
    worker.on('jobError', (err) => jobErrors.push(err));
    worker.register(fn, async () => {
      throw new Error('disk full');
    });
    await worker.start();
    const client = await res.client();

    const job = client.submit(fn, 'x');
    const exception = nextEvent<[Buffer]>(job, 'exception', 5000);
    const error = (await within(
      job.result().catch((e: unknown) => e),
      5000,
      'the failure',
    )) as GearmanJobError;
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error.code).toBe('JOB_EXCEPTION');
    expect(error.data).toEqual(Buffer.from('disk full'));
    expect(error.handle).toBe(job.handle);
    expect(error.functionName).toBe(fn);
    expect(error.message).toContain('disk full');
    expect((await exception)[0]).toEqual(Buffer.from('disk full'));
    expect(jobErrors).toHaveLength(1);
    expect((jobErrors[0] as Error).message).toBe('disk full');
  });

  it('gives a client with exceptions: false a JOB_FAILED (gearmand sends WORK_FAIL "handle\\0"), without hanging', async () => {
    const fn = fnName('throws-noexc');
    const worker = res.worker();
    worker.register(fn, (job) => job.exception('bad input'));
    await worker.start();
    const client = await res.client({ exceptions: false });

    const job = client.submit(fn, 'x');
    let exceptionEvents = 0;
    job.on('exception', () => exceptionEvents++);
    const error = (await within(
      job.result().catch((e: unknown) => e),
      5000,
      'WORK_FAIL for the exception',
    )) as GearmanJobError;
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error.code).toBe('JOB_FAILED');
    expect(error.handle).toBe(job.handle);
    expect(error.handle).not.toContain('\0');
    expect(exceptionEvents).toBe(0);
  });

  it('reports a throwing handler as WORK_FAIL with errorMode "fail" (worker-wide and per function)', async () => {
    const fnA = fnName('fail-worker');
    const fnB = fnName('fail-register');
    const workerA = res.worker({ errorMode: 'fail' });
    workerA.register(fnA, () => {
      throw new Error('nope');
    });
    const workerB = res.worker();
    workerB.register(
      fnB,
      () => {
        throw new Error('nope');
      },
      { errorMode: 'fail' },
    );
    await Promise.all([workerA.start(), workerB.start()]);
    const client = await res.client();

    for (const fn of [fnA, fnB]) {
      const job = client.submit(fn, 'x');
      const error = (await within(
        job.result().catch((e: unknown) => e),
        5000,
        'WORK_FAIL',
      )) as GearmanJobError;
      expect(error).toBeInstanceOf(GearmanJobError);
      expect(error.code).toBe('JOB_FAILED');
      expect(error.data).toBeUndefined();
      expect(error.handle).toBe(job.handle);
    }
  });
});

describe('status', () => {
  it('GET_STATUS and GET_STATUS_UNIQUE report a running job and its progress; unknown once done', async () => {
    const fn = fnName('status');
    const unique = `status-${fnName('u')}`;
    const started = deferred<WorkerJob>();
    const release = res.gate();
    const worker = res.worker();
    worker.register(fn, async (job) => {
      job.sendStatus(3, 7);
      started.resolve(job);
      await release.promise;
      return 'ok';
    });
    const client = await res.client();

    // Queued, no worker yet.
    const job = client.submit(fn, 'x', { unique });
    const handle = await within(job.created(), 5000, 'JOB_CREATED');
    expect(await client.getStatus(handle)).toEqual({
      known: true,
      running: false,
      numerator: 0,
      denominator: 0,
      server: gearmand.address,
    });
    expect(await client.getStatusByUnique(unique)).toEqual({
      known: true,
      running: false,
      numerator: 0,
      denominator: 0,
      waitingClients: 1,
      server: gearmand.address,
    });

    // Running, 3/7 reported. The client has seen WORK_STATUS, so gearmand has stored it.
    const progress = nextEvent<[number, number]>(job, 'status', 5000);
    await worker.start();
    await within(started.promise, 5000, 'the worker to take the job');
    expect(await progress).toEqual([3, 7]);
    expect(await client.getStatus(handle)).toEqual({
      known: true,
      running: true,
      numerator: 3,
      denominator: 7,
      server: gearmand.address,
    });
    expect(await client.getStatus(handle, gearmand.address)).toMatchObject({ known: true, running: true });
    expect(await client.getStatusByUnique(unique)).toEqual({
      known: true,
      running: true,
      numerator: 3,
      denominator: 7,
      waitingClients: 1,
      server: gearmand.address,
    });

    release.resolve();
    await expect(within(job.result(), 5000, 'the result')).resolves.toEqual(Buffer.from('ok'));
    expect(await client.getStatus(handle)).toEqual({
      known: false,
      running: false,
      numerator: 0,
      denominator: 0,
      server: gearmand.address,
    });
    expect(await client.getStatusByUnique(unique)).toMatchObject({ known: false, running: false });
    expect(await client.getStatus('H:nowhere:999999')).toMatchObject({ known: false, running: false });
  });
});

describe('scheduled and reduce jobs', () => {
  it('runs an epoch job at its time, not before (a polling worker picks it up; gearmand 1.1.20 wakes nobody)', async () => {
    const fn = fnName('epoch');
    const worker = res.worker({ pollInterval: 500 });
    const ran = deferred<{ at: number; payload: string }>();
    worker.register(fn, (job) => ran.resolve({ at: Date.now(), payload: job.payload.toString() }));
    await worker.start();

    // Count the worker's GRABs while it waits: polling must not turn into a busy loop.
    let grabs = 0;
    const conn = worker.connections[0];
    const send = conn.send.bind(conn);
    conn.send = (type, args) => {
      if (type === PacketType.GRAB_JOB_UNIQ) grabs++;
      send(type, args);
    };
    res.defer(() => {
      conn.send = send;
    });

    const client = await res.client();
    const epoch = Math.floor(Date.now() / 1000) + 2;
    const job = client.submit(fn, 'scheduled', { epoch });
    expect(job.background).toBe(true);
    await within(job.created(), 5000, 'JOB_CREATED');
    const admin = res.admin();
    expect((await admin.status()).find((s) => s.function === fn)).toMatchObject({ total: 1, running: 0 });

    // Not before its time (gearmand compares whole seconds).
    await quietPeriod(Math.max(0, epoch * 1000 - Date.now() - 150));
    expect(ran.settled).toBe(false);

    const { at, payload } = await within(ran.promise, 4000, 'the epoch job to run');
    expect(payload).toBe('scheduled');
    expect(at).toBeGreaterThanOrEqual(epoch * 1000 - 150);
    expect(at).toBeLessThanOrEqual(epoch * 1000 + 2000);
    expect(grabs).toBeLessThan(30);

    // A Date works too, and a time in the past runs at once.
    const past = deferred();
    const fn2 = fnName('epoch-past');
    worker.register(fn2, () => past.resolve());
    await client.submit(fn2, 'now', { epoch: new Date(Date.now() - 60_000) }).created();
    await within(past.promise, 3000, 'a past epoch job to run');
  });

  it('sends SUBMIT_REDUCE_JOB with the reducer, which a GRAB_JOB_ALL worker sees', async () => {
    const fn = fnName('map');
    const worker = res.worker({ grab: 'all' });
    const seen: { reducer: string | undefined; unique: string; payload: string }[] = [];
    worker.register(fn, (job) => {
      seen.push({ reducer: job.reducer, unique: job.unique, payload: job.payload.toString() });
      return `mapped:${job.payload}`;
    });
    await worker.start();
    const client = await res.client();

    await expect(client.run(fn, 'a b c', { reducer: 'count', unique: 'reduce-1' })).resolves.toEqual(
      Buffer.from('mapped:a b c'),
    );
    // A plain job comes as JOB_ASSIGN_UNIQ to the same GRAB_JOB_ALL worker: no reducer.
    await expect(client.run(fn, 'plain', { unique: 'plain-1' })).resolves.toEqual(Buffer.from('mapped:plain'));
    // Background reduce job.
    const bg = client.submit(fn, 'bg', { reducer: 'sum', aggregator: 'agg', background: true });
    await within(bg.created(), 5000, 'JOB_CREATED');
    await eventually(() => seen.length === 3, 5000, 'the background reduce job to run');
    expect(seen).toEqual([
      { reducer: 'count', unique: 'reduce-1', payload: 'a b c' },
      { reducer: undefined, unique: 'plain-1', payload: 'plain' },
      // A background job without a unique goes out with a random one (persistent queues key by it).
      { reducer: 'sum', unique: expect.stringMatching(/^[0-9a-f-]{36}$/), payload: 'bg' },
    ]);
  });
});

describe('payloads and pipelining', () => {
  it('carries a 32 MiB payload both ways byte-exact', async () => {
    const fn = fnName('big');
    const input = randomBytes(32 * 1024 * 1024);
    const output = randomBytes(32 * 1024 * 1024);
    const inputHash = createHash('sha256').update(input).digest('hex');
    const worker = res.worker();
    let received = '';
    worker.register(fn, (job) => {
      received = createHash('sha256').update(job.payload).digest('hex');
      return job.payload.length === input.length ? output : 'wrong size';
    });
    await worker.start();
    const client = await res.client();

    const result = await within(client.run(fn, input), 20_000, 'the 32 MiB round trip');
    expect(received).toBe(inputHash);
    expect(result.length).toBe(output.length);
    expect(result.equals(output)).toBe(true);
  }, 30_000);

  it('keeps NUL bytes and empty payloads intact both ways, in data, results and exceptions', async () => {
    const fn = fnName('binary');
    const worker = res.worker();
    const payloads: Buffer[] = [];
    worker.register(fn, (job) => {
      payloads.push(job.payload);
      if (job.payload.length === 1 && job.payload[0] === 0xee) {
        job.exception(Buffer.from([0, 0x45, 0, 0]));
        return;
      }
      job.sendData(Buffer.concat([Buffer.from([0]), job.payload, Buffer.from([0])]));
      return Buffer.concat([job.payload, Buffer.from([0, 0, 0xff, 0])]);
    });
    await worker.start();
    const client = await res.client();

    const cases = [
      Buffer.from([0, 1, 0, 255, 0]),
      Buffer.alloc(0),
      Buffer.alloc(1000, 0),
      Buffer.from('a\0b\0\0c', 'latin1'),
    ];
    for (const input of cases) {
      const job = client.submit(fn, input, { unique: `bin-${input.length}-${input[0] ?? 'e'}` });
      const data: Buffer[] = [];
      job.on('data', (d) => data.push(d));
      const result = await within(job.result(), 5000, 'a binary result');
      expect(result).toEqual(Buffer.concat([input, Buffer.from([0, 0, 0xff, 0])]));
      expect(data).toEqual([Buffer.concat([Buffer.from([0]), input, Buffer.from([0])])]);
    }
    expect(payloads).toEqual(cases);

    const error = (await client.run(fn, Buffer.from([0xee])).catch((e: unknown) => e)) as GearmanJobError;
    expect(error.code).toBe('JOB_EXCEPTION');
    expect(error.data).toEqual(Buffer.from([0, 0x45, 0, 0]));
  });

  it('pipelines 500 submits on one connection and matches every result to its job', async () => {
    const fn = fnName('pipe');
    const fnOther = fnName('pipe-other');
    const worker = res.worker({ maxJobs: 16 });
    worker.register(fn, (job) => `r:${job.payload}`);
    worker.register(fnOther, (job) => {
      if (job.payload.toString().endsWith('7')) throw new Error(`e:${job.payload}`);
      return `o:${job.payload}`;
    });
    await worker.start();
    const client = await res.client();
    expect(client.connections).toHaveLength(1);

    const n = 500;
    const jobs = Array.from({ length: n }, (_, i) => client.submit(i % 3 === 0 ? fnOther : fn, String(i)));
    // Everything went out before any JOB_CREATED came back.
    expect(client.connections[0].pendingReplies).toBeGreaterThanOrEqual(n);
    const outcomes = await within(
      Promise.all(
        jobs.map((j) =>
          j.result().then(
            (r) => r.toString(),
            (e: GearmanJobError) => `${e.code}:${e.data?.toString()}`,
          ),
        ),
      ),
      20_000,
      '500 results',
    );
    outcomes.forEach((outcome, i) => {
      if (i % 3 !== 0) expect(outcome).toBe(`r:${i}`);
      else if (String(i).endsWith('7')) expect(outcome).toBe(`JOB_EXCEPTION:e:${i}`);
      else expect(outcome).toBe(`o:${i}`);
    });
    expect(new Set(jobs.map((j) => j.handle)).size).toBe(n);
  });
});
