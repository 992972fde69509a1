import { view } from './buffers.js';
import { GearmanProtocolError } from './errors.js';
import {
  ARG_COUNTS,
  DEFAULT_MAX_PACKET_SIZE,
  HEADER_SIZE,
  MAGIC_REQ,
  MAGIC_RES,
  type Magic,
  MAX_FUNCTION_NAME_LENGTH,
  MAX_HANDLE_LENGTH,
  type Packet,
  PACKET_SPECS,
  packetName,
  PacketType,
  TERMINATED_ARGS,
} from './packet-types.js';

export interface PacketDecoderOptions {
  /** Magic of the packets read: `RES` for clients and workers (default), `REQ` for a server. */
  magic?: Magic;
  /**
   * Largest payload accepted, in bytes (default 64 MiB). A larger one raises PACKET_TOO_LARGE, or,
   * with {@link onOversize}, is skipped and reported there.
   */
  maxPacketSize?: number;
  /**
   * Called for each packet whose header announces more than `maxPacketSize`, once its body has
   * streamed by: the decoder keeps only the first bytes that identify it (the handle, and the
   * function of a JOB_ASSIGN*), never the body, and goes on with the next packet. Without it, such
   * a packet throws PACKET_TOO_LARGE (the stream is then unusable). Must not throw.
   */
  onOversize?: (packet: OversizedPacket) => void;
}

/** What the decoder read of a packet above `maxPacketSize` before it skipped the rest. */
export interface OversizedPacket {
  /** The packet type (see PacketType). */
  readonly type: number;
  /** The payload size its header announced. */
  readonly size: number;
  /** The limit it was above (the decoder's `maxPacketSize`). */
  readonly limit: number;
  /** The job handle, for the types that start with one: JOB_ASSIGN* and WORK_DATA/WARNING/STATUS/COMPLETE/EXCEPTION. */
  readonly handle?: string;
  /** JOB_ASSIGN*: the function name. */
  readonly functionName?: string;
}

/**
 * The NUL-terminated leading arguments an oversized packet is identified by, per type: the handle
 * (and for JOB_ASSIGN* the function). The bytes kept are capped at what gearmand can send for them.
 */
const IDENTIFYING_ARGS = new Uint8Array(256);
for (const type of [PacketType.JOB_ASSIGN, PacketType.JOB_ASSIGN_UNIQ, PacketType.JOB_ASSIGN_ALL])
  IDENTIFYING_ARGS[type] = 2;
for (const type of [
  PacketType.WORK_STATUS,
  PacketType.WORK_COMPLETE,
  PacketType.WORK_EXCEPTION,
  PacketType.WORK_DATA,
  PacketType.WORK_WARNING,
])
  IDENTIFYING_ARGS[type] = 1;
const HANDLE_PREFIX = MAX_HANDLE_LENGTH + 1;
const ASSIGN_PREFIX = HANDLE_PREFIX + MAX_FUNCTION_NAME_LENGTH + 1;
/** Bytes of a skipped body read at once when the reader reads in place ({@link PacketDecoder.readTarget}). */
const SKIP_SCRATCH = 64 * 1024;

/** A packet above the limit whose body is streaming by: only its identifying prefix is kept. */
interface Skip {
  readonly type: number;
  readonly size: number;
  /** Body bytes gone by. */
  consumed: number;
  /** The first bytes of the body (at most the identifying arguments' cap), filled as they arrive. */
  readonly prefix: Buffer | undefined;
  /** Where in-place reads of the body land (reused; allocated on the first one). */
  scratch: Buffer | undefined;
}

