import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { type OversizedPacket, PacketDecoder } from '../protocol/decoder.js';
import { encodePacket, type PacketArg, PacketWriter } from '../protocol/encoder.js';
import { GearmanError, GearmanProtocolError } from '../protocol/errors.js';
import { readError } from '../protocol/messages.js';
import { isReplyType, type Packet, PacketType, packetName, replyTypeOf } from '../protocol/packet-types.js';
import { backoffDelay } from './backoff.js';
import { GearmanConnectionError, GearmanServerError, GearmanTimeoutError } from './errors.js';
import { Fifo } from '../protocol/fifo.js';
import type { PacketTap, SocketSettings } from './options.js';
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
  /**
   * The heartbeat found the server silent (see `heartbeat` in ConnectionOptions): emitted just before
   * the socket is dropped; `disconnected` follows with the same error.
   */
  dead: [server: string, error: GearmanConnectionError];
  disconnected: [server: string, error: Error | undefined];
  reconnecting: [server: string, attempt: number, delay: number];
  error: [error: Error];
  drain: [];
}

/**
 * Microtask turns a held read may wait for its jobs to report (see holdRead): Nest's RPC pipeline
 * answers a plain handler 9 turns after the read (bench/adapter-nest/README.md); guards and
 * interceptors add a few each. A handler that waits on I/O lets the read's other packets go after
 * these turns (~2 µs).
 */
const READ_SETTLE_TURNS = 32;
const SETTLED = Promise.resolve();
/** An empty write, whose callback says that every write before it has left (see flush()). */
const NO_BYTES = Buffer.alloc(0);
/** TCP reads land in a reusable buffer of this size (`onread`), not in a new one per read. */
const READ_BUFFER = 64 * 1024;
/** A read at least this long keeps the read buffer (the packets are views of it); a shorter one is copied out. */
const KEEP_READ = READ_BUFFER / 2;
/** The rest of a packet is read straight into its own buffer when at least this much of it is missing. */
const DIRECT_READ = 32 * 1024;
/**
 * A connection that lasted this long counts as healthy even if no packet came (a worker with nothing
 * registered and the heartbeat off): the backoff starts again from its first delay.
 */
const HEALTHY_UPTIME = 10_000;
/**
 * Bytes per ms the heartbeat assumes a link carries at least (1 MiB/s): bytes sent since the server
 * last spoke extend its deadline by the time they take at this rate, so the tail of a large upload
 * still in buffers on the way (kernel, proxy) is not taken for a dead server.
 */
const SLOWEST_LINK = (1024 * 1024) / 1000;
/** At most this many of those bytes are assumed still on the way (kernel buffers are a few MiB): at most 4 s more. */
const IN_TRANSIT = 4 * 1024 * 1024;
/** The heartbeat's probe: an empty ECHO_REQ, encoded once. */
const ECHO_PACKET = encodePacket(PacketType.ECHO_REQ, [Buffer.alloc(0)]);
const EMPTY = Buffer.alloc(0);

/**
 * One gearmand connection: TCP or TLS, TCP_NODELAY, reconnect with backoff, writes batched per
 * read handled or per event-loop turn (see scheduleFlush), and one FIFO of requests awaiting
 * replies, since gearmand answers each connection's requests in order and puts an ERROR where the
 * reply would have gone (docs/gearmand-behaviour.md#reply-order).
 */
export class GearmanConnection extends EventEmitter<ConnectionEvents> {
  state: ConnectionState = 'idle';
  /** Packets that are not replies to requests (work updates, NOOP, JOB_ASSIGN, ...). */
  onPacket: (packet: Packet) => void = () => undefined;
  /**
   * Packets above `maxPacketSize` that are not replies, once their body has gone by unread (the
   * connection stays): the client fails the job of that handle, the worker answers it. A reply that
   * large fails its own request with PACKET_TOO_LARGE instead. By default: an `error` event.
   */
  onOversize: (packet: OversizedPacket) => void = (packet) => this.oversizeUnhandled(packet);
  /** Runs on every (re)connect before anything queued is written: re-register, set options. */
  onConnect: () => void = () => undefined;

