import { PacketType, readStatusReply } from '../../protocol/index.js';
import type { GearmanConnection } from '../connection.js';
import { GearmanError } from '../errors.js';
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
 * server connects or is found down, and fail with NO_SERVER at their deadline. A parked job that
 * fails (its deadline, a timeout, an abort) leaves at once: during an outage nothing keeps the
 * payload of a job that already failed (it would otherwise wait for the next reconnect attempt).
 */
class ParkedJobs {
  /** In parking order (a Map keeps insertion order); a job is in it at most once. */
  private readonly jobs = new Map<JobControl, ParkedJob>();
  /** Jobs whose cleanup already takes them out of here when they end. */
  private readonly watched = new WeakSet<JobControl>();

  get size(): number {
    return this.jobs.size;
  }

  park(
    job: JobControl,
    exclude: Set<GearmanConnection> | undefined,
    deadline: number,
    expire: (job: JobControl) => void,
  ): void {
    const timer = setTimeout(
      (j: JobControl) => {
        this.jobs.delete(j);
        expire(j);
      },
      Math.max(0, deadline - Date.now()),
      job,
    );
    this.jobs.set(job, { job, exclude, deadline, timer });
    if (!this.watched.has(job)) {
      this.watched.add(job);
      const previous = job.cleanup;
      job.cleanup = (j) => {
        this.remove(j);
        previous?.(j);
      };
    }
  }

  /** Takes every parked job out (their timers stopped), to be routed again. */
  release(): ParkedJob[] {
    const parked = [...this.jobs.values()];
    this.jobs.clear();
    for (const p of parked) clearTimeout(p.timer);
    return parked;
  }

  private remove(job: JobControl): void {
    const parked = this.jobs.get(job);
    if (!parked) return;
    this.jobs.delete(job);
    clearTimeout(parked.timer);
  }
}

export interface RouterSettings {
  readonly strategy: ServerStrategy;
  readonly connectTimeout: number;
  readonly submitTimeout: number;
  /** The connections reconnect after a loss (the `reconnect` option is not `false`). */
  readonly reconnects: boolean;
}

/** A server whose connection was lost, until it is connected again. */
interface LostServer {
  /** `reconnecting` events since the loss: the first schedules an attempt, a second means it failed. */
  reconnects: number;
  /** Retried jobs lost there, waiting to be resubmitted there when it is back (a job that fails meanwhile leaves). */
  readonly jobs: Set<JobControl>;
}

/**
 * Where each job is sent: a live server picked by the strategy, else parked until one is up; after
 * a lost connection, resubmitted (jobs with `retry`) to the server it was lost on once that server
 * is back, or to another one if that server is gone (declared dead, or its reconnect failed).
 */
export class Router {
  private readonly parked = new ParkedJobs();
  /** Retried jobs and the connection they were lost on, until resubmitted. */
  private readonly lostOn = new WeakMap<JobControl, GearmanConnection>();
  /** Servers lost and not connected again yet. */
  private readonly lostServers = new Map<GearmanConnection, LostServer>();
  /** The lost server each retried job waits for. */
  private readonly waitingFor = new WeakMap<JobControl, LostServer>();
  /** Jobs whose cleanup already takes them out of `waitingFor` when they end. */
  private readonly watched = new WeakSet<JobControl>();
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

  /**
   * A job's connection was lost before its result came: resubmit if it may, else fail it with `error`.
   *
   * Gearman cannot tell a job that completed (its WORK_COMPLETE lost with the connection) from one
   * still queued or running, so a retry is at-least-once. The duplicates that can be avoided are:
   * the job waits for its own server, and when that server is back the resubmit merges there with
   * the original by unique if it is still queued or running (docs/gearmand-behaviour.md#coalescing,
   * see resubmitWhereLost). It goes to another server only when its own is gone: declared dead by
   * the heartbeat (`conn.dead`), its reconnect attempt failed, or it does not reconnect at all.
   */
  lost(conn: GearmanConnection, job: JobControl, error: GearmanError): void {
    if (job.retriesLeft > 0 && !this.closed) {
      job.retriesLeft--;
      job.resubmitting();
      // The resubmit gets a submit deadline of its own: the first one may have passed long ago, while the job ran.
      if (job.submitDeadline >= 0) job.submitDeadline = Math.ceil(performance.now()) + this.settings.submitTimeout;
      this.lostOn.set(job, conn);
      if (this.gone(conn)) {
        this.route(job, new Set([conn]));
        return;
      }
      this.awaitServer(conn, job);
      return;
    }
    job.fail(error);
  }

