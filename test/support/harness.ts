/**
 * The test harness: `useGearmand()` and `useResources()` register their own Jest hooks in the scope
 * (file or describe block) that calls them, so a spec states what it needs and never writes
 * beforeAll/afterEach/afterAll blocks for it. Everything a test opens through `res` is closed
 * after it, in reverse order, so Jest exits with no open handles.
 */
import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach } from '@jest/globals';
import type { INestMicroservice, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  GearmanAdmin,
  type GearmanAdminOptions,
  GearmanClient,
  type GearmanClientOptions,
  GearmanWorker,
  type GearmanWorkerOptions,
  type WorkerJob,
} from '../../lib/engine/index.js';
import {
  ClientGearman,
  type GearmanClientProxyOptions,
  type GearmanServerOptions,
  ServerGearman,
} from '../../lib/index.js';
import { spawnTsx, type TsxChild } from './child.js';
import { Gearmand, type GearmandOptions, listenOnLoopback, type SilentServer, silentServer } from './servers.js';
import { type Deferred, deferred, eventually, within } from './wait.js';

export interface GearmandHandle {
  /** `host:port` of the running gearmand. */
  readonly address: string;
  readonly port: number;
  /** The server itself, for kill(), restart(), stop(), pid, logFile. */
  readonly server: Gearmand;
}

/** Per shared gearmand: closeAll of the `scope: 'all'` resources bound to it, run before it stops. */
const teardownBefore = new WeakMap<GearmandHandle, Array<() => Promise<void>>>();

/**
 * A private gearmand for the calling scope, started in beforeAll and disposed in afterAll; one a
 * test left killed or stopped is started again (same port) before the next test. With `perTest`,
 * a fresh one per test: the previous one is disposed in the next beforeEach (or afterAll), so it
 * outlives the test's own cleanup (useResources' afterEach) whatever the declaration order.
 */
export function useGearmand(options: GearmandOptions & { perTest?: boolean } = {}): GearmandHandle {
  const { perTest, ...gearmandOptions } = options;
  let current: Gearmand | undefined;
  const running = (): Gearmand => {
    if (!current) throw new Error('useGearmand(): the gearmand is not started (use it inside a test or hook)');
    return current;
  };
  const dispose = async () => {
    const server = current;
    current = undefined;
    await server?.dispose();
  };
  const handle: GearmandHandle = {
    get address() {
      return running().address;
    },
    get port() {
      return running().port;
    },
    get server() {
      return running();
    },
  };
  if (perTest) {
    beforeEach(async () => {
      await dispose();
      current = await Gearmand.start(gearmandOptions);
    });
    afterAll(dispose);
  } else {
    const before: Array<() => Promise<void>> = [];
    teardownBefore.set(handle, before);
    beforeAll(async () => {
      current = await Gearmand.start(gearmandOptions);
    });
    beforeEach(async () => {
      if (current && !current.running) await current.restart();
    });
    afterAll(async () => {
      for (const closeAll of before.splice(0)) await closeAll();
      await dispose();
    });
  }
  return handle;
}

/**
 * A Resources for the calling scope. `scope: 'each'` (default): closed after each test.
 * `scope: 'all'`, for what a scope opens once in beforeAll: closed after its last test; when bound
 * to a (shared) gearmand, in that gearmand's afterAll just before it stops, since Jest runs the
 * afterAll hooks of one scope in declaration order.
 */
export function useResources(gearmand?: GearmandHandle, options: { scope?: 'each' | 'all' } = {}): Resources {
  const res = new Resources(gearmand);
  if (options.scope !== 'all') afterEach(() => res.closeAll());
  else if (!gearmand) afterAll(() => res.closeAll());
  else {
    const before = teardownBefore.get(gearmand);
    if (!before) throw new Error("useResources(gearmand, { scope: 'all' }) takes a shared gearmand, not a perTest one");
    before.push(() => res.closeAll());
  }
  return res;
}

type Servers = GearmanClientOptions['servers'];
type WithServers<T extends { servers?: Servers }> = Omit<T, 'servers'> & { servers?: Servers };

export interface MicroserviceHandle {
  app: INestMicroservice;
  server: ServerGearman;
  logger: CapturingLogger;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time until exit. */
  ms: number;
  /** We killed it because it did not exit within the bound. */
  killed: boolean;
}

/**
 * Everything one test opens. `servers` defaults to the bound gearmand. Gates are released first at
 * cleanup, so held handlers end and closing does not wait for them.
 */
