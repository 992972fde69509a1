import type { EventEmitter } from 'node:events';
import type { LoggerService } from '@nestjs/common';
import { CustomTransportStrategy, type MessageHandler, Server, type WritePacket } from '@nestjs/microservices';
import { finalize, isObservable, type Observable, type Subscription } from 'rxjs';
import {
  type ErrorMode,
  GearmanError,
  GearmanWorker,
  type GearmanWorkerOptions,
  type WorkerJob,
} from '../engine/index.js';
import { optionalMs } from '../engine/options.js';
import { describeError } from '../engine/worker/describe-error.js';
import { type GearmanCodec, hasMetadataEnvelope, resolveCodec, unwrapMetadata } from './codecs.js';
import { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_JOBS, GEARMAN_TRANSPORT } from './constants.js';
import { GearmanContext } from './ctx-host/gearman.context.js';
import { rejectNestSerializers } from './errors.js';
import { type GearmanEvents, GearmanStatus, statusOfConnections } from './events/gearman.events.js';
import type { GearmanPatternExtras, GearmanServerOptions } from './interfaces.js';
import { logConnections, transportLogger } from './telemetry/logs.js';
import { resolveTelemetry } from './telemetry/telemetry.js';
import { WorkerTelemetry } from './telemetry/worker-telemetry.js';

interface Route {
  handler: MessageHandler;
  codec: GearmanCodec;
  errorMode: ErrorMode;
  /** The server or the pattern opted in to read the metadata envelope (`readMetadata`). */
  readMetadata: boolean;
}

/**
 * Gearman transport strategy: every `@MessagePattern` and `@EventPattern` becomes a Gearman function
 * (CAN_DO) and each job gearmand assigns runs its handler through Nest's pipeline.
 *
 * ```ts
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new ServerGearman({ servers: ['127.0.0.1:4730'] }),
 * });
 * ```
 */
export class ServerGearman extends Server<GearmanEvents, GearmanStatus> implements CustomTransportStrategy {
  override transportId = GEARMAN_TRANSPORT;
  /** Event handlers are awaited, so their failures become WORK_FAIL and a log line here. */
  override readonly propagatesEventHandlerErrors = true;
  protected override readonly logger: LoggerService;
  private readonly worker: GearmanWorker;
  private readonly codec: GearmanCodec;
  private readonly routes = new Map<string, Route>();
  /** Nest's default start hook (just `done()`): while it is in place, jobs skip the hook machinery. */
  private readonly defaultStartHook = this.onProcessingStartHook;
  /** Spans and metrics (the `telemetry` option), loaded by `listen()`; undefined: none. */
  private telemetry: WorkerTelemetry | undefined;

