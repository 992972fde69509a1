/**
 * The command line of `nestjs-gearman-server`: gearmand's common flags, so that it drops in where
 * a script starts gearmand, and a few of its own. For development and tests; production stays on
 * gearmand.
 */
import { GearmanError } from '../protocol/errors.js';
import { type GearmanServerOptions, LOG_LEVELS, type GearmanServerLogLevel } from './options.js';

export interface ServerCommandLine {
  readonly options: GearmanServerOptions;
  /** `-P`: where to write the process id. */
  readonly pidFile: string | undefined;
  /** `-l`: a file, `stderr` (default) or `none`. */
  readonly logFile: string;
  /** `-d`: detach and run in the background. */
  readonly daemon: boolean;
  readonly help: boolean;
  readonly version: boolean;
  /** Flags gearmand has that mean nothing here (accepted and ignored). */
  readonly ignored: string[];
}

type Setter = (cl: MutableCommandLine, value: string, flag: string) => void;
interface MutableCommandLine {
  options: Record<string, unknown>;
  pidFile: string | undefined;
  logFile: string;
  daemon: boolean;
  help: boolean;
  version: boolean;
  ignored: string[];
}

function usageError(message: string): GearmanError {
  return new GearmanError('INVALID_ARGUMENT', `${message} (see --help)`);
}