  private socket: Socket | undefined;
  private readonly decoder: PacketDecoder;
  /** The `tap` option: one test per packet when unset. */
  private readonly tap: PacketTap | undefined;
  private readonly writer = new PacketWriter('REQ');
  private readonly replies = new Fifo<ReplyHandler>();
  /** The request type of each entry of `replies`, in step with it. */
  private readonly requestTypes = new Fifo<number>();
  private flushScheduled = false;
  /** A read is being handled: packets sent until its end go out together (see scheduleFlush). */
  private reading = false;
  /** Holds on the current read's end (holdRead), and the microtask turns it has waited for them. */
  private readHolds = 0;
  private readTurns = 0;
  /** A hold was released since the last turn: one more turn for what the release queued (the worker's GRABs). */
  private readReleased = false;
  private waitingDrain = false;
  /** Someone saw `congested` and waits for 'drain' (HC: paced streams in worker/worker-job.ts). */
  private drainDue = false;
  /** TCP: the buffer the next read lands in (`onread`), and whether it is a packet's own buffer. */
  private readBuffer: Buffer | undefined;
  private readingDirect = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;
  /** Reads (TCP reads, TLS chunks) so far: the heartbeat's sign of life, one increment per read. */
  private reads = 0;
  /** A packet was decoded on the current socket: the connection proved healthy (the backoff resets). */
  private proven = false;
  /** performance.now() when the current socket opened; 0 when none is open. */
  private openedAt = 0;
  /** The one liveness timer: heartbeat ticks while connected, the probe's deadline while probing. */
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** What the last tick saw: reads, outgoing bytes, bytes whose write completed, libuv's write queue. */
  private seenReads = 0;
  private seenPending = 0;
  private seenCompleted = 0;
  private seenKernelQueue = 0;
  /** Bytes whose write had completed at the last tick that saw a read: what the server has had time to answer. */
  private answeredCompleted = 0;
  /** performance.now() of the last tick that saw progress (or of the connect), and of the last that saw a read. */
  private aliveAt = 0;
  private heardAt = 0;
  private echoOutstanding = false;
  /** performance.now() when the outstanding heartbeat ECHO_REQ was sent. */
  private echoAt = 0;
  /** Declared dead by the heartbeat, until a reconnect answered its probe. */
  private declaredDead = false;
  /** The error of that declaration, for the `disconnected` that follows. */
  private deadError: GearmanConnectionError | undefined;
  /** Reconnected after a declaration: waiting for the probe's ECHO_RES before being `connected`. */
  private probing = false;
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
    this.tap = settings.tap;
    this.decoder = new PacketDecoder((packet) => this.dispatch(packet), {
      magic: 'RES',
      maxPacketSize: settings.maxPacketSize,
      onOversize: (packet) => this.oversized(packet),
    });
  }

  get address(): string {
    return this.server.address;
  }

  /** Connected and usable: false from the moment the heartbeat declares the server dead. */
  get connected(): boolean {
    return this.state === 'connected' && !this.declaredDead;
  }

  /**
   * True while the socket has more than `highWaterMark` bytes waiting: producers should hold back
   * until 'drain', which is then due (see `flushed`).
   */
  get congested(): boolean {
    if (this.bufferedBytes <= this.settings.highWaterMark) return false;
    this.drainDue = true;
    return true;
  }

  /** Bytes queued for this connection and not yet handed to the kernel: the writer's and the socket's. */
  get bufferedBytes(): number {
    return this.writer.pendingBytes + (this.socket?.writableLength ?? 0);
  }

  /**
   * True from the moment the heartbeat declared the server dead (no byte at all within
   * `heartbeat.timeout` of an ECHO_REQ) until a reconnect proved it alive again: the reconnected
   * socket stays out of use (`reconnecting`) until its first ECHO_REQ is answered. A plain loss or a
   * refused reconnect does not set it.
   */
  get dead(): boolean {
    return this.declaredDead;
  }

  /**
   * Whether `bytes` more may be queued without `bufferedBytes` passing `maxOutgoing`. With nothing
   * queued anything may go: a single packet larger than the bound is still sent alone.
   */
  canQueue(bytes: number): boolean {
    const buffered = this.writer.pendingBytes + (this.socket?.writableLength ?? 0);
    return buffered === 0 || buffered + bytes <= this.settings.maxOutgoing;
  }

  /** BACKPRESSURE for `what`, refused by {@link canQueue}. */
  backpressureError(what: string): GearmanError {
    return new GearmanError(
      'BACKPRESSURE',
      `Refused ${what} for gearmand at ${this.address}: ${this.bufferedBytes} bytes are already waiting to be sent ` +
        `(maxOutgoing ${this.settings.maxOutgoing}), so the server is not keeping up (overloaded, stopped, or a slow link). ` +
        'Retry later or send less at once; raise maxOutgoing only if the memory is there',
    );
  }

  /** Requests awaiting their reply. */
  get pendingReplies(): number {
    return this.replies.length;
  }

  /**
   * The socket's last error since the last successful connect (refused, TLS certificate, connect
   * timeout, ...): what NO_SERVER and CONNECT_TIMEOUT name and carry as their cause.
   */
  get lastSocketError(): Error | undefined {
    return this.lastError;
  }

  /** Starts connecting; reconnects by itself until `close()`. */
  start(): void {
    if (this.state !== 'idle') return;
    this.open();
  }

  /** Resolves once connected; rejects with CONNECT_TIMEOUT after `timeoutMs`, or CLOSED. */
  waitConnected(timeoutMs = this.settings.connectTimeout): Promise<void> {
    if (this.connected) return Promise.resolve();
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
    if (this.tap !== undefined) this.tapOut(type, args);
    this.writer.push(type, args);
    this.scheduleFlush();
  }

  /** Sends a packet whose reply (or ERROR) goes to `handler`. */
  request(type: number, args: readonly PacketArg[], handler: ReplyHandler): void {
    this.send(type, args);
    this.replies.push(handler);
    this.requestTypes.push(type);
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
    clearTimeout(this.heartbeatTimer);
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

  /**
   * Requests awaiting their reply other than the heartbeat's ECHO_REQ: the connection's own
   * liveness check is no work (the client's `idleTimeout`).
   */
  get requestsPending(): number {
    return this.replies.length - (this.echoOutstanding ? 1 : 0);
  }

  /**
   * Closes a connection that has nothing to do (the client's `idleTimeout`) and goes back to `idle`:
   * no reconnect until the next start(). At once, so a send right after it finds it not connected
   * (the old socket's late events are ignored, as for any replaced socket). Emits `disconnected`
   * without an error, as close() does.
   */
  suspend(): void {
    const socket = this.socket;
    if (this.state !== 'connected' || socket === undefined) return;
    this.detach();
    this.state = 'idle';
    this.attempt = 0;
    this.proven = false;
    this.openedAt = 0;
    this.failPending(
      new GearmanConnectionError(
        'CONNECTION_LOST',
        `The idle connection to gearmand at ${this.address} was closed`,
        this.address,
      ),
    );
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    this.emit('disconnected', this.address, undefined);
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
      if (!this.waitingDrain) {
        this.drainDue = false;
        this.emit('drain');
      }
    });
    socket.on('error', (err) => {
      this.lastError = err;
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    socket.once('close', () => this.onClose(socket));
  }

  private onOpen(socket: Socket): void {
    if (socket !== this.socket) return;
    // The backoff is not reset here: a peer that accepts and closes at once, or fails every TLS
    // handshake, would be reconnected to in a tight loop. onClose resets it once the connection proved healthy.
    if (this.state === 'closed') return;
    this.decoder.reset();
    this.openedAt = performance.now();
    if (this.declaredDead && this.settings.heartbeat !== false) this.probe(socket, this.settings.heartbeat.timeout);
    else this.becomeConnected();
  }

  private becomeConnected(): void {
    this.lastError = undefined;
    this.declaredDead = false;
    this.probing = false;
    this.state = 'connected';
    this.onConnect();
    this.settleWaiters();
    this.emit('connected', this.address);
    this.flush();
    this.startHeartbeat();
  }

  /**
   * After a declaration of death, a reconnect (a stopped gearmand's kernel still accepts) is used
   * only once an ECHO_REQ is answered: until then the connection stays `reconnecting`, so no job is
   * sent there, and a silent probe counts as a failed attempt (the backoff grows).
   */
  private probe(socket: Socket, timeout: number): void {
    this.probing = true;
    this.replies.push(this.probeReply);
    this.requestTypes.push(PacketType.ECHO_REQ);
    if (this.tap !== undefined) this.tapOut(PacketType.ECHO_REQ, [EMPTY]);
    socket.write(ECHO_PACKET);
    this.heartbeatTimer = setTimeout(() => {
      if (socket !== this.socket || !this.probing) return;
      this.lastError = new GearmanConnectionError(
        'CONNECTION_LOST',
        `gearmand at ${this.address} accepted a connection but did not answer an ECHO_REQ within ${timeout} ms ` +
          '(it was declared dead before and is still silent); retrying with backoff',
        this.address,
      );
      socket.destroy();
    }, timeout);
    this.heartbeatTimer.unref();
  }

  private readonly probeReply: ReplyHandler = {
    resolve: () => {
      if (!this.probing || this.state === 'closed') return;
      clearTimeout(this.heartbeatTimer);
      this.becomeConnected();
    },
    reject: () => undefined,
  };

  /**
   * The heartbeat's ECHO_RES: the server has read everything sent before it. The next ECHO_REQ goes
   * out after `interval` of silence from now, so a server that stops right after answering is
   * found within interval + timeout.
   */
  private readonly echoReply: ReplyHandler = {
    resolve: () => {
      this.echoOutstanding = false;
      const hb = this.settings.heartbeat;
      if (hb === false || this.state !== 'connected') return;
      this.seenReads = this.reads;
      this.answeredCompleted = this.seenCompleted;
      this.aliveAt = this.heardAt = performance.now();
      clearTimeout(this.heartbeatTimer);
      this.armHeartbeat(hb.interval);
    },
    reject: () => {
      this.echoOutstanding = false;
    },
  };

  private startHeartbeat(): void {
    const hb = this.settings.heartbeat;
    const socket = this.socket;
    if (hb === false || !socket) return;
    this.echoOutstanding = false;
    this.seenReads = this.reads;
    this.seenPending = 0;
    this.seenCompleted = this.answeredCompleted = socket.bytesWritten - socket.writableLength;
    this.seenKernelQueue = 0;
    this.aliveAt = this.heardAt = performance.now();
    this.armHeartbeat(hb.interval);
  }

  private armHeartbeat(delay: number): void {
    this.heartbeatTimer = setTimeout(this.heartbeat, Math.max(1, Math.ceil(delay)));
    this.heartbeatTimer.unref();
  }

  /**
   * A timer per connection, firing once per `interval` while the server talks; the hot path only
   * counts reads. Progress since the last tick: a read, or bytes that were waiting here leaving for
   * the server (a write completed, or libuv's write queue shrank), so a large upload to a slow
   * server is progress. Bytes the kernel takes while nothing waits here are not: a stopped
   * server's kernel takes them too. After `interval` without progress an ECHO_REQ goes out
   * (answered in turn, docs/gearmand-behaviour.md#reply-order); when still nothing has come
   * `timeout` ms later, plus the time the bytes sent since the server last spoke (up to
   * {@link IN_TRANSIT}) take at {@link SLOWEST_LINK} (they may still sit in buffers on the way:
   * kernel, proxy), the server is declared dead.
   */
  private readonly heartbeat = (): void => {
    this.heartbeatTimer = undefined;
    const socket = this.socket;
    const hb = this.settings.heartbeat;
    if (!socket || hb === false || this.state !== 'connected') return;
    const now = performance.now();
    const pending = this.writer.pendingBytes + socket.writableLength;
    const completed = socket.bytesWritten - socket.writableLength;
    const kernelQueue = writeQueueSize(socket);
    const read = this.reads !== this.seenReads;
    const sent =
      this.seenPending > 0 &&
      (completed > this.seenCompleted || (completed === this.seenCompleted && kernelQueue < this.seenKernelQueue));
    if (read) {
      // The read may have come before the bytes sent since the last tick: count those as unanswered.
      this.answeredCompleted = this.seenCompleted;
      this.heardAt = now;
    }
    this.seenReads = this.reads;
    this.seenPending = pending;
    this.seenCompleted = completed;
    this.seenKernelQueue = kernelQueue;
    if (read || sent) this.aliveAt = now;
    if (!this.echoOutstanding) {
      const quiet = now - this.aliveAt;
      if (quiet < hb.interval) {
        this.armHeartbeat(hb.interval - quiet);
        return;
      }
      this.echoOutstanding = true;
      this.echoAt = now;
      this.request(PacketType.ECHO_REQ, [EMPTY], this.echoReply);
      this.armHeartbeat(hb.timeout);
      return;
    }
    const allowed = hb.timeout + Math.min(completed - this.answeredCompleted, IN_TRANSIT) / SLOWEST_LINK;
    const waited = now - Math.max(this.echoAt, this.aliveAt);
    if (waited < allowed) {
      this.armHeartbeat(Math.min(allowed - waited, hb.timeout));
      return;
    }
    // Judged after this turn's reads (setImmediate runs after the poll phase): a timer that fired
    // late because this process was busy must not blame the server for bytes not read yet.
    setImmediate(this.confirmDead, socket, now);
  };

  private readonly confirmDead = (socket: Socket, since: number): void => {
    const hb = this.settings.heartbeat;
    // Answered meanwhile (echoReply armed the next tick), or bytes came: no verdict.
    if (socket !== this.socket || hb === false || this.state !== 'connected' || !this.echoOutstanding) return;
    if (this.reads !== this.seenReads) {
      this.heartbeat();
      return;
    }
    this.declareDead(socket, Math.round(since - this.heardAt), Math.round(since - this.echoAt));
  };

  private declareDead(socket: Socket, silentMs: number, echoMs: number): void {
    const due = this.replies.length - 1;
    const error = new GearmanConnectionError(
      'CONNECTION_LOST',
      `gearmand at ${this.address} was declared dead: no byte from it for ${silentMs} ms, and its heartbeat ECHO_REQ ` +
        `went unanswered for ${echoMs} ms${due > 0 ? ` while ${due} other repl${due === 1 ? 'y was' : 'ies were'} due` : ''}. ` +
        'The connection was dropped and is reconnected with backoff: check that gearmand runs and is not stopped ' +
        'or overloaded, or raise the heartbeat option for a slow link',
      this.address,
    );
    this.declaredDead = true;
    this.deadError = error;
    this.lastError = error;
    this.emit('dead', this.address, error);
    socket.destroy();
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.reads++;
    this.reading = true;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      // A protocol error leaves the stream unusable: drop it and start afresh.
      socket.destroy(err as Error);
    }
    queueMicrotask(this.readEnd);
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
    this.reads++;
    this.reading = true;
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
    queueMicrotask(this.readEnd);
    return true;
  }

  /** Lets go of the current socket's state: its queued bytes, partial packet, heartbeat. */
  private detach(): void {
    this.socket = undefined;
    this.waitingDrain = false;
    this.flushScheduled = false;
    this.writer.take();
    this.decoder.reset();
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.echoOutstanding = false;
    this.probing = false;
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    this.detach();
    // Healthy: a packet came (a reply, NOOP, JOB_ASSIGN...), or the connection lasted. Only then does
    // the backoff start again from its first delay.
    if (this.proven || (this.openedAt > 0 && performance.now() - this.openedAt >= HEALTHY_UPTIME)) this.attempt = 0;
    this.proven = false;
    this.openedAt = 0;
    const wasConnected = this.state === 'connected';
    const closed = this.state === 'closed';
    const deadError = this.deadError;
    this.deadError = undefined;
    const error = closed
      ? this.closedError()
      : (deadError ??
        new GearmanConnectionError(
          'CONNECTION_LOST',
          `Lost the connection to gearmand at ${this.address}`,
          this.address,
          {
            cause: this.lastError,
          },
        ));
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
    this.requestTypes.drain();
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
    this.proven = true;
    if (this.tap !== undefined) this.tapIn(packet);
    const type = packet.type;
    if (isReplyType(type)) {
      const sent = this.requestTypes.shift();
      const handler = this.replies.shift();
      if (!handler) {
        this.protocolConfusion(`${packetName(type)} arrived but no request was waiting for it`);
        return;
      }
      const due = replyTypeOf(sent ?? 0);
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
    if (type === PacketType.ERROR && this.errorAnswersRequest()) {
      const sent = this.requestTypes.shift()!;
      this.replies.shift()!.reject(this.serverError(packet, sent));
      return;
    }
    this.onPacket(packet);
  }

  /**
   * Whether an ERROR takes the place of the reply to the oldest request (docs/gearmand-behaviour.md#reply-order),
   * rather than answering a packet that is not a request. The latter are a worker's: a WORK_* for a
   * job the server no longer has, or a GRAB type it does not have (Perl's Gearman::Server). No server
   * (gearmand, Perl's, lib/server) answers ECHO_REQ or GET_STATUS with ERROR, and those are the only
   * requests a worker sends: an ERROR while one is due answers what the worker sent before it. A
   * client sends requests only (and SET_CLIENT_ID, which draws no ERROR): each ERROR settles one.
   */
  private errorAnswersRequest(): boolean {
    if (this.replies.length === 0) return false;
    const sent = this.requestTypes.peek();
    return sent !== PacketType.ECHO_REQ && sent !== PacketType.GET_STATUS;
  }

  /** A packet above maxPacketSize, skipped by the decoder: a reply fails its request alone, the rest go to onOversize. */
  private oversized(packet: OversizedPacket): void {
    const type = packet.type;
    if (!isReplyType(type) && !(type === PacketType.ERROR && this.errorAnswersRequest())) {
      this.onOversize(packet);
      return;
    }
    const sent = this.requestTypes.shift() ?? 0;
    const handler = this.replies.shift();
    if (!handler) {
      this.protocolConfusion(`${packetName(type)} arrived but no request was waiting for it`);
      return;
    }
    const due = replyTypeOf(sent);
    handler.reject(
      new GearmanProtocolError(
        'PACKET_TOO_LARGE',
        `gearmand at ${this.address} answered ${packetName(sent || type)} with ${packetName(type)} of ${packet.size} bytes, ` +
          `above this connection's maxPacketSize of ${packet.limit}: it was skipped (raise maxPacketSize to accept it)`,
      ),
    );
    // As in dispatch(): a reply of the wrong type means the stream is out of step.
    if (due && due !== type && type !== PacketType.ERROR) throw this.outOfStep(type, due);
  }

  private oversizeUnhandled(packet: OversizedPacket): void {
    if (this.listenerCount('error') === 0) return;
    this.emit(
      'error',
      new GearmanProtocolError(
        'PACKET_TOO_LARGE',
        `gearmand at ${this.address} sent ${packetName(packet.type)} of ${packet.size} bytes, above maxPacketSize ` +
          `(${packet.limit}): it was skipped (raise maxPacketSize to accept it)`,
      ),
    );
  }

  private outOfStep(got: number, due: number): GearmanConnectionError {
    return new GearmanConnectionError(
      'CONNECTION_LOST',
      `gearmand at ${this.address} sent ${packetName(got)} where ${packetName(due)} was due: the connection is out of step and was dropped`,
      this.address,
    );
  }

  /** The error an ERROR packet stands for; `sent`: the type of the request it answered, when known. */
  serverError(packet: Packet, sent?: number): GearmanServerError {
    const { code, message } = readError(packet);
    return new GearmanServerError(code, message, this.address, sent === undefined ? undefined : packetName(sent));
  }

  private protocolConfusion(message: string): void {
    if (this.listenerCount('error') > 0) {
      this.emit(
        'error',
        new GearmanConnectionError('CONNECTION_LOST', `${message} (gearmand at ${this.address})`, this.address),
      );
    }
  }

  private tapIn(packet: Packet): void {
    this.tapped({ direction: 'in', server: this.address, packet });
  }

  /** An outgoing packet as the protocol layer types it: string arguments as their UTF-8 bytes (what is sent). */
  private tapOut(type: number, args: readonly PacketArg[]): void {
    const bytes = args.map((a) =>
      typeof a === 'string' ? Buffer.from(a) : Buffer.isBuffer(a) ? a : Buffer.from(a.buffer, a.byteOffset, a.length),
    );
    this.tapped({ direction: 'out', server: this.address, packet: { type, args: bytes } });
  }

  /** A throwing tap must not cost the packet (or, reading, the connection): reported as an `error`. */
  private tapped(event: Parameters<PacketTap>[0]): void {
    try {
      this.tap!(event);
    } catch (err) {
      if (this.listenerCount('error') > 0) {
        const what = `${event.direction === 'in' ? 'a' : 'an outgoing'} ${packetName(event.packet.type)}`;
        this.emit(
          'error',
          new GearmanError(
            'INVALID_ARGUMENT',
            `The tap option's function threw on ${what} (gearmand at ${this.address}): ${String(err)}. ` +
              'The packet was handled as usual; make the tap catch its own errors',
            { cause: err },
          ),
        );
      }
    }
  }

  /**
   * Writes are batched. What is sent while a read is handled (by its packets' handlers and the
   * microtasks they queued: a worker's WORK_COMPLETE with the PRE_SLEEP or GRABs its pump adds, a
   * client's next submits) goes out in one write at the read's end instead of at the event loop's
   * check phase: at low concurrency each hop of a round trip is a read answered by a write, and the
   * answer leaves without the rest of the loop turn (bench/adapter/README.md). Anything else goes
   * out at the next check phase (setImmediate), batched across the turn.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (!this.reading) setImmediate(this.scheduledFlush);
  }

  private readonly scheduledFlush = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /**
   * Queued at the end of a read, behind the microtasks its packets queued (the worker's pump);
   * while the read is held, again behind those of the next turn.
   */
  private readonly readEnd = (): void => {
    if ((this.readHolds > 0 || this.readReleased) && this.readTurns < READ_SETTLE_TURNS) {
      this.readReleased = false;
      this.readTurns++;
      void SETTLED.then(this.readEnd);
      return;
    }
    this.reading = false;
    this.readHolds = 0;
    this.readTurns = 0;
    this.readReleased = false;
    if (this.flushScheduled) this.scheduledFlush();
  };

  /**
   * Holds the current read's write until `releaseRead(token)`, or at most READ_SETTLE_TURNS
   * microtask turns: the worker holds it for a job whose handler answers with a promise, so the
   * job's report leaves in the same write as the GRABs the read caused, not in a second one at the
   * check phase (one write per read instead of ~1.6 through Nest: bench/adapter-nest/README.md).
   * Returns 0 outside a read (nothing to hold).
   */
  holdRead(): number {
    if (!this.reading) return 0;
    this.readHolds++;
    return this.reads;
  }

  /** Ends a hold of `holdRead`; a hold of an earlier read is gone already. */
  releaseRead(token: number): void {
    if (token === 0 || token !== this.reads || !this.reading || this.readHolds === 0) return;
    if (--this.readHolds === 0) this.readReleased = true;
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
    // A highWaterMark below the socket's own: writes are accepted (ok) while the connection is still
    // congested, and no socket 'drain' follows. An empty write's callback tells when they have left.
    if (ok && this.settings.highWaterMark < socket.writableHighWaterMark) socket.write(NO_BYTES, this.flushed);
  }

  /** After a flush with a small highWaterMark: the 'drain' a producer that saw `congested` waits for. */
  private readonly flushed = (): void => {
    if (this.drainDue && !this.waitingDrain && this.bufferedBytes <= this.settings.highWaterMark) {
      this.drainDue = false;
      this.emit('drain');
    }
  };
}

