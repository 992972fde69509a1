/**
 * What `OT_MODE` registers before the transports start (imported first by client.ts and worker.ts):
 * - `off`: nothing, and the transports' `telemetry: false`;
 * - `api`: nothing (@opentelemetry/api installed, no SDK: the transports' default);
 * - `sdk`: traces (every one sampled) and metrics; `sdk-traces`: traces only;
 *   `sdk-traces-rN`: traces, N % sampled (the client starts them, the worker follows its parent);
 * - `sdk-off-als`: the SDK's context manager (AsyncLocalStorage) in use, the transports' telemetry off.
 * Spans go through a BatchSpanProcessor to an exporter that drops them; metrics to a reader that
 * is never collected, as between two scrapes.
 */
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';

class IdleReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const dropping: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};

export const mode = process.env.OT_MODE ?? 'api';
const MODES = /^(off|api|sdk|sdk-traces(-r\d+)?|sdk-off-als)$/;
if (!MODES.test(mode))
  throw new Error(`OT_MODE=${mode}: use off, api, sdk, sdk-traces, sdk-traces-r<percent> or sdk-off-als`);

if (mode.startsWith('sdk')) {
  const percent = /-r(\d+)$/.exec(mode)?.[1];
  const sampler =
    percent === undefined
      ? undefined
      : new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(Number(percent) / 100) });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  if (mode === 'sdk-off-als') {
    // As an app's HTTP instrumentation does: AsyncLocalStorage is in use, its promise hooks on.
    context.with(context.active(), () => undefined);
  } else {
    trace.setGlobalTracerProvider(
      new TracerProvider({ sampler, spanProcessors: [new BatchSpanProcessor({ exporter: dropping })] }),
    );
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    if (mode === 'sdk') metrics.setGlobalMeterProvider(new MeterProvider({ readers: [new IdleReader()] }));
  }
}

/** The transports' `telemetry` option: false where the mode turns it off, else the default. */
export const telemetry = mode === 'off' || mode === 'sdk-off-als' ? false : undefined;
