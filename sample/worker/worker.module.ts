import { Module } from '@nestjs/common';
import { type GearmanServerOptions, ServerGearman } from 'nestjs-gearman';
import { NEST_ONLY_FUNCTIONS } from '../config.js';
import { EmailOutbox } from './email-outbox.service.js';
import { EmailsController } from './emails.controller.js';
import { MathController } from './math.controller.js';
import { OrdersController } from './orders.controller.js';
import { ReportsController } from './reports.controller.js';
import { TextController } from './text.controller.js';

/** The worker's handlers: every @MessagePattern / @EventPattern becomes a Gearman function. */
@Module({
  controllers: [MathController, ReportsController, EmailsController, OrdersController, TextController],
  providers: [EmailOutbox],
})
export class WorkerModule {}

/**
 * The transport strategy of the worker microservice:
 * `NestFactory.createMicroservice(WorkerModule, { strategy: createWorkerTransport(servers) })`.
 */
export function createWorkerTransport(
  servers: string[],
  options: Omit<GearmanServerOptions, 'servers'> = {},
): ServerGearman {
  return new ServerGearman({
    servers,
    clientId: 'nestjs-gearman-sample-worker',
    maxJobs: 4,
    // Come back quickly after a gearmand restart (the default backoff grows to 10 s).
    reconnect: { initialDelay: 100, maxDelay: 2000 },
    closeTimeout: 5000,
    readMetadata: NEST_ONLY_FUNCTIONS,
    ...options,
  });
}
