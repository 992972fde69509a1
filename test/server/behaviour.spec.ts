/**
 * The embedded job server on its own: in-process use with the library's client and worker, its
 * options (bounds, gearmand 2.0.0 behaviours), and where it chose to differ from gearmand 1.1.20.
 * What it shares with gearmand is compared byte for byte in conformance.spec.ts.
 */
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { describe, expect, it } from '@jest/globals';
import { GearmanClient, GearmanWorker } from '../../lib/engine/index.js';
import { GearmanError } from '../../lib/protocol/index.js';
import { type GearmanServerOptions, startGearmanServer } from '../../lib/server/index.js';
import { startEmbedded, useWires } from './support.js';
import { req, type Wire } from './wire.js';

const h = (n: number, prefix = `H:${hostname()}`) => `${prefix}:${n}`;

/** Writes, then waits until every listed connection has received what the server sent so far. */
async function step(w: Wire, data: (Buffer | string)[], ...others: Wire[]): Promise<void> {
  w.write(...data);
  await w.barrier();
  for (const o of others) await o.barrier();
}

/** A fresh embedded server for one test, closed at its end. */
async function withServer<T>(options: GearmanServerOptions, fn: (port: number) => Promise<T>): Promise<T> {
  const s = await startEmbedded(options);
  try {
    return await fn(s.port);
  } finally {
    await s.stop();
  }
}

