/**
 * GearmanHealthIndicator against real gearmands, in every state: up (with each server's ECHO
 * latency), degraded (some servers down), down (none answers, jobs queued with no worker, more
 * queued than `maxQueued`, a timeout through `.withTimeout()` on a silent or frozen server), as
 * the indicator returns them and as Terminus's HealthCheckService composes them.
 */
import 'reflect-metadata';
import { ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { GearmanAdminModule, type GearmanAdminModuleOptions, GearmanError } from '../../lib/index.js';
import { GearmanHealthIndicator } from '../../lib/health/index.js';
import { fnName, type GearmandHandle, useGearmand, useResources } from '../support/harness.js';
import { eventually, within } from '../support/wait.js';

const g1 = useGearmand();
const g2 = useGearmand();
const res = useResources();

/** A Terminus app with the admin module on `servers`: its indicator and HealthCheckService. */
async function healthApp(servers: string[], options: Omit<GearmanAdminModuleOptions, 'servers'> = {}) {
  const moduleRef = await Test.createTestingModule({
    imports: [TerminusModule.forRoot({ logger: false }), GearmanAdminModule.forRoot({ servers, ...options })],
    providers: [GearmanHealthIndicator],
  }).compile();
  res.defer(() => moduleRef.close());
  return { gearman: moduleRef.get(GearmanHealthIndicator), health: moduleRef.get(HealthCheckService) };
}

/** `count` background jobs of `fn` queued on `g`, each created. */
async function queue(g: GearmandHandle, fn: string, count: number, priority?: 'high' | 'low'): Promise<void> {
  const client = await res.client({ servers: g.address });
  for (let i = 0; i < count; i++) await client.submit(fn, `job ${i}`, { background: true, priority }).created();
}

const latency = { status: 'up', latencyMs: expect.any(Number) };

describe('up', () => {
  it('every server answers: up, with each server’s ECHO latency and the check’s responseTime', async () => {
    const { gearman } = await healthApp([g1.address, g2.address]);
    const result = await gearman.pingCheck('gearman');
    expect(result).toEqual({
      gearman: {
        status: 'up',
        servers: { [g1.address]: latency, [g2.address]: latency },
        responseTime: expect.any(Number),
      },
    });
    for (const server of Object.values(result.gearman.servers as Record<string, { latencyMs: number }>)) {
      expect(server.latencyMs).toBeGreaterThan(0);
      // responseTime is rounded to whole ms, latencyMs to hundredths.
      expect(server.latencyMs).toBeLessThanOrEqual((result.gearman.responseTime as number) + 0.5);
    }
    // The call of earlier releases gives the same, and the key is the one asked for.
    expect(await gearman.isHealthy('queue')).toEqual({
      queue: {
        status: 'up',
        servers: { [g1.address]: latency, [g2.address]: latency },
        responseTime: expect.any(Number),
      },
    });
  });

  it('latencyMs is the ECHO round trip: a server frozen for 400 ms shows it, the other does not', async () => {
    const g = await res.gearmand();
    const { gearman } = await healthApp([g.address, g1.address]);
    // Connects the pinger, so the ECHO below goes out at once.
    expect((await gearman.pingCheck()).gearman.status).toBe('up');
    const thaw = await res.freeze(g.pid!);
    const check = gearman.pingCheck().then((r) => r);
    await new Promise((resolve) => setTimeout(resolve, 400)); // the stall being measured
    thaw();
    const { gearman: result } = await within(check, 5000, 'the health check');
    const servers = result.servers as Record<string, { status: string; latencyMs: number }>;
    expect(result.status).toBe('up');
    expect(servers[g.address].latencyMs).toBeGreaterThanOrEqual(390);
    expect(servers[g.address].latencyMs).toBeLessThan(1000); // within the default pingTimeout
    expect(servers[g1.address].latencyMs).toBeLessThan(servers[g.address].latencyMs);
    expect(result.responseTime).toBeGreaterThanOrEqual(servers[g.address].latencyMs - 0.5);
  });

  it('queued jobs within maxQueued, with a worker registered: up', async () => {
    const fn = fnName('health.busy');
    const gate = res.gate();
    const started = res.gate();
    const worker = res.worker({ servers: g1.address, maxJobs: 1 });
    worker.register(fn, async () => {
      started.resolve();
      await gate.promise;
    });
    await worker.start();
    await queue(g1, fn, 3);
    await within(started.promise, 5000, 'the first job to start');
    const { gearman } = await healthApp([g1.address]);
    // One job runs, two are queued: only queued ones count.
    const result = await gearman.pingCheck('gearman', { functions: { [fn]: { maxQueued: 2 } } });
    expect(result.gearman.status).toBe('up');
    const over = await gearman.pingCheck('gearman', { functions: { [fn]: { maxQueued: 1 } } });
    expect(over.gearman.message).toBe(`${fn}: 2 jobs queued, above the limit of 1`);
  });
});

describe('degraded', () => {
  it('some servers do not answer: degraded (HTTP 200 from HealthCheckService), naming which', async () => {
    const g = await res.gearmand();
    const { gearman, health } = await healthApp([g1.address, g.address], { pingTimeout: 500 });
    await g.stop();
    const result = await gearman.pingCheck('gearman');
    expect(result).toEqual({
      gearman: {
        status: 'degraded',
        message: '1 of 2 gearmand servers do not answer',
        servers: { [g1.address]: latency, [g.address]: { status: 'down', error: expect.any(String) } },
        responseTime: expect.any(Number),
      },
    });
    const composed = await health.check([() => gearman.pingCheck('gearman').withTimeout(2000)]);
    expect(composed.status).toBe('degraded');
    expect(composed.details.gearman.status).toBe('degraded');
  });

  it('a silent server is down after pingTimeout, the others up: degraded', async () => {
    const silent = await res.silentServer();
    const { gearman } = await healthApp([g1.address, silent.address], { pingTimeout: 300 });
    const result = await gearman.pingCheck('gearman');
    expect(result.gearman.status).toBe('degraded');
    expect(result.gearman.servers).toEqual({
      [g1.address]: latency,
      [silent.address]: { status: 'down', error: 'no ECHO reply within 300 ms' },
    });
    expect(result.gearman.responseTime).toBeGreaterThanOrEqual(299);
  });
});

describe('down', () => {
  it('no server answers: down, and HealthCheckService answers 503', async () => {
    const g = await res.gearmand();
    const { gearman, health } = await healthApp([g.address], { pingTimeout: 500 });
    expect((await gearman.pingCheck('gearman')).gearman.status).toBe('up');
    await g.stop();
    const result = await gearman.pingCheck('gearman');
    expect(result).toEqual({
      gearman: {
        status: 'down',
        message: 'no gearmand server answers',
        servers: { [g.address]: { status: 'down', error: expect.any(String) } },
        responseTime: expect.any(Number),
      },
    });
    const failure = await health.check([() => gearman.pingCheck('gearman')]).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ServiceUnavailableException);
    expect((failure as ServiceUnavailableException).getResponse()).toMatchObject({
      status: 'error',
      error: { gearman: { status: 'down', message: 'no gearmand server answers' } },
    });

    // Up again once the server is back (the pinger reconnects by itself).
    await g.restart();
    await eventually(async () => (await gearman.pingCheck('gearman')).gearman.status === 'up', 5000, 'up again');
  });

  it('jobs queued with no worker registered (requireWorkers, default true): down; requireWorkers false: up', async () => {
    const fn = fnName('health.orphan');
    await queue(g1, fn, 2);
    const { gearman } = await healthApp([g1.address]);
    expect(await gearman.pingCheck('gearman', { functions: { [fn]: {} } })).toEqual({
      gearman: {
        status: 'down',
        message: `${fn}: 2 jobs queued but no worker registered`,
        servers: { [g1.address]: latency },
        responseTime: expect.any(Number),
      },
    });
    const relaxed = await gearman.pingCheck('gearman', { functions: { [fn]: { requireWorkers: false } } });
    expect(relaxed.gearman.status).toBe('up');
    // A function nobody submitted to: nothing queued, nothing required.
    const idle = await gearman.pingCheck('gearman', { functions: { [fnName('health.idle')]: {} } });
    expect(idle.gearman.status).toBe('up');
  });

  it('more jobs queued than maxQueued, summed over servers and priorities: down', async () => {
    const fn = fnName('health.backlog');
    await queue(g1, fn, 2, 'high');
    await queue(g2, fn, 1);
    await queue(g2, fn, 1, 'low');
    const { gearman } = await healthApp([g1.address, g2.address]);
    const check = (maxQueued: number) =>
      gearman.pingCheck('gearman', { functions: { [fn]: { maxQueued, requireWorkers: false } } });
    expect((await check(4)).gearman.status).toBe('up');
    expect(await check(3)).toEqual({
      gearman: {
        status: 'down',
        message: `${fn}: 4 jobs queued, above the limit of 3`,
        servers: { [g1.address]: latency, [g2.address]: latency },
        responseTime: expect.any(Number),
      },
    });
    // Both checks fail: both are said.
    const both = await gearman.pingCheck('gearman', { functions: { [fn]: { maxQueued: 0 } } });
    expect(both.gearman.message).toBe(
      `${fn}: 4 jobs queued, above the limit of 0; ${fn}: 4 jobs queued but no worker registered`,
    );
  });

  it('withTimeout(ms): a check that does not finish in time is down, in Terminus’s words', async () => {
    const silent = await res.silentServer();
    const { gearman, health } = await healthApp([g1.address, silent.address], { pingTimeout: 5000 });
    const result = await gearman.pingCheck('gearman').withTimeout(300);
    expect(result).toEqual({
      gearman: { status: 'down', message: 'timeout of 300ms exceeded', responseTime: expect.any(Number) },
    });
    expect(result.gearman.responseTime).toBeGreaterThanOrEqual(299);
    expect(result.gearman.responseTime).toBeLessThan(5000);

    const composed = await health
      .check([() => gearman.pingCheck('queue').withTimeout(200)])
      .catch((err: unknown) => err);
    expect((composed as ServiceUnavailableException).getResponse()).toMatchObject({
      error: { queue: { status: 'down', message: 'timeout of 200ms exceeded' } },
    });

    for (const ms of [0, -1, 1.5, 2 ** 31]) {
      expect(() => gearman.pingCheck('gearman').withTimeout(ms)).toThrow(GearmanError);
    }
  });

  it('withTimeout(ms) on a frozen gearmand (SIGSTOP): down; up again once it runs', async () => {
    const g = await res.gearmand();
    const { gearman } = await healthApp([g.address], { pingTimeout: 5000 });
    expect((await gearman.pingCheck('gearman').withTimeout(2000)).gearman.status).toBe('up');
    const thaw = await res.freeze(g.pid!);
    const frozen = await gearman.pingCheck('gearman').withTimeout(300);
    expect(frozen.gearman).toEqual({
      status: 'down',
      message: 'timeout of 300ms exceeded',
      responseTime: expect.any(Number),
    });
    thaw();
    expect((await gearman.pingCheck('gearman').withTimeout(2000)).gearman.status).toBe('up');
  });
});
