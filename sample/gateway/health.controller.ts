import { Controller, Get } from '@nestjs/common';
import { HealthCheck, type HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { GearmanHealthIndicator } from 'nestjs-gearman/health';

/**
 * GET /health: every gearmand is pinged (ECHO). 200 `ok` when all answer, 200 `degraded` when
 * only some do, 503 when none does, or when `email.send` jobs pile up with no worker to run them.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly gearman: GearmanHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([
      () =>
        this.gearman.isHealthy('gearman', { functions: { 'email.send': { maxQueued: 1000, requireWorkers: true } } }),
    ]);
  }
}
