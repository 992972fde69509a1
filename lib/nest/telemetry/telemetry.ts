import type * as OpenTelemetry from '@opentelemetry/api';
import type { LoggerService } from '@nestjs/common';
import { GearmanError } from '../../engine/index.js';
import { describeError } from '../../engine/worker/describe-error.js';
import type { GearmanTelemetryOption } from './options.js';

export type Api = typeof OpenTelemetry;
export type Attributes = OpenTelemetry.Attributes;

/** The instrumentation scope of every tracer and meter this package makes. */
const SCOPE = 'nestjs-gearman';

/** The tracer and meter a transport records with (undefined: that half is off). */
export interface Telemetry {
  readonly api: Api;
  readonly tracer: OpenTelemetry.Tracer | undefined;
  readonly meter: OpenTelemetry.Meter | undefined;
}

let loading: Promise<Api | undefined> | undefined;

/**
 * `@opentelemetry/api`, imported on first use (a transport's connect or listen), so an app without
 * it loads nothing; undefined when it cannot be loaded.
 */
function loadApi(): Promise<Api | undefined> {
  return (loading ??= import('@opentelemetry/api').then(
    // Versions without an ES module build come as a CommonJS namespace.
    (mod) => (mod.trace === undefined ? (mod as unknown as { default: Api }).default : mod),
    () => undefined,
  ));
}

/** What the `telemetry` option asks for, resolved to a tracer and a meter; undefined: nothing to record. */
export async function resolveTelemetry(
  option: GearmanTelemetryOption | undefined,
  logger: LoggerService,
): Promise<Telemetry | undefined> {
  if (option === false) return undefined;
  const options = typeof option === 'object' ? option : {};
  if (options.tracing === false && options.metrics === false) return undefined;
  const api = await loadApi();
  if (api === undefined) {
    if (option !== undefined) {
      logger.warn?.(
        'telemetry is on but @opentelemetry/api could not be loaded, so no spans or metrics are recorded: ' +
          'install it (npm install @opentelemetry/api), or set telemetry: false',
      );
    }
    return undefined;
  }
  const tracer =
    options.tracing === false
      ? undefined
      : (
          (options.tracerProvider as OpenTelemetry.TracerProvider | undefined) ?? api.trace.getTracerProvider()
        ).getTracer(SCOPE);
  let meter =
    options.metrics === false
      ? undefined
      : ((options.meterProvider as OpenTelemetry.MeterProvider | undefined) ?? api.metrics.getMeterProvider()).getMeter(
          SCOPE,
        );
  // Without a registered MeterProvider the meter is the API's no-op one (metrics have no proxy
  // that an SDK registered later would fill): recording into it would only cost.
  if (meter !== undefined && meter.constructor === api.createNoopMeter().constructor) meter = undefined;
  return tracer === undefined && meter === undefined ? undefined : { api, tracer, meter };
}

/** Attribute names of the OpenTelemetry messaging semantic conventions (and Gearman's own). */
export const ATTR = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  bodySize: 'messaging.message.body.size',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  errorType: 'error.type',
  numerator: 'gearman.status.numerator',
  denominator: 'gearman.status.denominator',
} as const;

export const SYSTEM = 'gearman';

/** Bucket boundaries the semantic conventions advise for messaging durations, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** A side's metrics per function: how long its jobs take, how many it handled, how many are in flight. */
export interface JobMetrics {
  readonly duration: OpenTelemetry.Histogram;
  readonly count: Tally;
  readonly active: Tally;
}

type Instrument = readonly [name: string, description: string];

/** The instruments of {@link JobMetrics}, by name and description (the unit goes with the kind). */
export function jobMetrics(
  meter: OpenTelemetry.Meter,
  names: { duration: Instrument; count: Instrument; active: Instrument },
): JobMetrics {
  const [duration, durationText] = names.duration;
  const [count, countText] = names.count;
  const [active, activeText] = names.active;
  return {
    duration: meter.createHistogram(duration, {
      description: durationText,
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    count: new Tally(meter.createObservableCounter(count, { description: countText, unit: '{message}' })),
    active: new Tally(meter.createObservableUpDownCounter(active, { description: activeText, unit: '{job}' })),
  };
}

/** A span name and its attributes (shared with the metrics), made once per function and kind. */
export interface Operation {
  readonly name: string;
  readonly attributes: Attributes;
}

/** `fn`'s Operation in `cache`, made on first use: span `{operationName} {fn}` and the messaging attributes. */
export function operationOf(
  cache: Map<string, Operation>,
  fn: string,
  operationName: string,
  operationType: string,
): Operation {
  let operation = cache.get(fn);
  if (operation === undefined) {
    operation = {
      name: `${operationName} ${fn}`,
      attributes: {
        [ATTR.system]: SYSTEM,
        [ATTR.destination]: fn,
        [ATTR.operationType]: operationType,
        [ATTR.operationName]: operationName,
      },
    };
    cache.set(fn, operation);
  }
  return operation;
}

/** `server.address` and `server.port` of a `host:port` (`[v6]:port`), made once per server. */
const serverAttributes = new Map<string, Attributes>();
export function serverOf(address: string): Attributes {
  let attributes = serverAttributes.get(address);
  if (attributes === undefined) {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon);
    attributes = {
      [ATTR.serverAddress]: host.startsWith('[') ? host.slice(1, -1) : host,
      [ATTR.serverPort]: Number(address.slice(colon + 1)),
    };
    serverAttributes.set(address, attributes);
  }
  return attributes;
}

/**
 * `error.type` of a failure: a GearmanError's code (JOB_EXCEPTION, TIMEOUT, ...), the `code` of
 * an error object a Nest handler threw (RpcException), an Error's class name, else `_OTHER`.
 */
export function errorType(err: unknown): string {
  if (err instanceof GearmanError) return err.code;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && code !== '') return code;
  if (err instanceof Error) return err.name;
  return '_OTHER';
}

