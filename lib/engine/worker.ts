import { EventEmitter } from 'node:events';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { type Packet, type PacketArg, PacketType } from '../protocol/index.js';
import type { BackoffOptions } from './backoff.js';
import { connectAny, GearmanConnection } from './connection.js';
import { GearmanConnectionError, GearmanError, invalidArgument } from './errors.js';
import { resolveServers, type ServerSpec } from './servers.js';

/** How a failed handler is reported: WORK_EXCEPTION (with the error) or a plain WORK_FAIL. */
export type ErrorMode = 'exception' | 'fail';

export interface GearmanWorkerOptions {
  /** gearmand servers (default `127.0.0.1:4730`); the worker connects to all of them. */
  servers?: ServerSpec | ServerSpec[];
  tls?: boolean | TlsConnectionOptions;
  /** Milliseconds to wait for a connection (default 5000). */
  connectTimeout?: number;
  reconnect?: BackoffOptions | false;
  /** SET_CLIENT_ID, shown by `gearadmin --workers` (sent again after every reconnect). */
  clientId?: string;
  /** Jobs run at once across all servers (default 1). The worker only GRABs when a slot is free. */
  maxJobs?: number;
  /** `uniq` (default): GRAB_JOB_UNIQ, handlers see the unique; `all`: GRAB_JOB_ALL, they see the reducer too. */
  grab?: 'uniq' | 'all';
  /**
   * Milliseconds between safety GRABs while asleep (default 5000): gearmand 1.1.20 wakes no worker
   * when a scheduled (epoch) job falls due (R7). 0 turns it off.
   */
  pollInterval?: number;
  /** How a throwing handler is reported (default `exception`; see README on foreign callers). */
  errorMode?: ErrorMode;
  maxPacketSize?: number;
}

export interface RegisterOptions {
  /**
   * CAN_DO_TIMEOUT in ms: gearmand requeues the job (it does not fail it) when it runs longer (R8).
   * gearmand keeps one timer per connection and clears it on PRE_SLEEP, which a worker with free
   * slots sends while a job runs: only a worker with `maxJobs: 1` can rely on it.
   */
  timeout?: number;
  /** Overrides the worker's `errorMode` for this function. */
  errorMode?: ErrorMode;
}

/** What a handler returns: the WORK_COMPLETE payload (nothing for an empty one). */
export type JobResult = Buffer | Uint8Array | string | undefined | null | void;
export type JobHandler = (job: WorkerJob) => JobResult | Promise<JobResult>;

interface Registration {
  handler: JobHandler;
  options: RegisterOptions;
}

export interface GearmanWorkerEvents {
  connected: [server: string];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
  /** A handler threw or rejected; the job was reported with WORK_EXCEPTION or WORK_FAIL. */
  jobError: [error: unknown, job: WorkerJob];
}

/** Per-connection grab state. */
class Slotted {
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
  constructor(readonly conn: GearmanConnection) {}
}

/** A job assigned to this worker. */
export class WorkerJob {
  private done = false;
  /** @internal the connection dropped: gearmand requeued the job, reports would go nowhere. */
  lost = false;

  constructor(
    private readonly slot: Slotted,
    readonly handle: string,
    readonly functionName: string,
    readonly unique: string,
    readonly payload: Buffer,
    /** GRAB_JOB_ALL only: the reducer function of a reduce job. */
    readonly reducer: string | undefined,
    private readonly onFinish: (job: WorkerJob) => void,
  ) {}

  /** `host:port` of the server that assigned the job. */
  get server(): string {
    return this.slot.conn.address;
  }

  /** True once complete, fail or exception was sent. */
  get finished(): boolean {
    return this.done;
  }

  /** WORK_DATA: a partial result streamed to the client. */
  sendData(data: PacketArg): void {
    this.report(PacketType.WORK_DATA, [this.handle, data]);
  }

  /** WORK_WARNING. */
  sendWarning(data: PacketArg): void {
    this.report(PacketType.WORK_WARNING, [this.handle, data]);
  }

  /** WORK_STATUS: progress as numerator/denominator (e.g. 3 of 10). */
  sendStatus(numerator: number, denominator: number): void {
    if (!Number.isFinite(numerator) || !Number.isFinite(denominator)) {
      throw invalidArgument(`sendStatus needs finite numbers, got ${numerator}/${denominator}`);
    }
    this.report(PacketType.WORK_STATUS, [this.handle, String(Math.trunc(numerator)), String(Math.trunc(denominator))]);
  }

  complete(data: PacketArg = EMPTY): void {
    this.end(PacketType.WORK_COMPLETE, [this.handle, data]);
  }

