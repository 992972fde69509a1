/**
 * nestjs-gearman/testing as a user's test suite uses it: a private server per suite (embedded, or
 * a real gearmand), a Nest testing module wired to it, a round trip, and the port freed at close.
 */
import 'reflect-metadata';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { createConnection } from 'node:net';
import { lastValueFrom } from 'rxjs';
import { ClientGearman, ServerGearman } from '../lib/index.js';
import { startTestServer, type TestServer } from '../lib/testing/index.js';

@Controller()
class EchoController {
  @MessagePattern('testing.double')
  double(@Payload() n: number): number {
    return n * 2;
  }
}

function refused(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = createConnection({ host, port: Number(port) }, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe.each(['embedded', 'gearmand'] as const)('startTestServer (%s)', (kind) => {
  let server: TestServer;
  let app: INestMicroservice;
  let client: ClientGearman;

  beforeAll(async () => {
    server = await startTestServer({ server: kind });
    const moduleRef = await Test.createTestingModule({ controllers: [EchoController] }).compile();
    app = moduleRef.createNestMicroservice({ strategy: new ServerGearman({ servers: server.servers, logger: false }) });
    await app.listen();
    client = new ClientGearman({ servers: server.servers });
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await server?.close();
  });

  it('serves a Nest worker and client on a private loopback port', async () => {
    expect(server.kind).toBe(kind);
    expect(server.servers).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
    expect(await lastValueFrom(client.send<number>('testing.double', 21))).toBe(42);
  });

  it('frees its port at close', async () => {
    const extra = await startTestServer({ server: kind });
    await extra.close();
    expect(await refused(extra.servers[0])).toBe(true);
  });
});

it('says what to do when gearmand is not installed', async () => {
  await expect(startTestServer({ server: 'gearmand', gearmand: '/nonexistent/gearmand' })).rejects.toMatchObject({
    code: 'NO_SERVER',
    message: expect.stringContaining("server: 'embedded'"),
  });
});
