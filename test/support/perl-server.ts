import { join } from 'node:path';
import { freePort, ServerProcess } from './gearmand.js';

/**
 * Test helper: Perl's Gearman::Server (Debian package `gearman-server`, the server gearmand grew
 * from) on a free loopback port, with its own pid file in a temp dir, stopped by PID. Shaped like
 * Gearmand (gearmand.ts) so that the tests in test/perl read like the others.
 */
export interface PerlServerOptions {
  /** Port to listen on; a free one by default. */
  port?: number;
  /** Milliseconds to wait for the server to answer (default 10 s). */
  startTimeout?: number;
}

/**
 * The Perl server's script (Debian installs it as /usr/bin/gearmand; the C gearmand is
 * /usr/sbin/gearmand): jest.config.js sets `GEARMAN_PERL_SERVER` (scripts/setup.mjs finds it).
 */
export function perlServerPath(): string {
  const path = process.env.GEARMAN_PERL_SERVER;
  if (path) return path;
  throw new Error(
    "Perl's Gearman::Server is not installed (or GEARMAN_PERL_SERVER is not set: run the tests through Jest, " +
      'whose jest.config.js finds it): the tests in test/perl need it. Install the Debian package with ' +
      '`apt-get update && apt-get install -y gearman-server`, or set GEARMAN_PERL_SERVER to its gearmand script.',
  );
}

export class PerlServer extends ServerProcess {
  private constructor(port: number) {
    super(port, 'perl-gearmand-test-');
  }

  /** Starts the server and resolves once it answers `version`. */
  static async start(options: PerlServerOptions = {}): Promise<PerlServer> {
    const script = perlServerPath();
    const server = new PerlServer(options.port ?? (await freePort()));
    await server.launch({
      name: "Perl's gearmand",
      bin: 'perl',
      args: [script, '-L', server.host, '-p', String(server.port), '--pidfile', join(server.dir, 'gearmand.pid')],
      // Its `version` answers the bare version (`v1.130.1`), without gearmand's `OK `.
      ready: (version) => /^v?\d+\.\d+/.test(version),
      startTimeout: options.startTimeout,
    });
    return server;
  }
}
