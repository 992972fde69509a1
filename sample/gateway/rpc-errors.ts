import {
  BadGatewayException,
  GatewayTimeoutException,
  HttpException,
  HttpStatus,
  ServiceUnavailableException,
} from '@nestjs/common';
import { GearmanError, GearmanRpcError } from 'nestjs-gearman';

/**
 * Turns what a Gearman call failed with into an HTTP error:
 * - a worker's `RpcException({ code, message })` arrives as a GearmanRpcError holding that object:
 *   `INVALID` becomes 422 and `BAD_REQUEST` 400, with the object as the response body;
 * - no reachable gearmand: 503; a job that took too long: 504;
 * - a plain WORK_FAIL (e.g. a handler with `errorMode: 'fail'`) or anything else: 502.
 */
export function toHttpException(err: unknown, fn: string): HttpException {
  if (err instanceof HttpException) return err;
  if (err instanceof GearmanRpcError) {
    if (err.error.code === 'INVALID') return new HttpException(err.error, HttpStatus.UNPROCESSABLE_ENTITY);
    if (err.error.code === 'BAD_REQUEST') return new HttpException(err.error, HttpStatus.BAD_REQUEST);
    return new BadGatewayException(err.error);
  }
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
  const message = err instanceof Error ? err.message : `${fn} failed`;
  return new BadGatewayException({ code: 'GEARMAN_ERROR', message });
}
