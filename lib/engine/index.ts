/**
 * `nestjs-gearman/engine`: the Gearman client, worker and admin client without Nest. Every name
 * here is public API; what is not listed is internal and may change in any release.
 */
export {
  GearmanClient,
  type GearmanClientEvents,
  type GearmanClientOptions,
  type JobOutcome,
  type JobRequest,
  type RunAllOptions,
} from './client/client.js';
export { GearmanJob, type GearmanJobEvents, type JobPriority, type JobState, type JobStatus } from './client/job.js';
export type { SubmitOptions } from './client/submit-request.js';
export type { ServerStrategy } from './server-pool.js';
export {
  type ErrorMode,
  GearmanWorker,
  type GearmanWorkerEvents,
  type GearmanWorkerOptions,
  type JobHandler,
  type JobResult,
  type RegisterOptions,
} from './worker/worker.js';
export { WorkerJob } from './worker/worker-job.js';
export {
  type FunctionPriorityStatus,
  type FunctionStatus,
  GearmanAdminConnection,
  type GearmanAdminConnectionOptions,
  type JobInfo,
  type MaxQueueLimits,
  type WorkerInfo,
} from './admin/admin-connection.js';
export {
  GearmanAdmin,
  type GearmanAdminOptions,
  GearmanAdminServersError,
  type ServerResult,
  type WithServer,
} from './admin/admin.js';
export type { ConnectionOptions, HeartbeatOptions, PacketTap, PacketTapEvent } from './options.js';
export type { BackoffOptions } from './backoff.js';
export type { ServerAddress, ServerSpec } from './servers.js';
export {
  GearmanAdminError,
  GearmanCancelledError,
  GearmanConnectionError,
  GearmanError,
  type GearmanErrorCode,
  GearmanJobError,
  GearmanServerError,
  GearmanTimeoutError,
} from './errors.js';
export { GearmanProtocolError, type GearmanProtocolErrorCode } from '../protocol/errors.js';
