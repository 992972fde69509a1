import {
  GearmanProtocolError,
  MAX_FUNCTION_NAME_LENGTH,
  type OversizedPacket,
  type Packet,
  PacketDecoder,
  PacketType,
} from '../../../lib/protocol/index.js';
import { buildPacket, rawHeader, show } from '../../support/packets.js';

const LIMIT = 1000;

/** What a decoder reported, in order: packets as `show()` gives them, oversized ones as their info. */
type Event = { packet: ReturnType<typeof show> } | { oversize: OversizedPacket };

function recorder(limit = LIMIT) {
  const events: Event[] = [];
  const decoder = new PacketDecoder((p: Packet) => events.push({ packet: show(p) }), {
    maxPacketSize: limit,
    onOversize: (info) => events.push({ oversize: info }),
  });
  return { events, decoder };
}

/** Feeds `bytes` the way the connection's `onread` does: in place while a target is offered, else pushed. */
function readInPlace(decoder: PacketDecoder, bytes: Buffer, step: number, min: number): void {
  let offset = 0;
  while (offset < bytes.length) {
    const target = decoder.readTarget(min);
    if (target) {
      const n = Math.min(step, target.length, bytes.length - offset);
      bytes.copy(target, 0, offset, offset + n);
      decoder.commitTarget(n);
      offset += n;
    } else {
      const n = Math.min(step, bytes.length - offset);
      decoder.push(bytes.subarray(offset, offset + n));
      offset += n;
    }
  }
}

const data = (n: number, fill = 0x61) => Buffer.alloc(n, fill);

/** A stream: a small packet, an oversized JOB_ASSIGN_UNIQ, an oversized WORK_COMPLETE, a small one. */
const stream = Buffer.concat([
  buildPacket(PacketType.JOB_CREATED, ['H:h:1']),
  buildPacket(PacketType.JOB_ASSIGN_UNIQ, ['H:h:2', 'resize', 'u-1', data(LIMIT + 200, 0)]),
  buildPacket(PacketType.WORK_COMPLETE, ['H:h:3', data(LIMIT)]),
  buildPacket(PacketType.WORK_DATA, ['H:h:4', 'small']),
]);
const expected: Event[] = [
  { packet: { type: 'JOB_CREATED', args: ['H:h:1'] } },
  {
    oversize: {
      type: PacketType.JOB_ASSIGN_UNIQ,
      size: 'H:h:2\0resize\0u-1\0'.length + LIMIT + 200,
      limit: LIMIT,
      handle: 'H:h:2',
      functionName: 'resize',
    },
  },
  { oversize: { type: PacketType.WORK_COMPLETE, size: 6 + LIMIT, limit: LIMIT, handle: 'H:h:3' } },
  { packet: { type: 'WORK_DATA', args: ['H:h:4', 'small'] } },
];

