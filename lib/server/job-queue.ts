/**
 * The embedded job server's jobs and per-function queues: one FIFO per priority, linked through
 * the jobs themselves, so queueing and taking a job cost O(1) with no scan; epoch jobs not yet due
 * wait in a heap apart, so they are never stepped over one by one.
 * For development and tests; production stays on gearmand.
 */
import type { PacketArg } from '../protocol/encoder.js';

export const HIGH = 0;
export const NORMAL = 1;
export const LOW = 2;
export type Priority = typeof HIGH | typeof NORMAL | typeof LOW;

/** What the job table needs of a connection: where to send, and its `exceptions` option. */
export interface Peer {
  send(type: number, args: readonly PacketArg[]): void;
  readonly exceptions: boolean;
  /** Foreground submits of this connection still attached to a job. */
  readonly clients: Set<Client>;
}

/** One foreground submit waiting for its job (gearmand's `gearman_server_client_st`). */
export class Client {
  constructor(
    readonly peer: Peer,
    public job: Job | null,
  ) {}
}

/** One CAN_DO of one connection (gearmand's `gearman_server_worker_st`): a connection may hold several for a function. */
export class Registration {
  /** Jobs this registration is running, oldest first. */
  readonly jobs = new Set<Job>();
  constructor(
    readonly peer: Peer,
    readonly fn: GearmanFunction,
    /** CAN_DO_TIMEOUT in milliseconds; 0 for none. */
    public timeout: number,
  ) {}
}

/** The clients of a job that has none: shared, never written to. */
export const NO_CLIENTS: Client[] = Object.freeze([]) as unknown as Client[];

export class Job {
  /** Position in its function's queue order (creation or requeue); merges due epoch jobs into the NORMAL queue. */
  seq = 0;
  /** The next job in the same FIFO. */
  next: Job | null = null;
  /**
   * Foreground submits waiting for it, oldest first (gearmand forwards to the newest first).
   * Background jobs share the empty {@link NO_CLIENTS} until a client merges onto them.
   */
  clients: Client[] = NO_CLIENTS;
  /** Registration running it, or null while queued. */
  worker: Registration | null = null;
  retries = 0;
  /** gearmand's `ignore_job`: dropped at the next GRAB that reaches it (last client left, or `cancel job`). */
  ignore = false;
  /** gearmand's `job_queued`: set for background jobs, cleared by `cancel job` or the last client leaving. */
  queued: boolean;
  numerator = 0;
  denominator = 0;
  /** 0: not an epoch job or due; 1: waiting in the epoch heap; 2: due, waiting in the function's due heap. */
  epochState = 0;

  constructor(
    /** Creation number (the `n` of `H:host:n`); orders jobs within a hash bucket. */
    readonly id: number,
    readonly handle: string,
    /** The handle as the writer takes it (the string when it is ASCII). */
    readonly handleArg: PacketArg,
    readonly fn: GearmanFunction,
    /** The unique as submitted (latin1 of its bytes; '' for none). */
    readonly unique: string,
    /** The unique as gearmand stores and sends it (cut to 63 bytes). */
    readonly uniqueArg: PacketArg,
    /** Key in the function's coalescing map, or undefined when the job never merges. */
    readonly uniqueKey: string | undefined,
    readonly reducer: Buffer,
    readonly data: Buffer,
    readonly priority: Priority,
    /** SUBMIT_JOB_EPOCH time in seconds, 0 for none. */
    readonly when: number,
    background: boolean,
  ) {
    this.queued = background;
  }
}

/** Binary min-heap over jobs. */
class JobHeap {
  private readonly items: Job[] = [];
  constructor(private readonly before: (a: Job, b: Job) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): Job | undefined {
    return this.items[0];
  }

  push(job: Job): void {
    const items = this.items;
    let i = items.push(job) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Job | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.before(items[l], items[m])) m = l;
        if (r < items.length && this.before(items[r], items[m])) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m], items[i]];
        i = m;
      }
    }
    return top;
  }

  /** Every job, in no particular order. */
  all(): readonly Job[] {
    return this.items;
  }

  clear(): void {
    this.items.length = 0;
  }
}

