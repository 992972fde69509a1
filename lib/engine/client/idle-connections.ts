import type { GearmanConnection } from '../connection.js';

/**
 * The client's `idleTimeout`: a connection that has had no job for that long is closed
 * (GearmanConnection.suspend) and opened again by the next submit that needs it (the router starts
 * it and parks the job meanwhile). Idle means no job in flight there, no request awaiting a reply
 * other than the heartbeat's ECHO, and no job started or ended there for `timeout` ms. One timer
 * per connection, armed on connect and pushed back when it finds work; the hot path only stores
 * the time a job ends.
 */
export class IdleConnections {
  private readonly timers = new Map<GearmanConnection, NodeJS.Timeout>();
  /** performance.now() when a job last ended (or the connection opened), per connection. */
  private readonly activeAt = new Map<GearmanConnection, number>();

  constructor(
    private readonly timeout: number,
    /** Jobs of the connection waiting for their result there. */
    private readonly jobsOn: (conn: GearmanConnection) => number,
  ) {}

  /** The connection is up: its idle time starts now. */
  connected(conn: GearmanConnection): void {
    this.touch(conn);
    this.arm(conn, this.timeout);
  }

  disconnected(conn: GearmanConnection): void {
    clearTimeout(this.timers.get(conn));
    this.timers.delete(conn);
  }

  /** A job ended on `conn` (every job ends, background ones at JOB_CREATED). */
  touch(conn: GearmanConnection): void {
    this.activeAt.set(conn, performance.now());
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private arm(conn: GearmanConnection, delay: number): void {
    const timer = setTimeout(this.check, Math.max(1, Math.ceil(delay)), conn);
    timer.unref();
    this.timers.set(conn, timer);
  }

  private readonly check = (conn: GearmanConnection): void => {
    this.timers.delete(conn);
    if (!conn.connected) return;
    // A submit awaits JOB_CREATED, a status query its reply, or a foreground job its result.
    if (conn.requestsPending > 0 || this.jobsOn(conn) > 0) {
      this.arm(conn, this.timeout);
      return;
    }
    const idle = performance.now() - (this.activeAt.get(conn) ?? 0);
    if (idle < this.timeout) this.arm(conn, this.timeout - idle);
    else conn.suspend();
  };
}
