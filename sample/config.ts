/**
 * The sample's configuration, read from the environment:
 * - `GEARMAN_SERVERS`: comma-separated `host:port` list (default `127.0.0.1:4730`);
 * - `PORT`: the HTTP gateway's port (default 3000); `HOST`: its address (default 127.0.0.1).
 */
export const DEFAULT_GEARMAN_SERVERS = ['127.0.0.1:4730'];
export const DEFAULT_PORT = 3000;
export const DEFAULT_HOST = '127.0.0.1';

/**
 * The functions only Nest peers call (the gateway and the worker): they carry Nest's packet
 * metadata, and so the trace context of an app with OpenTelemetry, in the envelope (`sendMetadata`,
 * `readMetadata`). `text.upper` is not among them: plain Gearman clients call it.
 */
export const NEST_ONLY_FUNCTIONS = ['math.sum', 'report.generate', 'email.send', 'orders.validate'];

type Env = Record<string, string | undefined>;

export function gearmanServers(env: Env = process.env): string[] {
  const raw = env.GEARMAN_SERVERS?.trim();
  if (!raw) return [...DEFAULT_GEARMAN_SERVERS];
  const servers = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (servers.length === 0)
    throw new Error(`GEARMAN_SERVERS=${JSON.stringify(raw)} names no server: use e.g. 127.0.0.1:4730,127.0.0.1:4731`);
  return servers;
}

export function httpPort(env: Env = process.env): number {
  const raw = env.PORT?.trim();
  if (!raw) return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`PORT=${JSON.stringify(raw)} is not a TCP port (0-65535)`);
  return port;
}

export function httpHost(env: Env = process.env): string {
  return env.HOST?.trim() || DEFAULT_HOST;
}
