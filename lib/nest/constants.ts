/** Transport id of ServerGearman: handlers bound to other transports are not registered with gearmand. */
export const GEARMAN_TRANSPORT = Symbol('GEARMAN');

/** Default injection token of a ClientGearman registered by GearmanModule. */
export const GEARMAN_CLIENT = 'GEARMAN_CLIENT';

/** Status values of ServerGearman and ClientGearman, as Nest's own transports use them. */
export const GearmanStatus = {
  CONNECTED: 'connected',
  DISCONNECTED: 'disconnected',
  RECONNECTING: 'reconnecting',
} as const;
export type GearmanStatus = (typeof GearmanStatus)[keyof typeof GearmanStatus];

/** The status of a set of connections: connected if any is, reconnecting while any tries. */
export function statusOfConnections(connections: readonly { readonly state: string }[]): GearmanStatus {
  const states = connections.map((c) => c.state);
  if (states.includes('connected')) return GearmanStatus.CONNECTED;
  if (states.includes('reconnecting') || states.includes('connecting')) return GearmanStatus.RECONNECTING;
  return GearmanStatus.DISCONNECTED;
}

/** Default number of jobs a ServerGearman runs at once. */
export const DEFAULT_MAX_JOBS = 10;
/** Default drain deadline of `close()` in ms. */
export const DEFAULT_CLOSE_TIMEOUT = 10_000;
