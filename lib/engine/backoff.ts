/** Reconnect policy: exponential backoff with jitter, capped. */
export interface BackoffOptions {
  /** First delay in ms (default 100). */
  initialDelay?: number;
  /** Largest delay in ms (default 10 000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Random spread as a fraction of the delay, 0..1 (default 0.2): keeps many clients from reconnecting in step. */
  jitter?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelay: 100,
  maxDelay: 10_000,
  factor: 2,
  jitter: 0.2,
};

/** Delay before reconnect attempt `attempt` (1-based). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const o = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(o.maxDelay, o.initialDelay * o.factor ** Math.max(0, attempt - 1));
  const spread = base * o.jitter;
  // Clamped again after the jitter: maxDelay is documented as the largest delay.
  return Math.max(0, Math.min(o.maxDelay, Math.round(base - spread + random() * 2 * spread)));
}
