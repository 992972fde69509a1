import { type Packet, PacketDecoder, PacketType } from '../../../lib/protocol/index.js';
import { buildPacket, show } from '../../support/packets.js';

/** Feeds `packet` the way a socket with `onread` does: the first `head` bytes pushed, the rest read in place. */
function readInPlace(
  packets: Buffer,
  head: number,
  step: number,
  min = 1,
): { out: Packet[]; direct: number; decoder: PacketDecoder } {
  const out: Packet[] = [];
  const decoder = new PacketDecoder((p) => out.push(p));
  let offset = 0;
  let direct = 0;
  decoder.push(packets.subarray(0, head));
  offset = head;
  while (offset < packets.length) {
    const target = decoder.readTarget(min);
    if (target) {
      const n = Math.min(step, target.length, packets.length - offset);
      packets.copy(target, 0, offset, offset + n);
      decoder.commitTarget(n);
      direct += n;
      offset += n;
    } else {
      const n = Math.min(step, packets.length - offset);
      decoder.push(packets.subarray(offset, offset + n));
      offset += n;
    }
  }
  return { out, direct, decoder };
}

describe('PacketDecoder read targets (in-place reads of large packets)', () => {
  it('has no target between packets or while a header is incomplete', () => {
    const decoder = new PacketDecoder(() => undefined);
    expect(decoder.readTarget()).toBeUndefined();
    decoder.push(buildPacket(PacketType.NOOP, []).subarray(0, 7));
    expect(decoder.readTarget()).toBeUndefined();
  });

  it('reads the rest of a large packet in place, without copying it, into the buffer the packet keeps', () => {
    const data = Buffer.alloc(1024 * 1024 + 5);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const packet = buildPacket(PacketType.WORK_COMPLETE, ['H:h:42', data]);
    const next = buildPacket(PacketType.NOOP, []);
    const { out, direct, decoder } = readInPlace(Buffer.concat([packet, next]), 1000, 65536, 32 * 1024);
    expect(out.map((p) => p.type)).toEqual([PacketType.WORK_COMPLETE, PacketType.NOOP]);
    expect(out[0].args[0].toString()).toBe('H:h:42');
    expect(out[0].args[1].equals(data)).toBe(true);
    // Everything after the first push went straight into the packet's buffer but the tail below `min`.
    expect(direct).toBeGreaterThan(packet.length - 1000 - 32 * 1024);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('never offers more than the bytes still missing, so the next packet is not read into it', () => {
    const packet = buildPacket(PacketType.ECHO_RES, [Buffer.alloc(300, 1)]);
    const decoder = new PacketDecoder(() => undefined);
    decoder.push(packet.subarray(0, 50));
    expect(decoder.readTarget()!.length).toBe(packet.length - 50);
    expect(decoder.readTarget(packet.length)).toBeUndefined();
  });

  it('grows the buffer of a packet above the trusted size while reading in place', () => {
    const data = Buffer.alloc(5 * 1024 * 1024, 0x61);
    data.write('end', data.length - 3);
    const packet = buildPacket(PacketType.ECHO_RES, [data]);
    const { out, decoder } = readInPlace(packet, 100, 256 * 1024);
    expect(out).toHaveLength(1);
    expect(out[0].args[0].equals(data)).toBe(true);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('rejects a commit larger than the target', () => {
    const decoder = new PacketDecoder(() => undefined);
    decoder.push(buildPacket(PacketType.ECHO_RES, [Buffer.alloc(100)]).subarray(0, 20));
    const target = decoder.readTarget()!;
    expect(() => decoder.commitTarget(target.length + 1)).toThrow(RangeError);
    decoder.commitTarget(target.length);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('mixes in-place reads and pushes of small packets', () => {
    const packets = Buffer.concat([
      buildPacket(PacketType.JOB_CREATED, ['H:h:1']),
      buildPacket(PacketType.WORK_DATA, ['H:h:1', Buffer.alloc(200_000, 2)]),
      buildPacket(PacketType.WORK_COMPLETE, ['H:h:1', 'done']),
    ]);
    const { out } = readInPlace(packets, 64, 4096);
    expect(out.map(show).map((p) => p.type)).toEqual(['JOB_CREATED', 'WORK_DATA', 'WORK_COMPLETE']);
    expect(out[1].args[1].length).toBe(200_000);
    expect(show(out[2]).args).toEqual(['H:h:1', 'done']);
  });
});