export class Resources {
  private readonly closers: Array<() => unknown> = [];
  private readonly gates: Deferred<unknown>[] = [];

  constructor(private readonly bound?: GearmandHandle) {}

  /** Runs `fn` at cleanup (reverse order of registration). */
  defer(fn: () => unknown): void {
    this.closers.push(fn);
  }

  /** A deferred resolved at cleanup if the test did not settle it. */
  gate<T = void>(): Deferred<T> {
    const d = deferred<T>();
    this.gates.push(d as Deferred<unknown>);
    return d;
  }

  /** A connected GearmanClient. */
  async client(options: WithServers<GearmanClientOptions> = {}): Promise<GearmanClient> {
    const client = new GearmanClient({ servers: this.servers(), ...options });
    this.defer(() => client.close());
    await client.connect();
    return client;
  }

  /**
   * A started worker whose handler of `fn` holds its job until the test resolves `release`
   * (resolved at cleanup otherwise); `started` resolves with the job once the handler has it.
   */
  async heldWorker(fn: string): Promise<{ started: Deferred<WorkerJob>; release: Deferred<string> }> {
    const started = deferred<WorkerJob>();
    const release = this.gate<string>();
    const worker = this.worker();
    worker.register(fn, async (job) => {
      started.resolve(job);
      return release.promise;
    });
    await worker.start();
    return { started, release };
  }

  /** A GearmanWorker, not started (register first, then `start()`). */
  worker(options: WithServers<GearmanWorkerOptions> = {}): GearmanWorker {
    const worker = new GearmanWorker({ servers: this.servers(), ...options });
    this.defer(() => worker.close(200));
    return worker;
  }

  admin(options: WithServers<GearmanAdminOptions> = {}): GearmanAdmin {
    const admin = new GearmanAdmin({ servers: this.servers(), ...options });
    this.defer(() => admin.close());
    return admin;
  }

  /** A ClientGearman (connects on first use), logging into a CapturingLogger unless told otherwise. */
  clientProxy(options: WithServers<GearmanClientProxyOptions> = {}): ClientGearman {
    const client = new ClientGearman({
      servers: this.servers(),
      connectTimeout: 3000,
      logger: new CapturingLogger(),
      ...options,
    });
    this.defer(() => client.close());
    return client;
  }

  /** Compiles a module and creates (not yet listening) a Gearman microservice on it. */
  async createMicroservice(metadata: ModuleMetadata, options: GearmanServerOptions = {}): Promise<MicroserviceHandle> {
    const logger = new CapturingLogger();
    const server = new ServerGearman({ servers: this.servers(), logger, closeTimeout: 3000, ...options });
    const moduleRef = await Test.createTestingModule(metadata).compile();
    const app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
    this.defer(() => app.close());
    return { app, server, logger };
  }

  /** `createMicroservice` and `listen()` (bounded). */
  async microservice(metadata: ModuleMetadata, options: GearmanServerOptions = {}): Promise<MicroserviceHandle> {
    const handle = await this.createMicroservice(metadata, options);
    await within(handle.app.listen(), 10_000, 'app.listen()');
    return handle;
  }

  /** Another gearmand, started now. */
  async gearmand(options: GearmandOptions = {}): Promise<Gearmand> {
    const server = await Gearmand.start(options);
    this.defer(() => server.dispose());
    return server;
  }

