import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { MAX_UNIQUE_LENGTH, type Packet, PacketType, packetName } from '../protocol/index.js';
import { GearmanAdminConnection } from './admin.js';
import type { BackoffOptions } from './backoff.js';
import { connectAny, GearmanConnection, type ReplyHandler } from './connection.js';
import {
  GearmanCancelledError,
  GearmanConnectionError,
  GearmanError,
  GearmanJobError,
  GearmanTimeoutError,
  invalidArgument,
} from './errors.js';
import { Fifo } from './fifo.js';
import { GearmanJob, type JobPriority, type JobStatus } from './job.js';
import { type ServerStrategy, ServerPool } from './server-pool.js';
import { resolveServers, type ServerSpec } from './servers.js';

export interface GearmanClientOptions {
  /** gearmand servers: `'host:port'` strings or objects (default `127.0.0.1:4730`). */
  servers?: ServerSpec | ServerSpec[];
  /** How jobs are spread over several servers (default `hash`). */
  strategy?: ServerStrategy;
  /** TLS for every server (node:tls options, or `true`). */
  tls?: boolean | TlsConnectionOptions;
  /** Milliseconds to wait for a connection, and for a submit to find a live server (default 5000). */
  connectTimeout?: number;
  /** Reconnect backoff, or `false` (default 100 ms doubling to 10 s, 20 % jitter). */
  reconnect?: BackoffOptions | false;
  /** Ask every connection for WORK_EXCEPTION packets (default true; otherwise gearmand turns them into WORK_FAIL). */
  exceptions?: boolean;
  /** SET_CLIENT_ID on every connection (shows in `workers`). */
  clientId?: string;
  /** Milliseconds to wait for JOB_CREATED (default 10 000). */
  submitTimeout?: number;
  /** Default whole-job timeout for foreground jobs in ms (default none). */
  timeout?: number;
  /** Largest packet accepted, in bytes (default 64 MiB). */
  maxPacketSize?: number;
}

export interface SubmitOptions {
  /** Background job: the client only waits for JOB_CREATED (default false). */
  background?: boolean;
  priority?: JobPriority;
  /**
   * Unique key (at most 63 bytes): jobs with the same function and unique coalesce into one (R2).
   * A background job without one is sent with a random UUID, so persistent queues keep every job.
   */
  unique?: string;
  /** Run at this time (seconds since the epoch, or a Date): always a background job. */
  epoch?: number | Date;
  /** Reduce job: the reducer function (and optional aggregator). */
  reducer?: string;
  aggregator?: string;
  /** Whole-job timeout in ms (foreground); on expiry a still-queued job is cancelled. */
  timeout?: number;
  /** Milliseconds to wait for JOB_CREATED. */
  submitTimeout?: number;
  /** Aborting fails the job with CANCELLED and cancels it on the server if still queued. */
  signal?: AbortSignal;
  /**
   * Resubmit after a lost connection, on the next live server: `true` for up to 3 times, or a
   * number. Only for jobs with a unique (coalescing makes the resubmit idempotent while the first
   * copy is alive).
   */
  retry?: boolean | number;
}

export interface GearmanClientEvents {
  connected: [server: string];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
}

type HandleEntry = GearmanJob | GearmanJob[];

interface Waiting {
  job: GearmanJob;
  exclude?: Set<GearmanConnection>;
  /** Date.now() after which the job fails with NO_SERVER: kept when the job is parked again. */
  deadline: number;
  timer: NodeJS.Timeout;
}

const SUBMIT_TYPES: Record<JobPriority, [foreground: number, background: number]> = {
  high: [PacketType.SUBMIT_JOB_HIGH, PacketType.SUBMIT_JOB_HIGH_BG],
  normal: [PacketType.SUBMIT_JOB, PacketType.SUBMIT_JOB_BG],
  low: [PacketType.SUBMIT_JOB_LOW, PacketType.SUBMIT_JOB_LOW_BG],
};

const noop = () => undefined;

/**
 * The jobs sent on one connection and awaiting JOB_CREATED, in send order. gearmand answers in that
 * order (R1), so one handler object serves them all (no closures per job), and the client's
 * `submitTimeout` is enforced by one timer per connection instead of one per job: jobs whose
 * deadline passes while still `submitting` fail, and stay queued until their reply arrives.
 */
