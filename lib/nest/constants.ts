/** Transport id of ServerGearman: handlers bound to other transports are not registered with gearmand. */
export const GEARMAN_TRANSPORT = Symbol('GEARMAN');

/** Default injection token of a ClientGearman registered by GearmanModule. */
export const GEARMAN_CLIENT = 'GEARMAN_CLIENT';

/** Default number of jobs a ServerGearman runs at once. */
export const DEFAULT_MAX_JOBS = 10;
/** Default drain deadline of `close()` in ms. */
export const DEFAULT_CLOSE_TIMEOUT = 10_000;
/** Default drain deadline of ClientGearman's `close()` in ms: calls in flight may finish. */
export const DEFAULT_CLIENT_CLOSE_TIMEOUT = 5000;
