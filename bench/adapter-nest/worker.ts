/**
 * Bench worker through the Nest transport: a Nest microservice with `ServerGearman`.
 * `--mode echo`: `@MessagePattern('bench_echo', { codec: 'text' })` returns the payload (until
 * SIGTERM). `--mode drain --n N`: `@EventPattern('bench_echo', { codec: 'text' })` counts the
 * background jobs and exits after N, printing the drain result line. `BENCH_WORKER_CONCURRENCY`
 * sets `maxJobs` (default 64, as in bench/adapter's worker). `BENCH_NEST_CODEC=raw`: the handlers
 * use the `raw` codec (Buffers in and out) instead of `text`.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { ServerGearman } from '../../lib/index.js';
import { driver } from '../adapter/driver.js';

const B = driver();
const o = B.parseArgs();
const maxJobs = Number(process.env.BENCH_WORKER_CONCURRENCY || 64);
const counter = B.workerCounter(o);
const codec = process.env.BENCH_NEST_CODEC === 'raw' ? 'raw' : 'text';
let close: () => Promise<void> = () => Promise.resolve();

/** Counts a job; after the N-th of a drain, closes the app and exits. */
function count(payload: string | Buffer | undefined): void {
  // An empty payload decodes to undefined; as text, the ASCII payload's length is its byte count.
  if (counter.onJob((payload ?? '') as Buffer)) setImmediate(() => B.finish(counter.bad === 0, close));
}

@Controller()
class EchoController {
  @MessagePattern('bench_echo', { codec })
  echo(payload: string | Buffer): string | Buffer {
    count(payload);
    return payload;
  }
}

@Controller()
class DrainController {
  @EventPattern('bench_echo', { codec })
  drain(payload: string | Buffer): void {
    count(payload);
  }
}

@Module({ controllers: [o.mode === 'drain' ? DrainController : EchoController] })
class BenchWorkerModule {}

async function main(): Promise<void> {
  const strategy = new ServerGearman({ servers: [`${o.host}:${o.port}`], maxJobs, reconnect: false, logger: false });
  strategy.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`));
  const app = await NestFactory.createMicroservice(BenchWorkerModule, { strategy, logger: false });
  close = () => app.close();
  await app.listen();
}

main().catch((err) => B.die(err));
