/**
 * Options of the embedded job server, their defaults and their checks.
 * For development and tests; production stays on gearmand.
 */
import { hostname } from 'node:os';
import { GearmanError } from '../protocol/errors.js';
import { DEFAULT_MAX_PACKET_SIZE } from '../protocol/packet-types.js';

/** gearmand's log levels, most severe first (`--verbose`, and what the admin `verbose` command answers). */
export const LOG_LEVELS = ['FATAL', 'ALERT', 'CRITICAL', 'ERROR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG'] as const;
export type GearmanServerLogLevel = (typeof LOG_LEVELS)[number];

export interface GearmanServerOptions {
  /**
   * Address to listen on (default `127.0.0.1`: loopback only). `0.0.0.0` or `::` listens on every
   * interface; this server has no authentication, so do that only on a trusted network.
   */
  host?: string;
  /** TCP port (default 4730); 0 picks a free one, then read `port` or `servers` on the result. */
  port?: number;
  /**
   * gearmand's `--job-retries`: a job whose worker went away (or timed out) this many times is
   * dropped and its clients get WORK_FAIL. 0 (default) retries forever, as gearmand 1.1.20.
   */
  jobRetries?: number;
  /** gearmand's `--worker-wakeup`: sleeping workers sent a NOOP per new job; 0 (default) wakes them all. */
  workerWakeup?: number;
  /** gearmand's `--round-robin`: a worker's functions take turns (default false: the last registered first). */
  roundRobin?: boolean;
  /**
   * Priority across all of a worker's functions, as gearmand 2.0.0 does (default false: 1.1.20
   * takes HIGH, then NORMAL, then LOW from the first function that has any job).
   */
  globalPriority?: boolean;
  /** gearmand's `--exceptions`: every connection gets WORK_EXCEPTION without asking (default false). */
  exceptions?: boolean;
  /** gearmand's `--job-handle-prefix` (default `H:<hostname>`); handles are `<prefix>:<n>`, cut at 63 bytes. */
  jobHandlePrefix?: string;
  /**
   * Wake sleeping workers with a NOOP when an epoch job falls due, as gearmand 2.0.0 does
   * (default true). `false` is gearmand 1.1.20, which wakes nobody: a worker learns of the job only
   * when it next GRABs (docs/gearmand-behaviour.md#waking-workers).
   */
  epochWakeup?: boolean;
  /**
   * What the one CAN_DO_TIMEOUT timer of a worker connection watches: `'first-job'` (default,
   * gearmand 1.1.20: the job it was started for, so a second job run back to back is never timed
   * out) or `'current-job'` (gearmand 2.0.0: the job most recently assigned). Either way it is
   * re-armed at each assignment, cleared by PRE_SLEEP, and requeues the job (docs/gearmand-behaviour.md#can_do_timeout).
   */
  canDoTimeout?: 'first-job' | 'current-job';
  /**
   * Jobs held at once, queued and running, across all functions (default 1,000,000). A submit
   * past it gets `ERROR QUEUE_ERROR`, as one past an admin `maxqueue` limit does. gearmand has no
   * such bound: this keeps the server's memory bounded.
   */
  maxQueue?: number;
  /** Payload bytes held at once across all jobs (default 1 GiB); past it, submits get `ERROR QUEUE_ERROR`. */
  maxQueueBytes?: number;
  /**
   * Largest packet payload accepted, in bytes (default 64 MiB, as the library's client). A packet
   * announcing more closes its connection. gearmand has no limit but its memory.
   */
  maxPacketSize?: number;
  /** What the admin `version` command answers after `OK ` (default `1.1.20+embedded`). */
  version?: string;
  /** Log level: what `verbose` answers, and the lines passed to `log` (default `ERROR`). */
  verbose?: GearmanServerLogLevel;
  /** Receives every log line at or above `verbose` (default: none are written). */
  log?: (level: GearmanServerLogLevel, message: string) => void;
  /** Listen backlog (gearmand's `--backlog`, default 32). */
  backlog?: number;
}

