/**
 * Errors the engine raises. Every one carries a `code` to switch on and a message that says what
 * happened and what to do. They extend the package's one root, {@link GearmanError}.
 */
import { GearmanError } from '../protocol/errors.js';

export { GearmanError, type GearmanErrorCode } from '../protocol/errors.js';

/** A socket could not be opened, was lost, or no server is reachable. */
export class GearmanConnectionError extends GearmanError {
  override name = 'GearmanConnectionError';
  constructor(
    code: 'CONNECT_TIMEOUT' | 'CONNECTION_LOST' | 'NO_SERVER' | 'CLOSED',
    message: string,
    readonly server?: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** gearmand answered with an ERROR packet (e.g. QUEUE_ERROR when a maxqueue limit is hit). */
export class GearmanServerError extends GearmanError {
  override name = 'GearmanServerError';
  constructor(
    /** gearmand's code: INVALID_COMMAND, JOB_NOT_FOUND, QUEUE_ERROR, ARGUMENT_TOO_LARGE, UNKNOWN_OPTION, ... */
    readonly serverCode: string,
    readonly serverMessage: string,
    readonly server?: string,
  ) {
    super('SERVER_ERROR', `gearmand${server ? ` ${server}` : ''} answered ERROR ${serverCode}: ${serverMessage}`);
  }
}

export class GearmanTimeoutError extends GearmanError {
  override name = 'GearmanTimeoutError';
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

/** The job ended with WORK_FAIL or WORK_EXCEPTION. `data` holds the exception payload, if any. */
export class GearmanJobError extends GearmanError {
  override name = 'GearmanJobError';
  constructor(
    code: 'JOB_FAILED' | 'JOB_EXCEPTION',
    message: string,
    readonly handle: string,
    readonly functionName: string,
    readonly data?: Buffer,
  ) {
    super(code, message);
  }
}

/** The job was cancelled (by `cancel()`, an AbortSignal or a timeout) before it ran. */
export class GearmanCancelledError extends GearmanError {
  override name = 'GearmanCancelledError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('CANCELLED', message, options);
  }
}

export class GearmanAdminError extends GearmanError {
  override name = 'GearmanAdminError';
  constructor(
    readonly serverCode: string,
    message: string,
    readonly server?: string,
  ) {
    super('ADMIN_ERROR', message);
  }
}

export function invalidArgument(message: string): GearmanError {
  return new GearmanError('INVALID_ARGUMENT', message);
}
