import {
  encodePacket,
  type Packet,
  PACKET_SPECS,
  packetArgCount,
  PacketDecoder,
  PacketType,
} from '../../../lib/protocol/index.js';
import { ALL_TYPES, BINARY_DATA, SAMPLE_ARGS, buildPacket, decodeAll, prng, show } from '../../support/packets.js';

describe('packet codec round trip', () => {
  it('knows exactly the types 1..42 except 5', () => {
    const expected = Array.from({ length: 42 }, (_, i) => i + 1).filter((t) => t !== 5);
    expect(ALL_TYPES).toEqual(expected);
    expect(
      Object.keys(SAMPLE_ARGS)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(expected);
  });

  for (const magic of ['REQ', 'RES'] as const) {
    describe(`with \\0${magic} magic`, () => {
      it.each(ALL_TYPES.map((t) => [PACKET_SPECS[t]!.name, t]))('%s (%i)', (_name, type) => {
        const args = SAMPLE_ARGS[type];
        expect(args).toHaveLength(packetArgCount(type));
        const encoded = encodePacket(type, args, magic);
        // Same bytes as the independent helper, so the framing itself is checked, not only symmetry.
        expect(encoded.equals(buildPacket(type, args, magic))).toBe(true);
        const [decoded, ...rest] = decodeAll([encoded], magic);
        expect(rest).toEqual([]);
        expect(decoded.type).toBe(type);
        expect(show(decoded).args).toEqual(args.map((a) => (typeof a === 'string' ? a : a.toString('latin1'))));
      });
    });
  }

  it('keeps NULs inside the data argument and in the last "rest" argument', () => {
    const [assign, fail] = decodeAll([
      encodePacket(PacketType.JOB_ASSIGN, ['H:h:1', 'fn', BINARY_DATA], 'RES'),
      encodePacket(PacketType.WORK_FAIL, ['H:h:1\0'], 'RES'),
    ]);
    expect(assign.args[2].equals(BINARY_DATA)).toBe(true);
    expect(fail.args[0].toString('latin1')).toBe('H:h:1\0');
  });

  it('decodes empty arguments and an empty data argument', () => {
    const [p] = decodeAll([encodePacket(PacketType.JOB_ASSIGN_UNIQ, ['', '', '', ''], 'RES')]);
    expect(show(p)).toEqual({ type: 'JOB_ASSIGN_UNIQ', args: ['', '', '', ''] });
    const [echo] = decodeAll([encodePacket(PacketType.ECHO_RES, [Buffer.alloc(0)], 'RES')]);
    expect(echo.args).toHaveLength(1);
    expect(echo.args[0].length).toBe(0);
  });

  it('writes strings as UTF-8 and accepts any Uint8Array', () => {
    const data = new Uint8Array([1, 0, 2]);
    const [p] = decodeAll([encodePacket(PacketType.SUBMIT_JOB, ['größe', '☃', data], 'RES')]);
    expect(p.args[0].toString('utf8')).toBe('größe');
    expect(p.args[1].toString('utf8')).toBe('☃');
    expect([...p.args[2]]).toEqual([1, 0, 2]);
  });
});

describe('PacketDecoder chunking', () => {
  // A mix of layouts: empty, one "rest" argument, several arguments with binary data.
  const stream = Buffer.concat([
    buildPacket(PacketType.NOOP, []),
    buildPacket(PacketType.JOB_ASSIGN_UNIQ, ['H:host:42', 'resize', 'u-1', BINARY_DATA]),
    buildPacket(PacketType.JOB_CREATED, ['H:host:43']),
    buildPacket(PacketType.ECHO_RES, [Buffer.alloc(0)]),
    buildPacket(PacketType.STATUS_RES_UNIQUE, ['u-1', '1', '0', '0', '0', '2']),
    buildPacket(PacketType.WORK_COMPLETE, ['H:host:42', 'x'.repeat(300)]),
  ]);
  const expected = decodeAll([stream]).map(show);

  it('decodes the whole stream in one chunk', () => {
    expect(expected.map((p) => p.type)).toEqual([
      'NOOP',
      'JOB_ASSIGN_UNIQ',
      'JOB_CREATED',
      'ECHO_RES',
      'STATUS_RES_UNIQUE',
      'WORK_COMPLETE',
    ]);
  });

  it('gives the same packets when split into two chunks at every byte position', () => {
    const mismatches: number[] = [];
    for (let at = 0; at <= stream.length; at++) {
      const got = decodeAll([stream.subarray(0, at), stream.subarray(at)]).map(show);
      if (JSON.stringify(got) !== JSON.stringify(expected)) mismatches.push(at);
    }
    expect(mismatches).toEqual([]);
  });

  it('gives the same packets when fed one byte at a time', () => {
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    expect(decodeAll(bytes).map(show)).toEqual(expected);
  });

  it('gives the same packets when split into three chunks at many position pairs', () => {
    let failures = 0;
    for (let a = 0; a <= stream.length; a += 7) {
      for (let b = a; b <= stream.length; b += 5) {
        const got = decodeAll([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]).map(show);
        if (JSON.stringify(got) !== JSON.stringify(expected)) failures++;
      }
    }
    expect(failures).toBe(0);
  });

  it('decodes large chunks (scanned a word at a time) exactly like packet-by-packet chunks', () => {
    // Argument lengths 0..9 put every NUL at every offset modulo 4, with bytes >= 0x80 around.
    const random = prng(42);
    const frames: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const arg = () => Buffer.from(Array.from({ length: (random() * 10) | 0 }, () => 1 + ((random() * 255) | 0)));
      frames.push(buildPacket(PacketType.JOB_ASSIGN_UNIQ, [arg(), arg(), arg(), Buffer.from([0, 0x80, 0])]));
    }
    const big = Buffer.concat(frames);
    expect(big.length).toBeGreaterThan(4096);
    const one = decodeAll(frames).map(show);
    expect(one).toHaveLength(400);
    expect(decodeAll([big]).map(show)).toEqual(one);
    // And at an odd byte offset inside its ArrayBuffer.
    const shifted = Buffer.concat([Buffer.from([9]), big]).subarray(1);
    expect(decodeAll([shifted]).map(show)).toEqual(one);
  });

  it('returns arguments that are slices of the input for packets wholly within a chunk', () => {
    const packets = decodeAll([stream]);
    for (const p of packets) {
      for (const arg of p.args) expect(arg.buffer).toBe(stream.buffer);
    }
    const assign = packets[1];
    // The data argument sits right at the end of the packet inside the chunk (no copy).
    const dataOffset = stream.indexOf(BINARY_DATA);
    expect(assign.args[3].byteOffset).toBe(stream.byteOffset + dataOffset);
  });

  it('keeps arguments of a packet gathered across chunks valid after later chunks arrive', () => {
    const packets: Packet[] = [];
    const decoder = new PacketDecoder((p) => packets.push(p));
    const one = buildPacket(PacketType.WORK_DATA, ['H:h:1', 'first']);
    const two = buildPacket(PacketType.WORK_DATA, ['H:h:1', 'second']);
    const chunkA = Buffer.from(one.subarray(0, 15));
    const chunkB = Buffer.concat([one.subarray(15), two.subarray(0, 20)]);
    decoder.push(chunkA);
    decoder.push(chunkB);
    // The caller may reuse its read buffers: overwrite both chunks.
    chunkA.fill(0x41);
    chunkB.fill(0x42);
    decoder.push(two.subarray(20));
    expect(packets.map(show)).toEqual([
      { type: 'WORK_DATA', args: ['H:h:1', 'first'] },
      { type: 'WORK_DATA', args: ['H:h:1', 'second'] },
    ]);
  });

  it('reports bytes held for an incomplete packet and forgets them on reset()', () => {
    const packets: Packet[] = [];
    const decoder = new PacketDecoder((p) => packets.push(p));
    const p = buildPacket(PacketType.JOB_CREATED, ['H:h:1']);
    decoder.push(p.subarray(0, 5));
    expect(decoder.bufferedBytes).toBe(5);
    decoder.push(p.subarray(5, 14));
    expect(decoder.bufferedBytes).toBeGreaterThanOrEqual(12);
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(p.length);
    decoder.reset();
    expect(decoder.bufferedBytes).toBe(0);
    decoder.push(p);
    expect(packets.map(show)).toEqual([{ type: 'JOB_CREATED', args: ['H:h:1'] }]);
  });

  it('does not allocate the announced size up front for a large packet arriving in pieces', () => {
    const decoder = new PacketDecoder(() => undefined, { maxPacketSize: 64 * 1024 * 1024 });
    const big = buildPacket(PacketType.WORK_DATA, ['H:h:1', Buffer.alloc(32 * 1024 * 1024)]);
    decoder.push(big.subarray(0, 100));
    // A lying length field must not make the decoder reserve 32 MiB before the bytes exist.
    expect(decoder.bufferedBytes).toBeLessThan(1024 * 1024);
  });

  it('reassembles a large packet arriving in many chunks', () => {
    const data = Buffer.alloc(1024 * 1024 + 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const packet = buildPacket(PacketType.WORK_COMPLETE, ['H:h:9', data]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < packet.length; i += 65536) chunks.push(packet.subarray(i, i + 65536));
    const [p] = decodeAll(chunks);
    expect(p.args[0].toString()).toBe('H:h:9');
    expect(p.args[1].equals(data)).toBe(true);
  });
});