describe('PacketDecoder with onOversize: packets above maxPacketSize are skipped, not fatal', () => {
  it('reports each oversized packet with what identifies it, and decodes the packets around it', () => {
    const { events, decoder } = recorder();
    decoder.push(stream);
    expect(events).toEqual(expected);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('gives the same events at every split point of the stream', () => {
    for (let i = 0; i <= stream.length; i++) {
      const { events, decoder } = recorder();
      decoder.push(stream.subarray(0, i));
      decoder.push(stream.subarray(i));
      expect({ i, events }).toEqual({ i, events: expected });
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('gives the same events fed a byte at a time', () => {
    const { events, decoder } = recorder();
    for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1));
    expect(events).toEqual(expected);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it.each([
    [1, 1],
    [7, 1],
    [100, 1],
    [4096, 1],
    [4096, 300],
  ])('gives the same events read in place (step %i, min %i), never reading past the skipped body', (step, min) => {
    for (const head of [0, 5, 12, 30, 40]) {
      const { events, decoder } = recorder();
      decoder.push(stream.subarray(0, head));
      readInPlace(decoder, stream.subarray(head), step, min);
      expect({ head, events }).toEqual({ head, events: expected });
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('skips 1 GiB announced without its memory growing: 64 KiB chunks pushed, then read in place', () => {
    const GiB = 1024 * 1024 * 1024;
    const limit = 64 * 1024;
    const { events, decoder } = recorder(limit);
    const head = Buffer.concat([rawHeader('\0RES', PacketType.WORK_DATA, GiB), Buffer.from('H:h:9\0')]);
    decoder.push(head);
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let left = GiB - 6;
    let peak = decoder.bufferedBytes;
    // 200 MiB through push(), as TLS 'data' events deliver them.
    for (let sent = 0; sent < 200 * 1024 * 1024; sent += chunk.length) {
      decoder.push(chunk);
      left -= chunk.length;
      peak = Math.max(peak, decoder.bufferedBytes);
    }
    // The rest through readTarget/commitTarget, as the TCP `onread` path does.
    while (left > 0) {
      const target = decoder.readTarget(32 * 1024);
      if (!target) break;
      const n = Math.min(target.length, left);
      decoder.commitTarget(n);
      left -= n;
      peak = Math.max(peak, decoder.bufferedBytes);
    }
    decoder.push(Buffer.concat([chunk.subarray(0, left), buildPacket(PacketType.NOOP, [])]));
    expect(events).toEqual([
      { oversize: { type: PacketType.WORK_DATA, size: GiB, limit, handle: 'H:h:9' } },
      { packet: { type: 'NOOP', args: [] } },
    ]);
    // The handle's prefix and one read scratch buffer: the skipped bytes are never held.
    expect(peak).toBeLessThanOrEqual(12 + 64 + 64 * 1024);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('never offers a read target longer than the rest of the skipped body', () => {
    const { decoder } = recorder();
    decoder.push(Buffer.concat([rawHeader('\0RES', PacketType.ECHO_RES, LIMIT + 10), data(4)]));
    expect(decoder.readTarget()!.length).toBe(LIMIT + 6);
    expect(decoder.readTarget(LIMIT + 7)).toBeUndefined();
    expect(() => decoder.commitTarget(LIMIT + 7)).toThrow(RangeError);
  });

  it('reports no handle for a type without one, or when none ends within what gearmand can send', () => {
    const { events, decoder } = recorder();
    decoder.push(buildPacket(PacketType.ECHO_RES, [data(LIMIT + 1)]));
    // A "handle" longer than 63 bytes is not one.
    decoder.push(buildPacket(PacketType.WORK_COMPLETE, [data(64), data(LIMIT)]));
    // A function name longer than gearmand can send: the handle only.
    decoder.push(buildPacket(PacketType.JOB_ASSIGN, ['H:h:5', 'f'.repeat(9000), 'x']));
    expect(events.map((e) => ('oversize' in e ? e.oversize : e))).toEqual([
      { type: PacketType.ECHO_RES, size: LIMIT + 1, limit: LIMIT },
      { type: PacketType.WORK_COMPLETE, size: 64 + 1 + LIMIT, limit: LIMIT },
      { type: PacketType.JOB_ASSIGN, size: 6 + 9000 + 1 + 1, limit: LIMIT, handle: 'H:h:5' },
    ]);
  });

  it('reads a function name of MAX_FUNCTION_NAME_LENGTH bytes (UTF-8) from an oversized JOB_ASSIGN_ALL', () => {
    const { events, decoder } = recorder();
    const name = 'é'.repeat(MAX_FUNCTION_NAME_LENGTH / 2);
    decoder.push(buildPacket(PacketType.JOB_ASSIGN_ALL, ['H:h:6', name, 'u', 'r', data(LIMIT)]));
    expect(events).toHaveLength(1);
    expect((events[0] as { oversize: OversizedPacket }).oversize.functionName).toBe(name);
  });

  it('still throws for malformed input after a skipped packet', () => {
    const { events, decoder } = recorder();
    let error: unknown;
    try {
      decoder.push(
        Buffer.concat([buildPacket(PacketType.WORK_DATA, ['H:h:7', data(LIMIT)]), rawHeader('\0REX', 6, 0)]),
      );
    } catch (e) {
      error = e;
    }
    expect(events).toHaveLength(1);
    expect(error).toBeInstanceOf(GearmanProtocolError);
    expect((error as GearmanProtocolError).code).toBe('BAD_MAGIC');
  });

  it('forgets a packet being skipped on reset()', () => {
    const { events, decoder } = recorder();
    decoder.push(buildPacket(PacketType.WORK_DATA, ['H:h:8', data(LIMIT)]).subarray(0, 100));
    expect(decoder.bufferedBytes).toBeGreaterThan(0);
    decoder.reset();
    expect(decoder.bufferedBytes).toBe(0);
    expect(decoder.readTarget()).toBeUndefined();
    decoder.push(buildPacket(PacketType.NOOP, []));
    expect(events).toEqual([{ packet: { type: 'NOOP', args: [] } }]);
  });
});
