import type { GearmanConnection } from './connection.js';

/**
 * How a client picks the server for a job:
 * - `hash` (default): jobs with a unique go to the server that owns the unique on a consistent-hash
 *   ring, so every client sends a unique to the same server and duplicates coalesce across clients;
 *   if that server is down, the next one on the ring. Jobs without a unique go round-robin.
 * - `round-robin`: each job to the next live server.
 * - `failover`: the first live server in the order given.
 */
export type ServerStrategy = 'hash' | 'round-robin' | 'failover';

/** Points per server on the ring: enough for an even spread over a handful of servers. */
const VIRTUAL_NODES = 160;

/** FNV-1a over UTF-16 code units with a murmur3 finaliser: fast, stable across processes. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class ServerPool {
  private readonly ring: { point: number; index: number }[] = [];
  private next = 0;

  constructor(readonly connections: readonly GearmanConnection[]) {
    // The ring is built from addresses, not list order, so clients listing servers in any order agree.
    connections.forEach((conn, index) => {
      for (let v = 0; v < VIRTUAL_NODES; v++) this.ring.push({ point: hash32(`${conn.address}#${v}`), index });
    });
    this.ring.sort((a, b) => a.point - b.point || a.index - b.index);
  }

  /**
   * A live connection for a job, or undefined when none is connected. `exclude` skips servers (retries).
   * With `hash`, a server still on its first connection attempt is waited for (undefined) rather than
   * skipped, unless `patient` is false: it is not known to be down, and sending its uniques elsewhere
   * would break coalescing with clients that already see it up.
   */
  pick(
    strategy: ServerStrategy,
    unique: string | undefined,
    exclude?: ReadonlySet<GearmanConnection>,
    patient = true,
  ): GearmanConnection | undefined {
    if (strategy === 'hash' && unique) return this.byHash(unique, exclude, patient);
    if (strategy === 'failover') return this.connections.find((c) => c.connected && !exclude?.has(c));
    return this.roundRobin(exclude);
  }

  /** The server that owns `unique` on the ring, whether live or not. */
  owner(unique: string): GearmanConnection {
    return this.connections[this.ring[this.ringIndex(hash32(unique))].index];
  }

  get anyConnected(): boolean {
    return this.connections.some((c) => c.connected);
  }

  private byHash(
    unique: string,
    exclude: ReadonlySet<GearmanConnection> | undefined,
    patient: boolean,
  ): GearmanConnection | undefined {
    const start = this.ringIndex(hash32(unique));
    const tried = new Set<number>();
    for (let i = 0; i < this.ring.length && tried.size < this.connections.length; i++) {
      const index = this.ring[(start + i) % this.ring.length].index;
      if (tried.has(index)) continue;
      tried.add(index);
      const conn = this.connections[index];
      if (exclude?.has(conn)) continue;
      if (conn.connected) return conn;
      if (patient && (conn.state === 'idle' || conn.state === 'connecting')) return undefined;
    }
    return undefined;
  }

  private ringIndex(point: number): number {
    let lo = 0;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ring[mid].point < point) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.ring.length ? 0 : lo;
  }

  private roundRobin(exclude?: ReadonlySet<GearmanConnection>): GearmanConnection | undefined {
    const n = this.connections.length;
    for (let i = 0; i < n; i++) {
      const conn = this.connections[(this.next + i) % n];
      if (conn.connected && !exclude?.has(conn)) {
        this.next = (this.next + i + 1) % n;
        return conn;
      }
    }
    return undefined;
  }
}
