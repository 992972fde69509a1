import { randomUUID } from 'node:crypto';
import {
  GearmanProtocolError,
  MAX_FUNCTION_NAME_LENGTH,
  MAX_UNIQUE_LENGTH,
  type PacketArg,
  PacketType,
} from '../../protocol/index.js';
import { invalidArgument } from '../errors.js';
import { checkFunctionName, checkReducerName } from '../function-name.js';
import { ENGINE_DEFAULTS, positiveInt } from '../options.js';
import type { JobPriority } from './job.js';

/** Options of one submit (`client.submit(fn, payload, options)`). */
export interface SubmitOptions {
  /** Background job: the client only waits for JOB_CREATED (default false). */
  background?: boolean;
  priority?: JobPriority;
  /**
   * Unique key (at most 63 bytes): jobs with the same function and unique coalesce into one
   * (docs/gearmand-behaviour.md#coalescing). A background job without one is sent with a random
   * UUID, so persistent queues keep every job.
   */
  unique?: string;
  /** Run at this time (seconds since the epoch, or a Date): always a background job. */
  epoch?: number | Date;
  /** Reduce job: the reducer function (and optional aggregator). */
  reducer?: string;
  aggregator?: string;
  /**
   * Whole-job timeout in ms (foreground; whole milliseconds from 1 to 2^31 - 1). On expiry the
   * caller gets TIMEOUT; a job still queued is cancelled unless another caller waits for it, a
   * running one finishes on its worker and its result is dropped.
   */
  timeout?: number;
  /**
   * Milliseconds to wait for JOB_CREATED (1 to 2^31 - 1). On expiry the caller gets TIMEOUT; if
   * gearmand creates the job later, it is cancelled while still queued.
   */
  submitTimeout?: number;
  /** Aborting fails the job with CANCELLED and cancels it on the server if still queued and nobody else waits for it. */
  signal?: AbortSignal;
  /**
   * Resubmit after a lost connection: `true` for up to 3 times, or a number. Only for jobs with a
   * unique. **At-least-once:** Gearman cannot tell a job that completed just before the loss (its
   * result lost with the connection) from one still queued or running, so the handler may run
   * again. The resubmit goes to the job's own server once it is back, where it merges by unique
   * with the original if that is still queued or running (no second run); it moves to another
   * server only when that server is gone (declared dead, or its reconnect failed), and there the
   * job runs again. Make handlers of retried jobs idempotent.
   */
  retry?: boolean | number;
}

/** A checked submit: what the job is, and the SUBMIT_* packet that creates it (kept for resubmits). */
export interface SubmitRequest {
  readonly functionName: string;
  readonly payload: Buffer;
  /** The caller's unique ('' when none): routing, coalescing and retry go by it. */
  readonly unique: string;
  readonly background: boolean;
  readonly priority: JobPriority;
  /** Resubmits allowed after a lost connection. */
  readonly retries: number;
  readonly type: number;
  readonly args: readonly PacketArg[];
}

const SUBMIT_TYPES: Record<JobPriority, [foreground: number, background: number]> = {
  high: [PacketType.SUBMIT_JOB_HIGH, PacketType.SUBMIT_JOB_HIGH_BG],
  normal: [PacketType.SUBMIT_JOB, PacketType.SUBMIT_JOB_BG],
  low: [PacketType.SUBMIT_JOB_LOW, PacketType.SUBMIT_JOB_LOW_BG],
};

const EMPTY = Buffer.alloc(0);

/**
 * Checks a submit and builds its packet; throws INVALID_ARGUMENT before anything is sent.
 * `newUnique` gives background jobs without a unique their wire unique (a UUID by default).
 */
