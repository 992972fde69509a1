/**
 * The OpenTelemetry SDK as a test records with: spans in memory, metrics read on demand, the
 * AsyncLocalStorage context manager and the W3C propagators registered globally (each Jest test
 * file has its own globals). `useOtel()` registers its Jest hooks: a fresh span and metric store
 * per test.
 */
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import { context, metrics, propagation, type SpanContext, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  type MetricData,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { eventually } from '../support/wait.js';

/** A reader that collects only when asked. */
class TestMetricReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Otel {
  readonly tracerProvider: TracerProvider;
  readonly meterProvider: MeterProvider;
  /** Ended spans so far. */
  spans(): ReadableSpan[];
  /** The ended span called `name`, waiting for it (spans end after the answer is sent). */
  span(name: string, ms?: number): Promise<ReadableSpan>;
  /** The metrics collected now, by name. */
  metrics(): Promise<Map<string, MetricData>>;
}

/**
 * Global OpenTelemetry for the file (context manager, propagator; with `global`, the tracer and
 * meter providers too), and a per-test in-memory store.
 */
export function useOtel(options: { global?: boolean } = {}): Otel {
  const exporter = new InMemorySpanExporter();
  const reader = new TestMetricReader();
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const contextManager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
    propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    );
    if (options.global) {
      trace.setGlobalTracerProvider(tracerProvider);
      metrics.setGlobalMeterProvider(meterProvider);
    }
  });
  afterEach(() => exporter.reset());
  afterAll(async () => {
    await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    context.disable();
    propagation.disable();
    trace.disable();
    metrics.disable();
  });
  const spans = () => exporter.getFinishedSpans();
  return {
    tracerProvider,
    meterProvider,
    spans,
    span: (name, ms = 5000) =>
      eventually(
        () => spans().find((s) => s.name === name),
        ms,
        `a span "${name}" (ended: ${JSON.stringify(spans().map((s) => s.name))})`,
      ),
    async metrics() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw errors[0];
      return new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
    },
  };
}

/** The data point of `metric` whose attributes include `attributes`. */
export function point<T>(
  metric: MetricData | undefined,
  attributes: Record<string, unknown>,
): DataPoint<T> | undefined {
  const points = (metric?.dataPoints ?? []) as DataPoint<T>[];
  return points.find((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
}

export type HistogramPoint = DataPoint<Histogram>;

/** `traceId:spanId`, to compare span contexts. */
export function id(span: SpanContext | undefined): string {
  return span ? `${span.traceId}:${span.spanId}` : 'none';
}
