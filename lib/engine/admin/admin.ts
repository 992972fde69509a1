import type { FunctionPriorityStatus, FunctionStatus, JobInfo, WorkerInfo } from '../../protocol/admin-replies.js';
import { GearmanError, invalidArgument } from '../errors.js';
import { type ConnectionOptions, resolveConnectionOptions } from '../options.js';
import { resolveServers } from '../servers.js';
import {
  checkToken,
  GearmanAdminConnection,
  type GearmanAdminConnectionOptions,
  type MaxQueueLimits,
} from './admin-connection.js';

/** Options of {@link GearmanAdmin}: the shared connection options an admin socket uses, and its command timeout. */
export interface GearmanAdminOptions
  extends Pick<ConnectionOptions, 'servers' | 'tls'>, GearmanAdminConnectionOptions {}

/** One server's outcome in a multi-server call: its value, or the error it failed with. */
export type ServerResult<T> =
  | { readonly server: string; readonly ok: true; readonly value: T }
  | { readonly server: string; readonly ok: false; readonly error: Error };

/** A row of a merged multi-server list, tagged with the server (`host:port`) it came from. */
export type WithServer<T> = T & { readonly server: string };

/**
 * Several servers of a multi-server admin call failed. `failures` has each failed server and its
 * error. Code `NO_SERVER`: no server answered; `ADMIN_ERROR`: some answered, but the outcome is
 * incomplete (see the method that raised it).
 */
export class GearmanAdminServersError extends GearmanError {
  override name = 'GearmanAdminServersError';
  constructor(
    code: 'NO_SERVER' | 'ADMIN_ERROR',
    message: string,
    readonly failures: ReadonlyArray<{ readonly server: string; readonly error: Error }>,
  ) {
    super(code, message, { cause: failures[0]?.error });
  }
}

/**
 * Admin commands over one or many gearmand servers, one {@link GearmanAdminConnection} each,
 * opened lazily.
 *
 * Merged reads (`status`, `priorityStatus`, `workers`, `showJobs`, `showUniqueJobs`) ask every
 * server at once and merge the servers that answered: a server that is down is left out, so one
 * dead server does not blind a dashboard to the others. They reject only when no server answers
 * (with that server's own error when there is one server, else {@link GearmanAdminServersError}
 * naming each). Use the `...ByServer` methods or {@link eachServer} to see which servers answered,
 * e.g. in a health check.
 */
export class GearmanAdmin {
  private readonly connections = new Map<string, GearmanAdminConnection>();

  constructor(options: GearmanAdminOptions = {}) {
    // Only what an admin socket uses: the options object may be shared with a client or worker.
    const { servers, connectTimeout, keepAlive } = resolveConnectionOptions({
      servers: options.servers,
      tls: options.tls,
      connectTimeout: options.connectTimeout,
      keepAlive: options.keepAlive,
    });
    const { commandTimeout } = options;
    for (const server of servers) {
      this.connections.set(
        server.address,
        new GearmanAdminConnection(server, { connectTimeout, keepAlive, commandTimeout }),
      );
    }
  }

  /** The servers' addresses (`host:port`), in the order given. */
  get servers(): string[] {
    return [...this.connections.keys()];
  }

  /** The connection to one server, by its address as given (`'host'`, `'host:port'`, or as listed in {@link servers}). */
  server(address: string): GearmanAdminConnection {
    let key = address;
    try {
      key = resolveServers(address)[0].address;
    } catch {
      // Not a valid address: reported as unknown below.
    }
    const connection = this.connections.get(key);
    if (!connection) {
      throw invalidArgument(
        `Unknown gearmand ${JSON.stringify(address)}: this GearmanAdmin knows ${this.servers.join(', ')}`,
      );
    }
    return connection;
  }

  /**
   * Runs `fn` on every server's connection at once. Never rejects: each server's value or error
   * is in its own result, in server order.
   */
  eachServer<T>(fn: (connection: GearmanAdminConnection) => Promise<T>): Promise<ServerResult<T>[]> {
    return Promise.all(
      [...this.connections.values()].map(async (connection): Promise<ServerResult<T>> => {
        try {
          return { server: connection.address, ok: true, value: await fn(connection) };
        } catch (error) {
          return { server: connection.address, ok: false, error: toError(error) };
        }
      }),
    );
  }

  /** `status` of each server, failures included. */
  statusByServer(): Promise<ServerResult<FunctionStatus[]>[]> {
    return this.eachServer((c) => c.status());
  }

  /** `prioritystatus` of each server, failures included. */
  priorityStatusByServer(): Promise<ServerResult<FunctionPriorityStatus[]>[]> {
    return this.eachServer((c) => c.priorityStatus());
  }

  /** `status` summed by function over the servers that answered (workers summed too), in order of first appearance. */
  async status(): Promise<FunctionStatus[]> {
    return sumByFunction(await this.answered('status', (c) => c.status()), ['total', 'running', 'workers']);
  }

  /** `prioritystatus` summed by function over the servers that answered, in order of first appearance. */
  async priorityStatus(): Promise<FunctionPriorityStatus[]> {
    return sumByFunction(await this.answered('prioritystatus', (c) => c.priorityStatus()), [
      'high',
      'normal',
      'low',
      'workers',
    ]);
  }

