import { EventEmitter } from 'node:events';
import {
  GearmanProtocolError,
  type OversizedPacket,
  type Packet,
  type PacketArg,
  PacketType,
  packetName,
} from '../../protocol/index.js';
import { type JobAssignment, readJobAssign, readStatusReply } from '../../protocol/messages.js';
import { connectAny, GearmanConnection } from '../connection.js';
import { GearmanConnectionError, GearmanError, GearmanTimeoutError, invalidArgument } from '../errors.js';
import {
  type ConnectionOptions,
  ENGINE_DEFAULTS,
  optionalMs,
  positiveInt,
  type ResolvedConnectionOptions,
  resolveConnectionOptions,
} from '../options.js';
import { checkFunctionName } from '../function-name.js';
import { DeadlineList } from './deadlines.js';
import { describeError } from './describe-error.js';
import { GrabState } from './grab-state.js';
import { type WorkerJobControl, type WorkerJobHost, WorkerJob } from './worker-job.js';

/** How a failed handler is reported: WORK_EXCEPTION (with the error) or a plain WORK_FAIL. */
export type ErrorMode = 'exception' | 'fail';

/** Options of {@link GearmanWorker}: the shared connection options (it connects to every server) and its own. */
export interface GearmanWorkerOptions extends ConnectionOptions {
  /** Jobs run at once across all servers (default 1). The worker only GRABs when a slot is free. */
  maxJobs?: number;
  /**
   * Jobs run at once from any one server (default `maxJobs`: no cap of its own). Below `maxJobs`,
   * a server with a long queue cannot take every slot: e.g. `maxJobs: 8, maxJobsPerServer: 4`
   * keeps half for the other servers. A job counts until its handler ends, even after its
   * connection dropped.
   */
  maxJobsPerServer?: number;
  /**
   * `uniq` (default): GRAB_JOB_UNIQ, handlers see the unique; `all`: GRAB_JOB_ALL, they see the
   * reducer too. A server that refuses the type (Perl's Gearman::Server has neither) is sent the
   * next one down, learned once per connection from its first answer: GRAB_JOB_UNIQ, then GRAB_JOB,
   * whose jobs carry no unique (`job.unique` is '').
   */
  grab?: 'uniq' | 'all';
  /**
   * Milliseconds between safety GRABs while asleep (default 5000): gearmand 1.1.20 wakes no worker
   * when a scheduled (epoch) job falls due (docs/gearmand-behaviour.md#waking-workers). 0 turns it
   * off.
   */
  pollInterval?: number;
  /** How a throwing handler is reported (default `exception`; see README on foreign callers). */
  errorMode?: ErrorMode;
  /**
   * Handler deadline in ms (default none: handlers may run as long as they like). A handler still
   * running after it has its job answered with a failure ("timed out after N ms": WORK_EXCEPTION or
   * WORK_FAIL per `errorMode`), its slot freed and `job.signal` aborted; its late result is ignored.
   * Per function through `register(..., { handlerTimeout })`. Unlike `timeout` (CAN_DO_TIMEOUT,
   * which gearmand enforces by requeueing), this is enforced here and fails the job.
   */
  handlerTimeout?: number;
}

export interface RegisterOptions {
  /**
   * CAN_DO_TIMEOUT in ms: gearmand requeues the job (it does not fail it) when it runs longer
   * (docs/gearmand-behaviour.md#can_do_timeout). gearmand keeps one timer per connection and clears
   * it on PRE_SLEEP, which a worker with free slots sends while a job runs: only a worker with
   * `maxJobs: 1` can rely on it.
   */
  timeout?: number;
  /** Overrides the worker's `errorMode` for this function. */
  errorMode?: ErrorMode;
  /** Handler deadline in ms for this function (overrides the worker's `handlerTimeout`; 0: none). */
  handlerTimeout?: number;
  /**
   * What WORK_EXCEPTION carries when a job of this function fails (errorMode `exception`): the
   * handler's error, or the worker's own (deadline, BACKPRESSURE). Default: a description of the
   * error as text (its message; any thrown value is described safely). If it throws, the default is used.
   */
  formatException?: (error: unknown) => PacketArg;
}