  /**
   * Listens with `server` (a stand-in peer: a TLS front, a proxy, a peer that misbehaves) on a free
   * loopback port and returns its address. Its connections' errors are ignored; at cleanup they are
   * destroyed (a proxy's close handlers take its upstream sockets along) and the server closed.
   */
  async serve(server: Server | TlsServer): Promise<string> {
    const sockets = new Set<Socket>();
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    });
    const port = await listenOnLoopback(server as Server);
    this.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    return `127.0.0.1:${port}`;
  }

  async silentServer(): Promise<SilentServer> {
    const server = await silentServer();
    this.defer(() => server.close());
    return server;
  }

  /**
   * SIGSTOPs a process (a gearmand: a frozen server) and waits until every thread of it has
   * stopped, as Linux's /proc shows (kill() only queues the signal: a running thread may still
   * answer what arrives meanwhile). The returned function, also run at cleanup, SIGCONTs it.
   */
  async freeze(pid: number): Promise<() => void> {
    let frozen = true;
    const thaw = (): void => {
      if (!frozen) return;
      frozen = false;
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    };
    this.defer(thaw);
    process.kill(pid, 'SIGSTOP');
    const tasks = `/proc/${pid}/task`;
    if (!existsSync(tasks)) return thaw; // not Linux: nothing to wait on
    // A thread's state is the field after its command, which is in parentheses (proc(5)).
    const state = (task: string): string => readFileSync(`${tasks}/${task}/stat`, 'utf8').split(') ')[1][0];
    await eventually(() => readdirSync(tasks).every((task) => state(task) === 'T'), 2000, `process ${pid} to stop`);
    return thaw;
  }

  /** A TypeScript fixture in its own Node process (support/child.ts). */
  tsx(script: string, args: string[], options?: Parameters<typeof spawnTsx>[2]): TsxChild {
    const child = spawnTsx(script, args, options);
    this.defer(() => child.kill());
    return child;
  }

  /** Runs the `gearman` CLI (on the bound gearmand); SIGKILLs it after `timeoutMs` (reported as `killed`). */
  runCli(args: string[], timeoutMs: number): Promise<CliResult> {
    const started = performance.now();
    const child = spawn('gearman', this.cliArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.defer(() => stopChild(child));
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let killed = false;
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`could not run the gearman CLI (apt-get install gearman-tools): ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, ms: performance.now() - started, killed });
      });
    });
  }

  /** Starts a long-running `gearman` CLI process (a worker, on the bound gearmand), stopped by PID at cleanup. */
  spawnCli(args: string[]): ChildProcess {
    const child = spawn('gearman', this.cliArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.resume();
    child.stderr!.resume();
    child.once('error', () => undefined);
    this.defer(() => stopChild(child));
    return child;
  }

  /** Releases the gates, then closes everything in reverse order (best effort). */
  async closeAll(): Promise<void> {
    for (const gate of this.gates.splice(0)) if (!gate.settled) gate.resolve(undefined);
    for (const fn of this.closers.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the test already reported its failure
      }
    }
  }

  private servers(): Servers {
    return this.bound?.address;
  }

  private cliArgs(args: string[]): string[] {
    if (!this.bound) return args;
    const { host, port } = this.bound.server;
    return ['-h', host, '-p', String(port), ...args];
  }
}

/** SIGTERM by PID, SIGKILL after 2 s; resolves once the process has exited. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

let counter = 0;
/** A function name no other test uses (tests share one gearmand per file). */
export function fnName(prefix: string): string {
  return `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;
}

/** One function's row of admin `status` (zeros when gearmand does not list it). */
export async function functionStatus(
  admin: GearmanAdmin,
  fn: string,
): Promise<{ total: number; running: number; workers: number }> {
  const row = (await admin.status()).find((s) => s.function === fn);
  return row ? { total: row.total, running: row.running, workers: row.workers } : { total: 0, running: 0, workers: 0 };
}

/** A LoggerService that keeps every line, and lets a test wait for one. */
export class CapturingLogger implements LoggerService {
  readonly lines: { level: string; message: string }[] = [];
  private readonly events = new EventEmitter();

  log(message: unknown): void {
    this.add('log', message);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('error', [message, ...rest].map(String).join(' '));
  }
  warn(message: unknown): void {
    this.add('warn', message);
  }
  debug(message: unknown): void {
    this.add('debug', message);
  }
  verbose(message: unknown): void {
    this.add('verbose', message);
  }

  /** Lines of one level that match. */
  find(level: string, pattern: RegExp): string[] {
    return this.lines.filter((l) => l.level === level && pattern.test(l.message)).map((l) => l.message);
  }

  /** The first line (already logged or to come) of `level` matching `pattern`, within `timeoutMs`. */
  waitFor(level: string, pattern: RegExp, timeoutMs = 5000): Promise<string> {
    const found = this.find(level, pattern)[0];
    if (found !== undefined) return Promise.resolve(found);
    return within(
      new Promise<string>((resolve) => {
        const listener = (l: { level: string; message: string }) => {
          if (l.level === level && pattern.test(l.message)) {
            this.events.off('line', listener);
            resolve(l.message);
          }
        };
        this.events.on('line', listener);
      }),
      timeoutMs,
      `a ${level} log line matching ${pattern} (saw: ${JSON.stringify(this.lines)})`,
    );
  }

  private add(level: string, message: unknown): void {
    const line = { level, message: String(message) };
    this.lines.push(line);
    this.events.emit('line', line);
  }
}
