import type { ConnectionState, GearmanConnection } from '../../../lib/engine/connection.js';
import { hash32, ServerPool } from '../../../lib/engine/server-pool.js';

/** What the pool reads of a connection: its address, state and whether it is connected. */
interface FakeConnection {
  address: string;
  state: ConnectionState;
  connected: boolean;
}

const fake = (address: string, state: ConnectionState = 'connected'): FakeConnection => ({
  address,
  state,
  connected: state === 'connected',
});
const setState = (conn: FakeConnection, state: ConnectionState) => {
  conn.state = state;
  conn.connected = state === 'connected';
};
const pool = (...conns: FakeConnection[]) => new ServerPool(conns as unknown as GearmanConnection[]);
const addressOf = (conn: GearmanConnection | undefined) => conn?.address;
const set = (...conns: FakeConnection[]) => new Set(conns as unknown as GearmanConnection[]);

const ADDRESSES = ['10.0.0.1:4730', '10.0.0.2:4730', '10.0.0.3:4730'];
const UNIQUES = Array.from({ length: 3000 }, (_, i) => `job-${i}`);

describe('hash32', () => {
  it('is the same in every process (fixed values)', () => {
    expect(hash32('')).toBe(2872998923);
    expect(hash32('a')).toBe(444641715);
    expect(hash32('order-42')).toBe(779839703);
  });
});

describe('ServerPool, hash strategy', () => {
  it('gives every unique an owner that does not depend on the order the servers are listed in', () => {
    const a = pool(...ADDRESSES.map((s) => fake(s)));
    const b = pool(...[...ADDRESSES].reverse().map((s) => fake(s)));
    for (const unique of UNIQUES) expect(a.owner(unique).address).toBe(b.owner(unique).address);
  });

  it('spreads uniques roughly evenly over the servers', () => {
    const p = pool(...ADDRESSES.map((s) => fake(s)));
    const counts = new Map<string, number>();
    for (const unique of UNIQUES) counts.set(p.owner(unique).address, (counts.get(p.owner(unique).address) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(ADDRESSES);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(UNIQUES.length * 0.25);
      expect(n).toBeLessThan(UNIQUES.length * 0.42);
    }
  });

  it('sends a unique to its owner while the owner is connected', () => {
    const p = pool(...ADDRESSES.map((s) => fake(s)));
    for (const unique of UNIQUES.slice(0, 200)) expect(p.pick('hash', unique)).toBe(p.owner(unique));
  });

  it('with the owner down, moves only that owner’s uniques, each to one next server on the ring', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    const owners = new Map(UNIQUES.map((u) => [u, p.owner(u).address]));
    setState(conns[1], 'reconnecting');
    const moved = new Map<string, string>();
    for (const unique of UNIQUES) {
      const picked = addressOf(p.pick('hash', unique));
      if (owners.get(unique) === ADDRESSES[1]) {
        expect(picked).not.toBe(ADDRESSES[1]);
        moved.set(unique, picked!);
      } else {
        expect(picked).toBe(owners.get(unique));
      }
    }
    // The fallback is a function of the unique: the same answer every time (and in every client).
    for (const [unique, to] of moved) expect(addressOf(p.pick('hash', unique))).toBe(to);
    expect(new Set(moved.values()).size).toBe(2); // spread over both survivors, not piled on one
    // Back up: every unique goes home again.
    setState(conns[1], 'connected');
    for (const unique of moved.keys()) expect(addressOf(p.pick('hash', unique))).toBe(ADDRESSES[1]);
  });

  it('waits (undefined) for an owner still on its first attempt, unless not patient', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    const unique = UNIQUES.find((u) => p.owner(u) === (conns[0] as unknown as GearmanConnection))!;
    for (const state of ['idle', 'connecting'] as const) {
      setState(conns[0], state);
      expect(p.pick('hash', unique)).toBeUndefined();
      expect(p.pick('hash', unique, undefined, true)).toBeUndefined();
      expect(addressOf(p.pick('hash', unique, undefined, false))).not.toBe(ADDRESSES[0]);
      expect(p.pick('hash', unique, undefined, false)).toBeDefined();
    }
    // A server known to be down is skipped either way.
    setState(conns[0], 'reconnecting');
    expect(addressOf(p.pick('hash', unique))).not.toBe(ADDRESSES[0]);
    setState(conns[0], 'closed');
    expect(addressOf(p.pick('hash', unique))).not.toBe(ADDRESSES[0]);
  });

  it('skips excluded servers (a retry) and returns undefined when nothing is left', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    const unique = 'retry-me';
    const owner = p.owner(unique);
    const second = p.pick('hash', unique, new Set([owner]))!;
    expect(second).toBeDefined();
    expect(second).not.toBe(owner);
    const third = p.pick('hash', unique, new Set([owner, second]))!;
    expect(new Set([owner, second, third]).size).toBe(3);
    expect(p.pick('hash', unique, set(...conns))).toBeUndefined();
  });

  it('returns undefined when no server is connected', () => {
    const p = pool(...ADDRESSES.map((s) => fake(s, 'reconnecting')));
    expect(p.pick('hash', 'u')).toBeUndefined();
    expect(p.anyConnected).toBe(false);
  });

  it('sends jobs without a unique round-robin', () => {
    const p = pool(...ADDRESSES.map((s) => fake(s)));
    expect([1, 2, 3, 4].map(() => addressOf(p.pick('hash', undefined)))).toEqual([...ADDRESSES, ADDRESSES[0]]);
    expect(addressOf(p.pick('hash', ''))).toBe(ADDRESSES[1]); // an empty unique is no unique
  });
});

