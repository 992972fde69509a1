/**
 * The codec against a real gearmand 1.1.x: raw packets over plain sockets, and the admin
 * protocol's real replies read with AdminReplyReader and the parse* functions.
 * Fails (does not skip) when gearmand is not installed: useGearmand's beforeAll throws.
 */
import {
  PacketType,
  parseGetpid,
  parseOk,
  parseOkValue,
  parsePriorityStatus,
  parseShowJobs,
  parseShowUniqueJobs,
  parseStatus,
  parseWorkers,
} from '../lib/protocol/index.js';
import { fnName, useGearmand, useResources } from './support/harness.js';
import { BINARY_DATA } from './support/packets.js';
import { AdminConnection, RawConnection } from './support/raw-connection.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

async function client(): Promise<RawConnection> {
  const c = await RawConnection.open(gearmand.port);
  res.defer(() => c.close());
  return c;
}

async function admin(): Promise<AdminConnection> {
  const c = await AdminConnection.open(gearmand.port);
  res.defer(() => c.close());
  return c;
}

const str = (args: Buffer[]) => args.map((a) => a.toString('latin1'));

/** Submits background jobs and waits for each JOB_CREATED; returns the handles. */
async function submitBackground(conn: RawConnection, type: number, fn: string, uniques: string[]): Promise<string[]> {
  for (const u of uniques) conn.send(type, [fn, u, `payload of ${u}`]);
  const handles: string[] = [];
  for (let i = 0; i < uniques.length; i++) handles.push((await conn.expect(PacketType.JOB_CREATED))[0].toString());
  return handles;
}