  constructor(protected readonly options: GearmanServerOptions = {}) {
    super();
    rejectNestSerializers(options, 'ServerGearman');
    optionalMs('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT);
    this.logger = transportLogger(options.logger, ServerGearman.name);
    this.codec = resolveCodec(options.codec);
    this.worker = this.createWorker(this.getWorkerOptions());
    this.worker.on('connected', () => this._status$.next(GearmanStatus.CONNECTED));
    this.worker.on('disconnected', () => this.updateStatus());
    this.worker.on('reconnecting', () => this.updateStatus());
    logConnections(this.worker, this.logger);
    // Failures the worker itself answered (handlerTimeout, a stream past maxOutgoing): handler
    // failures are answered (and logged) here, after Nest's exception filters.
    this.worker.on('jobError', (err, job) => {
      this.logger.warn?.(`Job ${job.handle} of "${job.functionName}" failed: ${describe(err)}`);
      // Answered already: the span ends now, whenever the handler returns.
      this.telemetry?.failed(job, err);
      this.telemetry?.end(job);
    });
  }

  /** Registers every handler with gearmand and connects; reports failure through `callback`. */
  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      const telemetry = await resolveTelemetry(this.options.telemetry, this.logger);
      if (telemetry) this.telemetry = new WorkerTelemetry(telemetry);
      for (const [pattern, handler] of this.messageHandlers) this.registerRoute(pattern, handler);
      await this.worker.start();
      this.logger.log(`Gearman worker connected; functions: ${[...this.routes.keys()].join(', ') || '(none)'}`);
      callback();
    } catch (err) {
      await this.worker.close(0).catch(() => undefined);
      callback(err);
    }
  }

  /**
   * Graceful: stops taking jobs, lets running handlers finish (up to `closeTimeout`), then aborts
   * the ones still running (their `ctx.getSignal()` fires, their Observables are unsubscribed) and
   * disconnects; gearmand requeues their jobs.
   */
  async close(): Promise<void> {
    const abandoned = await this.worker.close(this.options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT);
    if (abandoned > 0) {
      this.logger.warn?.(`${abandoned} job(s) still running at close; gearmand requeues them for another worker`);
    }
    this._status$.next(GearmanStatus.DISCONNECTED);
  }

  /** Listens to the engine worker's connection events; returns what removes this listener. */
  on<K extends keyof GearmanEvents>(event: K, callback: GearmanEvents[K]): () => void {
    const listener = callback as (...args: unknown[]) => void;
    (this.worker as EventEmitter).on(event, listener);
    let listening = true;
    return () => {
      // Once only: the same callback may be listening twice.
      if (listening) (this.worker as EventEmitter).off(event, listener);
      listening = false;
    };
  }

  /** The engine worker's options: this server's with its defaults (override to adjust; called from the constructor). */
  protected getWorkerOptions(): GearmanWorkerOptions {
    return {
      ...this.options,
      maxJobs: this.options.maxJobs ?? DEFAULT_MAX_JOBS,
      // Errors are reported here, after Nest's exception filters have shaped them.
      errorMode: this.options.errorMode ?? 'exception',
    };
  }

  /** Makes the engine worker (override to wrap or replace it; called from the constructor). */
  protected createWorker(options: GearmanWorkerOptions): GearmanWorker {
    return new GearmanWorker(options);
  }

  /** The engine's GearmanWorker. */
  unwrap<T = GearmanWorker>(): T {
    return this.worker as T;
  }

  private registerRoute(pattern: string, handler: MessageHandler): void {
    const extras = (handler.extras ?? {}) as GearmanPatternExtras;
    const route: Route = {
      handler,
      codec: extras.codec ? resolveCodec(extras.codec) : this.codec,
      errorMode: extras.errorMode ?? this.options.errorMode ?? 'exception',
      readMetadata: extras.readMetadata ?? readsMetadata(this.options.readMetadata, pattern),
    };
    this.routes.set(pattern, route);
    this.worker.register(pattern, (job) => this.handleJob(job, route), {
      timeout: extras.timeout,
      errorMode: route.errorMode,
      handlerTimeout: extras.handlerTimeout,
      formatException: nestError,
    });
    const maxJobs = this.options.maxJobs ?? DEFAULT_MAX_JOBS;
    if (extras.timeout !== undefined && maxJobs > 1) {
      // gearmand 1.1.20 keeps one CAN_DO_TIMEOUT timer per connection and clears it on PRE_SLEEP,
      // which this worker sends whenever a slot is free and the queue is empty
      // (docs/gearmand-behaviour.md#can_do_timeout).
      this.logger.warn?.(
        `Pattern "${pattern}" has a timeout (CAN_DO_TIMEOUT ${extras.timeout} ms) but maxJobs is ${maxJobs}: gearmand clears its ` +
          'timer when the worker waits for more work, so the timeout only fires while every slot is busy. ' +
          'Use maxJobs: 1 for a dependable timeout, or enforce a deadline in the handler.',
      );
    }
  }

  private updateStatus(): void {
    this._status$.next(statusOfConnections(this.worker.connections));
  }

  /**
   * A payload the codec (or the metadata envelope) could not read: the caller gets an error report
   * and a warning is logged, both with the size and what to do but no payload bytes (payloads may
   * hold personal data or secrets); the first bytes go to the debug level only.
   */
  private decodeFailed(job: WorkerJob, route: Route, err: unknown): void {
    const payload = job.payload;
    const hint =
      !route.readMetadata && hasMetadataEnvelope(payload)
        ? ' It starts with a metadata envelope (\\0NGM1): if the caller is a ClientGearman with sendMetadata, set readMetadata on this server or pattern.'
        : '';
    const message =
      `Gearman function "${job.functionName}" could not read its payload of ${payload.length} bytes (job ${job.handle}): ${(err as Error).message}. ` +
      `Send ${route.codec.name === 'json' ? 'JSON' : `what the ${route.codec.name} codec reads`}, or set the pattern's codec (extras.codec: 'text' or 'raw').${hint}`;
    this.logger.warn?.(`${message} Enable the debug log level to see its first bytes.`);
    if (this.logger.debug) {
      const head = payload.subarray(0, PREVIEW_BYTES);
      this.logger.debug(
        `Payload of job ${job.handle} ("${job.functionName}"), first ${head.length} of ${payload.length} bytes: ` +
          `${JSON.stringify(head.toString('latin1'))} (hex ${head.toString('hex')})`,
      );
    }
    this.reportError(job, route, { status: 'error', message });
  }

  /** Runs one job; resolves when the job has been reported (the engine then frees the slot). */
  private handleJob(job: WorkerJob, route: Route): Promise<void> {
    let data: unknown;
    let context: GearmanContext;
    try {
      // The envelope is read only where the server or pattern opted in: any Gearman client can
      // send its bytes, and elsewhere the payload reaches the codec byte for byte. Only a payload
      // starting with NUL can be one (JSON and text never do).
      const raw = job.payload;
      let payload = raw;
      let metadata: Record<string, string> | undefined;
      if (route.readMetadata && raw.length > 0 && raw[0] === 0) ({ payload, metadata } = unwrapMetadata(raw));
      data = route.codec.decode(payload);
      context = new GearmanContext([job, route.codec, metadata]);
    } catch (err) {
      const failed = (): Promise<void> => {
        this.decodeFailed(job, route, err);
        return Promise.resolve();
      };
      return this.telemetry === undefined
        ? failed()
        : this.telemetry.process(job, route.handler.isEventHandler === true, undefined, failed);
    }
    if (this.telemetry === undefined) return this.run(job, route, data, context);
    return this.telemetry.process(job, route.handler.isEventHandler === true, context.getMetadata(), () =>
      this.run(job, route, data, context),
    );
  }

  private run(job: WorkerJob, route: Route, data: unknown, context: GearmanContext): Promise<void> {
    return route.handler.isEventHandler
      ? this.runEvent(job, route, data, context)
      : this.runMessage(job, route, data, context);
  }

  /**
   * Runs an event handler (awaiting a returned Observable), then WORK_COMPLETE, or WORK_FAIL and a
   * log line. Without processing hooks, the handler's promise is chained directly.
   */
  private runEvent(job: WorkerJob, route: Route, data: unknown, context: GearmanContext): Promise<void> {
    if (!this.hasHooks()) {
      const failed = (err: unknown): void => this.eventFailed(job, err);
      return invoke(route, data, context).then((result) => {
        if (!isObservable(result)) return eventDone(job);
        return untilEnd(job, result).then(() => eventDone(job), failed);
      }, failed);
    }
    return new Promise<void>((resolve) => {
      this.runWithProcessingHooks(context, async (runEndHook) => {
        try {
          const result = await route.handler(data, context);
          if (isObservable(result)) await untilEnd(job, result);
          eventDone(job);
        } catch (err) {
          this.eventFailed(job, err);
        } finally {
          runEndHook();
          resolve();
        }
      });
    });
  }

  private eventFailed(job: WorkerJob, err: unknown): void {
    this.telemetry?.failed(job, err);
    this.logger.error(`Event handler for "${job.functionName}" failed (job ${job.handle}): ${describe(err)}`);
    if (!job.finished) job.fail();
  }

  /**
   * Runs a message handler between the processing hooks, as Nest's `handleRequest` does. A plain
   * (or awaited) value, by far the common case, is reported at once: WORK_COMPLETE without the
   * Observable, operators and next-tick reply queue that `handleRequest`/`send` wrap around it
   * (a large share of the worker's CPU per job: bench/adapter-nest/README.md). An Observable goes through Nest's `send`.
   * Without processing hooks, the handler's promise is chained directly (no wrapper promise).
   */
  private runMessage(job: WorkerJob, route: Route, data: unknown, context: GearmanContext): Promise<void> {
    if (!this.hasHooks()) {
      return invoke(route, data, context).then(
        (result) => this.reply(job, route, result, noop),
        (err: unknown) => this.reportError(job, route, { status: 'error', message: describe(err) }),
      );
    }
    return new Promise<void>((resolve) => {
      // The start hook's promise: a rejection there (a handler that failed outside Nest's
      // pipeline, or a failing hook) must become an error report, not a crash.
      const running = this.runWithProcessingHooks(context, async (runEndHook) => {
        const result: unknown = await route.handler(data, context);
        const streaming = this.reply(job, route, result, runEndHook);
        resolve(streaming);
      }) as unknown;
      if (running instanceof Promise) {
        running.catch((err: unknown) => {
          this.reportError(job, route, { status: 'error', message: describe(err) });
          resolve();
        });
      }
    });
  }

  /**
   * A message handler's result: a plain value completes the job at once (what `send()` makes of
   * `of(value)`: the end hook as the stream completes, then one reply); an Observable goes through
   * Nest's `send`, and the returned promise settles once it has been reported. The subscription
   * ends when the job is aborted (deadline, a stream past maxOutgoing, close, a lost connection).
   */
  private reply(job: WorkerJob, route: Route, result: unknown, runEndHook: () => void): Promise<void> | undefined {
    if (isObservable(result)) {
      return new Promise<void>((resolve) => {
        const subscription = this.send(result.pipe(finalize(runEndHook)), this.responder(job, route, resolve));
        endOnAbort(job, subscription);
      });
    }
    runEndHook();
    this.complete(job, route, result);
    return undefined;
  }

  /**
   * Whether Nest's processing hooks are in use. While only the default start hook (which just
   * calls `done`) is set, jobs skip `runWithProcessingHooks`: two async closures and the end-hook
   * runner per job.
   */
  private hasHooks(): boolean {
    return this.onProcessingStartHook !== this.defaultStartHook || this.onProcessingEndHook !== undefined;
  }

  /** Nest's `send` callback for a handler's Observable: WORK_DATA for each value but the last, which completes. */
  private responder(job: WorkerJob, route: Route, resolve: () => void): (packet: WritePacket) => void {
    // Hold each value back until the next one (or the end) arrives, so the last one can go out
    // as WORK_COMPLETE and every earlier one as WORK_DATA.
    let held: { value: unknown } | undefined;
    return (packet) => {
      if (job.finished) return resolve();
      try {
        if (packet.err !== undefined) {
          if (held) job.sendData(route.codec.encode(held.value));
          held = undefined;
          this.reportError(job, route, packet.err);
        } else {
          if ('response' in packet && packet.response !== undefined) {
            if (held) job.sendData(route.codec.encode(held.value));
            held = { value: packet.response };
          }
          if (packet.isDisposed) {
            job.complete(held ? route.codec.encode(held.value) : undefined);
            held = undefined;
          }
        }
      } catch (err) {
        // E.g. a value the codec cannot write: the caller still gets a clear error.
        if (!job.finished) this.reportError(job, route, { status: 'error', message: describe(err) });
      }
      if (job.finished) resolve();
    };
  }

  /** WORK_COMPLETE with a handler's single value (none for undefined). */
  private complete(job: WorkerJob, route: Route, value: unknown): void {
    if (job.finished) return;
    try {
      job.complete(value === undefined ? undefined : route.codec.encode(value));
    } catch (err) {
      // E.g. a value the codec cannot write: the caller still gets a clear error.
      if (!job.finished) this.reportError(job, route, { status: 'error', message: describe(err) });
    }
  }

  /** WORK_EXCEPTION with the error as Nest would send it (JSON), or a plain WORK_FAIL. */
  private reportError(job: WorkerJob, route: Route, err: unknown): void {
    if (job.finished) return;
    this.telemetry?.failed(job, err);
    if (route.errorMode === 'fail') {
      this.logger.warn?.(`Job ${job.handle} of "${job.functionName}" failed: ${describe(err)}`);
      job.fail();
      return;
    }
    job.exception(
      typeof err === 'string' ? err : (safeJson(err) ?? JSON.stringify({ status: 'error', message: describe(err) })),
    );
  }
}

