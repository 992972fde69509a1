import type { Packet } from '../../protocol/index.js';
import type { GearmanConnection, ReplyHandler } from '../connection.js';
import { Fifo } from '../../protocol/fifo.js';
import type { JobControl } from './job.js';

/**
 * The jobs sent on one connection and awaiting JOB_CREATED, in send order. gearmand answers in that
 * order (docs/gearmand-behaviour.md#reply-order), so one handler object serves them all (no
 * closures per job), and the client's `submitTimeout` is enforced by one timer per connection
 * instead of one per job: jobs whose deadline passes while still `submitting` fail, and stay queued
 * until their reply arrives.
 */
export class SubmitQueue implements ReplyHandler {
  private readonly jobs = new Fifo<JobControl>();
  /** Jobs at the front already checked by the sweep (failed, or with a timer of their own). */
  private checked = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: GearmanConnection,
    private readonly onCreated: (job: JobControl, packet: Packet) => void,
    private readonly onError: (job: JobControl, error: Error) => void,
    private readonly onTimeout: (job: JobControl) => void,
  ) {}

  send(job: JobControl): void {
    const { type, args, payload } = job.request;
    // Bounded outgoing bytes (maxOutgoing): a server that does not read gets no more, and the
    // submit fails at once (in a microtask, so listeners added right after submit() hear of it).
    if (!this.conn.canQueue(payload.length)) {
      const error = this.conn.backpressureError(`a submit of ${job.request.functionName} (${payload.length} bytes)`);
      queueMicrotask(() => this.onError(job, error));
      return;
    }
    this.conn.request(type, args, this);
    this.jobs.push(job);
    if (job.submitDeadline >= 0 && this.timer === undefined) this.arm(job.submitDeadline - performance.now());
  }

  resolve(packet: Packet): void {
    this.onCreated(this.next(), packet);
  }

  reject(error: Error): void {
    this.onError(this.next(), error);
  }

  private next(): JobControl {
    const job = this.jobs.shift()!;
    if (this.checked > 0) this.checked--;
    return job;
  }

  /**
   * The timer is left to run out when the queue empties (a job at a time would otherwise set and
   * clear one per job); unref'd, so it never keeps the process alive on its own.
   */
  private arm(delay: number): void {
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(delay)));
    this.timer.unref();
  }

  /** Fails the jobs past their deadline; deadlines grow along the queue (same timeout, sent in order). */
  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = performance.now();
    const jobs = this.jobs;
    let i = this.checked;
    for (; i < jobs.length; i++) {
      const job = jobs.at(i)!;
      if (job.submitDeadline > now) break;
      if (job.submitDeadline >= 0 && job.state === 'submitting') this.onTimeout(job);
    }
    this.checked = i;
    if (i < jobs.length) this.arm(jobs.at(i)!.submitDeadline - now);
  };
}
