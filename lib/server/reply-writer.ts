/**
 * What one connection of the embedded server sends, collected for one socket write per flush.
 * The packets of every job (JOB_CREATED, JOB_ASSIGN, JOB_ASSIGN_UNIQ, NOOP, NO_JOB and the WORK_*
 * results forwarded to clients) are written straight into one buffer by a short loop; the rest
 * go through the protocol's PacketWriter. The general encoder handled every packet before and was
 * the largest function V8 had to optimize, once per call site, while a fresh server warmed up.
 * For development and tests; production stays on gearmand.
 */
import { view } from '../protocol/buffers.js';
import { type PacketArg, PacketWriter, writeHeader } from '../protocol/encoder.js';
import { HEADER_SIZE, PacketType } from '../protocol/packet-types.js';

const BUFFER_SIZE = 16 * 1024;
/** Trailing data at least this large is sent as its own chunk instead of being copied (as PacketWriter does). */
const LARGE_DATA = 64 * 1024;
/** Terminated arguments up to this long are copied by the checking loop; longer ones natively. */
const SHORT = 64;

/** Per packet type: 1 for those {@link ReplyWriter} writes itself. */
const DIRECT = new Uint8Array(64);
for (const t of [
  PacketType.NOOP,
  PacketType.NO_JOB,
  PacketType.JOB_CREATED,
  PacketType.JOB_ASSIGN,
  PacketType.JOB_ASSIGN_UNIQ,
  PacketType.WORK_COMPLETE,
  PacketType.WORK_DATA,
  PacketType.WORK_WARNING,
  PacketType.WORK_FAIL,
])
  DIRECT[t] = 1;

export class ReplyWriter {
  private buf: Buffer = Buffer.allocUnsafe(BUFFER_SIZE);
  private used = 0;
  private chunks: Buffer[] = [];
  /**
   * Every other packet, and any argument the loop does not take (its chunks are taken at once, in
   * order). These are rare, so it starts with a small buffer of its own.
   */
  private readonly general = new PacketWriter('RES', 1024);

  /** Queues one `\0RES` packet (the callers pass the argument count of its type, as PacketWriter checks). */
  push(type: number, args: readonly PacketArg[]): void {
    if (DIRECT[type] === 1 && this.direct(type, args)) return;
    this.cut();
    this.general.push(type, args);
    for (const chunk of this.general.take()) this.chunks.push(chunk);
  }

  /** The bytes queued since the last call, as chunks to write in order. */
  take(): Buffer[] {
    this.cut();
    const out = this.chunks;
    this.chunks = [];
    return out;
  }

  /**
   * Writes the packet unless an argument needs the general encoder (a string that is not ASCII, a
   * NUL inside a terminated argument): then it writes nothing and returns false.
   */
  private direct(type: number, args: readonly PacketArg[]): boolean {
    const n = args.length;
    // Strings are sized by their length: the loop below refuses any that is not ASCII.
    let size = HEADER_SIZE;
    for (let i = 0; i < n - 1; i++) size += args[i].length + 1;
    const last = n > 0 ? args[n - 1] : undefined;
    const large = last !== undefined && typeof last !== 'string' && last.length >= LARGE_DATA;
    if (last !== undefined && !large) size += last.length;
    this.reserve(size);
    const buf = this.buf;
    const start = this.used;
    let pos = start + HEADER_SIZE;
    for (let i = 0; i < n - 1 && pos >= 0; i++) {
      pos = put(buf, pos, args[i], true);
      if (pos >= 0) buf[pos++] = 0;
    }
    if (pos >= 0 && last !== undefined && !large) pos = put(buf, pos, last, false);
    if (pos < 0) return false;
    writeHeader(buf, start, 'RES', type, pos - start - HEADER_SIZE + (large ? last.length : 0));
    this.used = pos;
    if (large) {
      this.cut();
      this.chunks.push(Buffer.isBuffer(last) ? last : Buffer.from(last.buffer, last.byteOffset, last.length));
    }
    return true;
  }

  private reserve(size: number): void {
    if (this.buf.length - this.used >= size) return;
    this.cut();
    if (this.buf.length < size) this.buf = Buffer.allocUnsafe(Math.max(size, BUFFER_SIZE));
  }

  /** Moves the written bytes into the chunks; writing goes on in the rest of the buffer. */
  private cut(): void {
    const used = this.used;
    if (used === 0) return;
    const buf = this.buf;
    this.chunks.push(view(buf, 0, used));
    this.buf = buf.length - used < 256 ? Buffer.allocUnsafe(BUFFER_SIZE) : view(buf, used, buf.length);
    this.used = 0;
  }
}

/**
 * Copies one argument to `pos` and returns the position after it, or -1 if the general encoder
 * must take it: a string with a character outside ASCII, or with `terminated` a NUL inside.
 */
function put(buf: Buffer, pos: number, arg: PacketArg, terminated: boolean): number {
  const n = arg.length;
  if (typeof arg === 'string') {
    for (let i = 0; i < n; i++) {
      const c = arg.charCodeAt(i);
      if (c > 0x7f || (terminated && c === 0)) return -1;
      buf[pos + i] = c;
    }
    return pos + n;
  }
  if (terminated && n <= SHORT) {
    for (let i = 0; i < n; i++) {
      const c = arg[i];
      if (c === 0) return -1;
      buf[pos + i] = c;
    }
    return pos + n;
  }
  if (terminated && arg.includes(0)) return -1;
  buf.set(arg, pos);
  return pos + n;
}
