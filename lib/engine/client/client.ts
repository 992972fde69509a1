import { EventEmitter } from 'node:events';
import {
  GearmanProtocolError,
  type OversizedPacket,
  type Packet,
  PacketType,
  packetName,
  readData,
  readHandle,
  readStatusReply,
  readWorkStatus,
} from '../../protocol/index.js';
import { connectAny, GearmanConnection, noServerError } from '../connection.js';
import {
  GearmanCancelledError,
  GearmanConnectionError,
  GearmanError,
  GearmanJobError,
  GearmanTimeoutError,
  invalidArgument,
} from '../errors.js';
import {
  type ConnectionOptions,
  ENGINE_DEFAULTS,
  optionalMs,
  positiveInt,
  type ResolvedConnectionOptions,
  resolveConnectionOptions,
} from '../options.js';
import { type ServerStrategy, ServerPool } from '../server-pool.js';
import { Canceller } from './canceller.js';
import { IdleConnections } from './idle-connections.js';
import { type GearmanJob, JobControl, type JobStatus } from './job.js';
import { JobTable } from './job-table.js';
import { JobTimers } from './job-timers.js';
import { Router } from './router.js';
import { SubmitQueue } from './submit-queue.js';
import { buildSubmitRequest, checkSubmitSize, type SubmitOptions } from './submit-request.js';

export interface GearmanClientOptions extends ConnectionOptions {
  /** How jobs are spread over several servers (default `hash`). `connectTimeout` also bounds how long a submit waits for a live server. */
  strategy?: ServerStrategy;
  /** Ask every connection for WORK_EXCEPTION packets (default true; otherwise gearmand turns them into WORK_FAIL). */
  exceptions?: boolean;
  /** Milliseconds to wait for JOB_CREATED (default 10 000); also bounds status and echo replies. */
  submitTimeout?: number;
  /** Default whole-job timeout for foreground jobs in ms (default none). */
  timeout?: number;
  /**
   * Milliseconds `close()` lets jobs in flight finish before failing the rest with CLOSED (default
   * 0: at once; ClientGearman's default is 5000). New submits are refused from the start of close().
   */
  closeTimeout?: number;
  /**
   * Milliseconds after which a connection that had no job is closed (default 0: never): no job in
   * flight there and none ended there for that long (the heartbeat is no job). It emits
   * `disconnected` without an error and stays down until a submit needs it: that submit waits for
   * the reconnect (within `connectTimeout`), as while a server is down. For clients that submit
   * now and then to many servers, or through links that drop quiet connections.
   */
  idleTimeout?: number;
}

/** One job of {@link GearmanClient.runAll}: what `submit()` takes. */
export interface JobRequest {
  functionName: string;
  payload?: Buffer | string;
  options?: SubmitOptions;
}

/** Options of {@link GearmanClient.runAll}. */
export interface RunAllOptions {
  /** Jobs in flight at once (default: all of them); the next is submitted as one settles. */
  concurrency?: number;
  /**
   * One deadline in ms for the whole list (default none). Each job is submitted with what is left
   * of it as its `timeout` (background jobs: as their `submitTimeout`), or its own if shorter, so a
   * job still queued at the deadline is cancelled and a running one's result dropped, as for any
   * job timeout; jobs not submitted by then are never sent. All of those get TIMEOUT.
   */
  timeout?: number;
}

/** A job's outcome in {@link GearmanClient.runAll}, as Promise.allSettled's, with the job once submitted. */
export type JobOutcome =
  | { status: 'fulfilled'; value: Buffer; job: GearmanJob }
  | { status: 'rejected'; reason: GearmanError; job: GearmanJob | undefined };

export interface GearmanClientEvents {
  connected: [server: string];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
}

const noop = () => undefined;
const STRATEGIES: readonly ServerStrategy[] = ['hash', 'round-robin', 'failover'];

/**
 * Gearman client over one or many gearmand servers: submits jobs (pipelined, many in flight per
 * connection), streams their updates, reconnects by itself. A façade over its parts: the submit
 * request builder, one submit queue and job table per connection, the job timers, the router
 * (with its parked jobs and retries) and the canceller.
 */
