/**
 * Issue 10 §5, input, identity and logs, against a real gearmand 1.1.20: server strings are parsed
 * strictly; the metadata envelope is read only where a server or pattern opted in (elsewhere its
 * bytes reach the handler as they are); every WORK_EXCEPTION a ClientGearman caller sees is a typed
 * GearmanRpcError, whatever a foreign worker sent; logs carry no payload bytes below the debug
 * level; NO_SERVER names each server's last socket error (a TLS certificate error) and carries it.
 */
import { createHash } from 'node:crypto';
import { createServer as createTlsServer } from 'node:tls';
import { Controller, type LoggerService } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { GearmanAdmin, GearmanClient, GearmanError, GearmanJobError, GearmanWorker } from '../../lib/engine/index.js';
import { ClientGearman, GearmanCodecError, GearmanContext, GearmanRpcError, ServerGearman } from '../../lib/index.js';
import { rejection } from '../support/errors.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { freePort } from '../support/servers.js';
import { eventually, within } from '../support/wait.js';
import { useSelfSignedCert } from '../support/tls.js';

const g = useGearmand();
const res = useResources(g);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The metadata envelope as ClientGearman writes it, around any metadata JSON text. */
function envelope(metadataJson: string, payload: Buffer): Buffer {
  const meta = Buffer.from(metadataJson);
  const head = Buffer.alloc(9);
  head.write('\0NGM1', 0, 'latin1');
  head.writeUInt32BE(meta.length, 5);
  return Buffer.concat([head, meta, payload]);
}

