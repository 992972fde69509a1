/**
 * The embedded job server as a command (lib/server/bin.ts, `nestjs-gearman-server`) and as a
 * child process (spawnGearmanServer), driven by gearmand's own tools: the `gearman` client and
 * worker, and `gearadmin`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { type GearmanServerProcess, spawnGearmanServer } from '../../lib/server/index.js';
import { freePort } from '../support/servers.js';

const BIN = fileURLToPath(new URL('../../lib/server/bin.ts', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Runs a command to its end (SIGKILL after `timeoutMs`, reported as code null). */
function run(cmd: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The command, from source. */
const server = (args: string[], options?: { timeoutMs?: number }) =>
  run(process.execPath, ['--import', 'tsx', BIN, ...args], options);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('spawnGearmanServer, with the gearman and gearadmin tools', () => {
  let child: GearmanServerProcess;
  beforeAll(async () => {
    child = await spawnGearmanServer();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('runs a job from `gearman` (client) through `gearman -w` (worker); `gearadmin --status` and `--workers` read it', async () => {
    const port = String(child.port);
    const worker = spawn(
      'gearman',
      ['-h', '127.0.0.1', '-p', port, '-w', '-c', '1', '-f', 'cli_upper', '--', 'tr', 'a-z', 'A-Z'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(worker);
    worker.stdout!.resume();
    worker.stderr!.resume();
    // The worker has registered once gearadmin lists it.
    for (let i = 0; ; i++) {
      const status = await run('gearadmin', ['-h', '127.0.0.1', '-p', port, '--status']);
      if (/^cli_upper\t0\t0\t1$/m.test(status.stdout)) break;
      if (i > 100) throw new Error(`the gearman worker never registered: ${status.stdout}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const workers = await run('gearadmin', ['-h', '127.0.0.1', '-p', port, '--workers']);
    expect(workers.stdout).toMatch(/^\d+ 127\.0\.0\.1 - : cli_upper$/m);
    const result = await run('gearman', ['-h', '127.0.0.1', '-p', port, '-f', 'cli_upper', '-s', 'hello embedded']);
    expect(result).toMatchObject({ code: 0, stdout: 'HELLO EMBEDDED' });
    const background = await run('gearman', ['-h', '127.0.0.1', '-p', port, '-f', 'cli_later', '-b', '-s', 'x']);
    expect(background.code).toBe(0);
    const status = await run('gearadmin', ['-h', '127.0.0.1', '-p', port, '--status']);
    expect(status.stdout).toMatch(/^cli_later\t1\t0\t0$/m);
    const version = await run('gearadmin', ['-h', '127.0.0.1', '-p', port, '--server-version']);
    expect(version.stdout.trim()).toBe('1.1.20+embedded');
  });

  it('is a process of its own: SIGSTOP/SIGCONT by pid pause it, SIGTERM stops it', async () => {
    const other = await spawnGearmanServer();
    try {
      process.kill(other.pid, 'SIGSTOP');
      const stalled = await run('gearadmin', ['-h', '127.0.0.1', '-p', String(other.port), '--status'], {
        timeoutMs: 500,
      });
      expect(stalled.code).toBeNull(); // killed: no answer while stopped
      process.kill(other.pid, 'SIGCONT');
      const status = await run('gearadmin', ['-h', '127.0.0.1', '-p', String(other.port), '--status']);
      expect(status.stdout).toBe('.\n');
    } finally {
      process.kill(other.pid, 'SIGCONT');
      await other.stop();
    }
    expect(alive(other.pid)).toBe(false);
  });
});

describe('the command line', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'embedded-gearmand-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes gearmand flags: -d detaches once listening, -P writes the pid (removed on SIGTERM), -l and --verbose log, -t is ignored', async () => {
    const port = await freePort();
    const pidFile = join(dir, 'server.pid');
    const logFile = join(dir, 'server.log');
    const started = await server([
      '-L',
      '127.0.0.1',
      '-p',
      String(port),
      '-t',
      '4',
      '-d',
      '--pid-file',
      pidFile,
      `--log-file=${logFile}`,
      '--verbose=INFO',
      '-j',
      '3',
    ]);
    expect(started.code).toBe(0);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(true);
    try {
      const status = await run('gearadmin', ['-h', '127.0.0.1', '-p', String(port), '--status']);
      expect(status.stdout).toBe('.\n');
      expect(readFileSync(logFile, 'utf8')).toMatch(/NOTICE .* listening on 127\.0\.0\.1:\d+/);
      expect(readFileSync(logFile, 'utf8')).toContain('-t is accepted for gearmand compatibility and ignored');
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    for (let i = 0; alive(pid) && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(pid)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('prints the address for -p 0, help that says it is not for production, and its version', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, '-p', '0', '-l', 'none'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const line = await new Promise<string>((resolve) =>
      child.stdout!.once('data', (d: Buffer) => resolve(d.toString())),
    );
    expect(line).toMatch(/^127\.0\.0\.1:\d+\n$/);
    const help = await server(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('For development and tests; production stays on gearmand.');
    const version = await server(['-V']);
    expect(version.stdout).toContain('1.1.20+embedded');
  });

  it('refuses unknown flags, a persistent queue, -v and values that are not numbers, with exit code 1', async () => {
    for (const [args, message] of [
      [['--no-such-flag'], 'Unknown option --no-such-flag'],
      [['-q', 'libsqlite3'], 'keeps jobs in memory only'],
      [['-v'], 'Option -v has been deprecated, please use --verbose'],
      [['-p', 'http'], '-p takes a whole number'],
      [['--verbose', 'LOUD'], 'Invalid value for --verbose'],
    ] as [string[], string][]) {
      const result = await server(args);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(message);
    }
  });

  it('exits with 1 and says why when the port is taken', async () => {
    const first = await spawnGearmanServer();
    try {
      const result = await server(['-p', String(first.port), '-l', 'none']);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('the port is taken');
    } finally {
      await first.stop();
    }
  });
});
