/**
 * Test tool: a hostile fake gearmand on a loopback port. It reads what clients and workers send
 * with the codec's `\0REQ` decoder and answers with a seeded-random mix of
 *
 * - the right reply (JOB_CREATED, JOB_ASSIGN_UNIQ, NO_JOB, NOOP, ECHO_RES, STATUS_RES, ...), so the
 *   library keeps going and jobs do complete now and then;
 * - valid frames that make no sense: unsolicited replies, WORK_* for unknown or finished handles,
 *   JOB_ASSIGN nobody grabbed, NOOP floods, ERRORs, request types sent back, odd numbers;
 * - mutated frames: flipped bytes, wrong magic, unknown types, lengths that lie (short, long,
 *   above any limit), missing NULs, truncation, random bytes, admin text lines;
 * - abrupt closes,
 *
 * plus unsolicited bursts on a timer, so frames keep coming even when the peer is quiet. Every
 * choice comes from one PRNG per connection seeded from the server's seed and the connection
 * number: a failure reproduces from the seed.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { encodePacket, type Packet, PACKET_SPECS, PacketDecoder, PacketType } from '../../lib/protocol/index.js';
import { prng } from './packets.js';
import { listenOnLoopback } from './servers.js';

export interface HostileServerOptions {
  seed: number;
  /** Share of frames that are mutated or garbage (default 0.02). */
  corruptRate?: number;
  /** Chance per frame that the server closes the connection after it (default 0.0005). */
  closeRate?: number;
  /** Frames per unsolicited burst (default 40) and ms between bursts (default 2). */
  burstFrames?: number;
  burstIntervalMs?: number;
  /** Largest random data argument in bytes (default 512; one frame in 500 gets up to 256 KiB). */
  maxData?: number;
}

export interface HostileCounters {
  connections: number;
  /** Request packets decoded from peers. */
  requests: number;
  /** Frames written: valid (sensible or not) and mutated. */
  frames: number;
  validFrames: number;
  mutatedFrames: number;
  /** Chunks of plain random bytes or text lines. */
  garbage: number;
  /** Connections the server closed on purpose. */
  closes: number;
  /** Peers' packets the server could not decode (the library sent something malformed). */
  peerProtocolErrors: number;
  /** Admin (text) connections, e.g. the client's `cancel job`, and the replies they got. */
  adminConnections: number;
  adminReplies: number;
  bytes: number;
}

/** Types gearmand sends, and the request types a confused server might echo back. */
const SERVER_TYPES = [
  PacketType.NOOP,
  PacketType.JOB_CREATED,
  PacketType.NO_JOB,
  PacketType.JOB_ASSIGN,
  PacketType.WORK_STATUS,
  PacketType.WORK_COMPLETE,
  PacketType.WORK_FAIL,
  PacketType.ECHO_RES,
  PacketType.ERROR,
  PacketType.STATUS_RES,
  PacketType.WORK_EXCEPTION,
  PacketType.OPTION_RES,
  PacketType.WORK_DATA,
  PacketType.WORK_WARNING,
  PacketType.JOB_ASSIGN_UNIQ,
  PacketType.JOB_ASSIGN_ALL,
  PacketType.STATUS_RES_UNIQUE,
];
const ALL_TYPES = PACKET_SPECS.map((s, i) => (s ? i : -1)).filter((i) => i > 0);
const ERROR_CODES = [
  'INVALID_MAGIC',
  'INVALID_COMMAND',
  'JOB_NOT_FOUND',
  'QUEUE_ERROR',
  'ARGUMENT_TOO_LARGE',
  'UNKNOWN_OPTION',
  '',
  'ÿ\x01',
];
const NUMBERS = ['0', '1', '2', '-1', '100', '99999999999999999999', 'abc', '', '1e309', 'NaN', '0x10', ' 7'];

