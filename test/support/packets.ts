/**
 * Test helpers for the packet codec, in the spirit of node-postgres' pg-protocol test buffers:
 * packets are built from a type and readable arguments, never written as hex blobs.
 *
 * `buildPacket` deliberately does not use the library's encoder, so encoder tests compare two
 * independent implementations of the framing rule.
 */
import { type Magic, PACKET_SPECS, type Packet, PacketDecoder, PacketType } from '../../lib/protocol/index.js';

export type Arg = string | Buffer;

const MAGIC_BYTES: Record<Magic, Buffer> = {
  REQ: Buffer.from('\0REQ', 'latin1'),
  RES: Buffer.from('\0RES', 'latin1'),
};

const toBuffer = (a: Arg): Buffer => (typeof a === 'string' ? Buffer.from(a, 'utf8') : a);

/** The 12-byte header followed by the arguments joined with NUL (the Gearman framing rule). */
export function buildPacket(type: number, args: readonly Arg[], magic: Magic = 'RES'): Buffer {
  const parts: Buffer[] = [];
  args.forEach((a, i) => {
    if (i > 0) parts.push(Buffer.alloc(1));
    parts.push(toBuffer(a));
  });
  const payload = Buffer.concat(parts);
  const header = Buffer.alloc(12);
  MAGIC_BYTES[magic].copy(header, 0);
  header.writeUInt32BE(type, 4);
  header.writeUInt32BE(payload.length, 8);
  return Buffer.concat([header, payload]);
}

/** A header with any magic/type/length, for malformed-input tests. */
export function rawHeader(magic: string, type: number, length: number): Buffer {
  const header = Buffer.alloc(12);
  Buffer.from(magic, 'latin1').copy(header, 0, 0, 4);
  header.writeUInt32BE(type >>> 0, 4);
  header.writeUInt32BE(length >>> 0, 8);
  return header;
}

/** The packets in `chunks`, fed to one decoder in order; none may be left half-read. */
export function decodeAll(chunks: readonly Buffer[], magic: Magic = 'RES'): Packet[] {
  const out: Packet[] = [];
  const decoder = new PacketDecoder((p) => out.push(p), { magic });
  for (const chunk of chunks) decoder.push(chunk);
  expect(decoder.bufferedBytes).toBe(0);
  return out;
}

/** A packet as plain strings (latin1 keeps every byte, NULs included), for readable equality checks. */
export function show(packet: Packet): { type: string; args: string[] } {
  return {
    type: PACKET_SPECS[packet.type]?.name ?? `#${packet.type}`,
    args: packet.args.map((a) => a.toString('latin1')),
  };
}

/** Data containing NULs and bytes that are not valid UTF-8: must survive the codec unchanged. */
export const BINARY_DATA = Buffer.from([0, 1, 0, 0, 0xff, 0xfe, 0x52, 0x45, 0x53, 0, 10, 13, 0]);

/**
 * Realistic arguments for every defined packet type (1..42 except 5), in wire order, following
 * gearmand's argument layout. Data arguments hold NULs on purpose.
 */
export const SAMPLE_ARGS: Readonly<Record<number, readonly Arg[]>> = {
  [PacketType.CAN_DO]: ['resize-image'],
  [PacketType.CANT_DO]: ['resize-image'],
  [PacketType.RESET_ABILITIES]: [],
  [PacketType.PRE_SLEEP]: [],
  [PacketType.NOOP]: [],
  [PacketType.SUBMIT_JOB]: ['resize-image', 'uniq-1', BINARY_DATA],
  [PacketType.JOB_CREATED]: ['H:host:1'],
  [PacketType.GRAB_JOB]: [],
  [PacketType.NO_JOB]: [],
  [PacketType.JOB_ASSIGN]: ['H:host:1', 'resize-image', BINARY_DATA],
  [PacketType.WORK_STATUS]: ['H:host:1', '3', '10'],
  [PacketType.WORK_COMPLETE]: ['H:host:1', BINARY_DATA],
  // As gearmand sends it when it turns an exception into a failure: trailing NUL kept
  // (docs/gearmand-behaviour.md#work_exception).
  [PacketType.WORK_FAIL]: ['H:host:1\0'],
  [PacketType.GET_STATUS]: ['H:host:1'],
  [PacketType.ECHO_REQ]: [BINARY_DATA],
  [PacketType.ECHO_RES]: [BINARY_DATA],
  [PacketType.SUBMIT_JOB_BG]: ['resize-image', '', 'payload'],
  [PacketType.ERROR]: ['QUEUE_ERROR', 'Job queue is full'],
  [PacketType.STATUS_RES]: ['H:host:1', '1', '1', '3', '10'],
  [PacketType.SUBMIT_JOB_HIGH]: ['resize-image', 'u', 'payload'],
  [PacketType.SET_CLIENT_ID]: ['worker-7 on host'],
  [PacketType.CAN_DO_TIMEOUT]: ['resize-image', '30000'],
  [PacketType.ALL_YOURS]: [],
  [PacketType.WORK_EXCEPTION]: ['H:host:1', 'Error: boom\0'],
  [PacketType.OPTION_REQ]: ['exceptions'],
  [PacketType.OPTION_RES]: ['exceptions'],
  [PacketType.WORK_DATA]: ['H:host:1', BINARY_DATA],
  [PacketType.WORK_WARNING]: ['H:host:1', 'careful'],
  [PacketType.GRAB_JOB_UNIQ]: [],
  [PacketType.JOB_ASSIGN_UNIQ]: ['H:host:1', 'resize-image', 'uniq-1', BINARY_DATA],
  [PacketType.SUBMIT_JOB_HIGH_BG]: ['resize-image', 'u', 'payload'],
  [PacketType.SUBMIT_JOB_LOW]: ['resize-image', 'u', 'payload'],
  [PacketType.SUBMIT_JOB_LOW_BG]: ['resize-image', 'u', ''],
  [PacketType.SUBMIT_JOB_SCHED]: ['resize-image', 'u', '0', '12', '1', '6', '3', 'payload'],
  [PacketType.SUBMIT_JOB_EPOCH]: ['resize-image', 'u', '1767225600', BINARY_DATA],
  [PacketType.SUBMIT_REDUCE_JOB]: ['count-words', 'u', 'sum', '', BINARY_DATA],
  [PacketType.SUBMIT_REDUCE_JOB_BACKGROUND]: ['count-words', 'u', 'sum', 'agg', 'payload'],
  [PacketType.GRAB_JOB_ALL]: [],
  [PacketType.JOB_ASSIGN_ALL]: ['H:host:1', 'count-words', 'u', 'sum', BINARY_DATA],
  [PacketType.GET_STATUS_UNIQUE]: ['uniq-1'],
  [PacketType.STATUS_RES_UNIQUE]: ['uniq-1', '1', '0', '0', '0', '2'],
};

/** Every defined packet type, ascending. */
export const ALL_TYPES: readonly number[] = Object.values(PacketType)
  .map(Number)
  .sort((a, b) => a - b);

/** Jest's vm context makes every `Math.*` lookup slow; randomized tests call these millions of times. */
const imul = Math.imul;

/** Mulberry32: a tiny seeded PRNG so randomized tests reproduce from their seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
