/**
 * The job table of the embedded server: functions, jobs, uniques, workers and their wake-ups,
 * as gearmand 1.1.20 keeps them (libgearman-server/job.cc, worker.cc, client.cc, gearmand_con.cc),
 * without the sockets (connection.ts) or the admin text (admin.ts).
 * For development and tests; production stays on gearmand.
 */
import { createHash } from 'node:crypto';
import type { PacketArg } from '../protocol/encoder.js';
import { PacketType } from '../protocol/packet-types.js';
import { GEARMAND_HASH_SIZE, gearmandHash } from './hash.js';
import {
  Client,
  epochHeap,
  GearmanFunction,
  HIGH,
  Job,
  type JobHeap,
  LOW,
  NO_CLIENTS,
  NORMAL,
  type Peer,
  type Priority,
  Registration,
} from './job-queue.js';
import type { GearmanServerLogLevel, ResolvedServerOptions } from './options.js';

/** A connection as the job table sees it: a peer that may also be a worker. */
export interface ServerPeer extends Peer {
  /** Its CAN_DOs, the most recent first (gearmand's `worker_list`). */
  readonly registrations: Registration[];
  /** Sent PRE_SLEEP and found nothing to do; cleared by a GRAB. */
  sleeping: boolean;
  /** A NOOP went out since its last GRAB (gearmand sends one per sleep). */
  noopSent: boolean;
  /** The CAN_DO_TIMEOUT timer, if one exists (it may have fired already). */
  timer: NodeJS.Timeout | null;
  /** The job the timer requeues when it fires. */
  timerJob: Job | null;
  timerMs: number;
  /** Some CAN_DO_TIMEOUT with a timeout was registered (until then a GRAB arms nothing). */
  hasTimeouts: boolean;
}

/** gearmand's `GEARMAND_JOB_HANDLE_SIZE` less the NUL. */
const MAX_HANDLE = 63;
/** A unique longer than this is refused with ARGUMENT_TOO_LARGE (`GEARMAN_UNIQUE_SIZE`). */
export const MAX_UNIQUE = 64;
/** A unique is stored in 64 bytes with its NUL: 64 bytes are cut to 63 (and so never match). */
const STORED_UNIQUE = 63;
/** gearmand's send buffer: a JOB_ASSIGN* whose header and arguments do not fit drops the worker connection. */
export const GEARMAND_BUFFER = 8192;

