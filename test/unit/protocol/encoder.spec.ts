import { encodePacket, type Magic, type Packet, PacketType, PacketWriter } from '../../../lib/protocol/index.js';
import { buildPacket, decodeAll, show } from '../../support/packets.js';

const decode = (chunks: readonly Buffer[], magic: Magic = 'REQ'): Packet[] => decodeAll(chunks, magic);

describe('encodePacket', () => {
  it('produces the header and NUL-joined arguments byte for byte', () => {
    const encoded = encodePacket(PacketType.SUBMIT_JOB, ['reverse', 'u1', 'hello'], 'REQ');
    expect(encoded.equals(buildPacket(PacketType.SUBMIT_JOB, ['reverse', 'u1', 'hello'], 'REQ'))).toBe(true);
    // Spelled out once: magic, type 7, length 16, payload.
    expect(encoded.subarray(0, 4).toString('latin1')).toBe('\0REQ');
    expect(encoded.readUInt32BE(4)).toBe(7);
    expect(encoded.readUInt32BE(8)).toBe('reverse\0u1\0hello'.length);
    expect(encoded.subarray(12).toString('latin1')).toBe('reverse\0u1\0hello');
  });

  it('defaults to the REQ magic and counts UTF-8 bytes, not characters, in the length', () => {
    const encoded = encodePacket(PacketType.CAN_DO, ['ünïcödé']);
    expect(encoded.subarray(0, 4).toString('latin1')).toBe('\0REQ');
    expect(encoded.readUInt32BE(8)).toBe(Buffer.byteLength('ünïcödé'));
    expect(encoded.length).toBe(12 + Buffer.byteLength('ünïcödé'));
  });
});

describe('encodePacket string and byte paths', () => {
  const roundTrip = (type: number, args: (string | Uint8Array)[]) => {
    const encoded = encodePacket(type, args, 'REQ');
    expect(
      encoded.equals(
        buildPacket(
          type,
          args.map((a) => (typeof a === 'string' ? a : Buffer.from(a))),
          'REQ',
        ),
      ),
    ).toBe(true);
    return encoded;
  };

  it.each([
    ['short ASCII', 'resize'],
    ['short non-ASCII', 'größe-☃-😀'],
    ['non-ASCII first', 'é'],
    ['exactly 64 chars', 'x'.repeat(64)],
    ['65 chars', 'y'.repeat(65)],
    ['long non-ASCII', 'ü'.repeat(500)],
    ['lone surrogate', 'a\ud800b'],
  ])('writes %s strings in every argument position', (_label, text) => {
    roundTrip(PacketType.SUBMIT_JOB, [text, text, text]);
    roundTrip(PacketType.WORK_STATUS, [text, text, text]);
  });

  it.each([
    ['a short string after non-ASCII', ['fn', 'ü\0x', 'data']],
    ['a long string', ['fn', `${'u'.repeat(100)}\0`, 'data']],
    ['a long Buffer', ['fn', Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(1)]), 'data']],
  ])('rejects a NUL in %s', (_label, args) => {
    expect(() => encodePacket(PacketType.SUBMIT_JOB, args)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENTS' }));
  });

  it('keeps NULs of a last string argument whatever its length', () => {
    roundTrip(PacketType.WORK_FAIL, ['H:h:1\0']);
    roundTrip(PacketType.WORK_COMPLETE, ['H:h:1', `${'d'.repeat(100)}\0${'é'.repeat(10)}\0`]);
  });

  it('encodes packets larger than the shared slab path and exactly sized', () => {
    const data = 'z'.repeat(5000);
    const encoded = roundTrip(PacketType.SUBMIT_JOB, ['fn', 'ü'.repeat(30), data]);
    expect(encoded.length).toBe(12 + 2 + 1 + 60 + 1 + 5000);
  });

  it('returns independent packets: later encodes do not overwrite earlier ones', () => {
    // Enough packets to run through several shared slabs.
    const packets = Array.from({ length: 2000 }, (_, i) =>
      encodePacket(PacketType.SUBMIT_JOB_BG, ['fn', `u${i}`, 'x'.repeat(i % 50)]),
    );
    const failures = packets.filter(
      (p, i) => !p.equals(buildPacket(PacketType.SUBMIT_JOB_BG, ['fn', `u${i}`, 'x'.repeat(i % 50)], 'REQ')),
    );
    expect(failures).toHaveLength(0);
  });

  it('leaves no trace of a packet rejected half way', () => {
    const before = encodePacket(PacketType.CAN_DO, ['a']);
    expect(() => encodePacket(PacketType.SUBMIT_JOB, ['fn', 'bad\0unique', 'x'.repeat(100)])).toThrow();
    const after = encodePacket(PacketType.CAN_DO, ['b']);
    expect(before.toString('latin1')).toBe('\0REQ\0\0\0\x01\0\0\0\x01a');
    expect(after.toString('latin1')).toBe('\0REQ\0\0\0\x01\0\0\0\x01b');
  });
});