class HostileConnection {
  private readonly rand: () => number;
  private readonly decoder: PacketDecoder;
  private readonly handles: string[] = [];
  private readonly functions: string[] = [];
  private nextHandle = 1;
  private burstTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly server: HostileServer,
    private readonly socket: Socket,
    id: number,
  ) {
    this.rand = prng((server.options.seed * 7919 + id * 104729) >>> 0);
    this.decoder = new PacketDecoder(
      (p) => {
        try {
          this.onRequest(p);
        } catch (err) {
          // A bug of this tool, not of the peer: reported apart so a test shows it.
          server.toolErrors.push(String((err as Error).stack ?? err));
        }
      },
      { magic: 'REQ', maxPacketSize: 64 * 1024 * 1024 },
    );
    socket.setNoDelay(true);
    let text: boolean | undefined;
    socket.on('data', (chunk: Buffer) => {
      // A first byte other than NUL: an admin (text) connection, e.g. the client's `cancel job`.
      text ??= chunk[0] !== 0;
      if (text) {
        this.onText(chunk);
        return;
      }
      try {
        this.decoder.push(chunk);
      } catch (err) {
        server.counters.peerProtocolErrors++;
        if (server.peerErrors.length < 10)
          server.peerErrors.push(`${(err as Error).message}; chunk starts ${chunk.subarray(0, 48).toString('hex')}`);
        this.close();
      }
    });
    socket.on('error', () => undefined);
    socket.once('close', () => this.stop());
    const interval = server.options.burstIntervalMs ?? 2;
    this.burstTimer = setInterval(() => this.burst(), interval);
  }

  close(): void {
    if (this.closed) return;
    this.stop();
    this.socket.destroy();
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.burstTimer);
    this.server.dropped(this);
  }

  private int(n: number): number {
    return (this.rand() * n) | 0;
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  private chance(p: number): boolean {
    return this.rand() < p;
  }

  private handle(): string {
    if (this.handles.length > 0 && this.chance(0.6)) return this.pick(this.handles);
    if (this.chance(0.1)) return '';
    return `H:hostile:${this.int(1_000_000)}`;
  }

  private newHandle(): string {
    const h = `H:hostile:${this.nextHandle++}`;
    this.handles.push(h);
    if (this.handles.length > 256) this.handles.shift();
    return h;
  }

  private fn(): string {
    if (this.functions.length > 0 && this.chance(0.7)) return this.pick(this.functions);
    return this.chance(0.5) ? `fn-${this.int(1000)}` : 'x'.repeat(1 + this.int(80));
  }

  private text(max = 40): string {
    let s = '';
    const n = this.int(max);
    for (let i = 0; i < n; i++) s += String.fromCharCode(1 + this.int(254));
    return s;
  }

  private data(): Buffer {
    const max = this.chance(0.002) ? 256 * 1024 : (this.server.options.maxData ?? 256);
    const n = this.int(max + 1);
    const b = Buffer.alloc(n);
    // xorshift32 seeded from the PRNG: cheap bytes, still reproducible from the seed.
    let x = (this.rand() * 0xffffffff) | 1;
    for (let i = 0; i + 4 <= n; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b.writeInt32LE(x | 0, i);
    }
    if (n > 0 && this.chance(0.3)) b.fill(0, 0, Math.min(n, 1 + this.int(8))); // NULs in data
    return b;
  }

  /** Arguments of the right count for `type`, with plausible or absurd values. */
  private argsFor(type: number): (string | Buffer)[] {
    switch (type) {
      case PacketType.JOB_CREATED:
        return [this.handle()];
      case PacketType.JOB_ASSIGN:
        return [this.handle(), this.fn(), this.data()];
      case PacketType.JOB_ASSIGN_UNIQ:
        return [this.handle(), this.fn(), this.text(70), this.data()];
      case PacketType.JOB_ASSIGN_ALL:
        return [this.handle(), this.fn(), this.text(20), this.text(20), this.data()];
      case PacketType.WORK_STATUS:
        return [this.handle(), this.pick(NUMBERS), this.pick(NUMBERS)];
      case PacketType.WORK_COMPLETE:
      case PacketType.WORK_DATA:
      case PacketType.WORK_WARNING:
      case PacketType.WORK_EXCEPTION:
        return [this.handle(), this.data()];
      case PacketType.WORK_FAIL:
        return [this.chance(0.3) ? `${this.handle()}\0` : this.handle()];
      case PacketType.ERROR:
        return [this.pick(ERROR_CODES).replace(/\0/g, ''), this.text(60)];
      case PacketType.STATUS_RES:
        return [this.handle(), this.pick(NUMBERS), this.pick(NUMBERS), this.pick(NUMBERS), this.pick(NUMBERS)];
      case PacketType.STATUS_RES_UNIQUE:
        return [
          this.text(20),
          this.pick(NUMBERS),
          this.pick(NUMBERS),
          this.pick(NUMBERS),
          this.pick(NUMBERS),
          this.pick(NUMBERS),
        ];
      default: {
        const spec = PACKET_SPECS[type]!;
        const n = spec.argc + (spec.data ? 1 : 0);
        return Array.from({ length: n }, (_, i) => (i === n - 1 ? this.data() : this.text(20)));
      }
    }
  }

  private frame(type: number, args: (string | Buffer)[]): Buffer {
    return encodePacket(type, args, 'RES');
  }

  private randomFrame(): Buffer {
    const type = this.chance(0.9) ? this.pick(SERVER_TYPES) : this.pick(ALL_TYPES);
    return this.frame(type, this.argsFor(type));
  }

  /** The reply gearmand would give (or nothing), for a request. */
  private answer(p: Packet): Buffer | undefined {
    // Echoed arguments may hold NULs (a handle made of garbage): keep them encodable.
    const arg0 = () => Buffer.from(p.args[0].filter((b) => b !== 0));
    switch (p.type) {
      case PacketType.CAN_DO:
      case PacketType.CAN_DO_TIMEOUT: {
        const name = p.args[0].toString('utf8');
        if (!this.functions.includes(name)) this.functions.push(name);
        return undefined;
      }
      case PacketType.SUBMIT_JOB:
      case PacketType.SUBMIT_JOB_BG:
      case PacketType.SUBMIT_JOB_HIGH:
      case PacketType.SUBMIT_JOB_HIGH_BG:
      case PacketType.SUBMIT_JOB_LOW:
      case PacketType.SUBMIT_JOB_LOW_BG:
      case PacketType.SUBMIT_JOB_EPOCH:
      case PacketType.SUBMIT_REDUCE_JOB:
      case PacketType.SUBMIT_REDUCE_JOB_BACKGROUND: {
        const name = p.args[0].toString('utf8');
        if (!this.functions.includes(name) && this.functions.length < 64) this.functions.push(name);
        if (this.chance(0.1)) return this.frame(PacketType.ERROR, ['QUEUE_ERROR', 'Job queue is full']);
        return this.frame(PacketType.JOB_CREATED, [this.newHandle()]);
      }
      case PacketType.GRAB_JOB:
      case PacketType.GRAB_JOB_UNIQ:
      case PacketType.GRAB_JOB_ALL:
        if (this.chance(0.3)) return this.frame(PacketType.NO_JOB, []);
        return this.frame(PacketType.JOB_ASSIGN_UNIQ, [this.newHandle(), this.fn(), this.text(10), this.data()]);
      case PacketType.PRE_SLEEP:
        return this.chance(0.7) ? this.frame(PacketType.NOOP, []) : undefined;
      case PacketType.ECHO_REQ:
        return this.frame(PacketType.ECHO_RES, [p.args[0]]);
      case PacketType.OPTION_REQ:
        return this.chance(0.8)
          ? this.frame(PacketType.OPTION_RES, [p.args[0]])
          : this.frame(PacketType.ERROR, ['UNKNOWN_OPTION', 'no']);
      case PacketType.GET_STATUS:
        return this.frame(PacketType.STATUS_RES, [arg0(), '1', '0', '0', '0']);
      case PacketType.GET_STATUS_UNIQUE:
        return this.frame(PacketType.STATUS_RES_UNIQUE, [arg0(), '0', '0', '0', '0', '0']);
      case PacketType.WORK_COMPLETE:
      case PacketType.WORK_FAIL:
      case PacketType.WORK_EXCEPTION:
        return this.chance(0.2)
          ? this.frame(PacketType.ERROR, ['JOB_NOT_FOUND', 'Job given in work result not found'])
          : undefined;
      default:
        return undefined;
    }
  }

  /** A damaged copy of `frame`, or plain garbage. */
  private mutate(frame: Buffer): Buffer {
    const b = Buffer.from(frame);
    switch (this.int(10)) {
      case 0: // flip bytes anywhere, header included
        for (let i = 0, n = 1 + this.int(4); i < n; i++) b[this.int(b.length)] ^= 1 + this.int(255);
        return b;
      case 1: // wrong magic
        b.write(this.pick(['\0REQ', 'OK\r\n', 'ERR ', '\0res', 'GET ']), 0, 'latin1');
        return b;
      case 2: // unknown type
        b.writeUInt32BE(this.pick([0, 5, 43, 44, 255, 0x7fffffff, 0xffffffff]), 4);
        return b;
      case 3: // a length that lies: shorter (the rest is read as the next header) or longer
        b.writeUInt32BE(Math.max(0, b.length - 12 + this.pick([-3, -1, 1, 5, 100])), 8);
        return b;
      case 4: // a length above any limit, or merely large (the peer waits for bytes that never come)
        b.writeUInt32BE(this.pick([0xffffffff, 0x7fffffff, 65 * 1024 * 1024, 2 * 1024 * 1024, 100_000]), 8);
        return b;
      case 5: // NULs removed: too few arguments for the type
        return this.withoutNuls(b);
      case 6: // truncated
        return b.subarray(0, this.int(b.length));
      case 7: // random bytes
        return this.data();
      case 8: // admin text where a binary packet was expected
        return Buffer.from(this.pick(['OK\r\n', 'ERR UNKNOWN_COMMAND x\r\n', '.\n', 'OK 1.1.20\n']), 'latin1');
      default: // header only, then a fresh header: a packet cut in the middle of its payload
        return Buffer.concat([b.subarray(0, 12), this.randomFrame()]);
    }
  }

  private withoutNuls(b: Buffer): Buffer {
    const body = [...b.subarray(12)].filter((x) => x !== 0);
    const out = Buffer.alloc(12 + body.length);
    b.copy(out, 0, 0, 12);
    out.writeUInt32BE(body.length, 8);
    Buffer.from(body).copy(out, 12);
    return out;
  }

  /** Writes frames, corrupting some; may close the connection afterwards. */
  private send(frames: Buffer[]): void {
    if (this.closed) return;
    const c = this.server.counters;
    const rate = this.server.options.corruptRate ?? 0.02;
    const out: Buffer[] = [];
    for (const f of frames) {
      if (this.chance(rate)) {
        const m = this.mutate(f);
        out.push(m);
        if (m.length >= 12 && m.readUInt32BE(0) !== 0x00524553) c.garbage++;
        c.mutatedFrames++;
      } else {
        out.push(f);
        c.validFrames++;
      }
      c.frames++;
    }
    const chunk = Buffer.concat(out);
    c.bytes += chunk.length;
    this.socket.write(chunk);
    this.server.progress();
    if (this.chance((this.server.options.closeRate ?? 0.0005) * frames.length)) {
      c.closes++;
      // Half the time a clean FIN after the data, half the time a reset.
      if (this.chance(0.5)) this.socket.end();
      else this.close();
    }
  }

  /** Admin lines get random admin-looking replies, garbage, or a binary frame. */
  private onText(chunk: Buffer): void {
    const c = this.server.counters;
    if (this.burstTimer) {
      clearInterval(this.burstTimer);
      this.burstTimer = undefined;
      c.adminConnections++;
    }
    const lines = chunk.toString('latin1').split('\n').length - 1;
    const out: Buffer[] = [];
    for (let i = 0; i < lines; i++) {
      c.adminReplies++;
      const r = this.int(8);
      if (r === 0) out.push(this.randomFrame());
      else if (r === 1) out.push(this.data());
      else
        out.push(
          Buffer.from(
            this.pick([
              'OK\r\n',
              'ERR UNKNOWN_JOB Unknown+job\r\n',
              'ERR x\r\n',
              '.\n',
              'OK 1.1.20+ds\n',
              'fn\t1\t0\t1\n.\n',
              `${this.text(30)}\n`,
            ]),
            'latin1',
          ),
        );
    }
    this.socket.write(Buffer.concat(out));
    if (this.chance(0.2)) this.close();
  }

  private onRequest(p: Packet): void {
    this.server.counters.requests++;
    const frames: Buffer[] = [];
    const right = this.answer(p);
    // Extra frames before the right answer (a reply out of place), or instead of it.
    const before = this.int(3);
    for (let i = 0; i < before; i++) frames.push(this.randomFrame());
    if (right && this.chance(0.9)) frames.push(right);
    const after = this.int(4);
    for (let i = 0; i < after; i++) frames.push(this.randomFrame());
    this.send(frames);
  }

  private burst(): void {
    // Keep memory bounded on both sides: no burst while the socket is backed up.
    if (this.closed || this.socket.writableLength > 256 * 1024) return;
    const n = this.server.options.burstFrames ?? 40;
    const frames: Buffer[] = [];
    for (let i = 0; i < n; i++) frames.push(this.randomFrame());
    this.send(frames);
  }
}

