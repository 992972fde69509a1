import { StringDecoder } from 'node:string_decoder';
import { GearmanProtocolError } from './errors.js';
import { Fifo } from './fifo.js';

/**
 * The admin (text) protocol of gearmand 1.1.20: one command per line; the reply is a single
 * `OK ...`/`ERR ...` line or a list ended by a `.` line. Line endings vary between commands
 * (`\r\n` after OK/ERR, `\n` elsewhere), so both are accepted.
 */

/** Whether a command's reply is one line or a `.`-terminated list. */
export type AdminReplyShape = 'line' | 'list';

export type AdminReply =
  | { readonly ok: true; readonly lines: string[] }
  | { readonly ok: false; readonly code: string; readonly message: string };

const LIST_COMMANDS = new Set(['status', 'prioritystatus', 'workers', 'show']);

/** The reply shape of a command line (`show jobs` and `show unique jobs` are lists). */
export function adminReplyShape(command: string): AdminReplyShape {
  const verb = command.trim().split(/\s+/, 1)[0].toLowerCase();
  return LIST_COMMANDS.has(verb) ? 'list' : 'line';
}

/**
 * Splits an `ERR CODE text` line; gearmand encodes spaces in the text as `+`.
 * `drop function` answers in free text instead (`ERR function not found`): then the code is
 * `UNKNOWN` and the whole text is the message.
 */
export function parseErrLine(line: string): { code: string; message: string } {
  const rest = line.slice(3).trim();
  const space = rest.indexOf(' ');
  const code = space < 0 ? rest : rest.slice(0, space);
  if (!/^[A-Z][A-Z0-9_]*$/.test(code)) return { code: 'UNKNOWN', message: rest };
  const message = space < 0 ? '' : rest.slice(space + 1).replace(/\+/g, ' ');
  return { code, message };
}

/**
 * Whether the first line of a list reply is an error. A list row may itself start with "ERR"
 * (a function named `ERRORS` gives `ERRORS\t1\t0\t0`), so it must be `ERR` then a space or the
 * end, and have no tab (every tabular row has tabs). A `show unique jobs` row that is a unique
 * spelled like `ERR X` stays ambiguous: gearmand's format cannot tell them apart.
 */
function isListError(line: string): boolean {
  return (line === 'ERR' || line.startsWith('ERR ')) && !line.includes('\t');
}

/**
 * Streaming reader of admin replies. `expect(shape)` queues the shape of the next reply, in the
 * order the commands were sent (the server answers in order); each complete reply goes to `onReply`.
 */
export class AdminReplyReader {
  private text = '';
  private readonly shapes = new Fifo<AdminReplyShape>();
  private lines: string[] = [];
  /** Characters held in `lines` (for the buffer limit). */
  private linesChars = 0;
  /** Keeps a multi-byte UTF-8 character split across chunks intact. */
  private utf8 = new StringDecoder('utf8');

  constructor(
    private readonly onReply: (reply: AdminReply) => void,
    private readonly maxBuffered = 16 * 1024 * 1024,
  ) {}

  expect(shape: AdminReplyShape): void {
    this.shapes.push(shape);
  }

  /** Replies still awaited. */
  get pending(): number {
    return this.shapes.length;
  }

  reset(): void {
    this.text = '';
    this.lines = [];
    this.linesChars = 0;
    this.shapes.drain();
    this.utf8 = new StringDecoder('utf8');
  }

  push(chunk: Buffer | string): void {
    this.text += typeof chunk === 'string' ? chunk : this.utf8.write(chunk);
    let start = 0;
    for (;;) {
      const nl = this.text.indexOf('\n', start);
      if (nl < 0) break;
      const end = nl > start && this.text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      const line = this.text.slice(start, end);
      start = nl + 1;
      this.line(line);
    }
    this.text = this.text.slice(start);
    if (this.text.length + this.linesChars > this.maxBuffered) {
      this.reset();
      throw new GearmanProtocolError('BAD_ADMIN_REPLY', 'Admin reply exceeds the buffer limit without a line end');
    }
  }

