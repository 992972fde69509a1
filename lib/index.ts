/**
 * `nestjs-gearman`: the Gearman transport for NestJS (ServerGearman, ClientGearman, GearmanModule,
 * the context, the record builder, codecs, status and events, telemetry options, errors) and the
 * admin module. The engine without Nest is `nestjs-gearman/engine`, the codec
 * `nestjs-gearman/protocol`, the Terminus indicator `nestjs-gearman/health`. Every name here is
 * public API.
 */
export { ServerGearman } from './nest/server-gearman.js';
export { ClientGearman, type GearmanJobEvent } from './nest/client-gearman.js';
export {
  type GearmanClientAsyncRegistration,
  type GearmanClientRegistration,
  GearmanModule,
  type GearmanModuleAsyncOptions,
  type GearmanModuleClients,
  type GearmanModuleOptions,
  type GearmanOptionsFactory,
  InjectGearmanClient,
} from './nest/gearman.module.js';
export { GEARMAN_CLIENT, GEARMAN_TRANSPORT } from './nest/constants.js';
export { GearmanContext } from './nest/ctx-host/gearman.context.js';
export {
  GearmanRecord,
  GearmanRecordBuilder,
  type GearmanRecordOptions,
} from './nest/record-builders/gearman.record-builder.js';
export { type GearmanEvents, GearmanStatus } from './nest/events/gearman.events.js';
export type { GearmanClientProxyOptions, GearmanPatternExtras, GearmanServerOptions } from './nest/interfaces.js';
export type { GearmanTelemetryOptions } from './nest/telemetry/options.js';
export { type GearmanCodec, GearmanCodecError, type GearmanCodecOption, textCodec } from './nest/codecs.js';
export { GearmanRpcError } from './nest/errors.js';
export { GearmanAdminModule, type GearmanAdminModuleAsyncOptions } from './nest/admin/gearman-admin.module.js';
export {
  GearmanAdminService,
  type GearmanAdminModuleOptions,
  type ServerPing,
} from './nest/admin/gearman-admin.service.js';
export {
  type BackoffOptions,
  type ErrorMode,
  type FunctionPriorityStatus,
  type FunctionStatus,
  GearmanAdminError,
  GearmanCancelledError,
  GearmanConnectionError,
  GearmanError,
  type GearmanErrorCode,
  GearmanJobError,
  GearmanServerError,
  GearmanTimeoutError,
  type JobInfo,
  type JobPriority,
  type MaxQueueLimits,
  type ServerAddress,
  type ServerResult,
  type ServerSpec,
  type ServerStrategy,
  type WithServer,
  type WorkerInfo,
} from './engine/index.js';
