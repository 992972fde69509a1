import { GearmanError, GearmanJobError } from '../engine/index.js';

/**
 * A Nest worker's handler error, read from its WORK_EXCEPTION: `error` is the object Nest made (an
 * `RpcException`'s own object, `{ status: 'error', message }` otherwise), as Nest's own transports
 * deliver it. Its fields can be read on this error too (`err.status`), except those an Error already
 * has: `code` stays `JOB_EXCEPTION`, so an `RpcException({ code })` is `err.error.code`.
 */
export class GearmanRpcError extends GearmanJobError {
  override name = 'GearmanRpcError';
  readonly error: Record<string, unknown>;

  constructor(error: object, exception: GearmanJobError) {
    const message = (error as { message?: unknown }).message;
    super(
      'JOB_EXCEPTION',
      typeof message === 'string' ? message : exception.message,
      exception.handle,
      exception.functionName,
      exception.data,
    );
    this.error = error as Record<string, unknown>;
    for (const [key, value] of Object.entries(error)) {
      if (!(key in this)) (this as Record<string, unknown>)[key] = value;
    }
  }
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
          "(codec: 'json' | 'text' | 'raw', or your own { name, encode, decode }), per pattern with extras.codec " +
          'and per call with GearmanRecordBuilder.setCodec().',
      );
    }
  }
}
