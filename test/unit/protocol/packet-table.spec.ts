import {
  ARG_COUNTS,
  PACKET_SPECS,
  PacketType,
  TERMINATED_ARGS,
  isReplyType,
  packetArgCount,
  replyTypeOf,
} from '../../../lib/protocol/packet-types.js';

const T = PacketType;
const ALL = Array.from({ length: 256 }, (_, type) => type);

describe('request -> reply table', () => {
  const REPLIES: Record<number, number> = {
    [T.SUBMIT_JOB]: T.JOB_CREATED,
    [T.SUBMIT_JOB_BG]: T.JOB_CREATED,
    [T.SUBMIT_JOB_HIGH]: T.JOB_CREATED,
    [T.SUBMIT_JOB_HIGH_BG]: T.JOB_CREATED,
    [T.SUBMIT_JOB_LOW]: T.JOB_CREATED,
    [T.SUBMIT_JOB_LOW_BG]: T.JOB_CREATED,
    [T.SUBMIT_JOB_SCHED]: T.JOB_CREATED,
    [T.SUBMIT_JOB_EPOCH]: T.JOB_CREATED,
    [T.SUBMIT_REDUCE_JOB]: T.JOB_CREATED,
    [T.SUBMIT_REDUCE_JOB_BACKGROUND]: T.JOB_CREATED,
    [T.GET_STATUS]: T.STATUS_RES,
    [T.GET_STATUS_UNIQUE]: T.STATUS_RES_UNIQUE,
    [T.ECHO_REQ]: T.ECHO_RES,
    [T.OPTION_REQ]: T.OPTION_RES,
  };
  const REPLY_TYPES = new Set<number>([T.JOB_CREATED, T.STATUS_RES, T.STATUS_RES_UNIQUE, T.ECHO_RES, T.OPTION_RES]);

  it('gives the reply of every request and 0 for every other type', () => {
    for (const type of ALL) expect([type, replyTypeOf(type)]).toEqual([type, REPLIES[type] ?? 0]);
  });

  it('knows the reply types, and nothing else as one', () => {
    for (const type of ALL) expect([type, isReplyType(type)]).toEqual([type, REPLY_TYPES.has(type)]);
  });

  it('answers outside 0..255 without a reply', () => {
    for (const type of [-1, 256, 0x10000, 2 ** 32 - 1]) {
      expect(replyTypeOf(type)).toBe(0);
      expect(isReplyType(type)).toBe(false);
      expect(packetArgCount(type)).toBe(-1);
    }
  });

  it('keeps the reply in the spec', () => {
    expect(PACKET_SPECS[T.GET_STATUS_UNIQUE]!.reply).toBe(T.STATUS_RES_UNIQUE);
    expect(PACKET_SPECS[T.WORK_COMPLETE]!.reply).toBe(0);
  });
});

describe('flat argument counts', () => {
  it('agree with PACKET_SPECS for every type', () => {
    for (const type of ALL) {
      const spec = PACKET_SPECS[type];
      const all = spec ? spec.argc + (spec.data ? 1 : 0) : -1;
      const terminated = spec ? (spec.data ? spec.argc : spec.argc - 1) : -1;
      expect([type, ARG_COUNTS[type], TERMINATED_ARGS[type], packetArgCount(type)]).toEqual([
        type,
        all,
        terminated,
        all,
      ]);
    }
  });

  it('know exactly the types 1..42 except 5', () => {
    expect(ALL.filter((type) => ARG_COUNTS[type] >= 0)).toEqual(
      ALL.filter((type) => type >= 1 && type <= 42 && type !== 5),
    );
  });

  it('count the opaque data as one argument, and no argument for bare types', () => {
    expect([ARG_COUNTS[T.NOOP], TERMINATED_ARGS[T.NOOP]]).toEqual([0, -1]);
    expect([ARG_COUNTS[T.JOB_ASSIGN_ALL], TERMINATED_ARGS[T.JOB_ASSIGN_ALL]]).toEqual([5, 4]);
    expect([ARG_COUNTS[T.STATUS_RES_UNIQUE], TERMINATED_ARGS[T.STATUS_RES_UNIQUE]]).toEqual([6, 5]);
    expect([ARG_COUNTS[T.ECHO_RES], TERMINATED_ARGS[T.ECHO_RES]]).toEqual([1, 0]);
  });
});