export interface ResolvedServerOptions {
  readonly host: string;
  readonly port: number;
  readonly jobRetries: number;
  readonly workerWakeup: number;
  readonly roundRobin: boolean;
  readonly globalPriority: boolean;
  readonly exceptions: boolean;
  readonly jobHandlePrefix: string;
  readonly epochWakeup: boolean;
  readonly canDoTimeout: 'first-job' | 'current-job';
  readonly maxQueue: number;
  readonly maxQueueBytes: number;
  readonly maxPacketSize: number;
  readonly version: string;
  readonly verbose: GearmanServerLogLevel;
  readonly log: ((level: GearmanServerLogLevel, message: string) => void) | undefined;
  readonly backlog: number;
}

export const SERVER_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 4730,
  jobRetries: 0,
  workerWakeup: 0,
  roundRobin: false,
  globalPriority: false,
  exceptions: false,
  epochWakeup: true,
  canDoTimeout: 'first-job' as const,
  maxQueue: 1_000_000,
  maxQueueBytes: 1024 * 1024 * 1024,
  maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
  version: '1.1.20+embedded',
  verbose: 'ERROR' as const,
  backlog: 32,
});

function invalid(message: string): GearmanError {
  return new GearmanError('INVALID_ARGUMENT', `startGearmanServer: ${message}`);
}

function wholeNumber(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function flag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalid(`${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

export function resolveServerOptions(options: GearmanServerOptions = {}): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
  const d = SERVER_DEFAULTS;
  const host = options.host ?? d.host;
  if (typeof host !== 'string' || host === '')
    throw invalid(`host must be a non-empty string, got ${JSON.stringify(host)}`);
  const verbose = options.verbose ?? d.verbose;
  if (!LOG_LEVELS.includes(verbose))
    throw invalid(`verbose must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(verbose)}`);
  const canDoTimeout = options.canDoTimeout ?? d.canDoTimeout;
  if (canDoTimeout !== 'first-job' && canDoTimeout !== 'current-job') {
    throw invalid(`canDoTimeout must be 'first-job' or 'current-job', got ${JSON.stringify(canDoTimeout)}`);
  }
  const prefix = options.jobHandlePrefix ?? `H:${hostname()}`;
  if (typeof prefix !== 'string' || prefix.includes('\0')) {
    throw invalid(`jobHandlePrefix must be a string without NUL, got ${JSON.stringify(prefix)}`);
  }
  const version = options.version ?? d.version;
  if (typeof version !== 'string' || /[\r\n]/.test(version)) throw invalid('version must be one line of text');
  if (options.log !== undefined && typeof options.log !== 'function') throw invalid('log must be a function');
  return {
    host,
    port: wholeNumber('port', options.port, d.port, 0, 65535),
    jobRetries: wholeNumber('jobRetries', options.jobRetries, d.jobRetries, 0, 2 ** 31 - 1),
    workerWakeup: wholeNumber('workerWakeup', options.workerWakeup, d.workerWakeup, 0, 2 ** 31 - 1),
    roundRobin: flag('roundRobin', options.roundRobin, d.roundRobin),
    globalPriority: flag('globalPriority', options.globalPriority, d.globalPriority),
    exceptions: flag('exceptions', options.exceptions, d.exceptions),
    jobHandlePrefix: prefix,
    epochWakeup: flag('epochWakeup', options.epochWakeup, d.epochWakeup),
    canDoTimeout,
    maxQueue: wholeNumber('maxQueue', options.maxQueue, d.maxQueue, 1, Number.MAX_SAFE_INTEGER),
    maxQueueBytes: wholeNumber('maxQueueBytes', options.maxQueueBytes, d.maxQueueBytes, 1, Number.MAX_SAFE_INTEGER),
    maxPacketSize: wholeNumber('maxPacketSize', options.maxPacketSize, d.maxPacketSize, 1024, 0xffffffff),
    version,
    verbose,
    log: options.log,
    backlog: wholeNumber('backlog', options.backlog, d.backlog, 1, 65535),
  };
}
