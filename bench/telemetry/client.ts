/**
 * Sends `N` (default 20000) jobs to `ot_echo` with 64 in flight through ClientGearman (text codec,
 * the trace context in the metadata envelope), after 2000 warm-up jobs; prints one JSON line with
 * the mode, the rate and the client's CPU per job.
 */
import './otel-setup.js';
import 'reflect-metadata';
import { ClientGearman } from '../../lib/index.js';
import { mode, telemetry } from './otel-setup.js';

const N = Number(process.env.N ?? 20000);
const IN_FLIGHT = 64;
const client = new ClientGearman({
  servers: [process.env.ADDR!],
  codec: 'text',
  logger: false,
  sendMetadata: true,
  telemetry,
});
await client.connect();
const payload = 'x'.repeat(64);

function run(n: number): Promise<number> {
  let sent = 0;
  let done = 0;
  const t0 = performance.now();
  return new Promise<number>((resolve, reject) => {
    const next = (): void => {
      if (sent >= n) return;
      sent++;
      client.send<string>('ot_echo', payload).subscribe({
        error: reject,
        complete: () => {
          if (++done === n) resolve(n / ((performance.now() - t0) / 1000));
          else next();
        },
      });
    };
    for (let i = 0; i < IN_FLIGHT; i++) next();
  });
}

await run(2000);
const cpu = process.cpuUsage();
const rate = await run(N);
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${JSON.stringify({ mode, rate: Math.round(rate), client_us_per_job: +((used.user + used.system) / N).toFixed(2) })}\n`,
);
await client.close();
process.exit(0);