/** The handler's result as a promise, a synchronous throw included. */
function invoke(route: Route, data: unknown, context: GearmanContext): Promise<unknown> {
  try {
    return Promise.resolve(route.handler(data, context));
  } catch (err) {
    return Promise.reject(err);
  }
}

function safeJson(value: unknown): string | undefined {
  try {
    return value instanceof Error ? JSON.stringify({ status: 'error', message: value.message }) : JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** Any thrown value, described without throwing (`Object.create(null)`, symbols, BigInts, a throwing toString). */
function describe(err: unknown): string {
  return describeError(err);
}

/**
 * WORK_EXCEPTION for a failure the engine worker answered (handlerTimeout, BACKPRESSURE): the
 * error object Nest's transports deliver, with the engine's code.
 */
function nestError(err: unknown): string {
  const code = err instanceof GearmanError ? err.code : undefined;
  return JSON.stringify({ status: 'error', message: describe(err), ...(code ? { code } : {}) });
}

/** Ends `subscription` when the job is aborted (deadline, close, ...). */
function endOnAbort(job: WorkerJob, subscription: Subscription, then?: () => void): void {
  if (subscription.closed) return;
  const signal = job.signal;
  const end = (): void => {
    subscription.unsubscribe();
    then?.();
  };
  if (signal.aborted) end();
  else signal.addEventListener('abort', end, { once: true });
}

/** Waits for an event handler's Observable to complete; an aborted job stops waiting and unsubscribes. */
function untilEnd(job: WorkerJob, source: Observable<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const subscription = source.subscribe({ error: reject, complete: () => resolve() });
    endOnAbort(job, subscription, resolve);
  });
}

const noop = (): void => undefined;

/** How much of an unreadable payload the debug log line shows. */
const PREVIEW_BYTES = 40;

/** The server's `readMetadata` for one pattern: `true`, or a list of patterns. */
function readsMetadata(option: boolean | string[] | undefined, pattern: string): boolean {
  return option === true || (Array.isArray(option) && option.includes(pattern));
}

function eventDone(job: WorkerJob): void {
  if (!job.finished) job.complete();
}
