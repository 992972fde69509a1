import { PacketType, readStatusReply } from '../../protocol/index.js';
import type { GearmanConnection } from '../connection.js';
import type { GearmanError } from '../errors.js';
import { Fifo } from '../fifo.js';
import type { ServerPool, ServerStrategy } from '../server-pool.js';
import type { JobControl } from './job.js';
import type { JobTimers } from './job-timers.js';
import type { SubmitQueue } from './submit-queue.js';

/** A job waiting for a server to come up, until `deadline` (Date.now()), when it fails with NO_SERVER. */
interface ParkedJob {
  readonly job: JobControl;
  /** Servers to avoid (the one a retried job was lost on). */
  readonly exclude: Set<GearmanConnection> | undefined;
  /** Kept when the job is parked again, so waiting never adds up past connectTimeout. */
  readonly deadline: number;
  readonly timer: NodeJS.Timeout;
}

/**
 * Parked jobs: submitted while no suitable server was connected. They are routed again whenever a
 * server connects or is found down, and fail with NO_SERVER at their deadline.
 */
class ParkedJobs {
  private readonly jobs = new Fifo<ParkedJob>();

  park(
    job: JobControl,
    exclude: Set<GearmanConnection> | undefined,
    deadline: number,
    expire: (job: JobControl) => void,
  ): void {
    const timer = setTimeout(expire, Math.max(0, deadline - Date.now()), job);
    this.jobs.push({ job, exclude, deadline, timer });
  }

  /** Takes every parked job out (their timers stopped), to be routed again. */
  release(): ParkedJob[] {
    const parked = this.jobs.drain();
    for (const p of parked) clearTimeout(p.timer);
    return parked;
  }
}

export interface RouterSettings {
  readonly strategy: ServerStrategy;
  readonly connectTimeout: number;
  readonly submitTimeout: number;
}

/**
 * Where each job is sent: a live server picked by the strategy, else parked until one is up; after
 * a lost connection, resubmitted (jobs with `retry`) preferably to another server.
 */
export class Router {
  private readonly parked = new ParkedJobs();
  /** Retried jobs and the connection they were lost on, until resubmitted. */
  private readonly lostOn = new WeakMap<JobControl, GearmanConnection>();
  private closed = false;

  constructor(
    private readonly settings: RouterSettings,
    private readonly pool: ServerPool,
    private readonly submits: ReadonlyMap<GearmanConnection, SubmitQueue>,
    private readonly timers: JobTimers,
    private readonly noServer: (timeout: number) => GearmanError,
    /** A resubmit that got no reply: handled as a submit that got none. */
    private readonly onSubmitError: (conn: GearmanConnection, job: JobControl, error: Error) => void,
  ) {}

  /** Sends the job to a live server, or parks it until one connects (up to connectTimeout). */
  route(job: JobControl, exclude?: Set<GearmanConnection>, deadline?: number): void {
    if (job.finished) return;
    // The common case (a first submit, a server up) without closures: they would be allocated per job.
    const conn =
      exclude === undefined
        ? this.pool.pick(this.settings.strategy, job.request.unique || undefined, undefined, true)
        : undefined;
    if (conn) this.send(conn, job);
    else this.routeOrPark(job, exclude, deadline);
  }

  /** Routes the parked jobs again: a server connected, or one is now known to be down. */
  releaseParked(): void {
    for (const p of this.parked.release()) if (!p.job.finished) this.route(p.job, p.exclude, p.deadline);
  }

  /** A job's connection was lost before its result came: resubmit if it may, else fail it with `error`. */
  lost(conn: GearmanConnection, job: JobControl, error: GearmanError): void {
    if (job.retriesLeft > 0 && !this.closed) {
      job.retriesLeft--;
      job.resubmitting();
      // The resubmit gets a submit deadline of its own: the first one may have passed long ago, while the job ran.
      if (job.submitDeadline >= 0) job.submitDeadline = Math.ceil(performance.now()) + this.settings.submitTimeout;
      this.lostOn.set(job, conn);
      this.route(job, new Set([conn]));
      return;
    }
    job.fail(error);
  }

  /** Fails every parked job with `error`; nothing is routed afterwards. */
  close(error: GearmanError): void {
    this.closed = true;
    for (const p of this.parked.release()) p.job.fail(error);
  }

  private pick(
    job: JobControl,
    exclude: Set<GearmanConnection> | undefined,
    patient: boolean,
  ): GearmanConnection | undefined {
    // `exclude` (the server a retried job was lost on) is only a preference: when no other server is
    // live, that server is used again once it is back (a restarted gearmand lost the job with its memory).
    const unique = job.request.unique || undefined;
    return (
      this.pool.pick(this.settings.strategy, unique, exclude, patient) ??
      (exclude ? this.pool.pick(this.settings.strategy, unique, undefined, patient) : undefined)
    );
  }

  private routeOrPark(
    job: JobControl,
    exclude: Set<GearmanConnection> | undefined,
    deadline: number | undefined,
  ): void {
    const conn = this.pick(job, exclude, true);
    if (conn) {
      this.send(conn, job);
      return;
    }
    this.timers.ownSubmitTimer(job);
    for (const c of this.pool.connections) c.start();
    this.parked.park(job, exclude, deadline ?? Date.now() + this.settings.connectTimeout, (j) => {
      // Last chance: any live server, even if the unique's own server is still connecting.
      const live = j.finished ? undefined : this.pick(j, exclude, false);
      if (live) this.send(live, j);
      else j.fail(this.noServer(this.settings.connectTimeout));
    });
  }

  private send(conn: GearmanConnection, job: JobControl): void {
    job.connection = conn;
    const lostOn = this.lostOn.get(job);
    if (lostOn !== undefined) {
      this.lostOn.delete(job);
      if (lostOn === conn) {
        void this.resubmitWhereLost(conn, job);
        return;
      }
    }
    this.submits.get(conn)!.send(job);
  }

  /**
   * Resubmits a retried job on the server it was lost on (no other was live). If the lost copy is
   * still queued there with no client left, gearmand 1.1.20 has marked it to be dropped at the next
   * GRAB (docs/gearmand-behaviour.md#lost-clients) but still merges a submit of the same unique
   * into it, and the client that joins never hears back. So wait (polling GET_STATUS_UNIQUE, which
   * ignores the function, docs/gearmand-behaviour.md#job-status) until gearmand has dropped it, a
   * worker runs it (a running job's result reaches clients that join it), or another client waits
   * for it; then submit.
   */
  private async resubmitWhereLost(conn: GearmanConnection, job: JobControl): Promise<void> {
    try {
      for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
        const status = readStatusReply(
          await conn.call(PacketType.GET_STATUS_UNIQUE, [job.request.unique], this.settings.submitTimeout),
        );
        const orphan = status.known && !status.running && (status.waitingClients ?? 0) === 0;
        if (!orphan || job.finished || this.closed) break;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    } catch (error) {
      // Lost again, or no answer in time: as for a submit without a reply.
      this.onSubmitError(conn, job, error as Error);
      return;
    }
    if (job.finished || this.closed) return;
    if (job.submitDeadline >= 0) job.submitDeadline = Math.ceil(performance.now()) + this.settings.submitTimeout;
    if (!conn.connected) {
      this.lostOn.set(job, conn);
      this.route(job, new Set([conn]));
      return;
    }
    this.submits.get(conn)!.send(job);
  }
}
