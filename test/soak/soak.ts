/**
 * Soak: pushes many small jobs through the Nest transport (ClientGearman -> gearmand ->
 * ServerGearman, both in this process) and checks that nothing grows: RSS after warm-up (after gc),
 * active handles and resources, and listener counts on the client's and worker's connections.
 *
 *   node --expose-gc --import tsx test/soak/soak.ts [--jobs 1000000] [--warmup 50000] [--concurrency 256]
 *
 * `npm run test:soak` runs the long profile (1M jobs); test/reliability/soak.spec.ts runs this same
 * script with a small N in the normal test run. Prints progress, then `REPORT <json>`; exits 0 when
 * every check passed, 1 otherwise (the failures are in the report and on stderr).
 */
import 'reflect-metadata';
import type { EventEmitter } from 'node:events';
import { parseArgs } from 'node:util';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { GearmanClient, GearmanWorker } from '../../lib/engine/index.js';
import { ClientGearman, ServerGearman } from '../../lib/index.js';
import { Gearmand } from '../support/gearmand.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000000' },
    warmup: { type: 'string' },
    concurrency: { type: 'string', default: '256' },
    'rss-limit-mb': { type: 'string', default: '20' },
  },
});
const JOBS = Number(values.jobs);
const WARMUP = Number(values.warmup ?? Math.min(50_000, Math.floor(JOBS / 10)));
const CONCURRENCY = Number(values.concurrency);
const RSS_LIMIT = Number(values['rss-limit-mb']);
const MB = 1024 * 1024;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc (npm run test:soak does)\n');
  process.exit(2);
}

@Controller()
class SoakController {
  @MessagePattern('soak.inc')
  inc(@Payload() data: { i: number }) {
    return { i: data.i + 1 };
  }
}

@Module({ controllers: [SoakController] })
class SoakModule {}

interface Snapshot {
  rss: number;
  heapUsed: number;
  handles: number;
  resources: Record<string, number>;
  listeners: Record<string, number>;
}

/** Listener counts per event of an emitter, keyed `<prefix>.<event>`. */
function listenersOf(prefix: string, emitter: EventEmitter | undefined, into: Record<string, number>): void {
  if (!emitter) return;
  for (const name of emitter.eventNames()) into[`${prefix}.${String(name)}`] = emitter.listenerCount(name);
}

function snapshot(client: GearmanClient, worker: GearmanWorker): Snapshot {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  const listeners: Record<string, number> = {};
  listenersOf('client', client as unknown as EventEmitter, listeners);
  listenersOf('worker', worker as unknown as EventEmitter, listeners);
  for (const [side, conns] of [
    ['client', client.connections],
    ['worker', worker.connections],
  ] as const) {
    conns.forEach((conn, i) => {
      listenersOf(`${side}.conn${i}`, conn, listeners);
      listenersOf(`${side}.conn${i}.socket`, (conn as unknown as { socket?: EventEmitter }).socket, listeners);
    });
  }
  listenersOf('process', process as unknown as EventEmitter, listeners);
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    handles: (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length,
    resources,
    listeners,
  };
}

const g = await Gearmand.start();
const micro = await NestFactory.createMicroservice(SoakModule, {
  strategy: new ServerGearman({ servers: [g.address], maxJobs: 64, logger: false }),
  logger: false,
});
await micro.listen();
const proxy = new ClientGearman({ servers: [g.address] });
await proxy.connect();
const client = proxy.unwrap();
const worker = micro.unwrap<GearmanWorker>();

let started = 0;
let completed = 0;
const errors: string[] = [];