export function buildSubmitRequest(
  functionName: string,
  payload: Buffer | string = EMPTY,
  options: SubmitOptions = {},
  newUnique: () => string = randomUUID,
): SubmitRequest {
  checkFunctionName(functionName);
  const unique = options.unique ?? '';
  if (typeof unique !== 'string' || Buffer.byteLength(unique) > MAX_UNIQUE_LENGTH || unique.includes('\0')) {
    throw invalidArgument(
      `Unique key ${JSON.stringify(String(unique).slice(0, 80))} is invalid: gearmand keeps at most ${MAX_UNIQUE_LENGTH} bytes ` +
        '(a longer one is refused or truncated and never coalesces) and no NUL bytes; hash long keys first',
    );
  }
  const priority = options.priority ?? 'normal';
  if (!(priority in SUBMIT_TYPES))
    throw invalidArgument(`Invalid priority ${JSON.stringify(priority)}: use high, normal or low`);
  const epoch = options.epoch instanceof Date ? Math.floor(options.epoch.getTime() / 1000) : options.epoch;
  if (epoch !== undefined && (!Number.isInteger(epoch) || epoch < 0)) {
    throw invalidArgument(`Invalid epoch ${String(options.epoch)}: use whole seconds since 1970 or a Date`);
  }
  if (epoch !== undefined && options.reducer)
    throw invalidArgument('A job cannot be both scheduled (epoch) and a reduce job');
  if (options.reducer !== undefined) checkReducerName(options.reducer);
  checkJobTimeouts(options);
  const background = options.background === true || epoch !== undefined;
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const retries =
    unique && options.retry ? (options.retry === true ? ENGINE_DEFAULTS.retries : Math.max(0, options.retry)) : 0;
  // A background job without a unique gets a random one on the wire, as libgearman does:
  // gearmand's persistent queues key jobs by unique, so jobs with an empty one overwrite each
  // other and all but one are lost on a restart (docs/gearmand-behaviour.md#persistent-queues).
  // Like an empty unique it never coalesces; the request's `unique` stays empty, so routing and
  // retry treat the job as one without a unique.
  const wireUnique = background && unique === '' ? newUnique() : unique;
  let type: number;
  let args: PacketArg[];
  if (options.reducer !== undefined && epoch === undefined) {
    type = background ? PacketType.SUBMIT_REDUCE_JOB_BACKGROUND : PacketType.SUBMIT_REDUCE_JOB;
    args = [functionName, wireUnique, options.reducer, options.aggregator ?? '', data];
  } else if (epoch !== undefined) {
    type = PacketType.SUBMIT_JOB_EPOCH;
    args = [functionName, wireUnique, String(epoch), data];
  } else {
    type = SUBMIT_TYPES[priority][background ? 1 : 0];
    args = [functionName, wireUnique, data];
  }
  return { functionName, payload: data, unique, background, priority, retries, type, args };
}

/**
 * The most bytes a SUBMIT's arguments other than the payload take: the function name, a unique
 * (63 bytes, or a 36-byte UUID), an epoch in decimal, and their NULs. Reduce jobs (a reducer and an
 * aggregator more) are counted exactly.
 */
const SUBMIT_ARGS_MAX = MAX_FUNCTION_NAME_LENGTH + MAX_UNIQUE_LENGTH + 20 + 3;

/**
 * Throws PACKET_TOO_LARGE when the SUBMIT packet would be above `maxPacketSize`, before anything
 * is sent: the workers of the function, whose limit is likely the same, could not take it. Most
 * payloads are far below: the exact size is counted only near the limit.
 */
export function checkSubmitSize(request: SubmitRequest, maxPacketSize: number): void {
  const args = request.args;
  if (args.length < 5 && request.payload.length + SUBMIT_ARGS_MAX <= maxPacketSize) return;
  let size = args.length - 1;
  for (const arg of args) size += typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length;
  if (size <= maxPacketSize) return;
  throw new GearmanProtocolError(
    'PACKET_TOO_LARGE',
    `Cannot submit ${request.functionName}: its packet would be ${size} bytes (payload ${request.payload.length}), above this ` +
      `client's maxPacketSize of ${maxPacketSize}, so nothing was sent. The workers of ${request.functionName} could not take ` +
      'it either unless their limit is raised too: raise maxPacketSize on the client and on the workers, or send a ' +
      'smaller payload (e.g. a reference to where the data is).',
  );
}

/**
 * Checks a submit's own timeouts. Timers take whole milliseconds up to 2^31 - 1: Infinity, NaN,
 * negatives and larger values would fire at once.
 */
export function checkJobTimeouts(options: Pick<SubmitOptions, 'timeout' | 'submitTimeout'>): void {
  if (options.timeout !== undefined) positiveInt('timeout', options.timeout, 0);
  if (options.submitTimeout !== undefined) positiveInt('submitTimeout', options.submitTimeout, 0);
}
