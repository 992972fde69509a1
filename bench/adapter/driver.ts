/**
 * The measurement driver: a TypeScript port of the harness's `lib/node-common.js` (same CLI,
 * windowing, verification, timing, SIGTERM partial results and JSON lines), so the adapter is
 * measured like the other Node adapters. One deliberate difference: payloads are built from a
 * cached filler (as the Perl adapter does) instead of node-common's byte-by-byte loop, which
 * costs ~5 ms of client CPU per MiB inside the timed window and would dominate W3 (1 MiB jobs).
 * The bytes are identical: 8 decimal digits of i, then 'a' + (k % 26).
 *
 * `BENCH_DRIVER=node-common` uses the harness's own `lib/node-common.js` instead (see harness.ts).
 */
import { writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { parseArgs as parseCliArgs } from 'node:util';
import { type BenchArgs, type Created, type Done, loadCommon, type NodeCommon, type WorkerCounter } from './harness.js';

// BENCH_NODELAY=1 (variant "+nodelay"): TCP_NODELAY on every socket (the engine sets it anyway).
if (process.env.BENCH_NODELAY === '1') {
  const connect = Socket.prototype.connect;
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
    this.setNoDelay(true);
    return (connect as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof connect;
}

const nowS = (): number => Number(process.hrtime.bigint()) / 1e9;
const cpuS = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const emit = (obj: object): void => {
  process.stdout.write(JSON.stringify(obj) + '\n');
};

const progress = { what: '', n: 0, done: 0, t0: 0 };
let sigtermHooked = false;
function hookSigterm(): void {
  if (sigtermHooked) return;
  sigtermHooked = true;
  process.on('SIGTERM', () => {
    const wall = nowS() - progress.t0;
    emit({
      partial: true,
      what: progress.what || null,
      n: progress.n,
      done: progress.done,
      wall_s: +wall.toFixed(3),
      per_s: +(progress.done / wall).toFixed(1),
    });
    process.exit(3);
  });
}

/** The harness's CLI defaults (node-common's). */
const DEFAULTS: BenchArgs = {
  host: '127.0.0.1',
  port: 4730,
  workload: 'w1',
  mode: 'echo',
  n: 1000,
  c: 1,
  size: 64,
  warmup: 0,
};

/** `--name value` options of the adapter contract; `--window` is accepted and ignored, as in node-common. */
function parseArgs(args = process.argv.slice(2)): BenchArgs {
  const text = { type: 'string' } as const;
  const { values } = parseCliArgs({
    args,
    options: {
      host: text,
      port: text,
      workload: text,
      mode: text,
      n: text,
      c: text,
      size: text,
      warmup: text,
      window: text,
    },
  });
  const count = (name: 'port' | 'n' | 'c' | 'size' | 'warmup'): number => {
    const value = values[name];
    if (value === undefined) return DEFAULTS[name];
    if (!/^\d+$/.test(value)) throw new Error(`--${name} takes a whole number, not ${JSON.stringify(value)}`);
    return Number(value);
  };
  return {
    host: values.host ?? DEFAULTS.host,
    port: count('port'),
    workload: values.workload ?? DEFAULTS.workload,
    mode: values.mode ?? DEFAULTS.mode,
    n: count('n'),
    c: count('c'),
    size: count('size'),
    warmup: count('warmup'),
  };
}

const fillers = new Map<number, Buffer>();
/** Payload of job i: 8 decimal digits of i, then 'a' + (k % 26) filler. */
function payload(i: number, size: number): Buffer {
  let fill = fillers.get(size);
  if (!fill) {
    fill = Buffer.allocUnsafe(size);
    for (let k = 0; k < size; k++) fill[k] = 0x61 + (k % 26);
    fillers.set(size, fill);
  }
  const b = Buffer.allocUnsafe(size);
  fill.copy(b);
  const head = String(i % 1e8).padStart(8, '0');
  for (let k = 0; k < 8 && k < size; k++) b[k] = head.charCodeAt(k);
  return b;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

interface Windowed {
  wall: number;
  lat: number[];
  errors: number;
  mismatches: number;
  finished: number;
}

/** Keeps `c` foreground jobs in flight until `n` have finished. */
function windowed(
  n: number,
  c: number,
  size: number,
  submit: (i: number, p: Buffer, done: Done) => void,
): Promise<Windowed> {
  return new Promise((resolve) => {
    const lat: number[] = [];
    let next = 0;
    let finished = 0;
    let errors = 0;
    let mismatches = 0;
    const t0 = nowS();
    Object.assign(progress, { what: 'completed', n, done: 0, t0 });
    const start = (): void => {
      const i = next++;
      const p = payload(i, size);
      const ts = nowS();
      let called = false;
      submit(i, p, (err, res) => {
        if (called) {
          errors++; // a library calling back twice is an error
          return;
        }
        called = true;
        lat.push(nowS() - ts);
        if (err) errors++;
        else {
          const r = Buffer.isBuffer(res) ? res : Buffer.from(res == null ? '' : String(res));
          if (!r.equals(p)) mismatches++;
        }
        progress.done = ++finished;
        if (next < n) start();
        else if (finished === n) resolve({ wall: nowS() - t0, lat, errors, mismatches, finished });
      });
    };
    for (let k = 0; k < Math.min(c, n); k++) start();
  });
}

async function runForeground(o: BenchArgs, submit: (i: number, p: Buffer, done: Done) => void): Promise<boolean> {
  if (o.warmup > 0) await windowed(o.warmup, o.c, o.size, submit);
  const c0 = cpuS();
  const r = await windowed(o.n, o.c, o.size, submit);
  const cpu = cpuS() - c0;
  if (process.env.BENCH_LAT_DUMP)
    writeFileSync(process.env.BENCH_LAT_DUMP, r.lat.map((x) => (x * 1e6).toFixed(0)).join('\n'));
  r.lat.sort((a, b) => a - b);
  emit({
    workload: o.workload,
    n: o.n,
    c: o.c,
    size: o.size,
    completed: r.finished,
    errors: r.errors,
    mismatches: r.mismatches,
    wall_s: +r.wall.toFixed(6),
    jobs_per_s: +(r.finished / r.wall).toFixed(1),
    mb_per_s: +((r.finished * o.size) / 1048576 / r.wall).toFixed(2),
    p50_ms: +(percentile(r.lat, 50) * 1e3).toFixed(3),
    p99_ms: +(percentile(r.lat, 99) * 1e3).toFixed(3),
    cpu_s: +cpu.toFixed(3),
  });
  return r.finished === o.n && r.errors === 0 && r.mismatches === 0;
}

function runBackground(o: BenchArgs, submitBg: (i: number, p: Buffer, created: Created) => void): Promise<boolean> {
  return new Promise((resolve) => {
    let created = 0;
    let errors = 0;
    const c0 = cpuS();
    const t0 = nowS();
    Object.assign(progress, { what: 'created', n: o.n, done: 0, t0 });
    const onCreated: Created = (err) => {
      if (err) errors++;
      else progress.done = ++created;
      if (created + errors === o.n) {
        const wall = nowS() - t0;
        emit({
          workload: 'w2',
          n: o.n,
          created,
          errors,
          wall_s: +wall.toFixed(6),
          jobs_per_s: +(created / wall).toFixed(1),
          cpu_s: +(cpuS() - c0).toFixed(3),
        });
        resolve(created === o.n);
      }
    };
    for (let i = 0; i < o.n; i++) submitBg(i, payload(i, o.size), onCreated);
  });
}

function workerCounter(o: BenchArgs): WorkerCounter {
  let jobs = 0;
  let bad = 0;
  let tFirst = 0;
  const c0 = cpuS();
  const drain = o.mode === 'drain';
  return {
    onJob(p: Buffer): boolean {
      if (jobs++ === 0) {
        tFirst = nowS();
        Object.assign(progress, { what: 'drained', n: o.n, t0: tFirst });
      }
      progress.done = jobs;
      if (drain && (p == null ? 0 : Buffer.byteLength(p)) !== o.size) bad++;
      if (drain && jobs === o.n) {
        const wall = nowS() - tFirst;
        emit({
          mode: 'drain',
          n: o.n,
          jobs,
          bad_payloads: bad,
          wall_s: +wall.toFixed(6),
          jobs_per_s: +((jobs - 1) / wall).toFixed(1),
          cpu_s: +(cpuS() - c0).toFixed(3),
        });
        return true;
      }
      return false;
    },
    get bad() {
      return bad;
    },
  };
}

function die(msg: unknown): never {
  const m = msg as { stack?: string } | undefined;
  process.stderr.write(String((m && m.stack) || msg) + '\n');
  process.exit(1);
}

/** Closes the library, then exits after a short grace period so its last writes are flushed. */
function finish(ok: boolean, close?: () => unknown): void {
  try {
    if (close) void Promise.resolve(close()).catch(() => undefined);
  } catch {
    /* ignore */
  }
  setTimeout(() => process.exit(ok ? 0 : 1), 100);
}

const own: NodeCommon = {
  parseArgs: () => parseArgs(),
  runForeground,
  runBackground,
  workerCounter,
  notApplicable: (o, reason) => emit({ workload: o.workload, na: reason }),
  die,
  finish,
};

/** The driver in use: this port, or the harness's node-common with BENCH_DRIVER=node-common. */
export function driver(): NodeCommon {
  if (process.env.BENCH_DRIVER === 'node-common') return loadCommon();
  hookSigterm();
  return own;
}
