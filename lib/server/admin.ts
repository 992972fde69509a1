/**
 * The admin (text) protocol of the embedded server, with gearmand 1.1.20's exact replies
 * (libgearman-server/text.cc): how it splits a line, its commands, their formats and their line
 * endings (`OK`/`ERR` in `\r\n`, `version`/`getpid`/`verbose` in `\n`, lists ended by `.\n`).
 * For development and tests; production stays on gearmand.
 */
import { GEARMAND_HASH_SIZE, gearmandHash, strtoll } from './hash.js';
import type { Job } from './job-queue.js';
import type { JobServer } from './job-server.js';

/** What `workers` needs of a connection. */
export interface AdminPeer {
  readonly fd: number;
  readonly host: string;
  /** SET_CLIENT_ID, `-` when unset. */
  readonly id: string;
  readonly registrations: readonly { readonly fn: { readonly nameBuf: Buffer } }[];
}

/** gearmand's text packet takes at most this many words; a line with more closes the connection. */
const MAX_WORDS = 5;

const OK = 'OK\r\n';
const UNKNOWN_ERROR = 'ERR UNKNOWN_ERROR\r\n';
const invalidArguments = (cmd: string) =>
  `ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+${cmd}\r\n`;
const unknownCommand = (cmd: string) => `ERR UNKNOWN_COMMAND Unknown+server+command${cmd}\r\n`;

/** One word of a line, as gearmand's parser cuts it. */
interface Word {
  /** The word as C sees it (up to a NUL), latin1. */
  readonly text: string;
  /** Where it starts in the line. */
  readonly start: number;
  /** gearmand's `arg_size`: the word, its terminator and the spaces after it (for the last one, up to the line end, `\r` and `\n` included). */
  readonly size: number;
}

/**
 * gearmand's split (plugins/protocol/gear/protocol.cc): the line ends at `\n`, a `\r` before it is
 * dropped, words are separated by runs of spaces (only spaces). Undefined when the line has more
 * words than gearmand's text packet holds.
 */
function split(line: Buffer): Word[] | undefined {
  const used = line.length + 1; // the line and its \n
  const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
  const words: Word[] = [];
  let pos = 0;
  let size = used;
  for (;;) {
    let space = line.indexOf(0x20, pos);
    if (space >= end) space = -1;
    if (space < 0) {
      words.push({ text: cText(line, pos, end), start: pos, size });
      break;
    }
    let next = space + 1;
    while (next < end && line[next] === 0x20) next++;
    words.push({ text: cText(line, pos, space), start: pos, size: next - pos });
    size -= next - pos;
    pos = next;
    if (words.length > MAX_WORDS) return undefined;
  }
  return words.length > MAX_WORDS ? undefined : words;
}

function cText(line: Buffer, start: number, end: number): string {
  const nul = line.indexOf(0, start);
  return line.toString('latin1', start, nul >= 0 && nul < end ? nul : end);
}

/** C's strcasecmp, in the C locale (ASCII letters only). */
function caseEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x >= 0x41 && x <= 0x5a) x += 32;
    if (y >= 0x41 && y <= 0x5a) y += 32;
    if (x !== y) return false;
  }
  return true;
}

/** C's `atoi` as an int. */
const atoi = (s: string): number => Number(BigInt.asIntN(32, strtoll(Buffer.from(s, 'latin1')).value));

/** A name as gearmand prints it with `%.*s` (up to a NUL). */
const printed = (name: Buffer): string => {
  const nul = name.indexOf(0);
  return name.toString('latin1', 0, nul < 0 ? name.length : nul);
};

export interface AdminContext {
  readonly jobs: JobServer;
  /** Every open connection, oldest first. */
  readonly peers: () => Iterable<AdminPeer>;
  readonly pid: number;
}

/**
 * Runs one admin line (without its `\n`); the reply text (latin1), or undefined when gearmand
 * would close the connection.
 */
