/**
 * The engine against Perl's Gearman::Server (Debian `gearman-server`), which knows no packet type
 * above 29 and has no WORK_DATA nor WORK_WARNING: what works there, the worker's GRAB fallback,
 * the typed errors for what cannot work, and ERRORs that never put a connection out of step.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  type GearmanClientOptions,
  GearmanServerError,
  type GearmanWorker,
  type GearmanWorkerOptions,
  type WorkerJob,
} from '../../lib/engine/index.js';
import { PacketType } from '../../lib/protocol/index.js';
import { rejection } from '../support/errors.js';
import { fnName, useResources } from '../support/harness.js';
import { PerlServer } from '../support/perl-server.js';
import { deferred, eventually, recordEvents, within } from '../support/wait.js';

let perl: PerlServer;
beforeAll(async () => {
  perl = await PerlServer.start();
});
afterAll(() => perl?.dispose());
const res = useResources();

const client = (options: GearmanClientOptions = {}) => res.client({ servers: perl.address, ...options });
const admin = () => res.admin({ servers: perl.address });

/** A started worker on the Perl server, with its connection events recorded. */
async function worker(
  fn: string,
  handler: (job: WorkerJob) => string | Buffer | void | Promise<string | Buffer | void>,
  options: GearmanWorkerOptions = {},
) {
  const w = res.worker({ servers: perl.address, ...options });
  const errors = recordEvents<[Error]>(w, 'error');
  const connected = recordEvents(w, 'connected');
  const reconnecting = recordEvents(w, 'reconnecting');
  w.register(fn, handler);
  await w.start();
  return { worker: w, errors, connected, reconnecting };
}

/** An ECHO round trip on the worker's connection: every ERROR for what it sent before has arrived. */
function roundTrip(w: GearmanWorker): Promise<unknown> {
  return within(w.connections[0].call(PacketType.ECHO_REQ, [Buffer.alloc(0)]), 3000, 'an ECHO_RES');
}

/** Connections the Perl server holds: its `workers` lists every one (clients and this admin's too). */
async function serverConnections(a: ReturnType<typeof admin>): Promise<number> {
  return (await a.workers()).length;
}

describe('jobs on Perl Gearman::Server', () => {
  it('runs foreground jobs through the GRAB_JOB fallback, with no unique and no reconnect', async () => {
    const fn = fnName('echo');
    const uniques: string[] = [];
    const w = await worker(
      fn,
      (job) => {
        uniques.push(job.unique);
        return `${job.payload.toString()}!`;
      },
      { maxJobs: 4 },
    );
    const c = await client();
    const a = admin();
    const before = await serverConnections(a);
    const results = await within(
      Promise.all([1, 2, 3, 4, 5, 6].map((n) => c.run(fn, `job${n}`, { unique: `u${n}` }))),
      10_000,
      'six results',
    );
    expect(results.map(String)).toEqual(['job1!', 'job2!', 'job3!', 'job4!', 'job5!', 'job6!']);
    // Plain JOB_ASSIGN carries no unique.
    expect(uniques).toEqual(['', '', '', '', '', '']);
    expect(w.worker.connections[0].state).toBe('connected');
    // The refusal of GRAB_JOB_UNIQ is expected: no error event.
    expect(w.errors.events).toHaveLength(0);
    expect(w.connected.events).toHaveLength(1);
    expect(w.reconnecting.events).toHaveLength(0);
    expect(await serverConnections(a)).toBe(before);
  });

  it('falls back from GRAB_JOB_ALL too', async () => {
    const fn = fnName('all');
    await worker(fn, (job) => `reducer ${String(job.reducer)}`, { grab: 'all' });
    expect(String(await within((await client()).run(fn, 'x'), 5000, 'the result'))).toBe('reducer undefined');
  });

  it('runs background jobs and high-priority jobs first', async () => {
    const fn = fnName('order');
    const c = await client();
    // Queued before any worker: normal, then high (Perl puts high jobs at the front).
    const normal = c.submit(fn, 'normal');
    const high = c.submit(fn, 'high', { priority: 'high' });
    await Promise.all([normal.created(), high.created()]);
    const bg = deferred<string>();
    const bgFn = fnName('bg');
    await c.submit(bgFn, 'in the background', { background: true }).created();
    const order: string[] = [];
    const w = await worker(fn, (job) => {
      order.push(job.payload.toString());
      return 'ok';
    });
    w.worker.register(bgFn, (job) => bg.resolve(job.payload.toString()));
    await within(Promise.all([normal.result(), high.result()]), 5000, 'both results');
    expect(order).toEqual(['high', 'normal']);
    expect(await within(bg.promise, 5000, 'the background job')).toBe('in the background');
  });

  it('forwards WORK_STATUS and status by handle; WORK_DATA and WORK_WARNING are refused, told once', async () => {
    const fn = fnName('progress');
    const gate = res.gate();
    const w = await worker(fn, async (job) => {
      await job.sendStatus(1, 4);
      await job.sendData('chunk 1');
      await job.sendData('chunk 2');
      await job.sendWarning('careful');
      await job.sendWarning('again');
      await gate.promise;
      return 'done';
    });
    const errors = w.errors;
    const c = await client();
    const job = c.submit(fn, 'x');
    const seen: string[] = [];
    job.on('status', (n, d) => seen.push(`status ${n}/${d}`));
    job.on('data', (d) => seen.push(`data ${d.toString()}`));
    job.on('warning', (d) => seen.push(`warning ${d.toString()}`));
    const handle = await job.created();
    await eventually(() => errors.events.length >= 2, 5000, 'the refusals of WORK_DATA and WORK_WARNING');
    expect(await c.getStatus(handle)).toMatchObject({ known: true, running: true, numerator: 1, denominator: 4 });
    gate.resolve();
    expect(String(await within(job.result(), 5000, 'the result'))).toBe('done');
    expect(seen).toEqual(['status 1/4']);
    const refusals = errors.events.map((e) => e.args[0] as GearmanServerError);
    expect(refusals.map((e) => [e.code, e.command])).toEqual([
      ['UNSUPPORTED_COMMAND', 'WORK_DATA'],
      ['UNSUPPORTED_COMMAND', 'WORK_WARNING'],
    ]);
    expect(refusals[0].message).toMatch(/does not support WORK_DATA .*server_error/);
    // Not sent again on that connection: a second job streams without another error.
    expect(String(await within(c.run(fn, 'again'), 5000, 'the second result'))).toBe('done');
    await roundTrip(w.worker);
    expect(errors.events).toHaveLength(2);
    expect(w.reconnecting.events).toHaveLength(0);
  });

  it('reports WORK_FAIL and WORK_EXCEPTION, and ends the job on the server after an exception', async () => {
    const fn = fnName('fails');
    await worker(fn, (job) => {
      if (job.payload.toString() === 'fail') job.fail();
      else throw new Error('it broke');
    });
    const withExceptions = await client();
    const without = await client({ exceptions: false });
    expect(await rejection(withExceptions.run(fn, 'fail'))).toMatchObject({ code: 'JOB_FAILED' });
    const exception = await rejection(withExceptions.run(fn, 'throw', { unique: 'same' }));
    expect(exception).toMatchObject({ code: 'JOB_EXCEPTION', message: expect.stringContaining('it broke') });
    // Without the follow-up WORK_FAIL, Perl would keep the job running: a client without the
    // exceptions option would wait forever, and so would a later submit of the same unique.
    expect(await rejection(within(without.run(fn, 'throw', { unique: 'same' }), 5000, 'a WORK_FAIL'))).toMatchObject({
      code: 'JOB_FAILED',
    });
    await eventually(
      async () => (await admin().status()).find((s) => s.function === fn)?.total === 0,
      5000,
      'no job of the function left on the server',
    );
  });
});

