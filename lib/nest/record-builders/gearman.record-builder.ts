import type { JobPriority, SubmitOptions } from '../../engine/index.js';
import { checkJobTimeouts } from '../../engine/client/submit-request.js';
import type { GearmanCodecOption } from '../codecs.js';

/**
 * Per-call job options for ClientGearman's `send()` and `emit()`: the engine's submit options,
 * passed to `GearmanClient.submit()` as they are, plus the codec of this call.
 * `background` on `send()` runs a background job: it emits the handle and completes at JOB_CREATED.
 */
export interface GearmanRecordOptions extends Pick<
  SubmitOptions,
  | 'priority'
  | 'unique'
  | 'background'
  | 'epoch'
  | 'reducer'
  | 'aggregator'
  | 'timeout'
  | 'submitTimeout'
  | 'signal'
  | 'retry'
> {
  /** Codec for this call's payload and result. */
  codec?: GearmanCodecOption;
}

/** A payload with Gearman job options, built by GearmanRecordBuilder. */
export class GearmanRecord<TData = unknown> {
  constructor(
    readonly data: TData,
    readonly options: GearmanRecordOptions = {},
  ) {}
}

/**
 * Builds a GearmanRecord, like Nest's RmqRecordBuilder:
 * `client.send('resize', new GearmanRecordBuilder(image).setPriority('high').setUnique(id).build())`.
 */
export class GearmanRecordBuilder<TData = unknown> {
  private options: GearmanRecordOptions = {};

  constructor(private data?: TData) {}

  setData(data: TData): this {
    this.data = data;
    return this;
  }

  /** Merges options; a timeout that is not whole milliseconds from 1 to 2^31 - 1 throws INVALID_ARGUMENT here. */
  setOptions(options: GearmanRecordOptions): this {
    checkJobTimeouts(options);
    this.options = { ...this.options, ...options };
    return this;
  }

  setPriority(priority: JobPriority): this {
    return this.setOptions({ priority });
  }

  setUnique(unique: string): this {
    return this.setOptions({ unique });
  }

  setBackground(background = true): this {
    return this.setOptions({ background });
  }

  setEpoch(epoch: Date | number): this {
    return this.setOptions({ epoch });
  }

  /**
   * Whole-job timeout in ms: the call fails with TIMEOUT; a job still queued is cancelled unless
   * another caller waits for it, a running one finishes on its worker and its result is dropped.
   */
  setTimeout(timeout: number): this {
    return this.setOptions({ timeout });
  }

  /** A reduce job (SUBMIT_REDUCE_JOB): a worker that grabs with GRAB_JOB_ALL sees the reducer's name. */
  setReducer(reducer: string, aggregator?: string): this {
    return this.setOptions({ reducer, aggregator });
  }

  /**
   * Milliseconds to wait for JOB_CREATED, instead of the client's `submitTimeout`; a job gearmand
   * creates after that is cancelled while still queued.
   */
  setSubmitTimeout(submitTimeout: number): this {
    return this.setOptions({ submitTimeout });
  }

  /** Aborting fails the call with CANCELLED and takes the job back from gearmand if it is still queued. */
  setSignal(signal: AbortSignal): this {
    return this.setOptions({ signal });
  }

  /**
   * Resubmit after a lost connection (jobs with a unique only): `true` for up to 3 times, or a
   * number. At-least-once, not exactly-once: a job that completed just before the loss runs again
   * (see SubmitOptions.retry); make the handler idempotent.
   */
  setRetry(retry: boolean | number = true): this {
    return this.setOptions({ retry });
  }

  setCodec(codec: GearmanCodecOption): this {
    return this.setOptions({ codec });
  }

  build(): GearmanRecord<TData> {
    return new GearmanRecord(this.data as TData, { ...this.options });
  }
}
