import { isAscii } from 'node:buffer';
import { GearmanError, invalidArgument } from '../engine/errors.js';

/**
 * How Nest values become Gearman payloads and back. The default, `json`, puts the plain JSON of
 * the value on the wire (no envelope), so PHP, Perl, Python and CLI peers read and write it as is.
 */
export interface GearmanCodec {
  readonly name: string;
  encode(value: unknown): Buffer;
  /** Throws on bytes it cannot read; an empty payload decodes to `undefined`. */
  decode(data: Buffer): unknown;
}

/** A built-in codec by name, `textCodec(encoding)`, or your own. */
export type GearmanCodecOption = 'json' | 'text' | 'raw' | GearmanCodec;

/** A payload the codec could not read, or a value it could not write. */
export class GearmanCodecError extends GearmanError {
  override readonly name = 'GearmanCodecError';
  declare readonly code: 'CODEC_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super('CODEC_ERROR', message, options);
  }
}

const EMPTY = Buffer.alloc(0);

function bytes(value: unknown): Buffer | undefined {
  if (value === undefined || value === null) return EMPTY;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return undefined;
}

/**
 * From this many bytes (or characters), UTF-8 text that is all ASCII is converted as latin1, the
 * same bytes: a plain copy, where the UTF-8 conversion looks at every character (a 1 MiB payload:
 * ~1 ms to read, ~0.3 ms to write, against ~0.4 and ~0.2 ms with the check). Below it, the check
 * costs more than it saves.
 */
const ASCII_CHECK_FROM = 256;

function utf8Text(data: Buffer): string {
  return data.toString(data.length >= ASCII_CHECK_FROM && isAscii(data) ? 'latin1' : 'utf8');
}

function utf8Bytes(text: string): Buffer {
  // As many UTF-8 bytes as characters: every one is ASCII.
  const ascii = text.length >= ASCII_CHECK_FROM && Buffer.byteLength(text) === text.length;
  return Buffer.from(text, ascii ? 'latin1' : 'utf8');
}

