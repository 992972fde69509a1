/**
 * The Nest transport (ServerGearman, ClientGearman) against Perl's Gearman::Server (Debian
 * `gearman-server`): request/response, events, streams (which that server cannot forward: only
 * the last value arrives), failures, and a worker that stays on its one connection.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { lastValueFrom, Observable, of, toArray } from 'rxjs';
import { GearmanJobError, type GearmanWorker } from '../../lib/engine/index.js';
import { GearmanContext, GearmanRecordBuilder } from '../../lib/index.js';
import { PacketType } from '../../lib/protocol/index.js';
import { useResources } from '../support/harness.js';
import { PerlServer } from '../support/perl-server.js';
import { deferred, recordEvents, within } from '../support/wait.js';

let perl: PerlServer;
beforeAll(async () => {
  perl = await PerlServer.start();
});
afterAll(() => perl?.dispose());
const res = useResources();

let event = deferred<unknown>();

@Controller()
class PerlController {
  @MessagePattern('perl.sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('perl.unique')
  unique(@Payload() _data: unknown, @Ctx() ctx: GearmanContext): string {
    return ctx.getUnique();
  }

  @EventPattern('perl.event')
  onEvent(@Payload() data: unknown): void {
    event.resolve(data);
  }

  @MessagePattern('perl.stream')
  stream(): Observable<number> {
    return of(1, 2, 3);
  }

  @MessagePattern('perl.progress')
  async progress(@Ctx() ctx: GearmanContext): Promise<string> {
    await ctx.sendStatus(1, 2);
    await ctx.sendData('part');
    return 'whole';
  }

  @MessagePattern('perl.rpc')
  rpc(): never {
    throw new RpcException({ code: 'E_PERL', message: 'refused' });
  }

  @MessagePattern('perl.fail', { errorMode: 'fail' })
  fail(): never {
    throw new RpcException('plain failure');
  }
}

/** The app listening on the Perl server, with its worker's connection events recorded from the start. */
async function app() {
  const handle = await res.createMicroservice({ controllers: [PerlController] }, { servers: perl.address });
  const worker = handle.server.unwrap<GearmanWorker>();
  const recorded = {
    connected: recordEvents(worker, 'connected'),
    reconnecting: recordEvents(worker, 'reconnecting'),
    errors: recordEvents<[Error]>(worker, 'error'),
  };
  await within(handle.app.listen(), 10_000, 'app.listen()');
  return { ...handle, worker, ...recorded };
}

const clientProxy = () => res.clientProxy({ servers: perl.address });

describe('ServerGearman and ClientGearman on Perl Gearman::Server', () => {
  it('answers requests on one connection, with no reconnect and no error', async () => {
    const { connected, reconnecting, errors } = await app();
    const client = clientProxy();
    expect(await within(lastValueFrom(client.send('perl.sum', [1, 2, 3])), 5000, 'the sum')).toBe(6);
    const many = await within(
      Promise.all([1, 2, 3, 4, 5].map((n) => lastValueFrom(client.send('perl.sum', [n, n])))),
      5000,
      'five sums',
    );
    expect(many).toEqual([2, 4, 6, 8, 10]);
    expect(connected.events).toHaveLength(1);
    expect(reconnecting.events).toHaveLength(0);
    expect(errors.events).toHaveLength(0);
  });

  it("gives handlers no unique: the server's JOB_ASSIGN does not carry it", async () => {
    await app();
    const record = new GearmanRecordBuilder({}).setUnique('caller-unique').build();
    expect(await within(lastValueFrom(clientProxy().send('perl.unique', record)), 5000, 'the unique')).toBe('');
  });

  it('runs event handlers for emit()', async () => {
    event = deferred();
    await app();
    expect(await lastValueFrom(clientProxy().emit('perl.event', { n: 1 }))).toMatch(/^H:/);
    expect(await within(event.promise, 5000, 'the event handler')).toEqual({ n: 1 });
  });

  it('streams only the last value (no WORK_DATA there), and says so once; WORK_STATUS arrives', async () => {
    const { errors, worker } = await app();
    const client = clientProxy();
    expect(await within(lastValueFrom(client.send('perl.stream', {}).pipe(toArray())), 5000, 'the stream')).toEqual([
      3,
    ]);
    expect(await within(lastValueFrom(client.send('perl.stream', {}).pipe(toArray())), 5000, 'again')).toEqual([3]);
    // A round trip on the worker's connection: every ERROR for what it sent before has arrived.
    await within(worker.connections[0].call(PacketType.ECHO_REQ, [Buffer.alloc(0)]), 3000, 'an ECHO_RES');
    expect(errors.events.map((e) => e.args[0])).toEqual([
      expect.objectContaining({ code: 'UNSUPPORTED_COMMAND', command: 'WORK_DATA' }),
    ]);
    const raw = await res.client({ servers: perl.address });
    const job = raw.submit('perl.progress', '{}');
    const statuses: string[] = [];
    job.on('status', (n, d) => statuses.push(`${n}/${d}`));
    expect(String(await within(job.result(), 5000, 'the result'))).toBe('"whole"');
    expect(statuses).toEqual(['1/2']);
  });

  it('reports errors as exceptions, or as plain failures with errorMode "fail"', async () => {
    await app();
    const client = clientProxy();
    await expect(lastValueFrom(client.send('perl.rpc', {}))).rejects.toHaveProperty('error', {
      code: 'E_PERL',
      message: 'refused',
    });
    const failed = await lastValueFrom(client.send('perl.fail', {})).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(GearmanJobError);
    expect(failed).toMatchObject({ code: 'JOB_FAILED', functionName: 'perl.fail' });
    // The worker goes on serving.
    expect(await lastValueFrom(client.send('perl.sum', [2, 2]))).toBe(4);
  });

  it('fails an epoch submit with UNSUPPORTED_COMMAND instead of hanging', async () => {
    await app();
    const record = new GearmanRecordBuilder({}).setEpoch(Math.floor(Date.now() / 1000) + 60).build();
    const error = await within(
      lastValueFrom(clientProxy().emit('perl.event', record)).catch((e: unknown) => e),
      5000,
      'the refusal',
    );
    expect(error).toMatchObject({ code: 'UNSUPPORTED_COMMAND', command: 'SUBMIT_JOB_EPOCH' });
  });
});
