import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, RpcException, EventPattern, ClientsModule } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom, toArray, of, Observable } from 'rxjs';
import { Gearmand } from '../support/gearmand.js';
import { ClientGearman, GearmanContext, ServerGearman } from '../../lib/index.js';

@Controller()
class MathController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]) {
    return data.reduce((a, b) => a + b, 0);
  }
  @MessagePattern('stream')
  stream(): Observable<number> {
    return of(1, 2, 3);
  }
  @MessagePattern('ctx')
  ctx(@Payload() _d: unknown, @Ctx() ctx: GearmanContext) {
    ctx.sendStatus(1, 2);
    return { fn: ctx.getFunction(), unique: ctx.getUnique() };
  }
  @MessagePattern('boom')
  boom() {
    throw new RpcException({ code: 42, message: 'nope' });
  }
  @EventPattern<string>('ev')
  ev() {
    return undefined;
  }
}

@Module({ controllers: [MathController] })
class WorkerModule {}

describe('Nest smoke', () => {
  let g: Gearmand;
  beforeAll(async () => {
    g = await Gearmand.start();
  });
  afterAll(async () => {
    await g.dispose();
  });

  it('round trips through ServerGearman and ClientGearman', async () => {
    const mod = await Test.createTestingModule({ imports: [WorkerModule] }).compile();
    const app = mod.createNestMicroservice({ strategy: new ServerGearman({ servers: [g.address], logger: false }) });
    await app.listen();
    const clientMod = await Test.createTestingModule({
      imports: [ClientsModule.register([{ name: 'G', customClass: ClientGearman, options: { servers: [g.address] } }])],
    }).compile();
    const client = clientMod.get<ClientGearman>('G');
    expect(await lastValueFrom(client.send('sum', [1, 2, 3]))).toBe(6);
    expect(await lastValueFrom(client.send('stream', {}).pipe(toArray()))).toEqual([1, 2, 3]);
    expect(await lastValueFrom(client.send('ctx', {}))).toEqual({ fn: 'ctx', unique: '' });
    await expect(lastValueFrom(client.send('boom', {}))).rejects.toEqual({ code: 42, message: 'nope' });
    expect(typeof (await lastValueFrom(client.emit('ev', { a: 1 })))).toBe('string');
    const events = await lastValueFrom(client.job('ctx', {}).pipe(toArray()));
    expect(events.map((e) => e.type)).toEqual(['created', 'status', 'complete']);
    await clientMod.close();
    await app.close();
  });
});
