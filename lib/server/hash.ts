/**
 * The small C routines of gearmand 1.1.20 whose exact results show on the wire: its hash (which
 * orders the admin listings), and how it reads numbers and C strings out of packet arguments.
 * For development and tests; production stays on gearmand.
 */

/** gearmand's bucket count for functions, and the default of `--hashtable-buckets` for jobs. */
export const GEARMAND_HASH_SIZE = 991;

/**
 * `_server_job_hash` / `_server_function_hash` (Jenkins one-at-a-time over signed chars, in
 * int32 arithmetic, 0 mapped to 1). gearmand lists functions, jobs and uniques in the order of
 * their hash buckets, so the admin replies come out in the same order only with the same hash.
 */
export function gearmandHash(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    v = (v + (c >= 128 ? c - 256 : c)) | 0;
    v = (v + (v << 10)) | 0;
    v ^= v >> 6;
  }
  v = (v + (v << 3)) | 0;
  v ^= v >> 11;
  v = (v + (v << 15)) | 0;
  return v === 0 ? 1 : v >>> 0;
}

/**
 * Index of the first NUL in `bytes[start, end)`, or -1: a loop the hot packets inline, where
 * `Buffer#indexOf` costs a native call and one more function for V8 to optimize at startup.
 */
export function nulAt(bytes: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) if (bytes[i] === 0) return i;
  return -1;
}

/** Bytes up to the first NUL (what C's `%s`, `strlen` and `strcmp` see). */
export function cString(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** Length C's `strnlen(bytes, bytes.length)` gives. */
export function cLength(bytes: Buffer): number {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes.length : nul;
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/**
 * C's `strtoll`/`strtol` (base 10, 64-bit long): leading white space, an optional sign, digits;
 * 0 when there are none. `overflow` is true where C sets ERANGE (and clamps to the limit).
 */
export function strtoll(bytes: Buffer): { value: bigint; overflow: boolean } {
  let i = 0;
  const n = bytes.length;
  while (i < n && isSpace(bytes[i])) i++;
  let negative = false;
  if (i < n && (bytes[i] === 0x2b || bytes[i] === 0x2d)) negative = bytes[i++] === 0x2d;
  let value = 0n;
  const limit = negative ? 1n << 63n : (1n << 63n) - 1n;
  let overflow = false;
  for (; i < n && bytes[i] >= 0x30 && bytes[i] <= 0x39; i++) {
    if (overflow) continue;
    value = value * 10n + BigInt(bytes[i] - 0x30);
    if (value > limit) {
      overflow = true;
      value = limit;
    }
  }
  return { value: negative ? -value : value, overflow };
}

/** C's `(uint32_t)atoi(s)` as glibc computes it (`(int)strtol(s)`, then to unsigned). */
export function atoiU32(bytes: Buffer): number {
  // The common case, a short run of digits, without BigInt.
  const n = bytes.length;
  if (n > 0 && n <= 9) {
    let v = 0;
    let i = 0;
    for (; i < n; i++) {
      const c = bytes[i];
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
    }
    if (i === n) return v;
  }
  return Number(BigInt.asUintN(32, strtoll(bytes).value));
}
