import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GearmanAdminModule, GearmanModule } from 'nestjs-gearman';
import { GearmanHealthIndicator } from 'nestjs-gearman/health';
import { NEST_ONLY_FUNCTIONS } from '../config.js';
import { AdminController } from './admin.controller.js';
import { HealthController } from './health.controller.js';
import { JobsController } from './jobs.controller.js';

export interface GatewayOptions {
  /** gearmand servers, `host:port` each. */
  servers: string[];
  /** Milliseconds a foreground job may take before the request fails with 504 (default 15 000). */
  jobTimeout?: number;
  /** Terminus' own logging of failed checks (default on). */
  healthLogs?: boolean;
}

/**
 * The HTTP gateway: ClientGearman (GearmanModule) for the jobs, GearmanAdminModule and Terminus
 * for /admin/status and /health. `GatewayModule.forRoot({ servers: gearmanServers() })`.
 */
@Module({})
export class GatewayModule {
  static forRoot(options: GatewayOptions): DynamicModule {
    const { servers } = options;
    return {
      module: GatewayModule,
      imports: [
        GearmanModule.register({
          servers,
          clientId: 'nestjs-gearman-sample-gateway',
          timeout: options.jobTimeout ?? 15_000,
          reconnect: { initialDelay: 100, maxDelay: 2000 },
          sendMetadata: NEST_ONLY_FUNCTIONS,
        }),
        GearmanAdminModule.forRoot({ servers, connectTimeout: 1000, commandTimeout: 2000 }),
        TerminusModule.forRoot({ logger: options.healthLogs ?? true }),
      ],
      controllers: [JobsController, HealthController, AdminController],
      providers: [GearmanHealthIndicator],
    };
  }
}
