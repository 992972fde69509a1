/**
 * Bench client through the Nest transport: a Nest application context with
 * `ClientsModule.register([{ customClass: ClientGearman }])` and the `text` codec. The harness
 * payload is a Buffer, which every codec writes as it is, so the bytes on the wire are exactly the
 * harness payload; the worker's handler gets it as a string. Foreground jobs are
 * `send('bench_echo', payload)` (W1/W3, windowed by bench/adapter's driver), background jobs
 * `emit()` (W2, all N at once).
 * `BENCH_NEST_CODEC=raw` (with the same on the worker) sends the payload Buffer through the `raw`
 * codec instead: no string conversions, to tell codec cost from transport cost.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import { ClientGearman, type GearmanClientProxyOptions } from '../../lib/index.js';
import { driver } from '../adapter/driver.js';

const B = driver();
const o = B.parseArgs();
const CLIENT = 'BENCH_GEARMAN';
const raw = process.env.BENCH_NEST_CODEC === 'raw';
const options: GearmanClientProxyOptions = {
  servers: [`${o.host}:${o.port}`],
  reconnect: false,
  submitTimeout: 120_000,
  codec: raw ? 'raw' : 'text',
};

@Module({ imports: [ClientsModule.register([{ name: CLIENT, customClass: ClientGearman, options }])] })
class BenchClientModule {}

async function main(): Promise<boolean> {
  const app = await NestFactory.createApplicationContext(BenchClientModule, { logger: false });
  const client = app.get<ClientGearman>(CLIENT);
  await client.connect();

  // Every codec writes a Buffer as it is, so the harness payload goes out without a conversion.
  // A `text` result is a string: the driver compares bytes, and the payload is ASCII (latin1 = utf8).
  const submit = (_i: number, payload: Buffer, done: (err: Error | null, result?: Buffer) => void): void => {
    client.send<string | Buffer>('bench_echo', payload).subscribe({
      next: (result) => done(null, typeof result === 'string' ? Buffer.from(result, 'latin1') : result),
      error: (err: Error) => done(err),
    });
  };
  const submitBg = (_i: number, payload: Buffer, created: (err: Error | null) => void): void => {
    client.emit<string>('bench_echo', payload).subscribe({
      next: () => created(null),
      error: (err: Error) => created(err),
    });
  };

  const ok = await (o.workload === 'w2' ? B.runBackground(o, submitBg) : B.runForeground(o, submit));
  B.finish(ok, () => app.close());
  return ok;
}

main().catch((err) => B.die(err));
