import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { gearmanServers, httpHost, httpPort } from './config.js';
import { GatewayModule } from './gateway/gateway.module.js';

/** The HTTP gateway: `GEARMAN_SERVERS=127.0.0.1:4730 PORT=3000 node dist-sample/gateway.main.js`. */
async function main(): Promise<void> {
  const servers = gearmanServers();
  const app = await NestFactory.create(GatewayModule.forRoot({ servers }));
  app.enableShutdownHooks();
  await app.listen(httpPort(), httpHost());
  new Logger('Gateway').log(`HTTP gateway on ${await app.getUrl()} (gearmand: ${servers.join(', ')})`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
