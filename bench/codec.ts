/**
 * Codec micro-benchmark: `npm run bench:codec`. Prints one line per case, e.g.
 * `decode JOB_ASSIGN 64B: 95.1 ns/op`.
 *
 * Decoding pushes 64 KiB chunks of back-to-back packets (as a busy socket delivers them) and
 * divides by the packet count; encoding calls encodePacket once per packet, with a distinct
 * handle string each time as a real worker would. Each case is warmed up, then timed as many
 * short rounds of 10,000 operations; the median round is reported. Short rounds keep the figure
 * about the code rather than the scheduler when other processes share the CPU.
 */
import { type Packet, PacketDecoder, type PacketArg, PacketType, encodePacket } from '../lib/protocol/index.js';

interface Case {
  label: string;
  type: number;
  /** Arguments of the i-th packet. */
  args: (i: number) => PacketArg[];
}

const OPS = 10_000;
const PAYLOAD = Buffer.alloc(64, 0x61);
// Distinct handles, built before timing. Decoded from bytes, as a handle read off a socket is:
// a template literal alone would give V8 rope strings, slower to read than real handles.
const HANDLES = Array.from({ length: OPS }, (_, i) => Buffer.from(`H:worker-host-01:${100000 + i}`).toString('latin1'));
const CASES: Case[] = [
  { label: 'NOOP', type: PacketType.NOOP, args: () => [] },
  { label: 'JOB_CREATED', type: PacketType.JOB_CREATED, args: (i) => [HANDLES[i]] },
  { label: 'JOB_ASSIGN 64B', type: PacketType.JOB_ASSIGN, args: (i) => [HANDLES[i], 'resize-image', PAYLOAD] },
];

const WARMUP_MS = 300;
const ROUNDS = 301;

/** Keeps results observable so the optimiser cannot drop the work. */
let sink = 0;

/** Warms `fn` up, then returns the median over ROUNDS runs of its time divided by OPS, in ns. */
function measure(fn: () => void): number {
  const warmupEnd = Date.now() + WARMUP_MS;
  // Bounded by the clock; at least one run.
  do fn();
  while (Date.now() < warmupEnd);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    fn();
    rounds.push(Number(process.hrtime.bigint() - start) / OPS);
  }
  rounds.sort((a, b) => a - b);
  return rounds[ROUNDS >> 1];
}

/** A socket read delivers at most 64 KiB: decode chunks of that size, full of whole packets. */
const CHUNK = 64 * 1024;

function decodeCase(c: Case): number {
  const packets: Buffer[] = [];
  let bytes = 0;
  for (let i = 0; i < OPS; i++) {
    const p = encodePacket(c.type, c.args(i), 'RES');
    if (bytes + p.length > CHUNK) break;
    packets.push(p);
    bytes += p.length;
  }
  const chunk = Buffer.concat(packets);
  const pushes = Math.ceil(OPS / packets.length);
  const decoder = new PacketDecoder(
    (p: Packet) => {
      sink += p.args.length;
    },
    { magic: 'RES' },
  );
  return (
    (measure(() => {
      for (let i = 0; i < pushes; i++) decoder.push(chunk);
    }) *
      OPS) /
    (pushes * packets.length)
  );
}

function encodeCase(c: Case): number {
  const type = c.type;
  // Argument arrays prepared up front: the bench times encoding, not building them.
  const args = Array.from({ length: OPS }, (_, i) => c.args(i));
  return measure(() => {
    for (let i = 0; i < OPS; i++) sink += encodePacket(type, args[i], 'RES').length;
  });
}

const lines: string[] = [];
for (const c of CASES) lines.push(`decode ${c.label}: ${decodeCase(c).toFixed(1)} ns/op`);
for (const c of CASES) lines.push(`encode ${c.label}: ${encodeCase(c).toFixed(1)} ns/op`);
if (sink === 0) throw new Error('benchmark did no work');
process.stdout.write(`${lines.join('\n')}\n`);
