/**
 * ServerGearman's lifecycle against a real gearmand: graceful close with jobs in flight, listen()
 * with no gearmand, hybrid apps (handlers bound to other transports stay off gearmand), and
 * per-pattern CAN_DO_TIMEOUT.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { GEARMAN_TRANSPORT, GearmanContext, GearmanRecordBuilder, ServerGearman } from '../../lib/index.js';
import { freePort } from '../support/servers.js';
import { CapturingLogger, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, quietPeriod, within } from '../support/wait.js';

// A gearmand per test: these tests read queue counts and worker lists.
const gearmand = useGearmand({ perTest: true });
const res = useResources(gearmand);

let probe = newProbe();
function newProbe() {
  return {
    started: [] as number[],
    allStarted: deferred(),
    expectStarted: 0,
    release: res.gate(),
    finished: [] as number[],
    slowCalls: [] as string[],
    firstSlowMayReturn: res.gate(),
  };
}

@Controller()
class WorkController {
  @MessagePattern('work')
  async work(@Payload() n: number): Promise<number> {
    probe.started.push(n);
    if (probe.started.length === probe.expectStarted) probe.allStarted.resolve();
    await probe.release.promise;
    probe.finished.push(n);
    return n * 10;
  }

  /** gearmand requeues a job running past 1500 ms; the requeued copy finishes at once. */
  @MessagePattern('slow', { timeout: 1500 })
  async slow(@Ctx() ctx: GearmanContext): Promise<string> {
    probe.slowCalls.push(ctx.getHandle());
    if (probe.slowCalls.length === 1) {
      await probe.firstSlowMayReturn.promise;
      return 'first';
    }
    return 'second';
  }
}

@Controller()
class HybridController {
  @MessagePattern('hybrid.gearman')
  gearman(@Payload() n: number): number {
    return n + 1;
  }

  @MessagePattern('hybrid.tcp', Transport.TCP)
  tcpOnly(): string {
    return 'tcp';
  }

  @MessagePattern('hybrid.explicit', GEARMAN_TRANSPORT)
  explicit(): string {
    return 'gearman only';
  }

  @EventPattern<string>('hybrid.event')
  event(): void {
    return undefined;
  }
}

beforeEach(() => {
  probe = newProbe();
});

describe('graceful close', () => {
  it('lets running handlers finish and their callers get results; takes no new job', async () => {
    probe.expectStarted = 3;
    const { app, logger } = await res.microservice(
      { controllers: [WorkController] },
      { maxJobs: 3, closeTimeout: 5000 },
    );
    const admin = res.admin();
    const client = res.clientProxy();
    const results = [1, 2, 3].map((n) => lastValueFrom(client.send('work', n)));
    await within(probe.allStarted.promise, 5000, 'three handlers running');

    let closed = false;
    const closing = app.close().then(() => {
      closed = true;
    });
    // A job submitted while closing stays queued: the worker takes nothing new.
    const late = client.send('work', 4).subscribe({ error: () => undefined });
    res.defer(() => late.unsubscribe());
    await eventually(
      async () => (await functionStatus(admin, 'work')).total === 4,
      3000,
      'the fourth job to be queued',
    );
    await quietPeriod(200);
    expect(closed).toBe(false);
    expect(probe.started).toEqual([1, 2, 3]);

    probe.release.resolve();
    expect(await within(Promise.all(results), 5000, 'the in-flight results')).toEqual([10, 20, 30]);
    await within(closing, 5000, 'app.close()');
    expect(probe.finished.sort()).toEqual([1, 2, 3]);
    expect(logger.find('warn', /still running at close/)).toEqual([]);
    // The worker is gone; the fourth job waits in the queue for another one.
    await eventually(
      async () =>
        JSON.stringify(await functionStatus(admin, 'work')) === JSON.stringify({ total: 1, running: 0, workers: 0 }),
      3000,
      'the queue to hold only the fourth job, with no worker',
    );
  });

  it('gives up after closeTimeout, and gearmand requeues the job for another worker', async () => {
    probe.expectStarted = 1;
    const first = await res.microservice({ controllers: [WorkController] }, { maxJobs: 1, closeTimeout: 300 });
    const client = res.clientProxy();
    const result = lastValueFrom(client.send('work', 7));
    await within(probe.allStarted.promise, 5000, 'the handler to run');
    await within(first.app.close(), 3000, 'app.close() after closeTimeout');
    expect(first.logger.find('warn', /1 job\(s\) still running at close; gearmand requeues them/)).toHaveLength(1);

    // A second worker gets the same job and the caller its result.
    probe.release.resolve();
    await res.microservice({ controllers: [WorkController] }, { maxJobs: 1 });
    expect(await within(result, 5000, 'the result from the second worker')).toBe(70);
    expect(probe.started).toEqual([7, 7]);
  });
});

