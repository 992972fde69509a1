import type { PacketMetadata } from '@nestjs/microservices';
import type { GearmanConnection } from '../engine/connection.js';
import { WorkerJob, type WorkerJobControl } from '../engine/worker/worker-job.js';
import { type GearmanCodecOption, resolveCodec } from '../nest/codecs.js';
import { GearmanContext } from '../nest/ctx-host/gearman.context.js';
import type { PacketArg } from '../protocol/encoder.js';
import { DEFAULT_MAX_PACKET_SIZE, PacketType } from '../protocol/packet-types.js';

/** The job a handler is tested with; every field has a default. */
export interface TestContextOptions {
  /** What the caller sent, encoded with `codec` (a Buffer is taken as the raw payload). Default: none. */
  payload?: unknown;
  /** The codec of the pattern under test (default `json`). */
  codec?: GearmanCodecOption;
  /** Default `test.function`. */
  functionName?: string;
  /** Default `''` (no unique). */
  unique?: string;
  /** Default `H:test:1`. */
  handle?: string;
  /** What `ctx.getMetadata()` returns. */
  metadata?: PacketMetadata;
}

/** What a handler sent through the context or its job, decoded with the pattern's codec. */
export interface TestReports {
  /** Every report in the order sent. */
  readonly all: ReadonlyArray<
    | { readonly type: 'status'; readonly numerator: number; readonly denominator: number }
    | { readonly type: 'data' | 'warning' | 'complete' | 'exception'; readonly value: unknown }
    | { readonly type: 'fail' }
  >;
  readonly statuses: ReadonlyArray<readonly [numerator: number, denominator: number]>;
  readonly data: readonly unknown[];
  readonly warnings: readonly unknown[];
}

export interface TestContext {
  /** Pass this as the handler's `@Ctx()` argument. */
  readonly context: GearmanContext;
  /** The payload decoded as the transport would: pass it as the handler's `@Payload()` argument. */
  readonly data: unknown;
  /** What the handler sent so far. */
  readonly sent: TestReports;
}

/**
 * A GearmanContext for a handler under test, with no server: call the handler with `data` and
 * `context`, then read what it sent (`sent.statuses`, `sent.data`, `sent.warnings`; `complete`,
 * `exception` and `fail` too when the handler used the engine job directly). The handler's result
 * and error are what the call returns or throws, as Nest would turn them into WORK_COMPLETE or
 * WORK_EXCEPTION.
 */
export function createTestContext(options: TestContextOptions = {}): TestContext {
  const codec = resolveCodec(options.codec);
  const payload = Buffer.isBuffer(options.payload) ? options.payload : codec.encode(options.payload);
  const all: Array<TestReports['all'][number]> = [];
  const statuses: Array<[number, number]> = [];
  const data: unknown[] = [];
  const warnings: unknown[] = [];
  const decode = (arg: PacketArg): unknown => codec.decode(Buffer.from(arg as Uint8Array | string));
  // The job reports through this stand-in for a connection: always connected, never congested.
  const conn = {
    address: 'test:0',
    connected: true,
    congested: false,
    bufferedBytes: 0,
    send(type: number, args: readonly PacketArg[]): void {
      switch (type) {
        case PacketType.WORK_STATUS: {
          const [numerator, denominator] = [Number(args[1]), Number(args[2])];
          statuses.push([numerator, denominator]);
          all.push({ type: 'status', numerator, denominator });
          return;
        }
        case PacketType.WORK_DATA:
          data.push(decode(args[1]));
          all.push({ type: 'data', value: data[data.length - 1] });
          return;
        case PacketType.WORK_WARNING:
          warnings.push(decode(args[1]));
          all.push({ type: 'warning', value: warnings[warnings.length - 1] });
          return;
        case PacketType.WORK_COMPLETE:
          all.push({ type: 'complete', value: decode(args[1]) });
          return;
        case PacketType.WORK_EXCEPTION:
          all.push({ type: 'exception', value: Buffer.from(args[1] as Uint8Array | string).toString('utf8') });
          return;
        case PacketType.WORK_FAIL:
          all.push({ type: 'fail' });
          return;
      }
    },
  } as unknown as GearmanConnection;
  const control = {
    conn,
    lost: false,
    host: {
      finished: () => undefined,
      failed: () => undefined,
      exceptionSent: () => undefined,
      maxOutgoing: Number.MAX_SAFE_INTEGER,
      maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
    },
    drainWaiters: [],
    refused: new Set(),
    deadline: -1,
    prev: undefined,
    next: undefined,
    list: undefined,
  } as unknown as WorkerJobControl;
  const job = new WorkerJob(
    {
      handle: options.handle ?? 'H:test:1',
      functionName: options.functionName ?? 'test.function',
      unique: options.unique ?? '',
      reducer: undefined,
      payload,
    },
    control,
  );
  control.job = job;
  return {
    context: new GearmanContext([job, codec, options.metadata]),
    data: codec.decode(payload),
    sent: { all, statuses, data, warnings },
  };
}
