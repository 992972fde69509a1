import { type DynamicModule, Module, type ModuleMetadata } from '@nestjs/common';
import { GEARMAN_ADMIN_OPTIONS, type GearmanAdminModuleOptions, GearmanAdminService } from './gearman-admin.service.js';

export interface GearmanAdminModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  useFactory: (...args: any[]) => GearmanAdminModuleOptions | Promise<GearmanAdminModuleOptions>;
  inject?: any[];
  /** Make GearmanAdminService injectable everywhere (default true). */
  isGlobal?: boolean;
}

/**
 * Provides GearmanAdminService (and so what GearmanHealthIndicator needs):
 * `GearmanAdminModule.forRoot({ servers: ['127.0.0.1:4730'] })`. Global by default.
 */
@Module({})
export class GearmanAdminModule {
  static forRoot(options: GearmanAdminModuleOptions & { isGlobal?: boolean } = {}): DynamicModule {
    const { isGlobal = true, ...rest } = options;
    return {
      module: GearmanAdminModule,
      global: isGlobal,
      providers: [{ provide: GEARMAN_ADMIN_OPTIONS, useValue: rest }, GearmanAdminService],
      exports: [GearmanAdminService],
    };
  }

  static forRootAsync(options: GearmanAdminModuleAsyncOptions): DynamicModule {
    return {
      module: GearmanAdminModule,
      global: options.isGlobal ?? true,
      imports: options.imports ?? [],
      providers: [
        { provide: GEARMAN_ADMIN_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] },
        GearmanAdminService,
      ],
      exports: [GearmanAdminService],
    };
  }
}
