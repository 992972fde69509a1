/**
 * OpenTelemetry traces of ClientGearman and ServerGearman against a real gearmand, recorded by the
 * SDK into memory: span names, kinds and attributes of the messaging conventions, one trace from
 * the caller through the worker's handler and its own calls (the trace context in the metadata
 * envelope), failures, background jobs as PRODUCER/CONSUMER with a link, progress events, no
 * envelope for functions not opted in, and nothing recorded with `telemetry: false`.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { lastValueFrom, Observable, timeout, toArray } from 'rxjs';
import {
  type ClientGearman,
  GearmanContext,
  GearmanRecordBuilder,
  type GearmanTelemetryOptions,
} from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { type Deferred, deferred, within } from '../support/wait.js';
import { id, useOtel } from './otel.js';

const gearmand = useGearmand();
const res = useResources(gearmand);
const otel = useOtel();
const telemetry = (): GearmanTelemetryOptions => ({
  tracerProvider: otel.tracerProvider,
  meterProvider: otel.meterProvider,
});

/** What the handlers saw, for the running test. */
let probe = newProbe();
function newProbe() {
  return {
    metadata: deferred<Record<string, string> | undefined>(),
    event: deferred<string>(),
    /** A client the `tel.outer` handler calls through. */
    inner: undefined as ClientGearman | undefined,
  };
}
beforeEach(() => {
  probe = newProbe();
});

@Controller()
class TracedController {
  @MessagePattern('tel.sum')
  sum(@Payload() numbers: number[], @Ctx() ctx: GearmanContext): number {
    probe.metadata.resolve(ctx.getMetadata());
    return numbers.reduce((a, b) => a + b, 0);
  }

  /** Calls `tel.sum` itself: that call belongs to this job's trace. */
  @MessagePattern('tel.outer')
  outer(@Payload() numbers: number[]): Promise<number> {
    return lastValueFrom(probe.inner!.send<number>('tel.sum', numbers));
  }

  @MessagePattern('tel.invalid')
  invalid(): never {
    throw new RpcException({ code: 'BAD_INPUT', message: 'that is not an order' });
  }

  @MessagePattern('tel.progress')
  progress(@Ctx() ctx: GearmanContext): Observable<number> {
    return new Observable<number>((subscriber) => {
      void ctx.sendStatus(1, 2).then(() => {
        subscriber.next(1);
        subscriber.next(2);
        subscriber.complete();
      });
    });
  }

  @MessagePattern('tel.slow')
  slow(): Promise<string> {
    return new Promise((resolve) => setTimeout(() => resolve('late'), 300));
  }

  /** A pattern that does not read the envelope. */
  @MessagePattern('tel.closed', { readMetadata: false })
  closed(): string {
    return 'ok';
  }

  @EventPattern<string>('tel.mail')
  mail(@Ctx() ctx: GearmanContext): void {
    probe.event.resolve(ctx.getHandle());
  }
}

const controllers = [TracedController];

