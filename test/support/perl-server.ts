import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminLine, freePort } from './gearmand.js';

/**
 * Test helper: Perl's Gearman::Server (Debian package `gearman-server`, the server gearmand grew
 * from) on a free loopback port, with its own pid file in a temp dir, stopped by PID. Shaped like
 * Gearmand (gearmand.ts) so that the tests in test/perl read like the others.
 */
export interface PerlServerOptions {
  /** Port to listen on; a free one by default. */
  port?: number;
  /** Milliseconds to wait for the server to answer (default 10 s). */
  startTimeout?: number;
}

/** Debian installs the Perl server's script as /usr/bin/gearmand (the C gearmand is /usr/sbin/gearmand). */
export function perlServerPath(): string {
  const path = process.env.GEARMAN_PERL_SERVER ?? '/usr/bin/gearmand';
  let head = '';
  try {
    head = existsSync(path) ? readFileSync(path, 'latin1').slice(0, 64) : '';
  } catch {
    // unreadable: reported as missing below
  }
  if (/^#!.*perl/.test(head)) return path;
  throw new Error(
    `Perl's Gearman::Server is not installed (no Perl script at ${path}): the tests in test/perl need it. ` +
      'Install the Debian package with `apt-get update && apt-get install -y gearman-server` ' +
      '(or point GEARMAN_PERL_SERVER at its gearmand script).',
  );
}

export class PerlServer {
  readonly host = '127.0.0.1';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly dir: string;
  /** The end of what the server wrote to stderr (it warns there for every ERROR server_error it sends). */
  private stderr = '';

  private constructor(
    readonly port: number,
    private readonly options: PerlServerOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'perl-gearmand-test-'));
  }

  /** Starts the server and resolves once it answers `version`. */
  static async start(options: PerlServerOptions = {}): Promise<PerlServer> {
    const script = perlServerPath();
    const port = options.port ?? (await freePort());
    const server = new PerlServer(port, options);
    await server.spawn(script);
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

  /** What the server has written to stderr lately. */
  get log(): string {
    return this.stderr;
  }

  private async spawn(script: string): Promise<void> {
    const args = ['-L', this.host, '-p', String(this.port), '--pidfile', join(this.dir, 'gearmand.pid')];
    const child = spawn('perl', [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    let exitedEarly: string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitedEarly = `Perl's gearmand exited (code ${code}, signal ${signal}): ${this.stderr.trim()}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
      // A failed spawn emits 'error' and no 'exit': settle here too, or stop() would wait forever.
      child.once('error', (err) => {
        if (child.pid !== undefined) return; // it did start: its 'exit' will come
        exitedEarly ??= `Perl's gearmand could not start: ${err.message}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    this.child = child;

    const timeout = this.options.startTimeout ?? 10_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (exitedEarly) throw new Error(exitedEarly);
      try {
        // Its `version` answers the bare version (`v1.130.1`), without gearmand's `OK `.
        if (/^v?\d+\.\d+/.test(await adminLine(this.port, 'version', 500))) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`Perl's gearmand on port ${this.port} did not answer within ${timeout} ms. ${this.stderr}`);
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

  /** Stops the server and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
