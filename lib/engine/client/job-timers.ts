import { GearmanCancelledError, GearmanTimeoutError } from '../errors.js';
import type { JobControl } from './job.js';

export interface JobTimerSettings {
  /** The client's submitTimeout: jobs using it are checked by their submit queue, without a timer. */
  readonly submitTimeout: number;
  /** The client's default whole-job timeout for foreground jobs. */
  readonly timeout: number | undefined;
}

/**
 * The deadlines and abort signal of each job: armed at submit, released by `job.cleanup` when the
 * job settles. `untrack` stops tracking a settled job; `giveUp` takes back a job this client no
 * longer waits for (timeout, abort) if gearmand still holds it queued.
 */
export class JobTimers {
  /** Jobs watching each AbortSignal, behind one listener per signal. */
  private readonly abortWatches = new WeakMap<AbortSignal, { jobs: Set<() => void>; listener: () => void }>();

  constructor(
    private readonly settings: JobTimerSettings,
    /** `job.cleanup` of jobs without timers or signal of their own. */
    private readonly untrack: (job: JobControl) => void,
    private readonly giveUp: (job: JobControl) => void,
  ) {}

  /** Fails a job still `submitting` at the client's submit deadline (the submit queues' sweep). */
  readonly submitTimedOut = (job: JobControl): void => failSubmit(job, this.settings.submitTimeout);

  arm(job: JobControl, options: { submitTimeout?: number; timeout?: number; signal?: AbortSignal }): void {
    const submitTimeout = options.submitTimeout ?? this.settings.submitTimeout;
    const timeout = job.request.background ? undefined : (options.timeout ?? this.settings.timeout);
    const signal = options.signal;
    const shared = submitTimeout === this.settings.submitTimeout;
    // The common case allocates nothing per job: the submit queue checks the deadline.
    // Whole milliseconds (rounded up): a small integer is stored in the job without a number box.
    if (shared) job.submitDeadline = Math.ceil(performance.now()) + submitTimeout;
    if (shared && timeout === undefined && !signal) {
      job.cleanup = this.untrack;
      return;
    }
    const timers: NodeJS.Timeout[] = [];
    if (!shared) {
      timers.push(setTimeout(failSubmit, submitTimeout, job, submitTimeout));
    }
    if (timeout !== undefined) {
      timers.push(
        setTimeout(() => {
          const handle = job.handle;
          job.fail(
            new GearmanTimeoutError(
              `Job ${job.request.functionName}${handle ? ` (${handle})` : ''} did not finish within ${timeout} ms; ` +
                'it is cancelled if still queued and no other caller waits for it (a running job cannot be stopped in Gearman)',
            ),
          );
          if (handle) this.giveUp(job);
        }, timeout),
      );
    }
    let unwatch: (() => void) | undefined;
    if (signal) {
      const onAbort = () => {
        const handle = job.handle;
        job.fail(new GearmanCancelledError(`Job ${job.request.functionName} was aborted`, { cause: signal.reason }));
        if (handle) this.giveUp(job);
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else unwatch = this.watchAbort(signal, onAbort);
    }
    job.cleanup = () => {
      for (const t of timers) clearTimeout(t);
      unwatch?.();
      this.untrack(job);
    };
  }

  /**
   * A job parked until a server is up is in no submit queue: its submit deadline gets a timer of
   * its own.
   */
  ownSubmitTimer(job: JobControl): void {
    if (job.submitDeadline < 0) return;
    const timer = setTimeout(
      failSubmit,
      Math.max(0, job.submitDeadline - performance.now()),
      job,
      this.settings.submitTimeout,
    );
    job.submitDeadline = -1;
    const previous = job.cleanup;
    job.cleanup = (j) => {
      clearTimeout(timer);
      previous?.(j);
    };
  }

  /**
   * One 'abort' listener per signal, however many jobs share it (one signal for a request's many
   * jobs is common, and a listener per job would trip Node's MaxListeners warning past 10).
   * Returns the function that stops watching for this job.
   */
  private watchAbort(signal: AbortSignal, onAbort: () => void): () => void {
    let watch = this.abortWatches.get(signal);
    if (!watch) {
      const jobs = new Set<() => void>();
      const listener = () => {
        this.abortWatches.delete(signal);
        for (const fn of [...jobs]) fn();
      };
      watch = { jobs, listener };
      this.abortWatches.set(signal, watch);
      signal.addEventListener('abort', listener, { once: true });
    }
    const { jobs, listener } = watch;
    jobs.add(onAbort);
    return () => {
      jobs.delete(onAbort);
      if (jobs.size === 0 && this.abortWatches.get(signal) === watch) {
        this.abortWatches.delete(signal);
        signal.removeEventListener('abort', listener);
      }
    };
  }
}

function failSubmit(job: JobControl, submitTimeout: number): void {
  if (job.state !== 'submitting') return;
  job.fail(
    new GearmanTimeoutError(
      `No JOB_CREATED for ${job.request.functionName} within ${submitTimeout} ms: is gearmand overloaded or unreachable? ` +
        'If gearmand creates the job later, it is cancelled while still queued',
    ),
  );
}