  /** `conn` lost its connection (its 'disconnected' event). */
  serverLost(conn: GearmanConnection): void {
    this.lostServer(conn);
  }

  /** `conn` schedules a reconnect: after the first one since its loss, an attempt has failed. */
  serverReconnecting(conn: GearmanConnection): void {
    const lost = this.lostServers.get(conn);
    if (lost && ++lost.reconnects > 1) this.moveAway(conn, lost);
  }

  /** `conn` is connected again: the retried jobs lost there are resubmitted there. */
  serverUp(conn: GearmanConnection): void {
    const lost = this.lostServers.get(conn);
    if (!lost) return;
    this.lostServers.delete(conn);
    for (const job of this.takeWaiting(lost)) if (!this.closed) this.send(conn, job);
  }

  /** Fails every parked job with `error`; nothing is routed afterwards. */
  close(error: GearmanError): void {
    this.closed = true;
    for (const p of this.parked.release()) p.job.fail(error);
    for (const lost of this.lostServers.values()) for (const job of this.takeWaiting(lost)) job.fail(error);
  }

  /** Whether a lost server is not coming back soon: its jobs go elsewhere. */
  private gone(conn: GearmanConnection): boolean {
    return (
      !this.settings.reconnects ||
      conn.dead ||
      conn.state === 'closed' ||
      (this.lostServers.get(conn)?.reconnects ?? 0) > 1
    );
  }

  private lostServer(conn: GearmanConnection): LostServer {
    let lost = this.lostServers.get(conn);
    if (!lost) this.lostServers.set(conn, (lost = { reconnects: 0, jobs: new Set() }));
    return lost;
  }

  /** A retried job waits for the server it was lost on to come back. */
  private awaitServer(conn: GearmanConnection, job: JobControl): void {
    // In no submit queue while it waits: its submit deadline gets a timer of its own.
    this.timers.ownSubmitTimer(job);
    const lost = this.lostServer(conn);
    lost.jobs.add(job);
    this.waitingFor.set(job, lost);
    if (!this.watched.has(job)) {
      // A job that fails while it waits (its submit deadline, a timeout, an abort) leaves at once:
      // nothing keeps its payload until the server is back.
      this.watched.add(job);
      const previous = job.cleanup;
      job.cleanup = (j) => {
        this.waitingFor.get(j)?.jobs.delete(j);
        this.waitingFor.delete(j);
        previous?.(j);
      };
    }
  }

  /** Takes the jobs still waiting for a lost server out. */
  private takeWaiting(lost: LostServer): JobControl[] {
    const jobs = [...lost.jobs];
    lost.jobs.clear();
    for (const job of jobs) this.waitingFor.delete(job);
    return jobs;
  }

  /** The jobs waiting for `conn` go to another server (or park until one is up). */
  private moveAway(conn: GearmanConnection, lost: LostServer): void {
    for (const job of this.takeWaiting(lost)) this.route(job, new Set([conn]));
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
   * Resubmits a retried job on the server it was lost on (it is back, or no other was live). If the lost copy is
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
      // A server without GET_STATUS_UNIQUE (Perl's Gearman::Server) does not have that trap: a
      // submit joining a queued job becomes its client there. Else lost again, or no answer in
      // time: as for a submit without a reply.
      if (!(error instanceof GearmanError && error.code === 'UNSUPPORTED_COMMAND')) {
        this.onSubmitError(conn, job, error as Error);
        return;
      }
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
