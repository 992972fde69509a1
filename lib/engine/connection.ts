import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { PacketDecoder } from '../protocol/decoder.js';
import { type PacketArg, PacketWriter } from '../protocol/encoder.js';
import { readError } from '../protocol/messages.js';
import { isReplyType, type Packet, PacketType, packetName, replyTypeOf } from '../protocol/packet-types.js';
import { backoffDelay } from './backoff.js';
import { GearmanConnectionError, GearmanServerError, GearmanTimeoutError } from './errors.js';
import { Fifo } from './fifo.js';
import type { SocketSettings } from './options.js';
import type { ResolvedServer } from './servers.js';
import { openSocket } from './socket.js';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/**
 * Called with the reply to a request, in the order the requests were sent
 * (docs/gearmand-behaviour.md#reply-order).
 */
export interface ReplyHandler {
  resolve(packet: Packet): void;
  reject(error: Error): void;
}

export interface ConnectionEvents {
  connected: [server: string];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
  drain: [];
}

/** TCP reads land in a reusable buffer of this size (`onread`), not in a new one per read. */
const READ_BUFFER = 64 * 1024;
/** A read at least this long keeps the read buffer (the packets are views of it); a shorter one is copied out. */
const KEEP_READ = READ_BUFFER / 2;
/** The rest of a packet is read straight into its own buffer when at least this much of it is missing. */
const DIRECT_READ = 32 * 1024;

/**
 * One gearmand connection: TCP or TLS, TCP_NODELAY, reconnect with backoff, writes batched per
 * event-loop turn, and one FIFO of requests awaiting replies, since gearmand answers each
 * connection's requests in order and puts an ERROR where the reply would have gone
 * (docs/gearmand-behaviour.md#reply-order).
 */
export class GearmanConnection extends EventEmitter<ConnectionEvents> {
  state: ConnectionState = 'idle';
  /** Packets that are not replies to requests (work updates, NOOP, JOB_ASSIGN, ...). */
  onPacket: (packet: Packet) => void = () => undefined;
  /** Runs on every (re)connect before anything queued is written: re-register, set options. */
  onConnect: () => void = () => undefined;

  private socket: Socket | undefined;
  private readonly decoder: PacketDecoder;
  private readonly writer = new PacketWriter('REQ');
  private readonly replies = new Fifo<ReplyHandler>();
  /** The reply type due for each entry of `replies`, in step with it. */
  private readonly replyTypes = new Fifo<number>();
  private flushScheduled = false;
  private waitingDrain = false;
  /** TCP: the buffer the next read lands in (`onread`), and whether it is a packet's own buffer. */
  private readBuffer: Buffer | undefined;
  private readingDirect = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;
  /**
   * Pending waitConnected() calls, settled on connect or close (even between attempts, when there is
   * no socket and no event). A set rather than event listeners: any number of callers may wait
   * while a server is down without tripping the MaxListeners leak warning.
   */
  private readonly connectWaiters = new Set<(err?: Error) => void>();

  constructor(
    readonly server: ResolvedServer,
    /** Resolved by resolveConnectionOptions(): every default applied. */
    private readonly settings: SocketSettings,
  ) {
    super();
    this.decoder = new PacketDecoder((packet) => this.dispatch(packet), {
      magic: 'RES',
      maxPacketSize: settings.maxPacketSize,
    });
  }

