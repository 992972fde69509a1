import { PacketType, readStatusReply } from '../../protocol/index.js';
import { GearmanAdminConnection } from '../admin/admin-connection.js';
import type { GearmanConnection } from '../connection.js';
import { GearmanCancelledError, GearmanError } from '../errors.js';
import { Fifo } from '../../protocol/fifo.js';
import type { JobStatus } from './job.js';
import type { JobControl } from './job.js';
import type { JobTable } from './job-table.js';

const noop = () => undefined;

/**
 * Admin `cancel job` commands in flight per server. A burst of late JOB_CREATEDs can ask for
 * 100 000 cancels at once: past this many, they wait here (in order) instead of piling up on the
 * admin connection. There each command has a timer of `commandTimeout` and its reply list costs
 * more per reply the longer it grows: with 100 000 pipelined, the last replies came after that
 * timeout, which closed the admin connection and lost the cancels not yet answered. Large enough
 * that a burst is cancelled faster than workers take jobs (a smaller window let more of them run).
 */
const MAX_CANCELS_IN_FLIGHT = 16_384;

/** One `cancel job` to send. */
interface CancelTask {
  readonly handle: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** The cancels of one server: waiting to be sent, and how many are in flight. */
interface CancelQueue {
  readonly waiting: Fifo<CancelTask>;
  inFlight: number;
}

/**
 * Cancelling jobs. Gearman's only cancel is the admin `cancel job` command
 * (docs/gearmand-behaviour.md#cancelling), for a job still queued; so this keeps one admin
 * connection per server, opened on first use.
 *
 * One rule for every caller that stops waiting (`job.cancel()`, a Nest unsubscribe, a timeout, an
 * abort, a submit that timed out before its JOB_CREATED came): that caller is detached at once, and
 * the job itself is cancelled on its server only when nobody waits for it any more (no other
 * submit of this client on its handle, and no other client by GET_STATUS_UNIQUE's count: a job
 * with a unique may have been merged with other submits, docs/gearmand-behaviour.md#coalescing).
 * The rule is {@link Canceller.release}.
 */
export class Canceller {
  private readonly admins = new Map<GearmanConnection, GearmanAdminConnection>();
  /**
   * Handles whose admin `cancel job` is in flight, per connection: the WORK_FAIL gearmand sends
   * for it means CANCELLED, not a failed job.
   */
  private readonly cancelling = new Map<GearmanConnection, Set<string>>();
  private readonly queues = new Map<GearmanConnection, CancelQueue>();
  private closed = false;

  constructor(
    private readonly connectTimeout: number,
    private readonly tables: ReadonlyMap<GearmanConnection, JobTable>,
    private readonly status: (handle: string, conn: GearmanConnection) => Promise<JobStatus>,
  ) {}

  /** Whether a WORK_FAIL for this job answers an admin `cancel job` of this client. */
  isCancelling(job: JobControl): boolean {
    const handles = job.connection && this.cancelling.get(job.connection);
    return handles !== undefined && job.handle !== undefined && handles.has(job.handle);
  }

  /**
   * `job.cancel()`: detaches this caller with CANCELLED and cancels the job on the server if it is
   * still queued and nobody else waits for it. A running job rejects with NOT_CANCELLABLE and
   * stays attached (it completes as usual).
   */
  async cancel(job: JobControl): Promise<void> {
    const name = job.request.functionName;
    if (job.state === 'submitting') {
      // The handle is not known yet: fail now, take the job back when JOB_CREATED arrives.
      job.fail(new GearmanCancelledError(`Job ${name} was cancelled before gearmand created it`));
      return;
    }
    const conn = job.connection!;
    const handle = job.handle!;
    const status = await this.status(handle, conn);
    if (status.running) {
      throw new GearmanError(
        'NOT_CANCELLABLE',
        `Job ${name} (${handle}) is already running on a worker: Gearman cannot stop a running job. ` +
          'Wait for it, or have the worker check for a cancel flag of your own.',
      );
    }
    if (job.finished && !job.request.background) return; // it ended while we asked
    job.fail(new GearmanCancelledError(`Job ${name} (${handle}) was cancelled while queued`));
    if (status.known && !this.closed) await this.release(conn, handle, job.request.unique, false);
  }