export class GearmanClient extends EventEmitter<GearmanClientEvents> {
  /** @internal one per server, in the order given; users see `servers` and the events. */
  readonly connections: readonly GearmanConnection[];
  private readonly settings: ResolvedConnectionOptions;
  private readonly pool: ServerPool;
  private readonly tables = new Map<GearmanConnection, JobTable>();
  private readonly submits = new Map<GearmanConnection, SubmitQueue>();
  private readonly timers: JobTimers;
  private readonly router: Router;
  private readonly canceller: Canceller;
  private readonly submitTimeout: number;
  private readonly exceptions: boolean;
  private readonly cancelJob = (job: JobControl): Promise<void> => this.canceller.cancel(job);
  private readonly closeTimeout: number;
  /** Foreground jobs' default timeout (the `timeout` option). */
  private readonly timeout: number | undefined;
  /** The `idleTimeout` option's part; undefined when off. */
  private readonly idle: IdleConnections | undefined;
  /** Jobs submitted and not settled yet: close() waits for them to reach 0 (or its timeout). */
  private unfinished = 0;
  /** Set while close() drains: called when the last unfinished job settles. */
  private drained: (() => void) | undefined;
  /** close() was called: submits are refused (jobs in flight may still finish). */
  private closing: Promise<void> | undefined;
  /** The connections are closed (after the drain). */
  private closed = false;