describe('maxJobs', () => {
  it('runs at most maxJobs handlers at once; the rest wait in gearmand', async () => {
    probe.expectStarted = 2;
    await res.microservice({ controllers: [WorkController] }, { maxJobs: 2 });
    const admin = res.admin();
    const client = res.clientProxy();
    const results = [1, 2, 3, 4, 5].map((n) => lastValueFrom(client.send('work', n)));
    await within(probe.allStarted.promise, 5000, 'two handlers running');
    await eventually(async () => (await functionStatus(admin, 'work')).total === 5, 3000, 'all five jobs to be queued');
    await quietPeriod(200);
    expect(probe.started).toHaveLength(2);
    expect(await functionStatus(admin, 'work')).toEqual({ total: 5, running: 2, workers: 1 });
    probe.release.resolve();
    expect(await within(Promise.all(results), 5000, 'all results')).toEqual([10, 20, 30, 40, 50]);
  });
});

describe('gearmand restarts', () => {
  it('server and client report reconnecting, then connected, and serve again', async () => {
    probe.release.resolve();
    const fast = { reconnect: { initialDelay: 50, maxDelay: 200 } };
    const { server } = await res.microservice({ controllers: [WorkController] }, fast);
    const client = res.clientProxy(fast);
    expect(await lastValueFrom(client.send('work', 1))).toBe(10);
    const serverStatus: string[] = [];
    const clientStatus: string[] = [];
    const subs = [
      server.status.subscribe((s) => serverStatus.push(s)),
      client.status.subscribe((s) => clientStatus.push(s)),
    ];
    res.defer(() => subs.forEach((s) => s.unsubscribe()));

    await gearmand.server.kill();
    await eventually(
      () => serverStatus.includes('reconnecting') && clientStatus.includes('reconnecting'),
      3000,
      'reconnecting',
    );
    await gearmand.server.restart();
    await eventually(
      () => serverStatus.at(-1) === 'connected' && clientStatus.at(-1) === 'connected',
      5000,
      'connected again',
    );
    expect(serverStatus).toEqual(['connected', 'reconnecting', 'connected']);
    expect(clientStatus).toEqual(['connected', 'reconnecting', 'connected']);
    // The worker registered its functions again on the new gearmand.
    expect(await within(lastValueFrom(client.send('work', 2)), 5000, 'a call after the restart')).toBe(20);
  });
});

describe('listen()', () => {
  it('rejects with a clear error within connectTimeout when nothing listens', async () => {
    const port = await freePort();
    const { app } = await res.createMicroservice(
      { controllers: [WorkController] },
      { servers: [`127.0.0.1:${port}`], connectTimeout: 800 },
    );
    const started = performance.now();
    const error = await within(
      app.listen().then(
        () => undefined,
        (e: unknown) => e,
      ),
      5000,
      'app.listen() to settle',
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      new RegExp(`No gearmand reachable at 127\\.0\\.0\\.1:${port} within 800 ms`),
    );
    expect(error).toMatchObject({ code: 'NO_SERVER' });
    expect(elapsed).toBeLessThan(800 + 1000);
  });
});