  /** `workers` of the servers that answered, each row tagged with its server. */
  async workers(): Promise<WithServer<WorkerInfo>[]> {
    return tag(await this.answered('workers', (c) => c.workers()));
  }

  /** `show jobs` of the servers that answered, each row tagged with its server. */
  async showJobs(): Promise<WithServer<JobInfo>[]> {
    return tag(await this.answered('show jobs', (c) => c.showJobs()));
  }

  /** `show unique jobs` of the servers that answered, one row per job. */
  async showUniqueJobs(): Promise<Array<{ readonly server: string; readonly unique: string }>> {
    const answered = await this.answered('show unique jobs', (c) => c.showUniqueJobs());
    return answered.flatMap(({ server, value }) => value.map((unique) => ({ server, unique })));
  }

  /**
   * `maxqueue` on every server; resolves with whether each server applied it (`false`: that
   * gearmand does not know the function yet, see {@link GearmanAdminConnection.maxqueue}).
   * Unlike the reads, this rejects if any server failed, after the others applied it, because a
   * limit silently missing on one server is worse than an error: `maxqueue` is idempotent, so
   * retry (or use `eachServer`).
   */
  async maxqueue(
    fn: string,
    limit: number | MaxQueueLimits,
  ): Promise<Array<{ readonly server: string; readonly applied: boolean }>> {
    const results = await this.eachServer((c) => c.maxqueue(fn, limit));
    const failures = failed(results);
    if (failures.length === 0) return results.flatMap((r) => (r.ok ? [{ server: r.server, applied: r.value }] : []));
    if (results.length === 1) throw failures[0].error;
    const applied = results.filter((r) => r.ok).map((r) => r.server);
    throw new GearmanAdminServersError(
      applied.length ? 'ADMIN_ERROR' : 'NO_SERVER',
      `maxqueue ${fn} was ${applied.length ? `sent to ${applied.join(', ')} but ` : ''}not applied on ${describe(failures)}: retry once those servers answer`,
      failures,
    );
  }

  /**
   * `cancel job` on one server, or on every server when `server` is omitted. Resolves `true` if a
   * server answered OK, `false` if every server answered that it does not know the job. When no
   * server said OK and some could not be asked, it rejects, as the job may be on those.
   *
   * Job handles are unique per server only: gearmands on one host give out the same
   * `H:<hostname>:<n>` handles, so without `server` a job with that handle is cancelled on every
   * server that has one. Pass the server the job was submitted to whenever it is known. See
   * {@link GearmanAdminConnection.cancelJob} about running jobs.
   */
  async cancelJob(handle: string, server?: string): Promise<boolean> {
    if (server !== undefined) return this.server(server).cancelJob(handle);
    checkToken('Job handle', handle);
    const results = await this.eachServer((c) => c.cancelJob(handle));
    if (results.some((r) => r.ok && r.value)) return true;
    const failures = failed(results);
    if (failures.length === 0) return false;
    if (results.length === 1) throw failures[0].error;
    const answered = results.filter((r) => r.ok).map((r) => r.server);
    throw new GearmanAdminServersError(
      answered.length ? 'ADMIN_ERROR' : 'NO_SERVER',
      `Could not cancel job ${handle}: ${answered.length ? `${answered.join(', ')} do not know it, and ` : ''}${describe(failures)} could not be asked`,
      failures,
    );
  }

  /** Closes every server's connection. */
  async close(): Promise<void> {
    await Promise.all([...this.connections.values()].map((c) => c.close()));
  }

  /** The servers that answered; rejects only when none did. */
  private async answered<T>(
    what: string,
    fn: (connection: GearmanAdminConnection) => Promise<T>,
  ): Promise<Array<{ server: string; value: T }>> {
    const results = await this.eachServer(fn);
    const ok = results.flatMap((r) => (r.ok ? [{ server: r.server, value: r.value }] : []));
    if (ok.length > 0) return ok;
    const failures = failed(results);
    if (failures.length === 1) throw failures[0].error;
    throw new GearmanAdminServersError('NO_SERVER', `No gearmand answered "${what}": ${describe(failures)}`, failures);
  }
}

function failed<T>(results: ServerResult<T>[]): Array<{ server: string; error: Error }> {
  return results.flatMap((r) => (r.ok ? [] : [{ server: r.server, error: r.error }]));
}

function describe(failures: Array<{ server: string; error: Error }>): string {
  return failures.map((f) => `${f.server} (${f.error.message})`).join('; ');
}

/** Rows of several servers summed per function (the `counts` fields), in order of first appearance. */
function sumByFunction<T extends { readonly function: string }>(
  answered: Array<{ value: T[] }>,
  counts: readonly { [K in keyof T]: T[K] extends number ? K : never }[keyof T][],
): T[] {
  const sum = new Map<string, T>();
  for (const { value } of answered) {
    for (const row of value) {
      const acc = sum.get(row.function) as Record<keyof T, number> | undefined;
      if (!acc) sum.set(row.function, { ...row });
      else for (const key of counts) acc[key] += row[key] as number;
    }
  }
  return [...sum.values()];
}

function tag<T extends object>(answered: Array<{ server: string; value: T[] }>): WithServer<T>[] {
  return answered.flatMap(({ server, value }) => value.map((row) => ({ ...row, server })));
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
