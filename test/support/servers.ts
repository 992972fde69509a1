import { createServer, type Server, type Socket } from 'node:net';

/**
 * Servers for tests: the real gearmand (gearmand.ts), a silent TCP server, free ports.
 * Raw peers that speak the protocol are in raw-connection.ts, hostile-server.ts and fault-proxy.ts.
 */
export { adminLine, freePort, Gearmand, type GearmandOptions, TEST_SERVER } from './gearmand.js';

/** Listens on a free loopback port (the kernel picks it) and resolves with that port. */
export function listenOnLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

export interface SilentServer {
  /** `127.0.0.1:port`, as the library's `servers` option takes it. */
  readonly address: string;
  readonly port: number;
  /** Every connection accepted so far, in order (closed ones included). */
  readonly connections: Socket[];
  /** The next connection to be accepted. */
  nextConnection(): Promise<Socket>;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * A TCP server on loopback that accepts connections and never says a word. It reads and drops
 * everything, so a peer's FIN is seen and closing is quick.
 */
export async function silentServer(): Promise<SilentServer> {
  const connections: Socket[] = [];
  const waiters: Array<(socket: Socket) => void> = [];
  const server = createServer((socket) => {
    connections.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
    waiters.shift()?.(socket);
  });
  const port = await listenOnLoopback(server);
  return {
    address: `127.0.0.1:${port}`,
    port,
    connections,
    nextConnection: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
