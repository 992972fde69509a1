import type { Span } from '@opentelemetry/api';
import type { GearmanJob } from '../../engine/index.js';
import {
  type Api,
  ATTR,
  type Attributes,
  errorType,
  injectTraceContext,
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

/** What a span of a job the caller stopped waiting for says (rxjs `timeout()`, an unsubscribe). */
const UNSUBSCRIBED = { type: 'CANCELLED', message: 'the caller unsubscribed before the job finished' };

/**
 * ClientGearman's spans and metrics: a span per submitted job, `send {function}` (CLIENT) for a
 * foreground job and `emit {function}` (PRODUCER) for a background one, from the submit to the
 * result (foreground) or to JOB_CREATED (background), with its handle and server once created
 * and an event per WORK_DATA, WORK_STATUS and WORK_WARNING; `messaging.client.operation.duration`,
 * `messaging.client.sent.messages` and `gearman.client.active_jobs` per function.
 */
export class ClientTelemetry {
  private readonly api: Api;
  private readonly tracer: Telemetry['tracer'];
  private readonly metrics: JobMetrics | undefined;
  /** Span name and attributes per function, foreground (`send`) and background (`emit`), shared by spans and metrics. */
  private readonly sends = new Map<string, Operation>();
  private readonly emits = new Map<string, Operation>();

  constructor({ api, tracer, meter }: Telemetry) {
    this.api = api;
    this.tracer = tracer;
    this.metrics =
      meter &&
      jobMetrics(meter, {
        duration: [
          'messaging.client.operation.duration',
          'Duration of a Gearman job as its caller sees it: to the result, or to JOB_CREATED for a background job',
        ],
        count: ['messaging.client.sent.messages', 'Jobs submitted'],
        active: [
          'gearman.client.active_jobs',
          'Jobs submitted and not yet finished (foreground) or created (background)',
        ],
      });
  }

  /**
   * Starts the span and metrics of a job about to be submitted to `fn`, in the caller's context;
   * undefined when there is nothing to record or propagate (no SDK, no sampled parent).
   */
  start(fn: string, background: boolean): JobTrace | undefined {
    const { name, attributes } = background
      ? operationOf(this.emits, fn, 'emit', 'send')
      : operationOf(this.sends, fn, 'send', 'send');
    const span = this.tracer?.startSpan(name, {
      kind: background ? this.api.SpanKind.PRODUCER : this.api.SpanKind.CLIENT,
      attributes,
    });
    const traced = span !== undefined && inTrace(this.api, span);
    if (!traced && this.metrics === undefined) return undefined;
    this.metrics?.active.add(1, attributes);
    return new JobTrace(this.api, traced ? span : undefined, this.metrics, attributes);
  }
}

/** One job's span and timing. */
export class JobTrace {
  private readonly started = performance.now();
  private ended = false;
  private job: GearmanJob | undefined;

  constructor(
    private readonly api: Api,
    private readonly span: Span | undefined,
    private readonly metrics: JobMetrics | undefined,
    private readonly attributes: Attributes,
  ) {}

  /**
   * The metadata to send, with the job's trace context added by the app's propagator (W3C
   * `traceparent`/`tracestate` with the OpenTelemetry SDK's default). A copy: Nest's packet
   * metadata stays as the caller made it.
   */
  inject(metadata: Record<string, string> | undefined): Record<string, string> | undefined {
    if (this.span === undefined) return metadata;
    const carrier: Record<string, string> = { ...metadata };
    injectTraceContext(this.api, this.span, carrier);
    return carrier;
  }

  /**
   * Follows a submitted job: a background job to JOB_CREATED; for a foreground one, the progress
   * events (its data and end come from ClientGearman, which reads them anyway: `data()`, `end()`).
   */
  attach(job: GearmanJob): void {
    this.job = job;
    if (job.background) {
      job.on('created', () => this.end());
      job.on('fail', (error) => this.end(error));
      return;
    }
    const span = this.span;
    if (!span?.isRecording()) return;
    job.on('warning', (data) => span.addEvent('WORK_WARNING', { [ATTR.bodySize]: data.length }));
    job.on('status', (numerator, denominator) =>
      span.addEvent('WORK_STATUS', { [ATTR.numerator]: numerator, [ATTR.denominator]: denominator }),
    );
  }

  /** A WORK_DATA of the foreground job. */
  data(data: Buffer): void {
    this.span?.addEvent('WORK_DATA', { [ATTR.bodySize]: data.length });
  }

  /** Ends the span (failed when `err` is given) and records the metrics; once. */
  end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.span;
    if (span?.isRecording() && this.job?.handle !== undefined) {
      span.setAttribute(ATTR.messageId, this.job.handle);
      if (this.job.server !== undefined) span.setAttributes(serverOf(this.job.server));
    }
    let attributes = this.attributes;
    if (err !== undefined) {
      const type = err === UNSUBSCRIBED ? UNSUBSCRIBED.type : errorType(err);
      attributes = withErrorType(attributes, type);
      if (span !== undefined) markFailed(this.api, span, type, err);
    }
    span?.end();
    if (this.metrics !== undefined) {
      this.metrics.duration.record(secondsSince(this.started), attributes);
      this.metrics.count.add(1, attributes);
      this.metrics.active.add(-1, this.attributes);
    }
  }

  /** The caller unsubscribed while the job ran. */
  unsubscribed(): void {
    this.end(UNSUBSCRIBED);
  }
}
