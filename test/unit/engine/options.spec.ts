import { DEFAULT_BACKOFF } from '../../../lib/engine/backoff.js';
import {
  type ConnectionOptions,
  ENGINE_DEFAULTS,
  MAX_TIMER,
  positiveInt,
  resolveConnectionOptions,
} from '../../../lib/engine/options.js';
import { DEFAULT_MAX_PACKET_SIZE } from '../../../lib/protocol/packet-types.js';
import { invalidArgument } from '../../support/errors.js';

/** Values no numeric option takes. */
const NOT_WHOLE = [NaN, Infinity, -Infinity, -1, 1.5, '100' as unknown as number];

describe('resolveConnectionOptions', () => {
  it('applies the engine defaults', () => {
    expect(resolveConnectionOptions()).toEqual({
      servers: [{ host: '127.0.0.1', port: 4730, address: '127.0.0.1:4730', tls: undefined }],
      connectTimeout: 5000,
      reconnect: DEFAULT_BACKOFF,
      maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
      highWaterMark: 1024 * 1024,
      maxOutgoing: 32 * 1024 * 1024,
      heartbeat: { interval: 1000, timeout: 2000 },
      keepAlive: 30_000,
      clientId: undefined,
    });
    expect(DEFAULT_MAX_PACKET_SIZE).toBe(64 * 1024 * 1024);
    expect(resolveConnectionOptions({})).toEqual(resolveConnectionOptions());
  });

  it('keeps every engine default in one frozen object', () => {
    expect(Object.isFrozen(ENGINE_DEFAULTS)).toBe(true);
    expect(ENGINE_DEFAULTS).toMatchObject({
      servers: '127.0.0.1',
      connectTimeout: 5000,
      reconnect: DEFAULT_BACKOFF,
      maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
      highWaterMark: 1024 * 1024,
      maxOutgoing: 32 * 1024 * 1024,
      heartbeat: { interval: 1000, timeout: 2000 },
      keepAlive: 30_000,
      submitTimeout: 10_000,
      retries: 3,
      maxJobs: 1,
      pollInterval: 5000,
      closeTimeout: 10_000,
      commandTimeout: 5000,
    });
  });

  it('takes the values given', () => {
    const resolved = resolveConnectionOptions({
      servers: ['a:1', { host: 'b', port: 2 }],
      tls: true,
      connectTimeout: 1,
      maxPacketSize: 0xffffffff,
      highWaterMark: Number.MAX_SAFE_INTEGER,
      keepAlive: MAX_TIMER,
      clientId: 'web-1',
    });
    expect(resolved).toMatchObject({
      connectTimeout: 1,
      maxPacketSize: 0xffffffff,
      highWaterMark: Number.MAX_SAFE_INTEGER,
      keepAlive: MAX_TIMER,
      clientId: 'web-1',
    });
    expect(resolved.servers.map((s) => [s.address, s.tls])).toEqual([
      ['a:1', {}],
      ['b:2', {}],
    ]);
  });

  it('merges a partial reconnect policy with the defaults, or turns reconnecting off', () => {
    expect(resolveConnectionOptions({ reconnect: { maxDelay: 500 } }).reconnect).toEqual({
      ...DEFAULT_BACKOFF,
      maxDelay: 500,
    });
    expect(resolveConnectionOptions({ reconnect: false }).reconnect).toBe(false);
    expect(resolveConnectionOptions().reconnect).not.toBe(DEFAULT_BACKOFF); // a copy: the defaults stay untouched
  });

  it('takes keepAlive false (no probes) and 0 (probes at once)', () => {
    expect(resolveConnectionOptions({ keepAlive: false }).keepAlive).toBe(false);
    expect(resolveConnectionOptions({ keepAlive: 0 }).keepAlive).toBe(0);
  });

  it.each<keyof ConnectionOptions>(['connectTimeout', 'maxPacketSize', 'highWaterMark', 'keepAlive'])(
    'rejects a %s that is not a whole number in range, naming the option',
    (name) => {
      for (const value of NOT_WHOLE) {
        expect(invalidArgument(() => resolveConnectionOptions({ [name]: value })).message).toContain(
          `${name} must be a whole number`,
        );
      }
    },
  );

  it('rejects timers of 2^31 ms and more (Node would fire them at once), and a zero connectTimeout', () => {
    expect(MAX_TIMER).toBe(2 ** 31 - 1);
    for (const name of ['connectTimeout', 'keepAlive'] as const) {
      expect(resolveConnectionOptions({ [name]: MAX_TIMER })[name]).toBe(MAX_TIMER);
      expect(invalidArgument(() => resolveConnectionOptions({ [name]: 2 ** 31 })).message).toBe(
        `${name} must be a whole number from ${name === 'keepAlive' ? 0 : 1} to ${MAX_TIMER}, got ${2 ** 31}`,
      );
    }
    invalidArgument(() => resolveConnectionOptions({ connectTimeout: 0 }));
  });

  it('rejects sizes beyond what a packet header or a buffer can hold', () => {
    invalidArgument(() => resolveConnectionOptions({ maxPacketSize: 2 ** 32 }));
    invalidArgument(() => resolveConnectionOptions({ maxPacketSize: 0 }));
    invalidArgument(() => resolveConnectionOptions({ highWaterMark: Number.MAX_SAFE_INTEGER + 1 }));
    invalidArgument(() => resolveConnectionOptions({ highWaterMark: 0 }));
  });

  it('rejects a clientId with a NUL byte or that is not a string', () => {
    expect(invalidArgument(() => resolveConnectionOptions({ clientId: 'a\0b' })).message).toContain(
      'clientId must be a string without NUL bytes',
    );
    invalidArgument(() => resolveConnectionOptions({ clientId: 42 as unknown as string }));
    expect(resolveConnectionOptions({ clientId: '' }).clientId).toBe('');
  });

  it('rejects bad servers through resolveServers', () => {
    invalidArgument(() => resolveConnectionOptions({ servers: [] }));
    invalidArgument(() => resolveConnectionOptions({ servers: 'h:0' }));
  });
});

describe('positiveInt', () => {
  it('returns the fallback for undefined and the value when it is a whole number in [min, max]', () => {
    expect(positiveInt('n', undefined, 7)).toBe(7);
    expect(positiveInt('n', 1, 7)).toBe(1);
    expect(positiveInt('n', MAX_TIMER, 7)).toBe(MAX_TIMER);
    expect(positiveInt('n', 10, 7, 10, 10)).toBe(10);
  });

  it('rejects anything else with INVALID_ARGUMENT, naming the option and the range', () => {
    for (const value of [...NOT_WHOLE, 0, MAX_TIMER + 1]) invalidArgument(() => positiveInt('maxJobs', value, 1));
    expect(invalidArgument(() => positiveInt('maxJobs', 11, 1, 10, 2)).message).toBe(
      'maxJobs must be a whole number from 2 to 10, got 11',
    );
    invalidArgument(() => positiveInt('n', 1, 7, 10, 2));
  });
});
