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

  get size(): number {
    return this.byHandle.size;
  }

  has(handle: string): boolean {
    return this.byHandle.has(handle);
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
    const entry = this.byHandle.get(handle);
    if (entry === undefined) return;
    this.byHandle.delete(handle);
    if (!Array.isArray(entry)) fn(entry, a, b);
    else for (const job of entry) fn(job, a, b);
  }

  /** Stops tracking one job (it settled on its own: timeout, abort, cancel); others of its handle stay. */
  remove(handle: string, job: JobControl): void {
    const entry = this.byHandle.get(handle);
    if (entry === job) this.byHandle.delete(handle);
    else if (Array.isArray(entry)) {
      const rest = entry.filter((j) => j !== job);
      if (rest.length === 0) this.byHandle.delete(handle);
      else this.byHandle.set(handle, rest.length === 1 ? rest[0] : rest);
    }
  }

  /** Removes and returns every job (the connection is gone). */
  drain(): JobControl[] {
    const jobs = [...this.byHandle.values()].flat();
    this.byHandle.clear();
    return jobs;
  }
}