/** What a handler returns: the WORK_COMPLETE payload (nothing for an empty one). */
export type JobResult = Buffer | Uint8Array | string | undefined | null | void;
export type JobHandler = (job: WorkerJob) => JobResult | Promise<JobResult>;

interface Registration {
  handler: JobHandler;
  options: RegisterOptions;
  /** The handler deadline's list, if the function has one. */
  deadline: DeadlineList | undefined;
}

export interface GearmanWorkerEvents {
  connected: [server: string];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
  /**
   * A handler threw or rejected (with any value), or the worker failed its job (deadline: TIMEOUT;
   * a stream past `maxOutgoing`: BACKPRESSURE); the job was reported with WORK_EXCEPTION or WORK_FAIL.
   */
  jobError: [error: unknown, job: WorkerJob];
}

/**
 * Gearman worker over one or many gearmand servers: registers functions on every server (again
 * after each reconnect), runs at most `maxJobs` jobs at once, pipelines GRABs where slots allow and
 * sleeps with PRE_SLEEP when there is no work.
 */
export class GearmanWorker extends EventEmitter<GearmanWorkerEvents> {
  /** @internal one per server, in the order given; users see `servers` and the events. */
  readonly connections: readonly GearmanConnection[];
  /** One per connection, in server order. */
  private readonly states: GrabState[];
  private readonly functions = new Map<string, Registration>();
  /** Running jobs, with the worker's hold on each (see WorkerJobControl). */
  private readonly running = new Map<WorkerJob, WorkerJobControl>();
  private readonly settings: ResolvedConnectionOptions;
  private readonly maxJobs: number;
  private readonly maxJobsPerServer: number;
  /** The grab state of each connection. */
  private readonly stateOf = new Map<GearmanConnection, GrabState>();
  private readonly pollInterval: number;
  private readonly errorMode: ErrorMode;
  private readonly grabType: number;
  private readonly handlerTimeout: number;
  /** One list (and timer) per handler deadline length in use. */
  private readonly deadlines = new Map<number, DeadlineList>();
  /** What every job's control shares (see WorkerJobHost). */
  private readonly host: WorkerJobHost;
  private grabsOut = 0;
  private started = false;
  private stopping = false;
  private closed = false;
  private rotate = 0;
  private pumpScheduled = false;
  /** GRABs in flight on a connection that has just woken up (see GrabState.window). */
  private readonly wakeWindow: number;
  private pollTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(options: GearmanWorkerOptions = {}) {
    super();
    this.settings = resolveConnectionOptions(options);
    this.maxJobs = positiveInt('maxJobs', options.maxJobs, ENGINE_DEFAULTS.maxJobs);
    this.maxJobsPerServer = positiveInt('maxJobsPerServer', options.maxJobsPerServer, this.maxJobs);
    this.pollInterval = optionalMs('pollInterval', options.pollInterval, ENGINE_DEFAULTS.pollInterval);
    this.errorMode = options.errorMode ?? 'exception';
    this.handlerTimeout = optionalMs('handlerTimeout', options.handlerTimeout, 0);
    this.host = {
      finished: this.finished,
      failed: (job, error) => this.failJob(job, error),
      exceptionSent: (control) => this.exceptionSent(control.conn, control.job.handle),
      maxOutgoing: this.settings.maxOutgoing,
      maxPacketSize: this.settings.maxPacketSize,
    };
    this.wakeWindow = Math.min(2, this.maxJobs);
    this.grabType = options.grab === 'all' ? PacketType.GRAB_JOB_ALL : PacketType.GRAB_JOB_UNIQ;
    this.states = this.settings.servers.map((server) => {
      const conn = new GearmanConnection(server, this.settings);
      const state = new GrabState(conn);
      this.stateOf.set(conn, state);
      conn.onConnect = () => this.onConnect(state);
      conn.onPacket = (packet) => this.onPacket(state, packet);
      conn.onOversize = (packet) => this.onOversize(state, packet);
      conn.on('connected', (s) => {
        this.emit('connected', s);
        this.pump();
      });
      conn.on('disconnected', (s, e) => {
        this.onDisconnect(state);
        this.emit('disconnected', s, e);
      });
      conn.on('reconnecting', (s, a, d) => this.emit('reconnecting', s, a, d));
      conn.on('drain', () => {
        state.wakeDrainWaiters();
        this.pump();
      });
      conn.on('error', (e) => {
        if (this.listenerCount('error') > 0) this.emit('error', e);
      });
      return state;
    });
    this.connections = this.states.map((s) => s.conn);
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
    // Including gearmand's length limit: a longer name makes it drop this worker's connection.
    checkFunctionName(functionName);
    if (typeof handler !== 'function') throw invalidArgument(`The handler for ${functionName} must be a function`);
    if (options.timeout !== undefined && (!Number.isInteger(options.timeout) || options.timeout <= 0)) {
      throw invalidArgument(
        `timeout for ${functionName} must be whole milliseconds > 0 (gearmand raises values below 1000 to 1000)`,
      );
    }
    const handlerTimeout = optionalMs(
      `handlerTimeout for ${functionName}`,
      options.handlerTimeout,
      this.handlerTimeout,
    );
    if (options.formatException !== undefined && typeof options.formatException !== 'function') {
      throw invalidArgument(`formatException for ${functionName} must be a function`);
    }
    this.functions.set(functionName, { handler, options, deadline: this.deadlineList(handlerTimeout) });
    for (const state of this.states) {
      if (!state.conn.connected) continue;
      this.sendCanDo(state, functionName, options);
      state.awake = true;
    }
    this.pump();
    return this;
  }