class SubmitQueue implements ReplyHandler {
  private readonly jobs = new Fifo<GearmanJob>();
  /** Jobs at the front already checked by the sweep (failed, or with a timer of their own). */
  private checked = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: GearmanConnection,
    private readonly onCreated: (job: GearmanJob, packet: Packet) => void,
    private readonly onError: (job: GearmanJob, error: Error) => void,
    private readonly onTimeout: (job: GearmanJob) => void,
  ) {}

  send(job: GearmanJob): void {
    const { type, args } = job.submitPacket;
    this.conn.request(type, args, this);
    this.jobs.push(job);
    if (job.submitDeadline >= 0 && this.timer === undefined) this.arm(job.submitDeadline - performance.now());
  }

  resolve(packet: Packet): void {
    this.onCreated(this.next(), packet);
  }

  reject(error: Error): void {
    this.onError(this.next(), error);
  }

  private next(): GearmanJob {
    const job = this.jobs.shift()!;
    if (this.checked > 0) this.checked--;
    return job;
  }

  /**
   * The timer is left to run out when the queue empties (a job at a time would otherwise set and
   * clear one per job); unref'd, so it never keeps the process alive on its own.
   */
  private arm(delay: number): void {
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(delay)));
    this.timer.unref();
  }

  /** Fails the jobs past their deadline; deadlines grow along the queue (same timeout, sent in order). */
  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = performance.now();
    const jobs = this.jobs;
    let i = this.checked;
    for (; i < jobs.length; i++) {
      const job = jobs.at(i)!;
      if (job.submitDeadline > now) break;
      if (job.submitDeadline >= 0 && job.state === 'submitting') this.onTimeout(job);
    }
    this.checked = i;
    if (i < jobs.length) this.arm(jobs.at(i)!.submitDeadline - now);
  };
}

/**
 * Gearman client over one or many gearmand servers: submits jobs (pipelined, many in flight per
 * connection), streams their updates, reconnects by itself.
 */
export class GearmanClient extends EventEmitter<GearmanClientEvents> {
  readonly connections: readonly GearmanConnection[];
  private readonly pool: ServerPool;
  private readonly handles = new Map<GearmanConnection, Map<string, HandleEntry>>();
  private readonly admins = new Map<GearmanConnection, GearmanAdminConnection>();
  private readonly waiting = new Fifo<Waiting>();
  private readonly submits = new Map<GearmanConnection, SubmitQueue>();
  private readonly submitTimeout: number;
  /** Jobs watching each AbortSignal, behind one listener per signal. */
  private readonly abortWatches = new WeakMap<AbortSignal, { jobs: Set<() => void>; listener: () => void }>();
  /** `job.cleanup` of jobs without timers or signal of their own. */
  private readonly untrackJob = (job: GearmanJob): void => this.untrack(job);
  private readonly cancelJob = (job: GearmanJob): Promise<void> => this.cancel(job);
  private readonly submitTimedOut = (job: GearmanJob): void => {
    if (job.state !== 'submitting') return;
    job.fail(new GearmanTimeoutError(`No JOB_CREATED for ${job.functionName} within ${this.submitTimeout} ms: is gearmand overloaded or unreachable?`));
  };
  private readonly strategy: ServerStrategy;
  /** Jobs whose admin `cancel job` is in flight: the WORK_FAIL gearmand sends for it means CANCELLED. */
  private readonly cancelling = new WeakSet<GearmanJob>();
  /** Retried jobs and the connection they were lost on, until resubmitted. */
  private readonly lostOn = new WeakMap<GearmanJob, GearmanConnection>();
  private closed = false;