export function runAdminLine(ctx: AdminContext, line: Buffer): string | undefined {
  const words = split(line);
  if (words === undefined) return undefined;
  const argc = words.length;
  const cmd = words[0].text;
  const arg = (i: number) => words[i].text;
  const jobs = ctx.jobs;

  if (caseEqual(cmd, 'workers')) {
    const rows: string[] = [];
    for (const peer of ctx.peers()) {
      let row = `${peer.fd} ${peer.host} ${peer.id} :`;
      for (const reg of peer.registrations) row += ` ${printed(reg.fn.nameBuf)}`;
      rows.push(`${row}\n`);
    }
    // gearmand lists the newest connection first.
    return `${rows.reverse().join('')}.\n`;
  }
  if (caseEqual(cmd, 'prioritystatus')) {
    let out = '';
    for (const fn of jobs.functionsInGearmandOrder()) {
      const q = fn.queuedByPriority;
      out += `${printed(fn.nameBuf)}\t${q[0]}\t${q[1]}\t${q[2]}\t${fn.workers.length}\n`;
    }
    return `${out}.\n`;
  }
  if (caseEqual(cmd, 'status')) {
    let out = '';
    for (const fn of jobs.functionsInGearmandOrder()) {
      out += `${printed(fn.nameBuf)}\t${fn.total}\t${fn.running}\t${fn.workers.length}\n`;
    }
    return `${out}.\n`;
  }
  if (argc >= 3 && caseEqual(cmd, 'cancel')) {
    if (argc === 3 && caseEqual(arg(1), 'job')) return jobs.cancel(arg(2)) ? OK : 'ERR UNKNOWN_JOB\r\n';
    return UNKNOWN_ERROR;
  }
  if (argc >= 2 && caseEqual(cmd, 'show')) {
    if (argc === 3 && caseEqual(arg(1), 'unique') && caseEqual(arg(2), 'jobs')) {
      const rows = [...jobs.jobs.values()].map((job) => ({ job, bucket: jobs.uniqueHash(job) % GEARMAND_HASH_SIZE }));
      rows.sort((a, b) => a.bucket - b.bucket || b.job.id - a.job.id);
      return `${rows.map((r) => `${printed(storedUnique(r.job))}\n`).join('')}.\n`;
    }
    if (argc === 2 && caseEqual(arg(1), 'jobs')) {
      const rows = [...jobs.jobs.values()].map((job) => ({ job, bucket: handleBucket(job) }));
      rows.sort((a, b) => a.bucket - b.bucket || b.job.id - a.job.id);
      return `${rows
        .map(({ job }) => `${job.handle}\t${job.retries}\t${job.ignore ? 1 : 0}\t${job.queued ? 1 : 0}\n`)
        .join('')}.\n`;
    }
    return 'ERR UNKNOWN_SHOW_ARGUMENTS\r\n';
  }
  if (caseEqual(cmd, 'create')) {
    if (argc === 3 && caseEqual(arg(1), 'function')) {
      // gearmand takes the name as `arg_size - 2` bytes: with a line ending in `\n` alone, that drops
      // the name's last character (`create function newfn` creates `newf`); with `\r\n` the name is
      // whole (docs/gearmand-behaviour.md, "create function").
      const w = words[2];
      const length = w.size - 2;
      // gearmand would read a negative length as a huge one and crash; refused here instead.
      if (length < 0) return invalidArguments(cmd);
      jobs.functionFor(line.subarray(w.start, w.start + length));
      return OK;
    }
    return invalidArguments(cmd);
  }
  if (caseEqual(cmd, 'drop')) {
    if (argc === 3 && caseEqual(arg(1), 'function')) {
      for (const fn of jobs.functionsInGearmandOrder()) {
        if (!caseEqual(printed(fn.nameBuf), arg(2))) continue;
        if (fn.workers.length !== 0 || fn.running !== 0)
          return 'ERR there are still connected workers or executing clients\r\n';
        jobs.dropFunction(fn);
        return OK;
      }
      return 'ERR function not found\r\n';
    }
    return invalidArguments(cmd);
  }
  if (caseEqual(cmd, 'maxqueue')) {
    if (argc === 1) return invalidArguments(cmd);
    const limits = [0, 0, 0];
    for (let p = 0; p < 3; p++) {
      if (argc > p + 2) limits[p] = Math.max(0, atoi(arg(p + 2)));
    }
    if (argc <= 3) limits[1] = limits[2] = limits[0];
    // Exact, case-sensitive name; an unknown function gets OK and no limit.
    const fn = jobs.functions.get(arg(1));
    if (fn !== undefined) for (let p = 0; p < 3; p++) fn.maxQueue[p] = limits[p];
    return OK;
  }
  if (caseEqual(cmd, 'getpid')) return `OK ${ctx.pid}\n`;
  if (caseEqual(cmd, 'verbose')) return `OK ${jobs.options.verbose}\n`;
  if (caseEqual(cmd, 'version')) return `OK ${jobs.options.version}\n`;
  // `shutdown` was removed in gearmand 1.1.15 and lands here too.
  return unknownCommand(cmd);
}

function storedUnique(job: Job): Buffer {
  return Buffer.from(job.unique.slice(0, 63), 'latin1');
}

function handleBucket(job: Job): number {
  return gearmandHash(Buffer.from(job.handle, 'latin1')) % GEARMAND_HASH_SIZE;
}
