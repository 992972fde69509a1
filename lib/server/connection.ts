/**
 * One client, worker or admin connection of the embedded server: it frames what arrives (binary
 * packets and admin lines may share a connection, as on gearmand), runs each packet as gearmand
 * 1.1.20 does (libgearman-server/server.cc), and queues the replies in order on one ReplyWriter
 * that the server flushes once per event-loop turn.
 * For development and tests; production stays on gearmand.
 */
import type { Socket } from 'node:net';
import { view } from '../protocol/buffers.js';
import { parsePacket } from '../protocol/decoder.js';
import type { PacketArg } from '../protocol/encoder.js';
import { HEADER_SIZE, PACKET_SPECS, PacketType } from '../protocol/packet-types.js';
import type { AdminPeer } from './admin.js';
import { atoiU32, cLength, cString, nulAt, strtoll } from './hash.js';
import { type Client, type GearmanFunction, HIGH, LOW, NORMAL, type Priority, type Registration } from './job-queue.js';
import type { Job } from './job-queue.js';
import { GEARMAND_BUFFER, type JobServer, MAX_UNIQUE, type ServerPeer } from './job-server.js';
import type { LogFn } from './log.js';
import { ReplyWriter } from './reply-writer.js';

/** What a connection needs of the server around it. */
export interface ConnectionHost {
  readonly jobs: JobServer;
  readonly log: LogFn;
  readonly maxPacketSize: number;
  /** Queues the connection for the next flush. */
  markDirty(connection: ServerConnection): void;
  /** Runs an admin line for this connection (the reply, or undefined to close it). */
  admin(line: Buffer): string | undefined;
  /** The connection closed. */
  remove(connection: ServerConnection): void;
}

/** Partial packets up to this size wait in a small buffer joined with the next chunk; larger ones get their own. */
const SMALL_PARTIAL = 64 * 1024;
/**
 * A flush of several chunks up to this many bytes is joined into one buffer for one socket write:
 * a copy costs less than Node's corked (writev) path, which also stays cold and unoptimized.
 */
const JOIN_LIMIT = 64 * 1024;
/** Past this many bytes waiting to be written, the connection's own input is paused until the socket drains. */
const OUTPUT_HIGH_WATER = 16 * 1024 * 1024;
/** gearmand's `GEARMAND_SERVER_CON_ID_SIZE` less the NUL. */
const MAX_CLIENT_ID = 127;
/** gearmand's `GEARMAND_OPTION_SIZE` and `GEARMAND_JOB_HANDLE_SIZE` (with the NUL). */
const OPTION_SIZE = 64;
const HANDLE_SIZE = 64;
/** CAN_DO_TIMEOUT values longer than this (`GEARMAN_MAXIMUM_INTEGER_DISPLAY_LENGTH`) close the connection. */
const MAX_TIMEOUT_DIGITS = 20;
const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

const NOT_EXPECTED = 'Command not expected';
const RESULT_NOT_FOUND = 'Job given in work result not found';

let nextFd = 1000;

export class ServerConnection implements ServerPeer, AdminPeer {
  readonly registrations: Registration[] = [];
  readonly clients = new Set<Client>();
  sleeping = false;
  noopSent = false;
  timer: NodeJS.Timeout | null = null;
  timerJob: Job | null = null;
  timerMs = 0;
  hasTimeouts = false;
  exceptions: boolean;
  id = '-';
  readonly fd: number;
  readonly host: string;
  /** Queued for the next flush. */
  dirty = false;
  closed = false;
  private readonly writer = new ReplyWriter();
  /** Chunks taken from the writer to put an admin reply after them, in order. */
  private taken: Buffer[] | null = null;
  /** Bytes of an incomplete header, line or small packet, to join with the next chunk. */
  private rest: Buffer | null = null;
  /** A large packet being filled: its buffer, bytes in it, type and magic. */
  private big: Buffer | null = null;
  private bigFilled = 0;
  private bigType = 0;
  private bigResMagic = false;
  private readonly jobs: JobServer;
  private lastFunction: GearmanFunction | null = null;

