import { bufferOver } from './buffers.js';
import { GearmanProtocolError } from './errors.js';
import { ARG_COUNTS, HEADER_SIZE, type Magic, PACKET_SPECS } from './packet-types.js';

/** A packet argument: strings are written as UTF-8. */
export type PacketArg = string | Uint8Array;

/**
 * Strings up to this many characters are written by a JS loop in one pass (native calls cost
 * more than the loop for the short handles and function names that make up most arguments).
 */
const SHORT_STRING = 64;

/** Checks the type and argument count (the layout of PACKET_SPECS). */
function checkArgs(type: number, args: readonly PacketArg[]): void {
  const expected = type >= 0 && type < 256 ? ARG_COUNTS[type] : -1;
  if (expected < 0) throw new GearmanProtocolError('UNKNOWN_TYPE', `Cannot encode unknown packet type ${type}`);
  if (args.length !== expected) {
    throw new GearmanProtocolError(
      'BAD_ARGUMENTS',
      `${PACKET_SPECS[type]!.name} takes ${expected} argument(s), got ${args.length}`,
    );
  }
}

function nulError(type: number, index: number): GearmanProtocolError {
  return new GearmanProtocolError(
    'BAD_ARGUMENTS',
    `Argument ${index + 1} of ${PACKET_SPECS[type]!.name} contains a NUL byte, which the protocol uses as separator`,
  );
}

/**
 * Bytes the packet needs at most: exact for byte arguments and long strings, 3 bytes per UTF-16
 * unit (the UTF-8 worst case) for short strings, so those need only the one writing pass.
 */
function sizeBound(args: readonly PacketArg[], count: number): number {
  let bound = HEADER_SIZE + (count > 0 ? count - 1 : 0);
  for (let i = 0; i < count; i++) {
    const arg = args[i];
    if (typeof arg !== 'string') bound += arg.length;
    else bound += arg.length <= SHORT_STRING ? 3 * arg.length : Buffer.byteLength(arg);
  }
  return bound;
}

/** Writes `s` as UTF-8 at `pos`; returns the position after it, or -1 if `noNul` and it has a NUL. */
function writeString(target: Buffer, pos: number, s: string, noNul: boolean): number {
  const n = s.length;
  let i = 0;
  if (n <= SHORT_STRING) {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      // One test for both exits: NUL (0 - 1 wraps to 2^32 - 1) and non-ASCII (0x80 and up).
      if ((c - 1) >>> 0 >= 0x7f) break;
      target[pos + i] = c;
    }
    if (i === n) return pos + n;
  }
  // Long, not ASCII, or holding a NUL: the native encoder (rewriting what the loop wrote).
  if (noNul && s.includes('\0', i)) return -1;
  return pos + target.write(s, pos);
}

function hasNul(b: Uint8Array): boolean {
  const n = b.length;
  if (n > SHORT_STRING) return b.includes(0);
  for (let i = 0; i < n; i++) if (b[i] === 0) return true;
  return false;
}

/**
 * Writes the packet at `offset` (room for sizeBound bytes is guaranteed by the caller) and
 * returns the offset after it. With `omitLast` the last argument is counted in the header but
 * not written (the caller sends it as its own chunk). A NUL inside a NUL-terminated argument
 * throws BAD_ARGUMENTS; callers commit nothing before this returns.
 */
function writePacket(
  target: Buffer,
  offset: number,
  type: number,
  args: readonly PacketArg[],
  magic: Magic,
  omitLast: boolean,
): number {
  const last = args.length - 1;
  const written = omitLast ? last : args.length;
  let pos = offset + HEADER_SIZE;
  for (let i = 0; i < written; i++) {
    const arg = args[i];
    const terminated = i < last;
    if (typeof arg === 'string') {
      pos = writeString(target, pos, arg, terminated);
      if (pos < 0) throw nulError(type, i);
    } else {
      if (terminated && hasNul(arg)) throw nulError(type, i);
      target.set(arg, pos);
      pos += arg.length;
    }
    if (terminated) target[pos++] = 0;
  }
  writeHeader(target, offset, magic, type, pos - offset - HEADER_SIZE + (omitLast ? args[last].length : 0));
  return pos;
}

/**
 * The 12-byte header of a packet of `type` whose arguments take `size` bytes, at `offset`. Byte
 * stores instead of writeUInt32BE: this runs once per packet.
 */
