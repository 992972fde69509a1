import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  type FunctionPriorityStatus,
  type FunctionStatus,
  GearmanAdmin,
  type GearmanAdminConnection,
  type GearmanAdminOptions,
  GearmanClient,
  type JobInfo,
  type MaxQueueLimits,
  type ServerResult,
  type WithServer,
  type WorkerInfo,
} from '../../engine/index.js';
import { observeAdminMetrics } from '../telemetry/admin-metrics.js';
import type { GearmanMeter } from '../telemetry/options.js';

export const GEARMAN_ADMIN_OPTIONS = Symbol('GEARMAN_ADMIN_OPTIONS');

export interface GearmanAdminModuleOptions extends GearmanAdminOptions {
  /** Milliseconds a health ping (ECHO) may take per server (default 1000). */
  pingTimeout?: number;
}

/** One server's answer to a ping. */
export interface ServerPing {
  readonly server: string;
  readonly up: boolean;
  /** Round trip of an ECHO, in ms (when up). */
  readonly latencyMs?: number;
  /** Why it is down. */
  readonly error?: string;
}

/**
 * gearmand's admin commands with typed results, per server and merged across servers, plus ECHO
 * pings for health checks. Provided by GearmanAdminModule.
 */
@Injectable()
export class GearmanAdminService implements OnModuleDestroy {
  private readonly admin: GearmanAdmin;
  private readonly pinger: GearmanClient;
  private readonly pingTimeout: number;
  /** What unregisters the gauges of each `observeMetrics` call. */
  private readonly observers: (() => void)[] = [];

  constructor(@Inject(GEARMAN_ADMIN_OPTIONS) options: GearmanAdminModuleOptions) {
    this.admin = new GearmanAdmin(options);
    this.pingTimeout = options.pingTimeout ?? 1000;
    // A plain client for ECHO only; it keeps reconnecting quickly so a returning server shows up soon.
    this.pinger = new GearmanClient({
      servers: options.servers,
      tls: options.tls,
      exceptions: false,
      connectTimeout: this.pingTimeout,
      reconnect: { initialDelay: 100, maxDelay: 1000 },
    });
  }

  /** Server addresses (`host:port`). */
  get servers(): string[] {
    return this.admin.servers;
  }

  /** The engine's GearmanAdmin. */
  unwrap(): GearmanAdmin {
    return this.admin;
  }

  /** One server's admin connection, for per-server commands (`version`, `getpid`, `createFunction`, ...). */
  server(address: string): GearmanAdminConnection {
    return this.admin.server(address);
  }

  /** ECHO round trip to every server at once; never rejects. */
  ping(): Promise<ServerPing[]> {
    return Promise.all(
      this.servers.map(async (server): Promise<ServerPing> => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const latency = await Promise.race([
            this.pinger.echo(server),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`no ECHO reply within ${this.pingTimeout} ms`)),
                this.pingTimeout,
              );
            }),
          ]);
          return { server, up: true, latencyMs: Math.round(latency * 100) / 100 };
        } catch (err) {
          return { server, up: false, error: (err as Error).message };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /** `status` summed by function over the servers that answered. */
  status(): Promise<FunctionStatus[]> {
    return this.admin.status();
  }

  statusByServer(): Promise<ServerResult<FunctionStatus[]>[]> {
    return this.admin.statusByServer();
  }

  /** `prioritystatus` (queued jobs per priority) summed over the servers that answered. */
  priorityStatus(): Promise<FunctionPriorityStatus[]> {
    return this.admin.priorityStatus();
  }

  priorityStatusByServer(): Promise<ServerResult<FunctionPriorityStatus[]>[]> {
    return this.admin.priorityStatusByServer();
  }

  /** Every connection of every server (workers, clients, admin connections), tagged with its server. */
  workers(): Promise<WithServer<WorkerInfo>[]> {
    return this.admin.workers();
  }

  showJobs(): Promise<WithServer<JobInfo>[]> {
    return this.admin.showJobs();
  }

  showUniqueJobs(): Promise<Array<{ readonly server: string; readonly unique: string }>> {
    return this.admin.showUniqueJobs();
  }

  /** `version` of each server. */
  versions(): Promise<ServerResult<string>[]> {
    return this.admin.eachServer((c) => c.version());
  }

  /** Sets a queue limit for a function on every server (one limit, or one per priority). */
  maxqueue(
    fn: string,
    limit: number | MaxQueueLimits,
  ): Promise<Array<{ readonly server: string; readonly applied: boolean }>> {
    return this.admin.maxqueue(fn, limit);
  }

  /** Cancels a queued job (`cancel job`); on every server when none is named. */
  cancelJob(handle: string, server?: string): Promise<boolean> {
    return this.admin.cancelJob(handle, server);
  }

  /**
   * Registers observable gauges on an OpenTelemetry `meter` for users who scrape them (e.g. with
   * the Prometheus exporter): `gearman.function.jobs.queued`, `gearman.function.jobs.running` and
   * `gearman.function.workers`, per function (`messaging.destination.name`) and server
   * (`server.address`, `server.port`), from one `status` per server at each collection. Returns
   * what unregisters them; the module's shutdown does too.
   */
  observeMetrics(meter: GearmanMeter): () => void {
    const stop = observeAdminMetrics(meter, () => this.admin.statusByServer());
    this.observers.push(stop);
    return stop;
  }

  async onModuleDestroy(): Promise<void> {
    for (const stop of this.observers.splice(0)) stop();
    await Promise.all([this.admin.close(), this.pinger.close()]);
  }
}