describe('server strings are parsed strictly, by every transport', () => {
  it.each(['::1', 'h:0x10', 'h: 4730', 'h:1e3', 'h\n', 'gearman://h:4730'])(
    '%j is refused with what is wrong and the accepted forms',
    (servers) => {
      for (const make of [
        () => new GearmanClient({ servers }),
        () => new GearmanWorker({ servers }),
        () => new GearmanAdmin({ servers }),
        () => new ClientGearman({ servers }),
        () => new ServerGearman({ servers }),
      ]) {
        let error: unknown;
        try {
          make();
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(GearmanError);
        expect(error).toMatchObject({
          code: 'INVALID_ARGUMENT',
          message: expect.stringContaining(`Invalid Gearman server ${JSON.stringify(servers)}: `),
        });
        expect((error as Error).message).toContain('accepted forms: "host", "host:port", "[IPv6]", "[IPv6]:port"');
      }
    },
  );

  it('"[::1]" and "[::1]:port" are IPv6, with the default port when none is given', async () => {
    const client = new GearmanClient({ servers: ['[::1]', '[::1]:4731'] });
    res.defer(() => client.close());
    expect(client.servers).toEqual(['[::1]:4730', '[::1]:4731']);
  });
});

@Controller()
class MetadataController {
  /** Not opted in: the raw codec sees the payload byte for byte. */
  @MessagePattern('in.raw', { codec: 'raw' })
  raw(@Payload() data: Buffer | undefined, @Ctx() ctx: GearmanContext) {
    const bytes = data ?? Buffer.alloc(0);
    return { sha: sha(bytes), length: bytes.length, metadata: ctx.getMetadata() ?? 'none' };
  }

  /** Opted in by its pattern. */
  @MessagePattern('in.meta', { readMetadata: true })
  meta(@Payload() data: unknown, @Ctx() ctx: GearmanContext) {
    return { data, metadata: ctx.getMetadata() ?? 'none' };
  }

  /** Opted in by the server's list (see the tests). */
  @MessagePattern('in.listed')
  listed(@Payload() data: unknown, @Ctx() ctx: GearmanContext) {
    return { data, metadata: ctx.getMetadata() ?? 'none' };
  }

  /** Not opted in, JSON. */
  @MessagePattern('in.json')
  json(@Payload() data: unknown, @Ctx() ctx: GearmanContext) {
    return { data, metadata: ctx.getMetadata() ?? 'none' };
  }
}

describe('the metadata envelope is read only where the server or pattern opted in', () => {
  const controllers = [MetadataController];

  it('a raw \\0NGM1 envelope from a foreign client reaches a raw handler that did not opt in byte for byte', async () => {
    await res.microservice({ controllers });
    const raw = await res.client();
    const bytes = envelope('{"user":"admin"}', Buffer.from([0, 1, 2, 0xff]));
    const result = JSON.parse((await within(raw.run('in.raw', bytes), 5000, 'in.raw')).toString()) as unknown;
    expect(result).toEqual({ sha: sha(bytes), length: bytes.length, metadata: 'none' });
  });

  it('to an opted-in pattern, non-string metadata values are a typed decode error for the caller', async () => {
    const { logger } = await res.microservice({ controllers });
    const raw = await res.client();
    for (const [meta, what] of [
      ['{"user":1}', '"user" is a number'],
      ['{"roles":["admin"]}', '"roles" is an array'],
      ['{"x":null}', '"x" is null'],
      ['["a"]', 'got an array'],
    ]) {
      const job = raw.submit('in.meta', envelope(meta, Buffer.from('{"a":1}')));
      const error = (await within(rejection(job.result()), 5000, 'in.meta')) as GearmanJobError;
      expect(error).toBeInstanceOf(GearmanJobError);
      expect(error.code).toBe('JOB_EXCEPTION');
      const body = JSON.parse(error.data!.toString()) as { status: string; message: string };
      expect(body.status).toBe('error');
      expect(body.message).toContain('Gearman function "in.meta" could not read its payload');
      expect(body.message).toContain(`metadata envelope must be an object of strings`);
      expect(body.message).toContain(what);
    }
    expect(logger.find('warn', /metadata envelope must be an object of strings/)).toHaveLength(4);
    // The same envelope with string values is read.
    await expect(raw.run('in.meta', envelope('{"user":"1"}', Buffer.from('{"a":1}')))).resolves.toEqual(
      Buffer.from(JSON.stringify({ data: { a: 1 }, metadata: { user: '1' } })),
    );
  });

  it('opted in with string values: ClientGearman sendMetadata meets readMetadata (per pattern and per server list)', async () => {
    await res.microservice({ controllers }, { readMetadata: ['in.listed'] });
    const client = res.clientProxy({ sendMetadata: true });
    client.setOnDispatchHook((packet) => {
      packet.metadata = { trace: 'abc', tenant: 't1' };
    });
    await expect(lastValueFrom(client.send('in.meta', { a: 1 }))).resolves.toEqual({
      data: { a: 1 },
      metadata: { trace: 'abc', tenant: 't1' },
    });
    await expect(lastValueFrom(client.send('in.listed', [2]))).resolves.toEqual({
      data: [2],
      metadata: { trace: 'abc', tenant: 't1' },
    });
    // A pattern that did not opt in gets the envelope as payload: a decode error that says what to set.
    const error = (await rejection(lastValueFrom(client.send('in.json', { a: 3 })))) as GearmanRpcError;
    expect(error).toBeInstanceOf(GearmanRpcError);
    expect(error.message).toContain('set readMetadata on this server or pattern');
  });

  it('sendMetadata with a non-string value fails the call with a GearmanCodecError before anything is sent', async () => {
    await res.microservice({ controllers });
    const client = res.clientProxy({ sendMetadata: true });
    client.setOnDispatchHook((packet) => {
      (packet as { metadata?: Record<string, unknown> }).metadata = { attempt: 2 };
    });
    const error = await rejection(lastValueFrom(client.send('in.meta', { a: 1 })));
    expect(error).toBeInstanceOf(GearmanCodecError);
    expect(error.message).toContain('"attempt" is a number');
    await expect(rejection(lastValueFrom(client.emit('in.meta', { a: 1 })))).resolves.toBeInstanceOf(GearmanCodecError);
  });
});

describe("a foreign worker's WORK_EXCEPTION reaches send() and job() as a typed GearmanRpcError", () => {
  const big = 'x'.repeat(100_000);
  const shapes: [name: string, bytes: Buffer, error: Record<string, unknown>, message: string | RegExp][] = [
    [
      'a JSON object',
      Buffer.from('{"code":"E_DISK","message":"disk full"}'),
      { code: 'E_DISK', message: 'disk full' },
      'disk full',
    ],
    [
      'a JSON array',
      Buffer.from('[1,"two"]'),
      { status: 'error', message: [1, 'two'] },
      /failed with an exception: \[1,"two"\]/,
    ],
    ['a JSON string', Buffer.from('"disk full"'), { status: 'error', message: 'disk full' }, 'disk full'],
    ['a JSON number', Buffer.from('42'), { status: 'error', message: 42 }, /failed with an exception: 42$/],
    ['JSON null', Buffer.from('null'), { status: 'error', message: null }, /failed with an exception: null$/],
    [
      'plain text',
      Buffer.from('disk full, try later'),
      { status: 'error', message: 'disk full, try later' },
      'disk full, try later',
    ],
    ['empty data', Buffer.alloc(0), { status: 'error', message: '' }, ''],
    ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x41]), { status: 'error', message: '\ufffd\ufffdA' }, '\ufffd\ufffdA'],
    ['100 kB of text', Buffer.from(big), { status: 'error', message: big }, `${big.slice(0, 1000)}...`],
  ];

  it.each(shapes)('%s', async (_name, bytes, errorObject, message) => {
    const fn = fnName('foreign-exception');
    const worker = res.worker();
    worker.register(fn, (job) => job.exception(bytes));
    await worker.start();
    const client = res.clientProxy();
    const fromSend = await rejection(lastValueFrom(client.send(fn, { n: 1 })));
    const fromJob = await rejection(lastValueFrom(client.job(fn, { n: 1 })));
    for (const error of [fromSend, fromJob] as GearmanRpcError[]) {
      expect(error).toBeInstanceOf(GearmanRpcError);
      expect(error).toBeInstanceOf(GearmanJobError);
      expect(error).toBeInstanceOf(GearmanError);
      expect(error).toMatchObject({ name: 'GearmanRpcError', code: 'JOB_EXCEPTION', functionName: fn });
      expect(error.handle).toMatch(/^H:/);
      expect(error.data).toEqual(bytes);
      expect(error.error).toEqual(errorObject);
      if (typeof message === 'string' && message !== '') expect(error.message).toBe(message);
      else if (message instanceof RegExp) expect(error.message).toMatch(message);
      else expect(error.message).toContain(`Job ${fn} (${error.handle}) failed with an exception`);
      expect(error.message.length).toBeLessThanOrEqual(1003 + fn.length + 60);
    }
  });

  it("the engine's own JOB_EXCEPTION message quotes at most 200 bytes of the exception text", async () => {
    const fn = fnName('foreign-exception');
    const worker = res.worker();
    worker.register(fn, (job) => job.exception('y'.repeat(100_000)));
    await worker.start();
    const error = (await rejection((await res.client()).run(fn, 'x'))) as GearmanJobError;
    expect(error).toMatchObject({ code: 'JOB_EXCEPTION', functionName: fn });
    expect(error.message).toBe(`Job ${fn} (${error.handle}) failed with an exception: ${'y'.repeat(200)}...`);
  });

  it('the gearman CLI as worker (it cannot send exceptions: a failing command is WORK_FAIL) gives a typed JOB_FAILED', async () => {
    const fn = fnName('cli-fail');
    const cli = res.spawnCli(['-w', '-f', fn, '--', 'false']);
    const admin = res.admin();
    await eventually(
      async () => (await admin.status()).some((s) => s.function === fn && s.workers > 0),
      5000,
      'the CLI worker to register',
    );
    expect(cli.pid).toBeDefined();
    const error = (await rejection(lastValueFrom(res.clientProxy().send(fn, 'x')))) as GearmanJobError;
    expect(error).toBeInstanceOf(GearmanJobError);
    expect(error).toMatchObject({ code: 'JOB_FAILED', functionName: fn });
    expect(error.handle).toMatch(/^H:/);
  });
});

