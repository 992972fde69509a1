/**
 * The client's `idleTimeout` on a real gearmand: a connection without jobs for that long is
 * closed, stays closed (no reconnect loop) until the next submit, which reconnects and is not lost;
 * the heartbeat's ECHOs do not count as jobs, and a long job keeps its connection.
 */
import { GearmanClient, type GearmanClientOptions } from '../../lib/engine/index.js';
import { PacketType } from '../../lib/protocol/index.js';
import { invalidArgument } from '../support/errors.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { deferred, nextEvent, quietPeriod, recordEvents, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

const IDLE = 300;

/** An echo worker for a new function, and a client with `idleTimeout` whose heartbeat ECHOs are counted. */
async function setup(options: GearmanClientOptions = {}) {
  const fn = fnName('idle');
  const worker = res.worker({ maxJobs: 4 });
  worker.register(fn, (job) => job.payload);
  await worker.start();
  let echoes = 0;
  const clientId = fnName('client');
  const client = await res.client({
    idleTimeout: IDLE,
    clientId,
    heartbeat: { interval: 50, timeout: 2000 },
    tap: (event) => {
      if (event.direction === 'out' && event.packet.type === PacketType.ECHO_REQ) echoes++;
    },
    ...options,
  });
  const connected = recordEvents(client, 'connected');
  const reconnecting = recordEvents(client, 'reconnecting');
  const disconnected = recordEvents<[string, Error | undefined]>(client, 'disconnected');
  res.defer(() => {
    connected.stop();
    reconnecting.stop();
    disconnected.stop();
  });
  /** Whether gearmand lists the client's connection in admin `workers` (every connection is listed). */
  const listed = async () => (await res.admin().workers()).some((w) => w.clientId === clientId);
  return { fn, client, connected, reconnecting, disconnected, listed, echoes: () => echoes };
}

describe('idleTimeout', () => {
  it('closes the connection after that long without jobs, heartbeat or not, and does not reconnect by itself', async () => {
    const { fn, client, connected, reconnecting, disconnected, listed, echoes } = await setup();
    const dropped = nextEvent<[string, Error | undefined]>(client, 'disconnected', 5000);
    await expect(client.run(fn, 'a')).resolves.toEqual(Buffer.from('a'));
    const jobEnded = performance.now();
    const echoesBefore = echoes();

    const [server, error] = await dropped;
    const idleFor = performance.now() - jobEnded;
    expect(server).toBe(gearmand.address);
    expect(error).toBeUndefined();
    expect(idleFor).toBeGreaterThanOrEqual(IDLE - 10);
    // The heartbeat ran meanwhile (an ECHO every 50 ms of silence) and did not keep it open.
    expect(echoes() - echoesBefore).toBeGreaterThanOrEqual(2);
    expect(client.connections[0].state).toBe('idle');

    await quietPeriod(3 * IDLE);
    expect(connected.events).toHaveLength(0);
    expect(reconnecting.events).toHaveLength(0);
    expect(disconnected.events).toHaveLength(1);
    expect(await listed()).toBe(false);

    // The next submit reconnects, once, and gets its result.
    await expect(within(client.run(fn, 'b'), 5000, 'the submit after the drop')).resolves.toEqual(Buffer.from('b'));
    expect(connected.events).toHaveLength(1);
    expect(await listed()).toBe(true);
  });

  it('loses no submit made as the connection closes (in its disconnected listener), with or without a unique', async () => {
    const { fn, client } = await setup();
    await client.run(fn, 'warm');
    const resubmitted = deferred<Buffer[]>();
    client.once('disconnected', () => {
      const jobs = [client.run(fn, 'plain'), client.run(fn, 'keyed', { unique: 'idle-unique' })];
      Promise.all(jobs).then(resubmitted.resolve, resubmitted.reject);
    });
    await expect(within(resubmitted.promise, 5000, 'the submits made at the drop')).resolves.toEqual([
      Buffer.from('plain'),
      Buffer.from('keyed'),
    ]);
  });

  it('keeps the connection while a job runs longer than idleTimeout, and counts idle time from its end', async () => {
    const fn = fnName('long');
    const { started, release } = await res.heldWorker(fn);
    const { client, disconnected } = await setup();
    const job = client.submit(fn, 'x');
    await within(started.promise, 5000, 'the long job to start');
    await quietPeriod(2 * IDLE);
    expect(disconnected.events).toHaveLength(0);
    const dropped = nextEvent(client, 'disconnected', 5000);
    release.resolve('finally');
    await expect(job.result()).resolves.toEqual(Buffer.from('finally'));
    const ended = performance.now();
    await dropped;
    expect(performance.now() - ended).toBeGreaterThanOrEqual(IDLE - 10);
  });

  it("reconnects for getStatus: a background job's handle lives on a connection closed for idleness", async () => {
    const { client } = await setup();
    const dropped = nextEvent(client, 'disconnected', 5000);
    const handle = await client.submit(fnName('queued'), 'x', { background: true }).created();
    await dropped;
    await expect(within(client.getStatus(handle), 5000, 'getStatus')).resolves.toMatchObject({
      known: true,
      running: false,
      server: gearmand.address,
    });
  });

  it('is off by default and refuses a bad value', async () => {
    const { client, disconnected } = await setup({ idleTimeout: undefined });
    await quietPeriod(2 * IDLE);
    expect(disconnected.events).toHaveLength(0);
    expect(client.connections[0].connected).toBe(true);
    invalidArgument(() => new GearmanClient({ idleTimeout: -1 }));
    invalidArgument(() => new GearmanClient({ idleTimeout: 1.5 }));
  });
});
