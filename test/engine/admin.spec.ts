import { type Socket, connect as netConnect } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  GearmanAdmin,
  GearmanAdminConnection,
  GearmanAdminError,
  GearmanAdminServersError,
  GearmanConnectionError,
  GearmanError,
  GearmanTimeoutError,
} from '../../lib/engine/index.js';
import { resolveServers } from '../../lib/engine/servers.js';
import { encodePacket, type Packet, PacketDecoder, PacketType } from '../../lib/protocol/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { freePort, listenOnLoopback } from '../support/servers.js';
import { rejection } from '../support/errors.js';
import { eventually } from '../support/wait.js';

/** A raw binary-protocol connection, to make jobs and workers the admin commands can see. */
class Raw {
  private readonly packets: Packet[] = [];
  private readonly waiters: Array<(p: Packet) => void> = [];
  private constructor(private readonly socket: Socket) {
    const decoder = new PacketDecoder((p) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(p);
      else this.packets.push(p);
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  }

  static open(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port }, () => resolve(new Raw(socket)));
      socket.once('error', reject);
    });
  }

  send(type: number, args: Array<string | Buffer> = []): void {
    this.socket.write(encodePacket(type, args));
  }

  next(): Promise<Packet> {
    const p = this.packets.shift();
    if (p) return Promise.resolve(p);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** ECHO round trip: gearmand handles a connection's packets in order, so everything sent before is done. */
  async sync(): Promise<void> {
    this.send(PacketType.ECHO_REQ, ['sync']);
    const p = await this.next();
    expect(p.type).toBe(PacketType.ECHO_RES);
  }

  /** Submits a job and resolves with its handle, or rejects with gearmand's ERROR code. */
  async submit(type: number, fn: string, unique = '', data = 'x'): Promise<string> {
    this.send(type, [fn, unique, data]);
    const p = await this.next();
    if (p.type === PacketType.ERROR) throw new Error(p.args[0].toString());
    expect(p.type).toBe(PacketType.JOB_CREATED);
    return p.args[0].toString();
  }

  close(): Promise<void> {
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}

let seq = 0;
/** A function name of its own for each test, so tests do not see each other's jobs. */
const fname = (what: string) => `adm_${what}_${process.pid}_${++seq}`;

const connectionTo = (address: string, options = {}) => new GearmanAdminConnection(resolveServers(address)[0], options);

const g1 = useGearmand();
const g2 = useGearmand();
const res = useResources();

describe('GearmanAdminConnection against gearmand', () => {
  let admin: GearmanAdminConnection;
  let raw: Raw;

  beforeAll(async () => {
    admin = connectionTo(g1.address);
    raw = await Raw.open(g1.port);
  });

  afterAll(async () => {
    await admin?.close();
    await raw?.close();
  });

  it('reads version, getpid and verbose', async () => {
    // Any release: 1.1.20 answers `1.1.20+ds`, 2.0.0 `2.0.0` (nothing may depend on it).
    expect(await admin.version()).toMatch(/^\d+\.\d+\.\d+/);
    expect(await admin.getpid()).toBe(g1.server.pid);
    expect(await admin.verbose()).toBe('ERROR'); // the harness starts gearmand with --verbose=ERROR
    expect(admin.connected).toBe(true);
  });

  it('returns raw lines from command() and rejects ERR replies with gearmand’s code', async () => {
    expect(await admin.command('version')).toEqual([expect.stringMatching(/^OK \d+\.\d+\./)]);
    expect(Array.isArray(await admin.command('status'))).toBe(true);

    const unknown = await rejection(admin.command('nosuchcommand'));
    expect(unknown).toBeInstanceOf(GearmanAdminError);
    expect((unknown as GearmanAdminError).serverCode).toBe('UNKNOWN_COMMAND');
    expect((unknown as GearmanAdminError).server).toBe(g1.address);

    // Removed in gearmand 1.1.15, hence no shutdown() method.
    expect(await rejection(admin.command('shutdown'))).toMatchObject({
      code: 'ADMIN_ERROR',
      serverCode: 'UNKNOWN_COMMAND',
    });
    expect(await rejection(admin.command('show nothing'))).toMatchObject({ serverCode: 'UNKNOWN_SHOW_ARGUMENTS' });
    expect(await rejection(admin.command('maxqueue'))).toMatchObject({ serverCode: 'INVALID_ARGUMENTS' });
  });

  it('pipelines many commands on one socket and matches replies in order', async () => {
    const pid = g1.server.pid;
    const calls = Array.from({ length: 60 }, (_, i) => {
      switch (i % 4) {
        case 0:
          return admin.getpid().then((v) => ['pid', v]);
        case 1:
          return admin.status().then((v) => ['status', Array.isArray(v)]);
        case 2:
          return rejection(admin.command('bogus')).then((e) => ['err', (e as GearmanAdminError).serverCode]);
        default:
          return admin.showUniqueJobs().then((v) => ['unique', Array.isArray(v)]);
      }
    });
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      expect(r).toEqual(
        [
          ['pid', pid],
          ['status', true],
          ['err', 'UNKNOWN_COMMAND'],
          ['unique', true],
        ][i % 4],
      );
    });
  });

  it('refuses multi-line commands, empty commands and arguments the admin protocol would split', async () => {
    const bad = [
      admin.command('status\nversion'),
      admin.command('version\r'),
      admin.command('   '),
      admin.cancelJob(''),
      admin.cancelJob('H:x 1'),
      admin.dropFunction(''),
      admin.dropFunction('a b'),
      admin.maxqueue('', 1),
      admin.maxqueue('fn', 1.5),
      admin.maxqueue('fn', { high: 1, normal: 2 } as never),
      admin.createFunction('x'),
      admin.createFunction('abé'),
    ];
    for (const p of bad) {
      const error = await rejection(p);
      expect(error).toBeInstanceOf(GearmanError);
      expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
    }
    // Nothing was sent: the connection is still in step.
    expect(await admin.getpid()).toBe(g1.server.pid);
  });

  it('shows queued background jobs in status, prioritystatus, show jobs and show unique jobs', async () => {
    const fn = fname('queued');
    const h1 = await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-u1`);
    const h2 = await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-u2`);
    const h3 = await raw.submit(PacketType.SUBMIT_JOB_HIGH_BG, fn, `${fn}-u3`);
    const h4 = await raw.submit(PacketType.SUBMIT_JOB_LOW_BG, fn, '');

    expect((await admin.status()).find((s) => s.function === fn)).toEqual({
      function: fn,
      total: 4,
      running: 0,
      workers: 0,
    });
    expect((await admin.priorityStatus()).find((s) => s.function === fn)).toEqual({
      function: fn,
      high: 1,
      normal: 2,
      low: 1,
      workers: 0,
    });
    const jobs = (await admin.showJobs()).filter((j) => [h1, h2, h3, h4].includes(j.handle));
    expect(jobs).toHaveLength(4);
    for (const j of jobs) expect(j).toMatchObject({ retries: 0, ignoreJob: false, queued: true });
    const uniques = await admin.showUniqueJobs();
    expect(uniques).toEqual(expect.arrayContaining([`${fn}-u1`, `${fn}-u2`, `${fn}-u3`, '']));

    for (const h of [h1, h2, h3, h4]) expect(await admin.cancelJob(h)).toBe(true);
  });

  it('lists a worker connection with its client id and functions in workers()', async () => {
    const [a, b] = [fname('wa'), fname('wb')];
    const worker = await Raw.open(g1.port);
    try {
      worker.send(PacketType.SET_CLIENT_ID, ['admin-spec-worker']);
      worker.send(PacketType.CAN_DO, [a]);
      worker.send(PacketType.CAN_DO, [b]);
      await worker.sync();

      const rows = await admin.workers();
      const row = rows.find((w) => w.clientId === 'admin-spec-worker');
      expect(row).toMatchObject({ ip: '127.0.0.1' });
      expect(row?.functions.sort()).toEqual([a, b].sort());
      // Every connection is listed, this admin connection too (no id, no functions).
      expect(rows.some((w) => w.clientId === undefined && w.functions.length === 0)).toBe(true);
      expect((await admin.status()).find((s) => s.function === a)).toEqual({
        function: a,
        total: 0,
        running: 0,
        workers: 1,
      });
    } finally {
      await worker.close();
    }
    await eventually(
      async () => {
        expect((await admin.workers()).some((w) => w.clientId === 'admin-spec-worker')).toBe(false);
        return true;
      },
      2000,
      'the worker to leave workers()',
    );
  });

  it('cancels a queued job: it lingers, ignored, until a worker grabs it, then is unknown', async () => {
    const fn = fname('cancel');
    const handle = await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-u`);
    expect(await admin.cancelJob(handle)).toBe(true);
    // gearmand only marks it: still listed, still counted, and a second cancel is OK again.
    expect((await admin.showJobs()).find((j) => j.handle === handle)).toMatchObject({ ignoreJob: true, queued: false });
    expect((await admin.status()).find((s) => s.function === fn)?.total).toBe(1);
    expect(await admin.cancelJob(handle)).toBe(true);

    const worker = await Raw.open(g1.port);
    try {
      worker.send(PacketType.CAN_DO, [fn]);
      worker.send(PacketType.GRAB_JOB);
      expect((await worker.next()).type).toBe(PacketType.NO_JOB); // the grab discards it
    } finally {
      await worker.close();
    }
    expect((await admin.showJobs()).some((j) => j.handle === handle)).toBe(false);
    expect((await admin.status()).find((s) => s.function === fn)?.total).toBe(0);
    expect(await admin.cancelJob(handle)).toBe(false);
    expect(await admin.cancelJob('H:no-such-host:999999')).toBe(false);
  });

  it('answers OK to cancelling a running job, which gearmand does not stop', async () => {
    const fn = fname('running');
    const handle = await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-u`);
    const worker = await Raw.open(g1.port);
    try {
      worker.send(PacketType.CAN_DO, [fn]);
      worker.send(PacketType.GRAB_JOB);
      const assign = await worker.next();
      expect(assign.type).toBe(PacketType.JOB_ASSIGN);
      expect(assign.args[0].toString()).toBe(handle);

      expect((await admin.status()).find((s) => s.function === fn)).toEqual({
        function: fn,
        total: 1,
        running: 1,
        workers: 1,
      });
      // prioritystatus counts queued jobs only.
      expect((await admin.priorityStatus()).find((s) => s.function === fn)).toMatchObject({
        high: 0,
        normal: 0,
        low: 0,
      });
      // gearmand's job_queued flag stays 1 while the job runs.
      expect((await admin.showJobs()).find((j) => j.handle === handle)).toMatchObject({
        ignoreJob: false,
        queued: true,
      });

      expect(await admin.cancelJob(handle)).toBe(true);
      // The worker still holds the job and can complete it.
      worker.send(PacketType.WORK_COMPLETE, [handle, 'done']);
      await worker.sync();
      expect(await admin.cancelJob(handle)).toBe(false);
    } finally {
      await worker.close();
    }
  });

  it('caps a queue with maxqueue: a submit over the limit gets ERROR QUEUE_ERROR; 0 lifts it', async () => {
    const fn = fname('maxq');
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-1`);
    expect(await admin.maxqueue(fn, 2)).toBe(true);
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-2`);
    await expect(raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-3`)).rejects.toThrow('QUEUE_ERROR');

    expect(await admin.maxqueue(fn, 0)).toBe(true);
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-3`);
    expect((await admin.status()).find((s) => s.function === fn)?.total).toBe(3);
  });

  it('reports false from maxqueue for a function gearmand does not know yet: it answers OK and ignores the limit', async () => {
    const fn = fname('maxqnew');
    expect(await admin.maxqueue(fn, 1)).toBe(false);
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-1`);
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-2`); // no limit took effect
    expect(await admin.maxqueue(fn, 1)).toBe(true);
    await expect(raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-3`)).rejects.toThrow('QUEUE_ERROR');
  });

  it('applies per-priority maxqueue limits against the function’s total', async () => {
    const fn = fname('maxqp');
    await raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-n1`);
    expect(await admin.maxqueue(fn, { high: 3, normal: 1, low: 2 })).toBe(true);
    await expect(raw.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-n2`)).rejects.toThrow('QUEUE_ERROR');
    await raw.submit(PacketType.SUBMIT_JOB_LOW_BG, fn, `${fn}-l1`); // total 1 < 2
    await expect(raw.submit(PacketType.SUBMIT_JOB_LOW_BG, fn, `${fn}-l2`)).rejects.toThrow('QUEUE_ERROR');
    await raw.submit(PacketType.SUBMIT_JOB_HIGH_BG, fn, `${fn}-h1`); // total 2 < 3
    await expect(raw.submit(PacketType.SUBMIT_JOB_HIGH_BG, fn, `${fn}-h2`)).rejects.toThrow('QUEUE_ERROR');
    expect((await admin.priorityStatus()).find((s) => s.function === fn)).toMatchObject({ high: 1, normal: 1, low: 1 });
  });

  it('createFunction: gearmand 1.1.20 drops the last character, and the real name is returned', async () => {
    const asked = `${fname('create')}Z`;
    const created = await admin.createFunction(asked);
    expect(created).toBe(asked.slice(0, -1));
    const names = (await admin.status()).map((s) => s.function);
    expect(names).toContain(created);
    expect(names).not.toContain(asked);
  });

  it('dropFunction removes an idle function, and reports unknown and busy ones', async () => {
    const name = await admin.createFunction(`${fname('drop')}_`);
    await admin.dropFunction(name);
    expect((await admin.status()).some((s) => s.function === name)).toBe(false);

    const notFound = await rejection(admin.dropFunction(name));
    expect(notFound).toBeInstanceOf(GearmanAdminError);
    expect(notFound).toMatchObject({ serverCode: 'FUNCTION_NOT_FOUND', server: g1.address });

    const busy = fname('busy');
    const worker = await Raw.open(g1.port);
    try {
      worker.send(PacketType.CAN_DO, [busy]);
      await worker.sync();
      expect(await rejection(admin.dropFunction(busy))).toMatchObject({ serverCode: 'FUNCTION_IN_USE' });
    } finally {
      await worker.close();
    }
  });
});

describe('GearmanAdminConnection failures', () => {
  it('fails with NO_SERVER when nothing listens, naming the server', async () => {
    const port = await freePort();
    const admin = connectionTo(`127.0.0.1:${port}`);
    const error = await rejection(admin.version());
    expect(error).toBeInstanceOf(GearmanConnectionError);
    expect(error).toMatchObject({ code: 'NO_SERVER', server: `127.0.0.1:${port}` });
    expect(error.message).toContain('check that gearmand is running');
    await admin.close();
  });

  it('times out a command the server never answers, fails the commands behind it, and reconnects', async () => {
    const silent = await res.silentServer();
    const admin = connectionTo(silent.address, { commandTimeout: 150 });
    try {
      const first = silent.nextConnection();
      const started = Date.now();
      const [a, b] = await Promise.all([rejection(admin.version()), rejection(admin.status())]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(a).toBeInstanceOf(GearmanTimeoutError);
      expect(a.message).toContain('commandTimeout');
      expect(b).toBeInstanceOf(GearmanConnectionError);
      expect(b).toMatchObject({ code: 'CONNECTION_LOST' });
      await first;

      // The timed-out socket was closed; the next command opens a new one.
      const second = silent.nextConnection();
      const again = admin.getpid();
      await second;
      expect(silent.connections).toHaveLength(2);
      expect(await rejection(again)).toBeInstanceOf(GearmanTimeoutError);
    } finally {
      await admin.close();
    }
  });

  it('times out the connect (here: a TLS handshake nobody answers)', async () => {
    const silent = await res.silentServer();
    const admin = new GearmanAdminConnection(resolveServers(silent.address, true)[0], { connectTimeout: 150 });
    try {
      const error = await rejection(admin.version());
      expect(error).toBeInstanceOf(GearmanConnectionError);
      expect(error).toMatchObject({ code: 'CONNECT_TIMEOUT', server: silent.address });
      expect(error.message).toContain('TLS');
    } finally {
      await admin.close();
    }
  });

  it('rejects waiting and later commands with CLOSED after close()', async () => {
    const silent = await res.silentServer();
    const admin = connectionTo(silent.address);
    const pending = rejection(admin.status());
    await silent.nextConnection();
    await admin.close();
    expect(await pending).toMatchObject({ code: 'CLOSED' });
    expect(await rejection(admin.version())).toMatchObject({ code: 'CLOSED' });
  });

  it('fails a command whose connection is lost with CONNECTION_LOST, and reconnects once gearmand is back', async () => {
    const g = await res.gearmand();
    const admin = connectionTo(g.address);
    try {
      const pid = await admin.getpid();
      // Freeze gearmand so the command is on the wire with no reply, then kill it.
      await res.freeze(pid);
      const inFlight = rejection(admin.status());
      await g.kill();
      const lost = await inFlight;
      expect(lost).toBeInstanceOf(GearmanConnectionError);
      expect(lost).toMatchObject({ code: 'CONNECTION_LOST', server: g.address });
      expect(lost.message).toContain('reconnects');

      // No "nothing listening" check here: Jest runs files in parallel, and another file's gearmand
      // may take the freed port at once (seen in CI as this command succeeding).
      await g.restart();
      expect(await admin.getpid()).toBe(g.pid);
      expect(g.pid).not.toBe(pid);
    } finally {
      await admin.close();
    }
  });

  it('speaks TLS when the server is configured for it', async () => {
    // gearmand on Debian is built without SSL, so a node:tls stand-in answers here.
    const tlsServer: TlsServer = createTlsServer({ key: TEST_KEY, cert: TEST_CERT }, (socket) => {
      socket.on('data', (d) => {
        for (const line of d.toString().split('\n').filter(Boolean))
          socket.write(line === 'version' ? 'OK 1.1.20+tls\n' : 'ERR UNKNOWN_COMMAND x\r\n');
      });
    });
    const port = await listenOnLoopback(tlsServer);
    res.defer(() => new Promise((resolve) => tlsServer.close(resolve)));
    const admin = new GearmanAdminConnection(resolveServers({ host: '127.0.0.1', port, tls: { ca: TEST_CERT } })[0]);
    try {
      expect(await admin.version()).toBe('1.1.20+tls');
      expect(await rejection(admin.command('foo'))).toMatchObject({ serverCode: 'UNKNOWN_COMMAND' });
    } finally {
      await admin.close();
    }
  });
});

describe('GearmanAdmin over two gearmands', () => {
  let admin: GearmanAdmin;
  let r1: Raw;
  let r2: Raw;

  beforeAll(async () => {
    admin = new GearmanAdmin({ servers: [g1.address, g2.address] });
    [r1, r2] = await Promise.all([Raw.open(g1.port), Raw.open(g2.port)]);
  });

  afterAll(async () => {
    await admin?.close();
    await Promise.all([r1?.close(), r2?.close()]);
  });

  it('lists its servers and hands out one connection per server', async () => {
    expect(admin.servers).toEqual([g1.address, g2.address]);
    expect(await admin.server(g1.address).getpid()).toBe(g1.server.pid);
    expect(await admin.server(`127.0.0.1:${g2.port}`).getpid()).toBe(g2.server.pid);
    expect(admin.server(g2.address)).toBe(admin.server(g2.address));
    const unknown = (() => {
      try {
        admin.server('127.0.0.1:1');
      } catch (error) {
        return error as GearmanError;
      }
      throw new Error('expected a throw');
    })();
    expect(unknown.code).toBe('INVALID_ARGUMENT');
    expect(unknown.message).toContain(g1.address);
    expect(unknown.message).toContain(g2.address);
  });

  it('merges status and prioritystatus by function, summing jobs and workers', async () => {
    const fn = fname('merged');
    await r1.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-a`);
    await r1.submit(PacketType.SUBMIT_JOB_HIGH_BG, fn, `${fn}-b`);
    await r2.submit(PacketType.SUBMIT_JOB_LOW_BG, fn, `${fn}-c`);
    const w1 = await Raw.open(g1.port);
    const w2 = await Raw.open(g2.port);
    try {
      // Workers that registered something else, so the jobs stay queued.
      const other = fname('other');
      for (const w of [w1, w2]) {
        w.send(PacketType.SET_CLIENT_ID, [`merged-${w === w1 ? 1 : 2}`]);
        w.send(PacketType.CAN_DO, [other]);
        w.send(PacketType.CAN_DO, [fn]);
        w.send(PacketType.CANT_DO, [fn]);
        await w.sync();
      }
      expect((await admin.status()).find((s) => s.function === fn)).toEqual({
        function: fn,
        total: 3,
        running: 0,
        workers: 0,
      });
      expect((await admin.status()).find((s) => s.function === other)).toEqual({
        function: other,
        total: 0,
        running: 0,
        workers: 2,
      });
      expect((await admin.priorityStatus()).find((s) => s.function === fn)).toEqual({
        function: fn,
        high: 1,
        normal: 1,
        low: 1,
        workers: 0,
      });

      const byServer = await admin.statusByServer();
      expect(byServer.map((r) => r.server)).toEqual([g1.address, g2.address]);
      expect(byServer.map((r) => r.ok && r.value.find((s) => s.function === fn)?.total)).toEqual([2, 1]);

      const workers = await admin.workers();
      expect(
        workers
          .filter((w) => w.clientId?.startsWith('merged-'))
          .map((w) => [w.clientId, w.server])
          .sort(),
      ).toEqual([
        ['merged-1', g1.address],
        ['merged-2', g2.address],
      ]);

      const jobs = await admin.showJobs();
      expect(jobs.every((j) => j.server === g1.address || j.server === g2.address)).toBe(true);
      const uniques = (await admin.showUniqueJobs()).filter((u) => u.unique.startsWith(fn));
      expect(uniques.sort((x, y) => x.unique.localeCompare(y.unique))).toEqual([
        { server: g1.address, unique: `${fn}-a` },
        { server: g1.address, unique: `${fn}-b` },
        { server: g2.address, unique: `${fn}-c` },
      ]);
    } finally {
      await Promise.all([w1.close(), w2.close()]);
    }
  });

  it('applies maxqueue on every server and says where the function was unknown', async () => {
    const fn = fname('maxall');
    await r1.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-1`);
    await r2.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-1`);
    expect(await admin.maxqueue(fn, 1)).toEqual([
      { server: g1.address, applied: true },
      { server: g2.address, applied: true },
    ]);
    await expect(r1.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-2`)).rejects.toThrow('QUEUE_ERROR');
    await expect(r2.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-2`)).rejects.toThrow('QUEUE_ERROR');

    const only1 = fname('maxone');
    await r1.submit(PacketType.SUBMIT_JOB_BG, only1, `${only1}-1`);
    expect(await admin.maxqueue(only1, 5)).toEqual([
      { server: g1.address, applied: true },
      { server: g2.address, applied: false },
    ]);
  });

  it('cancels a job on the named server, or on whichever server knows it', async () => {
    const fn = fname('cancelall');
    const h2 = await r2.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-x`);
    expect(await admin.cancelJob('H:nowhere:1')).toBe(false);
    expect(await admin.cancelJob(h2, g2.address)).toBe(true);
    expect((await admin.server(g2.address).showJobs()).find((j) => j.handle === h2)).toMatchObject({ ignoreJob: true });

    const h2b = await r2.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-y`);
    expect(await admin.cancelJob(h2b)).toBe(true);
    expect((await admin.server(g2.address).showJobs()).find((j) => j.handle === h2b)).toMatchObject({
      ignoreJob: true,
    });
    await expect(admin.cancelJob('H:x:1', 'nope:1')).rejects.toThrow(/Unknown gearmand/);
  });

  it('sees the same job handle on two gearmands of one host, so cancelJob takes a server', async () => {
    const [a, b] = await Promise.all([res.gearmand(), res.gearmand()]);
    const pair = res.admin({ servers: [a.address, b.address] });
    const [ra, rb] = await Promise.all([Raw.open(a.port), Raw.open(b.port)]);
    res.defer(() => Promise.all([ra.close(), rb.close()]));
    const fn = fname('twins');
    const ha = await ra.submit(PacketType.SUBMIT_JOB_BG, fn, 'ua');
    const hb = await rb.submit(PacketType.SUBMIT_JOB_BG, fn, 'ub');
    expect(ha).toBe(hb);
    const ignored = async () => (await pair.showJobs()).map((j) => [j.server, j.ignoreJob]);

    expect(await pair.cancelJob(ha, a.address)).toBe(true);
    expect(await ignored()).toEqual([
      [a.address, true],
      [b.address, false],
    ]);
    // Without a server, every gearmand that has that handle cancels its job.
    expect(await pair.cancelJob(ha)).toBe(true);
    expect(await ignored()).toEqual([
      [a.address, true],
      [b.address, true],
    ]);
  });

  it('keeps answering from the live server when one is down, and says which one failed', async () => {
    const fn = fname('down');
    await r1.submit(PacketType.SUBMIT_JOB_BG, fn, `${fn}-1`);
    expect((await admin.statusByServer()).every((r) => r.ok)).toBe(true); // both sockets open

    await g2.server.kill();
    try {
      const byServer = await admin.statusByServer();
      expect(byServer[0]).toMatchObject({ server: g1.address, ok: true });
      expect(byServer[1]).toMatchObject({ server: g2.address, ok: false });
      const failure = byServer[1];
      expect(!failure.ok && failure.error).toBeInstanceOf(GearmanConnectionError);

      expect((await admin.status()).find((s) => s.function === fn)?.total).toBe(1);
      expect((await admin.priorityStatus()).find((s) => s.function === fn)?.normal).toBe(1);
      expect((await admin.workers()).every((w) => w.server === g1.address)).toBe(true);
      expect((await admin.showUniqueJobs()).some((u) => u.unique === `${fn}-1`)).toBe(true);

      const versions = await admin.eachServer((c) => c.version());
      expect(versions.map((v) => v.ok)).toEqual([true, false]);
      expect((await admin.priorityStatusByServer()).map((v) => v.ok)).toEqual([true, false]);

      // A write that reached only some servers is an error, naming both sides.
      const partial = await rejection(admin.maxqueue(fn, 10));
      expect(partial).toBeInstanceOf(GearmanAdminServersError);
      expect(partial).toMatchObject({ code: 'ADMIN_ERROR' });
      expect((partial as GearmanAdminServersError).failures.map((f) => f.server)).toEqual([g2.address]);
      expect(partial.message).toContain(`sent to ${g1.address}`);

      // The job might be on the server that cannot be asked, so no plain false.
      const unsure = await rejection(admin.cancelJob('H:nowhere:424242'));
      expect(unsure).toMatchObject({ code: 'ADMIN_ERROR' });
      expect(unsure.message).toContain(g2.address);

      // Only when no server answers do merged reads reject.
      const port = await freePort();
      const dead = new GearmanAdmin({ servers: [g2.address, `127.0.0.1:${port}`] });
      try {
        const none = await rejection(dead.status());
        expect(none).toBeInstanceOf(GearmanAdminServersError);
        expect(none).toMatchObject({ code: 'NO_SERVER' });
        expect(none.message).toContain(g2.address);
        expect(none.message).toContain(`127.0.0.1:${port}`);
        expect((none as GearmanAdminServersError).failures).toHaveLength(2);
      } finally {
        await dead.close();
      }
      const single = new GearmanAdmin({ servers: g2.address });
      try {
        expect(await rejection(single.status())).toBeInstanceOf(GearmanConnectionError);
      } finally {
        await single.close();
      }
    } finally {
      await g2.server.restart();
    }
    // The dead server's connection reconnects on its own once it is back.
    expect((await admin.statusByServer()).every((r) => r.ok)).toBe(true);
    expect(await admin.server(g2.address).getpid()).toBe(g2.server.pid);
  });
});