@Controller()
class JsonController {
  @MessagePattern('logs.json')
  json(@Payload() data: unknown) {
    return data;
  }
}

describe('logs carry no payload bytes below the debug level', () => {
  const secret = Buffer.from('password=hunter2 card=4111111111111111');

  it('the decode warning says the size and what to do; the bytes only at debug', async () => {
    const { logger } = await res.microservice({ controllers: [JsonController] });
    const raw = await res.client();
    const error = (await rejection(raw.run('logs.json', secret))) as GearmanJobError;
    const warning = await logger.waitFor('warn', /could not read its payload/);
    expect(warning).toContain(`payload of ${secret.length} bytes`);
    expect(warning).toContain('not valid JSON');
    expect(warning).toContain('Send JSON');
    expect(warning).toContain('Enable the debug log level to see its first bytes');
    for (const text of [warning, error.message, error.data!.toString()]) {
      expect(text).not.toContain('hunter2');
      expect(text).not.toContain('password');
    }
    const debug = await logger.waitFor('debug', /first \d+ of \d+ bytes/);
    expect(debug).toContain('password=hunter2 card=4111111111111111'.slice(0, 40));
    // No other line has the bytes.
    const leaking = logger.lines.filter((l) => l.level !== 'debug' && l.message.includes('hunter2'));
    expect(leaking).toEqual([]);
  });

  it('a logger without debug gets no bytes at all', async () => {
    const lines: string[] = [];
    const logger: LoggerService = {
      log: (m: unknown) => void lines.push(String(m)),
      warn: (m: unknown) => void lines.push(String(m)),
      error: (m: unknown) => void lines.push(String(m)),
    };
    await res.microservice({ controllers: [JsonController] }, { logger });
    const raw = await res.client();
    await rejection(raw.run('logs.json', secret));
    expect(lines.some((l) => l.includes('could not read its payload'))).toBe(true);
    expect(lines.filter((l) => l.includes('hunter2'))).toEqual([]);
  });

  it('a ClientGearman that cannot read a result says so without quoting it', async () => {
    const fn = fnName('unreadable-result');
    const worker = res.worker();
    worker.register(fn, () => secret);
    await worker.start();
    const error = await rejection(lastValueFrom(res.clientProxy().send(fn, 1)));
    expect(error).toBeInstanceOf(GearmanCodecError);
    expect(error.message).toContain(
      `could not be read by the json codec: payload is not valid JSON (${secret.length} bytes).`,
    );
    expect(error.message).not.toContain('hunter2');
    expect(error.cause).toBeInstanceOf(GearmanCodecError);
  });
});

