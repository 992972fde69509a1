/**
 * `spawnGearmanServer()`: the embedded job server in a child process of its own, for tests that
 * stop, kill or pause the server by PID (SIGTERM, SIGKILL, SIGSTOP) as they would gearmand.
 * For development and tests; production stays on gearmand.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GearmanError } from '../protocol/errors.js';
import { serverCommandLine } from './cli-args.js';
import type { GearmanServerOptions } from './options.js';

export interface SpawnGearmanServerOptions extends Omit<GearmanServerOptions, 'log'> {
  /** More command-line flags (see `nestjs-gearman-server --help`), e.g. `['-l', 'server.log']`. */
  args?: string[];
  /** Environment of the child (default: this process's, without NODE_OPTIONS). */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds to wait for the child to listen (default 10 000). */
  startTimeout?: number;
}

export interface GearmanServerProcess {
  /** `['127.0.0.1:PORT']`, as the library's `servers` option takes it. */
  readonly servers: string[];
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** SIGTERM, SIGKILL after `graceMs` (default 3000); resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL (a crash); resolves once it exited. */
  kill(): Promise<void>;
}

/** The command's entry file next to this one, and the Node flags it needs (tsx when running from source). */
function entry(): { file: string; nodeArgs: string[] } {
  const here = import.meta.url;
  const fromSource = here.endsWith('.ts');
  return {
    file: fileURLToPath(new URL(fromSource ? './bin.ts' : './bin.js', here)),
    nodeArgs: fromSource ? ['--import', 'tsx'] : [],
  };
}

/**
 * Starts `nestjs-gearman-server` as a child process (port 0 by default: a free one) and resolves
 * once it listens. For development and tests; production stays on gearmand.
 */
export function spawnGearmanServer(options: SpawnGearmanServerOptions = {}): Promise<GearmanServerProcess> {
  const { args = [], env, startTimeout = 10_000, ...serverOptions } = options;
  const { file, nodeArgs } = entry();
  const childEnv = { ...(env ?? process.env) };
  delete childEnv.NODE_OPTIONS;
  const child = spawn(
    process.execPath,
    [...nodeArgs, file, ...serverCommandLine({ port: 0, ...serverOptions }), ...args],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: childEnv },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const stop = async (graceMs = 3000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop(0);
      reject(
        new GearmanError(
          'LISTEN_FAILED',
          `The embedded Gearman server did not listen within ${startTimeout} ms: ${stderr.trim()}`,
        ),
      );
    }, startTimeout);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new GearmanError('LISTEN_FAILED', `Could not start the embedded Gearman server: ${err.message}`, {
          cause: err,
        }),
      );
    });
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(
        new GearmanError(
          'LISTEN_FAILED',
          `The embedded Gearman server exited before it listened (code ${code}, signal ${signal}): ${stderr.trim()}`,
        ),
      );
    };
    child.once('exit', onExit);
    child.once('message', (message: { port: number; servers: string[] }) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.disconnect();
      resolve({
        servers: message.servers,
        port: message.port,
        pid: child.pid!,
        child,
        stop,
        kill: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}