  private line(line: string): void {
    const shape = this.shapes.peek();
    if (shape === undefined) {
      throw new GearmanProtocolError(
        'BAD_ADMIN_REPLY',
        `Unexpected admin reply line: ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    if (shape === 'line' ? line.startsWith('ERR') : this.lines.length === 0 && isListError(line)) {
      this.shapes.shift();
      this.onReply({ ok: false, ...parseErrLine(line) });
      return;
    }
    if (shape === 'line') {
      this.shapes.shift();
      this.onReply({ ok: true, lines: [line] });
      return;
    }
    if (line === '.') {
      const lines = this.lines;
      this.lines = [];
      this.linesChars = 0;
      this.shapes.shift();
      this.onReply({ ok: true, lines });
      return;
    }
    this.lines.push(line);
    this.linesChars += line.length + 1;
  }
}

const int = (s: string | undefined, what: string): number => {
  const n = Number(s);
  if (s === undefined || s === '' || !Number.isInteger(n)) {
    throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Expected a whole number for ${what}, got ${JSON.stringify(s)}`);
  }
  return n;
};

/** One row of `status`. */
export interface FunctionStatus {
  /** Function name. */
  readonly function: string;
  /** Jobs queued plus running. */
  readonly total: number;
  readonly running: number;
  /** Connected workers that registered the function. */
  readonly workers: number;
}

export function parseStatus(lines: string[]): FunctionStatus[] {
  return lines
    .filter((l) => l !== '')
    .map((line) => {
      const f = line.split('\t');
      if (f.length < 4) throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Bad status line: ${JSON.stringify(line)}`);
      return {
        function: f[0],
        total: int(f[1], 'status total'),
        running: int(f[2], 'status running'),
        workers: int(f[3], 'status workers'),
      };
    });
}

/** One row of `prioritystatus`: queued jobs (not running) per priority. */
export interface FunctionPriorityStatus {
  readonly function: string;
  readonly high: number;
  readonly normal: number;
  readonly low: number;
  readonly workers: number;
}

export function parsePriorityStatus(lines: string[]): FunctionPriorityStatus[] {
  return lines
    .filter((l) => l !== '')
    .map((line) => {
      const f = line.split('\t');
      if (f.length < 5)
        throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Bad prioritystatus line: ${JSON.stringify(line)}`);
      return {
        function: f[0],
        high: int(f[1], 'prioritystatus high'),
        normal: int(f[2], 'prioritystatus normal'),
        low: int(f[3], 'prioritystatus low'),
        workers: int(f[4], 'prioritystatus workers'),
      };
    });
}

/** One row of `workers`: every connection, clients and admin ones included. */
export interface WorkerInfo {
  readonly fd: number;
  readonly ip: string;
  /** The SET_CLIENT_ID value, or `undefined` when unset (`-`). */
  readonly clientId: string | undefined;
  readonly functions: string[];
}

/**
 * `FD IP ID : fn fn…`. The IP may be IPv6 (`::1`, itself full of colons) and the client id may
 * hold spaces, so the id ends at the first ` :` that is followed by a space or the line end.
 */
const WORKERS_LINE = /^(\d+) (\S+) (.*?) :(?: (.*))?$/;

export function parseWorkers(lines: string[]): WorkerInfo[] {
  return lines
    .filter((l) => l !== '')
    .map((line) => {
      const m = WORKERS_LINE.exec(line);
      if (!m) throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Bad workers line: ${JSON.stringify(line)}`);
      const [, fd, ip, clientId, functions = ''] = m;
      return {
        fd: int(fd, 'workers fd'),
        ip,
        clientId: clientId === '-' || clientId === '' ? undefined : clientId,
        functions: functions.split(' ').filter(Boolean),
      };
    });
}

/** One row of `show jobs`. */
export interface JobInfo {
  readonly handle: string;
  readonly retries: number;
  /**
   * gearmand will drop the job when a worker next grabs it: its last foreground client left
   * (docs/gearmand-behaviour.md#lost-clients), or `cancel job` marked it (in 1.1.20 a cancelled job
   * stays listed and counted until then).
   */
  readonly ignoreJob: boolean;
  /**
   * gearmand's `job_queued` flag: in 1.1.20 it is 1 for background jobs, also while one runs, and
   * `cancel job` clears it. It does not mean "queued rather than running".
   */
  readonly queued: boolean;
}

export function parseShowJobs(lines: string[]): JobInfo[] {
  return lines
    .filter((l) => l !== '')
    .map((line) => {
      const f = line.split('\t');
      if (f.length < 4)
        throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Bad show jobs line: ${JSON.stringify(line)}`);
      return {
        handle: f[0],
        retries: int(f[1], 'show jobs retries'),
        ignoreJob: f[2] !== '0',
        queued: f[3] !== '0',
      };
    });
}

/** `show unique jobs`: one unique per job; jobs without one show as ''. */
export function parseShowUniqueJobs(lines: string[]): string[] {
  return lines.slice();
}

/** The text after `OK ` of a one-line reply (`version`, `verbose`). */
export function parseOkValue(lines: string[]): string {
  const line = lines[0] ?? '';
  if (!line.startsWith('OK'))
    throw new GearmanProtocolError('BAD_ADMIN_REPLY', `Expected OK, got ${JSON.stringify(line)}`);
  return line.slice(2).trim();
}

export function parseGetpid(lines: string[]): number {
  return int(parseOkValue(lines), 'getpid');
}

/** `maxqueue`, `cancel job`, `create function`, `drop function`: a bare `OK`. */
export function parseOk(lines: string[]): void {
  parseOkValue(lines);
}
