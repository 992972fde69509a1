/** Status values of ServerGearman and ClientGearman, as Nest's own transports use them. */
export const GearmanStatus = {
  CONNECTED: 'connected',
  DISCONNECTED: 'disconnected',
  RECONNECTING: 'reconnecting',
} as const;
export type GearmanStatus = (typeof GearmanStatus)[keyof typeof GearmanStatus];

/**
 * Events of `on()` on ServerGearman and ClientGearman: those of the engine worker or client below.
 * `on()` returns the function that removes the listener.
 */
export type GearmanEvents = {
  connected: (server: string) => void;
  disconnected: (server: string, error: Error | undefined) => void;
  reconnecting: (server: string, attempt: number, delay: number) => void;
  error: (error: Error) => void;
};

/** The status of a set of connections: connected if any is, reconnecting while any tries. */
export function statusOfConnections(connections: readonly { readonly state: string }[]): GearmanStatus {
  const states = connections.map((c) => c.state);
  if (states.includes('connected')) return GearmanStatus.CONNECTED;
  if (states.includes('reconnecting') || states.includes('connecting')) return GearmanStatus.RECONNECTING;
  return GearmanStatus.DISCONNECTED;
}
