/**
 * The Nest transport with the `gearman` CLI (libgearman 1.1.20, Debian package gearman-tools) on
 * the other side, both ways. Every CLI process is bounded (SIGKILLed past its limit, which the
 * tests then report) and killed by PID at cleanup.
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { GearmanJobError } from '../../lib/engine/index.js';
import { GearmanContext, GearmanRecordBuilder } from '../../lib/index.js';
import { functionStatus, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

let probe = newProbe();
function newProbe() {
  return { event: deferred<{ data: unknown; unique: string }>() };
}

@Controller()
class CliFacingController {
  @MessagePattern('cli.upper', { codec: 'text' })
  upper(@Payload() text: string): string {
    return text.toUpperCase();
  }

  @MessagePattern('cli.inspect')
  inspect(@Payload() data: unknown): unknown {
    return { received: data === undefined ? 'nothing' : data, type: data === undefined ? 'undefined' : typeof data };
  }

  @MessagePattern('cli.fails', { errorMode: 'fail' })
  fails(): never {
    throw new RpcException('cannot do that');
  }

  /**
   * The default errorMode, 'exception': the error goes out as WORK_EXCEPTION. The gearman CLI cannot
   * ask for exceptions, so gearmand hands it `WORK_FAIL "handle\0"` instead. libgearman 1.1.x never
   * matches that handle (its trailing NUL): its CLI hangs until its own `-t` timeout (forever without
   * one) and exits 0 with no output; libgearman 2.x reports "Job failed"
   * (docs/gearmand-behaviour.md#gearmand-200). Patterns that foreign callers use want errorMode 'fail'.
   */
  @MessagePattern('cli.throws')
  throws(): never {
    throw new RpcException('cannot do that');
  }

  @EventPattern<string>('cli.event')
  event(@Payload() data: unknown, @Ctx() ctx: GearmanContext): void {
    probe.event.resolve({ data, unique: ctx.getUnique() });
  }
}

const controllers = [CliFacingController];

beforeEach(() => {
  probe = newProbe();
});

describe('gearman CLI calling Nest handlers', () => {
  it('a text handler: the CLI prints its result', async () => {
    await res.microservice({ controllers });
    const r = await res.runCli(['-f', 'cli.upper', 'hello gearman'], 8000);
    expect(r).toMatchObject({ killed: false, code: 0, stdout: 'HELLO GEARMAN', stderr: '' });
  });

  it('a JSON handler: JSON in, JSON out', async () => {
    await res.microservice({ controllers });
    const r = await res.runCli(['-f', 'cli.inspect', '{"a":1}'], 8000);
    expect(r).toMatchObject({ killed: false, code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({ received: { a: 1 }, type: 'object' });
  });

  it('a JSON handler gets undefined for the empty payload the CLI sends without data', async () => {
    await res.microservice({ controllers });
    // No data argument and stdin at /dev/null: an empty workload.
    const r = await res.runCli(['-f', 'cli.inspect'], 8000);
    expect(r).toMatchObject({ killed: false, code: 0 });
    expect(JSON.parse(r.stdout)).toEqual({ received: 'nothing', type: 'undefined' });
  });

  it("errorMode 'fail': the CLI sees the failure at once and exits 1", async () => {
    await res.microservice({ controllers });
    const r = await res.runCli(['-f', 'cli.fails', 'x'], 8000);
    // It did not hang: it exited by itself, promptly.
    expect(r.killed).toBe(false);
    expect(r.ms).toBeLessThan(3000);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toContain('Job failed');
  });

  it("errorMode 'exception' (the default): the CLI gets no result, only a timeout or a bare failure", async () => {
    await res.microservice({ controllers });
    // A libgearman 1.1 CLI would wait forever without -t; -t 1500 bounds it. A 2.x CLI fails at once.
    const r = await res.runCli(['-t', '1500', '-f', 'cli.throws', 'x'], 8000);
    expect(r.killed).toBe(false);
    expect(r.stdout).toBe('');
    // Which of the two depends on the CLI's libgearman, not on the server.
    expect(r.stderr).toMatch(/timeout|Job failed/i);
  });

  it('a background job from the CLI (-b, -u) reaches an @EventPattern handler', async () => {
    await res.microservice({ controllers });
    const r = await res.runCli(['-b', '-u', 'cli-unique-1', '-f', 'cli.event', '{"order":7}'], 8000);
    expect(r).toMatchObject({ killed: false, code: 0 });
    expect(await within(probe.event.promise, 5000, 'the event handler')).toEqual({
      data: { order: 7 },
      unique: 'cli-unique-1',
    });
  });
});

describe('ClientGearman calling gearman CLI workers', () => {
  /** Starts `gearman -w -f fn -- command...` and waits until gearmand lists its function. */
  async function cliWorker(fn: string, ...command: string[]): Promise<void> {
    res.spawnCli(['-w', '-f', fn, '--', ...command]);
    const admin = res.admin();
    await eventually(
      async () => (await functionStatus(admin, fn)).workers === 1,
      5000,
      `the CLI worker for ${fn} to register`,
    );
  }

  it("text codec through the record builder: the worker's stdout comes back", async () => {
    await cliWorker('cli.tr.builder', 'tr', 'a-z', 'A-Z');
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder('hello from nest').setCodec('text').build();
    expect(await within(lastValueFrom(client.send('cli.tr.builder', record)), 5000, 'the CLI worker result')).toBe(
      'HELLO FROM NEST',
    );
  });

  it('text codec as the client option', async () => {
    await cliWorker('cli.tr.option', 'tr', 'a-z', 'A-Z');
    const client = res.clientProxy({ codec: 'text' });
    expect(await within(lastValueFrom(client.send('cli.tr.option', 'shout')), 5000, 'the CLI worker result')).toBe(
      'SHOUT',
    );
  });

  it('JSON through a worker that echoes its input', async () => {
    await cliWorker('cli.cat', 'cat');
    const client = res.clientProxy();
    const value = { a: 1, list: [1, 2, 3], nested: { ok: true } };
    expect(await within(lastValueFrom(client.send('cli.cat', value)), 5000, 'the echoed value')).toEqual(value);
  });

  it('a CLI worker whose command exits non-zero: send() errors with JOB_FAILED', async () => {
    await cliWorker('cli.false', 'false');
    const client = res.clientProxy();
    const error = await within(
      lastValueFrom(client.send('cli.false', {})).catch((e: unknown) => e),
      5000,
      'the failure',
    );
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error).toMatchObject({ code: 'JOB_FAILED', functionName: 'cli.false' });
  });
});