  /**
   * CANT_DO on every server: no more jobs of that function come to this worker (a GRAB already
   * answered may still bring one, which is answered with WORK_FAIL without running). gearmand
   * requeues jobs of that function this worker is running, so their results will be refused
   * (docs/gearmand-behaviour.md#packets-with-their-own-rules): unregister when idle.
   */
  unregister(functionName: string): this {
    if (!this.functions.delete(functionName)) return this;
    for (const state of this.states) if (state.conn.connected) state.conn.send(PacketType.CANT_DO, [functionName]);
    return this;
  }

  /**
   * RESET_ABILITIES on every server: every function unregistered at once, as {@link unregister}
   * does for one (running jobs requeued by gearmand). The worker stays connected and takes jobs
   * again once a function is registered.
   */
  resetAbilities(): this {
    this.functions.clear();
    for (const state of this.states) if (state.conn.connected) state.conn.send(PacketType.RESET_ABILITIES, []);
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
      if (this.pollInterval > 0) {
        this.pollTimer = setInterval(() => this.poll(), this.pollInterval);
        this.pollTimer.unref();
      }
    }
    await connectAny(this.connections, this.settings.connectTimeout);
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
      new Promise((resolve) => (timer = setTimeout(resolve, this.settings.connectTimeout))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Graceful stop: no more GRABs, waits up to `timeout` ms (default 10 s) for running jobs, then
   * closes. Jobs still running then are left to gearmand, which requeues them
   * (docs/gearmand-behaviour.md#lost-workers): none is lost; their handlers' `job.signal` is
   * aborted (reason CLOSED) so they can stop. Resolves with the number of jobs abandoned that way.
   */
  async close(timeout: number = ENGINE_DEFAULTS.closeTimeout): Promise<number> {
    optionalMs('close timeout', timeout, 0);
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
    for (const list of this.deadlines.values()) list.stop();
    const abandoned = this.running.size;
    const controls = [...this.running.values()];
    for (const control of controls) control.lost = true;
    if (controls.length > 0) {
      const reason = new GearmanError(
        'CLOSED',
        `The Gearman worker closed while this handler was still running (after waiting ${timeout} ms for it): ` +
          'its result cannot be reported, gearmand requeues the job for another worker',
      );
      for (const control of controls) control.job.abort(reason);
    }
    await Promise.all(this.connections.map((c) => c.close()));
    return abandoned;
  }

  private onConnect(state: GrabState): void {
    state.reset(this.grabType);
    state.window = this.wakeWindow;
    if (this.settings.clientId) state.conn.send(PacketType.SET_CLIENT_ID, [this.settings.clientId]);
    for (const [name, reg] of this.functions) this.sendCanDo(state, name, reg.options);
  }

  private sendCanDo(state: GrabState, name: string, options: RegisterOptions): void {
    if (options.timeout !== undefined) {
      // Milliseconds in ASCII: what gearmand parses (several libraries send seconds or binary;
      // docs/gearmand-behaviour.md#can_do_timeout).
      state.conn.send(PacketType.CAN_DO_TIMEOUT, [name, String(options.timeout)]);
    } else {
      state.conn.send(PacketType.CAN_DO, [name]);
    }
  }

  private onDisconnect(state: GrabState): void {
    this.grabsOut -= state.grabs;
    state.grabs = 0;
    // gearmand requeues what this connection held (docs/gearmand-behaviour.md#lost-workers); the
    // handlers may finish, but cannot report: their signal tells them to stop.
    let reason: GearmanConnectionError | undefined;
    for (const control of this.running.values()) {
      if (control.conn !== state.conn || control.lost) continue;
      control.lost = true;
      reason ??= new GearmanConnectionError(
        'CONNECTION_LOST',
        `Lost the connection to gearmand at ${state.conn.address} while this handler ran: gearmand requeues ` +
          'the job (it may run again elsewhere) and this run cannot report its result',
        state.conn.address,
      );
      control.job.abort(reason);
    }
    state.wakeDrainWaiters();
  }

  private onPacket(state: GrabState, packet: Packet): void {
    switch (packet.type) {
      case PacketType.JOB_ASSIGN_UNIQ:
      case PacketType.JOB_ASSIGN_ALL:
      case PacketType.JOB_ASSIGN: {
        const assignment = readJobAssign(packet);
        this.grabAnswered(state);
        // Grab ahead only while jobs are small: large payloads gain nothing from queueing up here
        // (their transfer is the work) and would crowd gearmand's and the sockets' buffers.
        state.window = assignment.payload.length >= LARGE_JOB ? 1 : Math.min(this.maxJobs, state.window * 2);
        this.runJob(state, assignment);
        break;
      }
      case PacketType.NO_JOB:
        this.grabAnswered(state);
        state.awake = false;
        state.window = 1;
        break;
      case PacketType.NOOP:
        state.sleeping = false;
        state.awake = true;
        state.window = this.wakeWindow;
        break;
      case PacketType.ERROR: {
        // A GRAB type the server lacks: the next GRABs use the one below it (no error: GRAB_JOB works too).
        if (state.probing) {
          this.grabAnswered(state, true);
          break;
        }
        // Else it answers a WORK_*, e.g. JOB_NOT_FOUND for a result of a job gearmand had requeued
        // after CAN_DO_TIMEOUT (docs/gearmand-behaviour.md#can_do_timeout).
        const error = state.conn.serverError(packet);
        const streamed = error.code === 'UNSUPPORTED_COMMAND' ? STREAMED.get(error.command) : undefined;
        if (streamed !== undefined) {
          // Perl's Gearman::Server has no WORK_DATA nor WORK_WARNING: told once, not sent there again.
          if (state.refused.has(streamed)) return;
          state.refused.add(streamed);
        }
        if (this.listenerCount('error') > 0) this.emit('error', error);
        return;
      }
      default:
        return;
    }
    this.schedulePump();
  }

  /** A GRAB was answered: with a job or NO_JOB, or `refused` with an ERROR (see GrabState.answered). */
  private grabAnswered(state: GrabState, refused = false): void {
    state.answered(refused);
    if (state.grabs > 0) {
      state.grabs--;
      this.grabsOut--;
    }
  }

  private sleepIfIdle(state: GrabState): void {
    if (!state.awake && state.grabs === 0 && !state.sleeping && state.conn.connected) {
      state.sleeping = true;
      state.conn.send(PacketType.PRE_SLEEP, []);
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
      for (const state of this.states) this.sleepIfIdle(state);
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
    }
  };

  /** Sends GRABs where slots are free, round the connections. */
  private pump(): void {
    if (this.stopping || this.functions.size === 0) return;
    let free = this.maxJobs - this.running.size - this.grabsOut;
    const n = this.states.length;
    for (let i = 0; i < n && free > 0; i++) {
      const state = this.states[(this.rotate + i) % n];
      if (!state.awake || !state.conn.connected || state.conn.congested) continue;
      const grabs = Math.min(free, state.window - state.grabs, this.maxJobsPerServer - state.running - state.grabs);
      for (let g = 0; g < grabs; g++) state.conn.send(state.grabType, []);
      if (grabs > 0) {
        state.sent(grabs);
        state.grabs += grabs;
        this.grabsOut += grabs;
        free -= grabs;
      }
    }
    this.rotate = (this.rotate + 1) % n;
  }

  /**
   * Safety GRAB on sleeping connections: epoch jobs falling due wake nobody in gearmand 1.1.20
   * (docs/gearmand-behaviour.md#waking-workers).
   */
  private poll(): void {
    if (this.stopping) return;
    for (const state of this.states) {
      if (state.sleeping && state.conn.connected) {
        state.sleeping = false;
        state.awake = true;
      }
    }
    this.pump();
  }

  private runJob(state: GrabState, assignment: JobAssignment): void {
    // A job assigned to a GRAB answered after close(): its socket is going, gearmand requeues the
    // job, so running the handler would only run it twice.
    if (this.closed) return;
    const control: WorkerJobControl = {
      conn: state.conn,
      lost: false,
      host: this.host,
      drainWaiters: state.drainWaiters,
      refused: state.refused,
      job: NO_JOB,
      readHold: 0,
      deadline: 0,
      prev: undefined,
      next: undefined,
      list: undefined,
    };
    const job = new WorkerJob(assignment, control);
    control.job = job;
    this.running.set(job, control);
    state.running++;
    const reg = this.functions.get(job.functionName);
    if (!reg) {
      // Unregistered while the GRAB was in flight.
      job.fail();
      return;
    }
    reg.deadline?.add(control, performance.now());
    let result: JobResult | Promise<JobResult>;
    try {
      result = reg.handler(job);
      // Inside the try: a thenable whose `then` throws is a failure like any other.
      if (result && typeof (result as Promise<JobResult>).then === 'function') {
        // Its report may come a few microtask turns later: it goes out with the GRABs of this read.
        control.readHold = state.conn.holdRead();
        (result as Promise<JobResult>).then(
          (value) => this.handlerDone(job, reg, value),
          (err: unknown) => this.handlerFailed(job, reg, err),
        );
        return;
      }
    } catch (err) {
      this.handlerFailed(job, reg, err);
      return;
    }
    this.handlerDone(job, reg, result as JobResult);
  }

  private handlerDone(job: WorkerJob, reg: Registration, value: JobResult): void {
    if (job.finished) return;
    if (value === undefined || value === null) job.complete();
    else if (typeof value === 'string' || value instanceof Uint8Array) {
      try {
        job.complete(value);
      } catch (err) {
        // PACKET_TOO_LARGE: the result was not sent, the job fails instead.
        this.handlerFailed(job, reg, err);
      }
    } else {
      this.handlerFailed(
        job,
        reg,
        invalidArgument(
          `The handler for ${job.functionName} returned ${typeof value}; return a Buffer, a string or nothing`,
        ),
      );
    }
  }

  /**
   * The job failed (any value thrown or rejected, or the worker's own error): reported once, as
   * WORK_FAIL or WORK_EXCEPTION per errorMode, whatever `err` is; nothing here may throw, or the
   * packet being handled would drop the connection and leak the slot.
   */
  private handlerFailed(job: WorkerJob, reg: Registration | undefined, err: unknown): void {
    // A handler passing on the reason the worker aborted it with (deadline, BACKPRESSURE, close,
    // loss) is not news: that was told (or needs no telling) already.
    const known = err !== undefined && err === job.abortedWith;
    if (!known && this.listenerCount('jobError') > 0) {
      try {
        this.emit('jobError', err, job);
      } catch (listenerError) {
        // A throwing jobError listener must not cost the job its answer.
        if (this.listenerCount('error') > 0) this.emit('error', listenerError as Error);
      }
    }
    if (job.finished) return;
    const mode = reg?.options.errorMode ?? this.errorMode;
    if (mode === 'fail') job.fail();
    else job.exception(this.fitPacket(job.handle, exceptionData(reg, err)));
  }

  /** `data` cut to what a WORK_EXCEPTION for `handle` may carry under maxPacketSize (an error message rarely comes near). */
  private fitPacket(handle: string, data: PacketArg): PacketArg {
    const room = this.settings.maxPacketSize - handle.length - 1;
    if ((typeof data === 'string' ? 3 * data.length : data.length) <= room) return data;
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    return bytes.length <= room ? bytes : bytes.subarray(0, Math.max(0, room));
  }

  /**
   * A packet above maxPacketSize, skipped unread by the decoder: the connection stays. A JOB_ASSIGN*
   * answers a GRAB like any other; its job is answered at once with a failure that says why (per the
   * function's errorMode), logged once (`error` event), and no handler runs. gearmand accepts
   * payloads of any size, so without this one such job would make every worker of its function drop
   * its connection in turn, forever (README, "Oversized jobs and packets").
   */
  private onOversize(state: GrabState, packet: OversizedPacket): void {
    const { type, handle, functionName, size, limit } = packet;
    const conn = state.conn;
    const assign =
      type === PacketType.JOB_ASSIGN || type === PacketType.JOB_ASSIGN_UNIQ || type === PacketType.JOB_ASSIGN_ALL;
    if (!assign || handle === undefined) {
      if (this.listenerCount('error') > 0) {
        this.emit(
          'error',
          new GearmanProtocolError(
            'PACKET_TOO_LARGE',
            `gearmand at ${conn.address} sent ${packetName(type)} of ${size} bytes, above this worker's maxPacketSize of ` +
              `${limit}: it was skipped${assign ? ' (and, without a readable handle, left unanswered)' : ''}. Raise maxPacketSize to accept it.`,
          ),
        );
      }
      if (assign) this.grabAnswered(state);
      this.schedulePump();
      return;
    }
    this.grabAnswered(state);
    state.window = 1;
    const name = functionName ?? '(unknown function)';
    const error = new GearmanProtocolError(
      'PACKET_TOO_LARGE',
      // What matters first: clients show the start of a WORK_EXCEPTION.
      `The job's payload is too large for this worker: ${packetName(type)} of ${size} bytes, above its maxPacketSize ` +
        `of ${limit}, so it was failed without running (job ${handle} of ${name}, gearmand at ${conn.address}). ` +
        `Raise maxPacketSize on the workers of ${name} (GearmanWorker or ServerGearman option) to take jobs this large, ` +
        'or submit smaller payloads.',
    );
    if (this.listenerCount('error') > 0) this.emit('error', error);
    if (conn.connected) {
      const reg = functionName === undefined ? undefined : this.functions.get(functionName);
      if ((reg?.options.errorMode ?? this.errorMode) === 'fail') conn.send(PacketType.WORK_FAIL, [handle]);
      else {
        conn.send(PacketType.WORK_EXCEPTION, [handle, this.fitPacket(handle, error.message)]);
        this.exceptionSent(conn, handle);
      }
    }
    this.schedulePump();
  }

  /**
   * After a WORK_EXCEPTION: gearmand has ended the job (docs/gearmand-behaviour.md#work_exception),
   * but Perl's Gearman::Server only relays it to the clients that asked for exceptions and keeps the
   * job running until a WORK_FAIL; without one it would wait forever, and so would every caller of
   * its unique. The first exception on each connection asks the server whether it still knows the
   * job (GET_STATUS, answered in turn: docs/gearmand-behaviour.md#reply-order); where it does, every
   * WORK_EXCEPTION there is followed by a WORK_FAIL (clients without the option see only that).
   */
  private exceptionSent(conn: GearmanConnection, handle: string): void {
    const state = this.stateOf.get(conn)!;
    if (state.exceptionEnds === true || !conn.connected) return;
    if (state.exceptionEnds === false) {
      conn.send(PacketType.WORK_FAIL, [handle]);
      return;
    }
    conn.call(PacketType.GET_STATUS, [handle]).then((reply) => {
      const known = readStatusReply(reply).known;
      state.exceptionEnds ??= !known;
      if (known) conn.send(PacketType.WORK_FAIL, [handle]);
      // A lost connection rejects the call: the server drops that connection's jobs itself.
    }, noop);
  }

  /** A job the worker itself fails (a stream past `maxOutgoing`): answered, then its handler aborted. */
  private failJob(job: WorkerJob, error: Error): void {
    this.handlerFailed(job, this.functions.get(job.functionName), error);
    job.abort(error);
  }

  /** A handler past its deadline: its job is answered with the timeout, the slot freed, the handler aborted. */
  private expire(control: WorkerJobControl, ms: number): void {
    const job = control.job;
    if (job.finished) return;
    const error = new GearmanTimeoutError(
      `The handler for ${job.functionName} (job ${job.handle}) timed out after ${ms} ms (handlerTimeout): ` +
        'the job was failed and its slot freed. Make the handler finish sooner, or raise handlerTimeout.',
    );
    this.handlerFailed(job, this.functions.get(job.functionName), error);
    job.abort(error);
  }

  /** The deadline list for handlers of `ms` (undefined for none), made on first use. */
  private deadlineList(ms: number): DeadlineList | undefined {
    if (ms === 0) return undefined;
    let list = this.deadlines.get(ms);
    if (!list) {
      list = new DeadlineList(ms, (entry) => this.expire(entry as WorkerJobControl, ms));
      this.deadlines.set(ms, list);
    }
    return list;
  }

  private readonly finished = (control: WorkerJobControl): void => {
    control.list?.remove(control);
    if (control.readHold !== 0) control.conn.releaseRead(control.readHold);
    const job = control.job;
    this.running.delete(job);
    this.stateOf.get(control.conn)!.running--;
    if (this.running.size === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
    this.schedulePump();
  };
}

/** WORK_EXCEPTION's payload for `err`: the function's `formatException`, else (or if that throws) a safe description. */
function exceptionData(reg: Registration | undefined, err: unknown): PacketArg {
  const format = reg?.options.formatException;
  if (format) {
    try {
      const data = format(err);
      if (typeof data === 'string' || data instanceof Uint8Array) return data;
    } catch {
      // fall back to the description below
    }
  }
  return describeError(err);
}

const EMPTY = Buffer.alloc(0);
const noop = (): void => undefined;
/** The streamed report a server may lack, by the name its refusal gives (GearmanServerError.command). */
const STREAMED: ReadonlyMap<string | undefined, number> = new Map([
  ['WORK_DATA', PacketType.WORK_DATA],
  ['WORK_WARNING', PacketType.WORK_WARNING],
]);
/** Placeholder in a control until its job is made (the job's constructor takes the control). */
const NO_JOB = undefined as unknown as WorkerJob;
/** A job whose payload is at least this large resets the grab window to one GRAB in flight. */
const LARGE_JOB = 256 * 1024;
