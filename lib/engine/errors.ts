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

/**
 * The server answered with an ERROR packet: code SERVER_ERROR (e.g. gearmand's QUEUE_ERROR when a
 * maxqueue limit is hit), or UNSUPPORTED_COMMAND when the server does not have the command at all:
 * gearmand's INVALID_COMMAND, or the `server_error` Perl's Gearman::Server sends for every packet
 * type it has no handler for (all types above 29, and WORK_DATA, WORK_WARNING, SUBMIT_JOB_LOW,
 * SUBMIT_JOB_HIGH_BG, SUBMIT_JOB_LOW_BG).
 */
export class GearmanServerError extends GearmanError {
  override name = 'GearmanServerError';
  declare readonly code: 'SERVER_ERROR' | 'UNSUPPORTED_COMMAND';
  /**
   * The command the ERROR answered, when known (e.g. `SUBMIT_JOB_EPOCH`): the request it took the
   * place of, else the one the server's text names.
   */
  readonly command: string | undefined;
  constructor(
    /** The server's code: INVALID_COMMAND, JOB_NOT_FOUND, QUEUE_ERROR, ARGUMENT_TOO_LARGE, UNKNOWN_OPTION, server_error, ... */
    readonly serverCode: string,
    readonly serverMessage: string,
    readonly server?: string,
    command?: string,
  ) {
    const text = serverMessage.trim();
    const named = command ?? perlCommand(text);
    const at = server ? ` at ${server}` : '';
    const unsupported = serverCode.toUpperCase() === 'INVALID_COMMAND' || PERL_NO_HANDLER.test(text);
    super(
      unsupported ? 'UNSUPPORTED_COMMAND' : 'SERVER_ERROR',
      unsupported
        ? `The server${at} does not support ${named ?? 'a command sent to it'} (it answered ERROR ${serverCode}: ${text}): ` +
            "it predates that command (Perl's Gearman::Server knows no packet type above 29). " +
            'Use gearmand, or do without it on this server (README, "Servers")'
        : `gearmand${at} answered ${named ? `${named} with ` : ''}ERROR ${serverCode}: ${text}`,
    );
    this.command = named;
  }
}

/** Perl's Gearman::Server answers a packet type it has no handler for with the `die` text of the missing method. */
const PERL_NO_HANDLER = /^Can't locate object method "CMD_(\w*)"/;

/** The command Perl's text names (`CMD_work_data`: WORK_DATA); none for `CMD_`, a type it has no name for. */
function perlCommand(text: string): string | undefined {
  const name = PERL_NO_HANDLER.exec(text)?.[1];
  return name ? name.toUpperCase() : undefined;
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
