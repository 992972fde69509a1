import { PacketType, readStatusReply } from '../../protocol/index.js';
import { GearmanAdminConnection } from '../admin/admin-connection.js';
import type { GearmanConnection } from '../connection.js';
import { GearmanCancelledError, GearmanError } from '../errors.js';
import type { JobStatus } from './job.js';
import type { JobControl } from './job.js';
import type { JobTable } from './job-table.js';

const noop = () => undefined;

/**
 * Cancelling jobs. Gearman's only cancel is the admin `cancel job` command
 * (docs/gearmand-behaviour.md#cancelling), for a job still queued; so this keeps one admin
 * connection per server, opened on first use.
 */
export class Canceller {
  private readonly admins = new Map<GearmanConnection, GearmanAdminConnection>();
  /** Jobs whose admin `cancel job` is in flight: the WORK_FAIL gearmand sends for it means CANCELLED. */
  private readonly cancelling = new WeakSet<JobControl>();
  private closed = false;

  constructor(
    private readonly connectTimeout: number,
    private readonly tables: ReadonlyMap<GearmanConnection, JobTable>,
    private readonly status: (handle: string, conn: GearmanConnection) => Promise<JobStatus>,
  ) {}

  /** Whether a WORK_FAIL for this job answers our own `cancel job`. */
  isCancelling(job: JobControl): boolean {
    return this.cancelling.has(job);
  }

  /** `job.cancel()`: fails the job with CANCELLED, and cancels it on the server if still queued. */
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
    if (status.known) {
      // gearmand sends the job's clients a WORK_FAIL on this connection and the admin OK on another:
      // either may be read first, and that WORK_FAIL must not look like a failed job.
      this.cancelling.add(job);
      try {
        await this.adminFor(conn).cancelJob(handle);
      } finally {
        this.cancelling.delete(job);
      }
    }
    job.fail(new GearmanCancelledError(`Job ${name} (${handle}) was cancelled while queued`));
  }

  /**
   * Cancels a job this client gave up on (timeout, abort) if it is still queued, unless someone
   * else waits for it: a job with a unique may have been merged with other submits
   * (docs/gearmand-behaviour.md#coalescing), of this client or of others, and cancelling it would
   * fail theirs too.
   */
  giveUp(job: JobControl): void {
    const conn = job.connection;
    if (!conn || !job.handle || this.closed) return;
    const handle = job.handle;
    if (this.tables.get(conn)?.has(handle)) return; // another submit of this client shares the handle
    const unique = job.request.unique;
    const stillWanted = unique
      ? conn.call(PacketType.GET_STATUS_UNIQUE, [unique]).then((p) => {
          const s = readStatusReply(p);
          // Counts one client per foreground submit; this job's own submit is still among them.
          return { queued: s.known && !s.running, others: (s.waitingClients ?? 0) > 1 };
        })
      : this.status(handle, conn).then((s) => ({ queued: s.known && !s.running, others: false }));
    stillWanted.then((s) => (s.queued && !s.others ? this.adminFor(conn).cancelJob(handle) : false)).catch(noop);
  }

  async close(): Promise<void> {
    this.closed = true;
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
