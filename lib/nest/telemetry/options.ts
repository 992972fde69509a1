/**
 * The public types of the transports' `telemetry` option and of `GearmanAdminService.observeMetrics`.
 * `@opentelemetry/api` is an optional peer dependency, so these are written out structurally:
 * the package's types compile in an app that does not install it, and OpenTelemetry's own
 * TracerProvider, MeterProvider and Meter fit them.
 */

/** An OpenTelemetry `TracerProvider` (from `@opentelemetry/api` or an SDK). */
export interface GearmanTracerProvider {
  getTracer(name: string, version?: string, options?: object): unknown;
}

/** An OpenTelemetry `MeterProvider` (from `@opentelemetry/api` or an SDK). */
export interface GearmanMeterProvider {
  getMeter(name: string, version?: string, options?: object): unknown;
}

/** An OpenTelemetry `Meter`: what `GearmanAdminService.observeMetrics` registers its gauges on. */
export interface GearmanMeter {
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): object;
  addBatchObservableCallback(callback: (result: any) => void | Promise<void>, observables: object[]): void;
  removeBatchObservableCallback(callback: (result: any) => void | Promise<void>, observables: object[]): void;
}

/**
 * OpenTelemetry traces and metrics of ServerGearman and ClientGearman (README, "Tracing and
 * metrics"). `true` or an object: on, through the given providers or else the global ones;
 * `false`: nothing is loaded and nothing is recorded. Left out: on when `@opentelemetry/api` is
 * installed, as OpenTelemetry asks of instrumented libraries; until the app registers an SDK the
 * global providers are OpenTelemetry's no-ops.
 */
export interface GearmanTelemetryOptions {
  /** Spans per job, and trace context in the metadata envelope (default true). */
  tracing?: boolean;
  /** Durations, counts and jobs in flight per function (default true). */
  metrics?: boolean;
  /** Default: the global one (`trace.getTracerProvider()`). */
  tracerProvider?: GearmanTracerProvider;
  /** Default: the global one (`metrics.getMeterProvider()`), read when the transport connects. */
  meterProvider?: GearmanMeterProvider;
}

export type GearmanTelemetryOption = boolean | GearmanTelemetryOptions;
