/**
 * Typed readers of the packets the engine reads, so the argument layout of each type is known in
 * this layer only. They return views of the decoded packet (no copy); the caller picks the reader
 * by packet type, as it switches on the type anyway.
 *
 * Handles and ERROR codes are ASCII by gearmand's making, read as latin1 (cheapest, and lossless);
 * function names, uniques and reducers are the user's text, read as UTF-8. Numbers are ASCII
 * decimal; anything else reads as 0.
 */
import { type Packet, PacketType } from './packet-types.js';

/** `1` and nothing else, as gearmand writes a true flag (without decoding a string). */
const isOne = (b: Buffer): boolean => b.length === 1 && b[0] === 0x31;

const decimal = (b: Buffer): number => Number(b.toString()) || 0;

/**
 * The job handle of JOB_CREATED and WORK_DATA/WARNING/STATUS/COMPLETE/FAIL/EXCEPTION. The WORK_FAIL
 * gearmand makes from a WORK_EXCEPTION carries `handle\0`
 * (docs/gearmand-behaviour.md#work_exception): that NUL is not part of the handle.
 */
export function readHandle(packet: Packet): string {
  const handle = packet.args[0];
  const n = handle.length;
  return packet.type === PacketType.WORK_FAIL && n > 0 && handle[n - 1] === 0
    ? handle.toString('latin1', 0, n - 1)
    : handle.toString('latin1');
}

/**
 * The opaque data of WORK_DATA/WARNING/COMPLETE/EXCEPTION, ECHO_RES and JOB_ASSIGN*: always the
 * last argument. A view of the bytes received, valid as long as the caller keeps it.
 */
export function readData(packet: Packet): Buffer {
  const args = packet.args;
  return args[args.length - 1];
}

export interface WorkStatus {
  readonly numerator: number;
  readonly denominator: number;
}

/** WORK_STATUS: handle, numerator, denominator. */
export function readWorkStatus(packet: Packet): WorkStatus {
  const args = packet.args;
  return { numerator: decimal(args[1]), denominator: decimal(args[2]) };
}

export interface StatusReply {
  /** The handle (STATUS_RES) or the unique (STATUS_RES_UNIQUE) the status is about. */
  readonly id: string;
  readonly known: boolean;
  readonly running: boolean;
  readonly numerator: number;
  readonly denominator: number;
  /** Foreground clients waiting for the job: STATUS_RES_UNIQUE only. */
  readonly waitingClients: number | undefined;
}

/**
 * STATUS_RES (handle, known, running, num, den) or STATUS_RES_UNIQUE, whose first field is the
 * unique, not the handle as PROTOCOL says, and which adds the waiting clients.
 */
export function readStatusReply(packet: Packet): StatusReply {
  const args = packet.args;
  const byUnique = packet.type === PacketType.STATUS_RES_UNIQUE;
  return {
    id: byUnique ? args[0].toString('utf8') : args[0].toString('latin1'),
    known: isOne(args[1]),
    running: isOne(args[2]),
    numerator: decimal(args[3]),
    denominator: decimal(args[4]),
    waitingClients: byUnique ? decimal(args[5]) : undefined,
  };
}

export interface JobAssignment {
  readonly handle: string;
  readonly functionName: string;
  /** '' when the job has none, or was assigned by a plain JOB_ASSIGN. */
  readonly unique: string;
  /** JOB_ASSIGN_ALL only, and only if the submit named one. */
  readonly reducer: string | undefined;
  /** A view of the bytes received. */
  readonly payload: Buffer;
}

/**
 * JOB_ASSIGN (handle, function, data), JOB_ASSIGN_UNIQ (adds the unique) or JOB_ASSIGN_ALL (adds
 * the unique and the reducer, empty when none).
 */
export function readJobAssign(packet: Packet): JobAssignment {
  const args = packet.args;
  const type = packet.type;
  return {
    handle: args[0].toString('latin1'),
    functionName: args[1].toString('utf8'),
    unique: type === PacketType.JOB_ASSIGN ? '' : args[2].toString('utf8'),
    reducer: type === PacketType.JOB_ASSIGN_ALL ? args[3].toString('utf8') || undefined : undefined,
    payload: args[args.length - 1],
  };
}

export interface ServerErrorReply {
  /** gearmand's code: INVALID_COMMAND, JOB_NOT_FOUND, QUEUE_ERROR, ARGUMENT_TOO_LARGE, UNKNOWN_OPTION, ... */
  readonly code: string;
  readonly message: string;
}

/** ERROR: code, text. A packet built without them (not one decoded off the wire) reads as UNKNOWN with no text. */
export function readError(packet: Packet): ServerErrorReply {
  const args = packet.args;
  return { code: args[0]?.toString('latin1') ?? 'UNKNOWN', message: args[1]?.toString('utf8') ?? '' };
}