function integer(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw usageError(
      `${flag} takes a whole number${min > 0 ? ` of at least ${min}` : min === 0 ? ' (0 or more)' : ''}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

const set =
  (key: keyof GearmanServerOptions, parse: (flag: string, value: string) => unknown = (_f, v) => v): Setter =>
  (cl, value, flag) => {
    cl.options[key] = parse(flag, value);
  };
const ignore: Setter = (cl, _value, flag) => {
  cl.ignored.push(flag);
};

/** Long name, short letter, whether it takes a value, what it sets. */
const FLAGS: [long: string, short: string | undefined, takesValue: boolean, setter: Setter][] = [
  ['listen', 'L', true, set('host')],
  ['port', 'p', true, set('port', (f, v) => integer(f, v, 0))],
  ['pid-file', 'P', true, (cl, v) => (cl.pidFile = v)],
  ['log-file', 'l', true, (cl, v) => (cl.logFile = v)],
  [
    'verbose',
    undefined,
    true,
    set('verbose', (f, v) => {
      const level = v.toUpperCase() as GearmanServerLogLevel;
      if (!LOG_LEVELS.includes(level))
        throw usageError(`Invalid value for ${f} supplied: ${JSON.stringify(v)} (one of ${LOG_LEVELS.join(', ')})`);
      return level;
    }),
  ],
  ['job-retries', 'j', true, set('jobRetries', (f, v) => integer(f, v, 0))],
  ['worker-wakeup', 'w', true, set('workerWakeup', (f, v) => integer(f, v, 0))],
  ['round-robin', 'R', false, set('roundRobin', () => true)],
  ['exceptions', undefined, false, set('exceptions', () => true)],
  ['job-handle-prefix', undefined, true, set('jobHandlePrefix')],
  ['backlog', 'b', true, set('backlog', (f, v) => integer(f, v, 1))],
  ['daemon', 'd', false, (cl) => (cl.daemon = true)],
  ['help', 'h', false, (cl) => (cl.help = true)],
  ['version', 'V', false, (cl) => (cl.version = true)],
  [
    'queue-type',
    'q',
    true,
    (_cl, v, f) => {
      if (v !== 'builtin') {
        throw usageError(
          `${f} ${v}: the embedded server keeps jobs in memory only ("builtin"); use gearmand for a persistent queue`,
        );
      }
    },
  ],
  // gearmand's, meaning nothing here.
  ['threads', 't', true, ignore],
  ['file-descriptors', 'f', true, ignore],
  ['hashtable-buckets', undefined, true, ignore],
  ['keepalive', undefined, false, ignore],
  ['keepalive-idle', undefined, true, ignore],
  ['keepalive-interval', undefined, true, ignore],
  ['keepalive-count', undefined, true, ignore],
  ['protocol', 'r', true, ignore],
  ['config-file', undefined, true, ignore],
  ['syslog', undefined, false, ignore],
  ['coredump', undefined, false, ignore],
  ['user', 'u', true, ignore],
  // Its own.
  ['max-queue', undefined, true, set('maxQueue', (f, v) => integer(f, v, 1))],
  ['max-queue-bytes', undefined, true, set('maxQueueBytes', (f, v) => integer(f, v, 1))],
  ['max-packet-size', undefined, true, set('maxPacketSize', (f, v) => integer(f, v, 1024))],
  ['global-priority', undefined, false, set('globalPriority', () => true)],
  ['no-epoch-wakeup', undefined, false, set('epochWakeup', () => false)],
  [
    'can-do-timeout',
    undefined,
    true,
    set('canDoTimeout', (f, v) => {
      if (v !== 'first-job' && v !== 'current-job')
        throw usageError(`${f} takes first-job or current-job, got ${JSON.stringify(v)}`);
      return v;
    }),
  ],
  ['server-version', undefined, true, set('version')],
];

const BY_LONG = new Map(FLAGS.map((f) => [f[0], f]));
const BY_SHORT = new Map(FLAGS.filter((f) => f[1] !== undefined).map((f) => [f[1]!, f]));

/** Parses gearmand-style arguments: `--name value`, `--name=value`, `-x value`, `-xvalue`. */
export function parseServerCommandLine(argv: readonly string[]): ServerCommandLine {
  const cl: MutableCommandLine = {
    options: {},
    pidFile: undefined,
    logFile: 'stderr',
    daemon: false,
    help: false,
    version: false,
    ignored: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let spec: (typeof FLAGS)[number] | undefined;
    let inline: string | undefined;
    let flag: string;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
      spec = BY_LONG.get(name);
      flag = `--${name}`;
    } else if (arg.startsWith('-') && arg.length >= 2) {
      if (arg === '-v') throw usageError('Option -v has been deprecated, please use --verbose');
      spec = BY_SHORT.get(arg[1]);
      flag = arg.slice(0, 2);
      if (arg.length > 2) inline = arg.slice(2);
    } else {
      throw usageError(`Unexpected argument ${JSON.stringify(arg)}`);
    }
    if (spec === undefined) throw usageError(`Unknown option ${flag}`);
    const [, , takesValue, setter] = spec;
    let value = '';
    if (takesValue) {
      if (inline !== undefined) value = inline;
      else if (i + 1 < argv.length) value = argv[++i];
      else throw usageError(`${flag} needs a value`);
    } else if (inline !== undefined) {
      throw usageError(`${flag} takes no value`);
    }
    setter(cl, value, flag);
  }
  return cl;
}

/** Turns options back into a command line (for `spawnGearmanServer`). */
export function serverCommandLine(options: GearmanServerOptions): string[] {
  const args: string[] = [];
  const o = options;
  if (o.host !== undefined) args.push('-L', o.host);
  if (o.port !== undefined) args.push('-p', String(o.port));
  if (o.jobRetries !== undefined) args.push('-j', String(o.jobRetries));
  if (o.workerWakeup !== undefined) args.push('-w', String(o.workerWakeup));
  if (o.roundRobin) args.push('--round-robin');
  if (o.exceptions) args.push('--exceptions');
  if (o.jobHandlePrefix !== undefined) args.push('--job-handle-prefix', o.jobHandlePrefix);
  if (o.backlog !== undefined) args.push('-b', String(o.backlog));
  if (o.verbose !== undefined) args.push(`--verbose=${o.verbose}`);
  if (o.maxQueue !== undefined) args.push('--max-queue', String(o.maxQueue));
  if (o.maxQueueBytes !== undefined) args.push('--max-queue-bytes', String(o.maxQueueBytes));
  if (o.maxPacketSize !== undefined) args.push('--max-packet-size', String(o.maxPacketSize));
  if (o.globalPriority) args.push('--global-priority');
  if (o.epochWakeup === false) args.push('--no-epoch-wakeup');
  if (o.canDoTimeout !== undefined) args.push('--can-do-timeout', o.canDoTimeout);
  if (o.version !== undefined) args.push('--server-version', o.version);
  return args;
}

export const HELP = `Usage: nestjs-gearman-server [options]

An embedded Gearman job server (gearmand 1.1.20's binary and admin protocols, in memory).
For development and tests; production stays on gearmand.

gearmand's options:
  -L, --listen HOST          Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  -p, --port PORT            Port (default 4730; 0 picks a free one and prints it)
  -P, --pid-file FILE        Write the process id there (removed on exit)
  -l, --log-file FILE        Log to FILE, "stderr" (default) or "none"
      --verbose LEVEL        FATAL, ALERT, CRITICAL, ERROR (default), WARNING, NOTICE, INFO, DEBUG
  -j, --job-retries N        Drop a job after N lost workers; 0 (default) retries forever
  -w, --worker-wakeup N      Sleeping workers woken per new job; 0 (default) wakes all
  -R, --round-robin          A worker's functions take turns
      --exceptions           Send WORK_EXCEPTION to every client without OPTION_REQ
      --job-handle-prefix P  Job handles are P:<n> (default H:<hostname>)
  -b, --backlog N            Listen backlog (default 32)
  -d, --daemon               Detach and run in the background
  -q, --queue-type builtin   Only the in-memory queue exists here
  -t, --threads N            Accepted and ignored (one thread), as are -f, -u, -r, --syslog,
                             --coredump, --keepalive*, --hashtable-buckets, --config-file
  -h, --help                 This text
  -V, --version              The version

Its own options:
      --max-queue N          Jobs held at once, all functions (default 1000000); then QUEUE_ERROR
      --max-queue-bytes N    Payload bytes held at once (default 1073741824); then QUEUE_ERROR
      --max-packet-size N    Largest packet accepted (default 67108864); a larger one closes the connection
      --global-priority      Priority across a worker's functions (gearmand 2.0.0)
      --no-epoch-wakeup      Do not wake sleeping workers when an epoch job falls due (gearmand 1.1.20)
      --can-do-timeout MODE  first-job (gearmand 1.1.20, default) or current-job (gearmand 2.0.0)
      --server-version TEXT  What the admin "version" command answers (default 1.1.20+embedded)
`;