describe('in process', () => {
  it('startGearmanServer({ port: 0 }) serves the library client and worker; close() frees the port', async () => {
    const server = await startGearmanServer({ port: 0 });
    expect(server.servers).toEqual([`127.0.0.1:${server.port}`]);
    const worker = new GearmanWorker({ servers: server.servers });
    worker.register('reverse', (job) => Buffer.from(job.payload).reverse());
    await worker.start();
    const client = new GearmanClient({ servers: server.servers });
    await client.connect();
    try {
      const results = await Promise.all(['abc', 'hello', ''].map((s) => client.submit('reverse', s).result()));
      expect(results.map((r) => r.toString())).toEqual(['cba', 'olleh', '']);
      const bg = client.submit('reverse', 'later', { background: true });
      await bg.created();
    } finally {
      await client.close();
      await worker.close(200);
      await server.close();
    }
    expect(server.connectionCount).toBe(0);
    // The port is free again.
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(server.port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  });

  it('refuses bad options with INVALID_ARGUMENT and a taken port with LISTEN_FAILED', async () => {
    await expect(startGearmanServer({ port: 70000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(startGearmanServer({ verbose: 'LOUD' as never })).rejects.toBeInstanceOf(GearmanError);
    await expect(startGearmanServer({ canDoTimeout: 'sometimes' as never })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const first = await startGearmanServer({ port: 0 });
    try {
      const error = await startGearmanServer({ port: first.port }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GearmanError);
      expect(error).toMatchObject({ code: 'LISTEN_FAILED', message: expect.stringContaining('port is taken') });
    } finally {
      await first.close();
    }
  });

  it('passes log lines at or above its verbose level to log()', async () => {
    const lines: string[] = [];
    const server = await startGearmanServer({
      port: 0,
      verbose: 'NOTICE',
      log: (level, m) => lines.push(`${level} ${m}`),
    });
    await server.close();
    expect(lines).toEqual([expect.stringMatching(/^NOTICE listening on 127\.0\.0\.1:\d+/)]);
  });
});

describe('bounds', () => {
  const wires = useWires();

  it('maxQueue: submits past the bound get QUEUE_ERROR; merges onto an existing job still work; a finished job makes room', async () => {
    await withServer({ maxQueue: 3 }, async (port) => {
      const c = await wires.open(port);
      const w = await wires.open(port);
      await step(c, [
        req(18, 'f', 'a', '1'),
        req(18, 'f', 'b', '2'),
        req(18, 'f', 'c', '3'),
        req(18, 'f', 'd', '4'),
        req(18, 'f', 'a', 'merge'),
      ]);
      expect(c.take()).toEqual([
        `JOB_CREATED ${h(1)}`,
        `JOB_CREATED ${h(2)}`,
        `JOB_CREATED ${h(3)}`,
        'ERROR QUEUE_ERROR\\0Job queue is full',
        `JOB_CREATED ${h(1)}`,
      ]);
      await step(w, [req(1, 'f'), req(9), req(13, h(1), 'done')]);
      await step(c, [req(18, 'f', 'd', '4')]);
      expect(c.take()).toEqual([`JOB_CREATED ${h(4)}`]);
    });
  });

  it('maxQueueBytes: payload bytes held are bounded too', async () => {
    await withServer({ maxQueueBytes: 100 }, async (port) => {
      const c = await wires.open(port);
      await step(c, [
        req(18, 'f', '', 'x'.repeat(60)),
        req(18, 'f', '', 'y'.repeat(60)),
        req(18, 'f', '', 'z'.repeat(40)),
      ]);
      expect(c.take()).toEqual([`JOB_CREATED ${h(1)}`, 'ERROR QUEUE_ERROR\\0Job queue is full', `JOB_CREATED ${h(2)}`]);
    });
  });

  it('maxPacketSize: a packet announcing more closes its connection, others are untouched', async () => {
    await withServer({ maxPacketSize: 4096 }, async (port) => {
      const big = await wires.open(port);
      const other = await wires.open(port);
      await step(big, [req(16, 'x'.repeat(4096))]);
      expect(big.take()).toEqual([`ECHO_RES ${'x'.repeat(4096)}`]);
      big.write(req(16, 'x'.repeat(4097)));
      await big.whenClosed();
      await step(other, [req(16, 'still here')]);
      expect(other.take()).toEqual(['ECHO_RES still here']);
    });
  });

  it('packets and admin lines split at every byte, and a 1 MiB payload in many chunks, arrive whole', async () => {
    await withServer({}, async (port) => {
      const c = await wires.open(port);
      const bytes = Buffer.concat([req(7, 'f', 'u', 'split'), Buffer.from('status\r\n'), req(16, 'e')]);
      for (const b of bytes) c.write(Buffer.from([b]));
      await c.waitFor(4);
      expect(c.take()).toEqual([`JOB_CREATED ${h(1)}`, 'T:f\t1\t0\t0\n', 'T:.\n', 'ECHO_RES e']);
      const payload = Buffer.alloc(1024 * 1024, 7);
      const packet = req(18, 'f', '', payload);
      for (let i = 0; i < packet.length; i += 1000) c.write(packet.subarray(i, i + 1000));
      await c.barrier();
      expect(c.take()).toEqual([`JOB_CREATED ${h(2)}`]);
      const w = await wires.open(port);
      await step(w, [req(1, 'f'), req(9), req(13, h(1), 'x'), req(9)]);
      const assigned = w.take();
      expect(assigned[1]).toBe(`JOB_ASSIGN ${h(2)}\\0f\\0${payload.toString('latin1').replace(/\0/g, '\\0')}`);
    });
  });
});

describe('gearmand 2.0.0 behaviours, and the choices where 1.1.20 is a bug', () => {
  const wires = useWires();

  it('epochWakeup (default): a sleeping worker gets a NOOP when an epoch job falls due', async () => {
    await withServer({}, async (port) => {
      const w = await wires.open(port);
      const c = await wires.open(port);
      await step(w, [req(1, 'e')]);
      const due = Math.floor(Date.now() / 1000) + 1;
      await step(c, [req(36, 'e', '', String(due), 'soon')], w);
      expect(w.take()).toEqual([]);
      await step(w, [req(9), req(4)]);
      expect(w.take()).toEqual(['NO_JOB']);
      await w.waitFor(1, 3000);
      expect(Date.now()).toBeGreaterThanOrEqual(due * 1000);
      await step(w, [req(9)]);
      expect(w.take()).toEqual(['NOOP', `JOB_ASSIGN ${h(1)}\\0e\\0soon`]);
    });
  });

  it('epochWakeup: false is gearmand 1.1.20: nobody is woken, a GRAB after the due time gets the job', async () => {
    await withServer({ epochWakeup: false }, async (port) => {
      const w = await wires.open(port);
      const c = await wires.open(port);
      await step(w, [req(1, 'e'), req(4)]);
      const due = Math.floor(Date.now() / 1000) + 1;
      await step(c, [req(36, 'e', '', String(due), 'soon')], w);
      expect(w.take()).toEqual(['NOOP']); // gearmand wakes sleepers at submit, not at the due time
      await step(w, [req(9), req(4)]);
      expect(w.take()).toEqual(['NO_JOB']);
      await new Promise((r) => setTimeout(r, due * 1000 - Date.now() + 700));
      await w.barrier();
      expect(w.take()).toEqual([]);
      await step(w, [req(9)]);
      expect(w.take()).toEqual([`JOB_ASSIGN ${h(1)}\\0e\\0soon`]);
    });
  });

  it('an epoch job not yet due does not hide the LOW jobs of its function (gearmand 1.1.20 does, and answers PRE_SLEEP with NOOP: a busy loop)', async () => {
    await withServer({}, async (port) => {
      const w = await wires.open(port);
      const c = await wires.open(port);
      await step(c, [req(36, 'e', '', String(Math.floor(Date.now() / 1000) + 3600), 'later'), req(34, 'e', '', 'low')]);
      await step(w, [req(1, 'e'), req(9), req(9), req(4)]);
      expect(w.take()).toEqual([`JOB_ASSIGN ${h(2)}\\0e\\0low`, 'NO_JOB']);
    });
  });

  it('globalPriority with roundRobin is gearmand 2.0.0: fb:H fa:N fb:N fa:L fb:L', async () => {
    await withServer({ globalPriority: true, roundRobin: true }, async (port) => {
      const w = await wires.open(port);
      const c = await wires.open(port);
      await step(w, [req(1, 'fa'), req(1, 'fb')]);
      await step(c, [
        req(32, 'fb', '', 'fb:H'),
        req(18, 'fb', '', 'fb:N'),
        req(34, 'fb', '', 'fb:L'),
        req(18, 'fa', '', 'fa:N'),
        req(34, 'fa', '', 'fa:L'),
      ]);
      await step(
        w,
        Array.from({ length: 5 }, () => req(9)),
      );
      expect(w.take().map((l) => l.split('\\0').pop())).toEqual(['fb:H', 'fa:N', 'fb:N', 'fa:L', 'fb:L']);
    });
  });

  it("canDoTimeout: 'current-job' (2.0.0) times out a second job run back to back; 'first-job' (1.1.20, default) does not", async () => {
    for (const mode of ['current-job', 'first-job'] as const) {
      await withServer({ canDoTimeout: mode }, async (port) => {
        const w = await wires.open(port);
        const c = await wires.open(port);
        const adm = await wires.open(port);
        await step(c, [req(18, 'slow', '', 'one'), req(18, 'slow', '', 'two')]);
        await step(w, [req(23, 'slow', '1000'), req(9), req(13, h(1), 'quick'), req(9)]);
        await new Promise((r) => setTimeout(r, 1400));
        await step(adm, ['show jobs\n']);
        expect(adm.take()).toEqual([`T:${h(2)}\t${mode === 'current-job' ? 1 : 0}\t0\t1\n`, 'T:.\n']);
      });
    }
  });

  it('drop function takes its queued jobs with it and fails them to their clients (gearmand leaves them to wait forever)', async () => {
    await withServer({}, async (port) => {
      const c = await wires.open(port);
      const adm = await wires.open(port);
      await step(c, [req(7, 'gone', '', 'a'), req(18, 'gone', '', 'b')]);
      await step(adm, ['drop function gone\n', 'show jobs\n', 'status\n'], c);
      expect(adm.take()).toEqual(['T:OK\r\n', 'T:.\n', 'T:.\n']);
      expect(c.take()).toEqual([`JOB_CREATED ${h(1)}`, `JOB_CREATED ${h(2)}`, `WORK_FAIL ${h(1)}`]);
    });
  });

  it('a packet with too few NULs closes the connection at once (gearmand reads on into the next packet)', async () => {
    await withServer({}, async (port) => {
      const c = await wires.open(port);
      c.write(Buffer.concat([req(7, 'only-function-and-data')]), req(16, 'after'));
      await c.whenClosed();
      expect(c.take()).toEqual([]);
    });
  });

  it('the admin version is 1.1.20+embedded unless set; getpid is this process', async () => {
    await withServer({ version: '9.9.9-test' }, async (port) => {
      const adm = await wires.open(port);
      await step(adm, ['version\n', 'getpid\n', 'verbose\n']);
      expect(adm.take()).toEqual(['T:OK 9.9.9-test\n', `T:OK ${process.pid}\n`, 'T:OK ERROR\n']);
    });
    await withServer({}, async (port) => {
      const adm = await wires.open(port);
      await step(adm, ['version\n']);
      expect(adm.take()).toEqual(['T:OK 1.1.20+embedded\n']);
    });
  });
});
