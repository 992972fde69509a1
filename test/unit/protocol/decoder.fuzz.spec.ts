/**
 * Bounded randomized test of the decoder: mutated valid frames and random bytes, cut into random
 * chunks. Seeded, so a failure reproduces: FUZZ_SEED=<seed> reruns the same inputs.
 */
import {
  encodePacket,
  GearmanProtocolError,
  HEADER_SIZE,
  type Packet,
  PACKET_SPECS,
  packetArgCount,
  PacketDecoder,
} from '../../../lib/protocol/index.js';
import { ALL_TYPES, prng } from '../../support/packets.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x6ea7a4);
const INPUTS = 100_000;
const MAX_PACKET = 64;

type Outcome = { packets: Packet[]; error: unknown; maxBuffered: number };

function run(chunks: readonly Buffer[]): Outcome {
  const packets: Packet[] = [];
  const decoder = new PacketDecoder((p) => packets.push(p), { maxPacketSize: MAX_PACKET });
  let maxBuffered = 0;
  let error: unknown;
  try {
    for (const chunk of chunks) {
      decoder.push(chunk);
      if (decoder.bufferedBytes > maxBuffered) maxBuffered = decoder.bufferedBytes;
    }
  } catch (e) {
    error = e;
  }
  return { packets, error, maxBuffered };
}

function samePackets(a: readonly Packet[], b: readonly Packet[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].type !== b[i].type || a[i].args.length !== b[i].args.length) return false;
    for (let j = 0; j < a[i].args.length; j++) if (!a[i].args[j].equals(b[i].args[j])) return false;
  }
  return true;
}

describe(`PacketDecoder randomized (seed ${SEED}, ${INPUTS} inputs)`, () => {
  it('only ever throws GearmanProtocolError, stays within the size limit, and ignores chunk boundaries', () => {
    const random = prng(SEED);
    const int = (n: number) => (random() * n) >>> 0; // n < 2^32; avoids slow Math lookups under Jest
    const bytes = (n: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    };
    // Arguments short enough that most valid frames stay under MAX_PACKET.
    const arg = () => (random() < 0.2 ? bytes(int(12)) : Buffer.from('abcdefgh'.slice(0, int(9))));

    const validFrame = (): Buffer => {
      const type = ALL_TYPES[int(ALL_TYPES.length)];
      const spec = PACKET_SPECS[type]!;
      const count = spec.argc + (spec.data ? 1 : 0);
      // NULs are only allowed in the last argument.
      const args = Array.from({ length: count }, (_, i) =>
        i < count - 1 ? Buffer.from(arg().filter((x) => x !== 0)) : arg(),
      );
      return encodePacket(type, args, 'RES');
    };

    const mutate = (input: Buffer): Buffer => {
      const b = Buffer.from(input);
      switch (int(6)) {
        case 0: {
          const flips = 1 + int(3);
          for (let i = 0; i < flips; i++) b[int(b.length)] ^= 1 << int(8);
          return b;
        }
        case 1:
          return b.subarray(0, int(b.length));
        case 2: {
          // Length field of a frame: random, near the limit, or off by a little.
          const choice = int(3);
          const at = 8;
          if (choice === 0) b.writeUInt32BE(int(0x100000000), at);
          else if (choice === 1) b.writeUInt32BE(MAX_PACKET - 2 + int(5), at);
          else b.writeUInt32BE((b.readUInt32BE(at) + int(9) - 4) >>> 0, at);
          return b;
        }
        case 3:
          b.writeUInt32BE(random() < 0.8 ? int(48) : int(0x100000000), 4);
          return b;
        case 4:
          return Buffer.concat([b, bytes(int(16))]);
        default:
          return b; // unmutated
      }
    };

    const makeInput = (): { input: Buffer; valid: boolean } => {
      const kind = int(10);
      if (kind < 2) {
        // Random bytes, half of them behind a correct magic so the header checks are reached.
        const tail = bytes(int(80));
        return { input: random() < 0.5 ? Buffer.concat([Buffer.from('\0RES', 'latin1'), tail]) : tail, valid: false };
      }
      // Now and then a long run of frames: chunks of 1 KiB and more take the word-scanning path.
      const frames = Array.from({ length: random() < 0.03 ? 40 + int(40) : 1 + int(3) }, validFrame);
      const input = Buffer.concat(frames);
      if (kind < 4) return { input, valid: frames.every((f) => f.length - HEADER_SIZE <= MAX_PACKET) };
      return { input: mutate(input), valid: false };
    };

    const chunk = (input: Buffer): Buffer[] => {
      const chunks: Buffer[] = [];
      let at = 0;
      // Bounded: every step consumes at least one byte.
      while (at < input.length) {
        const n = 1 + int(random() < 0.5 ? 4 : input.length);
        chunks.push(input.subarray(at, at + n));
        at += n;
      }
      return chunks;
    };

    const failures: string[] = [];
    const codes = new Map<string, number>();
    let decodedPackets = 0;
    const fail = (i: number, input: Buffer, why: string) => {
      if (failures.length < 10) failures.push(`input #${i} (seed ${SEED}) ${input.toString('hex')}: ${why}`);
    };

    for (let i = 0; i < INPUTS; i++) {
      const { input, valid } = makeInput();
      // A fresh decoder per input: after an error the old one is unusable by contract.
      const chunked = run(chunk(input));
      const whole = run([input]);
      decodedPackets += chunked.packets.length;

      for (const outcome of [chunked, whole]) {
        if (outcome.error !== undefined && !(outcome.error instanceof GearmanProtocolError)) {
          fail(i, input, `non-protocol error escaped: ${String(outcome.error)}`);
        }
        if (outcome.maxBuffered > MAX_PACKET + HEADER_SIZE) fail(i, input, `buffered ${outcome.maxBuffered} bytes`);
      }
      if (chunked.error instanceof GearmanProtocolError) {
        codes.set(chunked.error.code, (codes.get(chunked.error.code) ?? 0) + 1);
      }
      const code = (e: unknown) => (e instanceof GearmanProtocolError ? e.code : e === undefined ? 'none' : 'other');
      if (code(chunked.error) !== code(whole.error)) {
        fail(i, input, `chunked gave ${code(chunked.error)}, whole gave ${code(whole.error)}`);
      }
      if (!samePackets(chunked.packets, whole.packets)) fail(i, input, 'chunked and whole decoding differ');
      // Lossless: each decoded packet, encoded again, gives exactly the frame it came from. Types
      // without arguments ignore a stray payload (harmless: the length still frames the stream).
      let offset = 0;
      for (const p of chunked.packets) {
        const frame = input.subarray(offset, offset + HEADER_SIZE + input.readUInt32BE(offset + 8));
        const again = encodePacket(p.type, p.args, 'RES');
        const same =
          packetArgCount(p.type) === 0 ? again.subarray(0, 8).equals(frame.subarray(0, 8)) : again.equals(frame);
        if (!same) fail(i, input, `packet at ${offset} does not re-encode to its frame`);
        offset += frame.length;
      }
      if (valid && (chunked.error !== undefined || chunked.packets.length === 0))
        fail(i, input, 'valid input not decoded');
    }

    expect(failures).toEqual([]);
    // The generator really reaches every error path and still decodes plenty of packets.
    expect([...codes.keys()].sort()).toEqual(['BAD_MAGIC', 'PACKET_TOO_LARGE', 'TOO_FEW_ARGUMENTS', 'UNKNOWN_TYPE']);
    for (const n of codes.values()) expect(n).toBeGreaterThan(100);
    expect(decodedPackets).toBeGreaterThan(INPUTS / 2);
  });
});
