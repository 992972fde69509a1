/**
 * Gearman binary packet types as gearmand 1.1.20 knows them (1 to 42), with the argument
 * layout its parser really uses (libgearman/command.cc: argc and whether opaque data follows).
 */
export const PacketType = {
  CAN_DO: 1,
  CANT_DO: 2,
  RESET_ABILITIES: 3,
  PRE_SLEEP: 4,
  NOOP: 6,
  SUBMIT_JOB: 7,
  JOB_CREATED: 8,
  GRAB_JOB: 9,
  NO_JOB: 10,
  JOB_ASSIGN: 11,
  WORK_STATUS: 12,
  WORK_COMPLETE: 13,
  WORK_FAIL: 14,
  GET_STATUS: 15,
  ECHO_REQ: 16,
  ECHO_RES: 17,
  SUBMIT_JOB_BG: 18,
  ERROR: 19,
  STATUS_RES: 20,
  SUBMIT_JOB_HIGH: 21,
  SET_CLIENT_ID: 22,
  CAN_DO_TIMEOUT: 23,
  ALL_YOURS: 24,
  WORK_EXCEPTION: 25,
  OPTION_REQ: 26,
  OPTION_RES: 27,
  WORK_DATA: 28,
  WORK_WARNING: 29,
  GRAB_JOB_UNIQ: 30,
  JOB_ASSIGN_UNIQ: 31,
  SUBMIT_JOB_HIGH_BG: 32,
  SUBMIT_JOB_LOW: 33,
  SUBMIT_JOB_LOW_BG: 34,
  SUBMIT_JOB_SCHED: 35,
  SUBMIT_JOB_EPOCH: 36,
  SUBMIT_REDUCE_JOB: 37,
  SUBMIT_REDUCE_JOB_BACKGROUND: 38,
  GRAB_JOB_ALL: 39,
  JOB_ASSIGN_ALL: 40,
  GET_STATUS_UNIQUE: 41,
  STATUS_RES_UNIQUE: 42,
} as const;

export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/**
 * How a packet's payload splits into arguments (the rule of gearmand's `unpack()`):
 * - `data: true`: `argc` NUL-terminated arguments, then opaque data (may hold NULs) as one more argument;
 * - `data: false`: `argc - 1` NUL-terminated arguments, the last one is the rest of the payload.
 *
 * `reply` is the packet gearmand answers a request with (or an ERROR in its place,
 * docs/gearmand-behaviour.md#reply-order); 0 if none.
 */
export interface PacketSpec {
  readonly name: string;
  readonly argc: number;
  readonly data: boolean;
  readonly reply: PacketType | 0;
}

/** Indexed by packet type; `undefined` for 0, 5 (unused) and anything above 42. */
export const PACKET_SPECS: readonly (PacketSpec | undefined)[] = (() => {
  const specs: (PacketSpec | undefined)[] = new Array(43).fill(undefined);
  const define = (type: PacketType, argc: number, data: boolean, reply: PacketType | 0 = 0) => {
    const name = Object.keys(PacketType).find((k) => PacketType[k as keyof typeof PacketType] === type)!;
    specs[type] = { name, argc, data, reply };
  };
  define(PacketType.CAN_DO, 1, false);
  define(PacketType.CANT_DO, 1, false);
  define(PacketType.RESET_ABILITIES, 0, false);
  define(PacketType.PRE_SLEEP, 0, false);
  define(PacketType.NOOP, 0, false);
  define(PacketType.SUBMIT_JOB, 2, true, PacketType.JOB_CREATED);
  define(PacketType.JOB_CREATED, 1, false);
  define(PacketType.GRAB_JOB, 0, false);
  define(PacketType.NO_JOB, 0, false);
  define(PacketType.JOB_ASSIGN, 2, true);
  define(PacketType.WORK_STATUS, 3, false);
  define(PacketType.WORK_COMPLETE, 1, true);
  // A WORK_FAIL that gearmand makes from a WORK_EXCEPTION carries `handle\0` (trailing NUL,
  // unlike the PROTOCOL text): the handle is "the rest", so readers must strip that NUL
  // (docs/gearmand-behaviour.md#work_exception).
  define(PacketType.WORK_FAIL, 1, false);
  define(PacketType.GET_STATUS, 1, false, PacketType.STATUS_RES);
  define(PacketType.ECHO_REQ, 0, true, PacketType.ECHO_RES);
  define(PacketType.ECHO_RES, 0, true);
  define(PacketType.SUBMIT_JOB_BG, 2, true, PacketType.JOB_CREATED);
  define(PacketType.ERROR, 2, false);
  define(PacketType.STATUS_RES, 5, false);
  define(PacketType.SUBMIT_JOB_HIGH, 2, true, PacketType.JOB_CREATED);
  define(PacketType.SET_CLIENT_ID, 1, false);
  // Timeout is ASCII decimal milliseconds (the PROTOCOL text says nothing of units;
  // docs/gearmand-behaviour.md#can_do_timeout).
  define(PacketType.CAN_DO_TIMEOUT, 2, false);
  define(PacketType.ALL_YOURS, 0, false);
  define(PacketType.WORK_EXCEPTION, 1, true);
  define(PacketType.OPTION_REQ, 1, false, PacketType.OPTION_RES);
  define(PacketType.OPTION_RES, 1, false);
  define(PacketType.WORK_DATA, 1, true);
  define(PacketType.WORK_WARNING, 1, true);
  define(PacketType.GRAB_JOB_UNIQ, 0, false);
  define(PacketType.JOB_ASSIGN_UNIQ, 3, true);
  define(PacketType.SUBMIT_JOB_HIGH_BG, 2, true, PacketType.JOB_CREATED);
  define(PacketType.SUBMIT_JOB_LOW, 2, true, PacketType.JOB_CREATED);
  define(PacketType.SUBMIT_JOB_LOW_BG, 2, true, PacketType.JOB_CREATED);
  // Parsed by gearmand 1.1.20 but answered with ERROR INVALID_COMMAND.
  define(PacketType.SUBMIT_JOB_SCHED, 7, true, PacketType.JOB_CREATED);
  define(PacketType.SUBMIT_JOB_EPOCH, 3, true, PacketType.JOB_CREATED);
  // The server parses FOUR NUL-terminated arguments (func, unique, reducer, aggregator) before
  // the data; PROTOCOL lists three, and the three-argument form makes gearmand drop the connection.
  define(PacketType.SUBMIT_REDUCE_JOB, 4, true, PacketType.JOB_CREATED);
  define(PacketType.SUBMIT_REDUCE_JOB_BACKGROUND, 4, true, PacketType.JOB_CREATED);
  define(PacketType.GRAB_JOB_ALL, 0, false);
  define(PacketType.JOB_ASSIGN_ALL, 4, true);
  define(PacketType.GET_STATUS_UNIQUE, 1, false, PacketType.STATUS_RES_UNIQUE);
  // The first field is the unique (PROTOCOL says handle), then known, running, num, den, waiting clients.
  define(PacketType.STATUS_RES_UNIQUE, 6, false);
  return specs;
})();

