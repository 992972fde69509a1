import {
  encodePacket,
  GearmanProtocolError,
  type GearmanProtocolErrorCode,
  type Magic,
  type Packet,
  PacketDecoder,
  PacketType,
} from '../../../lib/protocol/index.js';
import { buildPacket, rawHeader } from '../../support/packets.js';

/** Feeds the chunks; returns the packets decoded before the error and the error itself. */
function feed(chunks: Buffer[], options: { magic?: Magic; maxPacketSize?: number } = {}) {
  const packets: Packet[] = [];
  const decoder = new PacketDecoder((p) => packets.push(p), options);
  let error: unknown;
  try {
    for (const c of chunks) decoder.push(c);
  } catch (e) {
    error = e;
  }
  return { packets, error, decoder };
}

function expectCode(error: unknown, code: GearmanProtocolErrorCode): void {
  expect(error).toBeInstanceOf(GearmanProtocolError);
  expect((error as GearmanProtocolError).code).toBe(code);
  expect((error as GearmanProtocolError).name).toBe('GearmanProtocolError');
}

describe('PacketDecoder on malformed input', () => {
  const good = buildPacket(PacketType.NOOP, []);

  it('BAD_MAGIC for a request packet read by a client, after earlier good packets', () => {
    const { packets, error } = feed([Buffer.concat([good, buildPacket(PacketType.NOOP, [], 'REQ')])]);
    expect(packets).toHaveLength(1);
    expectCode(error, 'BAD_MAGIC');
    expect((error as Error).message).toContain('\\0RES');
  });

  it('BAD_MAGIC for a response packet read by a server', () => {
    expectCode(feed([good], { magic: 'REQ' }).error, 'BAD_MAGIC');
  });

  it('BAD_MAGIC for an admin text reply where a binary packet was expected', () => {
    // The case that crashes libgearman (reference section 6): must be a clean error here.
    expectCode(feed([Buffer.from('OK 1.1.20+ds\n')]).error, 'BAD_MAGIC');
  });

  it('BAD_MAGIC is detected once the header is complete even when it arrives byte by byte', () => {
    const bad = rawHeader('\0REX', 6, 0);
    const { error } = feed([...bad].map((b) => Buffer.from([b])));
    expectCode(error, 'BAD_MAGIC');
  });

  it.each([0, 5, 43, 0xffffffff])('UNKNOWN_TYPE for type %i', (type) => {
    const { error } = feed([rawHeader('\0RES', type, 0)]);
    expectCode(error, 'UNKNOWN_TYPE');
    expect((error as Error).message).toContain(String(type));
  });

  it('UNKNOWN_TYPE in a header split across chunks', () => {
    const h = rawHeader('\0RES', 5, 0);
    expectCode(feed([good, h.subarray(0, 7), h.subarray(7)]).error, 'UNKNOWN_TYPE');
  });

  it('TOO_FEW_ARGUMENTS when NUL separators are missing (packet in one chunk)', () => {
    // JOB_ASSIGN needs handle\0 func\0 data: only one NUL here.
    const packet = Buffer.concat([rawHeader('\0RES', PacketType.JOB_ASSIGN, 9), Buffer.from('H:h:1\0abc')]);
    const { error } = feed([packet]);
    expectCode(error, 'TOO_FEW_ARGUMENTS');
    expect((error as Error).message).toContain('JOB_ASSIGN');
  });

  it('TOO_FEW_ARGUMENTS when NUL separators are missing (packet gathered across chunks)', () => {
    // STATUS_RES needs four NULs (handle, known, running, num; den is the rest): one is missing.
    const payload = Buffer.from('H:h:1\x001\x000\x003', 'latin1');
    const packet = Buffer.concat([rawHeader('\0RES', PacketType.STATUS_RES, payload.length), payload]);
    expectCode(feed([packet.subarray(0, 13), packet.subarray(13)]).error, 'TOO_FEW_ARGUMENTS');
  });

  it('TOO_FEW_ARGUMENTS for an empty payload of a type with arguments', () => {
    expectCode(feed([rawHeader('\0RES', PacketType.WORK_COMPLETE, 0)]).error, 'TOO_FEW_ARGUMENTS');
  });

  it('accepts an empty payload for single "rest" argument types (empty argument)', () => {
    const { packets, error } = feed([rawHeader('\0RES', PacketType.JOB_CREATED, 0)]);
    expect(error).toBeUndefined();
    expect(packets[0].args.map(String)).toEqual(['']);
  });

  it('PACKET_TOO_LARGE as soon as the header announces more than maxPacketSize', () => {
    const { error, decoder } = feed([rawHeader('\0RES', PacketType.WORK_DATA, 101)], { maxPacketSize: 100 });
    expectCode(error, 'PACKET_TOO_LARGE');
    expect((error as Error).message).toContain('100');
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('accepts a packet of exactly maxPacketSize', () => {
    const packet = buildPacket(PacketType.ECHO_RES, [Buffer.alloc(100, 7)]);
    const { packets, error } = feed([packet.subarray(0, 50), packet.subarray(50)], { maxPacketSize: 100 });
    expect(error).toBeUndefined();
    expect(packets[0].args[0].length).toBe(100);
  });

  it('PACKET_TOO_LARGE for a header completed in a later chunk, without buffering the payload', () => {
    const h = rawHeader('\0RES', PacketType.ECHO_RES, 0xffffffff);
    const { error, decoder } = feed([h.subarray(0, 11), Buffer.concat([h.subarray(11), Buffer.alloc(50)])], {
      maxPacketSize: 1024,
    });
    expectCode(error, 'PACKET_TOO_LARGE');
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('encodePacket argument checks', () => {
  it.each([
    ['NOOP with an argument', PacketType.NOOP, ['x']],
    ['SUBMIT_JOB without data', PacketType.SUBMIT_JOB, ['fn', 'u']],
    ['SUBMIT_REDUCE_JOB with the 3-argument PROTOCOL form', PacketType.SUBMIT_REDUCE_JOB, ['fn', 'u', 'r', 'data']],
    ['JOB_CREATED with two arguments', PacketType.JOB_CREATED, ['H:h:1', 'x']],
  ] as const)('BAD_ARGUMENTS for a wrong argument count: %s', (_label, type, args) => {
    let error: unknown;
    try {
      encodePacket(type, args);
    } catch (e) {
      error = e;
    }
    expectCode(error, 'BAD_ARGUMENTS');
    expect((error as Error).message).toMatch(/takes \d+ argument/);
  });

  it.each([
    ['a string', 'fn\0x'],
    ['a Buffer', Buffer.from('fn\0x')],
  ])('BAD_ARGUMENTS for a NUL inside a NUL-terminated argument given as %s', (_label, fn) => {
    expect(() => encodePacket(PacketType.SUBMIT_JOB, [fn, 'u', 'data'])).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENTS', message: expect.stringContaining('NUL') }),
    );
  });

  it('allows NULs in the last argument, data or "rest"', () => {
    expect(() => encodePacket(PacketType.SUBMIT_JOB, ['fn', 'u', 'a\0b'])).not.toThrow();
    expect(() => encodePacket(PacketType.WORK_FAIL, ['H:h:1\0'])).not.toThrow();
  });

  it.each([0, 5, 43])('UNKNOWN_TYPE when encoding type %i', (type) => {
    expect(() => encodePacket(type, [])).toThrow(expect.objectContaining({ code: 'UNKNOWN_TYPE' }));
  });
});
