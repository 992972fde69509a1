/**
 * The trace context the transports write and read directly when the app's propagator is W3C trace
 * context alone (lib/nest/telemetry/telemetry.ts) must be what W3CTraceContextPropagator writes
 * and reads; with any other propagator they go through it.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { extractTraceContext, injectTraceContext } from '../../../lib/nest/telemetry/telemetry.js';

const w3c = new W3CTraceContextPropagator();
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

function spanOf(context: api.SpanContext): api.Span {
  return api.trace.wrapSpanContext(context);
}

/** What the W3C propagator itself writes for `span`. */
function viaPropagator(span: api.Span): Record<string, string> {
  const carrier: Record<string, string> = {};
  w3c.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), carrier, api.defaultTextMapSetter);
  return carrier;
}

/** The span context the W3C propagator reads from `carrier`, with the trace state serialised. */
function readBy(read: (carrier: Record<string, string>) => api.Context, carrier: Record<string, string>) {
  const context = api.trace.getSpanContext(read(carrier));
  return context && { ...context, traceState: context.traceState?.serialize() };
}

describe('trace context with the W3C propagator alone', () => {
  afterEach(() => api.propagation.disable());

  it.each([
    ['sampled', { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: api.TraceFlags.SAMPLED }],
    ['not sampled', { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: api.TraceFlags.NONE }],
    [
      'with a trace state',
      {
        traceId: TRACE_ID,
        spanId: SPAN_ID,
        traceFlags: api.TraceFlags.SAMPLED,
        traceState: api.createTraceState('vendor=a,other=b'),
      },
    ],
  ])('injects what the propagator injects: %s', (_name, context: api.SpanContext) => {
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const carrier: Record<string, string> = { own: 'kept' };
    injectTraceContext(api, spanOf(context), carrier);
    expect(carrier).toEqual({ own: 'kept', ...viaPropagator(spanOf(context)) });
  });

  it.each([
    ['sampled', { traceparent: `00-${TRACE_ID}-${SPAN_ID}-01` }],
    ['not sampled', { traceparent: `00-${TRACE_ID}-${SPAN_ID}-00` }],
    ['with a trace state', { traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: 'vendor=a,other=b' }],
    ['a later version', { traceparent: `01-${TRACE_ID}-${SPAN_ID}-01-extra` }],
    ['padded', { traceparent: ` 00-${TRACE_ID}-${SPAN_ID}-01` }],
    ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${SPAN_ID}-01` }],
    ['an all-zero span id', { traceparent: `00-${TRACE_ID}-${'0'.repeat(16)}-01` }],
    ['upper-case hex', { traceparent: `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01` }],
    ['no traceparent', { tracestate: 'vendor=a' }],
  ])('extracts what the propagator extracts: %s', (_name, carrier: Record<string, string>) => {
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const expected = readBy((c) => w3c.extract(api.ROOT_CONTEXT, c, api.defaultTextMapGetter), carrier);
    expect(readBy((c) => extractTraceContext(api, c), carrier)).toEqual(expected);
  });

  it('goes through any other propagator: baggage travels too', () => {
    api.propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    );
    const span = spanOf({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: api.TraceFlags.SAMPLED });
    const baggage = api.propagation.createBaggage({ user: { value: 'u1' } });
    const carrier: Record<string, string> = {};
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    try {
      api.context.with(api.propagation.setBaggage(api.ROOT_CONTEXT, baggage), () =>
        injectTraceContext(api, span, carrier),
      );
    } finally {
      api.context.disable();
    }
    expect(carrier).toEqual({ ...viaPropagator(span), baggage: 'user=u1' });
    const extracted = extractTraceContext(api, { ...carrier, baggage: 'user=u1' });
    expect(api.propagation.getBaggage(extracted)?.getEntry('user')?.value).toBe('u1');
    expect(api.trace.getSpanContext(extracted)?.spanId).toBe(SPAN_ID);
  });
});
