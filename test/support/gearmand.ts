import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Test helper: a private, real gearmand (Debian package `gearman-job-server`) on a free loopback
 * port, with its own pid file and log in a temp dir, stopped by PID.
 */
export interface GearmandOptions {
  /** Port to listen on; a free one by default. */
  port?: number;
  /** I/O threads (`-t`), 1 by default as in the bench harness. */
  threads?: number;
  /** `--queue-type`, e.g. `libsqlite3`. */
  queueType?: string;
  /** `--job-retries`. */
  jobRetries?: number;
  /** Any further gearmand flags. */
  args?: string[];
  /** Milliseconds to wait for the server to answer (default 10 s). */
  startTimeout?: number;
  /** Which server to start, whatever GEARMAN_TEST_SERVER says (tests that compare the two). */
  server?: 'gearmand' | 'embedded';
}

/**
 * The job server the tests start: gearmand (default), or with `GEARMAN_TEST_SERVER=embedded` (the
 * Jest project `embedded` sets it: jest.config.js) the project's embedded server (lib/server), run
 * as a child process with the same flags so that stop/kill/restart and SIGSTOP by PID work as with
 * gearmand. (Not `GEARMAN_SERVER`: libgearman's `gearman` CLI reads that variable as its list of
 * servers.)
 */
export const TEST_SERVER: 'gearmand' | 'embedded' =
  process.env.GEARMAN_TEST_SERVER === 'embedded' ? 'embedded' : 'gearmand';

/** `node --import tsx lib/server/bin.ts`: the embedded server's command, from source. */
function embeddedCommand(): string[] {
  return ['--import', 'tsx', fileURLToPath(new URL('../../lib/server/bin.ts', import.meta.url))];
}

/** The C gearmand the tests start: jest.config.js sets `GEARMAND` (scripts/setup.mjs finds it; set it yourself for another build). */
export function gearmandPath(): string {
  return process.env.GEARMAND || missing();
}

function missing(): never {
  throw new Error(
    'gearmand is not installed (or GEARMAND is not set: run the tests through Jest, whose jest.config.js finds it): ' +
      'this test needs a real gearmand. Install the Debian package with ' +
      '`apt-get update && apt-get install -y gearman-job-server gearman-tools`, or set GEARMAND=/path/to/gearmand.',
  );
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; the socket is closed again at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Sends one admin line and resolves with the first reply line, or rejects on error/timeout. */
export function adminLine(port: number, command: string, timeoutMs = 1000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`gearmand on ${host}:${port} did not answer "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text.slice(0, nl).replace(/\r$/, ''));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** How {@link ServerProcess.launch} starts a server and tells that it is up. */
export interface Launch {
  /** What the messages call it (`gearmand`, `Perl's gearmand`). */
  name: string;
  bin: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Whether the answer to the admin `version` command says the server is up. */
  ready(version: string): boolean;
  /** Milliseconds to wait for that (default 10 s). */
  startTimeout?: number;
  /** More to say when it exits early or never answers (its log). */
  details?(): string;
}

/**
 * A job server in a child process on a loopback port, with a temp dir, stopped by PID: what
 * Gearmand and PerlServer (perl-server.ts) share.
 */
export abstract class ServerProcess {
  readonly host = '127.0.0.1';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The end of what the server wrote to stderr. */
  private stderr = '';
  protected readonly dir: string;

  protected constructor(
    readonly port: number,
    dirPrefix: string,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), dirPrefix));
  }

  /** `host:port`, as the library's `servers` option takes it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Spawns the server and resolves once its `version` answer says it is up. */
  protected async launch(how: Launch): Promise<void> {
    const child = spawn(how.bin, how.args, { stdio: ['ignore', 'ignore', 'pipe'], env: how.env });
    this.stderr = '';
    child.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    const details = (): string => `${this.stderr.trim()} ${how.details?.() ?? ''}`.trim();
    let exitedEarly: string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitedEarly = `${how.name} exited (code ${code}, signal ${signal}): ${details()}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
      // A failed spawn emits 'error' and no 'exit': settle here too, or stop() would wait forever.
      child.once('error', (err) => {
        if (child.pid !== undefined) return; // it did start: its 'exit' will come
        exitedEarly ??= `${how.name} could not start: ${err.message}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    this.child = child;

    const timeout = how.startTimeout ?? 10_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (exitedEarly) throw new Error(exitedEarly);
      try {
        if (how.ready(await adminLine(this.port, 'version', 500))) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`${how.name} on port ${this.port} did not answer within ${timeout} ms. ${details()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops the server by PID (SIGTERM, SIGKILL after `graceMs`) and waits for it to exit. */
  async stop(graceMs = 3000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills the server with SIGKILL (a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the server and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Gearmand extends ServerProcess {
  private constructor(
    port: number,
    private readonly options: GearmandOptions,
  ) {
    super(port, 'gearmand-test-');
  }

  /** Starts a gearmand and resolves once it answers `version`. */
  static async start(options: GearmandOptions = {}): Promise<Gearmand> {
    const port = options.port ?? (await freePort());
    const server = new Gearmand(port, options);
    await server.spawn();
    return server;
  }

  get logFile(): string {
    return join(this.dir, 'gearmand.log');
  }

  /** The queue file for `queueType: 'libsqlite3'` (kept across restarts). */
  get sqliteFile(): string {
    return join(this.dir, 'queue.sqlite');
  }

  private async spawn(): Promise<void> {
    const o = this.options;
    const embedded = (o.server ?? TEST_SERVER) === 'embedded';
    if (embedded && o.queueType !== undefined && o.queueType !== 'builtin') {
      throw new Error(
        `queueType ${o.queueType} needs gearmand: the embedded server (GEARMAN_TEST_SERVER=embedded) keeps jobs in memory only`,
      );
    }
    const args = [
      '-L',
      this.host,
      '-p',
      String(this.port),
      '-t',
      String(o.threads ?? 1),
      '-P',
      join(this.dir, 'gearmand.pid'),
      '-l',
      this.logFile,
      '--verbose=ERROR',
    ];
    if (o.queueType) args.push('-q', o.queueType);
    if (o.queueType === 'libsqlite3') args.push('--libsqlite3-db', this.sqliteFile);
    if (o.jobRetries !== undefined) args.push('-j', String(o.jobRetries));
    args.push(...(o.args ?? []));

    const env = { ...process.env };
    delete env.NODE_OPTIONS; // Jest's --experimental-vm-modules is not for the server
    await this.launch({
      name: 'gearmand',
      ...(embedded
        ? { bin: process.execPath, args: [...embeddedCommand(), ...args], env }
        : { bin: gearmandPath(), args }),
      ready: (version) => version.startsWith('OK'),
      startTimeout: o.startTimeout,
      details: () => this.readLog(),
    });
  }

  private readLog(): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }

  /** Starts the server again on the same port (after stop or kill). */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.spawn();
  }
}
