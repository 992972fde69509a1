import { Injectable } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { GearmanAdminService, type ServerPing } from '../nest/admin/gearman-admin.service.js';

/** Per-function checks of `isHealthy`. */
export interface GearmanFunctionCheck {
  /** Down when more jobs than this are queued (not running) across servers (`prioritystatus`). */
  maxQueued?: number;
  /** Down when jobs are queued but no worker has registered the function (default true). */
  requireWorkers?: boolean;
}

export interface GearmanHealthOptions {
  /** Checks per function name. */
  functions?: Record<string, GearmanFunctionCheck>;
}

/**
 * Terminus 12 health indicator for gearmand: every server is pinged with an ECHO round trip.
 * `up` when all answer, `degraded` when some do, `down` when none do or a function check fails.
 * It never throws: failures come back as `down()` (a 503 from HealthCheckService).
 *
 * Needs GearmanAdminModule and TerminusModule; import it from `nestjs-gearman/health`.
 */
@Injectable()
export class GearmanHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly admin: GearmanAdminService,
  ) {}

  async isHealthy<const Key extends string = 'gearman'>(
    key: Key = 'gearman' as Key,
    options: GearmanHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const session = this.health.check(key);
    let pings: ServerPing[];
    try {
      pings = await this.admin.ping();
    } catch (err) {
      return session.down({ message: (err as Error).message });
    }
    const servers = Object.fromEntries(
      pings.map((p) => [
        p.server,
        p.up ? { status: 'up', latencyMs: p.latencyMs } : { status: 'down', error: p.error },
      ]),
    );
    const upCount = pings.filter((p) => p.up).length;
    if (upCount === 0) return session.down({ message: 'no gearmand server answers', servers });

    const problems = options.functions ? await this.checkFunctions(options.functions) : [];
    if (problems.length > 0) return session.down({ message: problems.join('; '), servers });
    if (upCount < pings.length) {
      return session.degraded({
        message: `${pings.length - upCount} of ${pings.length} gearmand servers do not answer`,
        servers,
      });
    }
    return session.up({ servers });
  }

  private async checkFunctions(checks: Record<string, GearmanFunctionCheck>): Promise<string[]> {
    let rows;
    try {
      rows = await this.admin.priorityStatus();
    } catch (err) {
      return [`prioritystatus failed: ${(err as Error).message}`];
    }
    const problems: string[] = [];
    for (const [fn, check] of Object.entries(checks)) {
      const row = rows.find((r) => r.function === fn);
      const queued = row ? row.high + row.normal + row.low : 0;
      if (check.maxQueued !== undefined && queued > check.maxQueued) {
        problems.push(`${fn}: ${queued} jobs queued, above the limit of ${check.maxQueued}`);
      }
      if ((check.requireWorkers ?? true) && queued > 0 && (row?.workers ?? 0) === 0) {
        problems.push(`${fn}: ${queued} jobs queued but no worker registered`);
      }
    }
    return problems;
  }
}
