import type { LoggerService } from '@nestjs/common';
import type { ErrorMode, GearmanClientOptions, GearmanWorkerOptions } from '../engine/index.js';
import type { GearmanCodecOption } from './codecs.js';
import type { GearmanTelemetryOption } from './telemetry/options.js';

/**
 * Options of ServerGearman (the worker side): the engine worker's, which it passes on, and its own.
 * Nest's `serializer`/`deserializer` are rejected: payloads are the codec's.
 */
export interface GearmanServerOptions extends GearmanWorkerOptions {
  /** Jobs run at once across all servers (default 10). */
  maxJobs?: number;
  /**
   * `all` takes reduce jobs with their reducer (GRAB_JOB_ALL), which handlers read from
   * `ctx.getReducer()`; `uniq` (default) takes them as plain jobs.
   */
  grab?: 'uniq' | 'all';
  /** How payloads are read and results written (default `json`); per pattern through `extras.codec`. */
  codec?: GearmanCodecOption;
  /**
   * How handler errors are reported (default `exception`): WORK_EXCEPTION carries the error object,
   * but callers that did not ask for exceptions (the gearman CLI, PHP without exceptions) then get a
   * bare `WORK_FAIL "handle\0"` and hang or die. `fail` sends a plain WORK_FAIL every Gearman client
   * understands, without the error detail. Per pattern through `extras.errorMode`.
   */
  errorMode?: ErrorMode;
  /** Milliseconds `close()` waits for running handlers before disconnecting (default 10 000). */
  closeTimeout?: number;
  /**
   * A logger, or `false` for none (default: Nest's Logger with context ServerGearman). Payload bytes
   * are logged at the `debug` level only (the first bytes of a payload the codec could not read).
   */
  logger?: LoggerService | false;
  /**
   * Read the metadata envelope a `ClientGearman` with `sendMetadata` wraps around payloads, for
   * `ctx.getMetadata()`: `true` for every pattern, or a list of patterns; per pattern through
   * `extras.readMetadata`. Off by default: any Gearman client can send the envelope's bytes, so
   * elsewhere payloads reach the codec byte for byte. Metadata values must be strings.
   */
  readMetadata?: boolean | string[];
  /**
   * OpenTelemetry: a CONSUMER span `process {function}` per job, around its handler, continuing the
   * caller's trace where the pattern reads the metadata envelope; process duration, consumed jobs
   * and jobs running per function. Default: on when `@opentelemetry/api` is installed (no-ops
   * until the app registers an OpenTelemetry SDK); `false`: off, nothing loaded.
   */
  telemetry?: GearmanTelemetryOption;
}

/** What `@MessagePattern(fn, extras)` / `@EventPattern(fn, extras)` may set for one function. */
export interface GearmanPatternExtras {
  /**
   * CAN_DO_TIMEOUT in ms: gearmand requeues a job that runs longer (it does not fail it). gearmand
   * 1.1.20 clears this timer whenever the worker sleeps waiting for work (PRE_SLEEP), which it does
   * while a slot is free: the timeout is dependable only with `maxJobs: 1` (a warning is logged otherwise).
   */
  timeout?: number;
  /**
   * Handler deadline in ms, enforced by this worker (unlike `timeout`): past it the job is answered
   * with a failure that says it timed out, its slot freed and `ctx.getSignal()` aborted. Overrides
   * the server's `handlerTimeout` (default none); 0 for none.
   */
  handlerTimeout?: number;
  codec?: GearmanCodecOption;
  errorMode?: ErrorMode;
  /** Read the metadata envelope for this pattern (overrides the server's `readMetadata`). */
  readMetadata?: boolean;
}

/**
 * Options of ClientGearman: the engine client's, which it passes on, and its own. Nest's
 * `serializer`/`deserializer` are rejected: payloads are the codec's.
 */
export interface GearmanClientProxyOptions extends GearmanClientOptions {
  /** How payloads are written and results read (default `json`); per call via GearmanRecordBuilder. */
  codec?: GearmanCodecOption;
  /**
   * Milliseconds `close()` lets calls in flight finish before failing the rest with CLOSED (default
   * 5000, within the usual grace period of a graceful shutdown; 0: at once). Calls made while it
   * drains fail at once with CLOSED.
   */
  closeTimeout?: number;
  /**
   * Send Nest packet metadata (`setOnDispatchHook`, values must be strings) in an envelope that a
   * ServerGearman with `readMetadata` reads: `true` for every pattern, or a list of patterns. Off by
   * default, so plain Gearman workers see only the payload.
   */
  sendMetadata?: boolean | string[];
  /**
   * OpenTelemetry: a span per job, `send {function}` (CLIENT) or `emit {function}` (PRODUCER) for a
   * background job, whose trace context goes in the metadata envelope to the functions `sendMetadata`
   * names (no others); operation duration, sent jobs and jobs in flight per function. Default: on
   * when `@opentelemetry/api` is installed (no-ops until the app registers an OpenTelemetry SDK);
   * `false`: off, nothing loaded.
   */
  telemetry?: GearmanTelemetryOption;
  /**
   * A logger, or `false` for none (default: Nest's Logger with context ClientGearman, which follows
   * the app's logger and levels): connects, lost connections and reconnects.
   */
  logger?: LoggerService | false;
}
