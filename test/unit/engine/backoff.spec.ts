import { backoffDelay, DEFAULT_BACKOFF } from '../../../lib/engine/backoff.js';

/** A random source that returns `values` in turn. */
const sequence = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length];
};
const middle = () => 0.5; // no jitter either way

describe('backoffDelay', () => {
  it('defaults: 100 ms doubling to 10 s, 20 % jitter', () => {
    expect(DEFAULT_BACKOFF).toEqual({ initialDelay: 100, maxDelay: 10_000, factor: 2, jitter: 0.2 });
  });

  it('doubles per attempt from initialDelay and stops at maxDelay', () => {
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelay(i + 1, {}, middle));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
  });

  it('takes initialDelay, factor and maxDelay from the options', () => {
    const options = { initialDelay: 50, factor: 3, maxDelay: 1000, jitter: 0 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, options, middle))).toEqual([50, 150, 450, 1000, 1000]);
  });

  it('treats attempt 0 and below as the first attempt', () => {
    expect(backoffDelay(0, {}, middle)).toBe(100);
    expect(backoffDelay(-3, {}, middle)).toBe(100);
  });

  it('spreads the delay by ±jitter, from the injected random source', () => {
    expect(backoffDelay(1, {}, () => 0)).toBe(80);
    expect(backoffDelay(1, {}, () => 0.25)).toBe(90);
    expect(backoffDelay(1, {}, () => 0.75)).toBe(110);
    expect(backoffDelay(1, {}, () => 0.999_999)).toBe(120);
    expect(backoffDelay(4, { jitter: 0.5 }, () => 0)).toBe(400);
  });

  it('draws one random number per delay', () => {
    let calls = 0;
    const next = sequence(0, 1, 0.5);
    const random = () => {
      calls++;
      return next();
    };
    expect([1, 1, 1].map((a) => backoffDelay(a, {}, random))).toEqual([80, 120, 100]);
    expect(calls).toBe(3);
  });

  it('is exact without jitter, whatever the random source says', () => {
    expect(backoffDelay(3, { jitter: 0 }, () => 0)).toBe(400);
    expect(backoffDelay(3, { jitter: 0 }, () => 0.99)).toBe(400);
  });

  it('never exceeds maxDelay, jitter included', () => {
    expect(backoffDelay(20, {}, () => 0.999_999)).toBe(10_000);
    expect(backoffDelay(20, {}, () => 0)).toBe(8000);
    expect(backoffDelay(1, { initialDelay: 100, maxDelay: 100 }, () => 0.999_999)).toBe(100);
  });

  it('never goes below 0, even with a jitter over 1', () => {
    expect(backoffDelay(1, { jitter: 2 }, () => 0)).toBe(0);
  });

  it('rounds to whole milliseconds', () => {
    expect(backoffDelay(1, { initialDelay: 33, jitter: 0.1 }, () => 0.3)).toBe(Math.round(33 - 3.3 + 0.3 * 6.6));
    expect(Number.isInteger(backoffDelay(2, { initialDelay: 7, factor: 1.5 }, () => 0.123))).toBe(true);
  });

  it('uses Math.random when no source is given', () => {
    for (let i = 0; i < 50; i++) {
      const delay = backoffDelay(1);
      expect(delay).toBeGreaterThanOrEqual(80);
      expect(delay).toBeLessThanOrEqual(120);
    }
  });
});
