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
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

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
 * Counts per attribute set (the sets made once, as attributesOf and withErrorType make them),
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

/** Marks `span` failed with `err`. */
export function markFailed(api: Api, span: OpenTelemetry.Span, type: string, err: unknown): void {
  span.setAttribute(ATTR.errorType, type);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: describeError(err) });
}

/** Seconds since `start` (a `performance.now()`). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