/** Epoch jobs not yet due, earliest first (ties in submit order). */
export function epochHeap(): JobHeap {
  return new JobHeap((a, b) => a.when < b.when || (a.when === b.when && a.seq < b.seq));
}

export type { JobHeap };

/** A function (gearmand's `gearman_server_function_st`): its queues, counters, workers and uniques. */
export class GearmanFunction {
  private readonly heads: (Job | null)[] = [null, null, null];
  private readonly tails: (Job | null)[] = [null, null, null];
  /** Due epoch jobs, by queue position, taken in turn with the NORMAL FIFO. */
  private readonly due = new JobHeap((a, b) => a.seq < b.seq);
  /** Queued jobs per priority, not-yet-due epoch jobs included (what `prioritystatus` shows). */
  readonly queuedByPriority = [0, 0, 0];
  /** Queued jobs (gearmand's `job_count`). */
  queued = 0;
  /** Queued plus running (`job_total`, what `status` and `maxqueue` count). */
  total = 0;
  running = 0;
  /** Registrations, in the order made (gearmand's ring). */
  readonly workers: Registration[] = [];
  /** Connections asleep (PRE_SLEEP) with no NOOP sent yet, in the order they fell asleep. */
  readonly sleepers = new Set<Peer>();
  /** Jobs that coalesce, by unique (or by payload for the unique `-`). */
  readonly byUnique = new Map<string, Job>();
  /** `maxqueue` limits per priority; 0 is unlimited. */
  readonly maxQueue = [0, 0, 0];
  /** Bytes of the JOB_ASSIGN* header and arguments besides handle, unique and reducer (for gearmand's 8 KiB send buffer). */
  readonly assignOverhead: number;

  constructor(
    readonly name: string,
    readonly nameBuf: Buffer,
    /** Creation order, for the admin listings. */
    readonly id: number,
    /** gearmand's bucket of this name. */
    readonly bucket: number,
  ) {
    this.assignOverhead = 12 + nameBuf.length + 1;
  }

  /** Appends a due job (new, requeued or fallen due) to its priority's queue. */
  push(job: Job, seq: number): void {
    job.seq = seq;
    job.next = null;
    const p = job.priority;
    const tail = this.tails[p];
    if (tail === null) this.heads[p] = job;
    else tail.next = job;
    this.tails[p] = job;
  }

  /** Counts a new or requeued job as queued (whether due or waiting for its epoch). */
  countQueued(job: Job): void {
    this.queued++;
    this.queuedByPriority[job.priority]++;
  }

  /** An epoch job fell due: it takes its place in the NORMAL queue by its position. */
  pushDue(job: Job): void {
    job.epochState = 2;
    this.due.push(job);
  }

  /** Whether a job of this priority can be taken now. */
  has(priority: Priority): boolean {
    return this.heads[priority] !== null || (priority === NORMAL && this.due.size > 0);
  }

  /** The job `take(priority)` would return, without taking it. */
  peek(priority: Priority): Job | null {
    const head = this.heads[priority];
    if (priority !== NORMAL) return head;
    const due = this.due.peek();
    if (due === undefined) return head;
    return head === null || due.seq < head.seq ? due : head;
  }

  /** Takes the first job of a priority (due epoch jobs in their queue position); null if none. */
  take(priority: Priority): Job | null {
    const job = this.peek(priority);
    if (job === null) return null;
    if (job.epochState === 2) {
      this.due.pop();
      job.epochState = 0;
    } else {
      this.heads[priority] = job.next;
      if (job.next === null) this.tails[priority] = null;
      job.next = null;
    }
    this.queued--;
    this.queuedByPriority[priority]--;
    return job;
  }

  /** Every queued job (not running), for `drop function`. */
  queuedJobs(epochWaiting: Iterable<Job>): Job[] {
    const out: Job[] = [];
    for (const head of this.heads) for (let j = head; j !== null; j = j.next) out.push(j);
    out.push(...this.due.all());
    for (const j of epochWaiting) if (j.fn === this) out.push(j);
    return out;
  }
}
