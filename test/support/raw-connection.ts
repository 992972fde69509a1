/**
 * Test helpers: plain node:net connections to gearmand that speak raw packets through the codec
 * (binary) or admin lines through AdminReplyReader (text). Waiting is always for a packet or a
 * reply, with a deadline so a missing answer fails the test instead of hanging it.
 */
import { type Socket, createConnection } from 'node:net';
import {
  type AdminReply,
  AdminReplyReader,
  type Packet,
  type PacketArg,
  PacketDecoder,
  adminReplyShape,
  encodePacket,
  packetName,
} from '../../lib/protocol/index.js';

const WAIT_MS = 5000;

function connect(port: number, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Hands items to waiters in arrival order; fails every waiter once the source breaks. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: Waiter<T>[] = [];
  private failure: Error | undefined;

  constructor(private readonly what: string) {}

  put(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(item);
    } else {
      this.items.push(item);
    }
  }

  fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  take(timeoutMs = WAIT_MS): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift()!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new Error(`no ${this.what} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  get buffered(): number {
    return this.items.length;
  }
}

/** A binary Gearman connection: `send` request packets, `next` the response packets in order. */
/** Feeds what `socket` reads to `parse`; a parse error, a socket error or the close fails `inbox`. */
function feed(
  socket: Socket,
  inbox: Pick<Inbox<unknown>, 'fail'>,
  parse: (chunk: Buffer) => void,
  closed: string,
): void {
  socket.on('data', (chunk: Buffer) => {
    try {
      parse(chunk);
    } catch (err) {
      inbox.fail(err as Error);
      socket.destroy();
    }
  });
  socket.on('error', (err) => inbox.fail(err));
  socket.on('close', () => inbox.fail(new Error(closed)));
}

export class RawConnection {
  private readonly inbox = new Inbox<Packet>('packet from gearmand');

  private constructor(private readonly socket: Socket) {
    const decoder = new PacketDecoder((p) => this.inbox.put(p), { magic: 'RES' });
    feed(socket, this.inbox, (chunk) => decoder.push(chunk), 'gearmand closed the connection');
  }

  static async open(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new RawConnection(await connect(port, host));
  }

  send(type: number, args: readonly PacketArg[]): void {
    this.socket.write(encodePacket(type, args, 'REQ'));
  }

  /** The next packet gearmand sends on this connection. */
  next(timeoutMs?: number): Promise<Packet> {
    return this.inbox.take(timeoutMs);
  }

  /** The next packet, which must be of `type` (a clear failure otherwise). */
  async expect(type: number, timeoutMs?: number): Promise<Buffer[]> {
    const p = await this.next(timeoutMs);
    if (p.type !== type) {
      throw new Error(
        `expected ${packetName(type)}, got ${packetName(p.type)} [${p.args.map((a) => JSON.stringify(a.toString('latin1'))).join(', ')}]`,
      );
    }
    return p.args;
  }

  /** Packets received but not yet taken. */
  get unread(): number {
    return this.inbox.buffered;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** An admin (text) connection: `command` sends one line and resolves with its reply. */
export class AdminConnection {
  private readonly inbox = new Inbox<AdminReply>('admin reply from gearmand');
  private readonly reader = new AdminReplyReader((r) => this.inbox.put(r));

  private constructor(private readonly socket: Socket) {
    feed(socket, this.inbox, (chunk) => this.reader.push(chunk), 'gearmand closed the admin connection');
  }

  static async open(port: number, host = '127.0.0.1'): Promise<AdminConnection> {
    return new AdminConnection(await connect(port, host));
  }

  /** Sends several commands at once (pipelined); resolves with their replies in order. */
  pipeline(commands: readonly string[]): Promise<AdminReply[]> {
    for (const c of commands) this.reader.expect(adminReplyShape(c));
    this.socket.write(commands.map((c) => `${c}\n`).join(''));
    return Promise.all(commands.map(() => this.inbox.take()));
  }

  async command(command: string): Promise<AdminReply> {
    const [reply] = await this.pipeline([command]);
    return reply;
  }

  /** The lines of a successful reply (fails on ERR). */
  async lines(command: string): Promise<string[]> {
    const reply = await this.command(command);
    if (!reply.ok) throw new Error(`"${command}" failed: ERR ${reply.code} ${reply.message}`);
    return reply.lines;
  }

  close(): void {
    this.socket.destroy();
  }
}
