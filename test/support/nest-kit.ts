/**
 * Helpers for the Nest transport's integration tests against a real gearmand: a harness that
 * starts microservices, clients, engine peers and `gearman` CLI processes and closes every one of
 * them after each test; a logger that captures lines; bounded waits (no sleeps as synchronisation).
 */
import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { INestMicroservice, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { GearmanAdmin, GearmanClient, type GearmanClientOptions, GearmanWorker, type GearmanWorkerOptions } from '../../lib/engine/index.js';
import { ClientGearman, type GearmanClientProxyOptions, type GearmanServerOptions, ServerGearman } from '../../lib/nest/index.js';
import { deferred, within } from './wait-for.js';

export { deferred, within };

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

/** Polls `check` (server state seen only through the admin protocol) until truthy, for at most `ms`. */
export async function eventually<T>(check: () => Promise<T> | T, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
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

export interface MicroserviceHandle {
  app: INestMicroservice;
  server: ServerGearman;
  logger: CapturingLogger;
}

/**
 * Everything one test opens, closed in reverse order by `closeAll()` (from afterEach). Gates made
 * with `gate()` are released first, so held handlers end and `app.close()` does not wait for them.
 */
export class NestHarness {
  private readonly closers: Array<() => unknown> = [];
  private readonly gates: Array<{ resolve: (v: any) => void }> = [];

  constructor(private readonly address: () => string) {}

  defer(fn: () => unknown): void {
    this.closers.push(fn);
  }

  /** A deferred released at cleanup if the test did not release it. */
  gate<T = void>() {
    const d = deferred<T>();
    this.gates.push(d);
    return d;
  }

  /** Compiles a module and creates (not yet listening) a Gearman microservice on it. */
  async createMicroservice(metadata: ModuleMetadata, options: GearmanServerOptions = {}): Promise<MicroserviceHandle> {
    const logger = new CapturingLogger();
    const server = new ServerGearman({ servers: [this.address()], logger, closeTimeout: 3000, ...options });
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

  /** A ClientGearman on the test's gearmand (connects on first use). */
  client(options: GearmanClientProxyOptions = {}): ClientGearman {
    const client = new ClientGearman({ servers: [this.address()], connectTimeout: 3000, ...options });
    this.defer(() => client.close());
    return client;
  }

  /** A connected engine client: sees raw WORK_DATA, WORK_COMPLETE and WORK_FAIL packets. */
  async engineClient(options: GearmanClientOptions = {}): Promise<GearmanClient> {
    const client = new GearmanClient({ servers: [this.address()], connectTimeout: 3000, ...options });
    this.defer(() => client.close());
    await client.connect();
    return client;
  }

  /** An engine worker, not started (register, then `start()`). */
  engineWorker(options: GearmanWorkerOptions = {}): GearmanWorker {
    const worker = new GearmanWorker({ servers: [this.address()], connectTimeout: 3000, ...options });
    this.defer(() => worker.close(200));
    return worker;
  }

  admin(): GearmanAdmin {
    const admin = new GearmanAdmin({ servers: [this.address()] });
    this.defer(() => admin.close());
    return admin;
  }

  /** Runs the `gearman` CLI; SIGKILLs it after `timeoutMs` (reported as `killed`). */
  runCli(args: string[], timeoutMs: number): Promise<CliResult> {
    const started = performance.now();
    const child = spawn('gearman', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.defer(() => killQuietly(child));
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

  /** Starts a long-running `gearman` CLI process (a worker), killed by PID at cleanup. */
  spawnCli(args: string[]): ChildProcess {
    const child = spawn('gearman', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.resume();
    child.stderr!.resume();
    child.once('error', () => undefined);
    this.defer(() => killQuietly(child));
    return child;
  }

  async closeAll(): Promise<void> {
    for (const g of this.gates.splice(0)) g.resolve(undefined);
    for (const fn of this.closers.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the test already reported its failure
      }
    }
  }
}

/** SIGTERM by PID, SIGKILL after 2 s; resolves once the process has exited. */
function killQuietly(child: ChildProcess): Promise<void> {
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

/** One function's row of admin `status` (zeros when gearmand does not list it). */
export async function functionStatus(admin: GearmanAdmin, fn: string): Promise<{ total: number; running: number; workers: number }> {
  const row = (await admin.status()).find((s) => s.function === fn);
  return row ? { total: row.total, running: row.running, workers: row.workers } : { total: 0, running: 0, workers: 0 };
}
