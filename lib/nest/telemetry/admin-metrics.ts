import type { BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import type { FunctionStatus, ServerResult } from '../../engine/index.js';
import type { GearmanMeter } from './options.js';
import { ATTR, serverOf, SYSTEM } from './telemetry.js';

/**
 * Registers on `meter` the figures a Gearman Prometheus exporter reports, per function and
 * server, read with one admin `status` per server at each collection:
 * `gearman.function.jobs.queued` (waiting for a worker), `gearman.function.jobs.running` and
 * `gearman.function.workers` (connected workers that can run it). A server that does not answer
 * reports nothing for that collection. Returns what unregisters them.
 */
export function observeAdminMetrics(
  given: GearmanMeter,
  statusByServer: () => Promise<ServerResult<FunctionStatus[]>[]>,
): () => void {
  const meter = given as unknown as Meter;
  const queued = meter.createObservableGauge('gearman.function.jobs.queued', {
    description: 'Jobs of the function waiting in the job server for a worker',
    unit: '{job}',
  });
  const running = meter.createObservableGauge('gearman.function.jobs.running', {
    description: 'Jobs of the function running on a worker',
    unit: '{job}',
  });
  const workers = meter.createObservableGauge('gearman.function.workers', {
    description: 'Connected workers that registered the function',
    unit: '{worker}',
  });
  const observables: Observable[] = [queued, running, workers];
  const callback = async (result: BatchObservableResult): Promise<void> => {
    for (const answer of await statusByServer()) {
      if (!answer.ok) continue;
      const server = serverOf(answer.server);
      for (const status of answer.value) {
        const attributes = { [ATTR.system]: SYSTEM, [ATTR.destination]: status.function, ...server };
        result.observe(queued, Math.max(0, status.total - status.running), attributes);
        result.observe(running, status.running, attributes);
        result.observe(workers, status.workers, attributes);
      }
    }
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}
