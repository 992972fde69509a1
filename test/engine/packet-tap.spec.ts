/**
 * The `tap` option on a real gearmand: every packet in and out of the client and the worker, with
 * the server, as the protocol layer types it.
 */
import { GearmanClient, GearmanError, GearmanWorker, type PacketTapEvent } from '../../lib/engine/index.js';
import { PacketType, packetName } from '../../lib/protocol/index.js';
import { invalidArgument } from '../support/errors.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { deferred, nextEvent, waitForEvent, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** A tap that keeps what it sees as `direction type arg,arg` lines (arguments as text). */
function recorder() {
  const events: PacketTapEvent[] = [];
  return {
    events,
    tap: (event: PacketTapEvent) => events.push(event),
    lines: (direction: 'in' | 'out') =>
      events
        .filter((e) => e.direction === direction)
        .map((e) => [packetName(e.packet.type), ...e.packet.args.map((a) => a.toString())].join(' ')),
  };
}

describe('tap', () => {
  it("sees every packet of a job on the client's and the worker's connections, with the server", async () => {
    const fn = fnName('tapped');
    const worker = recorder();
    const client = recorder();
    const w = res.worker({ tap: worker.tap, heartbeat: false });
    w.register(fn, (job) => `done ${job.payload.toString()}`);
    await w.start();
    const c = await res.client({ tap: client.tap, heartbeat: false });
    const job = c.submit(fn, 'data', { unique: 'u-1' });
    await expect(job.result()).resolves.toEqual(Buffer.from('done data'));
    const handle = job.handle!;

    expect(client.lines('out')).toEqual(['OPTION_REQ exceptions', `SUBMIT_JOB ${fn} u-1 data`]);
    expect(client.lines('in')).toEqual([
      'OPTION_RES exceptions',
      `JOB_CREATED ${handle}`,
      `WORK_COMPLETE ${handle} done data`,
    ]);
    // The worker: CAN_DO first, start()'s ECHO barrier, GRABs around the job and a sleep (how many
    // GRABs and NOOPs, and in which order with the ECHO, depends on timing; the job's own packets do not).
    const out = worker.lines('out');
    expect(out[0]).toBe(`CAN_DO ${fn}`);
    expect(out).toContain('ECHO_REQ ');
    expect(out).toContain(`WORK_COMPLETE ${handle} done data`);
    expect(out.filter((l) => l.startsWith('GRAB_JOB_UNIQ')).length).toBeGreaterThanOrEqual(1);
    expect(worker.lines('in')).toContain(`JOB_ASSIGN_UNIQ ${handle} ${fn} u-1 data`);
    for (const event of [...worker.events, ...client.events]) {
      expect(event.server).toBe(gearmand.address);
      expect(event.packet.args.every((a) => Buffer.isBuffer(a))).toBe(true);
    }
  });

  it("sees the heartbeat's ECHO_REQ and its answer", async () => {
    const seen = recorder();
    const answered = deferred();
    await res.client({
      tap: (event) => {
        seen.tap(event);
        if (event.direction === 'in' && event.packet.type === PacketType.ECHO_RES) answered.resolve();
      },
      heartbeat: { interval: 50, timeout: 1000 },
    });
    await within(answered.promise, 3000, 'a heartbeat ECHO_RES through the tap');
    expect(seen.lines('out')).toContain('ECHO_REQ ');
  });

  it('a throwing tap costs no packet: the job goes on and the `error` event says what happened', async () => {
    const fn = fnName('throwing');
    const w = res.worker();
    w.register(fn, () => 'ok');
    await w.start();
    const failure = new Error('tap bug');
    const client = new GearmanClient({
      servers: gearmand.address,
      tap: () => {
        throw failure;
      },
    });
    res.defer(() => client.close());
    const reported = waitForEvent<[Error]>(client, 'error');
    await client.connect();
    await expect(within(client.run(fn), 5000, 'the job under a throwing tap')).resolves.toEqual(Buffer.from('ok'));
    const [error] = await reported;
    expect(error).toBeInstanceOf(GearmanError);
    expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/tap option's function threw .*tap bug/);
    expect(error.cause).toBe(failure);
  });

  it('a throwing tap on the worker does not drop its connection', async () => {
    const fn = fnName('worker-throwing');
    const w = res.worker({
      tap: () => {
        throw new Error('tap bug');
      },
    });
    w.on('error', () => undefined);
    w.register(fn, () => 'ok');
    const disconnected = nextEvent(w, 'disconnected', 1000).then(
      () => true,
      () => false,
    );
    await w.start();
    const client = await res.client();
    await expect(within(client.run(fn), 5000, 'the job')).resolves.toEqual(Buffer.from('ok'));
    expect(await disconnected).toBe(false);
  });

  it('refuses a tap that is not a function', () => {
    invalidArgument(() => new GearmanClient({ tap: 'log' as never }));
    invalidArgument(() => new GearmanWorker({ tap: {} as never }));
  });
});