/** The JSON of `value` (undefined for what JSON has no text for, e.g. `undefined`). */
function jsonText(value: unknown, codec: string): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new GearmanCodecError(`The ${codec} codec cannot serialise this value: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function stringify(value: unknown, codec: string): Buffer {
  const text = jsonText(value, codec);
  return text === undefined ? EMPTY : utf8Bytes(text);
}

/**
 * JSON (default): any JSON value; a Buffer passes as raw bytes; `undefined` is an empty payload.
 * `null` is written as `null`, so a handler's null result reaches the caller as null (as over Nest's
 * own transports) instead of as "no value".
 */
export const jsonCodec: GearmanCodec = {
  name: 'json',
  encode: (value) => (value === null ? Buffer.from('null') : (bytes(value) ?? stringify(value, 'json'))),
  decode(data) {
    if (data.length === 0) return undefined;
    try {
      return JSON.parse(utf8Text(data));
    } catch (err) {
      // Neither the bytes nor the SyntaxError (whose message quotes them) go into the error: it is
      // logged and sent back to callers. Where parsing stopped is enough to find the fault.
      const at = /position (\d+)/.exec((err as Error).message)?.[1];
      throw new GearmanCodecError(
        `payload is not valid JSON${at === undefined ? '' : ` (invalid at character ${at})`}`,
      );
    }
  },
};

/** UTF-8 text: what the gearman CLI and most scripts send. Non-string values are written as JSON. */
const utf8TextCodec: GearmanCodec = {
  name: 'text',
  encode: (value) => (typeof value === 'string' ? utf8Bytes(value) : (bytes(value) ?? stringify(value, 'text'))),
  decode: (data) => (data.length === 0 ? undefined : utf8Text(data)),
};

/** The character encodings of Node's Buffer, by every name Buffer takes for them. */
const TEXT_ENCODINGS = new Map<string, 'utf8' | 'utf16le' | 'latin1' | 'ascii'>([
  ['utf8', 'utf8'],
  ['utf-8', 'utf8'],
  ['utf16le', 'utf16le'],
  ['utf-16le', 'utf16le'],
  ['ucs2', 'utf16le'],
  ['ucs-2', 'utf16le'],
  ['latin1', 'latin1'],
  ['binary', 'latin1'],
  ['ascii', 'ascii'],
]);

/** A character encoding `textCodec()` takes (Buffer's names for them). */
type TextEncoding = 'utf8' | 'utf-8' | 'utf16le' | 'utf-16le' | 'ucs2' | 'ucs-2' | 'latin1' | 'binary' | 'ascii';

/** Characters an encoding cannot write: Buffer would keep only their low byte. */
const UNWRITABLE = { latin1: /[\u0100-\uffff]/, ascii: /[\u0080-\uffff]/ } as const;

/**
 * Text in one of Node's character encodings, for peers that do not speak UTF-8 (a PHP or Perl
 * worker reading latin1, a Windows peer writing UTF-16LE): strings are written in it byte for byte,
 * other values as JSON text in it, and payloads are read as strings. Where Buffer would lose data
 * silently the codec throws a GearmanCodecError instead: a character latin1 or ascii cannot hold,
 * a byte above 0x7f in ascii, an odd number of bytes in UTF-16LE. `textCodec('utf8')` is the
 * `text` codec. An encoding that is not one of these throws INVALID_ARGUMENT.
 *
 * ```ts
 * new ServerGearman({ servers: ['127.0.0.1:4730'], codec: textCodec('latin1') });
 * ```
 */
export function textCodec(encoding: TextEncoding): GearmanCodec {
  const charset = typeof encoding === 'string' ? TEXT_ENCODINGS.get(encoding.toLowerCase()) : undefined;
  if (charset === undefined) {
    throw invalidArgument(
      `Unknown text encoding ${JSON.stringify(encoding)}: use one of ${[...TEXT_ENCODINGS.keys()].join(', ')}. ` +
        "hex and base64 are not character encodings: use the 'raw' codec and Buffer's toString() for them",
    );
  }
  if (charset === 'utf8') return utf8TextCodec;
  const name = `text:${charset}`;
  const unwritable = charset === 'utf16le' ? undefined : UNWRITABLE[charset];
  const write = (text: string): Buffer => {
    const at = unwritable ? text.search(unwritable) : -1;
    if (at >= 0) {
      const code = text.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0');
      throw new GearmanCodecError(
        `The ${name} codec cannot write U+${code} (character ${at}): ${charset} has no such character`,
      );
    }
    return Buffer.from(text, charset);
  };
  return {
    name,
    encode(value) {
      if (typeof value === 'string') return write(value);
      const raw = bytes(value);
      if (raw) return raw;
      const json = jsonText(value, name);
      return json === undefined ? EMPTY : write(json);
    },
    decode(data) {
      if (data.length === 0) return undefined;
      if (charset === 'utf16le' && data.length % 2 === 1) {
        throw new GearmanCodecError(`payload is not UTF-16LE: ${data.length} bytes, an odd number`);
      }
      if (charset === 'ascii') {
        const at = data.findIndex((byte) => byte > 0x7f);
        if (at >= 0) throw new GearmanCodecError(`payload is not ascii: byte ${at} is above 0x7f`);
      }
      return data.toString(charset);
    },
  };
}

/** Raw bytes: handlers get a Buffer. */
export const rawCodec: GearmanCodec = {
  name: 'raw',
  encode: (value) => (typeof value === 'string' ? Buffer.from(value) : (bytes(value) ?? stringify(value, 'raw'))),
  decode: (data) => (data.length === 0 ? undefined : data),
};

export function resolveCodec(option: GearmanCodecOption | undefined): GearmanCodec {
  if (option === undefined || option === 'json') return jsonCodec;
  if (option === 'text') return utf8TextCodec;
  if (option === 'raw') return rawCodec;
  if (typeof option === 'object' && typeof option.encode === 'function' && typeof option.decode === 'function')
    return option;
  throw new GearmanCodecError(
    `Unknown codec ${JSON.stringify(option)}: use 'json', 'text', 'raw', textCodec(encoding) or an object with encode and decode`,
  );
}

/**
 * Opt-in envelope that carries Nest packet metadata beside the payload:
 * `\0NGM1`, uint32 BE length of the metadata JSON, the metadata JSON (an object of strings), then
 * the payload as the codec wrote it. A client writes it only with `sendMetadata`, and a server reads
 * it only where it opted in (`readMetadata`): any Gearman client can send these bytes, and a raw
 * payload may start with them, so elsewhere they reach the handler unchanged.
 */
const ENVELOPE_MAGIC = Buffer.from('\0NGM1', 'latin1');

/** Whether `data` starts with the envelope's magic bytes. */
export function hasMetadataEnvelope(data: Buffer): boolean {
  if (data.length < ENVELOPE_MAGIC.length) return false;
  // Byte by byte: a view and a native compare per job cost more than these five reads.
  for (let i = 0; i < ENVELOPE_MAGIC.length; i++) if (data[i] !== ENVELOPE_MAGIC[i]) return false;
  return true;
}

/** The envelope around `payload`; throws a GearmanCodecError for metadata that is not an object of strings. */
export function wrapMetadata(metadata: Record<string, string>, payload: Buffer): Buffer {
  checkMetadata(metadata, 'Nest packet metadata sent with sendMetadata');
  const meta = JSON.stringify(metadata);
  const start = ENVELOPE_MAGIC.length + 4;
  const length = Buffer.byteLength(meta);
  // One buffer, written in place: the payload is copied once (a large one is most of the cost).
  const envelope = Buffer.allocUnsafe(start + length + payload.length);
  ENVELOPE_MAGIC.copy(envelope, 0);
  envelope.writeUInt32BE(length, ENVELOPE_MAGIC.length);
  envelope.write(meta, start);
  envelope.set(payload, start + length);
  return envelope;
}

/**
 * Splits an envelope; a payload without the magic bytes comes back unchanged with no metadata.
 * Throws a GearmanCodecError for an envelope that is truncated, not JSON, or not an object of strings.
 */
export function unwrapMetadata(data: Buffer): { payload: Buffer; metadata: Record<string, string> | undefined } {
  if (!hasMetadataEnvelope(data)) return { payload: data, metadata: undefined };
  const start = ENVELOPE_MAGIC.length + 4;
  const end = data.length < start ? Infinity : start + data.readUInt32BE(ENVELOPE_MAGIC.length);
  if (end > data.length) throw new GearmanCodecError(`metadata envelope is truncated (${data.length} bytes)`);
  let metadata: unknown;
  try {
    metadata = JSON.parse(data.toString('utf8', start, end));
  } catch {
    throw new GearmanCodecError(`metadata envelope holds invalid JSON (${end - start} bytes)`);
  }
  checkMetadata(metadata, 'metadata envelope');
  return { payload: data.subarray(end), metadata };
}

function checkMetadata(metadata: unknown, what: string): asserts metadata is Record<string, string> {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new GearmanCodecError(`${what} must be an object of strings, got ${kind(metadata)}`);
  }
  for (const key in metadata) {
    if (!Object.hasOwn(metadata, key)) continue;
    const value = (metadata as Record<string, unknown>)[key];
    if (typeof value !== 'string') {
      throw new GearmanCodecError(
        `${what} must be an object of strings: ${JSON.stringify(key.slice(0, 80))} is ${kind(value)}`,
      );
    }
  }
}

function kind(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
