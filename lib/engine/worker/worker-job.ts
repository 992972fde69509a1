import type { JobAssignment } from '../../protocol/messages.js';
import { GearmanProtocolError, type PacketArg, PacketType, packetName } from '../../protocol/index.js';
import type { GearmanConnection } from '../connection.js';
import { GearmanError, invalidArgument } from '../errors.js';
import type { DeadlineEntry, DeadlineList } from './deadlines.js';

/**
 * @internal What every job of one worker shares: where a job says it ended, how a job that must
 * fail (a stream past its cap) is answered, and the stream cap.
 */
export interface WorkerJobHost {
  finished(control: WorkerJobControl): void;
  /** Answers the job with a failure, as for a throwing handler (errorMode decides how). */
  failed(job: WorkerJob, error: Error): void;
  /** A WORK_EXCEPTION went out: the worker makes sure the server ends the job (see GearmanWorker). */
  exceptionSent(control: WorkerJobControl): void;
  /** Bytes a connection may hold queued before a job that streams more fails with BACKPRESSURE (`maxOutgoing`). */
  readonly maxOutgoing: number;
  /**
   * The worker's `maxPacketSize`, which also bounds what a job sends: a WORK_COMPLETE/DATA/WARNING/
   * EXCEPTION above it is refused with PACKET_TOO_LARGE (gearmand forwards it to clients whose limit
   * is likely the same, and a client would drop the connection, or now the job, on it).
   */
  readonly maxPacketSize: number;
}

/**
 * @internal The worker's hold on a job it runs: the connection the job came on, the flag it raises
 * when that connection drops, and the links of its deadline (see DeadlineList). Handlers never see it.
 */
export interface WorkerJobControl extends DeadlineEntry {
  readonly conn: GearmanConnection;
  /** The connection dropped: gearmand requeued the job, reports would go nowhere. */
  lost: boolean;
  readonly host: WorkerJobHost;
  /** Wake-ups of jobs waiting for this connection to drain (one array per connection). */
  readonly drainWaiters: (() => void)[];
  /** Streamed report types the connection's server refused (one set per connection): not sent. */
  readonly refused: ReadonlySet<number>;
  job: WorkerJob;
  /** The read whose write waits for this job's report (GearmanConnection.holdRead); 0 for none. */
  readHold: number;
  deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  list: DeadlineList | undefined;
}

/** A job assigned to this worker. */
export class WorkerJob {
  readonly handle: string;
  readonly functionName: string;
  /**
   * The caller's unique key: '' when it gave none, and always '' on a server without GRAB_JOB_UNIQ
   * (Perl's Gearman::Server), whose plain JOB_ASSIGN does not carry it.
   */
  readonly unique: string;
  readonly payload: Buffer;
  /** GRAB_JOB_ALL only: the reducer function of a reduce job. */
  readonly reducer: string | undefined;
  private done = false;
  /** Made on first use of `signal`: most handlers never look at it. */
  private controller: AbortController | undefined;
  private abortReason: Error | undefined;
  /** A report waiting for the connection to drain, and its wake-up. */
  private waiting: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  /** @internal Jobs are made by the worker from JOB_ASSIGN*. */
  constructor(
    assignment: JobAssignment,
    private readonly control: WorkerJobControl,
  ) {
    this.handle = assignment.handle;
    this.functionName = assignment.functionName;
    this.unique = assignment.unique;
    this.payload = assignment.payload;
    this.reducer = assignment.reducer;
  }

  /** `host:port` of the server that assigned the job. */
  get server(): string {
    return this.control.conn.address;
  }

  /** True once complete, fail or exception was sent (by the handler, or by the worker at a deadline). */
  get finished(): boolean {
    return this.done;
  }

  /**
   * Aborted when the handler should stop: at its deadline (`handlerTimeout`, reason TIMEOUT: the
   * job has been answered with a failure), when its stream went past the worker's cap (reason
   * BACKPRESSURE: likewise), when the connection the job came on dropped (CONNECTION_LOST:
   * gearmand requeues the job) and when the worker closes with the handler still running
   * (`close()` timeout, CLOSED: gearmand requeues it). Pass it on to fetch(), streams, timers.
   */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /**
   * WORK_DATA: a partial result streamed to the client. The promise resolves at once while the
   * connection has room, or once it has drained below `highWaterMark` (await it to pace a stream).
   * Throws BACKPRESSURE (the job has then been failed) when the connection already holds more than
   * the connection's `maxOutgoing`, and the abort reason once `signal` is aborted. It never rejects.
   * Throws PACKET_TOO_LARGE (nothing sent, the job goes on) for data above the worker's `maxPacketSize`.
   * A server without WORK_DATA (Perl's Gearman::Server) refuses it: the worker's `error` event
   * says so once per connection, and later data is not sent there (callers get only the result).
   */
  sendData(data: PacketArg): Promise<void> {
    return this.stream(PacketType.WORK_DATA, [this.handle, data]);
  }

  /** WORK_WARNING; paced and bounded as `sendData`, and like it not sent where the server refused it. */
  sendWarning(data: PacketArg): Promise<void> {
    return this.stream(PacketType.WORK_WARNING, [this.handle, data]);
  }

