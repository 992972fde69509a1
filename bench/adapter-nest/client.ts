/**
 * Bench client through the Nest transport: a Nest application context with
 * `ClientsModule.register([{ customClass: ClientGearman }])` and the `text` codec, so the bytes on
 * the wire are exactly the harness payload. Foreground jobs are `send('bench_echo', payload)`
 * (W1/W3, windowed by bench/adapter's driver), background jobs `emit()` (W2, all N at once).
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import { ClientGearman, type GearmanClientProxyOptions } from '../../lib/nest/index.js';
import { driver } from '../adapter/driver.js';

const B = driver();
const o = B.parseArgs();
const CLIENT = 'BENCH_GEARMAN';
const options: GearmanClientProxyOptions = { servers: [`${o.host}:${o.port}`], reconnect: false, submitTimeout: 120_000, codec: 'text' };

@Module({ imports: [ClientsModule.register([{ name: CLIENT, customClass: ClientGearman, options }])] })
class BenchClientModule {}

async function main(): Promise<boolean> {
  const app = await NestFactory.createApplicationContext(BenchClientModule, { logger: false });
  const client = app.get<ClientGearman>(CLIENT);
  await client.connect();

  const submit = (_i: number, payload: Buffer, done: (err: Error | null, result?: Buffer) => void): void => {
    client.send<string>('bench_echo', payload.toString('latin1')).subscribe({
      next: (result) => done(null, Buffer.from(result, 'latin1')),
      error: (err: Error) => done(err),
    });
  };
  const submitBg = (_i: number, payload: Buffer, created: (err: Error | null) => void): void => {
    client.emit<string>('bench_echo', payload.toString('latin1')).subscribe({
      next: () => created(null),
      error: (err: Error) => created(err),
    });
  };

  const ok = await (o.workload === 'w2' ? B.runBackground(o, submitBg) : B.runForeground(o, submit));
  B.finish(ok, () => app.close());
  return ok;
}

main().catch((err) => B.die(err));