  constructor(
    readonly socket: Socket,
    private readonly host_: ConnectionHost,
    exceptions: boolean,
  ) {
    this.jobs = host_.jobs;
    this.exceptions = exceptions;
    const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
    this.fd = typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : nextFd++;
    const address = socket.remoteAddress ?? '';
    this.host = address.startsWith('::ffff:') ? address.slice(7) : address;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.host_.log('INFO', `connection ${this.host} fd ${this.fd}: ${err.message}`));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => {
      if (!this.closed) socket.resume();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  send(type: number, args: readonly PacketArg[]): void {
    this.writer.push(type, args);
    if (!this.dirty) this.host_.markDirty(this);
  }

  private error(code: string, text: string): void {
    this.send(PacketType.ERROR, [code, text]);
  }

  private sendText(text: string): void {
    const taken = (this.taken ??= []);
    for (const chunk of this.writer.take()) taken.push(chunk);
    taken.push(Buffer.from(text, 'latin1'));
    if (!this.dirty) this.host_.markDirty(this);
  }

  /** Writes everything queued (called by the server once per event-loop turn). */
  flush(): void {
    this.dirty = false;
    let chunks = this.writer.take();
    if (this.taken !== null) {
      chunks = this.taken.concat(chunks);
      this.taken = null;
    }
    if (this.closed || chunks.length === 0) return;
    const socket = this.socket;
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += chunks[i].length;
    if (chunks.length === 1) socket.write(chunks[0]);
    else if (total <= JOIN_LIMIT) socket.write(Buffer.concat(chunks, total));
    else {
      socket.cork();
      for (const chunk of chunks) socket.write(chunk);
      socket.uncork();
    }
    if (socket.writableLength > OUTPUT_HIGH_WATER) socket.pause();
  }

  /**
   * Closes the connection as gearmand does on a protocol error: what was queued before still goes
   * out, nothing more is read.
   */
  close(reason?: string): void {
    if (this.closed) return;
    if (reason !== undefined) this.host_.log('WARNING', `closing connection ${this.host} fd ${this.fd}: ${reason}`);
    this.flush();
    this.closed = true;
    this.socket.pause();
    this.socket.destroySoon();
    this.host_.remove(this);
  }

  private onClose(): void {
    if (!this.closed) {
      this.closed = true;
      this.host_.remove(this);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Framing

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.read(chunk);
    } catch (err) {
      // A bug here must cost one connection, not the server.
      this.host_.log('ERROR', `internal error on ${this.host} fd ${this.fd}: ${(err as Error).stack ?? String(err)}`);
      this.close();
    }
  }

  private read(chunk: Buffer): void {
    let offset = 0;
    if (this.big !== null) {
      const big = this.big;
      const take = Math.min(big.length - this.bigFilled, chunk.length);
      chunk.copy(big, this.bigFilled, 0, take);
      this.bigFilled += take;
      if (this.bigFilled < big.length) return;
      this.big = null;
      offset = take;
      if (!this.packet(this.bigType, big, HEADER_SIZE, big.length, this.bigResMagic, big.length)) {
        this.close('malformed packet');
        return;
      }
      if (this.closed) return;
    }
    if (this.rest !== null) {
      chunk = Buffer.concat([this.rest, offset === 0 ? chunk : chunk.subarray(offset)]);
      this.rest = null;
      offset = 0;
    }
    const length = chunk.length;
    const max = this.host_.maxPacketSize;
    while (offset < length && !this.closed) {
      if (chunk[offset] !== 0) {
        // An admin line (docs/gearmand-behaviour.md, admin protocol): it must fit gearmand's 8 KiB buffer.
        const nl = chunk.indexOf(0x0a, offset);
        if (nl < 0) {
          if (length - offset >= GEARMAND_BUFFER) this.close('admin line longer than 8 KiB');
          else this.rest = Buffer.from(chunk.subarray(offset));
          return;
        }
        if (nl + 1 - offset > GEARMAND_BUFFER) {
          this.close('admin line longer than 8 KiB');
          return;
        }
        const reply = this.host_.admin(chunk.subarray(offset, nl));
        offset = nl + 1;
        if (reply === undefined) {
          this.close('admin line with more than 5 words');
          return;
        }
        this.sendText(reply);
        continue;
      }
      if (length - offset < HEADER_SIZE) {
        this.rest = Buffer.from(chunk.subarray(offset));
        return;
      }
      // \0REQ, or \0RES (answered with INVALID_MAGIC); anything else closes (docs/gearmand-behaviour.md#packet-framing).
      const m = chunk[offset + 3];
      if (chunk[offset + 1] !== 0x52 || chunk[offset + 2] !== 0x45 || (m !== 0x51 && m !== 0x53)) {
        this.close('bad magic');
        return;
      }
      const type = chunk.readUInt32BE(offset + 4);
      const size = chunk.readUInt32BE(offset + 8);
      if (type === 0 || type > 42) {
        this.close(`unknown packet type ${type}`);
        return;
      }
      if (size > max) {
        this.close(`packet of ${size} bytes, above maxPacketSize ${max}`);
        return;
      }
      const end = offset + HEADER_SIZE + size;
      if (end > length) {
        const available = length - offset;
        if (HEADER_SIZE + size <= SMALL_PARTIAL) this.rest = Buffer.from(chunk.subarray(offset));
        else {
          const big = Buffer.allocUnsafe(HEADER_SIZE + size);
          chunk.copy(big, 0, offset, length);
          this.big = big;
          this.bigFilled = available;
          this.bigType = type;
          this.bigResMagic = m === 0x53;
        }
        return;
      }
      if (!this.packet(type, chunk, offset + HEADER_SIZE, end, m === 0x53, length)) {
        this.close('malformed packet');
        return;
      }
      offset = end;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Packets

  /** Runs one packet; false when gearmand would close the connection. */
  private packet(
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    resMagic: boolean,
    chunkLength: number,
  ): boolean {
    // The packets of every job, read in place (no argument views).
    if (!resMagic) {
      switch (type) {
        case PacketType.SUBMIT_JOB:
        case PacketType.SUBMIT_JOB_BG:
        case PacketType.SUBMIT_JOB_HIGH:
        case PacketType.SUBMIT_JOB_HIGH_BG:
        case PacketType.SUBMIT_JOB_LOW:
        case PacketType.SUBMIT_JOB_LOW_BG:
          return this.submitInPlace(type, buf, start, end, chunkLength);
        case PacketType.GRAB_JOB:
        case PacketType.GRAB_JOB_UNIQ:
        case PacketType.GRAB_JOB_ALL:
          this.grab(type);
          return true;
        case PacketType.WORK_COMPLETE:
          return this.completeInPlace(buf, start, end);
      }
    }
    if (type === 5) {
      // UNUSED: parsed with no arguments, its payload skipped, then refused.
      if (resMagic) this.error('INVALID_MAGIC', 'Request magic expected');
      else this.error('INVALID_COMMAND', NOT_EXPECTED);
      return true;
    }
    const spec = PACKET_SPECS[type]!;
    let args: Buffer[];
    try {
      args = parsePacket(type, buf, start, end).args;
    } catch {
      // Too few NULs: gearmand reads on into the next packet and loses the connection.
      return false;
    }
    // Each argument must fit gearmand's 8 KiB receive buffer: the NUL-terminated ones with their
    // NUL, and the last one of a packet without opaque data (gearmand reads only opaque data apart).
    const terminated = spec.data ? spec.argc : spec.argc - 1;
    for (let i = 0; i < terminated; i++) if (args[i].length + 1 > GEARMAND_BUFFER) return false;
    if (!spec.data && spec.argc > 0 && args[spec.argc - 1].length > GEARMAND_BUFFER) return false;
    if (resMagic) {
      this.error('INVALID_MAGIC', 'Request magic expected');
      return true;
    }
    const jobs = this.jobs;
    switch (type) {
      case PacketType.ECHO_REQ:
        this.send(PacketType.ECHO_RES, [args[0]]);
        return true;

      case PacketType.SUBMIT_JOB:
      case PacketType.SUBMIT_JOB_HIGH:
      case PacketType.SUBMIT_JOB_LOW:
      case PacketType.SUBMIT_JOB_BG:
      case PacketType.SUBMIT_JOB_HIGH_BG:
      case PacketType.SUBMIT_JOB_LOW_BG:
        this.submit(type, args[0], args[1], EMPTY, own(args[2], chunkLength), 0);
        return true;

      case PacketType.SUBMIT_JOB_EPOCH: {
        const epoch = strtoll(args[2]);
        if (epoch.overflow) return false;
        this.submit(type, args[0], args[1], EMPTY, own(args[3], chunkLength), Number(epoch.value));
        return true;
      }

      case PacketType.SUBMIT_REDUCE_JOB:
      case PacketType.SUBMIT_REDUCE_JOB_BACKGROUND:
        // gearmand checks the reducer's length here, not the unique's (a longer unique is stored
        // cut to 63 bytes), with the unique's message.
        if (args[2].length > MAX_UNIQUE) this.error('ARGUMENT_TOO_LARGE', 'Unique value too large');
        else this.submit(type, args[0], args[1], args[2], own(args[4], chunkLength), 0, false);
        return true;

      case PacketType.GET_STATUS: {
        const handle = cString(args[0]);
        if (handle.length >= HANDLE_SIZE) return false;
        const job = jobs.find(handle);
        if (job === undefined) this.send(PacketType.STATUS_RES, [handle, '0', '0', '0', '0']);
        else
          this.send(PacketType.STATUS_RES, [
            handle,
            '1',
            job.worker === null ? '0' : '1',
            String(job.numerator),
            String(job.denominator),
          ]);
        return true;
      }

      case PacketType.GET_STATUS_UNIQUE: {
        const unique = cString(args[0]);
        if (unique.length >= MAX_UNIQUE) return false;
        const job = jobs.findByUnique(unique);
        if (job === undefined) this.send(PacketType.STATUS_RES_UNIQUE, [unique, '0', '0', '0', '0', '0']);
        else
          this.send(PacketType.STATUS_RES_UNIQUE, [
            unique,
            '1',
            job.worker === null ? '0' : '1',
            String(job.numerator),
            String(job.denominator),
            String(job.clients.length),
          ]);
        return true;
      }

      case PacketType.OPTION_REQ: {
        const option = cString(args[0]);
        if (option.length < OPTION_SIZE && option.toString('latin1').toLowerCase() === 'exceptions') {
          this.exceptions = true;
          this.send(PacketType.OPTION_RES, [args[0]]);
        } else this.error('UNKNOWN_OPTION', 'Server does not recognize given option');
        return true;
      }

      case PacketType.CAN_DO:
        jobs.register(this, args[0], 0);
        return true;

      case PacketType.CAN_DO_TIMEOUT: {
        if (args[1].length > MAX_TIMEOUT_DIGITS) return false;
        const { value, overflow } = strtoll(cString(args[1]));
        if (overflow || value === LONG_MAX || value === LONG_MIN) return false;
        jobs.register(this, args[0], Number(value > 0x7fffffffn ? 0x7fffffffn : value));
        return true;
      }

      case PacketType.CANT_DO:
        jobs.unregister(this, args[0].toString('latin1'));
        return true;

      case PacketType.RESET_ABILITIES:
        jobs.unregister(this);
        return true;

      case PacketType.PRE_SLEEP:
        if (jobs.hasWork(this)) this.send(PacketType.NOOP, []);
        else {
          jobs.sleep(this);
          jobs.clearTimeout(this);
        }
        return true;

      case PacketType.GRAB_JOB:
      case PacketType.GRAB_JOB_UNIQ:
      case PacketType.GRAB_JOB_ALL:
        this.grab(type);
        return true;

      case PacketType.WORK_DATA:
      case PacketType.WORK_WARNING: {
        const job = jobs.runningOn(this, args[0]);
        if (job === undefined) this.error('JOB_NOT_FOUND', 'Job does not exist on server');
        else jobs.forward(job, type, [args[0], args[1]]);
        return true;
      }

      case PacketType.WORK_STATUS: {
        const job = jobs.runningOn(this, args[0]);
        if (job === undefined) {
          this.error('JOB_NOT_FOUND', RESULT_NOT_FOUND);
          return true;
        }
        // gearmand copies the denominator into 11 bytes: one of 12+ characters drops the connection.
        const denominatorLength = cLength(args[2]);
        if (denominatorLength > 11) return false;
        job.numerator = atoiU32(args[1]);
        job.denominator = atoiU32(args[2].subarray(0, Math.min(denominatorLength, 10)));
        jobs.forward(job, type, [args[0], args[1], args[2]]);
        return true;
      }

      case PacketType.WORK_COMPLETE: {
        const job = jobs.runningOn(this, args[0]);
        if (job === undefined) this.error('JOB_NOT_FOUND', RESULT_NOT_FOUND);
        else {
          jobs.forward(job, type, [args[0], args[1]]);
          jobs.free(job);
        }
        return true;
      }

      case PacketType.WORK_EXCEPTION: {
        const job = jobs.runningOn(this, args[0]);
        if (job === undefined) this.error('JOB_NOT_FOUND', 'An exception was received for a job that does not exist');
        else {
          // Ends the job in gearmand 1.x (docs/gearmand-behaviour.md#work_exception).
          jobs.forwardException(job, args[0], args[1]);
          jobs.free(job);
        }
        return true;
      }

      case PacketType.WORK_FAIL: {
        const handle = cString(args[0]);
        if (handle.length >= HANDLE_SIZE) {
          this.error(
            'ARGUMENT_TOO_LARGE',
            'Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf',
          );
          return true;
        }
        const job = jobs.runningOn(this, handle);
        if (job === undefined) this.error('JOB_NOT_FOUND', RESULT_NOT_FOUND);
        else {
          jobs.forward(job, type, [args[0]]);
          jobs.free(job);
        }
        return true;
      }

      case PacketType.SET_CLIENT_ID:
        this.id = cString(args[0].subarray(0, MAX_CLIENT_ID)).toString('latin1');
        return true;

      default:
        // NOOP, JOB_CREATED, NO_JOB, JOB_ASSIGN*, ECHO_RES, ERROR, STATUS_RES*, OPTION_RES, and the
        // two gearmand parses but does not implement: ALL_YOURS and SUBMIT_JOB_SCHED.
        this.error('INVALID_COMMAND', NOT_EXPECTED);
        return true;
    }
  }

  private submit(
    type: number,
    fn: Buffer,
    unique: Buffer,
    reducer: Buffer,
    data: Buffer,
    when: number,
    checkUnique = true,
  ): void {
    if (checkUnique && unique.length > MAX_UNIQUE) {
      this.error('ARGUMENT_TOO_LARGE', 'Unique value too large');
      return;
    }
    this.created(
      this.jobs.submit(
        FOREGROUND[type] === 1 ? this : undefined,
        this.functionFor(fn, 0, fn.length),
        unique.length === 0 ? '' : unique.toString('latin1'),
        reducer,
        data,
        PRIORITY[type] as Priority,
        when,
      ),
    );
  }

  private created(job: Job | null): void {
    if (job === null) this.error('QUEUE_ERROR', 'Job queue is full');
    else this.send(PacketType.JOB_CREATED, [job.handleArg]);
  }

  /** SUBMIT_JOB and its priority and background forms, read in place: function NUL unique NUL data. */
  private submitInPlace(type: number, buf: Buffer, start: number, end: number, chunkLength: number): boolean {
    const fnEnd = nulAt(buf, start, end);
    if (fnEnd < 0) return false;
    const uniqueEnd = nulAt(buf, fnEnd + 1, end);
    if (uniqueEnd < 0) return false;
    // Each NUL-terminated argument must fit gearmand's 8 KiB receive buffer.
    if (fnEnd - start + 1 > GEARMAND_BUFFER || uniqueEnd - fnEnd > GEARMAND_BUFFER) return false;
    const uniqueLength = uniqueEnd - fnEnd - 1;
    if (uniqueLength > MAX_UNIQUE) {
      this.error('ARGUMENT_TOO_LARGE', 'Unique value too large');
      return true;
    }
    this.created(
      this.jobs.submit(
        FOREGROUND[type] === 1 ? this : undefined,
        this.functionFor(buf, start, fnEnd),
        uniqueLength === 0 ? '' : buf.toString('latin1', fnEnd + 1, uniqueEnd),
        EMPTY,
        ownRange(buf, uniqueEnd + 1, end, chunkLength),
        PRIORITY[type] as Priority,
        0,
      ),
    );
    return true;
  }

  /** WORK_COMPLETE read in place: handle NUL data. */
  private completeInPlace(buf: Buffer, start: number, end: number): boolean {
    const handleEnd = nulAt(buf, start, end);
    if (handleEnd < 0) return false;
    if (handleEnd - start + 1 > GEARMAND_BUFFER) return false;
    const jobs = this.jobs;
    const job = jobs.runningOn(this, buf, start, handleEnd);
    if (job === undefined) this.error('JOB_NOT_FOUND', RESULT_NOT_FOUND);
    else {
      // The job's own handle: the same bytes as the packet's (find matched them), without a view.
      if (job.clients.length > 0)
        jobs.forward(job, PacketType.WORK_COMPLETE, [job.handleArg, view(buf, handleEnd + 1, end)]);
      jobs.free(job);
    }
    return true;
  }

  /** The function of a submit: the last one this connection named, or gearmand's lookup. */
  private functionFor(buf: Buffer, start: number, end: number): GearmanFunction {
    const last = this.lastFunction;
    if (last !== null && sameBytes(last.nameBuf, buf, start, end) && this.jobs.functions.get(last.name) === last) {
      return last;
    }
    return (this.lastFunction = this.jobs.functionFor(buf.subarray(start, end)));
  }

  private grab(type: number): void {
    const jobs = this.jobs;
    if (this.sleeping) jobs.forgetSleeper(this);
    this.sleeping = false;
    this.noopSent = false;
    const job = jobs.take(this);
    if (job === null) {
      this.send(PacketType.NO_JOB, []);
      return;
    }
    const unique = job.uniqueArg;
    const all = type === PacketType.GRAB_JOB_ALL && job.reducer.length > 0;
    const handleLength = typeof job.handleArg === 'string' ? job.handleArg.length : job.handleArg.length;
    const head =
      job.fn.assignOverhead +
      handleLength +
      1 +
      (type === PacketType.GRAB_JOB ? 0 : unique.length + 1) +
      (all ? job.reducer.length + 1 : 0);
    if (head > GEARMAND_BUFFER) {
      // gearmand cannot fit this JOB_ASSIGN in its 8 KiB send buffer and drops the worker (the job is requeued).
      this.close(`JOB_ASSIGN of ${head} header bytes, above gearmand's 8 KiB buffer`);
      return;
    }
    if (type === PacketType.GRAB_JOB) this.send(PacketType.JOB_ASSIGN, [job.handleArg, job.fn.nameBuf, job.data]);
    else if (all) this.send(PacketType.JOB_ASSIGN_ALL, [job.handleArg, job.fn.nameBuf, unique, job.reducer, job.data]);
    else this.send(PacketType.JOB_ASSIGN_UNIQ, [job.handleArg, job.fn.nameBuf, unique, job.data]);
  }
}

const EMPTY = Buffer.alloc(0);

/** Per submit type: 1 for the foreground ones. */
const FOREGROUND = new Uint8Array(64);
/** Per submit type: its priority. */
const PRIORITY = new Uint8Array(64).fill(NORMAL);
for (const t of [
  PacketType.SUBMIT_JOB,
  PacketType.SUBMIT_JOB_HIGH,
  PacketType.SUBMIT_JOB_LOW,
  PacketType.SUBMIT_REDUCE_JOB,
])
  FOREGROUND[t] = 1;
PRIORITY[PacketType.SUBMIT_JOB_HIGH] = HIGH;
PRIORITY[PacketType.SUBMIT_JOB_HIGH_BG] = HIGH;
PRIORITY[PacketType.SUBMIT_JOB_LOW] = LOW;
PRIORITY[PacketType.SUBMIT_JOB_LOW_BG] = LOW;

function sameBytes(a: Buffer, b: Buffer, start: number, end: number): boolean {
  const n = a.length;
  if (end - start !== n) return false;
  if (n > 64) return a.compare(b, start, end) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

/** Small payloads are copied into shared 8 KiB slabs (as Node's own Buffer pool does). */
const SLAB_SIZE = 8 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;

/**
 * A payload the job keeps: a copy when it is a small part of a large read chunk (so one waiting
 * job does not hold the whole chunk), the view itself otherwise.
 */
function own(data: Buffer, chunkLength: number): Buffer {
  return ownRange(data, 0, data.length, chunkLength);
}

/** {@link own} for `buf[start, end)`. */
function ownRange(buf: Buffer, start: number, end: number, chunkLength: number): Buffer {
  const n = end - start;
  if (n * 8 >= chunkLength) return view(buf, start, end);
  if (n > SLAB_SIZE / 4) return Buffer.from(buf.subarray(start, end));
  if (slabUsed + n > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const at = slabUsed;
  // TypedArray#set of a view: no Buffer#copy wrapper to call (or to optimize at startup).
  slab.set(view(buf, start, end), at);
  slabUsed = (at + n + 7) & ~7;
  return view(slab, at, at + n);
}
