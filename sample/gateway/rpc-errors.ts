import { BadGatewayException, GatewayTimeoutException, HttpException, HttpStatus, ServiceUnavailableException } from '@nestjs/common';
import { GearmanError } from 'nestjs-gearman';

/**
 * Turns what a Gearman call failed with into an HTTP error:
 * - a worker's `RpcException({ code, message })` arrives as that plain object: `INVALID` becomes
 *   422 and `BAD_REQUEST` 400, with the object as the response body;
 * - no reachable gearmand: 503; a job that took too long: 504;
 * - a plain WORK_FAIL (e.g. a handler with `errorMode: 'fail'`) or anything else: 502.
 */
export function toHttpException(err: unknown, fn: string): HttpException {
  if (err instanceof HttpException) return err;
  if (err instanceof GearmanError) {
    const body = { code: err.code, message: err.message };
    switch (err.code) {
      case 'NO_SERVER':
      case 'CONNECT_TIMEOUT':
      case 'CONNECTION_LOST':
      case 'CLOSED':
        return new ServiceUnavailableException(body);
      case 'TIMEOUT':
      case 'CANCELLED':
        return new GatewayTimeoutException(body);
      default:
        return new BadGatewayException(body);
    }
  }
  if (isRpcError(err)) {
    if (err.code === 'INVALID') return new HttpException(err, HttpStatus.UNPROCESSABLE_ENTITY);
    if (err.code === 'BAD_REQUEST') return new HttpException(err, HttpStatus.BAD_REQUEST);
    return new BadGatewayException(err);
  }
  const message = err instanceof Error ? err.message : `${fn} failed`;
  return new BadGatewayException({ code: 'GEARMAN_ERROR', message });
}

/** The plain object an `RpcException({ code, message })` thrown by a worker arrives as. */
function isRpcError(err: unknown): err is { code: string; message: string } {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && typeof (err as { message?: unknown }).message === 'string';
}
