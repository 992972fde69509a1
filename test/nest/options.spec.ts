/**
 * The Nest transport's options against a real gearmand: Nest's serializer/deserializer rejected,
 * record options passed to the engine as they are (reducer, submitTimeout, signal), the protected
 * steps a subclass overrides, and send() errors that are always GearmanErrors.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { MessagePattern, RpcException } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  GearmanCancelledError,
  GearmanClient,
  type GearmanClientOptions,
  GearmanError,
  GearmanJobError,
  GearmanTimeoutError,
  GearmanWorker,
  type GearmanWorkerOptions,
  type SubmitOptions,
} from '../../lib/engine/index.js';
import {
  ClientGearman,
  type GearmanCodec,
  GearmanCodecError,
  GearmanRecordBuilder,
  GearmanRpcError,
  ServerGearman,
} from '../../lib/index.js';
import { functionStatus, useGearmand, useResources } from '../support/harness.js';
import { eventually } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/** What reached `GearmanClient.submit()`, recorded by RecordingClient (module level: see below). */
const submitted: { fn: string; options: SubmitOptions | undefined }[] = [];

/** Overrides the protected `createClient` step to record every submit's options. */
class RecordingClient extends ClientGearman {
  // Runs from ClientGearman's constructor, before this class's fields exist: it records into `submitted`.
  protected override createClient(options: GearmanClientOptions): GearmanClient {
    const client = super.createClient(options);
    const submit = client.submit.bind(client);
    client.submit = (fn, payload, submitOptions) => {
      submitted.push({ fn, options: submitOptions });
      return submit(fn, payload, submitOptions);
    };
    return client;
  }
}

function recordingClient(): RecordingClient {
  const client = new RecordingClient({ servers: [gearmand.address], connectTimeout: 3000 });
  res.defer(() => client.close());
  return client;
}

