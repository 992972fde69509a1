/**
 * Handler deadlines without a timer per job: the jobs of one deadline length start in order, so
 * their deadlines fall in that order too. Each length keeps its jobs in a doubly linked list (the
 * links live on the job's control, no allocation per job) and one timer, armed for the oldest.
 * A job that finishes is unlinked in O(1); the timer, when it fires for a job that has already
 * gone, re-arms for the new oldest.
 */
export interface DeadlineEntry {
  /** performance.now() at which the handler's time is up. */
  deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  /** The list this entry is in, if any. */
  list: DeadlineList | undefined;
}

export class DeadlineList {
  private head: DeadlineEntry | undefined;
  private tail: DeadlineEntry | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ms: number,
    private readonly expire: (entry: DeadlineEntry) => void,
  ) {}

  add(entry: DeadlineEntry, now: number): void {
    entry.deadline = now + this.ms;
    entry.list = this;
    entry.next = undefined;
    entry.prev = this.tail;
    if (this.tail) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    if (this.timer === undefined) this.arm(this.ms);
  }

  remove(entry: DeadlineEntry): void {
    if (entry.list !== this) return;
    if (entry.prev) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = entry.next = entry.list = undefined;
  }

  /** Stops the timer and empties the list (the worker is closing): nothing expires any more. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.head) this.remove(this.head);
  }

  private arm(delay: number): void {
    // unref'd: the worker's sockets keep the process alive while handlers run.
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(delay)));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    // Timers may fire up to a millisecond early by performance.now().
    while (this.head && this.head.deadline <= now + 1) {
      const entry = this.head;
      this.remove(entry);
      this.expire(entry);
    }
    if (this.head && this.timer === undefined) this.arm(this.head.deadline - now);
  };
}
