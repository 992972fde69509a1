/**
 * Test helpers for the embedded job server: raw connections that record every byte a server sends
 * as a readable transcript (one entry per packet or admin line), with an ECHO barrier so a
 * transcript is complete up to a point. The servers to compare are in support.ts.
 */
import { createConnection, type Socket } from 'node:net';
import { packetName } from '../../lib/protocol/index.js';

const WAIT_MS = 5000;

/** A packet as the server would get it: `\0REQ` (or `\0RES`), type, length, the arguments joined by NUL. */
export function req(type: number, ...args: (string | Buffer)[]): Buffer {
  return frame('REQ', type, args);
}

export function frame(magic: 'REQ' | 'RES', type: number, args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  args.forEach((a, i) => {
    if (i > 0) parts.push(Buffer.alloc(1));
    parts.push(typeof a === 'string' ? Buffer.from(a, 'latin1') : a);
  });
  const payload = Buffer.concat(parts);
  const header = Buffer.alloc(12);
  header.write(`\0${magic}`, 0, 'latin1');
  header.writeUInt32BE(type, 4);
  header.writeUInt32BE(payload.length, 8);
  return Buffer.concat([header, payload]);
}

/** `NAME a\0b` for a packet (NULs shown as `\0`), `T:line\r\n` for an admin line, as received. */
function render(type: number, payload: Buffer): string {
  return `${packetName(type)} ${payload.toString('latin1').replace(/\0/g, '\\0')}`.trimEnd();
}

let barrierCount = 0;

/** A raw connection that records what the server sends. */
export class Wire {
  private buf = Buffer.alloc(0);
  private readonly units: string[] = [];
  private readonly barriers = new Map<string, () => void>();
  private closedFlag = false;
  private readonly closeWaiters: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedFlag = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  static open(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new Wire(socket)));
      socket.once('error', reject);
    });
  }

  private parse(): void {
    for (;;) {
      const b = this.buf;
      if (b.length === 0) return;
      if (b[0] !== 0) {
        const nl = b.indexOf(0x0a);
        if (nl < 0) return;
        this.units.push(`T:${b.toString('latin1', 0, nl + 1)}`);
        this.buf = b.subarray(nl + 1);
        continue;
      }
      if (b.length < 12) return;
      const size = b.readUInt32BE(8);
      if (b.length < 12 + size) return;
      const type = b.readUInt32BE(4);
      const payload = b.subarray(12, 12 + size);
      this.buf = b.subarray(12 + size);
      const token = type === 17 ? payload.toString('latin1') : '';
      const barrier = this.barriers.get(token);
      if (barrier) {
        this.barriers.delete(token);
        barrier();
      } else this.units.push(render(type, payload));
    }
  }

  write(...data: (Buffer | string)[]): this {
    for (const d of data) this.socket.write(d);
    return this;
  }

  /** Resolves once everything the server sent on this connection before an ECHO is in (the echo is not recorded). */
  barrier(timeoutMs = WAIT_MS): Promise<void> {
    const token = `~barrier-${++barrierCount}~`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ECHO_RES ${token} within ${timeoutMs} ms`)), timeoutMs);
      this.barriers.set(token, () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.write(req(16, token));
    });
  }

  /** What arrived since the last take. */
  take(): string[] {
    return this.units.splice(0);
  }

  /** Waits until `count` units are in (they stay for take()). */
  async waitFor(count: number, timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.units.length < count) {
      if (Date.now() > deadline)
        throw new Error(`only ${this.units.length} of ${count} replies: ${JSON.stringify(this.units)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Resolves once the server closed the connection; rejects after `timeoutMs`. */
  whenClosed(timeoutMs = WAIT_MS): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the server did not close the connection within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
