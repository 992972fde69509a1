import type { JobPriority } from '../engine/index.js';
import type { GearmanCodecOption } from './codecs.js';

/** Per-call job options for ClientGearman's `send()` and `emit()`. */
export interface GearmanRecordOptions {
  priority?: JobPriority;
  /** Unique key (≤ 63 bytes): jobs with the same function and unique coalesce. */
  unique?: string;
  /** `send()` as a background job: emits the handle and completes at JOB_CREATED. */
  background?: boolean;
  /** Run at this time (a Date, or seconds since the epoch): a background job. */
  epoch?: Date | number;
  /** Whole-job timeout in ms (foreground). */
  timeout?: number;
  /** Resubmit on another server after a lost connection (jobs with a unique only). */
  retry?: boolean | number;
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

  setOptions(options: GearmanRecordOptions): this {
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

  setTimeout(timeout: number): this {
    return this.setOptions({ timeout });
  }

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