  /** WORK_FAIL: the job failed, no detail (every Gearman client understands it). */
  fail(): void {
    this.end(PacketType.WORK_FAIL, [this.handle]);
  }

  /** WORK_EXCEPTION: ends the job in gearmand 1.1.20, so no WORK_FAIL follows (R9). */
  exception(data: PacketArg): void {
    this.end(PacketType.WORK_EXCEPTION, [this.handle, data]);
  }

  private report(type: number, args: PacketArg[]): void {
    if (this.done) throw new GearmanError('JOB_FINISHED', `Job ${this.handle} (${this.functionName}) already ended: nothing more can be sent for it`);
    if (this.lost || !this.slot.conn.connected) return;
    this.slot.conn.send(type, args);
  }

  private end(type: number, args: PacketArg[]): void {
    this.report(type, args);
    this.done = true;
    this.onFinish(this);
  }
}

/**
 * Gearman worker over one or many gearmand servers: registers functions on every server (again
 * after each reconnect), runs at most `maxJobs` jobs at once, pipelines GRABs where slots allow and
 * sleeps with PRE_SLEEP when there is no work.
 */
export class GearmanWorker extends EventEmitter<GearmanWorkerEvents> {
  readonly connections: readonly GearmanConnection[];
  private readonly slots: Slotted[];
  private readonly functions = new Map<string, Registration>();
  private readonly running = new Set<WorkerJob>();
  private readonly maxJobs: number;
  private readonly grabType: number;
  private grabsOut = 0;
  private started = false;
  private stopping = false;
  private closed = false;
  private rotate = 0;
  private pumpScheduled = false;
  /** GRABs in flight on a connection that has just woken up (see Slotted.window). */
  private readonly wakeWindow: number;
  private pollTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: GearmanWorkerOptions = {}) {
    super();
    const maxJobs = options.maxJobs ?? 1;
    if (!Number.isInteger(maxJobs) || maxJobs < 1) throw invalidArgument(`maxJobs must be a whole number ≥ 1, got ${maxJobs}`);
    this.maxJobs = maxJobs;
    this.wakeWindow = Math.min(2, maxJobs);
    this.grabType = options.grab === 'all' ? PacketType.GRAB_JOB_ALL : PacketType.GRAB_JOB_UNIQ;
    const servers = resolveServers(options.servers, options.tls);
    this.slots = servers.map((server) => {
      const conn = new GearmanConnection(server, {
        connectTimeout: options.connectTimeout,
        reconnect: options.reconnect,
        maxPacketSize: options.maxPacketSize,
      });
      const slot = new Slotted(conn);
      conn.onConnect = () => this.onConnect(slot);
      conn.onPacket = (packet) => this.onPacket(slot, packet);
      conn.on('connected', (s) => {
        this.emit('connected', s);
        this.pump();
      });
      conn.on('disconnected', (s, e) => {
        this.onDisconnect(slot);
        this.emit('disconnected', s, e);
      });
      conn.on('reconnecting', (s, a, d) => this.emit('reconnecting', s, a, d));
      conn.on('drain', () => this.pump());
      conn.on('error', (e) => {
        if (this.listenerCount('error') > 0) this.emit('error', e);
      });
      return slot;
    });
    this.connections = this.slots.map((s) => s.conn);
  }

  get servers(): string[] {
    return this.connections.map((c) => c.address);
  }

  /** Jobs whose handlers are running. */
  get activeJobs(): number {
    return this.running.size;
  }

  /** Registered function names. */
  get functionNames(): string[] {
    return [...this.functions.keys()];
  }

  /** Registers a function (CAN_DO, or CAN_DO_TIMEOUT with `timeout` in ms) on every server. */
  register(functionName: string, handler: JobHandler, options: RegisterOptions = {}): this {
    if (typeof functionName !== 'string' || functionName === '' || functionName.includes('\0')) {
      throw invalidArgument(`Invalid function name ${JSON.stringify(functionName)}: use a non-empty string without NUL bytes`);
    }
    if (typeof handler !== 'function') throw invalidArgument(`The handler for ${functionName} must be a function`);
    if (options.timeout !== undefined && (!Number.isInteger(options.timeout) || options.timeout <= 0)) {
      throw invalidArgument(`timeout for ${functionName} must be whole milliseconds > 0 (gearmand raises values below 1000 to 1000)`);
    }
    this.functions.set(functionName, { handler, options });
    for (const slot of this.slots) {
      if (!slot.conn.connected) continue;
      this.sendCanDo(slot, functionName, options);
      slot.awake = true;
    }
    this.pump();
    return this;
  }

  /**
   * CANT_DO on every server. gearmand requeues jobs of that function this worker is running,
   * so their results will be refused: unregister when idle.
   */
  unregister(functionName: string): this {
    if (!this.functions.delete(functionName)) return this;
    for (const slot of this.slots) if (slot.conn.connected) slot.conn.send(PacketType.CANT_DO, [functionName]);
    return this;
  }

  /**
   * Connects to every server and starts taking jobs. Resolves once one server is connected;
   * rejects with NO_SERVER when none is within `connectTimeout` (retrying goes on in the background).
   */
  async start(): Promise<void> {
    if (this.closed) throw new GearmanConnectionError('CLOSED', 'The Gearman worker is closed: create a new one');
    if (!this.started) {
      this.started = true;
      for (const conn of this.connections) conn.start();
      const interval = this.options.pollInterval ?? 5000;
      if (interval > 0) {
        this.pollTimer = setInterval(() => this.poll(), interval);
        this.pollTimer.unref();
      }
    }
    await connectAny(this.connections, this.options.connectTimeout ?? 5000);
    await this.registered();
  }

  /**
   * Waits for an ECHO round trip on a connected server: gearmand handles a connection's packets in
   * order, so once it answers, the CAN_DOs sent before are registered (admin `status` and
   * `workers` show them) and `start()` means "ready" rather than "socket open".
   */
  private async registered(): Promise<void> {
    const conn = this.connections.find((c) => c.connected);
    if (!conn || this.functions.size === 0) return;
    // Bounded: a server that never answers ECHO still gets our jobs, start() just stops waiting.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      conn.call(PacketType.ECHO_REQ, [EMPTY]).catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, this.options.connectTimeout ?? 5000))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Graceful stop: no more GRABs, waits up to `timeout` ms (default 10 s) for running jobs, then
   * closes. Jobs still running then are left to gearmand, which requeues them (R3): none is lost.
   * Resolves with the number of jobs abandoned that way.
   */
  async close(timeout = 10_000): Promise<number> {
    if (this.closed) return 0;
    this.stopping = true;
    clearInterval(this.pollTimer);
    if (this.running.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.closed = true;
    const abandoned = this.running.size;
    for (const job of this.running) job.lost = true;
    await Promise.all(this.connections.map((c) => c.close()));
    return abandoned;
  }

  private onConnect(slot: Slotted): void {
    slot.grabs = 0;
    slot.awake = true;
    slot.sleeping = false;
    slot.window = this.wakeWindow;
    if (this.options.clientId) slot.conn.send(PacketType.SET_CLIENT_ID, [this.options.clientId]);
    for (const [name, reg] of this.functions) this.sendCanDo(slot, name, reg.options);
  }

  private sendCanDo(slot: Slotted, name: string, options: RegisterOptions): void {
    if (options.timeout !== undefined) {
      // Milliseconds in ASCII: what gearmand parses (several libraries send seconds or binary; R8).
      slot.conn.send(PacketType.CAN_DO_TIMEOUT, [name, String(options.timeout)]);
    } else {
      slot.conn.send(PacketType.CAN_DO, [name]);
    }
  }

  private onDisconnect(slot: Slotted): void {
    this.grabsOut -= slot.grabs;
    slot.grabs = 0;
    // gearmand requeues what this connection held (R3); the handlers may finish, but cannot report.
    for (const job of this.running) if (job.server === slot.conn.address) job.lost = true;
  }

  private onPacket(slot: Slotted, packet: Packet): void {
    switch (packet.type) {
      case PacketType.JOB_ASSIGN_UNIQ:
      case PacketType.JOB_ASSIGN_ALL:
      case PacketType.JOB_ASSIGN:
        this.grabAnswered(slot);
        // Grab ahead only while jobs are small: large payloads gain nothing from queueing up here
        // (their transfer is the work) and would crowd gearmand's and the sockets' buffers.
        slot.window = packet.args[packet.args.length - 1].length >= LARGE_JOB ? 1 : Math.min(this.maxJobs, slot.window * 2);
        this.runJob(slot, packet);
        break;
      case PacketType.NO_JOB:
        this.grabAnswered(slot);
        slot.awake = false;
        slot.window = 1;
        break;
      case PacketType.NOOP:
        slot.sleeping = false;
        slot.awake = true;
        slot.window = this.wakeWindow;
        break;
      case PacketType.ERROR:
        // E.g. JOB_NOT_FOUND for a result of a job gearmand had requeued after CAN_DO_TIMEOUT (R8).
        if (this.listenerCount('error') > 0) this.emit('error', slot.conn.serverError(packet));
        return;
      default:
        return;
    }
    this.schedulePump();
  }

  private grabAnswered(slot: Slotted): void {
    if (slot.grabs > 0) {
      slot.grabs--;
      this.grabsOut--;
    }
  }

  private sleepIfIdle(slot: Slotted): void {
    if (!slot.awake && slot.grabs === 0 && !slot.sleeping && slot.conn.connected) {
      slot.sleeping = true;
      slot.conn.send(PacketType.PRE_SLEEP, []);
    }
  }

  /**
   * pump() and PRE_SLEEP once the packets of the current read are all handled: a NO_JOB right
   * behind a JOB_ASSIGN must be seen before a finished job's slot is refilled with GRABs.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(this.runPump);
  }

  private readonly runPump = (): void => {
    this.pumpScheduled = false;
    try {
      this.pump();
      for (const slot of this.slots) this.sleepIfIdle(slot);
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
    }
  };

  /** Sends GRABs where slots are free, round the connections. */
  private pump(): void {
    if (this.stopping || this.functions.size === 0) return;
    let free = this.maxJobs - this.running.size - this.grabsOut;
    const n = this.slots.length;
    for (let i = 0; i < n && free > 0; i++) {
      const slot = this.slots[(this.rotate + i) % n];
      if (!slot.awake || !slot.conn.connected || slot.conn.congested) continue;
      const grabs = Math.min(free, slot.window - slot.grabs);
      for (let g = 0; g < grabs; g++) slot.conn.send(this.grabType, []);
      if (grabs > 0) {
        slot.grabs += grabs;
        this.grabsOut += grabs;
        free -= grabs;
      }
    }
    this.rotate = (this.rotate + 1) % n;
  }

  /** Safety GRAB on sleeping connections: epoch jobs falling due wake nobody in gearmand 1.1.20 (R7). */
  private poll(): void {
    if (this.stopping) return;
    for (const slot of this.slots) {
      if (slot.sleeping && slot.conn.connected) {
        slot.sleeping = false;
        slot.awake = true;
      }
    }
    this.pump();
  }

  private runJob(slot: Slotted, packet: Packet): void {
    // A job assigned to a GRAB answered after close(): its socket is going, gearmand requeues the
    // job, so running the handler would only run it twice.
    if (this.closed) return;
    const a = packet.args;
    const handle = a[0].toString('latin1');
    const functionName = a[1].toString('utf8');
    let unique = '';
    let reducer: string | undefined;
    let payload: Buffer;
    if (packet.type === PacketType.JOB_ASSIGN) payload = a[2];
    else if (packet.type === PacketType.JOB_ASSIGN_UNIQ) {
      unique = a[2].toString('utf8');
      payload = a[3];
    } else {
      unique = a[2].toString('utf8');
      reducer = a[3].toString('utf8') || undefined;
      payload = a[4];
    }
    const job = new WorkerJob(slot, handle, functionName, unique, payload, reducer, (j) => this.finished(j));
    const reg = this.functions.get(functionName);
    if (!reg) {
      // Unregistered while the GRAB was in flight.
      this.running.add(job);
      job.fail();
      return;
    }
    this.running.add(job);
    let result: JobResult | Promise<JobResult>;
    try {
      result = reg.handler(job);
    } catch (err) {
      this.handlerFailed(job, reg, err);
      return;
    }
    if (result && typeof (result as Promise<JobResult>).then === 'function') {
      (result as Promise<JobResult>).then(
        (value) => this.handlerDone(job, reg, value),
        (err) => this.handlerFailed(job, reg, err),
      );
    } else {
      this.handlerDone(job, reg, result as JobResult);
    }
  }

  private handlerDone(job: WorkerJob, reg: Registration, value: JobResult): void {
    if (job.finished) return;
    if (value === undefined || value === null) job.complete();
    else if (typeof value === 'string' || value instanceof Uint8Array) job.complete(value);
    else {
      this.handlerFailed(job, reg, invalidArgument(`The handler for ${job.functionName} returned ${typeof value}; return a Buffer, a string or nothing`));
    }
  }

  private handlerFailed(job: WorkerJob, reg: Registration, err: unknown): void {
    if (this.listenerCount('jobError') > 0) this.emit('jobError', err, job);
    if (job.finished) return;
    const mode = reg.options.errorMode ?? this.options.errorMode ?? 'exception';
    if (mode === 'fail') job.fail();
    else job.exception(err instanceof Error ? err.message : String(err));
  }

  private finished(job: WorkerJob): void {
    this.running.delete(job);
    if (this.running.size === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
    this.schedulePump();
  }
}

const EMPTY = Buffer.alloc(0);
/** A job whose payload is at least this large resets the grab window to one GRAB in flight. */
const LARGE_JOB = 256 * 1024;
