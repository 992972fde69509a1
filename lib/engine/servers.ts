import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { invalidArgument } from './errors.js';

export const DEFAULT_PORT = 4730;

/** A gearmand address: `'host'`, `'host:port'`, `'[::1]:4730'` or an object. */
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

/** Normalises server specs; `tls` given here applies to every server that does not set its own. */
export function resolveServers(
  specs: ServerSpec | readonly ServerSpec[] | undefined,
  tls?: boolean | TlsConnectionOptions,
): ResolvedServer[] {
  const list = specs === undefined ? ['127.0.0.1'] : Array.isArray(specs) ? specs : [specs as ServerSpec];
  if (list.length === 0) throw invalidArgument('No Gearman server given: pass `servers`, e.g. ["127.0.0.1:4730"]');
  const seen = new Set<string>();
  return list.map((spec) => {
    const s = typeof spec === 'string' ? parseAddress(spec) : { ...spec };
    const port = s.port ?? DEFAULT_PORT;
    if (!s.host || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw invalidArgument(
        `Invalid Gearman server ${JSON.stringify(spec)}: expected "host:port" with a port from 1 to 65535`,
      );
    }
    const address = s.host.includes(':') ? `[${s.host}]:${port}` : `${s.host}:${port}`;
    if (seen.has(address)) throw invalidArgument(`Gearman server ${address} is listed twice`);
    seen.add(address);
    const t = s.tls ?? tls;
    return { host: s.host, port, address, tls: t ? (t === true ? {} : t) : undefined };
  });
}

function parseAddress(text: string): ServerAddress {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { host: v6[1], port: v6[2] ? Number(v6[2]) : undefined };
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { host: text };
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}