/** Runs jobs [from, to) with CONCURRENCY in flight; resolves when all have settled. */
function run(from: number, to: number, onProgress?: (done: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let next = from;
    let inFlight = 0;
    const launch = () => {
      while (inFlight < CONCURRENCY && next < to) {
        const i = next++;
        inFlight++;
        started++;
        lastValueFrom(proxy.send<{ i: number }>('soak.inc', { i })).then(
          (r) => {
            if (r?.i === i + 1) completed++;
            else if (errors.length < 20) errors.push(`job ${i}: wrong result ${JSON.stringify(r)}`);
            done();
          },
          (e: unknown) => {
            if (errors.length < 20) errors.push(`job ${i}: ${String((e as Error)?.message ?? JSON.stringify(e))}`);
            done();
          },
        );
      }
    };
    const done = () => {
      inFlight--;
      onProgress?.(completed);
      if (next >= to && inFlight === 0) resolve();
      else if (inFlight < CONCURRENCY / 2) launch();
    };
    launch();
  });
}

const t0 = performance.now();
await run(0, WARMUP);
const warm = snapshot(client, worker);
const tWarm = performance.now();
const samples: { jobs: number; rssMb: number; heapMb: number; seconds: number }[] = [];
const step = Math.max(1, Math.floor((JOBS - WARMUP) / 10));
let nextSample = WARMUP + step;
await run(WARMUP, JOBS, (done) => {
  if (done >= nextSample) {
    nextSample += step;
    const m = process.memoryUsage();
    const seconds = (performance.now() - t0) / 1000;
    samples.push({
      jobs: done,
      rssMb: +(m.rss / MB).toFixed(1),
      heapMb: +(m.heapUsed / MB).toFixed(1),
      seconds: +seconds.toFixed(1),
    });
    process.stderr.write(
      `soak: ${done} jobs, ${seconds.toFixed(1)} s, ${Math.round(done / seconds)} jobs/s, rss ${(m.rss / MB).toFixed(1)} MB\n`,
    );
  }
});
const tEnd = performance.now();
const end = snapshot(client, worker);

await proxy.close();
await micro.close();
await g.dispose();

const failures: string[] = [];
const rssGrowth = (end.rss - warm.rss) / MB;
if (completed !== JOBS) failures.push(`${completed} of ${JOBS} jobs completed`);
if (errors.length > 0) failures.push(`errors: ${errors.join('; ')}`);
if (rssGrowth >= RSS_LIMIT)
  failures.push(`RSS grew by ${rssGrowth.toFixed(1)} MB after warm-up (limit ${RSS_LIMIT} MB)`);
if (end.handles !== warm.handles) failures.push(`active handles ${warm.handles} -> ${end.handles}`);
for (const key of new Set([...Object.keys(warm.resources), ...Object.keys(end.resources)])) {
  if ((warm.resources[key] ?? 0) !== (end.resources[key] ?? 0))
    failures.push(`active ${key} ${warm.resources[key] ?? 0} -> ${end.resources[key] ?? 0}`);
}
for (const key of new Set([...Object.keys(warm.listeners), ...Object.keys(end.listeners)])) {
  if ((warm.listeners[key] ?? 0) !== (end.listeners[key] ?? 0))
    failures.push(`listeners ${key} ${warm.listeners[key] ?? 0} -> ${end.listeners[key] ?? 0}`);
}

const measured = JOBS - WARMUP;
const report = {
  jobs: JOBS,
  warmup: WARMUP,
  concurrency: CONCURRENCY,
  completed,
  started,
  seconds: +((tEnd - t0) / 1000).toFixed(1),
  jobsPerSecond: Math.round(measured / ((tEnd - tWarm) / 1000)),
  rssMb: {
    afterWarmup: +(warm.rss / MB).toFixed(1),
    end: +(end.rss / MB).toFixed(1),
    growth: +rssGrowth.toFixed(1),
    limit: RSS_LIMIT,
  },
  heapUsedMb: { afterWarmup: +(warm.heapUsed / MB).toFixed(1), end: +(end.heapUsed / MB).toFixed(1) },
  handles: { afterWarmup: warm.handles, end: end.handles },
  resources: { afterWarmup: warm.resources, end: end.resources },
  listeners: end.listeners,
  samples,
  failures,
};
process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
if (failures.length > 0) process.stderr.write(`soak FAILED:\n  ${failures.join('\n  ')}\n`);
process.exitCode = failures.length > 0 ? 1 : 0;
