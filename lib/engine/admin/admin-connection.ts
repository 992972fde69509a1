import type { Socket } from 'node:net';
import { Fifo } from '../../protocol/fifo.js';
import {
  type AdminReply,
  AdminReplyReader,
  adminReplyShape,
  type FunctionPriorityStatus,
  type FunctionStatus,
  type JobInfo,
  parseGetpid,
  parseOk,
  parseOkValue,
  parsePriorityStatus,
  parseShowJobs,
  parseShowUniqueJobs,
  parseStatus,
  parseWorkers,
  type WorkerInfo,
} from '../../protocol/admin-replies.js';
import { GearmanAdminError, GearmanConnectionError, GearmanTimeoutError, invalidArgument } from '../errors.js';
import { type ConnectionOptions, ENGINE_DEFAULTS, positiveInt, resolveConnectionOptions } from '../options.js';
import type { ResolvedServer } from '../servers.js';
import { openSocket } from '../socket.js';

export type { FunctionPriorityStatus, FunctionStatus, JobInfo, WorkerInfo };

/** Timeouts (in milliseconds) and keep-alive of one admin connection. */
export interface GearmanAdminConnectionOptions extends Pick<ConnectionOptions, 'connectTimeout' | 'keepAlive'> {
  /** Time allowed for each reply, counted from when the command is on a connected socket. Default 5000. */
  commandTimeout?: number;
}

/** What one admin connection runs with, every default applied. */
interface AdminSettings {
  readonly connectTimeout: number;
  readonly keepAlive: number | false;
  readonly commandTimeout: number;
}

/** A per-queue-priority `maxqueue` limit. Each is compared with the function's TOTAL (queued plus running). */
export interface MaxQueueLimits {
  high: number;
  normal: number;
  low: number;
}

interface PendingCommand {
  readonly line: string;
  readonly resolve: (lines: string[]) => void;
  readonly reject: (error: Error) => void;
  /** performance.now() by which the reply is due; set once the socket is connected. */
  deadline: number;
}

/** One socket and the replies still owed on it; a reconnect gets a fresh one so late events of the old socket touch nothing. */
interface Link {
  readonly socket: Socket;
  readonly reader: AdminReplyReader;
  /** Replies come in command order, so only the oldest command's deadline needs a timer. */
  readonly pending: Fifo<PendingCommand>;
  timer?: ReturnType<typeof setTimeout>;
  connected: boolean;
  /** Why the link is being closed, when we close it ourselves (timeout, close(), bad reply). */
  closeReason?: (command: PendingCommand) => Error;
  lastError?: Error;
}

/** gearmand's `drop function` errors carry no code, only text; give them one to switch on. */
const CODELESS_ERRORS: Record<string, string> = {
  'function not found': 'FUNCTION_NOT_FOUND',
  'there are still connected workers or executing clients': 'FUNCTION_IN_USE',
};

/**
 * A connection to one gearmand's admin (text) port, as gearmand 1.1.20 speaks it.
 *
 * The socket opens on the first command. Commands are pipelined: gearmand answers them in order,
 * so replies are matched first-in first-out. If the socket is lost, every waiting command fails
 * with `GearmanConnectionError('CONNECTION_LOST')` and the next command opens a new one. A command
 * that times out closes the socket too, because a late reply would otherwise be taken as the
 * answer to the next command. While no command is waiting, the socket does not keep Node running.
 * A reply that does not parse rejects with the protocol layer's `GearmanProtocolError`.
 *
 * There is no `shutdown()`: gearmand 1.1.15 and later removed that command (it answers
 * `ERR UNKNOWN_COMMAND`). Stop gearmand through its service manager instead.
 */
export class GearmanAdminConnection {
  private link: Link | undefined;
  private closed = false;
  private readonly settings: AdminSettings;

  constructor(
    /** The server this connection talks to. */
    readonly server: ResolvedServer,
    options: GearmanAdminConnectionOptions = {},
  ) {
    const { connectTimeout, keepAlive } = resolveConnectionOptions({
      connectTimeout: options.connectTimeout,
      keepAlive: options.keepAlive,
    });
    const commandTimeout = positiveInt('commandTimeout', options.commandTimeout, ENGINE_DEFAULTS.commandTimeout);
    this.settings = { connectTimeout, keepAlive, commandTimeout };
  }

  /** `host:port` of the server. */
  get address(): string {
    return this.server.address;
  }

  /** Whether a socket is connected right now (it opens on the next command otherwise). */
  get connected(): boolean {
    return this.link !== undefined && this.link.connected;
  }

