import { Injectable } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { positiveInt } from '../engine/options.js';
import { GearmanAdminService, type ServerPing } from '../nest/admin/gearman-admin.service.js';

/** Per-function checks of `pingCheck`. */
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

/** What a check found, before Terminus's session shapes it. */
interface Outcome {
  status: 'up' | 'degraded' | 'down';
  data: Record<string, unknown>;
}

/**
 * One run of the Gearman health check, as Terminus 12's own indicators return it from
 * `pingCheck()`: await it (or return it from a HealthCheckService indicator function), after
 * `.withTimeout(ms)` if the whole check must answer within a bound. Each result carries its
 * `responseTime` in ms, as Terminus's attempts do.
 */
export class GearmanHealthCheck<Key extends string = string> implements PromiseLike<HealthIndicatorResult<Key>> {
  private timeoutMs: number | undefined;

  /** @internal Made by `GearmanHealthIndicator.pingCheck()`. */
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly key: Key,
    private readonly run: () => Promise<Outcome>,
  ) {}

  /**
   * Down with `timeout of <ms>ms exceeded` (Terminus's wording) when the check has not finished
   * within `ms`; a silent server is down on its own after the admin module's `pingTimeout`.
   */
  withTimeout(ms: number): this {
    this.timeoutMs = positiveInt('withTimeout', ms, 0);
    return this;
  }

  then<R1 = HealthIndicatorResult<Key>, R2 = never>(
    onfulfilled?: ((value: HealthIndicatorResult<Key>) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.execute().then(onfulfilled, onrejected);
  }

  private async execute(): Promise<HealthIndicatorResult<Key>> {
    const start = performance.now();
    const { status, data } = await this.bounded();
    const result = { ...data, responseTime: Math.round(performance.now() - start) };
    const session = this.health.check(this.key);
    if (status === 'up') return session.up(result);
    return status === 'degraded' ? session.degraded(result) : session.down(result);
  }

  private bounded(): Promise<Outcome> {
    const ms = this.timeoutMs;
    if (ms === undefined) return this.run();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve({ status: 'down', data: { message: `timeout of ${ms}ms exceeded` } }), ms);
    });
    return Promise.race([this.run(), timeout]).finally(() => clearTimeout(timer));
  }
}

/**
 * Terminus 12 health indicator for gearmand: every server is pinged with an ECHO round trip.
 * `up` when all answer, `degraded` when some do, `down` when none do or a function check fails.
 * It never throws: failures come back as `down` (a 503 from HealthCheckService).
 *
 * Needs GearmanAdminModule and TerminusModule; import it from `nestjs-gearman/health`.
 */
@Injectable()
export class GearmanHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly admin: GearmanAdminService,
  ) {}

  /**
   * The check, as Terminus's own `pingCheck(key, options)`:
   * `() => this.gearman.pingCheck('gearman', { functions }).withTimeout(1500)`.
   */
  pingCheck<const Key extends string = 'gearman'>(
    key: Key = 'gearman' as Key,
    options: GearmanHealthOptions = {},
  ): GearmanHealthCheck<Key> {
    return new GearmanHealthCheck(this.health, key, () => this.check(options));
  }

  /** `pingCheck(key, options)` without a timeout, as a Promise. */
  async isHealthy<const Key extends string = 'gearman'>(
    key: Key = 'gearman' as Key,
    options: GearmanHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    return this.pingCheck(key, options);
  }

  private async check(options: GearmanHealthOptions): Promise<Outcome> {
    let pings: ServerPing[];
    try {
      pings = await this.admin.ping();
    } catch (err) {
      return { status: 'down', data: { message: (err as Error).message } };
    }
    const servers = Object.fromEntries(
      pings.map((p) => [
        p.server,
        p.up ? { status: 'up', latencyMs: p.latencyMs } : { status: 'down', error: p.error },
      ]),
    );
    const upCount = pings.filter((p) => p.up).length;
    if (upCount === 0) return { status: 'down', data: { message: 'no gearmand server answers', servers } };

    const problems = options.functions ? await this.checkFunctions(options.functions) : [];
    if (problems.length > 0) return { status: 'down', data: { message: problems.join('; '), servers } };
    if (upCount < pings.length) {
      const message = `${pings.length - upCount} of ${pings.length} gearmand servers do not answer`;
      return { status: 'degraded', data: { message, servers } };
    }
    return { status: 'up', data: { servers } };
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