/*
 * PACKET_SPECS flattened, once, into typed arrays indexed by type (0 to 255): the encoder, the
 * decoder and the connection read them per packet, where a flat array beats an object lookup.
 * Treat them as read-only.
 */

/** Arguments in all (opaque data counted as one); -1 for an unknown type. */
export const ARG_COUNTS = new Int8Array(256).fill(-1);
/** NUL-terminated arguments (all but the last); -1 for an unknown type. */
export const TERMINATED_ARGS = new Int8Array(256).fill(-1);
/** The reply type of a request type; 0 for none. */
const REPLY_TYPE_OF = new Uint8Array(256);
/** 1 for the types that answer a request. */
const IS_REPLY_TYPE = new Uint8Array(256);
PACKET_SPECS.forEach((spec, type) => {
  if (!spec) return;
  ARG_COUNTS[type] = spec.data ? spec.argc + 1 : spec.argc;
  TERMINATED_ARGS[type] = spec.data ? spec.argc : spec.argc - 1;
  REPLY_TYPE_OF[type] = spec.reply;
  if (spec.reply !== 0) IS_REPLY_TYPE[spec.reply] = 1;
});

const inTable = (type: number): boolean => type >= 0 && type < 256;

/** Number of arguments a packet of this type carries (data counted as one); -1 for an unknown type. */
export function packetArgCount(type: number): number {
  return inTable(type) ? ARG_COUNTS[type] : -1;
}

/** The packet gearmand answers a request of this type with (an ERROR may come in its place); 0 if none. */
export function replyTypeOf(type: number): number {
  return inTable(type) ? REPLY_TYPE_OF[type] : 0;
}

/** Whether a packet of this type answers a request (as opposed to arriving unasked: WORK_*, NOOP, JOB_ASSIGN...). */
export function isReplyType(type: number): boolean {
  return inTable(type) && IS_REPLY_TYPE[type] === 1;
}

export function packetName(type: number): string {
  return PACKET_SPECS[type]?.name ?? `UNKNOWN(${type})`;
}

export const HEADER_SIZE = 12;
/** `\0REQ`: everything sent to the server. */
export const MAGIC_REQ = 0x00524551;
/** `\0RES`: everything the server sends. */
export const MAGIC_RES = 0x00524553;
export type Magic = 'REQ' | 'RES';

/** gearmand keeps job handles in 64 bytes including the NUL. */
export const MAX_HANDLE_LENGTH = 63;
/**
 * A longer unique is refused (65+) or truncated (64) by gearmand, so it could never coalesce
 * (docs/gearmand-behaviour.md#coalescing).
 */
export const MAX_UNIQUE_LENGTH = 63;
/**
 * Longest function name, in UTF-8 bytes, that gearmand 1.1.20 handles on every path: it reads and
 * writes a packet's header and NUL-terminated arguments through 8192-byte buffers, and a
 * JOB_ASSIGN_ALL carries the handle, the name, the unique and the reducer (8192 - 12 - 64 - 64 -
 * 65 - 1). Longer names make it drop the connection (docs/gearmand-behaviour.md#function-names).
 */
export const MAX_FUNCTION_NAME_LENGTH = 7986;
/** gearmand 1.1.20 refuses a longer reducer with ARGUMENT_TOO_LARGE "Unique value too large". */
export const MAX_REDUCER_LENGTH = 64;
/** Default cap on one packet's payload; gearmand has none beyond uint32, memory is the limit. */
export const DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024;

/** A decoded (or to-be-encoded) packet. `args` follow the layout in {@link PACKET_SPECS}. */
export interface Packet {
  readonly type: number;
  readonly args: Buffer[];
}
