/**
 * A Nest microservice with ServerGearman (maxJobs 64, metadata read) whose `ot_echo` handler returns
 * the payload; prints `ready` once listening and, on SIGTERM, its CPU per job after the client's
 * 2000 warm-up jobs.
 */
import './otel-setup.js';
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { ServerGearman } from '../../lib/index.js';
import { telemetry } from './otel-setup.js';

const WARM_UP = 2000;
let jobs = 0;
let base = process.cpuUsage();

@Controller()
class EchoController {
  @MessagePattern('ot_echo', { codec: 'text' })
  echo(payload: string): string {
    if (++jobs === WARM_UP) base = process.cpuUsage();
    return payload;
  }
}

@Module({ controllers: [EchoController] })
class EchoModule {}

const app = await NestFactory.createMicroservice(EchoModule, {
  strategy: new ServerGearman({
    servers: [process.env.ADDR!],
    maxJobs: 64,
    logger: false,
    readMetadata: true,
    telemetry,
  }),
  logger: false,
});
await app.listen();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  const used = process.cpuUsage(base);
  process.stdout.write(
    `${JSON.stringify({ worker_us_per_job: +((used.user + used.system) / (jobs - WARM_UP)).toFixed(2) })}\n`,
  );
  void app.close().then(() => process.exit(0));
});