/** Self-signed EC certificate for localhost / 127.0.0.1, valid until 2126: test only. */
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOWNs+SjQovxg53bX
QWGkaLlajJdZ0z24R9b+NW0UlBmhRANCAAQ40mR0k0DWQpkjqFJYDFseWZbOx/LP
UeyUkKaMsAdJkXIa0AghM6DP4oYEXFfyXBMpolFx3LPWC9q+omPSRODz
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUdNAn0B5/u2SPfWI03gLEhGV8/mcwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjEyNTcyM1oYDzIxMjYxMDI5
MTI1NzIzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQ40mR0k0DWQpkjqFJYDFseWZbOx/LPUeyUkKaMsAdJkXIa0AghM6DP
4oYEXFfyXBMpolFx3LPWC9q+omPSRODzo28wbTAdBgNVHQ4EFgQUPIkEUh4CZJ+e
GyQIBFdA4ML+60swHwYDVR0jBBgwFoAUPIkEUh4CZJ+eGyQIBFdA4ML+60swDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSQAwRgIhAJI2lIQ42Asn94pT3QTZbtBCFhEDZxiSZ+OrFuqKzsSgAiEA
qcqUsf2G3qQDXuh4gsUsbmoxCKI27u+dR12h9X6XrZI=
-----END CERTIFICATE-----
`;
