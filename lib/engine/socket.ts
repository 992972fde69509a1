import { isIP, connect as netConnect, type OnReadOpts, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { GearmanConnectionError } from './errors.js';
import type { SocketSettings } from './options.js';
import type { ResolvedServer } from './servers.js';

/** Where TCP reads land (`onread`): no stream machinery, no buffer per read. TLS sockets ignore it. */
export type ReadInto = OnReadOpts;

/**
 * Opens the socket to one server, the one way every connection of the engine does it (binary and
 * admin): TCP or TLS (SNI for host names only), TCP_NODELAY, keep-alive as configured, and a
 * connect timeout that destroys the socket with CONNECT_TIMEOUT. `onOpen` runs once the socket is
 * usable (after the TLS handshake for TLS); errors and close are the caller's to listen to.
 */
export function openSocket(
  server: ResolvedServer,
  settings: Pick<SocketSettings, 'connectTimeout' | 'keepAlive'>,
  onOpen: (socket: Socket) => void,
  onread?: ReadInto,
): Socket {
  const { host, port, tls } = server;
  const socket: Socket = tls
    ? tlsConnect({ host, port, servername: isIP(host) === 0 ? host : undefined, ...tls })
    : netConnect(onread ? { host, port, onread } : { host, port });
  socket.setNoDelay(true);
  if (settings.keepAlive !== false) socket.setKeepAlive(true, settings.keepAlive);
  const timer = setTimeout(() => {
    socket.destroy(
      new GearmanConnectionError(
        'CONNECT_TIMEOUT',
        `Connecting to gearmand at ${server.address} timed out after ${settings.connectTimeout} ms: check that gearmand runs there and is reachable`,
        server.address,
      ),
    );
  }, settings.connectTimeout);
  socket.once(tls ? 'secureConnect' : 'connect', () => {
    clearTimeout(timer);
    onOpen(socket);
  });
  socket.once('close', () => clearTimeout(timer));
  return socket;
}