/** Rejection or throw of `run`, for assertions on the error itself. */
async function failure(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

describe("Nest's serializer and deserializer options", () => {
  const serializer = { serialize: (value: unknown) => value };
  const deserializer = { deserialize: (value: unknown) => value };

  it.each([
    ['ClientGearman', 'serializer', () => new ClientGearman({ serializer } as never)],
    ['ClientGearman', 'deserializer', () => new ClientGearman({ deserializer } as never)],
    ['ServerGearman', 'serializer', () => new ServerGearman({ serializer, logger: false } as never)],
    ['ServerGearman', 'deserializer', () => new ServerGearman({ deserializer, logger: false } as never)],
  ])('%s rejects %s with INVALID_ARGUMENT pointing at codec', async (transport, option, create) => {
    const error = await failure(create);
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((error as Error).message).toContain(`${transport} does not take Nest's ${option} option`);
    expect((error as Error).message).toContain('codec');
  });
});

describe('record options reach the engine', () => {
  it('every per-call option goes to submit() as given; a GRAB_JOB_ALL worker sees the reducer', async () => {
    const worker = res.worker({ grab: 'all' });
    worker.register('map', (job) => `${job.reducer}:${job.payload.toString()}`);
    await worker.start();
    const client = recordingClient();
    const controller = new AbortController();
    const record = new GearmanRecordBuilder('a b c')
      .setPriority('high')
      .setUnique('options-1')
      .setReducer('count', 'collect')
      .setTimeout(5000)
      .setSubmitTimeout(4000)
      .setSignal(controller.signal)
      .setRetry(2)
      .setCodec('text')
      .build();

    expect(await lastValueFrom(client.send('map', record))).toBe('count:a b c');
    expect(submitted.at(-1)).toEqual({
      fn: 'map',
      options: {
        priority: 'high',
        unique: 'options-1',
        reducer: 'count',
        aggregator: 'collect',
        timeout: 5000,
        submitTimeout: 4000,
        signal: controller.signal,
        retry: 2,
      },
    });
  });

  it('emit() adds background to the record options; plain payloads share frozen options', async () => {
    const client = recordingClient();
    const epoch = new Date(Date.now() + 3_600_000);
    expect(await lastValueFrom(client.emit('later', new GearmanRecordBuilder({}).setEpoch(epoch).build()))).toMatch(
      /^H:/,
    );
    expect(submitted.at(-1)).toEqual({ fn: 'later', options: { epoch, background: true } });

    await lastValueFrom(client.emit('plain', 1));
    await lastValueFrom(client.emit('plain', 2));
    const [first, second] = submitted.slice(-2).map((s) => s.options);
    expect(first).toEqual({ background: true });
    expect(first).toBe(second);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it("submitTimeout: the record's deadline for JOB_CREATED wins over the client's", async () => {
    const silent = await res.silentServer();
    const client = res.clientProxy({ servers: [silent.address], submitTimeout: 20_000 });
    const started = Date.now();
    const error = await lastValueFrom(
      client.send('anything', new GearmanRecordBuilder({}).setSubmitTimeout(200).build()),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanTimeoutError);
    expect(error).toMatchObject({ code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('an AbortSignal cancels a queued job: CANCELLED, and gearmand drops the job', async () => {
    const admin = res.admin();
    const client = res.clientProxy();
    const controller = new AbortController();
    const pending = lastValueFrom(
      client.send('nobody.serves', new GearmanRecordBuilder({}).setSignal(controller.signal).build()),
    ).catch((e: unknown) => e);
    await eventually(
      async () => (await functionStatus(admin, 'nobody.serves')).total === 1,
      3000,
      'the job to be queued',
    );

    controller.abort();
    const error = await pending;
    expect(error).toBeInstanceOf(GearmanCancelledError);
    expect(error).toMatchObject({ code: 'CANCELLED' });
    // gearmand 1.1.20 marks a cancelled queued job ignored; a worker's GRAB drops it unrun.
    await eventually(async () => (await admin.showJobs()).some((j) => j.ignoreJob), 3000, 'the job to be cancelled');
  });

  it('an already aborted signal fails the call with CANCELLED', async () => {
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder({}).setSignal(AbortSignal.abort()).build();
    const error = await lastValueFrom(client.send('nobody.serves', record)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ code: 'CANCELLED' });
  });
});

describe('the protected steps', () => {
  it('a ServerGearman subclass adjusts the engine worker through getWorkerOptions() and createWorker()', async () => {
    const made: GearmanWorker[] = [];
    class NamedServer extends ServerGearman {
      protected override getWorkerOptions(): GearmanWorkerOptions {
        return { ...super.getWorkerOptions(), clientId: 'named-worker' };
      }
      protected override createWorker(options: GearmanWorkerOptions): GearmanWorker {
        const worker = super.createWorker(options);
        made.push(worker);
        return worker;
      }
    }
    const server = new NamedServer({ servers: [gearmand.address], logger: false, maxJobs: 3 });
    expect(made).toEqual([server.unwrap()]);
    await new Promise<void>((resolve, reject) => void server.listen((err) => (err ? reject(err as Error) : resolve())));
    res.defer(() => server.close());
    const admin = res.admin();
    await eventually(
      async () => (await admin.workers()).some((w) => w.clientId === 'named-worker'),
      3000,
      'the named worker',
    );
  });

  it('a ClientGearman subclass adjusts the engine client through getClientOptions()', async () => {
    class NamedClient extends ClientGearman {
      protected override getClientOptions(): GearmanClientOptions {
        return { ...super.getClientOptions(), clientId: 'named-client' };
      }
    }
    const client = new NamedClient({ servers: [gearmand.address] });
    res.defer(() => client.close());
    await client.connect();
    const admin = res.admin();
    await eventually(
      async () => (await admin.workers()).some((w) => w.clientId === 'named-client'),
      3000,
      'the named client',
    );
  });
});

@Controller()
class FailingController {
  @MessagePattern('rpc.object')
  object(): never {
    throw new RpcException({ code: 'E_NOPE', message: 'nope', detail: { field: 'n' } });
  }

  @MessagePattern('rpc.string')
  text(): never {
    throw new RpcException('text');
  }

  @MessagePattern('rpc.nomessage')
  noMessage(): never {
    throw new RpcException({ reason: 42 });
  }
}

describe('send() errors are GearmanErrors', () => {
  it("a Nest handler's RpcException: a GearmanRpcError with the object, its fields readable on the error", async () => {
    await res.microservice({ controllers: [FailingController] });
    const client = res.clientProxy();

    const error = await lastValueFrom(client.send('rpc.object', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanRpcError);
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error).toBeInstanceOf(GearmanError);
    const rpc = error as GearmanRpcError;
    expect(rpc.error).toEqual({ code: 'E_NOPE', message: 'nope', detail: { field: 'n' } });
    expect(rpc).toMatchObject({
      code: 'JOB_EXCEPTION',
      name: 'GearmanRpcError',
      message: 'nope',
      functionName: 'rpc.object',
    });
    expect((rpc as unknown as { detail: unknown }).detail).toEqual({ field: 'n' });
    expect(rpc.handle).toMatch(/^H:/);

    // RpcException('text') is { status: 'error', message: 'text' }, read as before on the error.
    expect(await lastValueFrom(client.send('rpc.string', {})).catch((e: unknown) => e)).toMatchObject({
      status: 'error',
      message: 'text',
    });
    // job() reports the same error.
    expect(await lastValueFrom(client.job('rpc.string', {})).catch((e: unknown) => e)).toBeInstanceOf(GearmanRpcError);
  });

  it('an error object without a message keeps the engine message, which names the function', async () => {
    await res.microservice({ controllers: [FailingController] });
    const error = (await lastValueFrom(res.clientProxy().send('rpc.nomessage', {})).catch(
      (e: unknown) => e,
    )) as GearmanRpcError;
    expect(error).toBeInstanceOf(GearmanRpcError);
    expect(error.error).toEqual({ reason: 42 });
    expect(error.message).toContain('rpc.nomessage');
    expect((error as unknown as { reason: unknown }).reason).toBe(42);
  });

  it("a custom codec's own encode failure arrives as a GearmanCodecError with it as the cause", async () => {
    const broken = new TypeError('cannot write this');
    const codec: GearmanCodec = {
      name: 'strict',
      encode: () => {
        throw broken;
      },
      decode: (data) => data,
    };
    const error = await lastValueFrom(res.clientProxy({ codec }).send('anything', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GearmanCodecError);
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({
      code: 'CODEC_ERROR',
      message: expect.stringContaining('The strict codec could not write the payload: cannot write this'),
    });
    expect((error as Error).cause).toBe(broken);
  });
});