describe('foreground jobs', () => {
  it('a CLIENT span "send fn" and a CONSUMER span "process fn" in one trace, with the messaging attributes', async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: telemetry() });
    const client = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });
    client.setOnDispatchHook((packet) => {
      packet.metadata = { tenant: 'acme' };
    });

    const parent = otel.tracerProvider.getTracer('test').startSpan('request');
    const sum = await context.with(trace.setSpan(context.active(), parent), () =>
      lastValueFrom(client.send<number>('tel.sum', [1, 2, 3])),
    );
    parent.end();
    expect(sum).toBe(6);

    const send = await otel.span('send tel.sum');
    const processing = await otel.span('process tel.sum');
    expect(send.kind).toBe(SpanKind.CLIENT);
    expect(processing.kind).toBe(SpanKind.CONSUMER);
    // One trace: request -> send -> process.
    expect(id(send.parentSpanContext)).toBe(id(parent.spanContext()));
    expect(id(processing.parentSpanContext)).toBe(id(send.spanContext()));
    expect(processing.parentSpanContext?.isRemote).toBe(true);

    const [host, port] = [gearmand.address.slice(0, gearmand.address.lastIndexOf(':')), gearmand.port];
    const handle = send.attributes['messaging.message.id'];
    expect(handle).toMatch(/^H:/);
    expect(send.attributes).toEqual({
      'messaging.system': 'gearman',
      'messaging.destination.name': 'tel.sum',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.message.id': handle,
      'server.address': host,
      'server.port': port,
    });
    expect(processing.attributes).toEqual({
      'messaging.system': 'gearman',
      'messaging.destination.name': 'tel.sum',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.message.id': handle,
      'messaging.message.body.size': expect.any(Number),
      'server.address': host,
      'server.port': port,
    });
    expect(send.status.code).toBe(SpanStatusCode.UNSET);
    expect(processing.status.code).toBe(SpanStatusCode.UNSET);

    // Nest's metadata still arrives as set, the trace context beside it.
    const metadata = await within(probe.metadata.promise, 5000, 'the handler');
    expect(metadata).toEqual({
      tenant: 'acme',
      traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/),
    });
    expect(metadata!.traceparent).toBe(`00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`);
  });

  it("the handler runs in its job's span: its own calls join the trace", async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: telemetry() });
    const client = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });
    probe.inner = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });

    expect(await lastValueFrom(client.send<number>('tel.outer', [4, 5]))).toBe(9);

    const outerSend = await otel.span('send tel.outer');
    const outer = await otel.span('process tel.outer');
    const innerSend = await otel.span('send tel.sum');
    const inner = await otel.span('process tel.sum');
    expect(outerSend.parentSpanContext).toBeUndefined();
    expect(id(outer.parentSpanContext)).toBe(id(outerSend.spanContext()));
    expect(id(innerSend.parentSpanContext)).toBe(id(outer.spanContext()));
    expect(id(inner.parentSpanContext)).toBe(id(innerSend.spanContext()));
    expect(new Set([outerSend, outer, innerSend, inner].map((s) => s.spanContext().traceId)).size).toBe(1);
  });

  it('a failed job marks both spans: error.type, ERROR status', async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: telemetry() });
    const client = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });

    await expect(lastValueFrom(client.send('tel.invalid', {}))).rejects.toMatchObject({
      code: 'JOB_EXCEPTION',
      error: { code: 'BAD_INPUT' },
    });

    const send = await otel.span('send tel.invalid');
    const processing = await otel.span('process tel.invalid');
    expect(send.attributes['error.type']).toBe('JOB_EXCEPTION');
    expect(send.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: expect.stringContaining('that is not an order'),
    });
    expect(processing.attributes['error.type']).toBe('BAD_INPUT');
    expect(processing.status).toEqual({ code: SpanStatusCode.ERROR, message: 'that is not an order' });
    expect(id(processing.parentSpanContext)).toBe(id(send.spanContext()));
  });

  it('a job no worker can take: the span fails with TIMEOUT', async () => {
    const client = res.clientProxy({ telemetry: telemetry() });
    const job = new GearmanRecordBuilder({}).setOptions({ timeout: 200 }).build();
    await expect(lastValueFrom(client.send('tel.nobody', job))).rejects.toMatchObject({ code: 'TIMEOUT' });
    const send = await otel.span('send tel.nobody');
    expect(send.attributes['error.type']).toBe('TIMEOUT');
    expect(send.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('WORK_STATUS and WORK_DATA become events of the client span', async () => {
    await res.microservice({ controllers }, { telemetry: telemetry() });
    const client = res.clientProxy({ telemetry: telemetry() });

    expect(await lastValueFrom(client.send('tel.progress', {}).pipe(toArray()))).toEqual([1, 2]);

    const send = await otel.span('send tel.progress');
    expect(send.events.map((e) => [e.name, e.attributes])).toEqual([
      ['WORK_STATUS', { 'gearman.status.numerator': 1, 'gearman.status.denominator': 2 }],
      ['WORK_DATA', { 'messaging.message.body.size': 1 }],
    ]);
  });

  it('a caller that stops waiting ends its span as CANCELLED', async () => {
    await res.microservice({ controllers }, { telemetry: telemetry() });
    const client = res.clientProxy({ telemetry: telemetry() });
    await expect(lastValueFrom(client.send('tel.slow', {}).pipe(timeout(50)))).rejects.toThrow(/Timeout/);
    const send = await otel.span('send tel.slow');
    expect(send.attributes['error.type']).toBe('CANCELLED');
    // The worker's span ends with the job, which still ran.
    expect((await otel.span('process tel.slow')).status.code).toBe(SpanStatusCode.UNSET);
  });
});

describe('background jobs', () => {
  it('a PRODUCER span "emit fn"; the CONSUMER span starts its own trace, linked to it', async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: telemetry() });
    const client = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });

    const handle = await lastValueFrom(client.emit<string>('tel.mail', { to: 'ada' }));
    expect(await within(probe.event.promise, 5000, 'the event handler')).toBe(handle);

    const emit = await otel.span('emit tel.mail');
    const processing = await otel.span('process tel.mail');
    expect(emit.kind).toBe(SpanKind.PRODUCER);
    expect(emit.attributes).toMatchObject({
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'emit',
      'messaging.message.id': handle,
    });
    expect(processing.kind).toBe(SpanKind.CONSUMER);
    expect(processing.attributes['messaging.message.id']).toBe(handle);
    expect(processing.parentSpanContext).toBeUndefined();
    expect(processing.spanContext().traceId).not.toBe(emit.spanContext().traceId);
    expect(processing.links.map((l) => id(l.context))).toEqual([id(emit.spanContext())]);
  });
});