describe('PacketWriter', () => {
  it('batches many small packets into few chunks that decode to the same packets', () => {
    const writer = new PacketWriter('REQ', 4096);
    const expected: { type: string; args: string[] }[] = [];
    for (let i = 0; i < 1000; i++) {
      const args = ['fn', `u${i}`, `payload ${i}`];
      writer.push(PacketType.SUBMIT_JOB_BG, args);
      expected.push({ type: 'SUBMIT_JOB_BG', args });
    }
    const total = writer.pendingBytes;
    const chunks = writer.take();
    expect(total).toBe(chunks.reduce((n, c) => n + c.length, 0));
    // About 30 bytes per packet into 4 KiB buffers: well under one chunk per packet.
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(total / 3000));
    expect(decode(chunks).map(show)).toEqual(expected);
    expect(writer.pendingBytes).toBe(0);
    expect(writer.take()).toEqual([]);
  });

  it('keeps large data as its own chunk, without copying it', () => {
    const writer = new PacketWriter('REQ');
    const big = Buffer.alloc(256 * 1024, 0x61);
    writer.push(PacketType.ECHO_REQ, [Buffer.from('small')]);
    writer.push(PacketType.SUBMIT_JOB, ['fn', 'u', big]);
    writer.push(PacketType.GRAB_JOB_UNIQ, []);
    const chunks = writer.take();
    const dataChunk = chunks.find((c) => c.length === big.length);
    expect(dataChunk).toBe(big);
    // Small packets before and after the data are still batched around it.
    expect(chunks.length).toBe(3);
    expect(decode(chunks).map((p) => show(p).type)).toEqual(['ECHO_REQ', 'SUBMIT_JOB', 'GRAB_JOB_UNIQ']);
    const submit = decode(chunks)[1];
    expect(submit.args[2].equals(big)).toBe(true);
  });

  it('keeps a large Uint8Array (not a Buffer) as its own chunk over the same memory', () => {
    const writer = new PacketWriter('RES');
    const big = new Uint8Array(100 * 1024).fill(9);
    writer.push(PacketType.WORK_COMPLETE, ['H:h:1', big]);
    const chunks = writer.take();
    expect(chunks[chunks.length - 1].buffer).toBe(big.buffer);
    const [p] = decode(chunks, 'RES');
    expect(p.args[1].length).toBe(big.length);
  });

  it('does not let later pushes overwrite chunks already taken', () => {
    const writer = new PacketWriter('REQ', 1024);
    writer.push(PacketType.CAN_DO, ['first']);
    const first = writer.take();
    const copy = Buffer.concat(first);
    for (let i = 0; i < 100; i++) writer.push(PacketType.CAN_DO, [`fn${i}`]);
    writer.take();
    expect(Buffer.concat(first).equals(copy)).toBe(true);
  });

  it('handles a packet larger than its buffer size that is not kept separately', () => {
    const writer = new PacketWriter('REQ', 64);
    const text = 'x'.repeat(5000);
    writer.push(PacketType.CAN_DO, ['a']);
    writer.push(PacketType.SUBMIT_JOB, ['fn', 'u', text]);
    writer.push(PacketType.CAN_DO, ['b']);
    expect(decode(writer.take()).map(show)).toEqual([
      { type: 'CAN_DO', args: ['a'] },
      { type: 'SUBMIT_JOB', args: ['fn', 'u', text] },
      { type: 'CAN_DO', args: ['b'] },
    ]);
  });

  it('rejects bad arguments without corrupting what was already pushed', () => {
    const writer = new PacketWriter('REQ');
    writer.push(PacketType.CAN_DO, ['ok']);
    expect(() => writer.push(PacketType.SUBMIT_JOB, ['f\0n', 'u', 'd'])).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENTS' }),
    );
    writer.push(PacketType.PRE_SLEEP, []);
    expect(decode(writer.take()).map(show)).toEqual([
      { type: 'CAN_DO', args: ['ok'] },
      { type: 'PRE_SLEEP', args: [] },
    ]);
  });
});
