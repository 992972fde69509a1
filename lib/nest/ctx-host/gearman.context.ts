import { BaseRpcContext, type PacketMetadata } from '@nestjs/microservices';
import type { WorkerJob } from '../../engine/index.js';
import type { GearmanCodec } from '../codecs.js';

type GearmanContextArgs = [job: WorkerJob, codec: GearmanCodec, metadata: PacketMetadata | undefined];

/**
 * The job behind a handler call, for `@Ctx()`: handle, function, unique, server, and progress
 * reports to the caller.
 */
export class GearmanContext extends BaseRpcContext<GearmanContextArgs> {
  /** The engine's job (payload as raw bytes, and the raw report methods). */
  getJob(): WorkerJob {
    return this.args[0];
  }

  /** The job handle gearmand assigned, e.g. `H:host:42`. */
  getHandle(): string {
    return this.args[0].handle;
  }

  /** The Gearman function name (the pattern, normalised as Nest does). */
  getFunction(): string {
    return this.args[0].functionName;
  }

  /** Alias of `getFunction()`, as other Nest contexts name it. */
  getPattern(): string {
    return this.args[0].functionName;
  }

  /**
   * The unique key the caller gave ('' when none). Also '' on a server without GRAB_JOB_UNIQ
   * (Perl's Gearman::Server), whose job assignments do not carry it: do not rely on it there.
   */
  getUnique(): string {
    return this.args[0].unique;
  }

  /**
   * The reducer a reduce job names (`setReducer()` on the caller's record); seen only by a server
   * with `grab: 'all'`, undefined for other jobs. gearmand does not run the reducer itself: what
   * to do with it is the handler's.
   */
  getReducer(): string | undefined {
    return this.args[0].reducer;
  }

  /** `host:port` of the gearmand that assigned the job. */
  getServer(): string {
    return this.args[0].server;
  }

  /** Metadata a Nest client attached (`setOnDispatchHook`) and sent with `sendMetadata`, where this server has `readMetadata`. */
  getMetadata(): PacketMetadata | undefined {
    return this.args[2];
  }

  /**
   * Aborted when the handler should stop: at its deadline (`handlerTimeout`: the job has been
   * answered with a timeout failure), when its stream went past `maxOutgoing` (BACKPRESSURE), when
   * its connection dropped, and when the server closes with the handler still running (at
   * `closeTimeout`; gearmand requeues the job). `signal.reason` says which.
   */
  getSignal(): AbortSignal {
    return this.args[0].signal;
  }

  /** WORK_STATUS: progress as numerator/denominator; the caller sees it as a status event. Paced and bounded as `sendData`. */
  sendStatus(numerator: number, denominator: number): Promise<void> {
    return this.args[0].sendStatus(numerator, denominator);
  }

  /**
   * WORK_DATA with a value encoded by the handler's codec (the caller's `send()` emits it). Await it
   * to pace a stream: it resolves at once while the connection has room, else once it has drained
   * below `highWaterMark`. Throws BACKPRESSURE (the job has been failed) past `maxOutgoing`, and the
   * abort reason once `getSignal()` is aborted; the promise never rejects.
   */
  sendData(value: unknown): Promise<void> {
    return this.args[0].sendData(this.args[1].encode(value));
  }

  /** WORK_WARNING with a value encoded by the handler's codec; paced and bounded as `sendData`. */
  sendWarning(value: unknown): Promise<void> {
    return this.args[0].sendWarning(this.args[1].encode(value));
  }
}