/** A plain engine worker of `tel.raw` (no Nest, no envelope reading): the first payload it receives, as it came. */
async function rawWorker(): Promise<Deferred<Buffer>> {
  const received = deferred<Buffer>();
  const worker = res.worker();
  worker.register('tel.raw', (job) => {
    received.resolve(job.payload);
    return '"ok"';
  });
  await worker.start();
  return received;
}

describe('functions not opted in to metadata', () => {
  it('get no envelope: a plain Gearman worker receives the payload alone; the client span exists', async () => {
    const received = await rawWorker();
    // sendMetadata names another function only.
    const client = res.clientProxy({ sendMetadata: ['tel.sum'], telemetry: telemetry() });
    client.setOnDispatchHook((packet) => {
      packet.metadata = { tenant: 'acme' };
    });

    const parent = otel.tracerProvider.getTracer('test').startSpan('request');
    await context.with(trace.setSpan(context.active(), parent), () => lastValueFrom(client.send('tel.raw', { a: 1 })));
    parent.end();

    expect((await within(received.promise, 5000, 'the raw worker')).toString('latin1')).toBe('{"a":1}');
    const send = await otel.span('send tel.raw');
    expect(id(send.parentSpanContext)).toBe(id(parent.spanContext()));
  });

  it('a Nest worker still records its span, unlinked, where the envelope is not read', async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: telemetry() });
    const client = res.clientProxy({ sendMetadata: ['tel.sum'], telemetry: telemetry() });

    expect(await lastValueFrom(client.send('tel.closed', {}))).toBe('ok');

    const send = await otel.span('send tel.closed');
    const processing = await otel.span('process tel.closed');
    expect(processing.parentSpanContext).toBeUndefined();
    expect(processing.spanContext().traceId).not.toBe(send.spanContext().traceId);
  });

  it('with no user metadata, the envelope is made for the trace context alone where sendMetadata allows', async () => {
    const received = await rawWorker();
    const client = res.clientProxy({ sendMetadata: true, telemetry: telemetry() });
    await lastValueFrom(client.send('tel.raw', 'x'));
    const payload = await within(received.promise, 5000, 'the raw worker');
    expect(payload.subarray(0, 5).toString('latin1')).toBe('\0NGM1');
    expect(payload.toString('latin1')).toContain('"traceparent":"00-');
  });
});

describe('telemetry: false', () => {
  it('records nothing and sends no trace context', async () => {
    await res.microservice({ controllers }, { readMetadata: true, telemetry: false });
    const client = res.clientProxy({ sendMetadata: true, telemetry: false });
    const parent = otel.tracerProvider.getTracer('test').startSpan('request');
    await context.with(trace.setSpan(context.active(), parent), () => lastValueFrom(client.send('tel.sum', [1])));
    parent.end();
    expect(await within(probe.metadata.promise, 5000, 'the handler')).toBeUndefined();
    expect(otel.spans().map((s) => s.name)).toEqual(['request']);
  });
});
