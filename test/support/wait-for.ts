import type { EventEmitter } from 'node:events';

/**
 * Event-driven waiting for integration tests: every wait is bounded in time and fails with a
 * message that says what did not happen. No sleeps as synchronisation.
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

/** A promise with its resolve function exposed: a gate a handler can wait on. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with a clear message if `promise` has not settled within `timeoutMs`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A bounded observation window, for asserting that something did NOT happen. */
export function observe(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
