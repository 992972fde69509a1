/**
 * When a connection writes (lib/engine/connection.ts, scheduleFlush): what is sent while a read is
 * handled leaves at the end of that read, before the event loop's check phase (the round trip at
 * low concurrency), a worker's read waits a few microtask turns for the reports of jobs whose
 * handlers answer with a promise, and what is sent outside a read is still batched into one write
 * per turn.
 * Every socket write of the process is recorded with the packet types it carries.
 */
import { Socket } from 'node:net';
import { PacketType, packetName } from '../../lib/protocol/index.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** The packet types in one written chunk of whole packets (the engine writes whole packets). */
function packetTypes(chunk: unknown): string[] {
  if (!(chunk instanceof Uint8Array)) return [];
  const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
  const types: string[] = [];
  for (let at = 0; at + 12 <= bytes.length; at += 12 + bytes.readUInt32BE(at + 8)) {
    types.push(packetName(bytes.readUInt32BE(at + 4)));
  }
  return types;
}

/** Records every socket write as the packet types it carries, in `events` (and to `seen`), until the test ends. */
function recordWrites(events: string[], seen?: (types: string[]) => void): void {
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
    const types = packetTypes(chunk);
    if (types.length > 0) events.push(types.join('+'));
    if (types.length > 0) seen?.(types);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  res.defer(() => {
    Socket.prototype.write = write;
  });
}

describe('write batching', () => {
  it("sends a worker's WORK_COMPLETE at the end of the read that brought the job, before the check phase", async () => {
    const fn = fnName('batch');
    const events: string[] = [];
    const worker = res.worker({ maxJobs: 1 });
    worker.register(fn, (job) => {
      setImmediate(() => events.push('check phase'));
      return job.payload;
    });
    await worker.start();
    const client = await res.client();
    recordWrites(events);
    const result = await within(client.submit(fn, 'x').result(), 5000, 'the job');
    expect(result.toString()).toBe('x');
    const complete = events.findIndex((e) => e.startsWith('WORK_COMPLETE'));
    expect(complete).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('check phase')).toBeGreaterThan(complete);
  });

  it("sends an async handler's WORK_COMPLETE in the same write as what its read caused", async () => {
    const fn = fnName('batch');
    const worker = res.worker({ maxJobs: 2 });
    // A dozen microtask turns, as a handler behind Nest's RPC pipeline takes.
    worker.register(fn, async (job) => {
      for (let i = 0; i < 12; i++) await null;
      return job.payload;
    });
    await worker.start();
    const client = await res.client();
    const events: string[] = [];
    recordWrites(events);
    const result = await within(client.submit(fn, 'x').result(), 5000, 'the job');
    expect(result.toString()).toBe('x');
    const complete = events.find((e) => e.includes(packetName(PacketType.WORK_COMPLETE)));
    // The read brought JOB_ASSIGN and the second GRAB's NO_JOB: the PRE_SLEEP that answers it
    // waits for the report instead of leaving alone.
    expect(complete).toBe(`${packetName(PacketType.PRE_SLEEP)}+${packetName(PacketType.WORK_COMPLETE)}`);
  });

  it('sends the GRABs of a read without waiting for a handler that waits on I/O', async () => {
    const fn = fnName('batch');
    const worker = res.worker({ maxJobs: 2 });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    worker.register(fn, async (job) => {
      await gate;
      return job.payload;
    });
    await worker.start();
    const client = await res.client();
    const events: string[] = [];
    const grab = packetName(PacketType.GRAB_JOB_UNIQ);
    const grabbed = new Promise<void>((resolve) => {
      recordWrites(events, (types) => {
        if (types.includes(grab)) resolve();
      });
    });
    const job = client.submit(fn, 'x');
    // The handler has the job and waits; the GRAB for the free slot still leaves.
    await within(grabbed, 5000, 'a GRAB while the handler waits');
    open();
    expect((await within(job.result(), 5000, 'the job')).toString()).toBe('x');
  });

  it('sends a submit made in a result listener at the end of that read, before the check phase', async () => {
    const fn = fnName('batch');
    const worker = res.worker();
    worker.register(fn, (job) => job.payload);
    await worker.start();
    const client = await res.client();
    const events: string[] = [];
    recordWrites(events);
    let second: Promise<Buffer> | undefined;
    await within(
      new Promise<void>((resolve) => {
        client.submit(fn, 'first').once('complete', () => {
          events.length = 0;
          second = client.submit(fn, 'second').result();
          setImmediate(() => events.push('check phase'));
          resolve();
        });
      }),
      5000,
      'the first job',
    );
    expect((await within(second!, 5000, 'the second job')).toString()).toBe('second');
    // Other sockets of this process may write in between (the embedded server, the worker).
    const submit = events.findIndex((e) => e.split('+').includes(packetName(PacketType.SUBMIT_JOB)));
    expect(submit).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('check phase')).toBeGreaterThan(submit);
  });

  it('batches submits made outside a read into one write per turn', async () => {
    const client = await res.client();
    const events: string[] = [];
    recordWrites(events);
    const fn = fnName('batch');
    const jobs = [1, 2, 3].map((i) => client.submit(fn, `p${i}`, { background: true }));
    await within(Promise.all(jobs.map((j) => j.created())), 5000, 'the JOB_CREATED replies');
    const bg = packetName(PacketType.SUBMIT_JOB_BG);
    expect(events.filter((e) => e.includes(bg))).toEqual([`${bg}+${bg}+${bg}`]);
  });
});
