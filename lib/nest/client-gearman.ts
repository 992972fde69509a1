import type { EventEmitter } from 'node:events';
import type { LoggerService } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { Observable, type Subscriber } from 'rxjs';
import {
  GearmanClient,
  type GearmanClientOptions,
  GearmanConnectionError,
  GearmanError,
  GearmanJob,
  GearmanJobError,
  type SubmitOptions,
} from '../engine/index.js';
import { optionalMs } from '../engine/options.js';
import { type GearmanCodec, GearmanCodecError, resolveCodec, wrapMetadata } from './codecs.js';
import { DEFAULT_CLIENT_CLOSE_TIMEOUT } from './constants.js';
import { GearmanRpcError, rejectNestSerializers } from './errors.js';
import { type GearmanEvents, GearmanStatus, statusOfConnections } from './events/gearman.events.js';
import type { GearmanClientProxyOptions } from './interfaces.js';
import { GearmanRecord } from './record-builders/gearman.record-builder.js';
import { ClientTelemetry, type JobTrace } from './telemetry/client-telemetry.js';
import { logConnections, transportLogger } from './telemetry/logs.js';
import { resolveTelemetry } from './telemetry/telemetry.js';

/**
 * What `job()` emits while a job runs, ending with `complete` (a background or epoch job: `created`,
 * then `complete` with its handle as `data`).
 */
export type GearmanJobEvent<T = unknown> =
  | { type: 'created'; handle: string; server: string }
  | { type: 'status'; numerator: number; denominator: number }
  | { type: 'warning'; data: unknown }
  | { type: 'data'; data: T }
  | { type: 'complete'; data: T | undefined };

const noop = () => undefined;
/** A job just submitted, the codec of its payloads, and its span (when telemetry records one). */
interface Submitted {
  job: GearmanJob;
  codec: GearmanCodec;
  trace: JobTrace | undefined;
}

/** Submit options of a plain payload (no GearmanRecord): shared, the engine only reads them. */
const FOREGROUND: SubmitOptions = Object.freeze({});
const BACKGROUND: SubmitOptions = Object.freeze({ background: true });
/** What follow()'s decode returns for a result the codec could not read (already reported). */
const UNREADABLE = Symbol('unreadable');

/**
 * Gearman ClientProxy: `send()` runs a foreground job and streams its WORK_DATA and result,
 * `emit()` submits a background job and resolves with its handle.
 *
 * ```ts
 * ClientsModule.register([{ name: 'JOBS', customClass: ClientGearman, options: { servers: ['127.0.0.1:4730'] } }])
 * ```
 */
export class ClientGearman extends ClientProxy<GearmanEvents, string> {
  private client: GearmanClient;
  private closed = false;
  /** close() is draining: calls are refused until it is done (then the next call reconnects). */
  private closing: Promise<void> | undefined;
  private readonly closeTimeout: number;
  private readonly codec: GearmanCodec;
  private connecting: Promise<void> | undefined;
  /** `connect()` has resolved for the current engine client: `send()` publishes at once. */
  private ready = false;
  /** Listeners given to `on()`, attached again to the engine client made after a `close()`. */
  private readonly listeners: [event: string, callback: (...args: unknown[]) => void][] = [];
  private readonly logger: LoggerService;
  /** Spans and metrics (the `telemetry` option), once `connect()` has loaded them; undefined: none. */
  private telemetry: ClientTelemetry | undefined;
  private telemetryLoaded: Promise<void> | undefined;

  constructor(protected readonly options: GearmanClientProxyOptions = {}) {
    super();
    rejectNestSerializers(options, 'ClientGearman');
    this.closeTimeout = optionalMs('closeTimeout', options.closeTimeout, DEFAULT_CLIENT_CLOSE_TIMEOUT);
    this.codec = resolveCodec(options.codec);
    this.logger = transportLogger(options.logger, ClientGearman.name);
    this.client = this.attach(this.createClient(this.getClientOptions()));
  }

  /**
   * Connects (once; a failed attempt is forgotten so the next call tries again). After `close()`,
   * connects a new engine client, as Nest's own clients allow `close()` then `connect()` (so a
   * `send()` after `close()` opens connections again). While `close()` drains, rejects with CLOSED.
   */
  connect(): Promise<void> {
    if (this.closing) {
      return Promise.reject(
        new GearmanConnectionError(
          'CLOSED',
          'ClientGearman is closing (close() lets the calls in flight finish, up to closeTimeout): new calls are refused',
        ),
      );
    }
    if (this.closed) {
      this.closed = false;
      this.client = this.attach(this.createClient(this.getClientOptions()));
    }
    if (!this.connecting) {
      const client = this.client;
      this.telemetryLoaded ??= resolveTelemetry(this.options.telemetry, this.logger).then((telemetry) => {
        if (telemetry) this.telemetry = new ClientTelemetry(telemetry);
      });
      this.connecting = Promise.all([client.connect(), this.telemetryLoaded]).then(
        () => {
          if (client === this.client && !this.closed) this.ready = true;
        },
        (err: unknown) => {
          this.connecting = undefined;
          throw err;
        },
      );
    }
    return this.connecting;
  }

