import type { JobAssignment } from '../../protocol/messages.js';
import { type PacketArg, PacketType } from '../../protocol/index.js';
import type { GearmanConnection } from '../connection.js';
import { GearmanError, invalidArgument } from '../errors.js';

/**
 * @internal The worker's hold on a job it runs: the connection the job came on, the flag it raises
 * when that connection drops, and where the job says it ended. Handlers never see it.
 */
export interface WorkerJobControl {
  readonly conn: GearmanConnection;
  /** The connection dropped: gearmand requeued the job, reports would go nowhere. */
  lost: boolean;
  finished(job: WorkerJob): void;
}

/** A job assigned to this worker. */
export class WorkerJob {
  readonly handle: string;
  readonly functionName: string;
  readonly unique: string;
  readonly payload: Buffer;
  /** GRAB_JOB_ALL only: the reducer function of a reduce job. */
  readonly reducer: string | undefined;
  private done = false;

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

  /** True once complete, fail or exception was sent. */
  get finished(): boolean {
    return this.done;
  }

  /** WORK_DATA: a partial result streamed to the client. */
  sendData(data: PacketArg): void {
    this.report(PacketType.WORK_DATA, [this.handle, data]);
  }

  /** WORK_WARNING. */
  sendWarning(data: PacketArg): void {
    this.report(PacketType.WORK_WARNING, [this.handle, data]);
  }

  /** WORK_STATUS: progress as numerator/denominator (e.g. 3 of 10). */
  sendStatus(numerator: number, denominator: number): void {
    if (!Number.isFinite(numerator) || !Number.isFinite(denominator)) {
      throw invalidArgument(`sendStatus needs finite numbers, got ${numerator}/${denominator}`);
    }
    this.report(PacketType.WORK_STATUS, [this.handle, String(Math.trunc(numerator)), String(Math.trunc(denominator))]);
  }

  complete(data: PacketArg = EMPTY): void {
    this.end(PacketType.WORK_COMPLETE, [this.handle, data]);
  }

  /** WORK_FAIL: the job failed, no detail (every Gearman client understands it). */
  fail(): void {
    this.end(PacketType.WORK_FAIL, [this.handle]);
  }

  /**
   * WORK_EXCEPTION: ends the job in gearmand 1.1.20, so no WORK_FAIL follows
   * (docs/gearmand-behaviour.md#work_exception).
   */
  exception(data: PacketArg): void {
    this.end(PacketType.WORK_EXCEPTION, [this.handle, data]);
  }

  private report(type: number, args: PacketArg[]): void {
    if (this.done)
      throw new GearmanError(
        'JOB_FINISHED',
        `Job ${this.handle} (${this.functionName}) already ended: nothing more can be sent for it`,
      );
    if (this.control.lost || !this.control.conn.connected) return;
    this.control.conn.send(type, args);
  }

  private end(type: number, args: PacketArg[]): void {
    this.report(type, args);
    this.done = true;
    this.control.finished(this);
  }
}

const EMPTY = Buffer.alloc(0);
