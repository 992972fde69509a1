/**
 * Codec micro-benchmark: `npm run bench:codec`. Prints one line per case, e.g.
 * `decode JOB_ASSIGN 64B: 95.1 ns/op`.
 *
 * Decoding pushes one large buffer of back-to-back packets (as a busy socket delivers them) and
 * divides by the packet count; encoding calls encodePacket once per packet. Each case is warmed
 * up first, then timed over several rounds; the median round is reported.
 */
import { type Packet, PacketDecoder, type PacketArg, PacketType, encodePacket } from '../lib/protocol/index.js';

interface Case {
  label: string;
  type: number;
  args: readonly PacketArg[];
}

const PAYLOAD = Buffer.alloc(64, 0x61);
const CASES: Case[] = [
  { label: 'NOOP', type: PacketType.NOOP, args: [] },
  { label: 'JOB_CREATED', type: PacketType.JOB_CREATED, args: ['H:worker-host-01:123456'] },
  { label: 'JOB_ASSIGN 64B', type: PacketType.JOB_ASSIGN, args: ['H:worker-host-01:123456', 'resize-image', PAYLOAD] },
];

const PACKETS_PER_BUFFER = 10_000;
const ROUNDS = 9;
const WARMUP_MS = 300;
const ROUND_MS = 200;

/** Keeps results observable so the optimiser cannot drop the work. */
let sink = 0;

/** Runs `fn` (which does `ops` operations) repeatedly for about `ms`; returns ns per op. */
function time(fn: () => void, ops: number, ms: number): number {
  let runs = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(ms) * 1_000_000n;
  let now = start;
  // Bounded by the deadline; at least one run.
  do {
    fn();
    runs++;
    now = process.hrtime.bigint();
  } while (now < deadline);
  return Number(now - start) / (runs * ops);
}

function measure(fn: () => void, ops: number): number {
  time(fn, ops, WARMUP_MS);
  const rounds = Array.from({ length: ROUNDS }, () => time(fn, ops, ROUND_MS)).sort((a, b) => a - b);
  return rounds[ROUNDS >> 1];
}

function decodeCase(c: Case): number {
  const one = encodePacket(c.type, c.args, 'RES');
  const stream = Buffer.concat(Array.from({ length: PACKETS_PER_BUFFER }, () => one));
  const onPacket = (p: Packet) => {
    sink += p.args.length;
  };
  const decoder = new PacketDecoder(onPacket, { magic: 'RES' });
  return measure(() => decoder.push(stream), PACKETS_PER_BUFFER);
}

function encodeCase(c: Case): number {
  const { type, args } = c;
  return measure(() => {
    for (let i = 0; i < PACKETS_PER_BUFFER; i++) sink += encodePacket(type, args, 'RES').length;
  }, PACKETS_PER_BUFFER);
}

const lines: string[] = [];
for (const c of CASES) lines.push(`decode ${c.label}: ${decodeCase(c).toFixed(1)} ns/op`);
for (const c of CASES) lines.push(`encode ${c.label}: ${encodeCase(c).toFixed(1)} ns/op`);
if (sink === 0) throw new Error('benchmark did no work');
process.stdout.write(`${lines.join('\n')}\n`);