  get address(): string {
    return this.server.address;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** True while the socket has more than `highWaterMark` bytes waiting: producers should hold back. */
  get congested(): boolean {
    return this.writer.pendingBytes + (this.socket?.writableLength ?? 0) > this.settings.highWaterMark;
  }

  /** Requests awaiting their reply. */
  get pendingReplies(): number {
    return this.replies.length;
  }

  /** Starts connecting; reconnects by itself until `close()`. */
  start(): void {
    if (this.state !== 'idle') return;
    this.open();
  }

  /** Resolves once connected; rejects with CONNECT_TIMEOUT after `timeoutMs`, or CLOSED. */
  waitConnected(timeoutMs = this.settings.connectTimeout): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(this.closedError());
    this.start();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.connectWaiters.delete(done);
        if (err) reject(err);
        else resolve();
      };
      this.connectWaiters.add(done);
      const timer = setTimeout(
        () =>
          done(
            new GearmanConnectionError(
              'CONNECT_TIMEOUT',
              `Could not connect to gearmand at ${this.address} within ${timeoutMs} ms` +
                // The socket's own error (refused, TLS certificate, ...) says what to fix.
                `${this.lastError ? ` (last error: ${this.lastError.message})` : ''}: check that gearmand runs there and is reachable`,
              this.address,
              { cause: this.lastError },
            ),
          ),
        timeoutMs,
      );
    });
  }

  /** Queues a packet for the next write. Throws if not connected. */
  send(type: number, args: readonly PacketArg[]): void {
    if (this.state !== 'connected') {
      throw new GearmanConnectionError(
        'CONNECTION_LOST',
        `Cannot send ${packetName(type)}: not connected to gearmand at ${this.address}`,
        this.address,
      );
    }
    this.writer.push(type, args);
    this.scheduleFlush();
  }

  /** Sends a packet whose reply (or ERROR) goes to `handler`. */
  request(type: number, args: readonly PacketArg[], handler: ReplyHandler): void {
    this.send(type, args);
    this.replies.push(handler);
    this.replyTypes.push(replyTypeOf(type));
  }

  /**
   * Promise form of `request`. With `timeoutMs`, rejects with TIMEOUT when no reply came in time: a
   * stalled link (socket open, nothing arriving) must not hang a query. A late reply is still
   * consumed in its turn (docs/gearmand-behaviour.md#reply-order). Rejects at once when not
   * connected.
   */
  call(type: number, args: readonly PacketArg[], timeoutMs?: number): Promise<Packet> {
    if (timeoutMs === undefined) return new Promise((resolve, reject) => this.request(type, args, { resolve, reject }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new GearmanTimeoutError(
              `No reply to ${packetName(type)} from gearmand at ${this.address} within ${timeoutMs} ms: is it overloaded or unreachable?`,
            ),
          ),
        timeoutMs,
      );
      try {
        this.request(type, args, {
          resolve: (packet) => {
            clearTimeout(timer);
            resolve(packet);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      } catch (error) {
        clearTimeout(timer);
        reject(error);
      }
    });
  }

  /** Closes the socket for good; pending requests fail with CLOSED. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const wasIdle = this.state === 'idle';
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    this.settleWaiters(this.closedError());
    const socket = this.socket;
    if (!socket || wasIdle) {
      this.failPending(this.closedError());
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      // Write what is queued (a last WORK_COMPLETE) before closing.
      this.flush();
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  /** Drops the socket now, as a network failure would (reconnects unless closed). */
  destroy(error?: Error): void {
    this.socket?.destroy(error);
  }

  private open(): void {
    this.state = this.attempt === 0 ? 'connecting' : 'reconnecting';
    this.readingDirect = false;
    this.readBuffer = undefined;
    // TCP reads go through `onread` (no stream machinery, no buffer per read, large packets read in
    // place); TLS sockets deliver 'data' events.
    const tls = this.server.tls !== undefined;
    const socket = openSocket(
      this.server,
      this.settings,
      (s) => this.onOpen(s),
      tls
        ? undefined
        : {
            buffer: () => this.nextReadBuffer(),
            callback: (n: number, buf: Uint8Array) => this.onRead(socket, n, buf),
          },
    );
    this.socket = socket;
    if (tls) socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => {
      this.waitingDrain = false;
      this.flush();
      if (!this.waitingDrain) this.emit('drain');
    });
    socket.on('error', (err) => {
      this.lastError = err;
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    socket.once('close', () => this.onClose(socket));
  }

  private onOpen(socket: Socket): void {
    if (socket !== this.socket) return;
    this.attempt = 0;
    this.lastError = undefined;
    if (this.state === 'closed') return;
    this.state = 'connected';
    this.decoder.reset();
    this.onConnect();
    this.settleWaiters();
    this.emit('connected', this.address);
    this.flush();
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      // A protocol error leaves the stream unusable: drop it and start afresh.
      socket.destroy(err as Error);
    }
  }

  /** Where the next TCP read goes: the rest of a large packet in place, else the read buffer. */
  private nextReadBuffer(): Buffer {
    const target = this.decoder.readTarget(DIRECT_READ);
    this.readingDirect = target !== undefined;
    return target ?? (this.readBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER));
  }

  /** `onread` callback; true keeps the socket reading. */
  private onRead(socket: Socket, n: number, buf: Uint8Array): boolean {
    if (socket !== this.socket) return true;
    try {
      if (this.readingDirect) {
        this.decoder.commitTarget(n);
      } else if (n >= KEEP_READ) {
        // Packets may keep views of these bytes: the buffer goes with them, the next read gets a new one.
        this.readBuffer = undefined;
        this.decoder.push(Buffer.from(buf.buffer, buf.byteOffset, n));
      } else {
        // Copied out (small reads come from Node's pool), so the read buffer can be reused.
        const chunk = Buffer.allocUnsafe(n);
        chunk.set(n === buf.length ? buf : buf.subarray(0, n));
        this.decoder.push(chunk);
      }
    } catch (err) {
      socket.destroy(err as Error);
    }
    return true;
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    this.waitingDrain = false;
    this.flushScheduled = false;
    this.writer.take();
    this.decoder.reset();
    const wasConnected = this.state === 'connected';
    const closed = this.state === 'closed';
    const error = closed
      ? this.closedError()
      : new GearmanConnectionError(
          'CONNECTION_LOST',
          `Lost the connection to gearmand at ${this.address}`,
          this.address,
          {
            cause: this.lastError,
          },
        );
    this.failPending(error);
    if (closed) {
      this.emit('disconnected', this.address, undefined);
      return;
    }
    if (wasConnected) this.emit('disconnected', this.address, error);
    if (this.settings.reconnect === false) {
      this.state = 'closed';
      return;
    }
    this.attempt++;
    const delay = backoffDelay(this.attempt, this.settings.reconnect);
    this.state = 'reconnecting';
    this.emit('reconnecting', this.address, this.attempt, delay);
    this.reconnectTimer = setTimeout(() => {
      if (this.state !== 'closed') this.open();
    }, delay);
  }

  private settleWaiters(error?: Error): void {
    for (const done of [...this.connectWaiters]) done(error);
  }

  private failPending(error: Error): void {
    this.replyTypes.drain();
    for (const handler of this.replies.drain()) handler.reject(error);
  }

  private closedError(): GearmanConnectionError {
    return new GearmanConnectionError(
      'CLOSED',
      `The connection to gearmand at ${this.address} was closed`,
      this.address,
    );
  }

  private dispatch(packet: Packet): void {
    const type = packet.type;
    if (isReplyType(type)) {
      const due = this.replyTypes.shift();
      const handler = this.replies.shift();
      if (!handler) {
        this.protocolConfusion(`${packetName(type)} arrived but no request was waiting for it`);
        return;
      }
      if (due && due !== type) {
        // Replies come in request order (docs/gearmand-behaviour.md#reply-order): one of the wrong
        // type means the stream is out of step and every later reply would go to the wrong request.
        // Fail this one with the rest (onData drops the connection; a reconnect starts in step
        // again).
        handler.reject(this.outOfStep(type, due));
        throw this.outOfStep(type, due);
      }
      handler.resolve(packet);
      return;
    }
    if (type === PacketType.ERROR && this.replies.length > 0) {
      this.replyTypes.shift();
      this.replies.shift()!.reject(this.serverError(packet));
      return;
    }
    this.onPacket(packet);
  }

  private outOfStep(got: number, due: number): GearmanConnectionError {
    return new GearmanConnectionError(
      'CONNECTION_LOST',
      `gearmand at ${this.address} sent ${packetName(got)} where ${packetName(due)} was due: the connection is out of step and was dropped`,
      this.address,
    );
  }

  serverError(packet: Packet): GearmanServerError {
    const { code, message } = readError(packet);
    return new GearmanServerError(code, message, this.address);
  }

  private protocolConfusion(message: string): void {
    if (this.listenerCount('error') > 0) {
      this.emit(
        'error',
        new GearmanConnectionError('CONNECTION_LOST', `${message} (gearmand at ${this.address})`, this.address),
      );
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (!socket || this.writer.pendingBytes === 0 || this.state === 'connecting' || this.state === 'reconnecting')
      return;
    // Past the high-water mark, the rest waits for 'drain'; below it, small packets (a GRAB behind a
    // large WORK_COMPLETE) go to the socket at once instead of waiting for the large one to leave.
    if (this.waitingDrain && socket.writableLength > this.settings.highWaterMark) return;
    const chunks = this.writer.take();
    let ok = true;
    if (chunks.length === 1) ok = socket.write(chunks[0]);
    else {
      socket.cork();
      for (const chunk of chunks) ok = socket.write(chunk);
      socket.uncork();
    }
    this.waitingDrain = !ok;
  }
}

/**
 * Starts every connection and resolves once one is connected. Rejects with CLOSED when they were
 * closed meanwhile, else with NO_SERVER (naming each server's failure) after `timeout` ms; the
 * connections keep retrying in the background.
 */
export async function connectAny(connections: readonly GearmanConnection[], timeout: number): Promise<void> {
  for (const conn of connections) conn.start();
  if (connections.some((c) => c.connected)) return;
  try {
    await Promise.any(connections.map((c) => c.waitConnected(timeout)));
  } catch (err) {
    const causes = (err as AggregateError).errors as Error[];
    const closed = causes.find((e) => e instanceof GearmanConnectionError && e.code === 'CLOSED');
    if (closed) throw closed;
    throw new GearmanConnectionError(
      'NO_SERVER',
      `No gearmand reachable at ${connections.map((c) => c.address).join(', ')} within ${timeout} ms: ${causes.map((e) => e.message).join('; ')}`,
      undefined,
      { cause: err },
    );
  }
}
