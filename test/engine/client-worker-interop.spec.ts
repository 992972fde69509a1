/**
 * GearmanClient and GearmanWorker against a real gearmand 1.1.20, with foreign peers: client ids in
 * `workers`, TLS through a node:tls front (Debian's gearmand has no SSL,
 * docs/gearmand-behaviour.md#tls), and the `gearman` CLI (libgearman) as client of our worker and
 * as worker for our client.
 */
import { connect as netConnect } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { deferred, eventually, within } from '../support/wait.js';
import { useSelfSignedCert } from '../support/tls.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

describe('client ids', () => {
  it('shows the worker and client ids (SET_CLIENT_ID) in admin workers', async () => {
    const fn = fnName('ids');
    const worker = res.worker({ clientId: 'thumbnailer-7' });
    worker.register(fn, () => 'ok');
    await worker.start();
    const client = await res.client({ clientId: 'web-frontend' });
    // The echo is answered after SET_CLIENT_ID was handled (one FIFO per connection).
    await client.echo(gearmand.address);
    await expect(client.run(fn, 'x')).resolves.toEqual(Buffer.from('ok'));

    const admin = res.admin();
    const rows = await eventually(
      async () => {
        const all = await admin.workers();
        return all.some((w) => w.clientId === 'thumbnailer-7') && all;
      },
      3000,
      'the worker to show in workers',
    );
    expect(rows.filter((w) => w.clientId === 'thumbnailer-7').map((w) => w.functions)).toEqual([[fn]]);
    expect(rows.filter((w) => w.clientId === 'web-frontend').map((w) => w.functions)).toEqual([[]]);
  });
});

describe('TLS', () => {
  const tls = useSelfSignedCert();

  /** A node:tls server that pipes each connection to gearmand in plaintext. */
  async function tlsFront(): Promise<{ address: string; handshakes: () => number }> {
    let handshakes = 0;
    const server = createTlsServer({ key: tls.key, cert: tls.cert }, (tlsSocket) => {
      handshakes++;
      const upstream = netConnect({ host: gearmand.server.host, port: gearmand.port });
      for (const s of [tlsSocket, upstream]) {
        s.on('error', () => undefined);
        s.on('close', () => {
          tlsSocket.destroy();
          upstream.destroy();
        });
      }
      tlsSocket.pipe(upstream);
      upstream.pipe(tlsSocket);
    });
    return { address: await res.serve(server), handshakes: () => handshakes };
  }

  it('runs a job with client and worker both on TLS (verified with the CA, and with rejectUnauthorized: false)', async () => {
    const front = await tlsFront();
    const fn = fnName('tls');
    const worker = res.worker({ servers: front.address, tls: { rejectUnauthorized: false } });
    const streamed: string[] = [];
    worker.register(fn, (job) => {
      job.sendData('over tls');
      return Buffer.concat([Buffer.from('secure:'), job.payload]);
    });
    await worker.start();
    const client = await res.client({ servers: front.address, tls: { ca: tls.cert } });

    const payload = Buffer.from([0, 1, 2, 0, 255]);
    const job = client.submit(fn, payload);
    job.on('data', (d) => streamed.push(d.toString()));
    await expect(within(job.result(), 5000, 'the TLS round trip')).resolves.toEqual(
      Buffer.concat([Buffer.from('secure:'), payload]),
    );
    expect(streamed).toEqual(['over tls']);
    // Both connections went through the TLS front to gearmand.
    expect(job.handle).toMatch(/^H:/);
    expect(front.handshakes()).toBe(2);
  });

  it('does not connect when the certificate is not trusted', async () => {
    const front = await tlsFront();
    const client = res.client({ servers: front.address, tls: {}, connectTimeout: 1500, reconnect: false });
    const error = await client.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toMatchObject({ code: 'NO_SERVER' });
    // The reason is in the message, not just "could not connect".
    expect(error!.message).toMatch(/self[- ]signed certificate/);
  });
});

describe('the gearman CLI (libgearman)', () => {
  it('calls our worker: `gearman -f fn payload` prints our result', async () => {
    const fn = fnName('cli-call');
    const worker = res.worker();
    const seen: { payload: string; unique: string }[] = [];
    worker.register(fn, (job) => {
      seen.push({ payload: job.payload.toString(), unique: job.unique });
      job.sendStatus(1, 2);
      return job.payload.toString().toUpperCase();
    });
    await worker.start();

    const { code, stdout } = await res.runCli(['-f', fn, 'hello from libgearman'], 10_000);
    expect(code).toBe(0);
    // The CLI prints the result, and WORK_STATUS 1/2 as "50% Complete".
    expect(stdout).toContain('50% Complete');
    expect(stdout.replace('50% Complete\n', '')).toBe('HELLO FROM LIBGEARMAN');
    expect(seen).toHaveLength(1);
    expect(seen[0].payload).toBe('hello from libgearman');

    // With a unique (-u), which our worker sees.
    const second = await res.runCli(['-f', fn, '-u', 'cli-unique-1', 'again'], 10_000);
    expect(second.stdout.replace('50% Complete\n', '')).toBe('AGAIN');
    expect(seen[1]).toEqual({ payload: 'again', unique: 'cli-unique-1' });
  });

  it('sees a failing handler in errorMode "fail" as "Job failed" (exit 1), not a hang', async () => {
    const fn = fnName('cli-fail');
    const worker = res.worker({ errorMode: 'fail' });
    worker.register(fn, () => {
      throw new Error('nope');
    });
    await worker.start();
    const started = Date.now();
    const { code, stderr, stdout } = await res.runCli(['-f', fn, 'x'], 10_000);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(code).toBe(1);
    expect(`${stdout}${stderr}`).toMatch(/fail/i);
  });

  it('gets nothing from a failing handler in the default errorMode "exception" (libgearman never matches WORK_FAIL "handle\\0")', async () => {
    const fn = fnName('cli-exception');
    const worker = res.worker();
    let ran = 0;
    worker.register(fn, () => {
      ran++;
      throw new Error('nope');
    });
    await worker.start();
    const started = Date.now();
    const { code, stdout } = await res.runCli(['-t', '1000', '-f', fn, 'x'], 10_000);
    // The CLI waits for its own timeout and exits 0 without output: the reason errorMode 'fail' exists.
    expect(ran).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(code).toBe(0);
    expect(stdout).toBe('');
  });

  it('runs our client job as a worker: `gearman -w -f fn -- tr a-z A-Z`', async () => {
    const fn = fnName('cli-worker');
    const child = res.spawnCli(['-w', '-c', '2', '-f', fn, '--', 'tr', 'a-z', 'A-Z']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = deferred<number | null>();
    child.once('exit', (code) => exited.resolve(code));

    const client = await res.client();
    const admin = res.admin();
    // Wait for the CLI worker to register, so a failure to start shows as such.
    await eventually(
      async () => (await admin.status()).find((s) => s.function === fn)?.workers === 1,
      5000,
      `the CLI worker to register (${stderr})`,
    );

    await expect(within(client.run(fn, 'shout this'), 5000, 'the CLI worker result')).resolves.toEqual(
      Buffer.from('SHOUT THIS'),
    );
    // Binary-safe through a pipe: NUL bytes pass tr unchanged.
    await expect(within(client.run(fn, Buffer.from('a\0b')), 5000, 'the CLI worker result')).resolves.toEqual(
      Buffer.from('A\0B'),
    );
    // -c 2: the CLI exits after two jobs.
    await expect(within(exited.promise, 5000, 'the CLI worker to exit')).resolves.toBe(0);
  });
});
