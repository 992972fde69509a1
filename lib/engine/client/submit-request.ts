import { randomUUID } from 'node:crypto';
import { MAX_UNIQUE_LENGTH, type PacketArg, PacketType } from '../../protocol/index.js';
import { invalidArgument } from '../errors.js';
import { ENGINE_DEFAULTS } from '../options.js';
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
  /** Whole-job timeout in ms (foreground); on expiry a still-queued job is cancelled. */
  timeout?: number;
  /** Milliseconds to wait for JOB_CREATED. */
  submitTimeout?: number;
  /** Aborting fails the job with CANCELLED and cancels it on the server if still queued. */
  signal?: AbortSignal;
  /**
   * Resubmit after a lost connection, on the next live server: `true` for up to 3 times, or a
   * number. Only for jobs with a unique (coalescing makes the resubmit idempotent while the first
   * copy is alive).
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
  if (typeof functionName !== 'string' || functionName === '' || functionName.includes('\0')) {
    throw invalidArgument(
      `Invalid function name ${JSON.stringify(functionName)}: use a non-empty string without NUL bytes`,
    );
  }
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