const failedAttributes = new WeakMap<Attributes, Map<string, Attributes>>();

/** `attributes` with `error.type`, made once per set and type (Tally counts by object). */
export function withErrorType(attributes: Attributes, type: string): Attributes {
  let byType = failedAttributes.get(attributes);
  if (byType === undefined) failedAttributes.set(attributes, (byType = new Map()));
  let failed = byType.get(type);
  if (failed === undefined) byType.set(type, (failed = { ...attributes, [ATTR.errorType]: type }));
  return failed;
}

/**
 * Counts per attribute set (the sets made once, as operationOf and withErrorType make them),
 * reported by an observable instrument when the SDK collects: adding is a Map update, where a
 * synchronous counter would have the SDK hash the attributes on every job.
 */
export class Tally {
  private readonly counts = new Map<Attributes, number>();

  constructor(instrument: OpenTelemetry.Observable) {
    instrument.addCallback((result) => {
      for (const [attributes, count] of this.counts) result.observe(count, attributes);
    });
  }

  add(n: number, attributes: Attributes): void {
    this.counts.set(attributes, (this.counts.get(attributes) ?? 0) + n);
  }
}

/**
 * Whether the app's propagator is W3C trace context alone (the OpenTelemetry SDK's default): then
 * `traceparent`/`tracestate` are written and read here directly, which is what that propagator
 * does, without the API's context objects and its regular expressions per job. Any other
 * propagator (baggage, B3, a composite) goes through the API.
 */
function w3cOnly(api: Api): boolean {
  const fields = api.propagation.fields();
  return fields.length === 2 && fields[0] === TRACEPARENT && fields[1] === TRACESTATE;
}

const TRACEPARENT = 'traceparent';
const TRACESTATE = 'tracestate';

/** Adds the trace context of `span` (one this package started) to `carrier`, as the app's propagator does. */
export function injectTraceContext(api: Api, span: OpenTelemetry.Span, carrier: Record<string, string>): void {
  if (!w3cOnly(api)) {
    api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier);
    return;
  }
  // As W3CTraceContextPropagator.inject writes it (version 00).
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  carrier[TRACEPARENT] = `00-${traceId}-${spanId}-0${Number(traceFlags || 0).toString(16)}`;
  if (traceState !== undefined) carrier[TRACESTATE] = traceState.serialize();
}

/** A version-00 traceparent: exactly 55 characters, lower-case hex. */
const TRACEPARENT_00 = /^00-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/** The remote trace context in `carrier` (a job's envelope metadata) on `ROOT_CONTEXT`, as the app's propagator reads it. */
export function extractTraceContext(api: Api, carrier: Record<string, string>): OpenTelemetry.Context {
  const traceparent = carrier[TRACEPARENT];
  const match = traceparent?.length === 55 ? TRACEPARENT_00.exec(traceparent) : null;
  // Anything but a plain version-00 value (other versions, padding, invalid ids) is the propagator's to judge.
  if (match === null || !w3cOnly(api) || match[1] === ZERO_TRACE_ID || match[2] === ZERO_SPAN_ID)
    return api.propagation.extract(api.ROOT_CONTEXT, carrier);
  const tracestate = carrier[TRACESTATE];
  return api.trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16),
    isRemote: true,
    traceState: tracestate ? api.createTraceState(tracestate) : undefined,
  });
}

/**
 * Whether `span` has a trace to record or pass on: it records, or it is a sampled-out span of a
 * valid trace (its children must be sampled out too). The API's no-op span (no SDK registered)
 * holds INVALID_SPAN_CONTEXT itself, told by identity before the id checks' regular expressions.
 */
export function inTrace(api: Api, span: OpenTelemetry.Span): boolean {
  if (span.isRecording()) return true;
  const spanContext = span.spanContext();
  return spanContext !== api.INVALID_SPAN_CONTEXT && api.isSpanContextValid(spanContext);
}

/** Marks `span` failed with `err`. */
export function markFailed(api: Api, span: OpenTelemetry.Span, type: string, err: unknown): void {
  span.setAttribute(ATTR.errorType, type);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: describeError(err) });
}

/** Seconds since `start` (a `performance.now()`). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
