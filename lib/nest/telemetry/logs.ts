import type { EventEmitter } from 'node:events';
import { Logger, type LoggerService } from '@nestjs/common';

const silentLogger: LoggerService = { log: () => undefined, error: () => undefined, warn: () => undefined };

/**
 * A transport's logger: the one given, none for `false`, else Nest's Logger under the class's
 * name, which writes through the app's logger and its log levels (`NestFactory.create(..., { logger })`,
 * `app.useLogger()`).
 */
export function transportLogger(option: LoggerService | false | undefined, context: string): LoggerService {
  return option === false ? silentLogger : (option ?? new Logger(context));
}

/**
 * Logs what happens to the connections of an engine client or worker: connects (log), lost
 * connections with the reason (warn: a server the heartbeat declared dead says so in it),
 * the first reconnect attempt of a server (log) and the later ones (debug), errors gearmand
 * reported (warn).
 */
export function logConnections(source: EventEmitter, logger: LoggerService): void {
  source.on('connected', (server: string) => logger.log(`Connected to gearmand at ${server}`));
  // Without an error it is close() (no news).
  source.on('disconnected', (server: string, error: Error | undefined) => {
    if (error !== undefined) logger.warn?.(`Lost the connection to gearmand at ${server}: ${error.message}`);
  });
  source.on('reconnecting', (server: string, attempt: number, delay: number) => {
    const line = `Reconnecting to gearmand at ${server} in ${delay} ms (attempt ${attempt})`;
    if (attempt === 1) logger.log(line);
    else logger.debug?.(line);
  });
  source.on('error', (error: Error) => logger.warn?.(`gearmand: ${error.message}`));
}
