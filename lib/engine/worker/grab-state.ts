import { PacketType } from '../../protocol/index.js';
import type { GearmanConnection } from '../connection.js';

/** What the worker tracks of its GRABs on one connection, and what it learned of the server there. */
export class GrabState {
  /** GRABs sent and not answered yet. */
  grabs = 0;
  /** Jobs from this connection whose handlers run: counted until they end, across reconnects (maxJobsPerServer). */
  running = 0;
  /** May GRAB (false after NO_JOB until NOOP). */
  awake = true;
  /** PRE_SLEEP sent, waiting for NOOP. */
  sleeping = false;
  /**
   * GRABs allowed in flight: 2 after waking (the second one's NO_JOB tells, along with the first
   * one's job, that the queue is empty: PRE_SLEEP goes out with the WORK_COMPLETE, no extra round
   * trip), doubling per job received (no GRAB storm on a short queue).
   */
  window = 1;
  /** The GRAB type sent here: the worker's, until the server refuses it (see {@link answered}). */
  grabType: number = PacketType.GRAB_JOB_UNIQ;
  /**
   * WORK_* types the server refused here (Perl's Gearman::Server has no WORK_DATA nor WORK_WARNING):
   * not sent again on this connection. One set for the connection's life, cleared on each connect.
   */
  readonly refused = new Set<number>();
  /**
   * Whether WORK_EXCEPTION ends a job on this server (gearmand) or must be followed by WORK_FAIL
   * (Perl's Gearman::Server); unknown until the first exception on the connection is checked.
   */
  exceptionEnds: boolean | undefined;
  /** Jobs whose streamed report waits for this connection to drain (woken on drain and on loss). */
  readonly drainWaiters: (() => void)[] = [];
  /** The types of the GRABs in flight while {@link probing}; undefined once the type in use is known to work. */
  private probe: number[] | undefined;

  constructor(readonly conn: GearmanConnection) {}

  /** A new connection: the worker's GRAB type again, nothing known of the server yet. */
  reset(grabType: number): void {
    this.grabs = 0;
    this.awake = true;
    this.sleeping = false;
    this.grabType = grabType;
    this.probe = grabType === PacketType.GRAB_JOB ? undefined : [];
    this.refused.clear();
    this.exceptionEnds = undefined;
  }

  /** `count` GRABs of `grabType` were sent. */
  sent(count: number): void {
    if (this.probe) for (let i = 0; i < count; i++) this.probe.push(this.grabType);
  }

  /**
   * Whether an ERROR now answers a GRAB: until the server has answered one with a job or NO_JOB,
   * no job (and so no WORK_*) exists on this connection for an ERROR to answer.
   */
  get probing(): boolean {
    return this.probe !== undefined && this.probe.length > 0;
  }

  /**
   * The oldest GRAB in flight was answered: with a job or NO_JOB (its type works here), or
   * `refused` with an ERROR (the server does not have its type; Perl's Gearman::Server knows
   * neither GRAB_JOB_ALL nor GRAB_JOB_UNIQ). After a refusal the next GRABs use the type below:
   * GRAB_JOB_ALL, GRAB_JOB_UNIQ, GRAB_JOB, which every server has; those of the refused type still
   * in flight are refused in turn.
   */
  answered(refused = false): void {
    const type = this.probe?.shift();
    if (type === undefined) return;
    if (!refused) {
      if (type === this.grabType) this.probe = undefined;
      return;
    }
    if (type === this.grabType && type !== PacketType.GRAB_JOB) {
      this.grabType = type === PacketType.GRAB_JOB_ALL ? PacketType.GRAB_JOB_UNIQ : PacketType.GRAB_JOB;
    }
    if (this.grabType === PacketType.GRAB_JOB && this.probe!.length === 0) this.probe = undefined;
  }

  /** Wakes every job waiting for this connection to drain. */
  wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0) return;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}
