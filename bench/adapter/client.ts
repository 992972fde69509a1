/**
 * Bench client on this project's engine: one GearmanClient (one connection), foreground jobs
 * windowed by the harness driver (W1/W3), background submits fired back to back (W2).
 */
import { GearmanClient, type GearmanError } from '../../lib/engine/index.js';
import { driver } from './driver.js';

const B = driver();
const o = B.parseArgs();
const client = new GearmanClient({ servers: [`${o.host}:${o.port}`], reconnect: false, submitTimeout: 120_000 });

function submit(_i: number, payload: Buffer, done: (err: Error | null, result?: Buffer) => void): void {
  const job = client.submit('bench_echo', payload);
  job.on('complete', (data: Buffer) => done(null, data));
  job.on('fail', (err: GearmanError) => done(err));
}

function submitBg(_i: number, payload: Buffer, created: (err: Error | null) => void): void {
  const job = client.submit('bench_echo', payload, { background: true });
  job.on('created', () => created(null));
  job.on('fail', (err: GearmanError) => created(err));
}

client
  .connect()
  .then(() => (o.workload === 'w2' ? B.runBackground(o, submitBg) : B.runForeground(o, submit)))
  .then(
    (ok) => B.finish(ok, () => client.close()),
    (err) => B.die(err),
  );
