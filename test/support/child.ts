/**
 * Test helper: runs a TypeScript fixture in its own Node process (through tsx), reads its stdout
 * line by line, and stops it by PID. Waits are for lines or for the exit, always bounded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { waitForEvent } from './wait.js';

export interface TsxChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** stderr so far (for failure messages). */
  stderr(): string;
  /** The first line starting with `prefix` (already seen or still to come), within `timeoutMs`. */
  line(prefix: string, timeoutMs: number): Promise<string>;
  /** Resolves once `count` lines starting with `prefix` were seen; rejects after `timeoutMs`. */
  lineCount(prefix: string, count: number, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code and signal; rejects after `timeoutMs`. */
  exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
  /** SIGKILL by PID if still running, and waits for the exit. */
  kill(): Promise<void>;
}

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

export function spawnTsx(
  script: string,
  args: string[],
  options: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {},
): TsxChild {
  const env = { ...process.env, ...options.env };
  delete env.NODE_OPTIONS; // Jest's --experimental-vm-modules is neither needed nor wanted there
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...args], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  child.stdin!.on('error', () => undefined);
  const lines: string[] = [];
  const reader = createInterface({ input: child.stdout! });
  reader.on('line', (l) => lines.push(l));
  let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    }),
  );
  const describe = () => `${script} (pid ${child.pid}); stderr: ${stderr.trim().slice(-3000) || 'empty'}`;
  return {
    child,
    pid: child.pid!,
    lines,
    stderr: () => stderr,
    line(prefix, timeoutMs) {
      const seen = lines.find((l) => l.startsWith(prefix));
      if (seen !== undefined) return Promise.resolve(seen);
      if (status)
        return Promise.reject(
          new Error(`no "${prefix}" line: the child exited (${JSON.stringify(status)}) ${describe()}`),
        );
      return waitForEvent<[string]>(reader, 'line', {
        filter: (l) => l.startsWith(prefix),
        timeoutMs,
        what: `a "${prefix}" line from ${describe()}`,
      }).then(([l]) => l);
    },
    lineCount(prefix, count, timeoutMs) {
      const seen = () => lines.filter((l) => l.startsWith(prefix)).length;
      if (seen() >= count) return Promise.resolve();
      return waitForEvent<[string]>(reader, 'line', {
        filter: () => seen() >= count,
        timeoutMs,
        what: `${count} "${prefix}" lines (saw ${seen()}) from ${describe()}`,
      }).then(() => undefined);
    },
    exit(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${describe()} did not exit within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    },
    send(line) {
      child.stdin!.write(`${line}\n`);
    },
    async kill() {
      if (status) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
