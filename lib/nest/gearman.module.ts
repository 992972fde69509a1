import { type DynamicModule, Inject, Module, type ModuleMetadata, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { ClientGearman } from './client-gearman.js';
import { GEARMAN_CLIENT } from './constants.js';
import type { GearmanClientProxyOptions } from './interfaces.js';

export interface GearmanModuleOptions extends GearmanClientProxyOptions {
  /** Injection token of the client (default `GEARMAN_CLIENT`). */
  name?: string | symbol;
}

export interface GearmanModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  name?: string | symbol;
  useFactory: (...args: any[]) => GearmanClientProxyOptions | Promise<GearmanClientProxyOptions>;
  inject?: any[];
}

/** Closes the clients a module made when the application shuts down. */
class ClientCloser implements OnApplicationShutdown {
  constructor(private readonly clients: ClientGearman[]) {}
  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

/**
 * ClientGearman through DI with less typing than ClientsModule:
 * `GearmanModule.register({ servers: ['127.0.0.1:4730'] })`, then `@InjectGearmanClient() client: ClientGearman`.
 */
@Module({})
export class GearmanModule {
  static register(options: GearmanModuleOptions | GearmanModuleOptions[] = {}): DynamicModule {
    const list = Array.isArray(options) ? options : [options];
    const providers: Provider[] = list.map(({ name, ...rest }) => ({
      provide: name ?? GEARMAN_CLIENT,
      useFactory: () => new ClientGearman(rest),
    }));
    return GearmanModule.withCloser(providers, list.map((o) => o.name ?? GEARMAN_CLIENT), []);
  }

  static registerAsync(options: GearmanModuleAsyncOptions | GearmanModuleAsyncOptions[]): DynamicModule {
    const list = Array.isArray(options) ? options : [options];
    const providers: Provider[] = list.map((o) => ({
      provide: o.name ?? GEARMAN_CLIENT,
      useFactory: async (...args: unknown[]) => new ClientGearman(await o.useFactory(...args)),
      inject: o.inject ?? [],
    }));
    return GearmanModule.withCloser(providers, list.map((o) => o.name ?? GEARMAN_CLIENT), list.flatMap((o) => o.imports ?? []));
  }

  private static withCloser(providers: Provider[], tokens: (string | symbol)[], imports: ModuleMetadata['imports']): DynamicModule {
    const closer: Provider = {
      provide: ClientCloser,
      useFactory: (...clients: ClientGearman[]) => new ClientCloser(clients),
      inject: tokens,
    };
    return { module: GearmanModule, imports, providers: [...providers, closer], exports: tokens };
  }
}

/** Injects a ClientGearman registered by GearmanModule (by default the one named `GEARMAN_CLIENT`). */
export const InjectGearmanClient = (name: string | symbol = GEARMAN_CLIENT): ParameterDecorator & PropertyDecorator =>
  Inject(name);