describe('NO_SERVER names the real cause and carries it', () => {
  const tls = useSelfSignedCert();

  /** A TLS port with a self-signed certificate (the handshake fails before anything reaches gearmand). */
  async function badCertPort(): Promise<string> {
    const server = createTlsServer({ key: tls.key, cert: tls.cert }, (s) => s.destroy());
    server.on('tlsClientError', () => undefined);
    return res.serve(server);
  }

  function expectCertError(error: Error, address: string): void {
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ code: 'NO_SERVER' });
    expect(error.message).toContain(address);
    expect(error.message).toMatch(/self[- ]signed certificate/);
    // The socket's own error (made by node:tls, outside Jest's realm: no instanceof).
    expect(error.cause).toMatchObject({
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      message: expect.stringMatching(/self[- ]signed certificate/),
    });
  }

  it('an engine submit before connect() fails with NO_SERVER naming the certificate error', async () => {
    const address = await badCertPort();
    const client = new GearmanClient({ servers: address, tls: {}, connectTimeout: 800 });
    res.defer(() => client.close());
    const error = await within(rejection(client.run(fnName('tls'), 'x')), 3000, 'the submit to fail');
    expectCertError(error, address);
  });

  it('ClientGearman.send() before connect, the worker and the admin name it too', async () => {
    const address = await badCertPort();
    const client = res.clientProxy({ servers: address, tls: {}, connectTimeout: 800 });
    expectCertError(await within(rejection(lastValueFrom(client.send('any', 1))), 3000, 'send()'), address);

    const worker = res.worker({ servers: address, tls: {}, connectTimeout: 800 });
    worker.register('any', () => 'x');
    expectCertError(await within(rejection(worker.start()), 3000, 'worker.start()'), address);

    const admin = res.admin({ servers: address, tls: {}, connectTimeout: 800 });
    const adminError = await within(rejection(admin.status()), 3000, 'admin status');
    expect(adminError).toMatchObject({ code: 'NO_SERVER' });
    expect(adminError.message).toMatch(new RegExp(`${address} \\(self[- ]signed certificate\\)`));
    expect((adminError.cause as NodeJS.ErrnoException).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('with several servers: each one named with its own error, the cause an AggregateError of them', async () => {
    const tlsAddress = await badCertPort();
    const refused = `127.0.0.1:${await freePort()}`;
    const client = new GearmanClient({ servers: [tlsAddress, refused], tls: {}, connectTimeout: 800 });
    res.defer(() => client.close());
    const error = await within(rejection(client.run(fnName('tls'), 'x')), 3000, 'the submit to fail');
    expect(error).toMatchObject({ code: 'NO_SERVER' });
    expect(error.message).toMatch(new RegExp(`${tlsAddress}: self[- ]signed certificate`));
    expect(error.message).toContain(`${refused}: `);
    expect(error.cause).toBeInstanceOf(AggregateError);
    expect((error.cause as AggregateError).errors).toHaveLength(2);
  });
});
