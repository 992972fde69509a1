/**
 * `startGearmanServer()`: a Gearman job server in this process, speaking gearmand 1.1.20's binary
 * and admin protocols on one port, in memory only, bound to loopback by default.
 *
 * **For development and tests; production stays on gearmand.** It keeps no persistent queue, has
 * no TLS and no authentication, and runs on one thread. What differs from gearmand is listed in
 * the README ("The embedded job server").
 *
 * ```ts
 * const server = await startGearmanServer({ port: 0 });
 * const client = new GearmanClient({ servers: server.servers });
 * // ...
 * await server.close();
 * ```
 */
import { createServer, type Server, type Socket } from 'node:net';
import { GearmanError } from '../protocol/errors.js';
import { type AdminContext, runAdminLine } from './admin.js';
import { type ConnectionHost, ServerConnection } from './connection.js';
import { JobServer } from './job-server.js';
import { type LogFn, makeLog } from './log.js';
import { type GearmanServerOptions, type ResolvedServerOptions, resolveServerOptions } from './options.js';

/** A running embedded job server. */
export interface GearmanServer {
  /** Where to connect, as the library's `servers` option takes it: `['127.0.0.1:PORT']`. */
  readonly servers: string[];
  /** The address listened on (as given in `host`). */
  readonly host: string;
  /** The port listened on (the one picked, with `port: 0`). */
  readonly port: number;
  /** Open connections (clients, workers and admin ones). */
  readonly connectionCount: number;
  /** Stops listening, drops every connection and every job. Resolves once the port is free. */
  close(): Promise<void>;
}

/**
 * Starts an embedded job server and resolves once it listens. Rejects with a GearmanError:
 * `INVALID_ARGUMENT` for bad options, `LISTEN_FAILED` when the address cannot be bound.
 *
 * For development and tests; production stays on gearmand.
 */
export async function startGearmanServer(options: GearmanServerOptions = {}): Promise<GearmanServer> {
  const resolved = resolveServerOptions(options);
  const server = new EmbeddedServer(resolved, makeLog(resolved.verbose, resolved.log));
  await server.listen();
  return server.handle();
}

class EmbeddedServer implements ConnectionHost {
  readonly jobs: JobServer;
  readonly maxPacketSize: number;
  /** Open connections, oldest first. */
  private readonly connections = new Set<ServerConnection>();
  private dirty: ServerConnection[] = [];
  private flushScheduled = false;
  private readonly net: Server;
  private readonly adminContext: AdminContext;
  private port = 0;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: ResolvedServerOptions,
    readonly log: LogFn,
  ) {
    this.jobs = new JobServer(options, log);
    this.maxPacketSize = options.maxPacketSize;
    this.adminContext = { jobs: this.jobs, peers: () => this.connections, pid: process.pid };
    this.net = createServer((socket) => this.accept(socket));
    this.net.on('error', (err) => log('ERROR', `listener: ${err.message}`));
  }

  listen(): Promise<void> {
    const { host, port, backlog } = this.options;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new GearmanError(
            'LISTEN_FAILED',
            `The embedded Gearman server could not listen on ${host}:${port} (${err.code ?? err.message}): ` +
              (err.code === 'EADDRINUSE'
                ? 'the port is taken; pick another, or port 0 for a free one'
                : 'check the host and port'),
            { cause: err },
          ),
        );
      };
      this.net.once('error', onError);
      this.net.listen({ host, port, backlog }, () => {
        this.net.off('error', onError);
        const address = this.net.address();
        this.port = typeof address === 'object' && address !== null ? address.port : port;
        this.log('NOTICE', `listening on ${host}:${this.port} (embedded job server, for development and tests)`);
        resolve();
      });
    });
  }

  handle(): GearmanServer {
    const host = this.options.host;
    const connectTo = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    const connections = this.connections;
    return {
      servers: [connectTo.includes(':') ? `[${connectTo}]:${this.port}` : `${connectTo}:${this.port}`],
      host,
      port: this.port,
      get connectionCount() {
        return connections.size;
      },
      close: () => this.close(),
    };
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new ServerConnection(socket, this, this.options.exceptions);
    this.connections.add(connection);
  }

  markDirty(connection: ServerConnection): void {
    connection.dirty = true;
    this.dirty.push(connection);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** Writes every connection's queued packets: one socket write per connection per event-loop turn. */
  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (let i = 0; i < dirty.length; i++) dirty[i].flush();
  };

  admin(line: Buffer): string | undefined {
    return runAdminLine(this.adminContext, line);
  }

  remove(connection: ServerConnection): void {
    if (!this.connections.delete(connection)) return;
    this.jobs.disconnect(connection);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.net.close(() => resolve());
      for (const connection of [...this.connections]) {
        connection.closed = true;
        connection.socket.destroy();
        this.remove(connection);
      }
      this.jobs.close();
    });
    return this.closing;
  }
}
