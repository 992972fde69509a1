import { isUtf8 } from 'node:buffer';
import { GearmanError, GearmanJobError } from '../engine/index.js';

/**
 * A worker's WORK_EXCEPTION, as a ClientGearman caller gets every one. `error` is the object Nest's
 * own transports would deliver: a Nest worker's error object (an `RpcException`'s own object,
 * `{ status: 'error', message }` otherwise), or a foreign worker's JSON object as it is; any other
 * exception data becomes `{ status: 'error', message: value }`, where `value` is the JSON value
 * (array, string, number, boolean or null), else the text ('' when empty; invalid UTF-8 is decoded
 * with U+FFFD, the exact bytes are in `data`). Its fields can be read on this error too (`err.status`),
 * except those an Error already has: `code` stays `JOB_EXCEPTION`, so an `RpcException({ code })`
 * is `err.error.code`. `message` is `error.message` when it is a non-empty string (at most 1000 characters),
 * else the engine's, which names the function and the handle.
 */
export class GearmanRpcError extends GearmanJobError {
  override name = 'GearmanRpcError';
  readonly error: Record<string, unknown>;

  constructor(error: object, exception: GearmanJobError) {
    const message = (error as { message?: unknown }).message;
    super(
      'JOB_EXCEPTION',
      typeof message === 'string' && message !== '' ? bounded(message) : exception.message,
      exception.handle,
      exception.functionName,
      exception.data,
    );
    this.error = error as Record<string, unknown>;
    for (const [key, value] of Object.entries(error)) {
      if (!(key in this)) (this as Record<string, unknown>)[key] = value;
    }
  }

  /** The error a WORK_EXCEPTION's bytes make (see the class): whatever a worker sent, a GearmanRpcError. */
  static fromException(exception: GearmanJobError): GearmanRpcError {
    const data = exception.data ?? EMPTY;
    const text = data.toString('utf8');
    let value: unknown = text;
    if (text.length > 0 && isUtf8(data)) {
      try {
        value = JSON.parse(text);
      } catch {
        // Plain text: kept as the message.
      }
    }
    const error =
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? value
        : { status: 'error', message: value };
    return new GearmanRpcError(error, exception);
  }
}

const EMPTY = Buffer.alloc(0);
const MAX_MESSAGE = 1000;

function bounded(message: string): string {
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}...` : message;
}

/**
 * Nest's `serializer` and `deserializer` options do not apply to this transport (its payloads are
 * Gearman's, not Nest packets): reject them rather than ignore them, and name what does the job.
 */
export function rejectNestSerializers(options: object, transport: string): void {
  for (const name of ['serializer', 'deserializer'] as const) {
    if ((options as Record<string, unknown>)[name] !== undefined) {
      throw new GearmanError(
        'INVALID_ARGUMENT',
        `${transport} does not take Nest's ${name} option: payloads are written and read by the codec option ` +
          "(codec: 'json' | 'text' | 'raw', textCodec(encoding), or your own { name, encode, decode }), per pattern " +
          'with extras.codec and per call with GearmanRecordBuilder.setCodec().',
      );
    }
  }
}
