import { EventEmitter } from 'node:events';
import type { GearmanConnection } from './connection.js';
import { GearmanError } from './errors.js';

export type JobPriority = 'high' | 'normal' | 'low';

/** What gearmand reports for a job (GET_STATUS / GET_STATUS_UNIQUE). */
export interface JobStatus {
  /** The server knows the job. A finished job is unknown too: "done" and "never existed" look alike (R10). */
  readonly known: boolean;
  readonly running: boolean;
  readonly numerator: number;
  readonly denominator: number;
  /** GET_STATUS_UNIQUE only: clients waiting on the job. */
  readonly waitingClients?: number;
  /** The server that answered. */
  readonly server: string;
}

export type JobState = 'submitting' | 'created' | 'complete' | 'failed';

export interface GearmanJobEvents {
  /** JOB_CREATED: the server's handle (again after a retry on another server). */
  created: [handle: string];
  data: [data: Buffer];
  warning: [data: Buffer];
  status: [numerator: number, denominator: number];
  /** Foreground jobs: WORK_COMPLETE with the result. */
  complete: [data: Buffer];
  /** WORK_EXCEPTION's payload, just before `fail`. */
  exception: [data: Buffer];
  /** The job ended without a result: WORK_FAIL, exception, timeout, cancel, lost connection. */
  fail: [error: GearmanError];
}

/**
 * A submitted job, as the client sees it. Every job ends with exactly one `complete` or `fail`
 * (background jobs end at `created`). `result()` and `created()` give promises of the same.
 */
export class GearmanJob extends EventEmitter<GearmanJobEvents> {
  state: JobState = 'submitting';
  handle: string | undefined;
  /** The connection the job was created on (the server that holds it). */
  connection: GearmanConnection | undefined;
  /** Settled outcome, kept for promises asked for later. */
  private outcome: { data?: Buffer; error?: GearmanError } | undefined;
  private waiters: { resolve(v: Buffer): void; reject(e: Error): void }[] | undefined;
  private createdWaiters: { resolve(v: string): void; reject(e: Error): void }[] | undefined;

  /** @internal set by the client: how it cancels and when it stops tracking the job. */
  cancelHook: ((job: GearmanJob) => Promise<void>) | undefined;
  /** @internal timers and listeners to release when the job ends. */
  cleanup: ((job: GearmanJob) => void) | undefined;
  /**
   * @internal performance.now() by which JOB_CREATED must have come, checked by the client's
   * per-connection submit queue; -1 when the job has a timer of its own instead.
   */
  submitDeadline = -1;
  /** @internal resubmits left after a lost connection. */
  retriesLeft = 0;
  /** @internal the SUBMIT_* packet, kept for resubmits. */
  submitPacket: { type: number; args: (string | Buffer)[] } = { type: 0, args: [] };

  constructor(
    readonly functionName: string,
    readonly payload: Buffer,
    readonly unique: string,
    readonly background: boolean,
    readonly priority: JobPriority,
  ) {
    super();
  }

  /** `host:port` of the server holding the job. */
  get server(): string | undefined {
    return this.connection?.address;
  }

  get finished(): boolean {
    return this.state === 'complete' || this.state === 'failed';
  }

  /** The result of a foreground job (a background job resolves with an empty Buffer once created). */
  result(): Promise<Buffer> {
    if (this.outcome) return this.outcome.error ? Promise.reject(this.outcome.error) : Promise.resolve(this.outcome.data!);
    return new Promise((resolve, reject) => (this.waiters ??= []).push({ resolve, reject }));
  }

  /** The job's handle once gearmand created it. */
  created(): Promise<string> {
    if (this.handle !== undefined) return Promise.resolve(this.handle);
    if (this.outcome?.error) return Promise.reject(this.outcome.error);
    return new Promise((resolve, reject) => (this.createdWaiters ??= []).push({ resolve, reject }));
  }

  /**
   * Cancels the job if gearmand still holds it queued (admin `cancel job`). A job already running
   * on a worker cannot be cancelled in Gearman: that rejects with NOT_CANCELLABLE.
   */
  cancel(): Promise<void> {
    if (this.finished && !(this.background && this.state === 'complete')) return Promise.resolve();
    return this.cancelHook ? this.cancelHook(this) : Promise.resolve();
  }

  /** @internal */
  markCreated(handle: string): void {
    this.handle = handle;
    if (this.state === 'submitting') this.state = 'created';
    this.emit('created', handle);
    if (this.createdWaiters) {
      for (const w of this.createdWaiters) w.resolve(handle);
      this.createdWaiters = undefined;
    }
    if (this.background) this.settle(EMPTY);
  }

  /** @internal */
  settle(data: Buffer): void {
    if (this.finished) return;
    this.state = 'complete';
    this.outcome = { data };
    this.cleanup?.(this);
    if (!this.background) this.emit('complete', data);
    if (this.waiters) {
      for (const w of this.waiters) w.resolve(data);
      this.waiters = undefined;
    }
  }

  /** @internal */
  fail(error: GearmanError): void {
    if (this.finished) return;
    this.state = 'failed';
    this.outcome = { error };
    this.cleanup?.(this);
    this.emit('fail', error);
    for (const w of this.waiters ?? []) w.reject(error);
    for (const w of this.createdWaiters ?? []) w.reject(error);
    this.waiters = this.createdWaiters = undefined;
  }
}

const EMPTY = Buffer.alloc(0);
