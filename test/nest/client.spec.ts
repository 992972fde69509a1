/**
 * ClientGearman against a real gearmand: GearmanRecordBuilder options (unique, priority,
 * background, epoch, timeout, codec), cancelling by unsubscribing, status, connect() retries,
 * results it cannot read, foreign workers' errors, and GearmanModule / ClientsModule wiring.
 */
import 'reflect-metadata';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { ClientsModule, Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { filter, firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { GearmanJobError } from '../../lib/engine/index.js';
import {
  ClientGearman,
  GearmanCodecError,
  GearmanContext,
  GearmanModule,
  GearmanRecordBuilder,
  InjectGearmanClient,
} from '../../lib/index.js';
import { freePort } from '../support/servers.js';
import { functionStatus, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, within } from '../support/wait.js';

// A gearmand per test: these tests read queue counts.
const gearmand = useGearmand({ perTest: true });
const res = useResources(gearmand);

let probe = newProbe();
function newProbe() {
  return {
    order: [] as string[],
    expected: 0,
    allRan: deferred(),
    ran: [] as { label: string; at: number; unique: string }[],
    ranOnce: deferred<{ label: string; at: number; unique: string }>(),
    calls: 0,
    release: res.gate(),
  };
}

@Controller()
class JobsController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @EventPattern<string>('ordered')
  ordered(@Payload() label: string): void {
    probe.order.push(label);
    if (probe.order.length === probe.expected) probe.allRan.resolve();
  }

  @EventPattern<string>('record')
  record(@Payload() label: string, @Ctx() ctx: GearmanContext): void {
    const entry = { label, at: Date.now(), unique: ctx.getUnique() };
    probe.ran.push(entry);
    probe.ranOnce.resolve(entry);
  }

  /** Held until the test releases it; counts its runs. */
  @MessagePattern('held')
  async held(
    @Payload() data: unknown,
    @Ctx() ctx: GearmanContext,
  ): Promise<{ data: unknown; unique: string; run: number }> {
    const run = ++probe.calls;
    await probe.release.promise;
    return { data, unique: ctx.getUnique(), run };
  }
}

beforeEach(() => {
  probe = newProbe();
});

describe('GearmanRecordBuilder', () => {
  it('unique: the handler sees it, and two calls with one unique share one run', async () => {
    await res.microservice({ controllers: [JobsController] });
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder({ id: 1 }).setUnique('order-1').build();
    const first = lastValueFrom(client.send('held', record));
    await eventually(() => probe.calls === 1, 3000, 'the first call to run');
    const second = lastValueFrom(client.send('held', record));
    // The second submit coalesced onto the running job (docs/gearmand-behaviour.md#coalescing): one
    // job, one run.
    await eventually(
      async () => (await functionStatus(res.admin(), 'held')).total === 1,
      3000,
      'gearmand to hold one job',
    );
    probe.release.resolve();
    const expected = { data: { id: 1 }, unique: 'order-1', run: 1 };
    expect(await within(Promise.all([first, second]), 5000, 'both results')).toEqual([expected, expected]);
    expect(probe.calls).toBe(1);
  });

  it('priority: jobs queued with no worker run HIGH, then NORMAL, then LOW', async () => {
    const client = res.clientProxy();
    const admin = res.admin();
    const queued = [
      ['low-1', 'low'],
      ['normal-1', 'normal'],
      ['high-1', 'high'],
      ['low-2', 'low'],
      ['high-2', 'high'],
    ] as const;
    for (const [label, priority] of queued) {
      const handle = await lastValueFrom(
        client.emit('ordered', new GearmanRecordBuilder(label).setPriority(priority).build()),
      );
      expect(handle).toMatch(/^H:/);
    }
    expect((await admin.priorityStatus()).find((s) => s.function === 'ordered')).toEqual({
      function: 'ordered',
      high: 2,
      normal: 1,
      low: 2,
      workers: 0,
    });

    probe.expected = queued.length;
    await res.microservice({ controllers: [JobsController] }, { maxJobs: 1 });
    await within(probe.allRan.promise, 5000, 'all queued jobs to run');
    expect(probe.order).toEqual(['high-1', 'high-2', 'normal-1', 'low-1', 'low-2']);
  });

  it('background: send() emits the handle and completes at once; the handler runs later', async () => {
    const client = res.clientProxy();
    const handles = await lastValueFrom(
      client.send('record', new GearmanRecordBuilder('bg').setBackground().setUnique('bg-1').build()).pipe(toArray()),
    );
    expect(handles).toHaveLength(1);
    expect(handles[0]).toMatch(/^H:/);
    expect(await functionStatus(res.admin(), 'record')).toEqual({ total: 1, running: 0, workers: 0 });

    await res.microservice({ controllers: [JobsController] });
    expect(await within(probe.ranOnce.promise, 5000, 'the background job')).toMatchObject({
      label: 'bg',
      unique: 'bg-1',
    });
  });

  it('epoch: the job waits in the queue and runs at the given time', async () => {
    // pollInterval: gearmand 1.1.20 wakes no worker when an epoch job falls due
    // (docs/gearmand-behaviour.md#waking-workers).
    await res.microservice({ controllers: [JobsController] }, { pollInterval: 200 });
    const admin = res.admin();
    const client = res.clientProxy();
    const submittedAt = Date.now();
    const epoch = Math.floor(submittedAt / 1000) + 2;
    const handle = await lastValueFrom(
      client.emit('record', new GearmanRecordBuilder('scheduled').setEpoch(epoch).build()),
    );
    expect(handle).toMatch(/^H:/);
    expect(await functionStatus(admin, 'record')).toEqual({ total: 1, running: 0, workers: 1 });
    expect(probe.ran).toEqual([]);

    const ran = await within(probe.ranOnce.promise, 5000, 'the scheduled job');
    expect(ran.label).toBe('scheduled');
    expect(ran.at).toBeGreaterThanOrEqual(epoch * 1000);
    expect(ran.at - submittedAt).toBeGreaterThanOrEqual(1000);
  });

  it('timeout: a job nobody takes fails with TIMEOUT and is taken off the queue', async () => {
    const client = res.clientProxy();
    const started = performance.now();
    const error = await lastValueFrom(
      client.send('nobody.serves', new GearmanRecordBuilder({}).setTimeout(300).build()),
    ).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', name: 'GearmanTimeoutError' });
    expect(performance.now() - started).toBeLessThan(2000);
    // gearmand 1.1.20's `cancel job` marks the queued job ignored; a worker's GRAB then drops it unrun.
    const admin = res.admin();
    await eventually(async () => (await admin.showJobs()).some((j) => j.ignoreJob), 3000, 'the job to be cancelled');
    await expectDroppedUnrun('nobody.serves');
  });
});

/** Starts a worker for `fn`: the cancelled job leaves the queue without its handler running. */
async function expectDroppedUnrun(fn: string): Promise<void> {
  const admin = res.admin();
  const runs: string[] = [];
  const worker = res.worker();
  worker.register(fn, (job) => {
    runs.push(job.handle);
    return '0';
  });
  await worker.start();
  await eventually(async () => (await functionStatus(admin, fn)).total === 0, 3000, `the ${fn} queue to empty`);
  expect(await admin.showJobs()).toEqual([]);
  expect(runs).toEqual([]);
  await worker.close(200);
}

describe('cancelling', () => {
  it('unsubscribing from send() before a worker takes the job cancels it on gearmand', async () => {
    const admin = res.admin();
    const client = res.clientProxy();
    const errors: unknown[] = [];
    const subscription = client.send('sum', [1, 2]).subscribe({ error: (e) => errors.push(e) });
    await eventually(async () => (await functionStatus(admin, 'sum')).total === 1, 3000, 'the job to be queued');

    const [queued] = await admin.showJobs();
    expect(queued).toMatchObject({ handle: expect.stringMatching(/^H:/), ignoreJob: false });

    subscription.unsubscribe();
    // gearmand 1.1.20's `cancel job` marks the queued job ignored (it stays counted in `status`
    // until a worker's GRAB drops it unrun).
    await eventually(
      async () => (await admin.showJobs()).find((j) => j.handle === queued.handle)?.ignoreJob,
      3000,
      'the job to be cancelled',
    );
    await expectDroppedUnrun('sum');
    expect(errors).toEqual([]);
    // New calls work.
    await res.microservice({ controllers: [JobsController] });
    expect(await lastValueFrom(client.send('sum', [3, 4]))).toBe(7);
  });

  it('unsubscribing while the job runs leaves it running (Gearman cannot stop it)', async () => {
    await res.microservice({ controllers: [JobsController] });
    const admin = res.admin();
    const client = res.clientProxy();
    const subscription = client.send('held', 'x').subscribe();
    await eventually(() => probe.calls === 1, 3000, 'the job to run');
    subscription.unsubscribe();
    expect(await functionStatus(admin, 'held')).toEqual({ total: 1, running: 1, workers: 1 });
    probe.release.resolve();
    await eventually(async () => (await functionStatus(admin, 'held')).total === 0, 3000, 'the job to finish');
  });
});

describe('connection', () => {
  it('close() with a call in flight fails that call with CLOSED instead of leaving it hanging', async () => {
    await res.microservice({ controllers: [JobsController] });
    // The call is held past close()'s drain (closeTimeout), then fails with CLOSED.
    const client = res.clientProxy({ closeTimeout: 200 });
    const pending = lastValueFrom(client.send('held', 'x')).catch((e: unknown) => e);
    await eventually(() => probe.calls === 1, 3000, 'the job to run');
    await client.close();
    expect(await within(pending, 3000, 'the in-flight call to settle')).toMatchObject({ code: 'CLOSED' });
  });

  it("status emits 'connected', then 'disconnected' after close()", async () => {
    const { server } = await res.microservice({ controllers: [JobsController] });
    expect(await within(firstValueFrom(server.status), 1000, 'server status')).toBe('connected');
    const client = res.clientProxy();
    const statuses: string[] = [];
    const subscription = client.status.subscribe((s) => statuses.push(s));
    res.defer(() => subscription.unsubscribe());
    await client.connect();
    expect(
      await within(firstValueFrom(client.status.pipe(filter((s) => s === 'connected'))), 1000, "'connected'"),
    ).toBe('connected');
    await client.close();
    expect(statuses).toEqual(['connected', 'disconnected']);
  });

  it('a closed client connects again on the next call, as Nest clients do (close() then connect())', async () => {
    await res.microservice({ controllers: [JobsController] });
    const client = res.clientProxy();
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    expect(await lastValueFrom(client.send('sum', [1, 1]))).toBe(2);
    await client.close();
    expect(await within(lastValueFrom(client.send('sum', [2, 2])), 5000, 'send() after close()')).toBe(4);
    expect(await within(firstValueFrom(client.status), 1000, 'status')).toBe('connected');
    expect(await lastValueFrom(client.emit('record', 'again'))).toMatch(/^H:/);
    expect(errors).toEqual([]);
  });

  it('send() is cold and lazy like ClientProxy.send: no job before subscribe, connects on subscribe, rejects nil input', async () => {
    await res.microservice({ controllers: [JobsController] });
    const client = res.clientProxy();
    const packets: unknown[] = [];
    client.setOnDispatchHook((packet) => packets.push(packet.pattern));
    const cold = client.send('sum', [2, 5]);
    expect(packets).toEqual([]);
    expect(await lastValueFrom(cold)).toBe(7);
    expect(await lastValueFrom(cold)).toBe(7); // each subscription is its own job
    expect(packets).toEqual(['sum', 'sum']);
    await expect(lastValueFrom(client.send(undefined, 1))).rejects.toThrow(/invalid data or message pattern/);
    await expect(lastValueFrom(client.send('sum', null))).rejects.toThrow(/invalid data or message pattern/);
  });

  it('emit() is hot like ClientProxy.emit: the job is submitted without a subscriber; a subscriber gets the handle', async () => {
    await res.microservice({ controllers: [JobsController] });
    const client = res.clientProxy();
    const handles: string[] = [];
    client.emit('record', 'unobserved'); // never subscribed: still submitted (connects first)
    expect((await within(probe.ranOnce.promise, 5000, 'the unobserved event')).label).toBe('unobserved');
    client.emit<string>('record', 'observed').subscribe((h) => handles.push(h));
    await eventually(() => handles.length === 1, 5000, 'the handle of the observed emit()');
    expect(handles[0]).toMatch(/^H:/);
    await expect(lastValueFrom(client.emit('record', undefined))).rejects.toThrow(/invalid data or message pattern/);
  });

  it('connect() that failed is retried by the next call, which succeeds once gearmand is up', async () => {
    const port = await freePort();
    const client = res.clientProxy({
      servers: [`127.0.0.1:${port}`],
      connectTimeout: 600,
      reconnect: { initialDelay: 50, maxDelay: 100 },
    });
    await expect(within(client.connect(), 3000, 'the first connect()')).rejects.toMatchObject({ code: 'NO_SERVER' });
    await expect(lastValueFrom(client.send('sum', [1]))).rejects.toMatchObject({ code: 'NO_SERVER' });

    const late = await res.gearmand({ port });
    await within(client.connect(), 3000, 'connect() once gearmand is up');
    const worker = res.worker({ servers: [late.address] });
    worker.register('sum', (job) =>
      String((JSON.parse(job.payload.toString()) as number[]).reduce((a, b) => a + b, 0)),
    );
    await worker.start();
    expect(await lastValueFrom(client.send('sum', [20, 22]))).toBe(42);
  });
});

describe('results and errors from foreign workers', () => {
  it('a plain-text result the JSON codec cannot read fails with a hint; the text codec reads it', async () => {
    const worker = res.worker();
    worker.register('greet', (job) => `hello ${job.payload.toString()}`);
    await worker.start();
    const client = res.clientProxy();
    const error = await lastValueFrom(client.send('greet', 'bob')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanCodecError);
    expect((error as Error).message).toContain(
      'The result of Gearman function "greet" could not be read by the json codec',
    );
    expect((error as Error).message).toContain("setCodec('text')");
    expect(await lastValueFrom(client.send('greet', new GearmanRecordBuilder('bob').setCodec('text').build()))).toBe(
      'hello bob',
    );
  });

  it("a foreign worker's text exception arrives as a GearmanJobError with that text", async () => {
    const worker = res.worker({ errorMode: 'exception' });
    worker.register('breaks', () => {
      throw new Error('kaput: disk on fire');
    });
    await worker.start();
    const client = res.clientProxy();
    const error = await lastValueFrom(client.send('breaks', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error).toMatchObject({ code: 'JOB_EXCEPTION', functionName: 'breaks' });
    expect((error as GearmanJobError).data?.toString()).toBe('kaput: disk on fire');
  });

  it('job() streams data from a foreign worker and ends with its result', async () => {
    const worker = res.worker();
    worker.register('count', (job) => {
      job.sendData('1');
      job.sendStatus(1, 2);
      job.sendData('2');
      return '3';
    });
    await worker.start();
    const client = res.clientProxy();
    const events = await lastValueFrom(client.job('count', {}).pipe(toArray()));
    expect(events.map((e) => (e.type === 'created' ? 'created' : JSON.stringify(e)))).toEqual([
      'created',
      '{"type":"data","data":1}',
      '{"type":"status","numerator":1,"denominator":2}',
      '{"type":"data","data":2}',
      '{"type":"complete","data":3}',
    ]);
    // take(2) unsubscribes after data 1: the job has already finished or runs on; nothing breaks.
    expect((await lastValueFrom(client.job('count', {}).pipe(take(2)))).type).toBe('data');
  });
});

const CONFIG = Symbol('CONFIG');

@Module({ providers: [{ provide: CONFIG, useFactory: () => ({ address: gearmand.address }) }], exports: [CONFIG] })
class ConfigModule {}

@Injectable()
class Caller {
  constructor(
    @InjectGearmanClient() readonly jobs: ClientGearman,
    @InjectGearmanClient('TEXT_JOBS') readonly text: ClientGearman,
  ) {}
}

@Injectable()
class ViaClientsModule {
  constructor(@Inject('G') readonly client: ClientGearman) {}
}

describe('dependency injection', () => {
  it('GearmanModule.register and registerAsync give injectable clients, closed with the module', async () => {
    await res.microservice({ controllers: [JobsController] });
    const worker = res.worker();
    worker.register('shout', (job) => job.payload.toString().toUpperCase());
    await worker.start();

    const moduleRef = await Test.createTestingModule({
      imports: [
        GearmanModule.register({ servers: [gearmand.address] }),
        GearmanModule.registerAsync({
          name: 'TEXT_JOBS',
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: async (config: { address: string }) => ({ servers: [config.address], codec: 'text' as const }),
        }),
      ],
      providers: [Caller],
    }).compile();
    res.defer(() => moduleRef.close());
    const caller = moduleRef.get(Caller);
    expect(caller.jobs).toBeInstanceOf(ClientGearman);
    expect(await lastValueFrom(caller.jobs.send('sum', [1, 2, 3]))).toBe(6);
    expect(await lastValueFrom(caller.text.send('shout', 'quiet'))).toBe('QUIET');

    await moduleRef.close();
    // The module closed its clients.
    expect(() => caller.jobs.unwrap().submit('sum', '[1]')).toThrow(/closed/);
    expect(() => caller.text.unwrap().submit('shout', 'x')).toThrow(/closed/);
  });

  it('ClientsModule.register with customClass: ClientGearman', async () => {
    await res.microservice({ controllers: [JobsController] });
    const moduleRef = await Test.createTestingModule({
      imports: [
        ClientsModule.register([{ name: 'G', customClass: ClientGearman, options: { servers: [gearmand.address] } }]),
      ],
      providers: [ViaClientsModule],
    }).compile();
    res.defer(() => moduleRef.close());
    expect(await lastValueFrom(moduleRef.get(ViaClientsModule).client.send('sum', [5, 5]))).toBe(10);
  });
});
