import {
  type DynamicModule,
  Inject,
  Module,
  type ModuleMetadata,
  type OnApplicationShutdown,
  type Provider,
  type Type,
} from '@nestjs/common';
import { GearmanError } from '../engine/index.js';
import { ClientGearman } from './client-gearman.js';
import { GEARMAN_CLIENT } from './constants.js';
import type { GearmanClientProxyOptions } from './interfaces.js';

/** One ClientGearman that GearmanModule provides. */
export interface GearmanClientRegistration extends GearmanClientProxyOptions {
  /** Injection token of the client (default `GEARMAN_CLIENT`). */
  name?: string | symbol;
}

export interface GearmanModuleOptions extends GearmanClientRegistration {
  /** Provide the client to every module, not only to those that import this one (default false). */
  isGlobal?: boolean;
}

/** Several clients at once, as ClientsModule takes them. */
export interface GearmanModuleClients<T> {
  clients: T[];
  /** Provide the clients to every module (default false). */
  isGlobal?: boolean;
}

/** A class that makes the client's options, for `registerAsync({ useClass })` or `useExisting`. */
export interface GearmanOptionsFactory {
  createGearmanOptions(): GearmanClientProxyOptions | Promise<GearmanClientProxyOptions>;
}

/** One ClientGearman whose options come from DI: exactly one of `useFactory`, `useClass`, `useExisting`. */
export interface GearmanClientAsyncRegistration extends Pick<ModuleMetadata, 'imports'> {
  /** Injection token of the client (default `GEARMAN_CLIENT`). */
  name?: string | symbol;
  useFactory?: (...args: any[]) => GearmanClientProxyOptions | Promise<GearmanClientProxyOptions>;
  /** What `useFactory` is called with. */
  inject?: any[];
  /** Provided by this module, then asked for the options. */
  useClass?: Type<GearmanOptionsFactory>;
  /** A provider from the imported modules, asked for the options. */
  useExisting?: Type<GearmanOptionsFactory>;
  /** More providers for this module (e.g. what `useClass` needs). */
  extraProviders?: Provider[];
}

export interface GearmanModuleAsyncOptions extends GearmanClientAsyncRegistration {
  /** Provide the client to every module (default false). */
  isGlobal?: boolean;
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
 * Several clients: an array, or `{ clients, isGlobal }` as ClientsModule takes them.
 */
@Module({})
export class GearmanModule {
  static register(
    options: GearmanModuleOptions | GearmanClientRegistration[] | GearmanModuleClients<GearmanClientRegistration> = {},
  ): DynamicModule {
    const { clients, isGlobal } = listOf<GearmanClientRegistration>(options);
    const providers: Provider[] = clients.map(({ name, ...rest }) => ({
      provide: name ?? GEARMAN_CLIENT,
      useFactory: () => new ClientGearman(rest),
    }));
    return GearmanModule.build(providers, tokensOf(clients), [], isGlobal);
  }

  static registerAsync(
    options:
      | GearmanModuleAsyncOptions
      | GearmanClientAsyncRegistration[]
      | GearmanModuleClients<GearmanClientAsyncRegistration>,
  ): DynamicModule {
    const { clients, isGlobal } = listOf<GearmanClientAsyncRegistration>(options);
    const providers = clients.flatMap((o) => [...asyncProviders(o), ...(o.extraProviders ?? [])]);
    const imports = [...new Set(clients.flatMap((o) => o.imports ?? []))];
    return GearmanModule.build(providers, tokensOf(clients), imports, isGlobal);
  }

  private static build(
    providers: Provider[],
    tokens: (string | symbol)[],
    imports: NonNullable<ModuleMetadata['imports']>,
    isGlobal: boolean,
  ): DynamicModule {
    const closer: Provider = {
      provide: ClientCloser,
      useFactory: (...clients: ClientGearman[]) => new ClientCloser(clients),
      inject: tokens,
    };
    return { module: GearmanModule, global: isGlobal, imports, providers: [...providers, closer], exports: tokens };
  }
}

/** The registrations and the module's `isGlobal`, whichever of the three shapes was given. */
function listOf<R extends object>(
  options: (R & { isGlobal?: boolean }) | R[] | GearmanModuleClients<R>,
): { clients: R[]; isGlobal: boolean } {
  if (Array.isArray(options)) return { clients: options, isGlobal: false };
  if ('clients' in options) {
    const { clients, isGlobal = false } = options as GearmanModuleClients<R>;
    return { clients, isGlobal };
  }
  const { isGlobal = false, ...one } = options as R & { isGlobal?: boolean };
  return { clients: [one as R], isGlobal };
}

function tokensOf(clients: { name?: string | symbol }[]): (string | symbol)[] {
  return clients.map((c) => c.name ?? GEARMAN_CLIENT);
}

/** The client's provider, and for `useClass` the options factory it asks, as ClientsModule makes them. */
function asyncProviders(o: GearmanClientAsyncRegistration): Provider[] {
  const provide = o.name ?? GEARMAN_CLIENT;
  if (o.useFactory) {
    const useFactory = o.useFactory;
    return [
      {
        provide,
        useFactory: async (...args: unknown[]) => new ClientGearman(await useFactory(...args)),
        inject: o.inject ?? [],
      },
    ];
  }
  const factory = o.useExisting ?? o.useClass;
  if (!factory) {
    throw new GearmanError(
      'INVALID_ARGUMENT',
      `GearmanModule.registerAsync for ${String(provide)} needs useFactory, useClass or useExisting to make the client's options`,
    );
  }
  const client: Provider = {
    provide,
    useFactory: async (f: GearmanOptionsFactory) => new ClientGearman(await f.createGearmanOptions()),
    inject: [factory],
  };
  return o.useExisting ? [client] : [client, { provide: factory, useClass: factory }];
}

/** Injects a ClientGearman registered by GearmanModule (by default the one named `GEARMAN_CLIENT`). */
export const InjectGearmanClient = (name: string | symbol = GEARMAN_CLIENT): ParameterDecorator & PropertyDecorator =>
  Inject(name);
