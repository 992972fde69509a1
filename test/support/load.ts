/**
 * Test helper: a closed-loop round-trip load (a fixed number of jobs in flight, each replaced as it
 * settles) that accounts for every job it started: completed with the right result, failed with a
 * typed error, or (a bug) failed untyped, wrong, or late. Waits are on its own events, bounded.
 */
import { EventEmitter } from 'node:events';
import { GearmanError } from '../../lib/engine/index.js';

export interface LoadOptions {
  /** Jobs kept in flight. */
  inFlight: number;
  /** Every job must settle within this many ms of its start (its own timeout), plus `slackMs`. */
  limitMs: number;
  slackMs?: number;
  /** The result job `n` must have. */
  expected(n: number): string;
}

export interface Settled {
  n: number;
  startedAt: number;
  settledAt: number;
  error?: unknown;
}

export class RoundTripLoad extends EventEmitter<{ settled: [Settled] }> {
  started = 0;
  completed = 0;
  readonly failures: Record<string, number> = {};
  /** Failures that are not GearmanErrors, wrong results, and jobs that settled after their limit. */
  readonly untyped: string[] = [];
  readonly wrong: string[] = [];
  readonly late: string[] = [];
  maxLatencyMs = 0;
  private running = false;
  private inFlight = 0;
  private readonly all: Settled[] = [];

  constructor(
    private readonly run: (n: number) => Promise<Buffer | string>,
    private readonly options: LoadOptions,
  ) {
    super();
    this.setMaxListeners(100);
  }

  get failed(): number {
    return Object.values(this.failures).reduce((a, b) => a + b, 0);
  }

  get pending(): number {
    return this.inFlight;
  }

  start(): this {
    this.running = true;
    this.fill();
    return this;
  }

  /** Stops starting jobs; resolves once every started job has settled (rejects after `timeoutMs`). */
  async stop(timeoutMs = this.options.limitMs + 2000): Promise<void> {
    this.running = false;
    if (this.inFlight > 0) await this.until(() => this.inFlight === 0, timeoutMs, 'every job in flight to settle');
  }

  /** Resolves once `check()` holds (checked as jobs settle); rejects after `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onSettled = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.off('settled', onSettled);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('settled', onSettled);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (${this.summary()})`));
      }, timeoutMs);
      this.on('settled', onSettled);
    });
  }

  /** The first completion of a job started at or after `since` (performance.now()); its time. */
  async firstCompletionSince(since: number, timeoutMs: number): Promise<number> {
    const found = () => this.all.find((s) => s.startedAt >= since && s.error === undefined);
    await this.until(() => found() !== undefined, timeoutMs, 'a job started after the recovery to complete');
    return found()!.settledAt;
  }

  summary(): string {
    return `started ${this.started}, completed ${this.completed}, failed ${JSON.stringify(this.failures)}, in flight ${this.inFlight}, untyped ${this.untyped.length}, wrong ${this.wrong.length}, late ${this.late.length}, max latency ${Math.round(this.maxLatencyMs)} ms`;
  }

  private fill(): void {
    while (this.running && this.inFlight < this.options.inFlight) this.launch();
  }

  private launch(): void {
    const n = ++this.started;
    this.inFlight++;
    const startedAt = performance.now();
    let promise: Promise<Buffer | string>;
    try {
      promise = this.run(n);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (result) => this.settle({ n, startedAt, settledAt: performance.now() }, result),
      (error: unknown) => this.settle({ n, startedAt, settledAt: performance.now(), error }),
    );
  }

  private settle(s: Settled, result?: Buffer | string): void {
    this.inFlight--;
    const latency = s.settledAt - s.startedAt;
    this.maxLatencyMs = Math.max(this.maxLatencyMs, latency);
    if (latency > this.options.limitMs + (this.options.slackMs ?? 500))
      this.late.push(`job ${s.n} settled after ${Math.round(latency)} ms`);
    if (s.error === undefined) {
      const got = String(result);
      const want = this.options.expected(s.n);
      if (got === want) this.completed++;
      else this.wrong.push(`job ${s.n}: got ${JSON.stringify(got.slice(0, 80))}, want ${JSON.stringify(want)}`);
    } else if (s.error instanceof GearmanError) {
      const key = `${s.error.name}:${s.error.code}`;
      this.failures[key] = (this.failures[key] ?? 0) + 1;
    } else {
      this.untyped.push(`job ${s.n}: ${String((s.error as Error)?.stack ?? s.error)}`);
    }
    this.all.push(s);
    if (this.all.length > 100_000) this.all.splice(0, 50_000);
    this.emit('settled', s);
    // Replaced on the next turn, so a burst of failures cannot recurse.
    if (this.running) setImmediate(() => this.fill());
  }
}