  /**
   * Sends one admin line and resolves with the reply's lines: the single `OK ...` line, or the
   * rows of a list without the closing `.`. An `ERR` reply rejects with {@link GearmanAdminError}
   * carrying gearmand's code in `serverCode`.
   */
  command(line: string): Promise<string[]> {
    if (typeof line !== 'string' || /[\r\n\0]/.test(line)) {
      return Promise.reject(
        invalidArgument(
          `An admin command is one line: it must not contain \\r, \\n or NUL (got ${JSON.stringify(line)})`,
        ),
      );
    }
    if (line.trim() === '') {
      return Promise.reject(invalidArgument('The admin command is empty: pass a command such as "status"'));
    }
    if (this.closed) {
      return Promise.reject(
        new GearmanConnectionError(
          'CLOSED',
          `The admin connection to ${this.address} was closed: create a new one to send "${line}"`,
          this.address,
        ),
      );
    }
    return new Promise<string[]>((resolve, reject) => {
      const link = this.link && !this.link.socket.destroyed && !this.link.closeReason ? this.link : this.open();
      // Before the socket is up, the connect timeout applies; the command's own clock starts on connect.
      const entry: PendingCommand = { line, resolve, reject, deadline: link.connected ? this.dueTime() : -1 };
      link.pending.push(entry);
      link.reader.expect(adminReplyShape(line));
      link.socket.ref();
      link.socket.write(`${line}\n`);
      if (link.connected) this.arm(link);
    });
  }

  /** `status`: per function, jobs queued plus running, running, and workers. */
  async status(): Promise<FunctionStatus[]> {
    return parseStatus(await this.command('status'));
  }

  /** `prioritystatus` (gearmand 1.1.15+): queued, not running, jobs per priority, and workers. */
  async priorityStatus(): Promise<FunctionPriorityStatus[]> {
    return parsePriorityStatus(await this.command('prioritystatus'));
  }

  /**
   * `workers`: one row per connection to gearmand, so clients and admin connections (this one
   * included) are listed too, with no functions.
   */
  async workers(): Promise<WorkerInfo[]> {
    return parseWorkers(await this.command('workers'));
  }

  /** `version`, e.g. `1.1.20+ds`. */
  async version(): Promise<string> {
    return parseOkValue(await this.command('version'));
  }

  /** `getpid`: gearmand's process id. */
  async getpid(): Promise<number> {
    return parseGetpid(await this.command('getpid'));
  }

  /** `verbose`: gearmand's log level name, e.g. `ERROR`. */
  async verbose(): Promise<string> {
    return parseOkValue(await this.command('verbose'));
  }

