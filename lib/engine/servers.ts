import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { isIPv6 } from 'node:net';
import { invalidArgument } from './errors.js';

export const DEFAULT_PORT = 4730;

/**
 * A gearmand address: `'host'`, `'host:port'`, `'[::1]'`, `'[::1]:4730'` or `{ host, port }` (an IPv6
 * host without brackets there). Ports are decimal, 1 to 65535, default 4730; anything else is refused.
 */
export type ServerSpec = string | ServerAddress;

export interface ServerAddress {
  host: string;
  port?: number;
  /** TLS for this server (`true` for defaults, or node:tls options). */
  tls?: boolean | TlsConnectionOptions;
}

export interface ResolvedServer {
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsConnectionOptions;
  /** `host:port`: the server's name in events, errors and admin results. */
  readonly address: string;
}

/**
 * How a server may be written, shown in every error about one. Parsing is strict: what is not one
 * of these forms is refused with what is wrong, never guessed at (`'::1'` is not host `:` port 1).
 */
const FORMS =
  `accepted forms: "host", "host:port", "[IPv6]", "[IPv6]:port" or { host, port } (port a decimal ` +
  `number from 1 to 65535, default ${DEFAULT_PORT}; host a name or IPv4 address, or an IPv6 address in brackets)`;

/** Host names (RFC 1123 labels, `_` allowed as container names use it, a trailing dot for FQDNs) and IPv4. */
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;
/** A decimal port without sign, spaces or leading zeros (`04730` might be meant as octal). */
const PORT = /^[1-9][0-9]{0,4}$/;

/** Normalises server specs; `tls` given here applies to every server that does not set its own. */
export function resolveServers(
  specs: ServerSpec | readonly ServerSpec[] | undefined,
  tls?: boolean | TlsConnectionOptions,
): ResolvedServer[] {
  const list = specs === undefined ? ['127.0.0.1'] : Array.isArray(specs) ? specs : [specs as ServerSpec];
  if (list.length === 0) throw invalidArgument('No Gearman server given: pass `servers`, e.g. ["127.0.0.1:4730"]');
  const seen = new Set<string>();
  return list.map((spec) => {
    const s = parseSpec(spec);
    const address = s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
    if (seen.has(address)) throw invalidArgument(`Gearman server ${address} is listed twice`);
    seen.add(address);
    const t = s.tls ?? tls;
    return { host: s.host, port: s.port, address, tls: t ? (t === true ? {} : t) : undefined };
  });
}

function parseSpec(spec: unknown): ServerAddress & { port: number } {
  if (typeof spec === 'string') return parseAddress(spec);
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw invalid(spec, `a server is a string or an object, got ${spec === null ? 'null' : typeof spec}`);
  }
  const s = spec as ServerAddress;
  const shown = { host: s.host, port: s.port };
  if (typeof s.host !== 'string') throw invalid(shown, 'host must be a string');
  if (!isIPv6(s.host)) {
    if (s.host.startsWith('[')) throw invalid(shown, 'give an IPv6 host without brackets in the object form');
    checkHost(s.host, shown);
  }
  const port = s.port ?? DEFAULT_PORT;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(shown, `port must be a whole number from 1 to 65535, got ${String(port)}`);
  }
  return { ...s, port };
}

function parseAddress(text: string): ServerAddress & { port: number } {
  if (text.trim() !== text) throw invalid(text, 'remove the surrounding spaces or line breaks');
  if (text === '') throw invalid(text, 'the host is missing');
  if (text.includes('://')) throw invalid(text, 'give the address without a URL scheme (e.g. "host:4730")');
  let host: string;
  let port: string | undefined;
  if (text.startsWith('[')) {
    const v6 = /^\[([^\]]*)\](?::(.*))?$/s.exec(text);
    if (!v6) throw invalid(text, 'expected "[IPv6]" or "[IPv6]:port"');
    if (!isIPv6(v6[1])) throw invalid(text, `${JSON.stringify(v6[1])} in brackets is not an IPv6 address`);
    host = v6[1];
    port = v6[2];
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) {
      throw invalid(
        text,
        isIPv6(text) ? `write an IPv6 address in brackets: "[${text}]" or "[${text}]:4730"` : 'too many colons',
      );
    }
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    port = colon < 0 ? undefined : text.slice(colon + 1);
    checkHost(host, text);
  }
  if (port === undefined) return { host, port: DEFAULT_PORT };
  if (!PORT.test(port) || Number(port) > 65535) {
    throw invalid(text, `the port ${JSON.stringify(port)} is not a decimal number from 1 to 65535`);
  }
  return { host, port: Number(port) };
}

function checkHost(host: string, spec: unknown): void {
  if (host === '') throw invalid(spec, 'the host is missing');
  if (host.length > 253 || !HOST_NAME.test(host)) {
    throw invalid(spec, `${JSON.stringify(host)} is not a host name or IPv4 address`);
  }
}

function invalid(spec: unknown, what: string): Error {
  return invalidArgument(`Invalid Gearman server ${JSON.stringify(spec) ?? String(spec)}: ${what}; ${FORMS}`);
}