export class HostileServer extends EventEmitter<{ progress: [frames: number] }> {
  readonly counters: HostileCounters = {
    connections: 0,
    requests: 0,
    frames: 0,
    validFrames: 0,
    mutatedFrames: 0,
    garbage: 0,
    closes: 0,
    peerProtocolErrors: 0,
    adminConnections: 0,
    adminReplies: 0,
    bytes: 0,
  };
  private readonly live = new Set<HostileConnection>();
  /** What the peers sent that could not be decoded (first few). */
  readonly peerErrors: string[] = [];
  /** Exceptions inside this tool itself (must stay empty for a run to count). */
  readonly toolErrors: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly options: HostileServerOptions,
  ) {
    super();
  }

  static async start(options: HostileServerOptions): Promise<HostileServer> {
    const server = createServer();
    const hostile = new HostileServer(server, await listenOnLoopback(server), options);
    server.on('connection', (socket) => {
      hostile.counters.connections++;
      hostile.live.add(new HostileConnection(hostile, socket, hostile.counters.connections));
    });
    return hostile;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resolves once at least `frames` frames were sent; rejects after `timeoutMs`. */
  waitForFrames(frames: number, timeoutMs: number): Promise<void> {
    if (this.counters.frames >= frames) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onProgress = (n: number) => {
        if (n < frames) return;
        clearTimeout(timer);
        this.off('progress', onProgress);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('progress', onProgress);
        reject(
          new Error(`the hostile server sent only ${this.counters.frames} of ${frames} frames within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.on('progress', onProgress);
    });
  }

  /** @internal */
  progress(): void {
    this.emit('progress', this.counters.frames);
  }

  /** @internal */
  dropped(conn: HostileConnection): void {
    this.live.delete(conn);
  }

  async close(): Promise<void> {
    for (const conn of [...this.live]) conn.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
