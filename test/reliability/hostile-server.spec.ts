/**
 * Reliability: a GearmanClient and a GearmanWorker (in a child process, so its uncaught-exception,
 * unhandled-rejection and warning listeners are real and its memory is its own) under load against
 * two hostile fake servers that answer with random, mutated and garbage frames. At least 100 000
 * frames each after warm-up: only typed errors, reconnects, no crash, bounded memory, nothing hung.
 */
import { fixturePath } from '../support/child.js';
import { useResources } from '../support/harness.js';
import { HostileServer } from '../support/hostile-server.js';

const SEED = Number(process.env.HOSTILE_SEED ?? 20_251_122);
const WARMUP_FRAMES = 20_000;
const FRAMES = Number(process.env.HOSTILE_FRAMES ?? 100_000);
const MB = 1024 * 1024;

interface Snapshot {
  rss: number;
  heapUsed: number;
  handles: number;
  resources: Record<string, number>;
}

interface Report {
  outcomes: { ok: number; typed: Record<string, number>; untyped: string[]; lateMs: number; started: number };
  events: {
    clientErrors: number;
    clientErrorKinds: Record<string, number>;
    workerErrors: number;
    workerErrorKinds: Record<string, number>;
    untypedEvents: string[];
    clientConnects: number;
    clientReconnecting: number;
    workerConnects: number;
    workerReconnecting: number;
    jobsRun: number;
    jobErrors: number;
  };
  baseline: Snapshot;
  end: Snapshot;
  after: Snapshot;
  settleMs: number;
  closeMs: number;
  uncaught: string[];
  unhandled: string[];
  warnings: string[];
}

const res = useResources();

it(`client and worker survive ${FRAMES} hostile frames each (seed ${SEED}): typed errors, reconnects, no crash, bounded memory`, async () => {
  const forClient = await HostileServer.start({ seed: SEED });
  const forWorker = await HostileServer.start({ seed: SEED + 1 });
  res.defer(() => forClient.close());
  res.defer(() => forWorker.close());
  const started = performance.now();
  const child = res.tsx(fixturePath('hostile-run.ts'), [forClient.address, forWorker.address], {
    nodeArgs: ['--expose-gc'],
  });
  await child.line('READY', 15_000);

  await Promise.all([forClient.waitForFrames(WARMUP_FRAMES, 20_000), forWorker.waitForFrames(WARMUP_FRAMES, 20_000)]);
  child.send('MARK');
  await child.line('MARKED', 5000);
  const marked = { client: forClient.counters.frames, worker: forWorker.counters.frames };
  await Promise.all([
    forClient.waitForFrames(marked.client + FRAMES, 60_000),
    forWorker.waitForFrames(marked.worker + FRAMES, 60_000),
  ]);
  child.send('STOP');
  const reportLine = await child.line('REPORT ', 10_000);
  const elapsed = Math.round(performance.now() - started);
  const report = JSON.parse(reportLine.slice('REPORT '.length)) as Report;

  const growth = (k: 'rss' | 'heapUsed') => (report.end[k] - report.baseline[k]) / MB;
  console.log(
    [
      `hostile servers, seed ${SEED}, ${elapsed} ms:`,
      `  to the client: ${JSON.stringify(forClient.counters)}`,
      `  to the worker: ${JSON.stringify(forWorker.counters)}`,
      `  client operations: ${report.outcomes.started} started, ${report.outcomes.ok} ok, typed failures ${JSON.stringify(report.outcomes.typed)}`,
      `  worst settle after its limit: ${Math.round(report.outcomes.lateMs)} ms; settle at stop ${report.settleMs} ms; close ${report.closeMs} ms`,
      `  client: ${report.events.clientConnects} connects, ${report.events.clientReconnecting} reconnect attempts, error events ${JSON.stringify(report.events.clientErrorKinds)}`,
      `  worker: ${report.events.workerConnects} connects, ${report.events.workerReconnecting} reconnect attempts, ${report.events.jobsRun} jobs run, error events ${JSON.stringify(report.events.workerErrorKinds)}`,
      `  memory after warm-up → end (after gc): rss ${(report.baseline.rss / MB).toFixed(1)} → ${(report.end.rss / MB).toFixed(1)} MB (${growth('rss').toFixed(1)}), ` +
        `heapUsed ${(report.baseline.heapUsed / MB).toFixed(1)} → ${(report.end.heapUsed / MB).toFixed(1)} MB (${growth('heapUsed').toFixed(1)})`,
      `  active resources after close: ${JSON.stringify(report.after.resources)}`,
    ].join('\n'),
  );

  // It exits by itself after closing the client and worker: nothing left open.
  const exit = await child.exit(5000);

  // The volume asked for, against both sides.
  expect(forClient.counters.frames - marked.client).toBeGreaterThanOrEqual(FRAMES);
  expect(forWorker.counters.frames - marked.worker).toBeGreaterThanOrEqual(FRAMES);
  expect(forClient.counters.mutatedFrames).toBeGreaterThan(FRAMES / 200);
  expect(forWorker.counters.mutatedFrames).toBeGreaterThan(FRAMES / 200);
  expect([...forClient.toolErrors, ...forWorker.toolErrors]).toEqual([]);
  // The library never sent gearmand anything malformed, whatever it was told.
  expect(forClient.peerErrors).toEqual([]);
  expect(forClient.counters.peerProtocolErrors).toBe(0);
  expect(forWorker.peerErrors).toEqual([]);
  expect(forWorker.counters.peerProtocolErrors).toBe(0);

  // No crash: the process stayed up, and no listener of last resort fired.
  expect(report.uncaught).toEqual([]);
  expect(report.unhandled).toEqual([]);
  expect(report.warnings).toEqual([]);
  expect(exit).toEqual({ code: 0, signal: null });

  // Only typed errors, for callers and on the error events.
  expect(report.outcomes.untyped).toEqual([]);
  expect(report.events.untypedEvents).toEqual([]);
  expect(report.outcomes.ok).toBeGreaterThan(0);
  expect(Object.keys(report.outcomes.typed).length).toBeGreaterThan(0);
  expect(report.events.jobsRun).toBeGreaterThan(0);

  // It reconnected by itself, many times.
  expect(report.events.clientConnects).toBeGreaterThan(10);
  expect(report.events.workerConnects).toBeGreaterThan(10);

  // Nothing hung: every operation settled within its own limit (plus event-loop slack).
  expect(report.outcomes.lateMs).toBeLessThan(2000);
  expect(report.settleMs).toBeLessThan(3000);

  // Bounded memory after warm-up (after gc).
  expect(growth('heapUsed')).toBeLessThan(16);
  expect(growth('rss')).toBeLessThan(64);
}, 120_000);
