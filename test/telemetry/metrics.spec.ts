/**
 * OpenTelemetry metrics against a real gearmand, read by the SDK on demand: the client's and the
 * worker's durations, counts and jobs in flight per function (failures with `error.type`), the
 * global MeterProvider used when none is given, and the admin module's per-function gauges.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { MessagePattern, RpcException } from '@nestjs/microservices';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { lastValueFrom } from 'rxjs';
import { GearmanAdminService } from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { eventually } from '../support/wait.js';
import { point, useOtel } from './otel.js';

const gearmand = useGearmand();
const res = useResources(gearmand);
// Global providers: the transports below are given none and use these.
const otel = useOtel({ global: true });

@Controller()
class MetricsController {
  @MessagePattern('met.double')
  double(n: number): number {
    return n * 2;
  }

  @MessagePattern('met.fail')
  fail(): never {
    throw new RpcException({ code: 'NOPE', message: 'no' });
  }
}

const fn = (name: string, extra: Record<string, unknown> = {}) => ({
  'messaging.system': 'gearman',
  'messaging.destination.name': name,
  ...extra,
});

describe('transport metrics', () => {
  it('durations, counts and jobs in flight per function, with error.type on failures', async () => {
    await res.microservice({ controllers: [MetricsController] });
    const client = res.clientProxy();

    expect(await lastValueFrom(client.send('met.double', 2))).toBe(4);
    expect(await lastValueFrom(client.send('met.double', 3))).toBe(6);
    await expect(lastValueFrom(client.send('met.fail', 0))).rejects.toMatchObject({ code: 'JOB_EXCEPTION' });

    const m = await otel.metrics();
    const clientDuration = m.get('messaging.client.operation.duration');
    expect(clientDuration?.descriptor.unit).toBe('s');
    const ok = point<Histogram>(clientDuration, fn('met.double', { 'messaging.operation.name': 'send' }));
    expect(ok?.value.count).toBe(2);
    expect(ok?.attributes['error.type']).toBeUndefined();
    expect(ok!.value.sum).toBeGreaterThan(0);
    expect(point<Histogram>(clientDuration, fn('met.fail', { 'error.type': 'JOB_EXCEPTION' }))?.value.count).toBe(1);

    expect(point<number>(m.get('messaging.client.sent.messages'), fn('met.double'))?.value).toBe(2);

    const processDuration = m.get('messaging.process.duration');
    expect(
      point<Histogram>(processDuration, fn('met.double', { 'messaging.operation.name': 'process' }))?.value.count,
    ).toBe(2);
    expect(point<Histogram>(processDuration, fn('met.fail', { 'error.type': 'NOPE' }))?.value.count).toBe(1);
    expect(point<number>(m.get('messaging.client.consumed.messages'), fn('met.double'))?.value).toBe(2);

    // Nothing left in flight.
    expect(point<number>(m.get('gearman.client.active_jobs'), fn('met.double'))?.value).toBe(0);
    expect(point<number>(m.get('gearman.worker.active_jobs'), fn('met.double'))?.value).toBe(0);
  });

  it('background jobs: one sent per emit, timed to JOB_CREATED', async () => {
    const client = res.clientProxy();
    await lastValueFrom(client.emit('met.later', 1));
    const m = await otel.metrics();
    expect(
      point<Histogram>(
        m.get('messaging.client.operation.duration'),
        fn('met.later', { 'messaging.operation.name': 'emit' }),
      )?.value.count,
    ).toBe(1);
    // Queued, not yet run: no worker has it.
    expect(point<number>(m.get('gearman.client.active_jobs'), fn('met.later'))?.value).toBe(0);
  });

  it('telemetry: { metrics: false } records no metrics', async () => {
    const client = res.clientProxy({ telemetry: { metrics: false } });
    await lastValueFrom(client.emit('met.unmeasured', 1));
    const m = await otel.metrics();
    expect(point(m.get('messaging.client.sent.messages'), fn('met.unmeasured'))).toBeUndefined();
  });
});

describe('GearmanAdminService.observeMetrics', () => {
  it('gauges of jobs queued and running and of workers, per function and server', async () => {
    const admin = new GearmanAdminService({ servers: [gearmand.address] });
    res.defer(() => admin.onModuleDestroy());
    const meter = otel.meterProvider.getMeter('admin-test');
    const stop = admin.observeMetrics(meter);

    const client = await res.client();
    await client.submit('met.queued', 'a', { background: true }).created();
    await client.submit('met.queued', 'b', { background: true }).created();
    const held = res.gate();
    const worker = res.worker();
    worker.register('met.held', () => held.promise.then(() => 'done'));
    await worker.start();
    const running = client.submit('met.held', 'x');
    await running.created();

    const [host, port] = [gearmand.address.slice(0, gearmand.address.lastIndexOf(':')), gearmand.port];
    const at = (name: string) => fn(name, { 'server.address': host, 'server.port': port });
    const m = await eventually(
      async () => {
        const m = await otel.metrics();
        return point<number>(m.get('gearman.function.jobs.running'), at('met.held'))?.value === 1 && m;
      },
      5000,
      'gearmand to report met.held running',
    );
    expect(point<number>(m.get('gearman.function.jobs.queued'), at('met.queued'))?.value).toBe(2);
    expect(point<number>(m.get('gearman.function.workers'), at('met.queued'))?.value).toBe(0);
    expect(point<number>(m.get('gearman.function.jobs.queued'), at('met.held'))?.value).toBe(0);
    expect(point<number>(m.get('gearman.function.workers'), at('met.held'))?.value).toBe(1);

    held.resolve();
    await running.result();
    // Unregistered: a third queued job is not observed any more.
    stop();
    await client.submit('met.queued', 'c', { background: true }).created();
    const after = await otel.metrics();
    expect(point<number>(after.get('gearman.function.jobs.queued'), at('met.queued'))?.value).not.toBe(3);
  });
});
