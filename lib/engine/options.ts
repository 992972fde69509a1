import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { DEFAULT_MAX_PACKET_SIZE, type Packet } from '../protocol/packet-types.js';
import { type BackoffOptions, DEFAULT_BACKOFF } from './backoff.js';
import { invalidArgument } from './errors.js';
import { type ResolvedServer, resolveServers, type ServerSpec } from './servers.js';

/** What every engine role (client, worker, admin) sets about its servers and sockets. */
export interface ConnectionOptions {
  /** gearmand servers: `'host:port'` strings or objects (default `127.0.0.1:4730`). */
  servers?: ServerSpec | ServerSpec[];
  /** TLS for every server that does not set its own (node:tls options, or `true`). */
  tls?: boolean | TlsConnectionOptions;
  /** Milliseconds to wait for a TCP (and TLS) connection (default 5000). */
  connectTimeout?: number;
  /** Reconnect backoff, or `false` to stay down after a loss (default 100 ms doubling to 10 s, 20 % jitter). */
  reconnect?: BackoffOptions | false;
  /**
   * Largest packet accepted from a server, in bytes (default 64 MiB), and the largest a client
   * submits or a worker sends as a result. A larger one costs one job, never the connection: a
   * worker fails a job above it without running it, a client fails the job whose result is above
   * it, submits and results above it are refused before sending (README, "Oversized jobs and packets").
   */
  maxPacketSize?: number;
  /** Bytes buffered for a socket above which producers hold back (default 1 MiB). */
  highWaterMark?: number;
  /**
   * Bound on a connection's outgoing bytes (queued packets plus the socket's buffer), default
   * 32 MiB: a submit that would go past it fails at once with BACKPRESSURE (the server is not
   * reading fast enough) instead of queueing without limit. A single packet larger than the bound
   * is still sent when nothing else is queued. At least `highWaterMark`.
   */
  maxOutgoing?: number;
  /**
   * Liveness check (default `{ interval: 1000, timeout: 2000 }`): after `interval` ms in which no
   * byte arrived (and no queued byte left for the server), an ECHO_REQ goes out; when nothing at all
   * arrives in the `timeout` ms after it, the connection is declared dead (`dead` event, CONNECTION_LOST)
   * and reconnected with backoff. A frozen server is found within interval + timeout to
   * 2 x interval + timeout. `false` turns it off (a silent server then keeps its connection).
   */
  heartbeat?: HeartbeatOptions | false;
  /** TCP keep-alive: delay in ms before the first probe, or `false` for none (default 30 000). */
  keepAlive?: number | false;
  /** SET_CLIENT_ID on every connection, shown by `gearadmin --workers` (sent again after each reconnect). */
  clientId?: string;
  /**
   * Sees every packet of every connection, for debugging: `out` as it is queued for the next write
   * (heartbeat ECHOs included), `in` before it is handled. Packets above `maxPacketSize` are skipped
   * unread and not seen. It must not throw (an `error` event reports it if it does) nor keep the
   * packets it does not copy: their buffers may be views of the read buffer. Costs nothing when unset.
   */
  tap?: PacketTap;
}

/** What {@link ConnectionOptions.tap} is called with. */
export interface PacketTapEvent {
  readonly direction: 'in' | 'out';
  /** `host:port` of the server. */
  readonly server: string;
  /** The packet, typed as the protocol layer decodes it (`nestjs-gearman/protocol`: PacketType, packetName). */
  readonly packet: Packet;
}

/** See {@link ConnectionOptions.tap}. */
export type PacketTap = (event: PacketTapEvent) => void;

/** See {@link ConnectionOptions.heartbeat}. */
export interface HeartbeatOptions {
  /** Milliseconds without a byte from the server before an ECHO_REQ is sent (default 1000). */
  interval?: number;
  /** Milliseconds the server has, after that ECHO_REQ, to send anything at all (default 2000). */
  timeout?: number;
}

/** The engine's defaults, in one place. */
export const ENGINE_DEFAULTS = Object.freeze({
  servers: '127.0.0.1',
  connectTimeout: 5000,
  reconnect: DEFAULT_BACKOFF,
  maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
  highWaterMark: 1024 * 1024,
  /** 4x the bench's W3 (8 x 1 MiB in flight), 12x its W2 burst (20,000 background submits at once, ~2.6 MB). */
  maxOutgoing: 32 * 1024 * 1024,
  heartbeat: Object.freeze({ interval: 1000, timeout: 2000 }),
  keepAlive: 30_000,
  /** Client: milliseconds to wait for JOB_CREATED. */
  submitTimeout: 10_000,
  /** Client: resubmits after a lost connection with `retry: true`. */
  retries: 3,
  /** Worker: jobs run at once across all servers. */
  maxJobs: 1,
  /** Worker: milliseconds between safety GRABs while asleep. */
  pollInterval: 5000,
  /** Worker: milliseconds `close()` waits for running jobs. */
  closeTimeout: 10_000,
  /** Admin: milliseconds allowed for each reply. */
  commandTimeout: 5000,
} as const);