/** Big-endian uint32 at `o` (the caller has checked the bounds). */
const u32 = (b: Buffer, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** Packets up to this size get a remainder buffer of their announced size at once (no regrowth). */
const TRUSTED_SIZE = 4 * 1024 * 1024;
/** Larger ones start this small and double up to the packet's announced size. */
const MIN_REMAINDER = 16 * 1024;

/**
 * Streaming decoder: feed it chunks in any split, it calls `onPacket` once per complete packet.
 *
 * A packet wholly inside a chunk is parsed in place: its arguments are slices of that chunk.
 * A packet split across chunks is gathered in one remainder buffer of the packet's length (checked
 * against the limit). Above 4 MiB it starts small and grows by doubling as bytes arrive, so a false
 * length costs at most 4 MiB up front. That buffer is handed over to the packet it completes, so
 * the slices stay valid after later chunks arrive. A reader that can choose where its bytes land
 * (a socket with `onread`) may read the rest of a large packet straight into that buffer:
 * {@link PacketDecoder.readTarget} and {@link PacketDecoder.commitTarget}.
 *
 * Malformed input throws {@link GearmanProtocolError}; the stream is then unusable (close it).
 * A packet above `maxPacketSize` does too, unless `onOversize` is set: then its body is skipped as
 * it streams by (any chunk split, in-place reads included), keeping at most a few KiB of it, and
 * reported there; decoding goes on with the next packet. `onPacket` must not throw.
 */
export class PacketDecoder {
  private readonly magic: number;
  private readonly maxPacketSize: number;
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFilled = 0;
  private remainder: Buffer | null = null;
  private remainderFilled = 0;
  private type = 0;
  private size = 0;
  private readonly onOversize: ((packet: OversizedPacket) => void) | undefined;
  /** Set while the body of an oversized packet streams by (only with `onOversize`). */
  private skip: Skip | null = null;

  constructor(
    private readonly onPacket: (packet: Packet) => void,
    options: PacketDecoderOptions = {},
  ) {
    this.magic = (options.magic ?? 'RES') === 'RES' ? MAGIC_RES : MAGIC_REQ;
    this.maxPacketSize = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    this.onOversize = options.onOversize;
  }

  /** Bytes held for a packet not yet complete (for a skipped one: its kept prefix and read scratch). */
  get bufferedBytes(): number {
    const skip = this.skip;
    const skipped = skip === null ? 0 : (skip.prefix?.length ?? 0) + (skip.scratch?.length ?? 0);
    return this.headerFilled + (this.remainder ? this.remainder.length : 0) + skipped;
  }

  /**
   * Where the missing bytes of a packet already begun may be written directly (no copy): a view of
   * its remainder buffer, at most as long as the bytes still missing. Undefined unless a packet's
   * payload is under way with at least `min` bytes missing. Report what was written with
   * {@link commitTarget} before pushing anything else.
   */
  readTarget(min = 1): Buffer | undefined {
    const remainder = this.remainder;
    if (remainder === null) return this.skip === null ? undefined : this.skipTarget(this.skip, min);
    const missing = this.size - this.remainderFilled;
    if (missing < Math.max(1, min)) return undefined;
    if (this.remainderFilled === remainder.length) this.grow(this.remainderFilled + 1);
    return view(this.remainder!, this.remainderFilled, Math.min(this.remainder!.length, this.size));
  }

  /** `written` bytes were stored at the start of the last {@link readTarget}; completes the packet if it was the rest. */
  commitTarget(written: number): void {
    const remainder = this.remainder;
    if (remainder === null && this.skip !== null) {
      this.commitSkipped(this.skip, written);
      return;
    }
    if (remainder === null || written < 0 || this.remainderFilled + written > Math.min(remainder.length, this.size)) {
      throw new RangeError(`commitTarget(${written}) does not match the last readTarget()`);
    }
    this.remainderFilled += written;
    if (this.remainderFilled === this.size) this.finish(remainder, 0);
  }

  /** Forgets any partial packet (after a reconnect). */
  reset(): void {
    this.headerFilled = 0;
    this.remainder = null;
    this.remainderFilled = 0;
    this.skip = null;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    const length = chunk.length;
    if (this.headerFilled > 0) {
      offset = this.continuePartial(chunk);
      if (offset < 0) return;
    }
    const magic = this.magic;
    const max = this.maxPacketSize;
    // Worth its allocation only when the chunk holds many packets (socket reads of a busy stream).
    const words =
      length - offset >= WORD_SCAN_MIN_CHUNK ? new DataView(chunk.buffer, chunk.byteOffset, length) : undefined;
    while (length - offset >= HEADER_SIZE) {
      const type = u32(chunk, offset + 4);
      const size = u32(chunk, offset + 8);
      // The common case inline; readHeader raises the precise error otherwise.
      if (u32(chunk, offset) !== magic || type > 0xff || ARG_COUNTS[type] < 0 || size > max) {
        this.readHeader(chunk, offset);
        // readHeader returned: an oversized packet to skip (onOversize is set).
        offset = this.skipBody(chunk, offset + HEADER_SIZE);
        if (offset < 0) return;
        continue;
      }
      const end = offset + HEADER_SIZE + size;
      if (end > length) {
        this.type = type;
        this.size = size;
        chunk.copy(this.header, 0, offset, offset + HEADER_SIZE);
        this.headerFilled = HEADER_SIZE;
        this.startRemainder(chunk, offset + HEADER_SIZE);
        return;
      }
      offset = end;
      this.onPacket(parse(type, chunk, words, end - size, end));
    }
    if (offset < length) {
      chunk.copy(this.header, 0, offset);
      this.headerFilled = length - offset;
    }
  }

  /** Completes a packet begun in an earlier chunk; returns the offset after it, or -1 if the chunk ran out. */
  private continuePartial(chunk: Buffer): number {
    let offset = 0;
    if (this.headerFilled < HEADER_SIZE) {
      const take = Math.min(HEADER_SIZE - this.headerFilled, chunk.length);
      chunk.copy(this.header, this.headerFilled, 0, take);
      this.headerFilled += take;
      offset = take;
      if (this.headerFilled < HEADER_SIZE) return -1;
      this.readHeader(this.header, 0);
      if (this.skip !== null) return this.skipBody(chunk, offset);
      return this.startRemainder(chunk, offset);
    }
    if (this.skip !== null) return this.skipBody(chunk, offset);
    return this.fillRemainder(chunk, offset);
  }

  /** Starts skipping the body of an oversized packet: only its identifying prefix will be kept. */
  private startSkip(type: number, size: number): void {
    const args = IDENTIFYING_ARGS[type];
    const keep = args === 0 ? 0 : Math.min(size, args === 2 ? ASSIGN_PREFIX : HANDLE_PREFIX);
    this.skip = {
      type,
      size,
      consumed: 0,
      prefix: keep > 0 ? Buffer.allocUnsafe(keep) : undefined,
      scratch: undefined,
    };
    this.headerFilled = HEADER_SIZE;
  }

  /** Lets the skipped body's bytes in chunk[offset..] go by; returns the offset after the body, or -1 if the chunk ran out. */
  private skipBody(chunk: Buffer, offset: number): number {
    const skip = this.skip!;
    const take = Math.min(skip.size - skip.consumed, chunk.length - offset);
    this.consume(skip, chunk, offset, take);
    if (skip.consumed < skip.size) return -1;
    this.endSkip(skip);
    return offset + take;
  }

  private consume(skip: Skip, source: Buffer, start: number, n: number): void {
    const prefix = skip.prefix;
    if (prefix !== undefined && skip.consumed < prefix.length) {
      source.copy(prefix, skip.consumed, start, start + Math.min(n, prefix.length - skip.consumed));
    }
    skip.consumed += n;
  }

  /** readTarget() while skipping: a reused scratch buffer, never longer than the bytes of the body still to come. */
  private skipTarget(skip: Skip, min: number): Buffer | undefined {
    const missing = skip.size - skip.consumed;
    if (missing < Math.max(1, min)) return undefined;
    const scratch = (skip.scratch ??= Buffer.allocUnsafe(SKIP_SCRATCH));
    return missing >= scratch.length ? scratch : view(scratch, 0, missing);
  }

  private commitSkipped(skip: Skip, written: number): void {
    const scratch = skip.scratch;
    if (scratch === undefined || written < 0 || written > Math.min(scratch.length, skip.size - skip.consumed)) {
      throw new RangeError(`commitTarget(${written}) does not match the last readTarget()`);
    }
    this.consume(skip, scratch, 0, written);
    if (skip.consumed === skip.size) this.endSkip(skip);
  }

  /** The body has gone by: reports the packet and gets ready for the next one. */
  private endSkip(skip: Skip): void {
    this.skip = null;
    this.headerFilled = 0;
    this.onOversize!(identify(skip, this.maxPacketSize));
  }

  private startRemainder(chunk: Buffer, offset: number): number {
    if (this.size === 0) return this.finish(Buffer.alloc(0), offset);
    const size = this.size;
    const available = chunk.length - offset;
    this.remainder = Buffer.allocUnsafe(
      size <= TRUSTED_SIZE ? size : Math.min(size, Math.max(MIN_REMAINDER, available)),
    );
    this.remainderFilled = 0;
    return this.fillRemainder(chunk, offset);
  }

  /** Regrows the remainder buffer (doubling, capped at the packet's size) to hold `needed` bytes. */
  private grow(needed: number): void {
    const remainder = this.remainder!;
    const grown = Buffer.allocUnsafe(Math.min(this.size, Math.max(remainder.length * 2, needed)));
    remainder.copy(grown, 0, 0, this.remainderFilled);
    this.remainder = grown;
  }

  private fillRemainder(chunk: Buffer, offset: number): number {
    const need = this.size - this.remainderFilled;
    const take = Math.min(need, chunk.length - offset);
    if (this.remainderFilled + take > this.remainder!.length) this.grow(this.remainderFilled + take);
    const remainder = this.remainder!;
    chunk.copy(remainder, this.remainderFilled, offset, offset + take);
    this.remainderFilled += take;
    if (this.remainderFilled < this.size) return -1;
    return this.finish(remainder, offset + take);
  }

  private finish(payload: Buffer, offset: number): number {
    const type = this.type;
    const size = this.size;
    this.headerFilled = 0;
    this.remainder = null;
    this.remainderFilled = 0;
    this.onPacket(parsePacket(type, payload, 0, size));
    return offset;
  }

  /** Validates a header; stores type and size; returns the payload size. */
  private readHeader(buf: Buffer, offset: number): number {
    const magic = buf.readUInt32BE(offset);
    if (magic !== this.magic) {
      this.reset();
      throw new GearmanProtocolError(
        'BAD_MAGIC',
        `Bad packet magic 0x${magic.toString(16).padStart(8, '0')}: expected \\0${this.magic === MAGIC_RES ? 'RES' : 'REQ'} (is this a Gearman server?)`,
      );
    }
    const type = buf.readUInt32BE(offset + 4);
    if (PACKET_SPECS[type] === undefined) {
      this.reset();
      throw new GearmanProtocolError('UNKNOWN_TYPE', `Unknown packet type ${type}`);
    }
    const size = buf.readUInt32BE(offset + 8);
    if (size > this.maxPacketSize) {
      this.reset();
      if (this.onOversize !== undefined) {
        this.startSkip(type, size);
        return size;
      }
      throw new GearmanProtocolError(
        'PACKET_TOO_LARGE',
        `${packetName(type)} announces ${size} bytes, above the limit of ${this.maxPacketSize} (raise maxPacketSize if this is expected)`,
      );
    }
    this.type = type;
    this.size = size;
    return size;
  }
}

/** The oversized packet's identifying arguments, read from its kept prefix (absent when they did not fit in it). */
function identify(skip: Skip, limit: number): OversizedPacket {
  const { type, size, prefix } = skip;
  const handleEnd = prefix === undefined ? -1 : prefix.indexOf(0);
  if (handleEnd < 0) return { type, size, limit };
  const handle = prefix!.toString('latin1', 0, handleEnd);
  if (IDENTIFYING_ARGS[type] < 2) return { type, size, limit, handle };
  const functionEnd = prefix!.indexOf(0, handleEnd + 1);
  if (functionEnd < 0) return { type, size, limit, handle };
  return { type, size, limit, handle, functionName: prefix!.toString('utf8', handleEnd + 1, functionEnd) };
}

/** Chunks at least this large are scanned for NULs four bytes at a time. */
const WORD_SCAN_MIN_CHUNK = 1024;

/** Index of the first NUL in buf[pos, end), or `end`. `words`, if given, views the same bytes as `buf`. */
function findNul(buf: Buffer, words: DataView | undefined, pos: number, end: number): number {
  if (words !== undefined) {
    // Skip whole words without a zero byte (the classic (v - 0x01..) & ~v & 0x80.. test).
    while (pos + 4 <= end) {
      const v = words.getUint32(pos);
      if (((v - 0x01010101) & ~v & 0x80808080) !== 0) break;
      pos += 4;
    }
  }
  while (pos < end && buf[pos] !== 0) pos++;
  return pos;
}

/**
 * Splits a payload into arguments following the type's layout (see PACKET_SPECS). The arguments
 * are views of `buf` (no copy). `type` must be a known type.
 */
export function parsePacket(type: number, buf: Buffer, start: number, end: number): Packet {
  return parse(type, buf, undefined, start, end);
}

function parse(type: number, buf: Buffer, words: DataView | undefined, start: number, end: number): Packet {
  const terminated = TERMINATED_ARGS[type];
  const count = ARG_COUNTS[type];
  if (count <= 0) {
    if (count < 0) throw new GearmanProtocolError('UNKNOWN_TYPE', `Unknown packet type ${type}`);
    return { type, args: [] };
  }
  const args: Buffer[] = new Array(count);
  let pos = start;
  for (let i = 0; i < terminated; i++) {
    const nul = findNul(buf, words, pos, end);
    if (nul === end) {
      throw new GearmanProtocolError(
        'TOO_FEW_ARGUMENTS',
        `${PACKET_SPECS[type]!.name} needs ${terminated} NUL-terminated argument(s) but has ${i}`,
      );
    }
    args[i] = view(buf, pos, nul);
    pos = nul + 1;
  }
  args[terminated] = view(buf, pos, end);
  return { type, args };
}
