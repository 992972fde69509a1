/**
 * Internal buffer helpers of the codec (not exported from the package): cheap Buffer views and
 * Buffers over an ArrayBuffer. Both exist because the generic paths dominated encode/decode profiles.
 */

type BufferView = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer;

/**
 * Node's own Buffer view class (what `subarray` and `allocUnsafe` build), reached through the
 * public `Buffer[Symbol.species]`. Constructing it directly skips the species lookup of
 * `subarray` and the checks of `allocUnsafe`. Undefined if a runtime does not provide it.
 */
const FastBuffer: BufferView | undefined = (() => {
  const species = (Buffer as unknown as Record<symbol, unknown>)[Symbol.species];
  if (typeof species !== 'function' || species === Buffer) return undefined;
  try {
    const probe = new (species as BufferView)(new ArrayBuffer(4), 1, 2);
    return Buffer.isBuffer(probe) && probe.byteOffset === 1 && probe.length === 2 ? (species as BufferView) : undefined;
  } catch {
    return undefined;
  }
})();

/** `buf.subarray(start, end)` for 0 <= start <= end <= buf.length: a view, no copy. */
export const view: (buf: Buffer, start: number, end: number) => Buffer = FastBuffer
  ? (buf, start, end) => new FastBuffer(buf.buffer, buf.byteOffset + start, end - start)
  : (buf, start, end) => buf.subarray(start, end);

/** A Buffer over `length` bytes of `buffer` from `byteOffset` (as `Buffer.from(arrayBuffer, ...)`, faster). */
export const bufferOver: (buffer: ArrayBuffer, byteOffset: number, length: number) => Buffer = FastBuffer
  ? (buffer, byteOffset, length) => new FastBuffer(buffer, byteOffset, length)
  : (buffer, byteOffset, length) => Buffer.from(buffer, byteOffset, length);