export function writeHeader(target: Uint8Array, offset: number, magic: Magic, type: number, size: number): void {
  target[offset] = 0;
  target[offset + 1] = 0x52; // R
  target[offset + 2] = 0x45; // E
  target[offset + 3] = magic === 'REQ' ? 0x51 : 0x53; // Q or S
  target[offset + 4] = type >>> 24;
  target[offset + 5] = type >>> 16;
  target[offset + 6] = type >>> 8;
  target[offset + 7] = type;
  target[offset + 8] = size >>> 24;
  target[offset + 9] = size >>> 16;
  target[offset + 10] = size >>> 8;
  target[offset + 11] = size;
}

/**
 * Small packets are encoded straight into a shared slab and handed out as views of it, as
 * Node's own pool does for Buffer.allocUnsafe; the slab position only advances once a packet
 * was written, so its size need not be known beforehand.
 */
const SLAB_SIZE = 32 * 1024;
const SMALL = 2 * 1024;
// allocUnsafeSlow gives a Buffer of its own, at offset 0 of its ArrayBuffer.
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabMemory = slab.buffer as ArrayBuffer;
let slabOffset = 0;

/** Encodes one packet into a single new Buffer (header, arguments and data, no intermediate copies). */
export function encodePacket(type: number, args: readonly PacketArg[], magic: Magic = 'REQ'): Buffer {
  checkArgs(type, args);
  const bound = sizeBound(args, args.length);
  if (bound > SMALL) {
    const out = Buffer.allocUnsafe(bound);
    const end = writePacket(out, 0, type, args, magic, false);
    return end === bound ? out : out.subarray(0, end);
  }
  if (slabOffset + bound > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabMemory = slab.buffer as ArrayBuffer;
    slabOffset = 0;
  }
  const start = slabOffset;
  const end = writePacket(slab, start, type, args, magic, false);
  // Keep the next packet 8-byte aligned, as Node's pool does.
  slabOffset = (end + 7) & ~7;
  return bufferOver(slabMemory, start, end - start);
}

/** Payloads at least this large are passed to the socket as their own chunk instead of being copied. */
const LARGE_DATA = 64 * 1024;

/**
 * Collects many packets for one socket write: small packets are encoded back to back into one
 * growable buffer; a large trailing data argument is kept as its own chunk (no copy).
 * `take()` hands the chunks over and starts afresh.
 */
export class PacketWriter {
  private buf: Buffer;
  private used = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;

  constructor(
    private readonly magic: Magic = 'REQ',
    private readonly initialSize = 16 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Bytes waiting to be taken. */
  get pendingBytes(): number {
    return this.chunkBytes + this.used;
  }

  push(type: number, args: readonly PacketArg[]): void {
    checkArgs(type, args);
    const last = args[args.length - 1];
    if (last !== undefined && typeof last !== 'string' && last.length >= LARGE_DATA) {
      // Header and leading arguments go into the buffer, the data itself stays where it is.
      this.reserve(sizeBound(args, args.length - 1) + 1);
      this.used = writePacket(this.buf, this.used, type, args, this.magic, true);
      this.flushBuf();
      const data = Buffer.isBuffer(last) ? last : Buffer.from(last.buffer, last.byteOffset, last.length);
      this.chunks.push(data);
      this.chunkBytes += data.length;
      return;
    }
    this.reserve(sizeBound(args, args.length));
    this.used = writePacket(this.buf, this.used, type, args, this.magic, false);
  }

  /** The encoded bytes since the last call, as chunks to write in order. */
  take(): Buffer[] {
    this.flushBuf();
    const out = this.chunks;
    this.chunks = [];
    this.chunkBytes = 0;
    return out;
  }

  private flushBuf(): void {
    if (this.used === 0) return;
    const chunk = this.buf.subarray(0, this.used);
    this.chunks.push(chunk);
    this.chunkBytes += this.used;
    // The taken bytes belong to the socket now; continue in the rest of the buffer.
    this.buf = this.buf.subarray(this.used);
    this.used = 0;
    if (this.buf.length < 256) this.buf = Buffer.allocUnsafe(this.initialSize);
  }

  private reserve(size: number): void {
    if (this.buf.length - this.used >= size) return;
    this.flushBuf();
    if (this.buf.length < size) this.buf = Buffer.allocUnsafe(Math.max(size, this.initialSize));
  }
}
