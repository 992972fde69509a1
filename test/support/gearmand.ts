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

export class Gearmand {
  readonly host = '127.0.0.1';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly dir: string;

  private constructor(
    readonly port: number,
    private readonly options: GearmandOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'gearmand-test-'));
  }

  /** Starts a gearmand and resolves once it answers `version`. */
  static async start(options: GearmandOptions = {}): Promise<Gearmand> {
    const port = options.port ?? (await freePort());
    const server = new Gearmand(port, options);
    await server.spawn();
    return server;
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
    const bin = embedded ? process.execPath : gearmandPath();
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
    const child = embedded
      ? spawn(bin, [...embeddedCommand(), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
      : spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let exitedEarly: string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitedEarly = `gearmand exited (code ${code}, signal ${signal}): ${stderr.trim()} ${this.readLog()}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
      // A failed spawn emits 'error' and no 'exit': settle here too, or stop() would wait forever.
      child.once('error', (err) => {
        if (child.pid !== undefined) return; // it did start: its 'exit' will come
        exitedEarly ??= `gearmand could not start: ${err.message}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    this.child = child;

    const deadline = Date.now() + (o.startTimeout ?? 10_000);
    for (;;) {
      if (exitedEarly) throw new Error(exitedEarly);
      try {
        const reply = await adminLine(this.port, 'version', 500);
        if (reply.startsWith('OK')) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(
          `gearmand on port ${this.port} did not answer within ${o.startTimeout ?? 10_000} ms. ${this.readLog()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private readLog(): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-2000);
    } catch {
      return '';
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

  /** Starts the server again on the same port (after stop or kill). */
  async restart(): Promise<void> {
    if (this.child) await this.stop();
    await this.spawn();
  }

  /** Stops the server and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