  constructor(private readonly options: GearmanClientOptions = {}) {
    super();
    const servers = resolveServers(options.servers, options.tls);
    this.strategy = options.strategy ?? 'hash';
    this.submitTimeout = options.submitTimeout ?? 10_000;
    this.connections = servers.map((server) => {
      const conn = new GearmanConnection(server, {
        connectTimeout: options.connectTimeout,
        reconnect: options.reconnect,
        maxPacketSize: options.maxPacketSize,
      });
      const jobs = new Map<string, HandleEntry>();
      this.handles.set(conn, jobs);
      this.submits.set(
        conn,
        new SubmitQueue(
          conn,
          (job, packet) => this.onCreated(conn, job, packet),
          (job, error) => this.onSubmitError(conn, job, error),
          this.submitTimedOut,
        ),
      );
      conn.onPacket = (packet) => this.onPacket(conn, jobs, packet);
      conn.onConnect = () => this.onConnect(conn);
      conn.on('connected', (s) => {
        this.emit('connected', s);
        this.submitWaiting();
      });
      conn.on('disconnected', (s, e) => {
        this.onDisconnect(conn, jobs);
        this.emit('disconnected', s, e);
      });
      conn.on('reconnecting', (s, a, d) => {
        this.emit('reconnecting', s, a, d);
        // A server that failed its first attempt is now known down: jobs waiting for it go elsewhere.
        this.submitWaiting();
      });
      conn.on('error', (e) => {
        if (this.listenerCount('error') > 0) this.emit('error', e);
      });
      return conn;
    });
    this.pool = new ServerPool(this.connections);
  }

  /** Server addresses, in the order given. */
  get servers(): string[] {
    return this.connections.map((c) => c.address);
  }

  /**
   * Connects to every server. Resolves when at least one is connected; rejects with NO_SERVER when
   * none is within `connectTimeout` (the connections keep retrying in the background).
   */
  async connect(): Promise<void> {
    this.assertOpen();
    try {
      await connectAny(this.connections, this.options.connectTimeout ?? 5000);
    } catch (err) {
      this.assertOpen(); // close() during connect(): CLOSED, not NO_SERVER
      throw err;
    }
  }

  /** Submits a job. The returned job streams its updates and settles once. */
  submit(functionName: string, payload: Buffer | string = EMPTY, options: SubmitOptions = {}): GearmanJob {
    this.assertOpen();
    if (typeof functionName !== 'string' || functionName === '' || functionName.includes('\0')) {
      throw invalidArgument(`Invalid function name ${JSON.stringify(functionName)}: use a non-empty string without NUL bytes`);
    }
    const unique = options.unique ?? '';
    if (typeof unique !== 'string' || Buffer.byteLength(unique) > MAX_UNIQUE_LENGTH || unique.includes('\0')) {
      throw invalidArgument(
        `Unique key ${JSON.stringify(String(unique).slice(0, 80))} is invalid: gearmand keeps at most ${MAX_UNIQUE_LENGTH} bytes ` +
          '(a longer one is refused or truncated and never coalesces) and no NUL bytes; hash long keys first',
      );
    }
    const priority = options.priority ?? 'normal';
    if (!(priority in SUBMIT_TYPES)) throw invalidArgument(`Invalid priority ${JSON.stringify(priority)}: use high, normal or low`);
    const epoch = options.epoch instanceof Date ? Math.floor(options.epoch.getTime() / 1000) : options.epoch;
    if (epoch !== undefined && (!Number.isInteger(epoch) || epoch < 0)) {
      throw invalidArgument(`Invalid epoch ${String(options.epoch)}: use whole seconds since 1970 or a Date`);
    }
    if (epoch !== undefined && options.reducer) throw invalidArgument('A job cannot be both scheduled (epoch) and a reduce job');
    const background = options.background === true || epoch !== undefined;
    const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const job = new GearmanJob(functionName, data, unique, background, priority);
    job.retriesLeft = unique && options.retry ? (options.retry === true ? 3 : Math.max(0, options.retry)) : 0;
    job.cancelHook = this.cancelJob;
    job.submitPacket = this.packetFor(job, epoch, options);
    this.arm(job, options);
    this.route(job);
    return job;
  }

  /** Submits and waits for the result of a foreground job. */
  run(functionName: string, payload?: Buffer | string, options?: SubmitOptions): Promise<Buffer> {
    return this.submit(functionName, payload, options).result();
  }

  /** GET_STATUS for a handle on one server (by default, every server until one knows it). */
  async getStatus(handle: string, server?: string): Promise<JobStatus> {
    const conns = server ? [this.connectionFor(server)] : this.connections.filter((c) => c.connected);
    let last: JobStatus | undefined;
    for (const conn of conns) {
      await this.ensureConnected(conn);
      last = statusOf(await this.query(conn, PacketType.GET_STATUS, [handle]), conn);
      if (last.known) return last;
    }
    if (!last) throw this.noServerError();
    return last;
  }

