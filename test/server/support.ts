/**
 * Test helpers for the embedded job server: the two servers to compare (a private gearmand, the
 * embedded one in this process), and scope hooks for wires and servers.
 */
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import { type GearmanServer, type GearmanServerOptions, startGearmanServer } from '../../lib/server/index.js';
import { Gearmand } from '../support/servers.js';
import { Wire } from './wire.js';

/** A server under test: its port, and how to stop it. */
export interface ServerUnderTest {
  readonly kind: 'gearmand' | 'embedded';
  readonly port: number;
  readonly address: string;
  stop(): Promise<void>;
}

/** A fresh private gearmand (whatever GEARMAN_TEST_SERVER says). */
export async function startGearmand(args: string[] = []): Promise<ServerUnderTest> {
  const g = await Gearmand.start({ server: 'gearmand', args });
  return { kind: 'gearmand', port: g.port, address: g.address, stop: () => g.dispose() };
}

/** A fresh embedded server in this process. */
export async function startEmbedded(
  options: GearmanServerOptions = {},
): Promise<ServerUnderTest & { server: GearmanServer }> {
  const server = await startGearmanServer({ port: 0, ...options });
  return { kind: 'embedded', port: server.port, address: server.servers[0], server, stop: () => server.close() };
}

/** Wires opened through `open`, closed after each test. */
export function useWires(): { open(port: number): Promise<Wire> } {
  const wires: Wire[] = [];
  afterEach(() => {
    for (const w of wires.splice(0)) w.close();
  });
  return {
    async open(port) {
      const w = await Wire.open(port);
      wires.push(w);
      return w;
    },
  };
}

/** An embedded server for the calling scope (started in beforeAll, closed in afterAll). */
export function useEmbedded(options: GearmanServerOptions = {}): {
  readonly port: number;
  readonly server: GearmanServer;
} {
  let started: GearmanServer | undefined;
  beforeAll(async () => {
    started = await startGearmanServer({ port: 0, ...options });
  });
  afterAll(async () => {
    await started?.close();
  });
  return {
    get port() {
      return started!.port;
    },
    get server() {
      return started!;
    },
  };
}

/** The admin replies' parts that differ between servers by nature: socket numbers, pid, version. */
export function normalize(units: string[]): string[] {
  return units.map((u) =>
    u
      .replace(/^T:\d+ (\S+) /, 'T:FD $1 ')
      .replace(/^T:OK \d+\n$/, 'T:OK <pid>\n')
      .replace(/^T:OK \d+\.\d+\.\d+\S*\n$/, 'T:OK <version>\n'),
  );
}
