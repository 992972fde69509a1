import { EventEmitter } from 'node:events';
import type { GearmanConnection } from '../connection.js';
import { type GearmanError, GearmanTimeoutError } from '../errors.js';
import { optionalMs } from '../options.js';
import type { SubmitRequest } from './submit-request.js';

export type JobPriority = 'high' | 'normal' | 'low';

/** What gearmand reports for a job (GET_STATUS / GET_STATUS_UNIQUE). */
export interface JobStatus {
  /**
   * The server knows the job. A finished job is unknown too: "done" and "never existed" look alike
   * (docs/gearmand-behaviour.md#job-status).
   */
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
 * A submitted job, as users see it: what was asked, where it stands, its events. Every job ends
 * with exactly one `complete` or `fail` (background jobs end at `created`). `result()` and
 * `created()` give promises of the same. Its state is read-only here: only the client changes it,
 * through the job's {@link JobControl}.
 */
export class GearmanJob extends EventEmitter<GearmanJobEvents> {
  /** @internal */
  constructor(private readonly control: JobControl) {
    super();
  }

  get functionName(): string {
    return this.control.request.functionName;
  }

  get payload(): Buffer {
    return this.control.request.payload;
  }

  /** The unique key given ('' when none). */
  get unique(): string {
    return this.control.request.unique;
  }

  get background(): boolean {
    return this.control.request.background;
  }

  get priority(): JobPriority {
    return this.control.request.priority;
  }

  get state(): JobState {
    return this.control.state;
  }

  /** gearmand's handle once created (a retry on another server gets a new one). */
  get handle(): string | undefined {
    return this.control.handle;
  }

  /** `host:port` of the server holding the job. */
  get server(): string | undefined {
    return this.control.connection?.address;
  }

  get finished(): boolean {
    return this.control.finished;
  }

  /** The result of a foreground job (a background job resolves with an empty Buffer once created). */
  result(): Promise<Buffer> {
    return this.control.result();
  }

  /**
   * `result()` with a deadline on the waiting only: after `ms` without an outcome it rejects with
   * TIMEOUT (a GearmanTimeoutError; `finished` is still false) and the job goes on untouched, its
   * result kept for the next `wait()` or `result()`. To give up the job itself, submit with
   * `timeout` or call `cancel()`.
   */
  wait(ms: number): Promise<Buffer> {
    try {
      optionalMs('wait', ms, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.control.wait(ms);
  }

  /** The job's handle once gearmand created it. */
  created(): Promise<string> {
    return this.control.created();
  }

  /**
   * Cancels the job if gearmand still holds it queued (admin `cancel job`). A job already running
   * on a worker cannot be cancelled in Gearman: that rejects with NOT_CANCELLABLE.
   */
  cancel(): Promise<void> {
    return this.control.cancel();
  }
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * The client's side of a job: its mutable state and the plumbing the client's parts share (the
 * submit request kept for resubmits, the submit deadline, retries, what to release at the end).
 * Only the client holds these; users get the read-only {@link GearmanJob}.
 */
export class JobControl {
  readonly job: GearmanJob;
  state: JobState = 'submitting';
  handle: string | undefined;
  /** The connection the job was sent on (the server that holds it once created). */
  connection: GearmanConnection | undefined;
  /**
   * performance.now() by which JOB_CREATED must have come, checked by the per-connection submit
   * queue; -1 when the job has a timer of its own instead.
   */
  submitDeadline = -1;
  /** Resubmits left after a lost connection. */
  retriesLeft: number;
  /** Timers and listeners to release when the job ends. */
  cleanup: ((job: JobControl) => void) | undefined;
  /** Settled outcome, kept for promises asked for later. */
  private outcome: { data?: Buffer; error?: GearmanError } | undefined;
  private waiters: Waiter<Buffer>[] | undefined;
  private createdWaiters: Waiter<string>[] | undefined;

  constructor(
    readonly request: SubmitRequest,
    private readonly canceller: (job: JobControl) => Promise<void>,
  ) {
    this.retriesLeft = request.retries;
    this.job = new GearmanJob(this);
  }

  get finished(): boolean {
    return this.state === 'complete' || this.state === 'failed';
  }

  result(): Promise<Buffer> {
    if (this.outcome)
      return this.outcome.error ? Promise.reject(this.outcome.error) : Promise.resolve(this.outcome.data!);
    return new Promise((resolve, reject) => (this.waiters ??= []).push({ resolve, reject }));
  }

  wait(ms: number): Promise<Buffer> {
    if (this.outcome) return this.result();
    return new Promise((resolve, reject) => {
      const waiter: Waiter<Buffer> = {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        const at = this.waiters?.indexOf(waiter) ?? -1;
        if (at >= 0) this.waiters!.splice(at, 1);
        const handle = this.handle === undefined ? '' : ` (${this.handle})`;
        reject(
          new GearmanTimeoutError(
            `Stopped waiting for job ${this.request.functionName}${handle} after ${ms} ms; the job goes on ` +
              `(${this.state}): wait() again or await result() for its outcome`,
          ),
        );
      }, ms);
      (this.waiters ??= []).push(waiter);
    });
  }

  created(): Promise<string> {
    if (this.handle !== undefined) return Promise.resolve(this.handle);
    if (this.outcome?.error) return Promise.reject(this.outcome.error);
    return new Promise((resolve, reject) => (this.createdWaiters ??= []).push({ resolve, reject }));
  }

  cancel(): Promise<void> {
    if (this.finished && !(this.request.background && this.state === 'complete')) return Promise.resolve();
    return this.canceller(this);
  }

  /** Back to `submitting` for a resubmit after a lost connection. */
  resubmitting(): void {
    this.handle = undefined;
    this.state = 'submitting';
  }

  markCreated(handle: string): void {
    this.handle = handle;
    if (this.state === 'submitting') this.state = 'created';
    this.job.emit('created', handle);
    if (this.createdWaiters) {
      for (const w of this.createdWaiters) w.resolve(handle);
      this.createdWaiters = undefined;
    }
    if (this.request.background) this.settle(EMPTY);
  }

  settle(data: Buffer): void {
    if (this.finished) return;
    this.state = 'complete';
    this.outcome = { data };
    this.cleanup?.(this);
    if (!this.request.background) this.job.emit('complete', data);
    if (this.waiters) {
      for (const w of this.waiters) w.resolve(data);
      this.waiters = undefined;
    }
  }

  fail(error: GearmanError): void {
    if (this.finished) return;
    this.state = 'failed';
    this.outcome = { error };
    this.cleanup?.(this);
    this.job.emit('fail', error);
    for (const w of this.waiters ?? []) w.reject(error);
    for (const w of this.createdWaiters ?? []) w.reject(error);
    this.waiters = this.createdWaiters = undefined;
  }
}

const EMPTY = Buffer.alloc(0);
