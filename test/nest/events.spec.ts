/**
 * `on()` of ServerGearman and ClientGearman against a job server that is stopped and started again:
 * connected, disconnected (with why), reconnecting (attempt, delay), connected again; and the
 * function `on()` returns, which removes the listener (also from the engine client ClientGearman
 * makes after a `close()`).
 */
import 'reflect-metadata';
import { EventEmitter } from 'node:events';
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { ClientGearman, GearmanEvents, ServerGearman } from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { nextEvent, waitForEvent } from '../support/wait.js';

// A gearmand per test: each one stops and restarts it.
const gearmand = useGearmand({ perTest: true });
const res = useResources(gearmand);

/** Quick reconnects, so a restarted server is found within a few hundred ms. */
const reconnect = { initialDelay: 50, maxDelay: 200 };

@Controller()
class PingController {
  @MessagePattern('events.ping')
  ping(): string {
    return 'pong';
  }
}

type Seen = [event: keyof GearmanEvents, ...args: unknown[]];

/**
 * Listens to the three connection events through `on()`: what each listener heard, in order, and
 * an emitter to wait on. Returns the functions `on()` returned.
 */
function listen(transport: Pick<ServerGearman, 'on'> | Pick<ClientGearman, 'on'>) {
  const seen: Seen[] = [];
  const events = new EventEmitter();
  const record = (entry: Seen) => {
    seen.push(entry);
    events.emit(entry[0], ...entry.slice(1));
  };
  const off = {
    connected: transport.on('connected', (server) => record(['connected', server])),
    disconnected: transport.on('disconnected', (server, error) =>
      record(['disconnected', server, error && { code: (error as { code?: string }).code, message: error.message }]),
    ),
    reconnecting: transport.on('reconnecting', (server, attempt, delay) =>
      record(['reconnecting', server, attempt, delay]),
    ),
  };
  return { seen, events, off };
}

/** The names of the events seen, each run of reconnecting attempts as one. */
function names(seen: Seen[]): string[] {
  return seen.map((e) => e[0]).filter((name, i, all) => name !== 'reconnecting' || all[i - 1] !== 'reconnecting');
}

/** Stops gearmand until the second reconnect attempt is heard, then restarts it and waits for `connected`. */
async function bounce(events: EventEmitter): Promise<void> {
  const retrying = waitForEvent(events, 'reconnecting', { filter: (_s, attempt) => attempt === 2 });
  await gearmand.server.stop();
  await retrying;
  const back = nextEvent(events, 'connected', 10_000);
  await gearmand.server.restart();
  await back;
}

describe('ServerGearman.on()', () => {
  it('hears connected, disconnected with the cause, reconnecting, and connected again', async () => {
    const { app, server } = await res.createMicroservice({ controllers: [PingController] }, { reconnect });
    const { seen, events } = listen(server);
    const connected = nextEvent(events, 'connected', 10_000);
    await app.listen();
    expect(await connected).toEqual([gearmand.address]);

    await bounce(events);

    expect(names(seen)).toEqual(['connected', 'disconnected', 'reconnecting', 'connected']);
    const lost = seen.find((e) => e[0] === 'disconnected')!;
    expect(lost).toEqual([
      'disconnected',
      gearmand.address,
      { code: 'CONNECTION_LOST', message: `Lost the connection to gearmand at ${gearmand.address}` },
    ]);
    const attempts = seen.filter((e) => e[0] === 'reconnecting');
    expect(attempts.map((e) => e[2])).toEqual(attempts.map((_e, i) => i + 1));
    for (const [, address, , delay] of attempts) {
      expect(address).toBe(gearmand.address);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(reconnect.maxDelay * 1.2);
    }
    // Registered again: jobs flow after the reconnect.
    const raw = await res.client();
    expect((await raw.run('events.ping', '{}')).toString()).toBe('"pong"');
  });

  it('the function on() returns removes that listener only; calling it again does nothing', async () => {
    const { app, server } = await res.createMicroservice({ controllers: [PingController] }, { reconnect });
    const kept = listen(server);
    const removed = listen(server);
    // The same callback twice: removing one registration leaves the other.
    let twice = 0;
    const count = () => twice++;
    const offFirst = server.on('connected', count);
    server.on('connected', count);
    await app.listen();
    expect(names(removed.seen)).toEqual(['connected']);
    expect(twice).toBe(2);

    removed.off.connected();
    removed.off.disconnected();
    removed.off.reconnecting();
    removed.off.reconnecting();
    offFirst();
    offFirst();
    const retrying = nextEvent(kept.events, 'reconnecting', 10_000);
    await gearmand.server.stop();
    await retrying;
    const back = nextEvent(kept.events, 'connected', 10_000);
    await gearmand.server.restart();
    await back;

    expect(names(kept.seen)).toEqual(['connected', 'disconnected', 'reconnecting', 'connected']);
    expect(names(removed.seen)).toEqual(['connected']);
    expect(twice).toBe(3);
  });

  it("is what the Nest app's on() reaches (typed there as returning nothing)", async () => {
    const { app, server } = await res.createMicroservice({ controllers: [PingController] });
    const worker = server.unwrap();
    const before = worker.listenerCount('connected');
    const heard: string[] = [];
    app.on('connected', (address: string) => heard.push(address));
    await app.listen();
    expect(heard).toEqual([gearmand.address]);
    expect(worker.listenerCount('connected')).toBe(before + 1);
  });
});

describe('ClientGearman.on()', () => {
  it('hears connected, disconnected with the cause, reconnecting, connected again, and close()', async () => {
    const client = res.clientProxy({ reconnect });
    const { seen, events } = listen(client);
    await client.connect();
    expect(seen).toEqual([['connected', gearmand.address]]);

    await bounce(events);
    await res.microservice({ controllers: [PingController] });
    expect(await lastValueFrom(client.send('events.ping', {}))).toBe('pong');

    // A close() is a disconnect without an error.
    const closed = nextEvent(events, 'disconnected', 5000);
    await client.close();
    expect(await closed).toEqual([gearmand.address, undefined]);

    expect(names(seen)).toEqual(['connected', 'disconnected', 'reconnecting', 'connected', 'disconnected']);
    expect(seen.find((e) => e[0] === 'disconnected')).toEqual([
      'disconnected',
      gearmand.address,
      { code: 'CONNECTION_LOST', message: `Lost the connection to gearmand at ${gearmand.address}` },
    ]);
    const attempts = seen.filter((e) => e[0] === 'reconnecting');
    expect(attempts.map((e) => e[2])).toEqual(attempts.map((_e, i) => i + 1));
  });

  it('a removed listener hears nothing more, on this engine client or the one made after close()', async () => {
    const client = res.clientProxy({ reconnect });
    const kept = listen(client);
    const removed = listen(client);
    await client.connect();
    expect(names(removed.seen)).toEqual(['connected']);

    removed.off.connected();
    removed.off.disconnected();
    removed.off.reconnecting();
    removed.off.connected();
    const retrying = nextEvent(kept.events, 'reconnecting', 10_000);
    await gearmand.server.stop();
    await retrying;
    const back = nextEvent(kept.events, 'connected', 10_000);
    await gearmand.server.restart();
    await back;

    // close(), then connect(): a new engine client, with the listeners still on, not the removed ones.
    await client.close();
    const again = nextEvent(kept.events, 'connected', 10_000);
    await client.connect();
    await again;

    expect(names(kept.seen)).toEqual([
      'connected',
      'disconnected',
      'reconnecting',
      'connected',
      'disconnected',
      'connected',
    ]);
    expect(names(removed.seen)).toEqual(['connected']);
  });
});
