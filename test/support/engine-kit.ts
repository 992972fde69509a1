/**
 * Helpers for the engine's integration tests against a real gearmand: bounded waits (never bare
 * sleeps as synchronisation), deferreds to hold handlers, and a resource list closed after each test
 * so Jest exits with no open handles.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { GearmanAdmin } from '../../lib/engine/admin.js';
import { GearmanClient, type GearmanClientOptions } from '../../lib/engine/client.js';
import { GearmanWorker, type GearmanWorkerOptions } from '../../lib/engine/worker.js';

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (v) => {
      d.settled = true;
      resolve(v);
    },
    reject: (e) => {
      d.settled = true;
      reject(e);
    },
  };
  return d;
}

/** Rejects with a readable error if `promise` does not settle within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A bounded wait, only for "this did not happen" checks. */
export function quietPeriod(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The first `event` from `emitter`, within `ms`. */
export function nextEvent<A extends unknown[]>(emitter: EventEmitter, event: string, ms: number): Promise<A> {
  return within(
    new Promise<A>((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args as A))),
    ms,
    `event "${event}"`,
  );
}

export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Polls `check` every 25 ms until it returns a truthy value, for at most `ms` (for server state
 * only observable through the admin protocol). Resolves with that value.
 */
export async function eventually<T>(check: () => Promise<T> | T, ms: number, what: string): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (let i = 0; ; i++) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline || i > 10_000) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

let counter = 0;
/** A function name no other test uses (tests share one gearmand per file). */
export function fnName(prefix: string): string {
  return `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;
}

/** Everything a test opens, closed in reverse order by `closeAll()` (from afterEach). */
export class Resources {
  private readonly items: Array<() => unknown> = [];
  private readonly gates: Deferred<unknown>[] = [];

  defer(fn: () => unknown): void {
    this.items.push(fn);
  }

  /** A deferred that is resolved at cleanup if the test did not (so held handlers end). */
  gate<T = void>(): Deferred<T> {
    const d = deferred<T>();
    this.gates.push(d as Deferred<unknown>);
    return d;
  }

  async client(address: string | string[], options: Omit<GearmanClientOptions, 'servers'> = {}): Promise<GearmanClient> {
    const client = new GearmanClient({ servers: address, ...options });
    this.defer(() => client.close());
    await client.connect();
    return client;
  }

  /** A worker, not started yet (register first, then `start()`). */
  worker(address: string | string[], options: Omit<GearmanWorkerOptions, 'servers'> = {}): GearmanWorker {
    const worker = new GearmanWorker({ servers: address, ...options });
    this.defer(() => worker.close(200));
    return worker;
  }

  admin(address: string): GearmanAdmin {
    const admin = new GearmanAdmin({ servers: [address] });
    this.defer(() => admin.close());
    return admin;
  }

  async closeAll(): Promise<void> {
    for (const g of this.gates.splice(0)) if (!g.settled) g.resolve(undefined);
    const items = this.items.splice(0).reverse();
    for (const fn of items) {
      try {
        await fn();
      } catch {
        // best effort: the test already reported its failure
      }
    }
  }
}