describe('hybrid application', () => {
  it('registers only handlers for Gearman (or any transport), not those bound to TCP', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({ controllers: [HybridController] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    res.defer(() => app.close());
    app.connectMicroservice({
      strategy: new ServerGearman({ servers: [gearmand.address], clientId: 'hybrid-under-test', logger }),
    });
    await within(app.startAllMicroservices(), 10_000, 'startAllMicroservices()');

    const client = res.clientProxy();
    expect(await lastValueFrom(client.send('hybrid.gearman', 41))).toBe(42);

    const admin = res.admin();
    const ours = (await admin.workers()).filter((w) => w.clientId === 'hybrid-under-test');
    expect(ours).toHaveLength(1);
    expect([...ours[0].functions].sort()).toEqual(['hybrid.event', 'hybrid.explicit', 'hybrid.gearman']);
    expect(await lastValueFrom(client.send('hybrid.explicit', {}))).toBe('gearman only');
    expect((await admin.status()).map((s) => s.function)).not.toContain('hybrid.tcp');
    expect(await logger.waitFor('log', /functions: /)).toBe(
      'Gearman worker connected; functions: hybrid.gearman, hybrid.explicit, hybrid.event',
    );
  });
});

describe('per-pattern timeout (CAN_DO_TIMEOUT)', () => {
  it('gearmand requeues a job running past the timeout; the requeued copy answers the caller', async () => {
    // maxJobs 1: with a free slot the worker would sleep (PRE_SLEEP), which clears gearmand's
    // per-connection timer (docs/gearmand-behaviour.md#can_do_timeout) and the timeout would never
    // fire.
    const { logger } = await res.microservice({ controllers: [WorkController] }, { maxJobs: 1 });
    const admin = res.admin();
    const client = res.clientProxy();
    const result = firstValueFrom(client.send('slow', new GearmanRecordBuilder({}).setTimeout(15_000).build()));
    await eventually(async () => probe.slowCalls.length === 1, 3000, 'the first run to start');
    expect(await functionStatus(admin, 'slow')).toEqual({ total: 1, running: 1, workers: 1 });
    // After 1500 ms gearmand takes the job back: queued again, not running, nobody told.
    await eventually(
      async () => (await functionStatus(admin, 'slow')).running === 0,
      4000,
      'gearmand to requeue the job',
    );
    expect(await functionStatus(admin, 'slow')).toEqual({ total: 1, running: 0, workers: 1 });

    // The first run's late WORK_COMPLETE is refused; the worker runs the requeued job, same handle.
    probe.firstSlowMayReturn.resolve();
    expect(await within(result, 5000, 'the result of the requeued run')).toBe('second');
    expect(probe.slowCalls).toHaveLength(2);
    expect(probe.slowCalls[1]).toBe(probe.slowCalls[0]);
    expect(await logger.waitFor('warn', /JOB_NOT_FOUND/)).toMatch(/^gearmand: /);
    expect(logger.find('warn', /has a timeout/)).toEqual([]);
  });

  it('warns that the timeout is not dependable with maxJobs > 1 (PRE_SLEEP clears the timer)', async () => {
    const { logger } = await res.microservice({ controllers: [WorkController] }, { maxJobs: 4 });
    expect(logger.find('warn', /has a timeout/)).toEqual([
      'Pattern "slow" has a timeout (CAN_DO_TIMEOUT 1500 ms) but maxJobs is 4: gearmand clears its timer when the worker ' +
        'waits for more work, so the timeout only fires while every slot is busy. Use maxJobs: 1 for a dependable timeout, ' +
        'or enforce a deadline in the handler.',
    ]);
    // The function is registered all the same.
    expect(await functionStatus(res.admin(), 'slow')).toEqual({ total: 0, running: 0, workers: 1 });
  });
});