const EMPTY = Buffer.alloc(0);
const DASH = 0x2d;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export class JobServer {
  /** By name (latin1 of the bytes). */
  readonly functions = new Map<string, GearmanFunction>();
  /** By creation number (the `n` of the handle), oldest first. */
  readonly jobs = new Map<number, Job>();
  /** Jobs whose handle was cut at 63 bytes (an absurdly long prefix), by handle: their number is not at the end. */
  private readonly cutHandles = new Map<string, Job>();
  /** Epoch jobs not yet due, of every function. */
  private readonly epochWaiting: JobHeap = epochHeap();
  private epochTimer: NodeJS.Timeout | null = null;
  private epochTimerAt = 0;
  private handleCount = 1;
  private functionCount = 0;
  private seq = 0;
  /** Jobs held and their payload bytes (the maxQueue / maxQueueBytes bounds). */
  private held = 0;
  private heldBytes = 0;
  private readonly prefix: string;
  private readonly asciiHandles: boolean;
  private closed = false;
  /** The priority of the registration {@link source} returned last. */
  private sourcePriority: Priority = NORMAL;

  constructor(
    readonly options: ResolvedServerOptions,
    private readonly log: (level: GearmanServerLogLevel, message: string) => void,
  ) {
    this.prefix = options.jobHandlePrefix;
    this.asciiHandles = /^[\x20-\x7e]*$/.test(this.prefix);
  }

  // ---------------------------------------------------------------------------------------------
  // Functions

  /** gearmand's `gearman_server_function_get`: found by exact bytes, created when missing. */
  functionFor(name: Buffer, key = name.toString('latin1')): GearmanFunction {
    let fn = this.functions.get(key);
    if (fn === undefined) {
      const own = Buffer.from(name);
      fn = new GearmanFunction(key, own, ++this.functionCount, gearmandHash(own) % GEARMAND_HASH_SIZE);
      this.functions.set(key, fn);
    }
    return fn;
  }

  /** Functions in the order gearmand lists them: by hash bucket, the newest first within one. */
  functionsInGearmandOrder(): GearmanFunction[] {
    return [...this.functions.values()].sort((a, b) => a.bucket - b.bucket || b.id - a.id);
  }

  /**
   * `drop function`: gone with its queued jobs. gearmand frees the function and leaves its queued
   * jobs behind, never to run (their clients wait forever); here they are failed instead.
   */
  dropFunction(fn: GearmanFunction): void {
    for (const job of fn.queuedJobs(this.epochWaiting.all())) {
      for (let i = job.clients.length - 1; i >= 0; i--) job.clients[i].peer.send(PacketType.WORK_FAIL, [job.handleArg]);
      this.free(job);
    }
    this.functions.delete(fn.name);
  }

  // ---------------------------------------------------------------------------------------------
  // Submits

  /**
   * gearmand's `gearman_server_job_add_reducer`: merges onto a job of the same function and unique,
   * or creates one (queued, sleeping workers woken). `client`: the submitting connection for a
   * foreground job, undefined for a background one. The caller has checked the unique's length.
   * Null when the queue is full (maxqueue, maxQueue or maxQueueBytes): gearmand's QUEUE_ERROR.
   */
  submit(
    client: Peer | undefined,
    fn: GearmanFunction,
    /** latin1 of the unique's bytes ('' for none). */
    u: string,
    reducer: Buffer,
    data: Buffer,
    priority: Priority,
    when: number,
  ): Job | null {
    const key = coalesceKey(u, data);
    let job = key === undefined ? undefined : fn.byUnique.get(key);
    if (job === undefined) {
      const limit = fn.maxQueue[priority];
      if ((limit > 0 && fn.total >= limit) || this.held >= this.options.maxQueue) return null;
      if (this.heldBytes + data.length > this.options.maxQueueBytes) return null;
      const id = this.handleCount++;
      let handle = `${this.prefix}:${id}`;
      let handleArg: PacketArg = handle;
      let cut = false;
      if (!this.asciiHandles || handle.length > MAX_HANDLE) {
        const bytes = Buffer.from(handle);
        cut = bytes.length > MAX_HANDLE;
        handle = bytes.toString('latin1', 0, MAX_HANDLE);
        handleArg = bytes.subarray(0, MAX_HANDLE);
      }
      job = new Job(
        id,
        handle,
        handleArg,
        fn,
        u,
        storedUnique(u),
        key,
        reducer.length === 0 ? EMPTY : Buffer.from(reducer),
        data,
        priority,
        when,
        client === undefined,
      );
      fn.total++;
      this.held++;
      this.heldBytes += data.length;
      this.jobs.set(id, job);
      if (cut) this.cutHandles.set(handle, job);
      if (key !== undefined) fn.byUnique.set(key, job);
      this.enqueue(job);
    }
    if (client !== undefined) {
      const record = new Client(client, job);
      if (job.clients === NO_CLIENTS) job.clients = [record];
      else job.clients.push(record);
      client.clients.add(record);
    }
    return job;
  }

  // ---------------------------------------------------------------------------------------------
  // Queueing

  /** The tail of gearmand's `gearman_server_job_queue`: wake sleeping workers, then queue. */
  private enqueue(job: Job): void {
    const fn = job.fn;
    this.wake(fn);
    fn.countQueued(job);
    if (job.when !== 0 && job.when > nowSeconds()) {
      job.seq = ++this.seq;
      job.epochState = 1;
      this.epochWaiting.push(job);
      if (this.options.epochWakeup) this.scheduleEpoch();
    } else {
      fn.push(job, ++this.seq);
    }
  }

  /**
   * A running job goes back to its queue (its worker left, gave up the function, or timed out):
   * retries + 1, status reset, same handle; dropped with WORK_FAIL to its clients when the retry
   * limit is reached (docs/gearmand-behaviour.md#lost-workers).
   */
  requeue(job: Job): void {
    const reg = job.worker;
    if (reg === null) return;
    job.retries++;
    const limit = this.options.jobRetries;
    if (limit !== 0 && limit === job.retries) {
      this.log('NOTICE', `Dropped job due to max retry count: ${job.handle} ${job.unique}`);
      for (let i = job.clients.length - 1; i >= 0; i--) job.clients[i].peer.send(PacketType.WORK_FAIL, [job.handleArg]);
      this.free(job);
      return;
    }
    reg.jobs.delete(job);
    job.worker = null;
    job.fn.running--;
    job.numerator = 0;
    job.denominator = 0;
    this.enqueue(job);
  }

  /** NOOP to the function's sleeping workers (all, or `workerWakeup` of them); one per sleep. */
  private wake(fn: GearmanFunction): void {
    if (fn.sleepers.size === 0) return;
    const max = this.options.workerWakeup;
    let sent = 0;
    for (const peer of fn.sleepers as Set<ServerPeer>) {
      peer.send(PacketType.NOOP, []);
      peer.noopSent = true;
      this.forgetSleeper(peer);
      if (max > 0 && ++sent >= max) break;
    }
  }

  /** Takes a connection out of every function's set of sleepers. */
  forgetSleeper(peer: ServerPeer): void {
    for (const reg of peer.registrations) reg.fn.sleepers.delete(peer);
  }

  /** PRE_SLEEP found nothing: the connection sleeps until a job of one of its functions comes. */
  sleep(peer: ServerPeer): void {
    peer.sleeping = true;
    if (!peer.noopSent) for (const reg of peer.registrations) reg.fn.sleepers.add(peer);
  }

  // ---------------------------------------------------------------------------------------------
  // Epoch jobs

  /** Moves the epoch jobs whose second has come into their queues; with `wake`, sleeping workers hear of them. */
  private promoteDue(wake: boolean): void {
    const heap = this.epochWaiting;
    if (heap.size === 0) return;
    const now = nowSeconds();
    for (let top = heap.peek(); top !== undefined && top.when <= now; top = heap.peek()) {
      heap.pop();
      if (top.epochState !== 1 || this.jobs.get(top.id) !== top) continue;
      top.fn.pushDue(top);
      if (wake) this.wake(top.fn);
    }
  }

  /** One timer for the whole server: the earliest epoch job's second (gearmand 2.0.0's wake-up). */
  private scheduleEpoch(): void {
    const top = this.epochWaiting.peek();
    if (top === undefined || this.closed) return;
    const at = top.when * 1000;
    if (this.epochTimer !== null && this.epochTimerAt <= at) return;
    if (this.epochTimer !== null) clearTimeout(this.epochTimer);
    this.epochTimerAt = at;
    this.epochTimer = setTimeout(
      () => {
        this.epochTimer = null;
        this.promoteDue(true);
        this.scheduleEpoch();
      },
      Math.max(0, at - Date.now()),
    );
    this.epochTimer.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // Workers

  /** CAN_DO / CAN_DO_TIMEOUT: one more registration (gearmand keeps duplicates, and counts them). */
  register(peer: ServerPeer, name: Buffer, timeout: number): void {
    const fn = this.functionFor(name);
    const reg = new Registration(peer, fn, timeout);
    peer.registrations.unshift(reg);
    if (timeout > 0) peer.hasTimeouts = true;
    fn.workers.push(reg);
    if (peer.sleeping && !peer.noopSent) fn.sleepers.add(peer);
  }

  /** CANT_DO (`name`) or RESET_ABILITIES / disconnect (all): the registrations go, their running jobs are requeued. */
  unregister(peer: ServerPeer, name?: string): void {
    const regs = peer.registrations;
    for (let i = 0; i < regs.length;) {
      const reg = regs[i];
      if (name !== undefined && reg.fn.name !== name) {
        i++;
        continue;
      }
      // gearmand requeues the most recently assigned first (its job list is built at the head).
      for (const job of [...reg.jobs].reverse()) this.requeue(job);
      regs.splice(i, 1);
      const ring = reg.fn.workers;
      ring.splice(ring.indexOf(reg), 1);
      if (!regs.some((r) => r.fn === reg.fn)) reg.fn.sleepers.delete(peer);
    }
  }

  /**
   * Where a GRAB of this connection would take from: the registration, or null; its priority is
   * left in {@link sourcePriority} (no object per GRAB).
   */
  private source(peer: ServerPeer): Registration | null {
    const regs = peer.registrations;
    if (this.options.globalPriority) {
      for (let p = HIGH; p <= LOW; p++) {
        for (let i = 0; i < regs.length; i++) {
          if (regs[i].fn.has(p as Priority)) {
            this.sourcePriority = p as Priority;
            return regs[i];
          }
        }
      }
      return null;
    }
    for (let i = 0; i < regs.length; i++) {
      const fn = regs[i].fn;
      if (fn.queued === 0) continue;
      const p = fn.has(HIGH) ? HIGH : fn.has(NORMAL) ? NORMAL : fn.has(LOW) ? LOW : -1;
      if (p < 0) continue;
      this.sourcePriority = p as Priority;
      return regs[i];
    }
    return null;
  }

  /**
   * GRAB_JOB*: the next job for this connection, now running on it, or null. Jobs marked ignored
   * are dropped on the way (docs/gearmand-behaviour.md#lost-clients).
   */
  take(peer: ServerPeer): Job | null {
    this.promoteDue(false);
    for (;;) {
      const reg = this.source(peer);
      if (reg === null) return null;
      const job = reg.fn.take(this.sourcePriority)!;
      if (this.options.roundRobin) {
        const regs = peer.registrations;
        regs.splice(regs.indexOf(reg), 1);
        regs.push(reg);
      }
      job.worker = reg;
      reg.jobs.add(job);
      reg.fn.running++;
      if (job.ignore) {
        this.free(job);
        continue;
      }
      this.armTimeout(peer, job);
      return job;
    }
  }

  /** PRE_SLEEP: whether a job waits for this connection (ignored jobs in the way are dropped). */
  hasWork(peer: ServerPeer): boolean {
    this.promoteDue(false);
    for (;;) {
      const reg = this.source(peer);
      if (reg === null) return false;
      const job = reg.fn.peek(this.sourcePriority)!;
      if (!job.ignore) return true;
      reg.fn.take(this.sourcePriority);
      this.free(job);
    }
  }

  /**
   * A job by its handle's bytes (as C compares them, up to a NUL), without building a string: the
   * number at the end of the handle finds the job, then the whole handle must match.
   */
  find(bytes: Buffer, start = 0, end = bytes.length): Job | undefined {
    let id = 0;
    let scale = 1;
    let i = end - 1;
    for (; i >= start && scale < 1e15; i--) {
      const c = bytes[i];
      if (c < 0x30 || c > 0x39) break;
      id += (c - 0x30) * scale;
      scale *= 10;
    }
    const job = i < end - 1 ? this.jobs.get(id) : undefined;
    if (job !== undefined && sameHandle(job.handle, bytes, start, end)) return job;
    return this.cutHandles.size === 0 ? undefined : this.cutHandles.get(bytes.toString('latin1', start, end));
  }

  /** A job this connection runs, by handle (WORK_* from anyone else gets JOB_NOT_FOUND). */
  runningOn(peer: ServerPeer, bytes: Buffer, start = 0, end = bytes.length): Job | undefined {
    const job = this.find(bytes, start, end);
    return job !== undefined && job.worker !== null && job.worker.peer === peer ? job : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // CAN_DO_TIMEOUT (docs/gearmand-behaviour.md#can_do_timeout)

  private armTimeout(peer: ServerPeer, job: Job): void {
    if (peer.timer === null && !peer.hasTimeouts) return;
    const regs = peer.registrations;
    let reg: Registration | undefined;
    for (let i = 0; i < regs.length && reg === undefined; i++) if (regs[i].fn === job.fn) reg = regs[i];
    if (reg === undefined) return;
    if (reg.timeout <= 0) {
      if (peer.timer !== null) this.clearTimeout(peer);
      return;
    }
    if (reg.timeout < 1000) reg.timeout = 1000;
    if (peer.timer === null || this.options.canDoTimeout === 'current-job') peer.timerJob = job;
    if (peer.timer !== null && peer.timerMs === reg.timeout) {
      peer.timer.refresh();
      return;
    }
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timerMs = reg.timeout;
    peer.timer = setTimeout(() => this.timedOut(peer), reg.timeout);
    peer.timer.unref();
  }

  private timedOut(peer: ServerPeer): void {
    const job = peer.timerJob;
    // gearmand 1.1.20 keeps a pointer to a job that may be gone (and can hang, gearmand#301): here a
    // finished job, or one no longer on this connection, is simply not requeued.
    if (job === null || job.worker === null || job.worker.peer !== peer || this.jobs.get(job.id) !== job) return;
    this.log('WARNING', `Worker timeout reached on job, requeueing: ${job.handle} ${job.unique}`);
    this.requeue(job);
  }

  /** PRE_SLEEP with nothing to do, or a disconnect: the timer goes. */
  clearTimeout(peer: ServerPeer): void {
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
    peer.timerJob = null;
  }

  // ---------------------------------------------------------------------------------------------
  // Results, status, cancel

  /** Sends a packet to every client of the job, the newest first (gearmand's list order). */
  forward(job: Job, type: number, args: readonly PacketArg[]): void {
    const clients = job.clients;
    for (let i = clients.length - 1; i >= 0; i--) clients[i].peer.send(type, args);
  }

  /** WORK_EXCEPTION: as is to clients with the exceptions option, `WORK_FAIL "handle\0"` to the others. */
  forwardException(job: Job, handleArg: Buffer, data: Buffer): void {
    const clients = job.clients;
    let fail: Buffer | undefined;
    for (let i = clients.length - 1; i >= 0; i--) {
      const peer = clients[i].peer;
      if (peer.exceptions) peer.send(PacketType.WORK_EXCEPTION, [handleArg, data]);
      else peer.send(PacketType.WORK_FAIL, [(fail ??= Buffer.concat([handleArg, Buffer.alloc(1)]))]);
    }
  }

  /** gearmand's `gearman_server_job_free`: the job is gone, its clients forgotten. */
  free(job: Job): void {
    const fn = job.fn;
    const reg = job.worker;
    if (reg !== null) {
      fn.running--;
      reg.jobs.delete(job);
      job.worker = null;
    }
    fn.total--;
    this.held--;
    this.heldBytes -= job.data.length;
    const clients = job.clients;
    if (clients.length > 0) {
      for (let i = 0; i < clients.length; i++) {
        clients[i].peer.clients.delete(clients[i]);
        clients[i].job = null;
      }
      job.clients = NO_CLIENTS;
    }
    this.jobs.delete(job.id);
    if (this.cutHandles.size !== 0 && this.cutHandles.get(job.handle) === job) this.cutHandles.delete(job.handle);
    if (job.uniqueKey !== undefined && fn.byUnique.get(job.uniqueKey) === job) fn.byUnique.delete(job.uniqueKey);
    job.epochState = 0;
  }

  /** GET_STATUS_UNIQUE: the job gearmand finds for a unique, across all functions (the newest). */
  findByUnique(unique: Buffer): Job | undefined {
    // gearmand files `-` jobs under their payload's hash, so `-` finds none (nor does an empty unique).
    if (unique.length === 0 || (unique.length === 1 && unique[0] === DASH)) return undefined;
    const key = unique.toString('latin1');
    let found: Job | undefined;
    for (const fn of this.functions.values()) {
      const job = fn.byUnique.get(key);
      if (job !== undefined && (found === undefined || job.id > found.id)) found = job;
    }
    return found;
  }

  /** A connection closed: its running jobs are requeued, its foreground jobs lose it as a client. */
  disconnect(peer: ServerPeer): void {
    this.clearTimeout(peer);
    this.forgetSleeper(peer);
    this.unregister(peer);
    this.detachClients(peer);
  }

  /**
   * The connection's foreground submits are gone. A job left without clients is marked to be
   * ignored: dropped at the next GRAB if queued, its result dropped if running
   * (docs/gearmand-behaviour.md#lost-clients).
   */
  private detachClients(peer: Peer): void {
    const records = [...peer.clients].reverse();
    peer.clients.clear();
    for (const record of records) {
      const job = record.job;
      record.job = null;
      if (job === null) continue;
      const i = job.clients.indexOf(record);
      if (i >= 0) job.clients.splice(i, 1);
      if (job.clients.length === 0) {
        job.ignore = true;
        job.queued = false;
      }
    }
  }

  /** Admin `cancel job` (docs/gearmand-behaviour.md#cancelling): clients get WORK_FAIL, the job is marked. */
  cancel(handle: string): boolean {
    const job = this.find(Buffer.from(handle, 'latin1'));
    if (job === undefined) return false;
    for (let i = job.clients.length - 1; i >= 0; i--) job.clients[i].peer.send(PacketType.WORK_FAIL, [job.handleArg]);
    job.ignore = true;
    job.queued = false;
    return true;
  }

  /** The hash gearmand files a job's unique under (the order of `show unique jobs`). */
  uniqueHash(job: Job): number {
    const u = job.unique;
    if (u.length === 0) return 0;
    if (u === '-') return job.data.length === 0 ? 0 : gearmandHash(job.data);
    return gearmandHash(Buffer.from(u, 'latin1'));
  }

  close(): void {
    this.closed = true;
    if (this.epochTimer !== null) clearTimeout(this.epochTimer);
    this.epochTimer = null;
  }
}

function sameHandle(handle: string, bytes: Buffer, start: number, end: number): boolean {
  if (handle.length !== end - start) return false;
  for (let i = start; i < end; i++) if (handle.charCodeAt(i - start) !== bytes[i]) return false;
  return true;
}

/** The unique as gearmand stores it (cut to 63 bytes), as the writer takes it: the string when it is ASCII. */
function storedUnique(u: string): PacketArg {
  if (u.length === 0) return '';
  const stored = u.length > STORED_UNIQUE ? u.slice(0, STORED_UNIQUE) : u;
  for (let i = 0; i < stored.length; i++) if (stored.charCodeAt(i) > 0x7f) return Buffer.from(stored, 'latin1');
  return stored;
}

/**
 * What a job coalesces by (docs/gearmand-behaviour.md#coalescing): its unique; for the unique `-`,
 * its payload; nothing for an empty unique, an empty payload under `-`, or a 64-byte unique (which
 * gearmand stores cut to 63 bytes and never matches again).
 */
function coalesceKey(unique: string, data: Buffer): string | undefined {
  const n = unique.length;
  if (n === 0 || n > STORED_UNIQUE) return undefined;
  if (unique === '-') {
    if (data.length === 0) return undefined;
    // NUL cannot start a unique (it ends one), so these keys never meet a real unique.
    if (data.length <= 256) return `\0${data.toString('latin1')}`;
    return `\0\0${data.length}:${createHash('sha256').update(data).digest('base64')}`;
  }
  return unique;
}
