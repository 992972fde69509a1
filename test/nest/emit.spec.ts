/**
 * ClientGearman.emit() against a real gearmand, as Nest's own emit() behaves (a Subject behind
 * `connectable`): every subscriber before JOB_CREATED gets the handle and completion, one after
 * the end only the completion or the error; a throwing dispatch hook errors the event; an
 * unsubscribed subscriber gets nothing; a subclass's dispatchEvent is what emit() submits with.
 * No worker: the background jobs stay queued.
 */
import 'reflect-metadata';
import type { ReadPacket } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { ClientGearman, GearmanCodecError } from '../../lib/index.js';
import { CapturingLogger, functionStatus, useGearmand, useResources } from '../support/harness.js';
import { within } from '../support/wait.js';

const gearmand = useGearmand({ perTest: true });
const res = useResources(gearmand);

describe('ClientGearman.emit()', () => {
  it('gives every early subscriber the handle, then completes; a later one gets only the completion', async () => {
    const client = res.clientProxy();
    await client.connect();
    const event = client.emit<string>('emit.queued', 'x');
    const first = lastValueFrom(event.pipe(toArray()));
    const second = lastValueFrom(event.pipe(toArray()));
    const [a, b] = await within(Promise.all([first, second]), 5000, 'both subscribers');
    expect(a).toEqual([expect.stringMatching(/^H:/)]);
    expect(b).toEqual(a);
    expect(await within(lastValueFrom(event.pipe(toArray())), 1000, 'a late subscriber')).toEqual([]);
    expect((await functionStatus(res.admin(), 'emit.queued')).total).toBe(1);
  });

  it('errors every subscriber, early or late, when the payload cannot be written', async () => {
    const client = res.clientProxy();
    // Not connected yet: the first subscriber waits for connect(), then the failure.
    const event = client.emit('emit.unwritable', { n: 1n });
    await expect(within(lastValueFrom(event), 5000, 'the early subscriber')).rejects.toBeInstanceOf(GearmanCodecError);
    await expect(within(lastValueFrom(event), 1000, 'a late subscriber')).rejects.toBeInstanceOf(GearmanCodecError);
  });

  it('errors the event, not the caller, when the dispatch hook throws (connecting or connected)', async () => {
    const client = res.clientProxy();
    client.setOnDispatchHook(() => {
      throw new Error('hook failed');
    });
    const connecting = client.emit('emit.hook', 'x');
    await expect(within(lastValueFrom(connecting), 5000, 'the emit while connecting')).rejects.toThrow('hook failed');
    const connected = client.emit('emit.hook', 'y');
    await expect(within(lastValueFrom(connected), 1000, 'the emit once connected')).rejects.toThrow('hook failed');
    expect((await functionStatus(res.admin(), 'emit.hook')).total).toBe(0);
  });

  it('gives nothing to a subscriber that unsubscribed before JOB_CREATED', async () => {
    const client = res.clientProxy();
    await client.connect();
    const event = client.emit<string>('emit.left', 'x');
    const seen: string[] = [];
    event.subscribe({ next: () => seen.push('next'), complete: () => seen.push('complete') }).unsubscribe();
    expect(await within(firstValueFrom(event), 5000, 'another subscriber')).toMatch(/^H:/);
    expect(seen).toEqual([]);
  });

  it("submits through a subclass's dispatchEvent", async () => {
    const dispatched: unknown[] = [];
    class CountingClient extends ClientGearman {
      protected override dispatchEvent<T = string>(packet: ReadPacket): Promise<T> {
        dispatched.push(packet.pattern);
        return super.dispatchEvent<T>(packet);
      }
    }
    const client = new CountingClient({ servers: [gearmand.address], logger: new CapturingLogger() });
    res.defer(() => client.close());
    expect(await within(lastValueFrom(client.emit<string>('emit.sub', 'x')), 5000, 'emit()')).toMatch(/^H:/);
    expect(dispatched).toEqual(['emit.sub']);
    expect((await functionStatus(res.admin(), 'emit.sub')).total).toBe(1);
  });
});