  /**
   * Graceful: new calls fail at once with CLOSED, calls in flight may finish for up to
   * `closeTimeout` ms (default 5000), then the rest fail with CLOSED and the connections close.
   */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.connecting = undefined;
    this.ready = false;
    this.closed = true;
    const closing = this.client.close(this.closeTimeout).then(() => this._status$.next(GearmanStatus.DISCONNECTED));
    this.closing = closing;
    try {
      await closing;
    } finally {
      if (this.closing === closing) this.closing = undefined;
    }
  }

  /**
   * Listens to the engine client's connection events, also those of the client made after a
   * `close()`; returns what removes this listener.
   */
  override on<K extends keyof GearmanEvents>(event: K, callback: GearmanEvents[K]): () => void {
    const entry: [string, (...args: unknown[]) => void] = [event, callback as (...args: unknown[]) => void];
    this.listeners.push(entry);
    (this.client as EventEmitter).on(event, entry[1]);
    return () => {
      const at = this.listeners.indexOf(entry);
      if (at < 0) return;
      this.listeners.splice(at, 1);
      (this.client as EventEmitter).off(event, entry[1]);
    };
  }

  /**
   * The engine client's options (override to adjust them). Called from the constructor, and again
   * for the new engine client that `connect()` makes after a `close()`.
   */
  protected getClientOptions(): GearmanClientOptions {
    return this.options;
  }

  /** Makes the engine client (override to wrap or replace it); called where `getClientOptions()` is. */
  protected createClient(options: GearmanClientOptions): GearmanClient {
    return new GearmanClient(options);
  }

  /** Follows the engine client's connections in `status` and attaches the listeners given to `on()`. */
  private attach(client: GearmanClient): GearmanClient {
    // A closed client's late events must not report on its successor.
    client.on('connected', () => client === this.client && this._status$.next(GearmanStatus.CONNECTED));
    client.on('disconnected', () => client === this.client && this.updateStatus());
    client.on('reconnecting', () => client === this.client && this.updateStatus());
    for (const [event, callback] of this.listeners) (client as EventEmitter).on(event, callback);
    logConnections(client, this.logger);
    return client;
  }

  /** The engine's GearmanClient (status queries, echo, raw submits). */
  unwrap<T = GearmanClient>(): T {
    return this.client as T;
  }

  /**
   * A job with its progress: emits `created`, every `status` (WORK_STATUS numerator and
   * denominator), `warning` and `data`, then `complete` with the result. Errors as `send()` does.
   * A background or epoch record completes once the job is created: `created`, then `complete`
   * with the handle as `data`. Unsubscribing cancels the job if it is still queued and no other
   * caller waits for it.
   */
  job<T = unknown>(pattern: unknown, data: unknown): Observable<GearmanJobEvent<T>> {
    return new Observable<GearmanJobEvent<T>>((observer) => {
      let teardown: (() => void) | undefined;
      let closed = false;
      this.connect().then(
        () => {
          if (closed) return;
          let submitted: Submitted;
          try {
            submitted = this.submit(this.createPacket(pattern, data), false);
          } catch (err) {
            observer.error(err);
            return;
          }
          const { job, codec, trace } = submitted;
          job.on('created', (handle) => observer.next({ type: 'created', handle, server: job.server! }));
          if (job.background) {
            job.created().then(
              (handle) => {
                observer.next({ type: 'complete', data: handle as T });
                observer.complete();
              },
              (err: unknown) => observer.error(workerError(err as GearmanError)),
            );
            return;
          }
          job.on('status', (numerator, denominator) => observer.next({ type: 'status', numerator, denominator }));
          job.on('warning', (d) => observer.next({ type: 'warning', data: this.decodeQuietly(codec, d) }));
          teardown = this.follow(job, codec, trace, ({ err, response, isDisposed }) => {
            if (err !== undefined) return observer.error(err);
            if (isDisposed) {
              observer.next({ type: 'complete', data: response as T | undefined });
              return observer.complete();
            }
            observer.next({ type: 'data', data: response as T });
          });
        },
        (err) => observer.error(err),
      );
      return () => {
        closed = true;
        teardown?.();
      };
    });
  }

  /**
   * ClientProxy's `send()` (cold: connect, then publish on subscribe; values, errors and completion
   * through `createObserver`), without its per-call `defer(async connect)` + `mergeMap` layers once
   * connected: the job is submitted as the Observable is subscribed. Those layers (a promise, an
   * inner Observable and three subscribers per call) cost more than the submit (bench/adapter-nest/README.md).
   */
  override send<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    // Nil pattern or data: Nest's own InvalidMessageException.
    if (pattern === null || pattern === undefined || data === null || data === undefined)
      return super.send(pattern, data);
    return new Observable<TResult>((observer) => {
      const callback = this.createObserver(observer);
      if (this.ready) return this.publish(this.createPacket(pattern, data), callback);
      let teardown: (() => void) | undefined;
      let unsubscribed = false;
      this.connect().then(
        () => {
          if (!unsubscribed) teardown = this.publish(this.createPacket(pattern, data), callback);
        },
        (err: unknown) => observer.error(err),
      );
      return () => {
        unsubscribed = true;
        teardown?.();
      };
    });
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    try {
      const { job, codec, trace } = this.submit(packet, false);
      if (job.background) {
        job.created().then(
          (handle) => callback({ response: handle, isDisposed: true }),
          (err) => callback({ err }),
        );
        return noop;
      }
      return this.follow(job, codec, trace, callback);
    } catch (err) {
      callback({ err });
      return noop;
    }
  }

  /**
   * ClientProxy's `emit()` (hot: the background job is submitted whether or not anyone subscribes;
   * subscribers get its handle, then completion, or the error), without the per-call
   * `defer(async connect)` + `mergeMap` + `connectable` chain: a Subject fed by `dispatchEvent`.
   * With thousands of emits in flight those chains cost more than the submits, in GC (bench/adapter-nest/README.md).
   */
  override emit<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    // Nil pattern or data: Nest's own InvalidMessageException.
    if (pattern === null || pattern === undefined || data === null || data === undefined)
      return super.emit(pattern, data);
    const event = new EmittedEvent<TResult>();
    if (this.ready) this.dispatchTo(event, pattern, data);
    else this.connect().then(() => this.dispatchTo(event, pattern, data), event.failed);
    return event.observable;
  }

  /**
   * Submits an emit()'s background job. `dispatchEvent` answers with a promise; while it is this
   * class's own, the job's events feed the event directly: two promises and their closures fewer
   * per emit, which count when thousands wait for JOB_CREATED at once (bench/adapter-nest/README.md).
   */
  private dispatchTo<T>(event: EmittedEvent<T>, pattern: unknown, data: unknown): void {
    let job: GearmanJob;
    try {
      // A throwing dispatch hook errors the event, as in Nest's emit().
      const packet = this.createPacket(pattern, data);
      if (this.dispatchEvent !== ClientGearman.prototype.dispatchEvent) {
        this.dispatchEvent<T>(packet).then(event.created, event.failed);
        return;
      }
      job = this.submit(packet, true).job;
    } catch (err) {
      event.failed(err);
      return;
    }
    // `on`, not `once` (a wrapper per listener): the event takes only its first outcome.
    job.on('created', event.created as (handle: string) => void);
    job.on('fail', event.failed);
  }

  /** Background job; resolves with its handle once gearmand created it. */
  protected dispatchEvent<T = string>(packet: ReadPacket): Promise<T> {
    try {
      return this.submit(packet, true).job.created() as Promise<T>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private submit(packet: ReadPacket, background: boolean): Submitted {
    const fn = this.normalizePattern(packet.pattern);
    const data: unknown = packet.data;
    let payload: Buffer;
    let codec = this.codec;
    let submit: SubmitOptions = background ? BACKGROUND : FOREGROUND;
    const record = data instanceof GearmanRecord ? data : undefined;
    const trace = this.telemetry?.start(
      fn,
      background || record?.options.background === true || record?.options.epoch !== undefined,
    );
    try {
      if (record) {
        // The record's options go to the engine as they are (one copy, without the codec), so none is lost.
        const { codec: recordCodec, ...options } = record.options;
        if (recordCodec) codec = resolveCodec(recordCodec);
        payload = encode(codec, record.data);
        if (background) options.background = true;
        submit = options;
      } else payload = encode(codec, data);
      // Metadata, the trace context included, travels in the envelope only: a function not opted in
      // gets the payload alone.
      if (this.sendsMetadata(fn)) {
        const metadata = trace ? trace.inject(packet.metadata) : packet.metadata;
        if (metadata && Object.keys(metadata).length > 0) payload = wrapMetadata(metadata, payload);
      }
      const job = this.client.submit(fn, payload, submit);
      trace?.attach(job);
      return { job, codec, trace };
    } catch (err) {
      trace?.end(err);
      throw err;
    }
  }

  /** Maps a foreground job's updates onto Nest write packets; returns the unsubscribe teardown. */
  private follow(
    job: GearmanJob,
    codec: GearmanCodec,
    trace: JobTrace | undefined,
    callback: (packet: WritePacket) => void,
  ): () => void {
    const decode = (data: Buffer): unknown => {
      try {
        return codec.decode(data);
      } catch (err) {
        job.removeAllListeners();
        const failure = decodeFailure(job, codec, data, err);
        trace?.end(failure);
        callback({ err: failure });
        return UNREADABLE;
      }
    };
    job.on('data', (data) => {
      trace?.data(data);
      const value = decode(data);
      if (value !== UNREADABLE) callback({ response: value });
    });
    job.on('complete', (data) => {
      const value = decode(data);
      if (value === UNREADABLE) return;
      trace?.end();
      callback(value === undefined ? { isDisposed: true } : { response: value, isDisposed: true });
    });
    job.on('fail', (error) => {
      trace?.end(error);
      callback({ err: workerError(error) });
    });
    return () => {
      if (job.finished) return;
      job.removeAllListeners();
      trace?.unsubscribed();
      // Stop listening; take the job back if gearmand still has it queued (a running one finishes).
      job.cancel().catch(noop);
    };
  }

  private decodeQuietly(codec: GearmanCodec, data: Buffer): unknown {
    try {
      return codec.decode(data);
    } catch {
      return data.toString('utf8');
    }
  }

  private sendsMetadata(fn: string): boolean {
    const opt = this.options.sendMetadata;
    return opt === true || (Array.isArray(opt) && opt.includes(fn));
  }

  private updateStatus(): void {
    this._status$.next(statusOfConnections(this.client.connections));
  }
}

/**
 * What `emit()` returns: hot, as Nest's own emit (a Subject behind `connectable`) is: subscribers
 * get the handle, then completion, or the error; one who subscribes after the end gets only the
 * completion or the error. One object and one Observable per emit instead of a Subject, its
 * `asObservable()` and the promise chain.
 */
class EmittedEvent<T> {
  /** Subscribers waiting for the outcome; an unsubscribed one ignores it (rxjs Subscriber). */
  private waiting: Subscriber<T> | Subscriber<T>[] | undefined;
  private outcome: { error: unknown } | true | undefined;
  readonly observable = new Observable<T>((subscriber) => {
    const outcome = this.outcome;
    if (outcome === true) subscriber.complete();
    else if (outcome !== undefined) subscriber.error(outcome.error);
    else if (this.waiting === undefined) this.waiting = subscriber;
    else if (Array.isArray(this.waiting)) this.waiting.push(subscriber);
    else this.waiting = [this.waiting, subscriber];
  });

  readonly created = (handle: T): void => {
    if (this.outcome !== undefined) return;
    this.outcome = true;
    for (const subscriber of this.ended()) {
      subscriber.next(handle);
      subscriber.complete();
    }
  };

  readonly failed = (error: unknown): void => {
    if (this.outcome !== undefined) return;
    this.outcome = { error };
    for (const subscriber of this.ended()) subscriber.error(error);
  };

  private ended(): Subscriber<T>[] {
    const waiting = this.waiting;
    this.waiting = undefined;
    return waiting === undefined ? [] : Array.isArray(waiting) ? waiting : [waiting];
  }
}

/**
 * The error a caller of `send()` or `job()` sees: every WORK_EXCEPTION becomes a GearmanRpcError
 * (a Nest worker's error object, or whatever a foreign worker sent, parsed); anything else stays
 * the engine's typed error.
 */
function workerError(error: GearmanError): GearmanError {
  if (error instanceof GearmanJobError && error.code === 'JOB_EXCEPTION') return GearmanRpcError.fromException(error);
  return error;
}

/** The codec's payload; a custom codec's own failure becomes a GearmanCodecError (send() errors are GearmanErrors). */
function encode(codec: GearmanCodec, value: unknown): Buffer {
  try {
    return codec.encode(value);
  } catch (err) {
    if (err instanceof GearmanError) throw err;
    throw new GearmanCodecError(`The ${codec.name} codec could not write the payload: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function decodeFailure(job: GearmanJob, codec: GearmanCodec, data: Buffer, err: unknown): Error {
  return new GearmanCodecError(
    `The result of Gearman function "${job.functionName}" could not be read by the ${codec.name} codec: ${(err as Error).message} (${data.length} bytes). ` +
      "If the worker answers in plain text, use new GearmanRecordBuilder(data).setCodec('text') or the client's codec option.",
    { cause: err },
  );
}
