/**
 * The sample application with OpenTelemetry registered (globally, here only: the sample itself
 * registers no SDK): one trace from an HTTP request to the gateway, through ClientGearman, into
 * the worker's handler; a background job's CONSUMER span linked to the request's PRODUCER span.
 * The HTTP server span is made by a middleware standing in for `@opentelemetry/instrumentation-http`,
 * which patches Node's CommonJS modules and so cannot run under Jest's ES modules.
 */
import 'reflect-metadata';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { INestApplication, INestMicroservice } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import request from 'supertest';
import type { App } from 'supertest/types.js';
import { GatewayModule } from '../../sample/gateway/gateway.module.js';
import { EmailOutbox } from '../../sample/worker/email-outbox.service.js';
import { createWorkerTransport, WorkerModule } from '../../sample/worker/worker.module.js';
import { useGearmand, useResources } from '../support/harness.js';
import { eventually } from '../support/wait.js';
import { id, useOtel } from './otel.js';

const gearmand = useGearmand();
const res = useResources(gearmand);
const otel = useOtel({ global: true });

/** The caller's trace, as a browser or another service would send it. */
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${CALLER_SPAN}-01`;

describe('the sample gateway and worker, traced', () => {
  let worker: INestMicroservice;
  let http: App;

  beforeEach(async () => {
    const servers = [gearmand.address];
    const workerModule = await Test.createTestingModule({ imports: [WorkerModule] }).compile();
    worker = workerModule.createNestMicroservice({
      strategy: createWorkerTransport(servers, { logger: false }),
      logger: false,
    });
    await worker.listen();
    res.defer(() => worker.close());

    const gatewayModule = await Test.createTestingModule({
      imports: [GatewayModule.forRoot({ servers, healthLogs: false })],
    }).compile();
    const gateway: INestApplication = gatewayModule.createNestApplication({ logger: false });
    const tracer = trace.getTracer('http');
    gateway.use((req: IncomingMessage, response: ServerResponse, next: () => void) => {
      const remote = propagation.extract(ROOT_CONTEXT, req.headers);
      const span = tracer.startSpan(`${req.method} ${req.url}`, { kind: SpanKind.SERVER }, remote);
      response.on('finish', () => span.end());
      context.with(trace.setSpan(remote, span), next);
    });
    await gateway.init();
    res.defer(() => gateway.close());
    http = gateway.getHttpServer();
  });

  it('POST /math/sum: the HTTP span, the CLIENT span and the worker CONSUMER span share the trace', async () => {
    await request(http)
      .post('/math/sum')
      .set('traceparent', TRACEPARENT)
      .send({ numbers: [1, 2, 3.5] })
      .expect(200, { sum: 6.5 });

    const server = await otel.span('POST /math/sum');
    const send = await otel.span('send math.sum');
    const processing = await otel.span('process math.sum');
    expect(server.parentSpanContext?.spanId).toBe(CALLER_SPAN);
    expect(id(send.parentSpanContext)).toBe(id(server.spanContext()));
    expect(send.kind).toBe(SpanKind.CLIENT);
    expect(id(processing.parentSpanContext)).toBe(id(send.spanContext()));
    expect(processing.kind).toBe(SpanKind.CONSUMER);
    for (const span of [server, send, processing]) expect(span.spanContext().traceId).toBe(TRACE_ID);
  });

  it('POST /emails: PRODUCER in the request trace, the worker span linked to it', async () => {
    const reply = await request(http)
      .post('/emails')
      .set('traceparent', TRACEPARENT)
      .send({ to: 'ada@example.com', subject: 'Traced' })
      .expect(202);
    const outbox = worker.get(EmailOutbox);
    await eventually(() => outbox.sent.some((e) => e.subject === 'Traced'), 5000, 'the worker to send the email');

    const emit = await otel.span('emit email.send');
    const processing = await otel.span('process email.send');
    expect(emit.kind).toBe(SpanKind.PRODUCER);
    expect(emit.spanContext().traceId).toBe(TRACE_ID);
    expect(emit.attributes['messaging.message.id']).toBe(reply.body.handle);
    expect(processing.links.map((l) => id(l.context))).toEqual([id(emit.spanContext())]);
    expect(processing.spanContext().traceId).not.toBe(TRACE_ID);
  });
});
