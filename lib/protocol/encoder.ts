import { GearmanProtocolError } from './errors.js';
import { HEADER_SIZE, MAGIC_REQ, MAGIC_RES, type Magic, PACKET_SPECS } from './packet-types.js';

/** A packet argument: strings are written as UTF-8. */
export type PacketArg = string | Uint8Array;

function argLength(arg: PacketArg): number {
  return typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length;
}

/**
 * Checks the argument count against the type's layout and that no NUL-terminated argument
 * contains a NUL (one would shift every later argument on the receiving side).
 * Returns the payload length.
 */
function payloadLength(type: number, args: readonly PacketArg[]): number {
  const spec = PACKET_SPECS[type];
  if (!spec) throw new GearmanProtocolError('UNKNOWN_TYPE', `Cannot encode unknown packet type ${type}`);
  const expected = spec.argc + (spec.data ? 1 : 0);
  if (args.length !== expected) {
    throw new GearmanProtocolError(
      'BAD_ARGUMENTS',
      `${spec.name} takes ${expected} argument(s), got ${args.length}`,
    );
  }
  if (expected === 0) return 0;
  let length = expected - 1; // one NUL after each argument but the last
  const last = expected - 1;
  for (let i = 0; i < last; i++) {
    const arg = args[i];
    if (typeof arg === 'string' ? arg.includes('\0') : arg.includes(0)) {
      throw new GearmanProtocolError(
        'BAD_ARGUMENTS',
        `Argument ${i + 1} of ${spec.name} contains a NUL byte, which the protocol uses as separator`,
      );
    }
    length += argLength(arg);
  }
  return length + argLength(args[last]);
}

/** Writes header and arguments at `offset`; returns the offset after the packet. */
function writePacket(
  target: Buffer,
  offset: number,
  type: number,
  args: readonly PacketArg[],
  payload: number,
  magic: Magic,
): number {
  target.writeUInt32BE(magic === 'REQ' ? MAGIC_REQ : MAGIC_RES, offset);
  target.writeUInt32BE(type, offset + 4);
  target.writeUInt32BE(payload, offset + 8);
  let pos = offset + HEADER_SIZE;
  const last = args.length - 1;
  for (let i = 0; i <= last; i++) {
    const arg = args[i];
    if (typeof arg === 'string') {
      pos += target.write(arg, pos);
    } else {
      target.set(arg, pos);
      pos += arg.length;
    }
    if (i < last) target[pos++] = 0;
  }
  return pos;
}

/** Encodes one packet into a single new Buffer (header, arguments and data, no intermediate copies). */
export function encodePacket(type: number, args: readonly PacketArg[], magic: Magic = 'REQ'): Buffer {
  const payload = payloadLength(type, args);
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload);
  writePacket(out, 0, type, args, payload, magic);
  return out;
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
    const payload = payloadLength(type, args);
    const last = args[args.length - 1];
    if (last !== undefined && typeof last !== 'string' && last.length >= LARGE_DATA) {
      // Header and leading arguments go into the buffer, the data itself stays where it is.
      const head = HEADER_SIZE + payload - last.length;
      this.reserve(head);
      const end = writePacket(this.buf, this.used, type, args.slice(0, -1).concat(EMPTY), payload, this.magic);
      this.used = end;
      this.flushBuf();
      const data = Buffer.isBuffer(last) ? last : Buffer.from(last.buffer, last.byteOffset, last.length);
      this.chunks.push(data);
      this.chunkBytes += data.length;
      return;
    }
    const size = HEADER_SIZE + payload;
    this.reserve(size);
    this.used = writePacket(this.buf, this.used, type, args, payload, this.magic);
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

const EMPTY = Buffer.alloc(0);
