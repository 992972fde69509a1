export type GearmanProtocolErrorCode =
  | 'BAD_MAGIC'
  | 'UNKNOWN_TYPE'
  | 'TOO_FEW_ARGUMENTS'
  | 'PACKET_TOO_LARGE'
  | 'BAD_ARGUMENTS'
  | 'BAD_ADMIN_REPLY';

/** Raised by the codec for malformed input; the connection that produced it should be closed. */
export class GearmanProtocolError extends Error {
  override readonly name = 'GearmanProtocolError';
  constructor(
    readonly code: GearmanProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}