  /**
   * `maxqueue`: caps a function's queue. A submit is refused with `ERROR QUEUE_ERROR` once the
   * function's TOTAL (queued plus running, cancelled jobs not yet discarded included) reaches the
   * limit of the job's priority; 0 or less means unlimited. gearmand forgets limits when it restarts.
   *
   * gearmand answers OK for a function it does not know yet, but then ignores the limit. So this
   * also asks `status` (pipelined, just before) and resolves `false` when the function was unknown
   * and the limit was not applied: set it again once a worker has registered the function.
   */
  async maxqueue(fn: string, limit: number | MaxQueueLimits): Promise<boolean> {
    checkToken('Function name', fn);
    const limits = typeof limit === 'number' ? [limit] : [limit?.high, limit?.normal, limit?.low];
    for (const n of limits) {
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -2147483648 || n > 2147483647) {
        throw invalidArgument(
          `maxqueue limits must be whole numbers (0 or less for unlimited), given as a number or { high, normal, low }; got ${JSON.stringify(limit)}`,
        );
      }
    }
    const [known] = await Promise.all([
      this.status().then((rows) => rows.some((row) => row.function === fn)),
      this.command(`maxqueue ${fn} ${limits.join(' ')}`).then(parseOk),
    ]);
    return known;
  }

  /** `show jobs`: every job gearmand holds, queued or running. */
  async showJobs(): Promise<JobInfo[]> {
    return parseShowJobs(await this.command('show jobs'));
  }

  /** `show unique jobs`: the unique key of every job; `''` for a job submitted without one. */
  async showUniqueJobs(): Promise<string[]> {
    return parseShowUniqueJobs(await this.command('show unique jobs'));
  }

  /**
   * `cancel job`: resolves `true` on OK and `false` when gearmand does not know the handle
   * (`ERR UNKNOWN_JOB`, also the answer for a finished job).
   *
   * gearmand does not remove a cancelled queued job at once: it marks it ignored (`ignoreJob` in
   * {@link showJobs}), foreground clients get WORK_FAIL, and the job stays listed and counted in
   * `status` TOTAL (and so against `maxqueue`) until a worker of that function grabs it and gets
   * NO_JOB instead. Until then, cancelling it again also answers OK.
   *
   * A job that is already running also gets OK, but gearmand cannot stop it: the worker carries
   * on, and its result is still forwarded to foreground clients.
   */
  async cancelJob(handle: string): Promise<boolean> {
    checkToken('Job handle', handle);
    try {
      parseOk(await this.command(`cancel job ${handle}`));
      return true;
    } catch (error) {
      if (error instanceof GearmanAdminError && error.serverCode === 'UNKNOWN_JOB') return false;
      throw error;
    }
  }

  /**
   * `create function`: makes gearmand list a function that has no workers yet.
   *
   * **Warning:** gearmand 1.1.20 drops the last character (byte) of the name: `create function
   * resize` creates `resiz`. This method sends the name unchanged and resolves with the name
   * gearmand really created, so check it. Names of one character (which would create a function
   * with an empty name) and names ending in a non-ASCII character (which would be cut in the
   * middle of its UTF-8 bytes) are refused.
   */
  async createFunction(name: string): Promise<string> {
    checkToken('Function name', name);
    const last = name.charCodeAt(name.length - 1);
    if (name.length < 2 || last > 0x7f) {
      throw invalidArgument(
        `gearmand 1.1.20 drops the last byte of the name given to "create function", so ${JSON.stringify(name)} would create ` +
          (name.length < 2 ? 'a function with an empty name' : 'a name ending in a broken UTF-8 character') +
          ': pass a name of two or more characters whose last character is ASCII',
      );
    }
    parseOk(await this.command(`create function ${name}`));
    return name.slice(0, -1);
  }

  /**
   * `drop function`: removes a function that has no workers and no running jobs. Rejects with
   * {@link GearmanAdminError} whose `serverCode` is `FUNCTION_NOT_FOUND` or `FUNCTION_IN_USE`
   * (gearmand sends only text for these; the codes are this library's).
   */
  async dropFunction(name: string): Promise<void> {
    checkToken('Function name', name);
    parseOk(await this.command(`drop function ${name}`));
  }

  /** Closes the socket. Waiting commands and any later ones reject with `GearmanConnectionError('CLOSED')`. */
  async close(): Promise<void> {
    this.closed = true;
    const link = this.link;
    if (!link) return;
    const done = new Promise<void>((resolve) => link.socket.once('close', () => resolve()));
    this.shut(
      link,
      (c) =>
        new GearmanConnectionError(
          'CLOSED',
          `The admin connection to ${this.address} was closed before gearmand answered "${c.line}"`,
          this.address,
        ),
    );
    await done;
  }

  private open(): Link {
    const socket = openSocket(this.server, this.settings, () => {
      link.connected = true;
      const due = this.dueTime();
      for (let i = 0; i < link.pending.length; i++) link.pending.at(i)!.deadline = due;
      this.arm(link);
    });
    const link: Link = {
      socket,
      pending: new Fifo(),
      connected: false,
      reader: new AdminReplyReader((reply) => this.onReply(link, reply)),
    };
    this.link = link;

    socket.on('data', (chunk: Buffer) => {
      try {
        link.reader.push(chunk);
      } catch (error) {
        this.shut(
          link,
          (c) =>
            new GearmanConnectionError(
              'CONNECTION_LOST',
              `Closed the admin connection to ${this.address}: its reply to "${c.line}" could not be read (${(error as Error).message}). Is that port a gearmand?`,
              this.address,
              { cause: error },
            ),
        );
      }
    });
    socket.on('error', (error) => {
      link.lastError = error;
      // openSocket gave up connecting: the waiting commands fail with what to do about it.
      if (error instanceof GearmanConnectionError && error.code === 'CONNECT_TIMEOUT') {
        this.shut(link, () => this.connectTimeoutError(error));
      }
    });
    socket.on('close', () => {
      if (this.link === link) this.link = undefined;
      link.reader.reset();
      clearTimeout(link.timer);
      for (const entry of link.pending.drain()) {
        entry.reject(link.closeReason ? link.closeReason(entry) : this.lostError(link, entry));
      }
    });
    return link;
  }

  private connectTimeoutError(cause: GearmanConnectionError): GearmanConnectionError {
    return new GearmanConnectionError(
      'CONNECT_TIMEOUT',
      `Could not connect to gearmand at ${this.address} within ${this.settings.connectTimeout} ms` +
        `${this.server.tls ? ' (TLS handshake included; is TLS enabled on that port?)' : ''}: check the address, firewall and that gearmand is running, or raise connectTimeout`,
      this.address,
      { cause },
    );
  }

  private lostError(link: Link, entry: PendingCommand): GearmanConnectionError {
    const cause = link.lastError;
    // The socket's own words (`connect ECONNREFUSED ...`, `self-signed certificate`) say what to fix.
    const why = cause ? ` (${cause.message})` : '';
    if (!link.connected) {
      return new GearmanConnectionError(
        'NO_SERVER',
        `Could not connect to gearmand at ${this.address}${why} to send "${entry.line}": check that gearmand is running and listening there`,
        this.address,
        { cause },
      );
    }
    return new GearmanConnectionError(
      'CONNECTION_LOST',
      `The connection to gearmand at ${this.address} was lost${why} before it answered "${entry.line}": ` +
        'the next command reconnects; repeat this one if that is safe',
      this.address,
      { cause },
    );
  }

  private dueTime(): number {
    return performance.now() + this.settings.commandTimeout;
  }

  /** Times the oldest command still waiting; a command that times out closes the link. */
  private arm(link: Link): void {
    const entry = link.pending.peek();
    if (link.timer !== undefined || entry === undefined) return;
    link.timer = setTimeout(
      () => {
        link.timer = undefined;
        // Already closing (an earlier command timed out): the close fails this one with the reason.
        if (link.closeReason || link.pending.peek() !== entry) return;
        link.pending.shift();
        entry.reject(
          new GearmanTimeoutError(
            `gearmand at ${this.address} did not answer "${entry.line}" within ${this.settings.commandTimeout} ms: ` +
              'the server may be overloaded or stuck; raise commandTimeout or check the server (the connection was closed and the next command reconnects)',
          ),
        );
        this.shut(
          link,
          (c) =>
            new GearmanConnectionError(
              'CONNECTION_LOST',
              `Closed the admin connection to ${this.address} before gearmand answered "${c.line}" because an earlier command ("${entry.line}") timed out: retry`,
              this.address,
            ),
        );
      },
      Math.max(0, Math.ceil(entry.deadline - performance.now())),
    );
  }

  /** Closes a link on purpose; its waiting commands fail with `reason` when the socket has closed. */
  private shut(link: Link, reason: (command: PendingCommand) => Error): void {
    link.closeReason ??= reason;
    if (this.link === link) this.link = undefined;
    link.socket.destroy();
  }

  private onReply(link: Link, reply: AdminReply): void {
    const entry = link.pending.shift();
    if (link.pending.length === 0) link.socket.unref();
    // A reply to a command that already timed out cannot come: a timeout closes the link.
    if (!entry) return;
    clearTimeout(link.timer);
    link.timer = undefined;
    this.arm(link);
    if (reply.ok) {
      entry.resolve(reply.lines);
      return;
    }
    const { message } = reply;
    // `drop function` answers in free text ("ERR function not found"), which the reader reports
    // as code UNKNOWN: give the known texts a code to switch on.
    const code = reply.code === 'UNKNOWN' ? (CODELESS_ERRORS[message] ?? 'UNKNOWN') : reply.code;
    const hint =
      code === 'UNKNOWN_COMMAND'
        ? ': gearmand does not know this command (shutdown was removed in 1.1.15; commands and arguments are separated by single spaces)'
        : code === 'INVALID_ARGUMENTS'
          ? ': check the number of arguments'
          : '';
    entry.reject(
      new GearmanAdminError(
        code,
        `gearmand at ${this.address} answered "${entry.line}" with ERR ${code}${message ? ` (${message})` : ''}${hint}`,
        this.address,
      ),
    );
  }
}

/**
 * @internal Admin arguments are split on spaces by gearmand, so one argument cannot hold
 * whitespace. GearmanAdmin checks a handle once before asking every server.
 */
export function checkToken(what: string, value: string): void {
  if (typeof value !== 'string' || value === '' || /[\s\0]/.test(value)) {
    throw invalidArgument(
      `${what} must be a non-empty string without spaces, line breaks or NUL, because gearmand splits admin commands on spaces (got ${JSON.stringify(value)})`,
    );
  }
}
