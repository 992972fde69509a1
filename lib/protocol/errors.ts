/**
 * Every code this package raises, in one union: the root error lives in the lowest layer so that
 * protocol, engine and Nest errors share it and `instanceof GearmanError` catches them all.
 */
export type GearmanErrorCode =
  // protocol
  | 'BAD_MAGIC'
  | 'UNKNOWN_TYPE'
  | 'TOO_FEW_ARGUMENTS'
  | 'PACKET_TOO_LARGE'
  | 'BAD_ARGUMENTS'
  | 'BAD_ADMIN_REPLY'
  // engine
  | 'CONNECT_TIMEOUT'
  | 'CONNECTION_LOST'
  | 'NO_SERVER'
  | 'CLOSED'
  | 'SERVER_ERROR'
  /** The server refused a command it does not have (an older server: Perl's Gearman::Server lacks every type above 29). */
  | 'UNSUPPORTED_COMMAND'
  | 'TIMEOUT'
  | 'JOB_FAILED'
  | 'JOB_EXCEPTION'
  | 'CANCELLED'
  | 'NOT_CANCELLABLE'
  | 'INVALID_ARGUMENT'
  | 'JOB_FINISHED'
  | 'ADMIN_ERROR'
  /** A connection's outgoing buffer is full: the server is not reading fast enough. */
  | 'BACKPRESSURE'
  // server (the embedded job server, lib/server)
  /** The embedded job server could not listen on its address (the port is taken, or the address is not local). */
  | 'LISTEN_FAILED'
  // nest
  | 'CODEC_ERROR';

/** The root of every error this package throws: a `code` to switch on, a message that says what to do. */
export class GearmanError extends Error {
  override name = 'GearmanError';
  constructor(
    readonly code: GearmanErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type GearmanProtocolErrorCode = Extract<
  GearmanErrorCode,
  'BAD_MAGIC' | 'UNKNOWN_TYPE' | 'TOO_FEW_ARGUMENTS' | 'PACKET_TOO_LARGE' | 'BAD_ARGUMENTS' | 'BAD_ADMIN_REPLY'
>;

/**
 * Raised by the codec for malformed input; the connection that produced it should be closed.
 * PACKET_TOO_LARGE is also what the engine fails a single job or request with when a packet is
 * above `maxPacketSize` (received, or about to be sent): the connection stays.
 */
export class GearmanProtocolError extends GearmanError {
  override readonly name = 'GearmanProtocolError';
  declare readonly code: GearmanProtocolErrorCode;
  constructor(code: GearmanProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
