/**
 * GearmanModule against a real gearmand: `register` and `registerAsync` (useFactory, useClass,
 * useExisting), one client or several, `isGlobal`, and the clients closed at shutdown.
 */
import 'reflect-metadata';
import { Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { lastValueFrom } from 'rxjs';
import { type GearmanClient, GearmanError } from '../../lib/engine/index.js';
import {
  ClientGearman,
  type GearmanClientProxyOptions,
  GearmanModule,
  type GearmanOptionsFactory,
  InjectGearmanClient,
} from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

beforeEach(async () => {
  // Every client below calls these: a JSON sum and a text function.
  const worker = res.worker();
  worker.register('sum', (job) => String((JSON.parse(job.payload.toString()) as number[]).reduce((a, b) => a + b, 0)));
  worker.register('shout', (job) => job.payload.toString().toUpperCase());
  await worker.start();
});

const SETTINGS = Symbol('SETTINGS');

@Module({ providers: [{ provide: SETTINGS, useFactory: () => ({ address: gearmand.address }) }], exports: [SETTINGS] })
class SettingsModule {}

/** A GearmanOptionsFactory that needs a provider of its own module (SettingsModule). */
@Injectable()
class TextOptions implements GearmanOptionsFactory {
  constructor(@Inject(SETTINGS) private readonly settings: { address: string }) {}
  createGearmanOptions(): GearmanClientProxyOptions {
    return { servers: [this.settings.address], codec: 'text' };
  }
}

@Module({ imports: [SettingsModule], providers: [TextOptions], exports: [TextOptions] })
class TextOptionsModule {}

@Injectable()
class Caller {
  constructor(@InjectGearmanClient() readonly client: ClientGearman) {}
}

@Injectable()
class TextCaller {
  constructor(@InjectGearmanClient('TEXT') readonly client: ClientGearman) {}
}

/** A feature module that does not import GearmanModule: it sees only global clients. */
@Module({ providers: [Caller], exports: [Caller] })
class FeatureModule {}

async function compile(imports: any[], providers: any[] = []) {
  const moduleRef = await Test.createTestingModule({ imports, providers }).compile();
  res.defer(() => moduleRef.close());
  return moduleRef;
}

/** The module's `close()` ran the shutdown hook: the engine client refuses new jobs. */
function expectClosed(client: ClientGearman): void {
  expect(() => client.unwrap<GearmanClient>().submit('sum', '[1]')).toThrow(/closed/);
}

describe('GearmanModule.register', () => {
  it('isGlobal: a module that does not import GearmanModule injects the client; closed at shutdown', async () => {
    const moduleRef = await compile([
      GearmanModule.register({ servers: [gearmand.address], isGlobal: true }),
      FeatureModule,
    ]);
    const { client } = moduleRef.get(Caller);
    expect(client).toBeInstanceOf(ClientGearman);
    expect(await lastValueFrom(client.send('sum', [1, 2, 3]))).toBe(6);

    await moduleRef.close();
    expectClosed(client);
  });

  it('without isGlobal, only the importing module sees the client', async () => {
    await expect(compile([GearmanModule.register({ servers: [gearmand.address] }), FeatureModule])).rejects.toThrow(
      /can't resolve dependencies of the Caller/,
    );
  });

  it('{ clients, isGlobal }: several clients under their own names, every one closed at shutdown', async () => {
    const moduleRef = await compile([
      GearmanModule.register({
        clients: [{ servers: [gearmand.address] }, { name: 'TEXT', servers: [gearmand.address], codec: 'text' }],
        isGlobal: true,
      }),
      FeatureModule,
    ]);
    const { client } = moduleRef.get(Caller);
    const text = moduleRef.get<ClientGearman>('TEXT');
    expect(await lastValueFrom(client.send('sum', [2, 2]))).toBe(4);
    expect(await lastValueFrom(text.send('shout', 'quiet'))).toBe('QUIET');

    await moduleRef.close();
    expectClosed(client);
    expectClosed(text);
  });
});

describe('GearmanModule.registerAsync', () => {
  it('useFactory with inject and imports', async () => {
    const moduleRef = await compile(
      [
        GearmanModule.registerAsync({
          imports: [SettingsModule],
          inject: [SETTINGS],
          useFactory: async (settings: { address: string }) => ({ servers: [settings.address] }),
        }),
      ],
      [Caller],
    );
    const { client } = moduleRef.get(Caller);
    expect(await lastValueFrom(client.send('sum', [20, 22]))).toBe(42);

    await moduleRef.close();
    expectClosed(client);
  });

  it('useClass: the module provides the factory, which gets its own dependencies from imports', async () => {
    const moduleRef = await compile(
      [GearmanModule.registerAsync({ name: 'TEXT', imports: [SettingsModule], useClass: TextOptions })],
      [TextCaller],
    );
    const { client } = moduleRef.get(TextCaller);
    expect(await lastValueFrom(client.send('shout', 'by class'))).toBe('BY CLASS');

    await moduleRef.close();
    expectClosed(client);
  });

  it('useExisting: the factory an imported module exports', async () => {
    const moduleRef = await compile(
      [GearmanModule.registerAsync({ name: 'TEXT', imports: [TextOptionsModule], useExisting: TextOptions })],
      [TextCaller],
    );
    const { client } = moduleRef.get(TextCaller);
    expect(await lastValueFrom(client.send('shout', 'existing'))).toBe('EXISTING');

    await moduleRef.close();
    expectClosed(client);
  });

  it('isGlobal, and { clients, isGlobal } for several', async () => {
    const one = await compile([
      GearmanModule.registerAsync({ isGlobal: true, useFactory: () => ({ servers: [gearmand.address] }) }),
      FeatureModule,
    ]);
    expect(await lastValueFrom(one.get(Caller).client.send('sum', [1, 1]))).toBe(2);

    const several = await compile([
      GearmanModule.registerAsync({
        clients: [
          { useFactory: () => ({ servers: [gearmand.address] }) },
          { name: 'TEXT', imports: [TextOptionsModule], useExisting: TextOptions },
        ],
        isGlobal: true,
      }),
      FeatureModule,
    ]);
    expect(await lastValueFrom(several.get(Caller).client.send('sum', [3, 4]))).toBe(7);
    const text = several.get<ClientGearman>('TEXT');
    expect(await lastValueFrom(text.send('shout', 'both'))).toBe('BOTH');

    await several.close();
    expectClosed(several.get(Caller).client);
    expectClosed(text);
  });

  it('without useFactory, useClass or useExisting: INVALID_ARGUMENT', () => {
    let error: unknown;
    try {
      GearmanModule.registerAsync({ name: 'NONE' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('useFactory, useClass or useExisting'),
    });
  });
});
