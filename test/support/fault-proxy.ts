/**
 * Test tool: a fault-injecting TCP proxy (node:net, loopback only) between the library and a
 * gearmand. Every accepted connection gets its own upstream connection; bytes are forwarded in
 * order in both directions through a small queue, so faults can be switched on and off at any time:
 *
 * - `cutAll()`: destroys every connection (both sides), as a network failure or a NAT reset would;
 * - `stall()` / `resume()`: stops forwarding (sockets stay open, data waits in the proxy), as a
 *   black-holed link would; `resume()` delivers what waited, in order;
 * - `slow(ms)`: delays each chunk by `ms`;
 * - `fragment(maxBytes)`: delivers each chunk in pieces of at most `maxBytes`, one write per
 *   event-loop turn, so the reader sees packets split at every possible offset.
 *
 * Counters say what was done, so a test can report the faults it injected. `close()` stops the
 * listener and destroys every socket it opened.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from './servers.js';

export interface FaultProxyCounters {
  /** Connections accepted from the library. */
  accepted: number;
  /** Connection pairs currently open. */
  active: number;
  /** Connection pairs destroyed by `cutAll()`. */
  cut: number;
  /** `cutAll()` calls. */
  cuts: number;
  /** `stall()` calls. */
  stalls: number;
  /** Bytes forwarded library → gearmand and gearmand → library. */
  bytesUp: number;
  bytesDown: number;
  /** Chunks received from either side. */
  chunks: number;
  /** Writes made to either side (more than `chunks` when fragmenting). */
  writes: number;
  /** Chunks delayed by `slow()`. */
  delayed: number;
  /** Upstream connections that failed (gearmand down). */
  upstreamFailures: number;
}

type Direction = 'up' | 'down';

/** One direction of one connection pair: an ordered queue of chunks and the pump that drains it. */
class Pipe {
  private readonly queue: Buffer[] = [];
  private pumping = false;
  queuedBytes = 0;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly source: Socket,
    private readonly target: () => Socket | undefined,
    readonly direction: Direction,
  ) {}

  push(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    // Bounded memory: a stalled or slow pipe stops reading, the kernel buffers fill, TCP pushes back.
    if (this.queuedBytes > 4 * 1024 * 1024) this.source.pause();
    this.pump();
  }

  /** Drains the queue while allowed; re-entered by `resume()` and after each delay. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.run().finally(() => {
      this.pumping = false;
      const target = this.target();
      if (this.queue.length > 0 && !this.proxy.stalled && target && !target.destroyed) this.pump();
    });
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 && !this.proxy.stalled) {
      const target = this.target();
      if (!target || target.destroyed) return;
      const chunk = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      if (this.queuedBytes <= 1024 * 1024 && this.source.isPaused()) this.source.resume();
      const delay = this.proxy.delayMs;
      if (delay > 0) {
        this.proxy.counters.delayed++;
        await new Promise((r) => setTimeout(r, delay));
        if (target.destroyed) return;
      }
      const max = this.proxy.fragmentBytes;
      if (max > 0 && chunk.length > max) {
        for (let at = 0; at < chunk.length; at += max) {
          if (target.destroyed) return;
          this.write(target, chunk.subarray(at, Math.min(chunk.length, at + max)));
          // One piece per turn: the receiver gets a separate read for each.
          await new Promise((r) => setImmediate(r));
        }
      } else if (!this.write(target, chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            target.off('drain', done);
            target.off('close', done);
            resolve();
          };
          target.once('drain', done);
          target.once('close', done);
        });
      }
    }
  }

  private write(target: Socket, piece: Buffer): boolean {
    const c = this.proxy.counters;
    c.writes++;
    if (this.direction === 'up') c.bytesUp += piece.length;
    else c.bytesDown += piece.length;
    return target.write(piece);
  }
}

class Pair {
  readonly up: Pipe;
  readonly down: Pipe;
  closed = false;

  constructor(
    proxy: FaultProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.up = new Pipe(proxy, client, () => this.upstream, 'up');
    this.down = new Pipe(proxy, upstream, () => this.client, 'down');
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.upstream.destroy();
  }
}

export class FaultProxy {
  readonly counters: FaultProxyCounters = {
    accepted: 0,
    active: 0,
    cut: 0,
    cuts: 0,
    stalls: 0,
    bytesUp: 0,
    bytesDown: 0,
    chunks: 0,
    writes: 0,
    delayed: 0,
    upstreamFailures: 0,
  };
  /** @internal */
  stalled = false;
  /** @internal */
  delayMs = 0;
  /** @internal */
  fragmentBytes = 0;
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on a free loopback port and forwards to `target` (`host:port` or `{ host, port }`). */
  static async start(target: string | { host: string; port: number }): Promise<FaultProxy> {
    const t = typeof target === 'string' ? parseAddress(target) : target;
    const server = createServer({ noDelay: true });
    const proxy = new FaultProxy(server, await listenOnLoopback(server), t);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `127.0.0.1:<port>`: give this to the library instead of gearmand's address. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection, both sides. Returns how many pairs were cut. */
  cutAll(): number {
    this.counters.cuts++;
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) {
      this.counters.cut++;
      pair.destroy();
    }
    return n;
  }

  /** Stops forwarding in both directions; sockets stay open and data waits (bounded) in the proxy. */
  stall(): void {
    if (!this.stalled) this.counters.stalls++;
    this.stalled = true;
  }

  /** Forwards again, starting with what waited during the stall. */
  resume(): void {
    this.stalled = false;
    for (const pair of this.pairs) {
      pair.up.pump();
      pair.down.pump();
    }
  }

  /** Delays each chunk by `ms` (0: off). */
  slow(ms: number): void {
    this.delayMs = Math.max(0, ms);
  }

  /** Delivers chunks in pieces of at most `maxBytes` (0: off). */
  fragment(maxBytes: number): void {
    this.fragmentBytes = Math.max(0, maxBytes);
  }

  /** Turns every fault off (does not undo cuts). */
  heal(): void {
    this.slow(0);
    this.fragment(0);
    this.resume();
  }

  /** Bytes waiting in the proxy's queues. */
  get queuedBytes(): number {
    let n = 0;
    for (const p of this.pairs) n += p.up.queuedBytes + p.down.queuedBytes;
    return n;
  }

  /** Stops listening and destroys every socket. */
  async close(): Promise<void> {
    for (const pair of [...this.pairs]) pair.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.counters.accepted++;
    client.setNoDelay(true);
    const upstream = createConnection({ host: this.target.host, port: this.target.port });
    upstream.setNoDelay(true);
    const pair = new Pair(this, client, upstream);
    this.pairs.add(pair);
    this.counters.active = this.pairs.size;
    const drop = () => {
      pair.destroy();
      if (this.pairs.delete(pair)) this.counters.active = this.pairs.size;
    };
    client.on('data', (chunk: Buffer) => {
      this.counters.chunks++;
      pair.up.push(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.counters.chunks++;
      pair.down.push(chunk);
    });
    let upstreamConnected = false;
    upstream.once('connect', () => (upstreamConnected = true));
    upstream.on('error', () => {
      if (!upstreamConnected) this.counters.upstreamFailures++;
    });
    client.on('error', () => undefined);
    // Either side gone: the other goes too (what waited in the queues is dropped, like a reset).
    client.once('close', drop);
    upstream.once('close', drop);
  }
}

function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}