/** What one connection needs to know, with every default applied. */
export interface SocketSettings {
  readonly connectTimeout: number;
  readonly reconnect: Required<BackoffOptions> | false;
  readonly maxPacketSize: number;
  readonly highWaterMark: number;
  readonly maxOutgoing: number;
  readonly heartbeat: Readonly<Required<HeartbeatOptions>> | false;
  readonly keepAlive: number | false;
  readonly tap: PacketTap | undefined;
}

export interface ResolvedConnectionOptions extends SocketSettings {
  readonly servers: readonly ResolvedServer[];
  readonly clientId: string | undefined;
}

/** Applies the defaults and checks every value, so a bad option fails here with INVALID_ARGUMENT. */
export function resolveConnectionOptions(options: ConnectionOptions = {}): ResolvedConnectionOptions {
  const reconnect = options.reconnect === false ? false : { ...DEFAULT_BACKOFF, ...options.reconnect };
  if (options.tap !== undefined && typeof options.tap !== 'function') {
    throw invalidArgument(`tap must be a function (event) => void, got ${typeof options.tap}`);
  }
  if (options.clientId !== undefined && (typeof options.clientId !== 'string' || options.clientId.includes('\0'))) {
    throw invalidArgument(`clientId must be a string without NUL bytes, got ${JSON.stringify(options.clientId)}`);
  }
  const keepAlive = options.keepAlive ?? ENGINE_DEFAULTS.keepAlive;
  const highWaterMark = positiveInt(
    'highWaterMark',
    options.highWaterMark,
    ENGINE_DEFAULTS.highWaterMark,
    Number.MAX_SAFE_INTEGER,
  );
  return {
    servers: resolveServers(options.servers ?? ENGINE_DEFAULTS.servers, options.tls),
    connectTimeout: positiveInt('connectTimeout', options.connectTimeout, ENGINE_DEFAULTS.connectTimeout),
    reconnect,
    maxPacketSize: positiveInt('maxPacketSize', options.maxPacketSize, ENGINE_DEFAULTS.maxPacketSize, 0xffffffff),
    highWaterMark,
    maxOutgoing: positiveInt(
      'maxOutgoing',
      options.maxOutgoing,
      Math.max(ENGINE_DEFAULTS.maxOutgoing, highWaterMark),
      Number.MAX_SAFE_INTEGER,
      highWaterMark,
    ),
    heartbeat: resolveHeartbeat(options.heartbeat),
    keepAlive:
      keepAlive === false ? false : positiveInt('keepAlive', keepAlive, ENGINE_DEFAULTS.keepAlive, MAX_TIMER, 0),
    clientId: options.clientId,
    tap: options.tap,
  };
}

function resolveHeartbeat(heartbeat: HeartbeatOptions | false | undefined): Required<HeartbeatOptions> | false {
  if (heartbeat === false) return false;
  if (heartbeat !== undefined && (typeof heartbeat !== 'object' || heartbeat === null)) {
    throw invalidArgument(`heartbeat must be { interval, timeout } (ms) or false, got ${String(heartbeat)}`);
  }
  const d = ENGINE_DEFAULTS.heartbeat;
  return Object.freeze({
    interval: positiveInt('heartbeat.interval', heartbeat?.interval, d.interval),
    timeout: positiveInt('heartbeat.timeout', heartbeat?.timeout, d.timeout),
  });
}

/** Node's timers take at most 2^31 - 1 ms; a larger value would fire at once. */
export const MAX_TIMER = 2 ** 31 - 1;

/** `value` (or `fallback` when undefined) as a whole number in [min, max]; anything else is INVALID_ARGUMENT. */
export function positiveInt(
  name: string,
  value: number | undefined,
  fallback: number,
  max = MAX_TIMER,
  min = 1,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${name} must be a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** A duration where 0 means "none" (a close drain, an optional deadline): whole ms from 0 to 2^31 - 1. */
export function optionalMs(name: string, value: number | undefined, fallback: number): number {
  return positiveInt(name, value, fallback, MAX_TIMER, 0);
}
