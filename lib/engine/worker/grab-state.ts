import type { GearmanConnection } from '../connection.js';

/** What the worker tracks of its GRABs on one connection. */
export class GrabState {
  /** GRABs sent and not answered yet. */
  grabs = 0;
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
  /** Jobs whose streamed report waits for this connection to drain (woken on drain and on loss). */
  readonly drainWaiters: (() => void)[] = [];
  constructor(readonly conn: GearmanConnection) {}

  /** Wakes every job waiting for this connection to drain. */
  wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0) return;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}
