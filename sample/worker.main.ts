import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { gearmanServers } from './config.js';
import { createWorkerTransport, WorkerModule } from './worker/worker.module.js';

/** The worker microservice: `GEARMAN_SERVERS=127.0.0.1:4730 node dist-sample/worker.main.js`. */
async function main(): Promise<void> {
  const servers = gearmanServers();
  const app = await NestFactory.createMicroservice(WorkerModule, { strategy: createWorkerTransport(servers) });
  app.enableShutdownHooks();
  await app.listen();
  new Logger('Worker').log(`Gearman worker ready on ${servers.join(', ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