/** libuv's count of bytes handed to a TCP write but not yet taken by the kernel (0 where Node does not expose it). */
function writeQueueSize(socket: Socket): number {
  const size = (socket as unknown as { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize;
  return typeof size === 'number' ? size : 0;
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
    throw noServerError(connections, timeout);
  }
}

/**
 * NO_SERVER: none of `connections` connected within `timeout` ms. The message names each server's
 * last socket error (refused, TLS certificate, timeout, ...) and the error carries it as its cause:
 * the error itself for one server, an AggregateError of them for several.
 */
export function noServerError(connections: readonly GearmanConnection[], timeout: number): GearmanConnectionError {
  const errors = connections.flatMap((c) => (c.lastSocketError ? [c.lastSocketError] : []));
  const reasons = connections.map((c) => `${c.address}: ${c.lastSocketError?.message ?? 'no answer yet'}`);
  const cause =
    errors.length === 0
      ? undefined
      : connections.length === 1
        ? errors[0]
        : new AggregateError(errors, `The last socket error of each server: ${reasons.join('; ')}`);
  return new GearmanConnectionError(
    'NO_SERVER',
    `No gearmand reachable at ${connections.map((c) => c.address).join(', ')} within ${timeout} ms ` +
      `(${reasons.join('; ')}): start gearmand, or check the servers and tls options`,
    connections.length === 1 ? connections[0].address : undefined,
    { cause },
  );
}
