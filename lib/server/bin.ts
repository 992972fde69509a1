#!/usr/bin/env node
/**
 * `nestjs-gearman-server`: the embedded Gearman job server as a command that takes gearmand's
 * common flags (`-L`, `-p`, `-P`, `-l`, `--verbose`, `-j`, `-d`, ...), so it drops in wherever a
 * script starts gearmand: `npx nestjs-gearman-server -p 4730`.
 *
 * For development and tests; production stays on gearmand.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HELP, parseServerCommandLine, type ServerCommandLine } from './cli-args.js';
import { formatLogLine } from './log.js';
import type { GearmanServerLogLevel } from './options.js';
import { type GearmanServer, startGearmanServer } from './server.js';

/** Set in the detached child of `-d`, which must not detach again. */
const DAEMON_CHILD = 'NESTJS_GEARMAN_SERVER_DAEMON_CHILD';

function fail(message: string): never {
  process.stderr.write(`nestjs-gearman-server: ${message}\n`);
  process.exit(1);
}

/** `-d`: starts this command again, detached and without `-d`, and exits once it listens. */
function daemonize(argv: string[]): void {
  const args = argv.filter((a) => a !== '-d' && a !== '--daemon');
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, [DAEMON_CHILD]: '1' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('message', () => {
    child.disconnect();
    child.stderr!.destroy();
    child.unref();
    process.exit(0);
  });
  child.once('exit', (code) => fail(`the server exited before it listened (code ${code}): ${stderr.trim()}`));
}

function logSink(file: string): ((level: GearmanServerLogLevel, message: string) => void) | undefined {
  if (file === 'none') return undefined;
  if (file === 'stderr') return (level, message) => process.stderr.write(formatLogLine(level, message));
  let fd: number;
  try {
    fd = openSync(file, 'a');
  } catch (err) {
    fail(`cannot open the log file ${file}: ${(err as Error).message}`);
  }
  process.once('exit', () => closeSync(fd));
  return (level, message) => {
    try {
      writeSync(fd, formatLogLine(level, message));
    } catch {
      // a full disk must not stop the server
    }
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let cl: ServerCommandLine;
  try {
    cl = parseServerCommandLine(argv);
  } catch (err) {
    fail((err as Error).message);
  }
  if (cl.help) {
    process.stdout.write(HELP);
    return;
  }
  if (cl.version) {
    process.stdout.write(
      `\nnestjs-gearman-server ${cl.options.version ?? '1.1.20+embedded'} - for development and tests; production stays on gearmand\n\n`,
    );
    return;
  }
  if (cl.daemon && process.env[DAEMON_CHILD] !== '1') {
    daemonize(argv);
    return;
  }
  if (process.env[DAEMON_CHILD] === '1') process.stderr.on('error', () => undefined);

  const log = logSink(cl.logFile);
  for (const flag of cl.ignored) log?.('INFO', `${flag} is accepted for gearmand compatibility and ignored`);
  let server: GearmanServer;
  try {
    server = await startGearmanServer({ ...cl.options, log });
  } catch (err) {
    fail((err as Error).message);
  }
  if (cl.pidFile !== undefined) {
    try {
      writeFileSync(cl.pidFile, `${process.pid}\n`);
    } catch (err) {
      await server.close();
      fail(`cannot write the pid file ${cl.pidFile}: ${(err as Error).message}`);
    }
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log?.('NOTICE', `${signal}: shutting down`);
    void server.close().finally(() => {
      if (cl.pidFile !== undefined) rmSync(cl.pidFile, { force: true });
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => undefined);
  if (cl.options.port === 0) process.stdout.write(`${server.servers[0]}\n`);
  process.send?.({
    type: 'listening',
    host: server.host,
    port: server.port,
    servers: server.servers,
    pid: process.pid,
  });
  if (process.env[DAEMON_CHILD] === '1') process.disconnect?.();
}

void main();