describe('binary protocol against gearmand', () => {
  it('runs a job end to end: SUBMIT_JOB with unique, CAN_DO + GRAB_JOB_UNIQ, WORK_COMPLETE back to the client', async () => {
    const fn = fnName('reverse');
    const caller = await client();
    caller.send(PacketType.SUBMIT_JOB, [fn, 'uniq-e2e', BINARY_DATA]);
    const [handle] = str(await caller.expect(PacketType.JOB_CREATED));
    expect(handle).toMatch(/^H:.+:\d+$/);
    expect(handle.length).toBeLessThanOrEqual(63);

    const worker = await client();
    worker.send(PacketType.CAN_DO, [fn]);
    worker.send(PacketType.GRAB_JOB_UNIQ, []);
    const assign = await worker.expect(PacketType.JOB_ASSIGN_UNIQ);
    expect(str(assign.slice(0, 3))).toEqual([handle, fn, 'uniq-e2e']);
    expect(assign[3].equals(BINARY_DATA)).toBe(true);

    const result = Buffer.concat([Buffer.from('done\0'), BINARY_DATA]);
    worker.send(PacketType.WORK_COMPLETE, [handle, result]);
    const complete = await caller.expect(PacketType.WORK_COMPLETE);
    expect(complete[0].toString()).toBe(handle);
    expect(complete[1].equals(result)).toBe(true);
  });

  it('answers GRAB_JOB with NO_JOB when nothing is queued', async () => {
    const worker = await client();
    worker.send(PacketType.CAN_DO, [fnName('idle')]);
    worker.send(PacketType.GRAB_JOB, []);
    expect(await worker.expect(PacketType.NO_JOB)).toEqual([]);
  });

  it('echoes ECHO_REQ data unchanged, NULs included, and a 1 MiB payload arriving in many chunks', async () => {
    const conn = await client();
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    conn.send(PacketType.ECHO_REQ, [BINARY_DATA]);
    conn.send(PacketType.ECHO_REQ, [big]);
    conn.send(PacketType.ECHO_REQ, [Buffer.alloc(0)]);
    expect((await conn.expect(PacketType.ECHO_RES))[0].equals(BINARY_DATA)).toBe(true);
    expect((await conn.expect(PacketType.ECHO_RES))[0].equals(big)).toBe(true);
    expect((await conn.expect(PacketType.ECHO_RES))[0].length).toBe(0);
  });

  it('accepts OPTION_REQ exceptions (any case) and answers an unknown option with ERROR UNKNOWN_OPTION', async () => {
    const conn = await client();
    conn.send(PacketType.OPTION_REQ, ['exceptions']);
    expect(str(await conn.expect(PacketType.OPTION_RES))).toEqual(['exceptions']);
    conn.send(PacketType.OPTION_REQ, ['EXCEPTIONS']);
    expect(str(await conn.expect(PacketType.OPTION_RES))).toEqual(['EXCEPTIONS']);
    conn.send(PacketType.OPTION_REQ, ['no-such-option']);
    const [code] = str(await conn.expect(PacketType.ERROR));
    expect(code).toBe('UNKNOWN_OPTION');
  });

  it('accepts SUBMIT_REDUCE_JOB with four NUL-terminated arguments and hands the reducer to GRAB_JOB_ALL', async () => {
    const fn = fnName('mapper');
    const caller = await client();
    caller.send(PacketType.SUBMIT_REDUCE_JOB, [fn, 'uniq-reduce', 'reducer-fn', '', 'a b c']);
    const [handle] = str(await caller.expect(PacketType.JOB_CREATED));

    const worker = await client();
    worker.send(PacketType.CAN_DO, [fn]);
    worker.send(PacketType.GRAB_JOB_ALL, []);
    expect(str(await worker.expect(PacketType.JOB_ASSIGN_ALL))).toEqual([
      handle,
      fn,
      'uniq-reduce',
      'reducer-fn',
      'a b c',
    ]);
  });

  it('answers GET_STATUS_UNIQUE with STATUS_RES_UNIQUE whose first field is the unique, and GET_STATUS with STATUS_RES', async () => {
    const fn = fnName('status');
    const unique = fnName('uniq');
    const conn = await client();
    const [handle] = await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, [unique]);

    conn.send(PacketType.GET_STATUS_UNIQUE, [unique]);
    // unique, known, running, numerator, denominator, waiting clients (none: background job).
    expect(str(await conn.expect(PacketType.STATUS_RES_UNIQUE))).toEqual([unique, '1', '0', '0', '0', '0']);
    conn.send(PacketType.GET_STATUS, [handle]);
    expect(str(await conn.expect(PacketType.STATUS_RES))).toEqual([handle, '1', '0', '0', '0']);
    conn.send(PacketType.GET_STATUS_UNIQUE, [fnName('never-submitted')]);
    expect(str(await conn.expect(PacketType.STATUS_RES_UNIQUE)).slice(1, 3)).toEqual(['0', '0']);
  });

  it('merges a second submission with the same function and unique onto the same handle', async () => {
    const fn = fnName('coalesce');
    const conn = await client();
    const handles = await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, ['same', 'same', 'other']);
    expect(handles[1]).toBe(handles[0]);
    expect(handles[2]).not.toBe(handles[0]);
  });
});