describe('what Perl Gearman::Server lacks', () => {
  it('refuses each with UNSUPPORTED_COMMAND naming the command; the connection stays in step', async () => {
    const fn = fnName('unsupported');
    await worker(fn, (job) => job.payload);
    const c = await client();
    const conn = c.connections[0];
    // Pipelined on one connection, refusals between requests that work.
    const outcomes = await within(
      Promise.all([
        c.run(fn, 'first'),
        rejection(c.submit(fn, 'later', { epoch: Math.floor(Date.now() / 1000) + 60 }).created()),
        rejection(c.submit(fn, 'low', { priority: 'low' }).result()),
        rejection(c.submit(fn, 'high bg', { priority: 'high', background: true }).created()),
        rejection(c.submit(fn, 'low bg', { priority: 'low', background: true }).created()),
        rejection(c.submit(fn, 'reduce', { reducer: 'r' }).result()),
        rejection(c.submit(fn, 'reduce bg', { reducer: 'r', background: true }).created()),
        rejection(c.getStatusByUnique('u')),
        c.echo(perl.address, 'in step'),
        c.run(fn, 'last'),
      ]),
      10_000,
      'every outcome',
    );
    expect(String(outcomes[0])).toBe('first');
    const refused = outcomes.slice(1, 8) as GearmanServerError[];
    for (const error of refused) expect(error).toBeInstanceOf(GearmanServerError);
    expect(refused.map((e) => [e.code, e.command, e.serverCode])).toEqual(
      [
        'SUBMIT_JOB_EPOCH',
        'SUBMIT_JOB_LOW',
        'SUBMIT_JOB_HIGH_BG',
        'SUBMIT_JOB_LOW_BG',
        'SUBMIT_REDUCE_JOB',
        'SUBMIT_REDUCE_JOB_BACKGROUND',
        'GET_STATUS_UNIQUE',
      ].map((command) => ['UNSUPPORTED_COMMAND', command, 'server_error']),
    );
    expect(refused[0].message).toMatch(
      /^The server at .* does not support SUBMIT_JOB_EPOCH \(it answered ERROR server_error: /,
    );
    expect(typeof outcomes[8]).toBe('number');
    expect(String(outcomes[9])).toBe('last');
    expect(conn.connected).toBe(true);
    expect(conn.pendingReplies).toBe(0);
  });

  it('an ERROR answering a WORK_* while a GET_STATUS is due goes to the worker, not to the GET_STATUS', async () => {
    const fn = fnName('interleaved');
    const w = await worker(fn, () => 'x');
    const errors = w.errors;
    const conn = w.worker.connections[0];
    // WORK_DATA is refused (server_error), then GET_STATUS is answered: both in turn.
    conn.send(PacketType.WORK_DATA, ['H:nowhere:1', 'data']);
    const status = await within(conn.call(PacketType.GET_STATUS, ['H:nowhere:1']), 3000, 'the STATUS_RES');
    expect(status.type).toBe(PacketType.STATUS_RES);
    await eventually(() => errors.events.length === 1, 3000, 'the worker error event');
    expect(errors.events[0].args[0]).toMatchObject({ code: 'UNSUPPORTED_COMMAND', command: 'WORK_DATA' });
    expect(conn.connected).toBe(true);
  });
});
