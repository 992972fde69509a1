/**
 * Log lines of the embedded server, filtered by gearmand's levels.
 * For development and tests; production stays on gearmand.
 */
import { LOG_LEVELS, type GearmanServerLogLevel } from './options.js';

export type LogFn = (level: GearmanServerLogLevel, message: string) => void;

/** A log function that passes on the lines at or above `verbose` to `sink`, or drops everything. */
export function makeLog(verbose: GearmanServerLogLevel, sink: LogFn | undefined): LogFn {
  if (sink === undefined) return () => undefined;
  const max = LOG_LEVELS.indexOf(verbose);
  return (level, message) => {
    if (LOG_LEVELS.indexOf(level) <= max) sink(level, message);
  };
}

/** A line as gearmand writes its log: level, local time, message. */
export function formatLogLine(level: GearmanServerLogLevel, message: string, now = new Date()): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const time =
    `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ` +
    `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}.${pad(now.getMilliseconds(), 3)}`;
  return `${level.padEnd(7)} ${time} [embedded] ${message}\n`;
}
