import type { JobControl } from './job.js';

/**
 * One job, or several when submits of one unique on one connection share a handle
 * (docs/gearmand-behaviour.md#coalescing).
 */
type Entry = JobControl | JobControl[];

/**
 * The foreground jobs created on one connection, by handle: where WORK_* packets find their jobs.
 * Two submits of one unique on one connection get the same handle and each its own WORK_COMPLETE
 * (docs/gearmand-behaviour.md#coalescing), so a handle maps to one job or a list; the common single
 * job costs no array.
 */
export class JobTable {
  private readonly byHandle = new Map<string, Entry>();
  /**
   * Submits of this connection that stopped waiting (timeout, abort, cancel) while gearmand still
   * counts them among the job's waiting clients, by handle: until the job ends on the server
   * (WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION reach every submit of a handle) or the connection
   * goes. The canceller compares them with GET_STATUS_UNIQUE's count to tell whether anyone else
   * still waits.
   */
  private readonly detachedByHandle = new Map<string, number>();

  get size(): number {
    return this.byHandle.size;
  }

  has(handle: string): boolean {
    return this.byHandle.has(handle);
  }

  /** Submits of this connection on `handle` that stopped waiting but that gearmand still counts. */
  detached(handle: string): number {
    return this.detachedByHandle.get(handle) ?? 0;
  }

  /** A foreground submit whose JOB_CREATED came after it stopped waiting: gearmand counts it as a client. */
  addDetached(handle: string): void {
    this.detachedByHandle.set(handle, this.detached(handle) + 1);
  }

  add(handle: string, job: JobControl): void {
    const entry = this.byHandle.get(handle);
    if (entry === undefined) this.byHandle.set(handle, job);
    else if (Array.isArray(entry)) entry.push(job);
    else this.byHandle.set(handle, [entry, job]);
  }

  /** Calls `fn(job, a, b)` for each job of `handle` (arguments passed through: no closure per packet). */
  each<A, B>(handle: string, fn: (job: JobControl, a: A, b: B) => void, a: A, b: B): void {
    const entry = this.byHandle.get(handle);
    if (entry === undefined) return;
    if (!Array.isArray(entry)) fn(entry, a, b);
    else for (const job of entry.slice()) fn(job, a, b);
  }

  /** Removes `handle` and calls `fn(job, a, b)` for each of its jobs (the job ended on the server). */
  end<A, B>(handle: string, fn: (job: JobControl, a: A, b: B) => void, a: A, b: B): void {
    if (this.detachedByHandle.size !== 0) this.detachedByHandle.delete(handle);
    const entry = this.byHandle.get(handle);
    if (entry === undefined) return;
    this.byHandle.delete(handle);
    if (!Array.isArray(entry)) fn(entry, a, b);
    else for (const job of entry) fn(job, a, b);
  }

  /**
   * Stops tracking one job (it settled on its own: timeout, abort, cancel); others of its handle
   * stay. gearmand still counts the job's submit until the job ends there: it is kept as detached.
   */
  remove(handle: string, job: JobControl): void {
    const entry = this.byHandle.get(handle);
    if (entry === job) this.byHandle.delete(handle);
    else if (Array.isArray(entry) && entry.includes(job)) {
      const rest = entry.filter((j) => j !== job);
      if (rest.length === 0) this.byHandle.delete(handle);
      else this.byHandle.set(handle, rest.length === 1 ? rest[0] : rest);
    } else return;
    this.addDetached(handle);
  }

  /** Removes and returns every job (the connection is gone). */
  drain(): JobControl[] {
    const jobs = [...this.byHandle.values()].flat();
    this.byHandle.clear();
    this.detachedByHandle.clear();
    return jobs;
  }
}