  /** WORK_STATUS: progress as numerator/denominator (e.g. 3 of 10); paced and bounded as `sendData`. */
  sendStatus(numerator: number, denominator: number): Promise<void> {
    if (!Number.isFinite(numerator) || !Number.isFinite(denominator)) {
      throw invalidArgument(`sendStatus needs finite numbers, got ${numerator}/${denominator}`);
    }
    return this.stream(PacketType.WORK_STATUS, [
      this.handle,
      String(Math.trunc(numerator)),
      String(Math.trunc(denominator)),
    ]);
  }

  /** WORK_COMPLETE with the result. Throws PACKET_TOO_LARGE, sending nothing, above the worker's `maxPacketSize`. */
  complete(data: PacketArg = EMPTY): void {
    this.checkSize(PacketType.WORK_COMPLETE, data);
    this.end(PacketType.WORK_COMPLETE, [this.handle, data]);
  }

  /** WORK_FAIL: the job failed, no detail (every Gearman client understands it). */
  fail(): void {
    this.end(PacketType.WORK_FAIL, [this.handle]);
  }

  /**
   * WORK_EXCEPTION: ends the job in gearmand, so no WORK_FAIL follows
   * (docs/gearmand-behaviour.md#work_exception); where the server keeps the job running after it
   * (Perl's Gearman::Server), the worker follows it with WORK_FAIL. Throws PACKET_TOO_LARGE, as `complete`.
   */
  exception(data: PacketArg): void {
    this.checkSize(PacketType.WORK_EXCEPTION, data);
    if (this.end(PacketType.WORK_EXCEPTION, [this.handle, data])) this.control.host.exceptionSent(this.control);
  }

  /** @internal Why the worker aborted this job, if it did. */
  get abortedWith(): Error | undefined {
    return this.abortReason;
  }

  /**
   * @internal The worker stops the handler: `signal` fires with `reason`, a report waiting for the
   * connection to drain returns, and further streamed reports throw `reason`.
   */
  abort(reason: Error): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.wake?.();
    this.controller?.abort(reason);
  }

  /** A streamed report (data, warning, status): bounded by the connection's buffer, paced by its drain. */
  private stream(type: number, args: PacketArg[]): Promise<void> {
    if (this.abortReason !== undefined) throw this.abortReason;
    if (args.length === 2) this.checkSize(type, args[1]);
    const conn = this.control.conn;
    if (!this.done && !this.control.lost && conn.bufferedBytes > this.control.host.maxOutgoing) {
      throw this.overflow(conn);
    }
    if (!this.control.refused.has(type)) this.report(type, args);
    if (this.control.lost || !conn.congested) return RESOLVED;
    return (this.waiting ??= new Promise<void>((resolve) => {
      const wake = (): void => {
        this.waiting = this.wake = undefined;
        resolve();
      };
      this.wake = wake;
      this.control.drainWaiters.push(wake);
    }));
  }

  /** The stream went past the cap: the worker fails the job (and aborts it); the error is thrown to the handler. */
  private overflow(conn: GearmanConnection): GearmanError {
    const cap = this.control.host.maxOutgoing;
    const error = new GearmanError(
      'BACKPRESSURE',
      `Job ${this.handle} (${this.functionName}) streamed faster than gearmand at ${conn.address} reads: ` +
        `${conn.bufferedBytes} bytes were queued on the connection, over maxOutgoing (${cap}), so the job was failed. ` +
        'Await sendData() (it resolves once the connection has drained), or raise maxOutgoing.',
    );
    this.control.host.failed(this, error);
    return error;
  }

  /**
   * Throws PACKET_TOO_LARGE when `type` with `data` would be above the worker's `maxPacketSize`:
   * gearmand would forward it to clients that likely refuse it (README, "Oversized jobs and packets").
   */
  private checkSize(type: number, data: PacketArg): void {
    const limit = this.control.host.maxPacketSize;
    // Handles are ASCII. A string takes at most 3 UTF-8 bytes per UTF-16 unit: most need no byte count.
    const overhead = this.handle.length + 1;
    if ((typeof data === 'string' ? 3 * data.length : data.length) + overhead <= limit) return;
    const size = (typeof data === 'string' ? Buffer.byteLength(data) : data.length) + overhead;
    if (size <= limit) return;
    throw new GearmanProtocolError(
      'PACKET_TOO_LARGE',
      `Job ${this.handle} (${this.functionName}): ${packetName(type)} of ${size} bytes is above this worker's maxPacketSize ` +
        `of ${limit}, so it was not sent (gearmand would forward it to clients whose limit is likely the same). ` +
        'Raise maxPacketSize on the worker and on its clients, or send the result in smaller parts (sendData).',
    );
  }

  /** Sends `type` for this job; false when there is nowhere to send it (the connection is gone). */
  private report(type: number, args: PacketArg[]): boolean {
    if (this.done)
      throw new GearmanError(
        'JOB_FINISHED',
        `Job ${this.handle} (${this.functionName}) already ended: nothing more can be sent for it`,
      );
    if (this.control.lost || !this.control.conn.connected) return false;
    this.control.conn.send(type, args);
    return true;
  }

  /** The last report of the job; false when it could not be sent (see `report`). */
  private end(type: number, args: PacketArg[]): boolean {
    const sent = this.report(type, args);
    this.done = true;
    this.control.host.finished(this.control);
    return sent;
  }
}

const EMPTY = Buffer.alloc(0);
const RESOLVED = Promise.resolve();
