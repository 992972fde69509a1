/**
 * ClientGearman's and ServerGearman's connection logs against real servers: connects, a lost
 * connection with its reason, reconnects, a server the heartbeat declared dead; the app's logger
 * (and `logger: false` on the app) followed when no logger is given.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { lastValueFrom } from 'rxjs';
import { ClientGearman } from '../../lib/index.js';
import { CapturingLogger, useGearmand, useResources } from '../support/harness.js';
import { eventually } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

@Module({})
class EmptyModule {}

describe('ClientGearman logs', () => {
  it('connects (log), a lost connection (warn) and reconnects (log, then debug)', async () => {
    const logger = new CapturingLogger();
    const client = res.clientProxy({ logger, reconnect: { initialDelay: 50, maxDelay: 100 } });
    await client.connect();
    expect(logger.find('log', /Connected to gearmand at /)).toEqual([`Connected to gearmand at ${gearmand.address}`]);

    await gearmand.server.stop();
    expect(await logger.waitFor('warn', /Lost the connection to gearmand at /)).toContain(gearmand.address);
    await logger.waitFor(
      'log',
      new RegExp(`Reconnecting to gearmand at ${gearmand.address} in \\d+ ms \\(attempt 1\\)`),
    );
    await logger.waitFor('debug', /\(attempt 2\)/);

    await gearmand.server.restart();
    await eventually(() => logger.find('log', /Connected to gearmand at /).length === 2, 10_000, 'a second connect');
  });

  it('a server the heartbeat declares dead: a warning that says so', async () => {
    const silent = await res.silentServer();
    const logger = new CapturingLogger();
    const client = res.clientProxy({
      servers: [silent.address],
      logger,
      heartbeat: { interval: 100, timeout: 200 },
      reconnect: { initialDelay: 1000, maxDelay: 1000 },
    });
    await client.connect();
    expect(await logger.waitFor('warn', /Lost the connection/, 5000)).toMatch(/declared dead/);
  });

  it("without a logger option, writes through the app's logger; logger: false on the app silences it", async () => {
    const appLogger = new CapturingLogger();
    const app = await NestFactory.createApplicationContext(EmptyModule, { logger: appLogger });
    res.defer(() => app.close());
    const client = res.clientProxy({ logger: undefined }); // Nest's default Logger, not the harness's
    await client.connect();
    expect(appLogger.find('log', /Connected to gearmand at /)).toHaveLength(1);

    const quiet = await NestFactory.createApplicationContext(EmptyModule, { logger: false });
    res.defer(() => quiet.close());
    const silenced = new ClientGearman({ servers: [gearmand.address] });
    res.defer(() => silenced.close());
    await lastValueFrom(silenced.emit('logs.nothing', 1));
    expect(appLogger.find('log', /Connected to gearmand at /)).toHaveLength(1);
  });
});

describe('ServerGearman logs', () => {
  it('connects, and a lost connection, as the client does', async () => {
    const { logger } = await res.microservice({});
    expect(logger.find('log', /Connected to gearmand at /)).toEqual([`Connected to gearmand at ${gearmand.address}`]);
    await gearmand.server.stop();
    expect(await logger.waitFor('warn', /Lost the connection to gearmand at /)).toContain(gearmand.address);
  });
});