describe('admin protocol against gearmand', () => {
  it('status and prioritystatus count queued background jobs per priority with no worker', async () => {
    const fn = fnName('queued');
    const conn = await client();
    await submitBackground(conn, PacketType.SUBMIT_JOB_HIGH_BG, fn, ['h1']);
    await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, ['n1', 'n2']);
    await submitBackground(conn, PacketType.SUBMIT_JOB_LOW_BG, fn, ['l1', 'l2', 'l3']);

    const adm = await admin();
    const status = parseStatus(await adm.lines('status'));
    expect(status.find((s) => s.function === fn)).toEqual({ function: fn, total: 6, running: 0, workers: 0 });
    const priority = parsePriorityStatus(await adm.lines('prioritystatus'));
    expect(priority.find((s) => s.function === fn)).toEqual({ function: fn, high: 1, normal: 2, low: 3, workers: 0 });
  });

  it('status counts a running job and its worker', async () => {
    const fn = fnName('running');
    const conn = await client();
    await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, ['r1', 'r2']);
    const worker = await client();
    worker.send(PacketType.CAN_DO, [fn]);
    worker.send(PacketType.GRAB_JOB, []);
    await worker.expect(PacketType.JOB_ASSIGN);

    const adm = await admin();
    expect(parseStatus(await adm.lines('status')).find((s) => s.function === fn)).toEqual({
      function: fn,
      total: 2,
      running: 1,
      workers: 1,
    });
    // prioritystatus counts only jobs that are not running.
    expect(parsePriorityStatus(await adm.lines('prioritystatus')).find((s) => s.function === fn)).toMatchObject({
      normal: 1,
      workers: 1,
    });
  });

  it('workers lists every connection with its client id and registered functions', async () => {
    const [fnA, fnB] = [fnName('wa'), fnName('wb')];
    const clientId = fnName('raw-worker');
    const worker = await client();
    worker.send(PacketType.SET_CLIENT_ID, [clientId]);
    worker.send(PacketType.CAN_DO, [fnA]);
    worker.send(PacketType.CAN_DO, [fnB]);
    // CAN_DO has no reply; gearmand handles a connection's packets in order, so the echo
    // coming back proves the registrations are done.
    worker.send(PacketType.ECHO_REQ, ['sync']);
    await worker.expect(PacketType.ECHO_RES);

    const adm = await admin();
    const workers = parseWorkers(await adm.lines('workers'));
    const mine = workers.find((w) => w.clientId === clientId);
    expect(mine).toBeDefined();
    expect(mine!.ip).toBe('127.0.0.1');
    expect(mine!.fd).toBeGreaterThan(0);
    expect([...mine!.functions].sort()).toEqual([fnA, fnB].sort());
    // The admin connection itself is listed too, without id or functions.
    expect(workers.some((w) => w.clientId === undefined && w.functions.length === 0)).toBe(true);
  });

  it('show jobs and show unique jobs list queued jobs', async () => {
    const fn = fnName('shown');
    const [u1, u2] = [fnName('su'), fnName('su')];
    const conn = await client();
    const handles = await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, [u1, u2]);

    const adm = await admin();
    const jobs = parseShowJobs(await adm.lines('show jobs'));
    for (const handle of handles) {
      expect(jobs.find((j) => j.handle === handle)).toEqual({ handle, retries: 0, ignoreJob: false, queued: true });
    }
    const uniques = parseShowUniqueJobs(await adm.lines('show unique jobs'));
    expect(uniques).toEqual(expect.arrayContaining([u1, u2]));
  });

  it('version, getpid and verbose', async () => {
    const adm = await admin();
    expect(parseOkValue(await adm.lines('version'))).toMatch(/^\d+\.\d+\.\d+/);
    expect(parseGetpid(await adm.lines('getpid'))).toBe(gearmand.server.pid);
    // The harness starts gearmand with --verbose=ERROR.
    expect(parseOkValue(await adm.lines('verbose'))).toBe('ERROR');
  });

  it('answers pipelined commands in order, ERR replies to list and line commands included', async () => {
    const adm = await admin();
    const replies = await adm.pipeline(['version', 'show nonsense', 'getpid', 'no-such-command', 'status']);
    expect(replies.map((r) => r.ok)).toEqual([true, false, true, false, true]);
    expect(replies[1]).toEqual({ ok: false, code: 'UNKNOWN_SHOW_ARGUMENTS', message: expect.any(String) });
    expect(replies[3]).toMatchObject({ ok: false, code: 'UNKNOWN_COMMAND' });
    expect(parseGetpid((replies[2] as { lines: string[] }).lines)).toBe(gearmand.server.pid);
  });

  it('maxqueue limits an existing function queue: the submit over the limit gets ERROR QUEUE_ERROR', async () => {
    const fn = fnName('limited');
    const adm = await admin();
    const conn = await client();
    // For a function gearmand does not know yet, maxqueue answers OK and does nothing.
    parseOk(await adm.lines(`maxqueue ${fn} 1`));
    await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, ['first', 'second']);
    // Now the function exists: the limit counts queued plus running jobs, 2 here.
    parseOk(await adm.lines(`maxqueue ${fn} 2`));
    conn.send(PacketType.SUBMIT_JOB_BG, [fn, 'third', 'x']);
    expect(str(await conn.expect(PacketType.ERROR))[0]).toBe('QUEUE_ERROR');
    expect(parseStatus(await adm.lines('status')).find((s) => s.function === fn)?.total).toBe(2);
    expect(await adm.command('maxqueue')).toMatchObject({ ok: false, code: 'INVALID_ARGUMENTS' });
  });

  it('cancel job takes a queued job out of the queue; it is freed when a worker next grabs', async () => {
    const fn = fnName('cancelled');
    const conn = await client();
    const [keep, cancel] = await submitBackground(conn, PacketType.SUBMIT_JOB_BG, fn, ['keep', 'cancel']);

    const adm = await admin();
    parseOk(await adm.lines(`cancel job ${cancel}`));
    // gearmand 1.1.20 only marks the job: still listed and counted, no longer queued.
    let jobs = parseShowJobs(await adm.lines('show jobs'));
    expect(jobs.find((j) => j.handle === cancel)).toEqual({
      handle: cancel,
      retries: 0,
      ignoreJob: true,
      queued: false,
    });
    expect(jobs.find((j) => j.handle === keep)).toMatchObject({ ignoreJob: false, queued: true });
    expect(parseStatus(await adm.lines('status')).find((s) => s.function === fn)?.total).toBe(2);
    parseOk(await adm.lines(`cancel job ${cancel}`));

    // A worker gets the other job, then nothing: the cancelled one is dropped on the way.
    const worker = await client();
    worker.send(PacketType.CAN_DO, [fn]);
    worker.send(PacketType.GRAB_JOB, []);
    worker.send(PacketType.GRAB_JOB, []);
    expect(str(await worker.expect(PacketType.JOB_ASSIGN))[0]).toBe(keep);
    await worker.expect(PacketType.NO_JOB);

    jobs = parseShowJobs(await adm.lines('show jobs'));
    expect(jobs.map((j) => j.handle)).not.toContain(cancel);
    expect(await adm.command(`cancel job ${cancel}`)).toEqual({ ok: false, code: 'UNKNOWN_JOB', message: '' });
    expect(await adm.command('cancel job H:nowhere:1')).toEqual({ ok: false, code: 'UNKNOWN_JOB', message: '' });
  });

  it('create function drops the last character of the name; drop function removes it', async () => {
    const intended = `${fnName('created')}X`;
    const actual = intended.slice(0, -1);
    const adm = await admin();
    parseOk(await adm.lines(`create function ${intended}`));
    let names = parseStatus(await adm.lines('status')).map((s) => s.function);
    expect(names).toContain(actual);
    expect(names).not.toContain(intended);

    parseOk(await adm.lines(`drop function ${actual}`));
    names = parseStatus(await adm.lines('status')).map((s) => s.function);
    expect(names).not.toContain(actual);
    expect(await adm.command(`drop function ${actual}`)).toEqual({
      ok: false,
      code: 'UNKNOWN',
      message: 'function not found',
    });
  });

  it('drop function refuses while a worker has the function registered', async () => {
    const fn = fnName('busy');
    const worker = await client();
    worker.send(PacketType.CAN_DO, [fn]);
    worker.send(PacketType.ECHO_REQ, ['sync']);
    await worker.expect(PacketType.ECHO_RES);
    const adm = await admin();
    const reply = await adm.command(`drop function ${fn}`);
    expect(reply).toMatchObject({ ok: false, message: expect.stringContaining('connected workers') });
  });
});
