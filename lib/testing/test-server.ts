import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { GearmanError } from '../protocol/errors.js';
import { startGearmanServer } from '../server/server.js';

export interface TestServerOptions {
  /**
   * `embedded` (default): the package's own job server, in this process, nothing to install.
   * `gearmand`: a real gearmand on a free loopback port (it must be installed; see `gearmand`).
   */
  server?: 'embedded' | 'gearmand';
  /** Path of the gearmand binary (default: /usr/sbin/gearmand, /usr/local/sbin/gearmand, then `gearmand` on PATH). */
  gearmand?: string;
  /** Milliseconds to wait for a gearmand to answer (default 10 000). */
  startTimeout?: number;
}

/** A private job server for one test suite. */
export interface TestServer {
  /** What `servers` options take: `['127.0.0.1:PORT']`. */
  readonly servers: string[];
  readonly kind: 'embedded' | 'gearmand';
  /** Stops the server (a gearmand by its PID) and frees the port. */
  close(): Promise<void>;
}

/**
 * Starts a private Gearman server on a free loopback port for a test suite: the embedded one by
 * default, or a real gearmand. Call it in `beforeAll` and `close()` it in `afterAll`; hand
 * `servers` to ServerGearman, ClientGearman or GearmanModule in your `@nestjs/testing` module.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  if ((options.server ?? 'embedded') === 'embedded') {
    const server = await startGearmanServer({ port: 0 });
    return { servers: server.servers, kind: 'embedded', close: () => server.close() };
  }
  return startGearmand(options.gearmand ?? findGearmand(), options.startTimeout ?? 10_000);
}

const GEARMAND_PATHS = ['/usr/sbin/gearmand', '/usr/local/sbin/gearmand', '/opt/homebrew/sbin/gearmand'];

function findGearmand(): string {
  return GEARMAND_PATHS.find((p) => existsSync(p)) ?? 'gearmand';
}

async function startGearmand(bin: string, startTimeout: number): Promise<TestServer> {
  const port = await freePort();
  const child = spawn(bin, ['-L', '127.0.0.1', '-p', String(port), '-t', '1', '--log-file', 'none'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Error>((resolve) => {
    child.once('error', resolve);
    child.once('exit', (code, signal) =>
      resolve(new Error(`gearmand exited (${signal ?? `code ${code}`}): ${stderr.trim()}`)),
    );
  });
  const gone = { exited: false };
  void exited.then(() => (gone.exited = true));
  const started = await Promise.race([
    answers(port, startTimeout, gone).then(
      () => undefined,
      (error: Error) => error,
    ),
    exited,
  ]);
  if (started !== undefined) {
    child.kill('SIGKILL');
    throw new GearmanError(
      'NO_SERVER',
      `Could not start gearmand (${bin}) for the tests: ${started.message}. Install gearmand (Debian: ` +
        "apt-get install gearman-job-server; macOS: brew install gearman), pass its path as `gearmand`, or use server: 'embedded'",
      { cause: started },
    );
  }
  return { servers: [`127.0.0.1:${port}`], kind: 'gearmand', close: () => stop(child) };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Resolves once something accepts connections on the port; rejects after `timeout` ms, or stops once the process is gone. */
async function answers(port: number, timeout: number, gone: { readonly exited: boolean }): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!gone.exited) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answered on 127.0.0.1:${port} within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