  /**
   * A caller stopped waiting for a job that is already failed (timeout, abort; `late`: its
   * JOB_CREATED came after it timed out or was aborted): cancel the job on its server by the one
   * rule, in the background.
   */
  giveUp(job: JobControl, late = false): void {
    const conn = job.connection;
    if (!conn || job.handle === undefined || this.closed) return;
    this.release(conn, job.handle, job.request.unique, !late).catch(noop);
  }

  /**
   * The one rule: cancels `handle` on `conn`'s server unless someone still waits for it, or (with
   * `queuedOnly`) it already runs. The caller's own job is failed and out of the table already.
   *
   * - Another job of this client on the handle: keep it.
   * - With a unique: GET_STATUS_UNIQUE on the job's own connection. Replies come in request order
   *   (docs/gearmand-behaviour.md#reply-order), so by its answer every submit of this unique sent
   *   before it has its JOB_CREATED and is in the table. gearmand counts one waiting client per
   *   foreground submit (docs/gearmand-behaviour.md#status_res_unique), detached ones of this
   *   connection included: more than those means another caller waits.
   * - Without a unique nobody else can share the job (an empty unique never coalesces): a job given
   *   up before its JOB_CREATED came is cancelled at once, without asking first, so that a burst
   *   of late JOB_CREATEDs is not answered by status queries queued behind the same backlog; a
   *   created job given up by a timeout or abort is asked for first (GET_STATUS), and left alone if
   *   it runs (it finishes on its worker; the result goes nowhere).
   */
  private async release(conn: GearmanConnection, handle: string, unique: string, queuedOnly: boolean): Promise<void> {
    const table = this.tables.get(conn);
    if (!table || table.has(handle)) return;
    if (unique) {
      const s = readStatusReply(await conn.call(PacketType.GET_STATUS_UNIQUE, [unique]));
      if (table.has(handle) || !s.known || s.running || (s.waitingClients ?? 0) > table.detached(handle)) return;
    } else if (queuedOnly) {
      const s = await this.status(handle, conn);
      if (!s.known || s.running || table.has(handle)) return;
    }
    if (this.closed) return;
    // gearmand sends the job's clients a WORK_FAIL on the job's connection and the admin OK on
    // another: either may be read first, and that WORK_FAIL must not look like a failed job.
    let handles = this.cancelling.get(conn);
    if (!handles) this.cancelling.set(conn, (handles = new Set()));
    handles.add(handle);
    try {
      await new Promise<void>((resolve, reject) => {
        let queue = this.queues.get(conn);
        if (!queue) this.queues.set(conn, (queue = { waiting: new Fifo(), inFlight: 0 }));
        queue.waiting.push({ handle, resolve, reject });
        this.pump(conn, queue);
      });
    } finally {
      handles.delete(handle);
    }
  }

  /** Sends the waiting cancels of one server, at most MAX_CANCELS_IN_FLIGHT at a time. */
  private pump(conn: GearmanConnection, queue: CancelQueue): void {
    while (queue.inFlight < MAX_CANCELS_IN_FLIGHT && queue.waiting.length > 0) {
      const task = queue.waiting.shift()!;
      if (this.closed) {
        task.resolve();
        continue;
      }
      queue.inFlight++;
      this.adminFor(conn)
        .cancelJob(task.handle)
        .then(() => task.resolve(), task.reject)
        .finally(() => {
          queue.inFlight--;
          this.pump(conn, queue);
        });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // Cancels not sent yet are dropped: closing the connections leaves those jobs without a client,
    // and gearmand drops a queued foreground job it holds for no client
    // (docs/gearmand-behaviour.md#lost-clients); a background one stays.
    for (const queue of this.queues.values()) for (const task of queue.waiting.drain()) task.resolve();
    await Promise.all([...this.admins.values()].map((a) => a.close()));
  }

  private adminFor(conn: GearmanConnection): GearmanAdminConnection {
    let admin = this.admins.get(conn);
    if (!admin) {
      admin = new GearmanAdminConnection(conn.server, { connectTimeout: this.connectTimeout });
      this.admins.set(conn, admin);
    }
    return admin;
  }
}
