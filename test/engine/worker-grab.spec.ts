/**
 * The worker's GRAB pattern, against a scripted fake gearmand that logs every packet: woken by
 * NOOP it sends two GRABs, and when one gets a job and the other NO_JOB, the WORK_COMPLETE and
 * PRE_SLEEP leave together (two writes and two reads per job on a short queue, not three).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { encodePacket, PacketDecoder, PacketType, packetName } from '../../lib/protocol/index.js';
import type { JobHandler } from '../../lib/engine/index.js';
import { useResources } from '../support/harness.js';
import { listenOnLoopback } from '../support/servers.js';
import { eventually } from '../support/wait.js';

const res = useResources();

/** A fake gearmand with a job queue: GRAB gets a job or NO_JOB, PRE_SLEEP sleeps unless jobs wait. */
async function scriptedServer() {
  const log: string[] = [];
  const queue: string[] = [];
  let peer: Socket | undefined;
  let sleeping = false;
  let handles = 0;
  const server: Server = createServer((socket) => {
    peer = socket;
    socket.on('error', () => undefined);
    const decoder = new PacketDecoder(
      (p) => {
        // The worker's start() waits for an ECHO round trip (its CAN_DOs are then registered).
        if (p.type === PacketType.ECHO_REQ) return void out.push(encodePacket(PacketType.ECHO_RES, [p.args[0]], 'RES'));
        log.push(packetName(p.type));
        if (p.type === PacketType.GRAB_JOB_UNIQ) {
          sleeping = false;
          const job = queue.shift();
          if (job === undefined) out.push(encodePacket(PacketType.NO_JOB, [], 'RES'));
          else out.push(encodePacket(PacketType.JOB_ASSIGN_UNIQ, [`H:fake:${++handles}`, 'fn', '', job], 'RES'));
        } else if (p.type === PacketType.PRE_SLEEP) {
          if (queue.length > 0) out.push(encodePacket(PacketType.NOOP, [], 'RES'));
          else sleeping = true;
        }
      },
      { magic: 'REQ' },
    );
    let out: Buffer[] = [];
    socket.on('data', (chunk) => {
      decoder.push(chunk);
      // Everything answered per read goes out in one write, as gearmand's replies to one batch do.
      if (out.length > 0) socket.write(Buffer.concat(out));
      out = [];
    });
  });
  const port = await listenOnLoopback(server);
  res.defer(
    () =>
      new Promise<void>((resolve) => {
        peer?.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    address: `127.0.0.1:${port}`,
    log,
    get sleeping() {
      return sleeping;
    },
    /** Queues a job and wakes the worker like gearmand does. */
    submit(payload: string) {
      queue.push(payload);
      if (sleeping) {
        sleeping = false;
        peer!.write(encodePacket(PacketType.NOOP, [], 'RES'));
      }
    },
  };
}

/** A worker (maxJobs 8) on a new scripted server, started and gone to sleep; `handler` runs the jobs. */
async function sleepingWorker(handler: JobHandler) {
  const server = await scriptedServer();
  const worker = res.worker({ servers: server.address, maxJobs: 8 });
  worker.register('fn', handler);
  await worker.start();
  await eventually(() => server.sleeping, 2000, 'the worker to go to sleep');
  return server;
}

describe('worker GRAB pattern', () => {
  it('takes one job per wake-up with two GRABs and sends PRE_SLEEP with the WORK_COMPLETE', async () => {
    const done: string[] = [];
    const server = await sleepingWorker((job) => {
      done.push(job.payload.toString());
      return job.payload;
    });
    for (let i = 1; i <= 3; i++) {
      server.log.length = 0;
      server.submit(`job${i}`);
      await eventually(() => server.sleeping, 2000, `sleep after job ${i}`);
      expect(server.log).toEqual(['GRAB_JOB_UNIQ', 'GRAB_JOB_UNIQ', 'WORK_COMPLETE', 'PRE_SLEEP']);
    }
    expect(done).toEqual(['job1', 'job2', 'job3']);
  });

  it('grabs one job at a time while the jobs are large', async () => {
    const sizes: number[] = [];
    const server = await sleepingWorker((job) => {
      sizes.push(job.payload.length);
      return 'ok';
    });
    server.log.length = 0;
    const big = 'x'.repeat(300 * 1024);
    for (let i = 0; i < 4; i++) server.submit(big);
    await eventually(() => sizes.length === 4 && server.sleeping, 3000, 'the 4 large jobs');
    const G = 'GRAB_JOB_UNIQ';
    const C = 'WORK_COMPLETE';
    expect(server.log).toEqual([G, G, C, C, G, C, G, C, G, 'PRE_SLEEP']);
  });

  it('keeps grabbing, more at a time, while the queue has jobs', async () => {
    const done: string[] = [];
    const server = await sleepingWorker((job) => {
      done.push(job.payload.toString());
      return job.payload;
    });
    server.log.length = 0;
    for (let i = 0; i < 30; i++) server.submit(`j${i}`);
    await eventually(() => done.length === 30 && server.sleeping, 3000, 'all 30 jobs');
    expect(done).toEqual(Array.from({ length: 30 }, (_, i) => `j${i}`));
    // One PRE_SLEEP at the end only: no sleeping while jobs were queued.
    expect(server.log.filter((t) => t === 'PRE_SLEEP')).toHaveLength(1);
    expect(server.log.filter((t) => t === 'WORK_COMPLETE')).toHaveLength(30);
  });
});
