import type { EventEmitter } from 'node:events';

/**
 * Waiting in tests: every wait is bounded in time and fails with a message that says what did not
 * happen. No sleeps as synchronisation: `quietPeriod` is only for "this did not happen" checks.
 */

type Listener = (...args: any[]) => void;
type Emitterish = Pick<EventEmitter, 'on' | 'off'>;

/**
 * Resolves with the arguments of the first `event` for which `filter` holds; rejects after
 * `timeoutMs`. Listen before triggering the action that emits the event.
 */
export function waitForEvent<A extends unknown[] = any[]>(
  emitter: Emitterish,
  event: string,
  options: { filter?: (...args: A) => boolean; timeoutMs?: number; what?: string } = {},
): Promise<A> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise<A>((resolve, reject) => {
    const listener: Listener = (...args: unknown[]) => {
      if (options.filter && !options.filter(...(args as A))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${options.what ?? `"${event}"`}`));
    }, timeoutMs);
    emitter.on(event, listener);
  });
}

/** The arguments of the next `event` from `emitter`, within `ms`. */
export function nextEvent<A extends unknown[]>(emitter: Emitterish, event: string, ms: number): Promise<A> {
  return waitForEvent<A>(emitter, event, { timeoutMs: ms, what: `event "${event}"` });
}

/** Records every `event` with its arguments and time (performance.now()) until `stop()`. */
export function recordEvents<A extends unknown[] = any[]>(emitter: Emitterish, event: string) {
  const events: { at: number; args: A }[] = [];
  const listener: Listener = (...args: unknown[]) => events.push({ at: performance.now(), args: args as A });
  emitter.on(event, listener);
  return { events, stop: () => emitter.off(event, listener) };
}

/** Resolves once `count` events have been recorded (checked on each event); rejects after `timeoutMs`. */
export function waitForCount(
  emitter: Emitterish,
  event: string,
  recorded: { events: unknown[] },
  count: number,
  timeoutMs = 5000,
): Promise<void> {
  if (recorded.events.length >= count) return Promise.resolve();
  return waitForEvent(emitter, event, {
    filter: () => recorded.events.length >= count,
    timeoutMs,
    what: `${count} "${event}" events (saw ${recorded.events.length} so far)`,
  }).then(() => undefined);
}

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  /** resolve() or reject() was called. */
  settled: boolean;
}

/** A promise with its resolve and reject exposed: a gate a handler can wait on. */
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
    resolve: (value) => {
      d.settled = true;
      resolve(value);
    },
    reject: (error) => {
      d.settled = true;
      reject(error);
    },
  };
  return d;
}

/** Rejects with a readable error if `promise` does not settle within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Polls `check` every 25 ms until it returns a truthy value, for at most `ms`, and resolves with
 * that value. A throw counts as "not yet". Only for state no event announces (server state seen
 * through the admin protocol or HTTP).
 */
export async function eventually<T>(check: () => Promise<T> | T, ms: number, what: string): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${ms} ms waiting for ${what} (last: ${seen})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A bounded observation window, only for asserting that something did NOT happen. */
export function quietPeriod(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