describe('ServerPool, round-robin strategy', () => {
  it('takes each connected server in turn, uniques or not', () => {
    const p = pool(...ADDRESSES.map((s) => fake(s)));
    expect(['a', 'a', 'a', 'a', 'a', 'a'].map((u) => addressOf(p.pick('round-robin', u)))).toEqual([
      ...ADDRESSES,
      ...ADDRESSES,
    ]);
  });

  it('skips servers that are not connected and carries on after the one it returned', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    setState(conns[1], 'reconnecting');
    expect([1, 2, 3].map(() => addressOf(p.pick('round-robin', undefined)))).toEqual([
      ADDRESSES[0],
      ADDRESSES[2],
      ADDRESSES[0],
    ]);
    setState(conns[1], 'connected');
    expect([1, 2, 3].map(() => addressOf(p.pick('round-robin', undefined)))).toEqual([
      ADDRESSES[1],
      ADDRESSES[2],
      ADDRESSES[0],
    ]);
  });

  it('skips excluded servers, and returns undefined when none is left', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    expect(addressOf(p.pick('round-robin', undefined, set(conns[0])))).toBe(ADDRESSES[1]);
    expect(p.pick('round-robin', undefined, set(...conns))).toBeUndefined();
    for (const c of conns) setState(c, 'closed');
    expect(p.pick('round-robin', undefined)).toBeUndefined();
  });
});

describe('ServerPool, failover strategy', () => {
  it('always takes the first connected server in the order given', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    expect([1, 2, 3].map(() => addressOf(p.pick('failover', 'u')))).toEqual([ADDRESSES[0], ADDRESSES[0], ADDRESSES[0]]);
    setState(conns[0], 'reconnecting');
    expect(addressOf(p.pick('failover', undefined))).toBe(ADDRESSES[1]);
    expect(addressOf(p.pick('failover', undefined, set(conns[1])))).toBe(ADDRESSES[2]);
    setState(conns[0], 'connected');
    expect(addressOf(p.pick('failover', undefined))).toBe(ADDRESSES[0]);
  });

  it('returns undefined when no server is connected or all are excluded', () => {
    const conns = ADDRESSES.map((s) => fake(s));
    const p = pool(...conns);
    expect(p.pick('failover', undefined, set(...conns))).toBeUndefined();
    for (const c of conns) setState(c, 'idle');
    expect(p.pick('failover', undefined)).toBeUndefined();
  });
});

describe('ServerPool.anyConnected', () => {
  it('is true while at least one server is connected', () => {
    const conns = ADDRESSES.map((s) => fake(s, 'connecting'));
    const p = pool(...conns);
    expect(p.anyConnected).toBe(false);
    setState(conns[2], 'connected');
    expect(p.anyConnected).toBe(true);
  });
});