  /** GET_STATUS_UNIQUE: looked up by unique across all functions (R10), on the server the unique hashes to first. */
  async getStatusByUnique(unique: string): Promise<JobStatus> {
    const owner = this.pool.owner(unique);
    const conns = [owner, ...this.connections.filter((c) => c !== owner && c.connected)];
    let last: JobStatus | undefined;
    for (const conn of conns) {
      if (!conn.connected && conn !== owner) continue;
      try {
        await this.ensureConnected(conn);
      } catch {
        continue;
      }
      last = statusOf(await this.query(conn, PacketType.GET_STATUS_UNIQUE, [unique]), conn);
      if (last.known) return last;
    }
    if (!last) throw this.noServerError();
    return last;
  }

  /** ECHO round trip to one server; resolves with the latency in ms. */
  async echo(server: string, data: Buffer | string = 'ping'): Promise<number> {
    const conn = this.connectionFor(server);
    await this.ensureConnected(conn);
    const start = performance.now();
    await this.query(conn, PacketType.ECHO_REQ, [typeof data === 'string' ? Buffer.from(data) : data]);
    return performance.now() - start;
  }

  /**
   * A request whose reply must come within `submitTimeout`: a stalled link (sockets open, nothing
   * arriving) must not hang getStatus() or echo(). A late reply is still consumed in its turn (R1).
   */
  private query(conn: GearmanConnection, type: number, args: (string | Buffer)[]): Promise<Packet> {
    const timeout = this.submitTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GearmanTimeoutError(`No reply to ${packetName(type)} from gearmand at ${conn.address} within ${timeout} ms: is it overloaded or unreachable?`)),
        timeout,
      );
      try {
        conn.request(type, args, {
          resolve: (packet) => {
            clearTimeout(timer);
            resolve(packet);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      } catch (error) {
        clearTimeout(timer); // not connected: rejects at once
        throw error;
      }
    });
  }

  /** Closes every connection; jobs still waiting fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new GearmanConnectionError('CLOSED', 'The Gearman client was closed');
    for (const w of this.waiting.drain()) {
      clearTimeout(w.timer);
      w.job.fail(error);
    }
    await Promise.all([...this.connections.map((c) => c.close()), ...[...this.admins.values()].map((a) => a.close())]);
    for (const jobs of this.handles.values()) {
      for (const entry of jobs.values()) for (const job of asList(entry)) job.fail(error);
      jobs.clear();
    }
  }

  private packetFor(job: GearmanJob, epoch: number | undefined, options: SubmitOptions): { type: number; args: (string | Buffer)[] } {
    const { functionName: fn, unique, payload } = job;
    // A background job without a unique gets a random one on the wire, as libgearman does:
    // gearmand's persistent queues key jobs by unique, so jobs with an empty one overwrite each
    // other and all but one are lost on a restart (R12). Like an empty unique it never coalesces;
    // `job.unique` stays empty, so routing and retry treat the job as one without a unique.
    const wireUnique = job.background && unique === '' ? randomUUID() : unique;
    if (options.reducer !== undefined && epoch === undefined) {
      return {
        type: job.background ? PacketType.SUBMIT_REDUCE_JOB_BACKGROUND : PacketType.SUBMIT_REDUCE_JOB,
        args: [fn, wireUnique, options.reducer, options.aggregator ?? '', payload],
      };
    }
    if (epoch !== undefined) return { type: PacketType.SUBMIT_JOB_EPOCH, args: [fn, wireUnique, String(epoch), payload] };
    return { type: SUBMIT_TYPES[job.priority][job.background ? 1 : 0], args: [fn, wireUnique, payload] };
  }

  /** Timeouts and abort signal for one job; released by `job.cleanup` when it settles. */
  private arm(job: GearmanJob, options: SubmitOptions): void {
    const submitTimeout = options.submitTimeout ?? this.submitTimeout;
    const timeout = job.background ? undefined : (options.timeout ?? this.options.timeout);
    const signal = options.signal;
    const shared = submitTimeout === this.submitTimeout;
    // The common case allocates nothing per job: the submit queue checks the deadline.
    // Whole milliseconds (rounded up): a small integer is stored in the job without a number box.
    if (shared) job.submitDeadline = Math.ceil(performance.now()) + submitTimeout;
    if (shared && timeout === undefined && !signal) {
      job.cleanup = this.untrackJob;
      return;
    }
    const timers: NodeJS.Timeout[] = [];
    if (!shared) {
      timers.push(
        setTimeout(() => {
          if (job.state !== 'submitting') return;
          job.fail(new GearmanTimeoutError(`No JOB_CREATED for ${job.functionName} within ${submitTimeout} ms: is gearmand overloaded or unreachable?`));
        }, submitTimeout),
      );
    }
    if (timeout !== undefined) {
      timers.push(
        setTimeout(() => {
          const handle = job.handle;
          job.fail(
            new GearmanTimeoutError(
              `Job ${job.functionName}${handle ? ` (${handle})` : ''} did not finish within ${timeout} ms; ` +
                'it was cancelled if still queued (a running job cannot be stopped in Gearman)',
            ),
          );
          if (handle) this.cancelQuietly(job);
        }, timeout),
      );
    }
    let unwatch: (() => void) | undefined;
    if (signal) {
      const onAbort = () => {
        const handle = job.handle;
        job.fail(new GearmanCancelledError(`Job ${job.functionName} was aborted`, { cause: signal.reason }));
        if (handle) this.cancelQuietly(job);
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else unwatch = this.watchAbort(signal, onAbort);
    }
    job.cleanup = () => {
      for (const t of timers) clearTimeout(t);
      unwatch?.();
      this.untrack(job);
    };
  }

  /**
   * One 'abort' listener per signal, however many jobs share it (one signal for a request's many
   * jobs is common, and a listener per job would trip Node's MaxListeners warning past 10).
   * Returns the function that stops watching for this job.
   */
  private watchAbort(signal: AbortSignal, onAbort: () => void): () => void {
    let watch = this.abortWatches.get(signal);
    if (!watch) {
      const jobs = new Set<() => void>();
      const listener = () => {
        this.abortWatches.delete(signal);
        for (const fn of [...jobs]) fn();
      };
      watch = { jobs, listener };
      this.abortWatches.set(signal, watch);
      signal.addEventListener('abort', listener, { once: true });
    }
    const { jobs, listener } = watch;
    jobs.add(onAbort);
    return () => {
      jobs.delete(onAbort);
      if (jobs.size === 0 && this.abortWatches.get(signal) === watch) {
        this.abortWatches.delete(signal);
        signal.removeEventListener('abort', listener);
      }
    };
  }

  /** Sends the job to a live server, or parks it until one connects (up to connectTimeout). */
  private route(job: GearmanJob, exclude?: Set<GearmanConnection>, deadline?: number): void {
    if (job.finished) return;
    // The common case (a first submit, a server up) without closures: they would be allocated per job.
    const conn = exclude === undefined ? this.pool.pick(this.strategy, job.unique || undefined, undefined, true) : undefined;
    if (conn) this.send(conn, job);
    else this.routeOrPark(job, exclude, deadline);
  }

  private routeOrPark(job: GearmanJob, exclude: Set<GearmanConnection> | undefined, deadline: number | undefined): void {
    // `exclude` (the server a retried job was lost on) is only a preference: when no other server is
    // live, that server is used again once it is back (a restarted gearmand lost the job with its memory).
    const pick = (patient: boolean) =>
      this.pool.pick(this.strategy, job.unique || undefined, exclude, patient) ??
      (exclude ? this.pool.pick(this.strategy, job.unique || undefined, undefined, patient) : undefined);
    const conn = pick(true);
    if (!conn) {
      this.ownSubmitTimer(job);
      for (const c of this.connections) c.start();
      const timeout = this.options.connectTimeout ?? 5000;
      const until = deadline ?? Date.now() + timeout;
      const entry: Waiting = {
        job,
        exclude,
        deadline: until,
        timer: setTimeout(() => {
          // Last chance: any live server, even if the unique's own server is still connecting.
          const live = entry.job.finished ? undefined : pick(false);
          if (live) this.send(live, entry.job);
          else entry.job.fail(this.noServerError(timeout));
        }, Math.max(0, until - Date.now())),
      };
      this.waiting.push(entry);
      return;
    }
    this.send(conn, job);
  }

  private send(conn: GearmanConnection, job: GearmanJob): void {
    job.connection = conn;
    const lostOn = this.lostOn.get(job);
    if (lostOn !== undefined) {
      this.lostOn.delete(job);
      if (lostOn === conn) {
        void this.resubmitWhereLost(conn, job);
        return;
      }
    }
    this.submits.get(conn)!.send(job);
  }

  /** A job parked until a server is up is in no submit queue: its submit deadline gets a timer of its own. */
  private ownSubmitTimer(job: GearmanJob): void {
    if (job.submitDeadline < 0) return;
    const timer = setTimeout(this.submitTimedOut, Math.max(0, job.submitDeadline - performance.now()), job);
    job.submitDeadline = -1;
    const previous = job.cleanup;
    job.cleanup = (j) => {
      clearTimeout(timer);
      previous?.(j);
    };
  }

  private submitWaiting(): void {
    const pending = this.waiting.drain();
    for (const w of pending) {
      clearTimeout(w.timer);
      if (!w.job.finished) this.route(w.job, w.exclude, w.deadline);
    }
  }

  private onCreated(conn: GearmanConnection, job: GearmanJob, packet: Packet): void {
    const handle = packet.args[0].toString('latin1');
    if (job.finished) {
      // Timed out or aborted before gearmand answered: take the job back if it is still queued.
      if (!job.background || job.state === 'failed') {
        job.handle = handle;
        this.cancelQuietly(job);
      }
      return;
    }
    if (!job.background) {
      const jobs = this.handles.get(conn)!;
      const entry = jobs.get(handle);
      // Two submits of one unique on one connection share a handle (R2): keep both.
      if (entry === undefined) jobs.set(handle, job);
      else if (Array.isArray(entry)) entry.push(job);
      else jobs.set(handle, [entry, job]);
    }
    job.markCreated(handle);
  }

  private onSubmitError(conn: GearmanConnection, job: GearmanJob, error: Error): void {
    if (job.finished) return;
    if (error instanceof GearmanConnectionError && error.code === 'CONNECTION_LOST') {
      this.retryOrFail(conn, job, error);
      return;
    }
    job.fail(error instanceof GearmanError ? error : new GearmanError('SERVER_ERROR', error.message, { cause: error }));
  }

  private retryOrFail(conn: GearmanConnection, job: GearmanJob, error: GearmanError): void {
    if (job.retriesLeft > 0 && !this.closed) {
      job.retriesLeft--;
      job.handle = undefined;
      job.state = 'submitting';
      // The resubmit gets a submit deadline of its own: the first one may have passed long ago, while the job ran.
      if (job.submitDeadline >= 0) job.submitDeadline = Math.ceil(performance.now()) + this.submitTimeout;
      this.lostOn.set(job, conn);
      this.route(job, new Set([conn]));
      return;
    }
    job.fail(error);
  }

  /**
   * Resubmits a retried job on the server it was lost on (no other was live). If the lost copy is
   * still queued there with no client left, gearmand 1.1.20 has marked it to be dropped at the next
   * GRAB (R4) but still merges a submit of the same unique into it, and the client that joins never
   * hears back. So wait (polling GET_STATUS_UNIQUE, which ignores the function, R10) until gearmand
   * has dropped it, a worker runs it (a running job's result reaches clients that join it), or
   * another client waits for it; then submit.
   */
  private async resubmitWhereLost(conn: GearmanConnection, job: GearmanJob): Promise<void> {
    try {
      for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
        const a = (await this.query(conn, PacketType.GET_STATUS_UNIQUE, [job.unique])).args;
        const orphan = a[1].toString() === '1' && a[2].toString() !== '1' && (Number(a[5].toString()) || 0) === 0;
        if (!orphan || job.finished || this.closed) break;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    } catch (error) {
      // Lost again, or no answer in time: as for a submit without a reply.
      this.onSubmitError(conn, job, error as Error);
      return;
    }
    if (job.finished || this.closed) return;
    if (job.submitDeadline >= 0) job.submitDeadline = Math.ceil(performance.now()) + this.submitTimeout;
    if (!conn.connected) {
      this.lostOn.set(job, conn);
      this.route(job, new Set([conn]));
      return;
    }
    this.submits.get(conn)!.send(job);
  }

  private onConnect(conn: GearmanConnection): void {
    if (this.options.exceptions !== false) {
      conn.request(PacketType.OPTION_REQ, ['exceptions'], { resolve: noop, reject: noop });
    }
    if (this.options.clientId) conn.send(PacketType.SET_CLIENT_ID, [this.options.clientId]);
  }

  private onDisconnect(conn: GearmanConnection, jobs: Map<string, HandleEntry>): void {
    // Foreground jobs on a lost connection would never hear from gearmand again: fail (or retry) now.
    const entries = [...jobs.values()];
    jobs.clear();
    // close() drops the connections itself: that is not a lost connection, and nothing will be retried.
    const error = this.closed
      ? new GearmanConnectionError('CLOSED', 'The Gearman client was closed while the job was running', conn.address)
      : new GearmanConnectionError(
          'CONNECTION_LOST',
          `Lost the connection to gearmand at ${conn.address} while the job was running; gearmand keeps running it, ` +
            'but its result cannot reach this client (submit with a unique and `retry` to resubmit automatically)',
          conn.address,
        );
    for (const entry of entries) for (const job of asList(entry)) this.retryOrFail(conn, job, error);
  }

  private onPacket(conn: GearmanConnection, jobs: Map<string, HandleEntry>, packet: Packet): void {
    const args = packet.args;
    switch (packet.type) {
      case PacketType.WORK_DATA:
      case PacketType.WORK_WARNING:
      case PacketType.WORK_STATUS: {
        const entry = jobs.get(args[0].toString('latin1'));
        if (!entry) return;
        for (const job of asList(entry)) {
          if (packet.type === PacketType.WORK_DATA) job.emit('data', args[1]);
          else if (packet.type === PacketType.WORK_WARNING) job.emit('warning', args[1]);
          else job.emit('status', Number(args[1].toString()) || 0, Number(args[2].toString()) || 0);
        }
        return;
      }
      case PacketType.WORK_COMPLETE: {
        const handle = args[0].toString('latin1');
        const entry = jobs.get(handle);
        if (!entry) return;
        jobs.delete(handle);
        if (Array.isArray(entry)) for (const job of entry.slice()) job.settle(args[1]);
        else entry.settle(args[1]);
        return;
      }
      case PacketType.WORK_FAIL:
      case PacketType.WORK_EXCEPTION: {
        let handle = args[0].toString('latin1');
        // gearmand's WORK_FAIL made from an exception ends in a NUL (R9).
        if (handle.endsWith('\0')) handle = handle.slice(0, -1);
        const entry = jobs.get(handle);
        if (!entry) return;
        jobs.delete(handle);
        for (const job of asList(entry)) {
          if (packet.type === PacketType.WORK_EXCEPTION) {
            job.emit('exception', args[1]);
            job.fail(
              new GearmanJobError('JOB_EXCEPTION', `Job ${job.functionName} (${handle}) failed with an exception: ${preview(args[1])}`, handle, job.functionName, args[1]),
            );
          } else if (this.cancelling.has(job)) {
            job.fail(new GearmanCancelledError(`Job ${job.functionName} (${handle}) was cancelled while queued`));
          } else {
            job.fail(new GearmanJobError('JOB_FAILED', `Job ${job.functionName} (${handle}) failed (WORK_FAIL)`, handle, job.functionName));
          }
        }
        return;
      }
      case PacketType.ERROR:
        if (this.listenerCount('error') > 0) this.emit('error', conn.serverError(packet));
        return;
      default:
        return;
    }
  }

  /** Stops tracking a settled job (timeouts, aborts, cancels). */
  private untrack(job: GearmanJob): void {
    if (job.background || !job.connection || job.handle === undefined) return;
    const jobs = this.handles.get(job.connection)!;
    const entry = jobs.get(job.handle);
    if (entry === job) jobs.delete(job.handle);
    else if (Array.isArray(entry)) {
      const rest = entry.filter((j) => j !== job);
      if (rest.length === 0) jobs.delete(job.handle);
      else jobs.set(job.handle, rest.length === 1 ? rest[0] : rest);
    }
  }

  private async cancel(job: GearmanJob): Promise<void> {
    if (job.state === 'submitting') {
      // The handle is not known yet: fail now, take the job back when JOB_CREATED arrives.
      job.fail(new GearmanCancelledError(`Job ${job.functionName} was cancelled before gearmand created it`));
      return;
    }
    const conn = job.connection!;
    const handle = job.handle!;
    const status = await this.getStatus(handle, conn.address);
    if (status.running) {
      throw new GearmanError(
        'NOT_CANCELLABLE',
        `Job ${job.functionName} (${handle}) is already running on a worker: Gearman cannot stop a running job. ` +
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
    job.fail(new GearmanCancelledError(`Job ${job.functionName} (${handle}) was cancelled while queued`));
  }

  /**
   * Cancels a job this client gave up on (timeout, abort) if it is still queued, unless someone
   * else waits for it: a job with a unique may have been merged with other submits (R2), of this
   * client or of others, and cancelling it would fail theirs too.
   */
  private cancelQuietly(job: GearmanJob): void {
    const conn = job.connection;
    if (!conn || !job.handle || this.closed) return;
    const handle = job.handle;
    if (this.handles.get(conn)?.has(handle)) return; // another submit of this client shares the handle
    const stillWanted = job.unique
      ? conn.call(PacketType.GET_STATUS_UNIQUE, [job.unique]).then((p) => ({
          queued: p.args[1].toString() === '1' && p.args[2].toString() === '0',
          // Counts one client per foreground submit; this job's own submit is still among them.
          others: (Number(p.args[5].toString()) || 0) > 1,
        }))
      : this.getStatus(handle, conn.address).then((s) => ({ queued: s.known && !s.running, others: false }));
    stillWanted
      .then((s) => (s.queued && !s.others ? this.adminFor(conn).cancelJob(handle) : false))
      .catch(noop);
  }

  private adminFor(conn: GearmanConnection): GearmanAdminConnection {
    let admin = this.admins.get(conn);
    if (!admin) {
      admin = new GearmanAdminConnection(conn.server, { connectTimeout: this.options.connectTimeout });
      this.admins.set(conn, admin);
    }
    return admin;
  }

  private connectionFor(server: string): GearmanConnection {
    const conn = this.connections.find((c) => c.address === server);
    if (!conn) throw invalidArgument(`Unknown Gearman server ${server}: this client has ${this.servers.join(', ')}`);
    return conn;
  }

  private async ensureConnected(conn: GearmanConnection): Promise<void> {
    this.assertOpen();
    conn.start();
    await conn.waitConnected(this.options.connectTimeout ?? 5000);
  }

  private noServerError(timeout = this.options.connectTimeout ?? 5000): GearmanConnectionError {
    return new GearmanConnectionError(
      'NO_SERVER',
      `No gearmand reachable at ${this.servers.join(', ')} within ${timeout} ms: start gearmand or check the servers option`,
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new GearmanConnectionError('CLOSED', 'The Gearman client is closed: create a new one');
  }
}

/** STATUS_RES (handle, known, running, num, den) or STATUS_RES_UNIQUE (unique, ..., waiting clients). */
function statusOf(reply: Packet, conn: GearmanConnection): JobStatus {
  const a = reply.args;
  return {
    known: a[1].toString() === '1',
    running: a[2].toString() === '1',
    numerator: Number(a[3].toString()) || 0,
    denominator: Number(a[4].toString()) || 0,
    ...(reply.type === PacketType.STATUS_RES_UNIQUE ? { waitingClients: Number(a[5].toString()) || 0 } : {}),
    server: conn.address,
  };
}

function asList(entry: HandleEntry): GearmanJob[] {
  return Array.isArray(entry) ? entry.slice() : [entry];
}

function preview(data: Buffer): string {
  const text = data.toString('utf8', 0, Math.min(data.length, 200));
  return data.length > 200 ? `${text}...` : text;
}

const EMPTY = Buffer.alloc(0);