  constructor(options: GearmanClientOptions = {}) {
    super();
    this.settings = resolveConnectionOptions(options);
    const strategy = options.strategy ?? 'hash';
    if (!STRATEGIES.includes(strategy))
      throw invalidArgument(`Invalid strategy ${JSON.stringify(strategy)}: use ${STRATEGIES.join(', ')}`);
    this.submitTimeout = positiveInt('submitTimeout', options.submitTimeout, ENGINE_DEFAULTS.submitTimeout);
    const timeout = options.timeout === undefined ? undefined : positiveInt('timeout', options.timeout, 0);
    this.timeout = timeout;
    this.closeTimeout = optionalMs('closeTimeout', options.closeTimeout, 0);
    const idleTimeout = optionalMs('idleTimeout', options.idleTimeout, 0);
    this.idle = idleTimeout > 0 ? new IdleConnections(idleTimeout, (conn) => this.tables.get(conn)!.size) : undefined;
    this.exceptions = options.exceptions !== false;
    this.canceller = new Canceller(this.settings.connectTimeout, this.tables, (handle, conn) =>
      this.statusOn(conn, handle),
    );
    this.timers = new JobTimers(
      { submitTimeout: this.submitTimeout, timeout },
      (job) => this.untrack(job),
      (job) => this.canceller.giveUp(job),
    );
    this.connections = this.settings.servers.map((server) =>
      this.createConnection(new GearmanConnection(server, this.settings)),
    );
    this.pool = new ServerPool(this.connections);
    this.router = new Router(
      {
        strategy,
        connectTimeout: this.settings.connectTimeout,
        submitTimeout: this.submitTimeout,
        reconnects: this.settings.reconnect !== false,
      },
      this.pool,
      this.submits,
      this.timers,
      (ms) => this.noServerError(ms),
      (conn, job, error) => this.onSubmitError(conn, job, error),
    );
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
      await connectAny(this.connections, this.settings.connectTimeout);
    } catch (err) {
      this.assertOpen(); // close() during connect(): CLOSED, not NO_SERVER
      throw err;
    }
  }

  /** Submits a job. The returned job streams its updates and settles once. */
  submit(functionName: string, payload?: Buffer | string, options: SubmitOptions = {}): GearmanJob {
    this.assertOpen();
    const request = buildSubmitRequest(functionName, payload, options);
    checkSubmitSize(request, this.settings.maxPacketSize);
    const job = new JobControl(request, this.cancelJob);
    this.timers.arm(job, options);
    this.unfinished++;
    try {
      this.router.route(job);
    } catch (error) {
      // Settle it, so its timers and close()'s count are released.
      job.fail(
        error instanceof GearmanError ? error : new GearmanError('SERVER_ERROR', String(error), { cause: error }),
      );
      throw error;
    }
    return job.job;
  }

  /** Submits and waits for the result of a foreground job. */
  run(functionName: string, payload?: Buffer | string, options?: SubmitOptions): Promise<Buffer> {
    return this.submit(functionName, payload, options).result();
  }

  /**
   * Submits a list of jobs, at most `concurrency` in flight, within one deadline (`timeout`), and
   * resolves with each one's outcome in the order given once all have settled. It never rejects
   * for a job: a submit refused at once (INVALID_ARGUMENT, CLOSED, ...) is that job's outcome. It
   * rejects only for invalid `options`.
   */
  runAll(requests: readonly JobRequest[], options: RunAllOptions = {}): Promise<JobOutcome[]> {
    let concurrency: number;
    let deadline: number | undefined;
    try {
      if (!Array.isArray(requests))
        throw invalidArgument('runAll takes an array of { functionName, payload, options }');
      concurrency = positiveInt(
        'concurrency',
        options.concurrency,
        Math.max(1, requests.length),
        Number.MAX_SAFE_INTEGER,
      );
      if (options.timeout !== undefined) deadline = performance.now() + positiveInt('timeout', options.timeout, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    const total = requests.length;
    const outcomes = new Array<JobOutcome>(total);
    let next = 0;
    let inFlight = 0;
    let settled = 0;
    return new Promise((resolve) => {
      const settle = (i: number, outcome: JobOutcome): void => {
        outcomes[i] = outcome;
        if (++settled === total) resolve(outcomes);
      };
      const launch = (): void => {
        while (inFlight < concurrency && next < total) {
          const i = next++;
          const left = deadline === undefined ? undefined : Math.ceil(deadline - performance.now());
          if (left !== undefined && left <= 0) {
            const { functionName } = requests[i] ?? {};
            settle(i, {
              status: 'rejected',
              reason: new GearmanTimeoutError(
                `runAll's ${options.timeout} ms deadline passed before job ${i} (${String(functionName)}) was submitted: it was not sent`,
              ),
              job: undefined,
            });
            continue;
          }
          let job: GearmanJob;
          try {
            const { functionName, payload, options: submitOptions } = requests[i];
            job = this.submit(
              functionName,
              payload,
              left === undefined ? submitOptions : this.within(submitOptions, left),
            );
          } catch (error) {
            settle(i, { status: 'rejected', reason: asGearmanError(error), job: undefined });
            continue;
          }
          inFlight++;
          job.result().then(
            (value) => done(i, { status: 'fulfilled', value, job }),
            (reason: GearmanError) => done(i, { status: 'rejected', reason, job }),
          );
        }
      };
      const done = (i: number, outcome: JobOutcome): void => {
        inFlight--;
        settle(i, outcome);
        launch();
      };
      if (total === 0) resolve(outcomes);
      else launch();
    });
  }

  /** A job's options bounded by `left` ms of runAll's deadline: its timeout, or its submit timeout in the background. */
  private within(options: SubmitOptions = {}, left: number): SubmitOptions {
    if (options.background === true || options.epoch !== undefined) {
      const submitTimeout = Math.min(options.submitTimeout ?? this.submitTimeout, left);
      return { ...options, submitTimeout };
    }
    return { ...options, timeout: Math.min(options.timeout ?? this.timeout ?? left, left) };
  }

  /** GET_STATUS for a handle on one server (by default, every server until one knows it). */
  async getStatus(handle: string, server?: string): Promise<JobStatus> {
    // With idleTimeout, a connection closed for idleness may hold the handle (a background job's): it is reconnected.
    const conns = server
      ? [this.connectionFor(server)]
      : this.connections.filter((c) => c.connected || (this.idle !== undefined && c.state === 'idle'));
    let last: JobStatus | undefined;
    for (const conn of conns) {
      last = await this.statusOn(conn, handle);
      if (last.known) return last;
    }
    if (!last) throw this.noServerError();
    return last;
  }

  /**
   * GET_STATUS_UNIQUE: looked up by unique across all functions
   * (docs/gearmand-behaviour.md#job-status), on the server the unique hashes to first.
   */
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
      last = statusOf(await conn.call(PacketType.GET_STATUS_UNIQUE, [unique], this.submitTimeout), conn);
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
    await conn.call(PacketType.ECHO_REQ, [typeof data === 'string' ? Buffer.from(data) : data], this.submitTimeout);
    return performance.now() - start;
  }

  /**
   * Closes the client. New submits fail with CLOSED at once; jobs in flight may finish for up to
   * `timeout` ms (default: the `closeTimeout` option, 0), then the rest fail with CLOSED and every
   * connection is closed: gearmand drops the foreground jobs still queued (no client is left,
   * docs/gearmand-behaviour.md#lost-clients), running ones finish on their workers with nobody to
   * hear the result. A second call returns the first one's promise.
   */
  close(timeout: number = this.closeTimeout): Promise<void> {
    try {
      optionalMs('close timeout', timeout, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    this.closing ??= this.shutdown(timeout);
    return this.closing;
  }

  private async shutdown(timeout: number): Promise<void> {
    if (timeout > 0 && this.unfinished > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = undefined;
    }
    this.closed = true;
    this.idle?.close();
    const error = new GearmanConnectionError(
      'CLOSED',
      timeout > 0
        ? `The Gearman client was closed: the job did not finish within close()'s ${timeout} ms`
        : 'The Gearman client was closed',
    );
    this.router.close(error);
    await Promise.all([...this.connections.map((c) => c.close()), this.canceller.close()]);
    for (const table of this.tables.values()) for (const job of table.drain()) job.fail(error);
  }

  private createConnection(conn: GearmanConnection): GearmanConnection {
    const table = new JobTable();
    this.tables.set(conn, table);
    this.submits.set(
      conn,
      new SubmitQueue(
        conn,
        (job, packet) => this.onCreated(conn, table, job, packet),
        (job, error) => this.onSubmitError(conn, job, error),
        this.timers.submitTimedOut,
      ),
    );
    conn.onPacket = (packet) => this.onPacket(conn, table, packet);
    conn.onOversize = (packet) => this.onOversize(conn, table, packet);
    conn.onConnect = () => this.onConnect(conn);
    conn.on('connected', (s) => {
      this.idle?.connected(conn);
      this.emit('connected', s);
      this.router.serverUp(conn);
      this.router.releaseParked();
    });
    conn.on('disconnected', (s, e) => {
      this.idle?.disconnected(conn);
      this.router.serverLost(conn);
      this.onDisconnect(conn, table, e);
      this.emit('disconnected', s, e);
    });
    conn.on('reconnecting', (s, a, d) => {
      this.router.serverReconnecting(conn);
      this.emit('reconnecting', s, a, d);
      // A server that failed its first attempt is now known down: jobs waiting for it go elsewhere.
      this.router.releaseParked();
    });
    conn.on('error', (e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e);
    });
    return conn;
  }

  private onConnect(conn: GearmanConnection): void {
    if (this.exceptions) conn.request(PacketType.OPTION_REQ, ['exceptions'], { resolve: noop, reject: noop });
    if (this.settings.clientId) conn.send(PacketType.SET_CLIENT_ID, [this.settings.clientId]);
  }

  private onCreated(conn: GearmanConnection, table: JobTable, job: JobControl, packet: Packet): void {
    const handle = readHandle(packet);
    if (job.finished) {
      // Timed out, aborted or cancelled before gearmand answered (in a burst, JOB_CREATED can come
      // long after submitTimeout): take the job back by the canceller's one rule. gearmand counts
      // a foreground submit as a waiting client until the job ends.
      if (!job.request.background || job.state === 'failed') {
        job.handle = handle;
        if (!job.request.background) table.addDetached(handle);
        this.canceller.giveUp(job, true);
      }
      return;
    }
    // Two submits of one unique on one connection share a handle
    // (docs/gearmand-behaviour.md#coalescing): the table keeps both.
    if (!job.request.background) table.add(handle, job);
    job.markCreated(handle);
  }

  private onSubmitError(conn: GearmanConnection, job: JobControl, error: Error): void {
    if (job.finished) return;
    if (error instanceof GearmanConnectionError && error.code === 'CONNECTION_LOST') {
      this.router.lost(conn, job, error);
      return;
    }
    job.fail(error instanceof GearmanError ? error : new GearmanError('SERVER_ERROR', error.message, { cause: error }));
  }

  private onDisconnect(conn: GearmanConnection, table: JobTable, cause: Error | undefined): void {
    // Foreground jobs on a lost connection would never hear from gearmand again: fail (or retry) now.
    const jobs = table.drain();
    // close() drops the connections itself: that is not a lost connection, and nothing will be retried.
    const error = this.closed
      ? new GearmanConnectionError('CLOSED', 'The Gearman client was closed while the job was running', conn.address)
      : new GearmanConnectionError(
          'CONNECTION_LOST',
          `Lost the connection to gearmand at ${conn.address} while the job was running` +
            // Declared dead by the heartbeat: say so (the cause has the detail).
            `${conn.dead ? ' (the server was declared dead: it stopped answering)' : ''}; gearmand keeps running it, ` +
            'but its result cannot reach this client (submit with a unique and `retry` to resubmit automatically)',
          conn.address,
          { cause },
        );
    for (const job of jobs) this.router.lost(conn, job, error);
  }

  private onPacket(conn: GearmanConnection, table: JobTable, packet: Packet): void {
    switch (packet.type) {
      case PacketType.WORK_DATA:
        table.each(readHandle(packet), emitData, 'data', readData(packet));
        return;
      case PacketType.WORK_WARNING:
        table.each(readHandle(packet), emitData, 'warning', readData(packet));
        return;
      case PacketType.WORK_STATUS: {
        const { numerator, denominator } = readWorkStatus(packet);
        table.each(readHandle(packet), emitStatus, numerator, denominator);
        return;
      }
      case PacketType.WORK_COMPLETE:
        table.end(readHandle(packet), settle, readData(packet), undefined);
        return;
      case PacketType.WORK_EXCEPTION:
        table.end(readHandle(packet), failWithException, readData(packet), undefined);
        return;
      case PacketType.WORK_FAIL:
        table.end(readHandle(packet), this.failJob, undefined, undefined);
        return;
      case PacketType.ERROR:
        if (this.listenerCount('error') > 0) this.emit('error', conn.serverError(packet));
        return;
      default:
        return;
    }
  }

  /**
   * A WORK_* packet above maxPacketSize, skipped unread by the decoder (the connection stays): the
   * job of its handle fails with PACKET_TOO_LARGE, the other jobs on the connection go on.
   */
  private onOversize(conn: GearmanConnection, table: JobTable, packet: OversizedPacket): void {
    const { type, handle } = packet;
    if (handle !== undefined && RESULT_TYPES.has(type)) {
      table.end(handle, failTooLarge, packet, conn.address);
      return;
    }
    if (this.listenerCount('error') > 0) {
      this.emit(
        'error',
        new GearmanProtocolError(
          'PACKET_TOO_LARGE',
          `gearmand at ${conn.address} sent ${packetName(type)} of ${packet.size} bytes, above this client's ` +
            `maxPacketSize of ${packet.limit}: it was skipped (raise maxPacketSize to accept it)`,
        ),
      );
    }
  }

  /** WORK_FAIL: the job failed, or answers our own `cancel job`. */
  private readonly failJob = (job: JobControl): void => {
    const { functionName } = job.request;
    const handle = job.handle!;
    if (this.canceller.isCancelling(job))
      job.fail(new GearmanCancelledError(`Job ${functionName} (${handle}) was cancelled while queued`));
    else
      job.fail(
        new GearmanJobError('JOB_FAILED', `Job ${functionName} (${handle}) failed (WORK_FAIL)`, handle, functionName),
      );
  };

  /** Stops tracking a settled job (timeouts, aborts, cancels). */
  private untrack(job: JobControl): void {
    if (--this.unfinished === 0 && this.drained) this.drained();
    if (this.idle !== undefined && job.connection !== undefined) this.idle.touch(job.connection);
    if (job.request.background || !job.connection || job.handle === undefined) return;
    this.tables.get(job.connection)!.remove(job.handle, job);
  }

  private async statusOn(conn: GearmanConnection, handle: string): Promise<JobStatus> {
    await this.ensureConnected(conn);
    return statusOf(await conn.call(PacketType.GET_STATUS, [handle], this.submitTimeout), conn);
  }

  private connectionFor(server: string): GearmanConnection {
    const conn = this.connections.find((c) => c.address === server);
    if (!conn) throw invalidArgument(`Unknown Gearman server ${server}: this client has ${this.servers.join(', ')}`);
    return conn;
  }

  private async ensureConnected(conn: GearmanConnection): Promise<void> {
    // Not assertOpen(): status queries of cancels still run while close() drains.
    if (this.closed) throw new GearmanConnectionError('CLOSED', 'The Gearman client is closed: create a new one');
    conn.start();
    await conn.waitConnected(this.settings.connectTimeout);
  }

  /** NO_SERVER naming each server's last socket error, carried as the cause (a TLS certificate error, ...). */
  private noServerError(timeout = this.settings.connectTimeout): GearmanConnectionError {
    return noServerError(this.connections, timeout);
  }

  private assertOpen(): void {
    if (this.closed) throw new GearmanConnectionError('CLOSED', 'The Gearman client is closed: create a new one');
    if (this.closing)
      throw new GearmanConnectionError(
        'CLOSED',
        'The Gearman client is closing (close() lets jobs in flight finish): it takes no new work; create a new one',
      );
  }
}

function asGearmanError(error: unknown): GearmanError {
  return error instanceof GearmanError ? error : new GearmanError('INVALID_ARGUMENT', String(error), { cause: error });
}

function statusOf(reply: Packet, conn: GearmanConnection): JobStatus {
  const s = readStatusReply(reply);
  const status = { known: s.known, running: s.running, numerator: s.numerator, denominator: s.denominator };
  return s.waitingClients === undefined
    ? { ...status, server: conn.address }
    : { ...status, waitingClients: s.waitingClients, server: conn.address };
}

/** The WORK_* packets that carry a job's data: one too large to read fails the job. */
const RESULT_TYPES: ReadonlySet<number> = new Set([
  PacketType.WORK_COMPLETE,
  PacketType.WORK_DATA,
  PacketType.WORK_WARNING,
  PacketType.WORK_EXCEPTION,
  PacketType.WORK_STATUS,
]);

function failTooLarge(job: JobControl, packet: OversizedPacket, server: string): void {
  const { functionName } = job.request;
  const what =
    packet.type === PacketType.WORK_COMPLETE
      ? 'result'
      : packet.type === PacketType.WORK_EXCEPTION
        ? 'exception'
        : 'update';
  job.fail(
    new GearmanProtocolError(
      'PACKET_TOO_LARGE',
      `The job's ${what} is too large for this client: ${packetName(packet.type)} of ${packet.size} bytes, above its ` +
        `maxPacketSize of ${packet.limit}, so it was skipped unread and the job failed here (job ${job.handle} of ` +
        `${functionName}, gearmand at ${server}; the job itself ran on its worker). Raise maxPacketSize on the client ` +
        'to receive results this large.',
    ),
  );
}

function emitData(job: JobControl, event: 'data' | 'warning', data: Buffer): void {
  job.job.emit(event, data);
}

function emitStatus(job: JobControl, numerator: number, denominator: number): void {
  job.job.emit('status', numerator, denominator);
}

function settle(job: JobControl, data: Buffer): void {
  job.settle(data);
}

function failWithException(job: JobControl, data: Buffer): void {
  const { functionName } = job.request;
  const handle = job.handle!;
  job.job.emit('exception', data);
  job.fail(
    new GearmanJobError(
      'JOB_EXCEPTION',
      `Job ${functionName} (${handle}) failed with an exception: ${preview(data)}`,
      handle,
      functionName,
      data,
    ),
  );
}

function preview(data: Buffer): string {
  const text = data.toString('utf8', 0, Math.min(data.length, 200));
  return data.length > 200 ? `${text}...` : text;
}
