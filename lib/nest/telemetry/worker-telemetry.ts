import type { Context, Link, Span } from '@opentelemetry/api';
import type { WorkerJob } from '../../engine/index.js';
import {
  type Api,
  ATTR,
  type Attributes,
  errorType,
  extractTraceContext,
  inTrace,
  type JobMetrics,
  jobMetrics,
  markFailed,
  operationOf,
  type Operation,
  secondsSince,
  serverOf,
  type Telemetry,
  withErrorType,
} from './telemetry.js';

interface Processing {
  readonly span: Span | undefined;
  readonly attributes: Attributes;
  readonly started: number;
  /** The first failure reported for the job. */
  failure: { type: string; err: unknown } | undefined;
}

/**
 * ServerGearman's spans and metrics: a CONSUMER span `process {function}` per job, around its
 * handler (which runs in the span's context, so its own calls join the trace), with the trace
 * context of a metadata envelope as parent (a message handler: the caller waits for it) or as a
 * link (an event handler: a background job, which may run long after it was submitted);
 * `messaging.process.duration`, `messaging.client.consumed.messages` and
 * `gearman.worker.active_jobs` per function.
 */
export class WorkerTelemetry {
  private readonly api: Api;
  private readonly tracer: Telemetry['tracer'];
  private readonly metrics: JobMetrics | undefined;
  /** Span name and attributes per function, shared by spans and metrics. */
  private readonly operations = new Map<string, Operation>();
  /** Jobs between process() and end(): a Map, as every entry is deleted when the job ends (a WeakMap costs the GC more). */
  private readonly running = new Map<WorkerJob, Processing>();

  constructor({ api, tracer, meter }: Telemetry) {
    this.api = api;
    this.tracer = tracer;
    this.metrics =
      meter &&
      jobMetrics(meter, {
        duration: [
          'messaging.process.duration',
          'Duration of a Gearman job on this worker, from its assignment to its answer',
        ],
        count: ['messaging.client.consumed.messages', 'Jobs assigned to this worker'],
        active: ['gearman.worker.active_jobs', 'Jobs running on this worker'],
      });
  }

  /**
   * Runs `run` (the job's handler, resolving once the job is answered) inside the job's span.
   * `metadata`: what the job's envelope carried (only where the pattern reads it).
   */
  process(
    job: WorkerJob,
    background: boolean,
    metadata: Record<string, string> | undefined,
    run: () => Promise<void>,
  ): Promise<void> {
    const api = this.api;
    const { name, attributes } = operationOf(this.operations, job.functionName, 'process', 'process');
    let parent: Context = api.ROOT_CONTEXT;
    let links: Link[] | undefined;
    if (metadata !== undefined && this.tracer !== undefined) {
      const remote = extractTraceContext(api, metadata);
      if (background) {
        const producer = api.trace.getSpanContext(remote);
        if (producer !== undefined && api.isSpanContextValid(producer)) links = [{ context: producer }];
        parent = api.trace.deleteSpan(remote);
      } else parent = remote;
    }
    const span = this.tracer?.startSpan(name, { kind: api.SpanKind.CONSUMER, attributes, links }, parent);
    if (span?.isRecording()) {
      span.setAttribute(ATTR.messageId, job.handle);
      span.setAttribute(ATTR.bodySize, job.payload.length);
      span.setAttributes(serverOf(job.server));
    }
    // The handler runs in the span's context when there is one to pass on (inTrace), or in the
    // caller's (baggage). A no-op span (no SDK registered) on the root context has nothing to pass.
    const traced = span !== undefined && (parent !== api.ROOT_CONTEXT || inTrace(api, span));
    // Nothing to record or pass on: the job runs as it does without telemetry.
    if (!traced && this.metrics === undefined) return run();
    if (this.metrics !== undefined) {
      this.metrics.count.add(1, attributes);
      this.metrics.active.add(1, attributes);
    }
    this.running.set(job, { span, attributes, started: performance.now(), failure: undefined });
    const answered = traced ? api.context.with(api.trace.setSpan(parent, span), run) : run();
    return answered.then(() => this.end(job));
  }

  /** The job failed (a handler error, a payload it could not read): its span and metrics say so. */
  failed(job: WorkerJob, err: unknown): void {
    const processing = this.running.get(job);
    if (processing !== undefined) processing.failure ??= { type: errorType(err), err };
  }

  /** Ends the job's span and records its metrics; once (the worker may answer before the handler returns). */
  end(job: WorkerJob): void {
    const processing = this.running.get(job);
    if (processing === undefined) return;
    this.running.delete(job);
    const { span, failure } = processing;
    let attributes = processing.attributes;
    if (failure !== undefined) {
      attributes = withErrorType(attributes, failure.type);
      if (span !== undefined) markFailed(this.api, span, failure.type, failure.err);
    }
    span?.end();
    if (this.metrics !== undefined) {
      this.metrics.duration.record(secondsSince(processing.started), attributes);
      this.metrics.active.add(-1, processing.attributes);
    }
  }
}
