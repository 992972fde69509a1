/**
 * Issue 10 §2, a server that is connected but silent, against real gearmands 1.1.20: a gearmand
 * stopped with SIGSTOP keeps its TCP connections open (its kernel even accepts new ones) and says
 * nothing. The heartbeat declares such a connection dead within interval + timeout (2 x interval +
 * timeout at most), its jobs are handled as on a loss, and new jobs go to the live server; the
 * connection is used again only once the server answers. Outgoing bytes are bounded (maxOutgoing,
 * BACKPRESSURE), failed submits release their payloads at once, and the reconnect backoff grows
 * for peers that accept and close, or fail TLS.
 *
 * Short heartbeat settings keep it fast (HB below); the defaults are 1000 / 2000 ms.
 */
import { createConnection, createServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GearmanClient, GearmanConnectionError, GearmanError, type GearmanWorker } from '../../lib/engine/index.js';
import { resolveConnectionOptions } from '../../lib/engine/options.js';
import { PacketType } from '../../lib/protocol/index.js';
import { invalidArgument, rejection } from '../support/errors.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';
import { freePort } from '../support/servers.js';
import { eventually, nextEvent, quietPeriod, recordEvents, within } from '../support/wait.js';
import { useSelfSignedCert } from '../support/tls.js';

const HB = { interval: 200, timeout: 400 } as const;
/** The longest a frozen server may go undetected: 2 x interval + timeout, plus timer slack on a shared machine. */
const DETECT_BOUND = 2 * HB.interval + HB.timeout + 600;

const figures: string[] = [];
afterAll(() => console.log(`liveness figures:\n  ${figures.join('\n  ')}`));

/** global.gc, made available without `node --expose-gc`. */
function gc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapAfterGc(collect: () => void): number {
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}

const MB = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

describe('options', () => {
  it('resolves heartbeat and maxOutgoing, and rejects bad values with INVALID_ARGUMENT', () => {
    const resolved = resolveConnectionOptions({ heartbeat: { timeout: 5000 }, maxOutgoing: 2 * 1024 * 1024 });
    expect(resolved.heartbeat).toEqual({ interval: 1000, timeout: 5000 });
    expect(resolved.maxOutgoing).toBe(2 * 1024 * 1024);
    expect(resolveConnectionOptions({ heartbeat: false }).heartbeat).toBe(false);
    // maxOutgoing is at least highWaterMark; its default follows a larger highWaterMark.
    expect(resolveConnectionOptions({ highWaterMark: 64 * 1024 * 1024 }).maxOutgoing).toBe(64 * 1024 * 1024);
    expect(invalidArgument(() => resolveConnectionOptions({ maxOutgoing: 1024 })).message).toMatch(
      /maxOutgoing must be a whole number from 1048576/,
    );
    for (const interval of [0, -1, 1.5, Infinity, NaN, 2 ** 31]) {
      expect(invalidArgument(() => resolveConnectionOptions({ heartbeat: { interval } })).message).toContain(
        'heartbeat.interval must be a whole number',
      );
    }
    invalidArgument(() => resolveConnectionOptions({ heartbeat: { timeout: 0 } }));
    invalidArgument(() => resolveConnectionOptions({ heartbeat: true as unknown as false }));
  });
});

describe('a frozen server (SIGSTOP)', () => {
  const a = useGearmand();
  const b = useGearmand();
  const res = useResources();

  async function echoWorker(
    options: Parameters<typeof res.worker>[0] = {},
  ): Promise<{ worker: GearmanWorker; fn: string }> {
    const fn = fnName('live');
    const worker = res.worker({ servers: [a.address, b.address], maxJobs: 8, heartbeat: HB, ...options });
    worker.register(fn, (job) => job.payload);
    await worker.start();
    return { worker, fn };
  }

  it('failover: is declared dead within the bound, its jobs fail typed (or retry), new jobs go to the live server, and it is used again once it answers', async () => {
    const { fn } = await echoWorker();
    const client = await res.client({ servers: [a.address, b.address], strategy: 'failover', heartbeat: HB });
    const [connA] = client.connections;
    expect((await client.submit(fn, 'warm').result()).toString()).toBe('warm');
    const dead = nextEvent<[string, GearmanConnectionError]>(connA, 'dead', DETECT_BOUND + 2000);
    const thaw = await res.freeze(a.server.pid!);
    const frozenAt = performance.now();
    // Sent to the frozen server (still "connected"): 5 plain jobs and 5 that may retry.
    const plain = Array.from({ length: 5 }, (_, i) => client.submit(fn, `plain-${i}`));
    const retried = Array.from({ length: 5 }, (_, i) =>
      client.submit(fn, `retry-${i}`, { unique: fnName('u'), retry: true }),
    );
    expect(plain.every((job) => job.server === a.address)).toBe(true);
    const [server, error] = await dead;
    const detectMs = performance.now() - frozenAt;
    expect(server).toBe(a.address);
    expect(connA.dead).toBe(true);
    expect(connA.connected).toBe(false);
    expect(error).toBeInstanceOf(GearmanConnectionError);
    expect(error.code).toBe('CONNECTION_LOST');
    expect(error.message).toMatch(
      /declared dead: no byte from it for \d+ ms.*ECHO_REQ went unanswered.*10 other replies were due/,
    );
    expect(error.message).toMatch(/reconnected with backoff.*heartbeat option/);
    expect(detectMs).toBeLessThan(DETECT_BOUND);

    for (const job of plain) {
      const failure = await rejection(job.result());
      expect(failure).toBeInstanceOf(GearmanConnectionError);
      expect((failure as GearmanConnectionError).code).toBe('CONNECTION_LOST');
      expect(failure.message).toMatch(/declared dead/);
    }
    const retriedResults = await within(Promise.all(retried.map((job) => job.result())), 5000, 'the retried jobs');
    expect(retriedResults.map(String)).toEqual(retried.map((_, i) => `retry-${i}`));
    expect(retried.every((job) => job.server === b.address)).toBe(true);

    // New jobs: 10/10 on the live server.
    const next = Array.from({ length: 10 }, (_, i) => client.submit(fn, `next-${i}`));
    const nextResults = await within(Promise.all(next.map((job) => job.result())), 5000, '10 jobs after the freeze');
    expect(nextResults.map(String)).toEqual(next.map((_, i) => `next-${i}`));
    expect(next.every((job) => job.server === b.address)).toBe(true);

    // While frozen, reconnects (its kernel accepts them) are probed and not used.
    const connected = recordEvents(connA, 'connected');
    const reconnecting = recordEvents(connA, 'reconnecting');
    await quietPeriod(3 * HB.timeout);
    expect(connected.events).toHaveLength(0);
    expect(connA.dead).toBe(true);
    const attempts = reconnecting.events.map((e) => e.args[1] as number);
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts).toEqual([...attempts].sort((x, y) => x - y)); // the backoff grows: no reset to 1

    // Thawed: the probe is answered, the connection is used again (failover prefers it).
    const back = nextEvent(connA, 'connected', 15_000);
    thaw();
    await back;
    expect(connA.dead).toBe(false);
    const again = client.submit(fn, 'again');
    expect((await within(again.result(), 5000, 'a job after the thaw')).toString()).toBe('again');
    expect(again.server).toBe(a.address);
    figures.push(
      `failover, frozen server with 10 replies due: declared dead after ${detectMs.toFixed(0)} ms (heartbeat ${JSON.stringify(HB)}); ` +
        `5 plain jobs CONNECTION_LOST, 5 retried jobs and 10/10 new jobs completed on the live server; reconnect attempts while frozen: ${attempts.join(', ')}`,
    );
  });

  it('hash: an idle frozen server is found within the bound, then 10/10 jobs (uniques on both servers) complete on the live one', async () => {
    const { fn } = await echoWorker();
    const client = await res.client({ servers: [a.address, b.address], submitTimeout: 3000, heartbeat: HB });
    const connA = client.connections[0];
    const dead = nextEvent(connA, 'dead', DETECT_BOUND + 2000);
    await res.freeze(a.server.pid!);
    const frozenAt = performance.now();
    await dead;
    const detectMs = performance.now() - frozenAt;
    expect(detectMs).toBeLessThan(DETECT_BOUND);
    const jobs = Array.from({ length: 10 }, (_, i) =>
      client.submit(fn, `h-${i}`, { unique: `hash-${i}-${fnName('k')}` }),
    );
    const results = await within(Promise.all(jobs.map((job) => job.result())), 5000, '10 jobs by hash');
    expect(results.map(String)).toEqual(jobs.map((_, i) => `h-${i}`));
    expect(jobs.every((job) => job.server === b.address)).toBe(true);
    figures.push(
      `hash, idle client: frozen server declared dead after ${detectMs.toFixed(0)} ms; 10/10 jobs completed on the live server`,
    );
  });

  it('with the default heartbeat (1000 / 2000 ms), a frozen server is declared dead within 2 x interval + timeout', async () => {
    const client = await res.client({ servers: [a.address, b.address], strategy: 'failover' });
    const dead = nextEvent(client.connections[0], 'dead', 8000);
    await res.freeze(a.server.pid!);
    const frozenAt = performance.now();
    await dead;
    const detectMs = performance.now() - frozenAt;
    expect(detectMs).toBeGreaterThanOrEqual(2900); // interval + timeout at least: no alarm sooner
    expect(detectMs).toBeLessThan(4000 + 600);
    figures.push(`default heartbeat, idle client: frozen server declared dead after ${detectMs.toFixed(0)} ms`);
  });

  it('a worker whose GRAB the frozen server never answers recovers on the other server', async () => {
    // maxJobs 1 and a fast safety poll: a GRAB soon goes to the frozen server and holds the only slot.
    const { worker, fn } = await echoWorker({ maxJobs: 1, pollInterval: 30 });
    const client = await res.client({ servers: b.address });
    const workerDead = nextEvent(worker.connections[0], 'dead', DETECT_BOUND + 5000);
    await res.freeze(a.server.pid!);
    const frozenAt = performance.now();
    const states = (worker as unknown as { states: { grabs: number }[] }).states;
    await eventually(() => states[0].grabs > 0, 3000, 'a GRAB on the frozen server');
    const job = client.submit(fn, 'on b');
    expect((await within(job.result(), DETECT_BOUND + 5000, 'the job on the live server')).toString()).toBe('on b');
    const doneMs = performance.now() - frozenAt;
    await workerDead;
    expect(worker.connections[0].dead).toBe(true);
    figures.push(
      `worker with its GRAB stuck on the frozen server: job on the live server completed ${doneMs.toFixed(0)} ms after the freeze`,
    );
  });

  it('bounds the outgoing bytes under a submit flood to a frozen server: submits fail with BACKPRESSURE, memory stays at the cap', async () => {
    const collect = gc();
    // No heartbeat here: the bound alone must hold the memory, however long the server stays silent.
    const client = await res.client({ servers: a.address, heartbeat: false, submitTimeout: 60_000 });
    const conn = client.connections[0];
    const fn = fnName('flood');
    await res.freeze(a.server.pid!);
    const memory = () => {
      collect();
      collect();
      const m = process.memoryUsage();
      return { heap: m.heapUsed + m.external, rss: m.rss };
    };
    const before = memory();
    const failures = new Map<string, number>();
    let submitted = 0;
    let peakBuffered = 0;
    let firstBackpressure: GearmanError | undefined;
    const onFail = (e: GearmanError) => {
      failures.set(e.code, (failures.get(e.code) ?? 0) + 1);
      if (e.code === 'BACKPRESSURE') firstBackpressure ??= e;
    };
    // 96 MiB of 4 KiB background submits, 1 MiB every 10 ms: today's code queues all of it.
    const size = 4096;
    const total = 96 * 1024 * 1024;
    while (submitted * size < total) {
      for (let i = 0; i < 256; i++) {
        client.submit(fn, Buffer.alloc(size, i), { background: true }).on('fail', onFail);
        submitted++;
      }
      peakBuffered = Math.max(peakBuffered, conn.bufferedBytes);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setImmediate(resolve));
    const atCap = memory();
    const maxOutgoing = 32 * 1024 * 1024;
    const refused = failures.get('BACKPRESSURE') ?? 0;
    expect([...failures.keys()]).toEqual(['BACKPRESSURE']);
    expect(firstBackpressure).toBeInstanceOf(GearmanError);
    expect(firstBackpressure!.message).toMatch(/not keeping up.*maxOutgoing/);
    // Accepted: the cap, plus what the frozen server's kernel buffers took.
    expect((submitted - refused) * size).toBeLessThan(maxOutgoing + 16 * 1024 * 1024);
    expect(peakBuffered).toBeLessThanOrEqual(maxOutgoing + 2 * size);
    expect(conn.bufferedBytes).toBeLessThanOrEqual(maxOutgoing + 2 * size);
    // The queued bytes plus the accepted jobs (payloads kept until JOB_CREATED): about twice the cap.
    const grown = atCap.heap - before.heap;
    expect(grown).toBeLessThan(3 * maxOutgoing);
    figures.push(
      `submit flood to a frozen server (${submitted} x 4 KiB = 96 MiB, heartbeat off): ${refused} BACKPRESSURE, ` +
        `${submitted - refused} accepted; peak buffered ${MB(peakBuffered)} MiB (maxOutgoing 32 MiB); ` +
        `heap+external +${MB(grown)} MiB, RSS +${MB(atCap.rss - before.rss)} MiB`,
    );
  });
});

describe('a slow but alive server', () => {
  const g = useGearmand();
  const res = useResources(g);

  // With the default heartbeat: TCP shows an upload's progress only in steps (the kernel wakes the
  // writer as MiBs of its buffer free up) and hides a tail of several MiB in its buffers.
  it('is not declared dead while a large upload to it makes progress (default heartbeat)', async () => {
    // Reads from the client about 1.3 MB/s (one read every 50 ms) and forwards at once.
    const server: Server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: g.port });
      for (const s of [client, upstream]) {
        s.on('error', () => undefined);
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      upstream.pipe(client);
      client.pause();
      client.on('data', (chunk) => {
        client.pause();
        upstream.write(chunk);
      });
      const timer = setInterval(() => client.resume(), 50);
      client.on('close', () => clearInterval(timer));
    });
    const address = await res.serve(server);
    const fn = fnName('upload');
    const worker = res.worker({ servers: g.address });
    worker.register(fn, (job) => String(job.payload.length));
    await worker.start();
    const client = await res.client({ servers: address, submitTimeout: 30_000 });
    const dead = recordEvents(client.connections[0], 'dead');
    const started = performance.now();
    const size = 6 * 1024 * 1024;
    const result = await within(client.submit(fn, Buffer.alloc(size, 1)).result(), 25_000, 'the slow upload');
    const ms = performance.now() - started;
    expect(result.toString()).toBe(String(size));
    expect(dead.events).toHaveLength(0);
    expect(ms).toBeGreaterThan(3500); // longer than interval + timeout: the heartbeat had to see progress
    figures.push(`6 MiB upload through a ~1.3 MB/s reader: ${ms.toFixed(0)} ms, not declared dead (default heartbeat)`);
  });
});

describe('bounded outgoing bytes on a live server', () => {
  const g = useGearmand();
  const res = useResources(g);

  it('keeps the bench bursts working with the defaults: 20,000 background submits at once, 8 x 1 MiB in flight', async () => {
    const client = await res.client();
    const fn = fnName('burst');
    const burst = Array.from({ length: 20_000 }, (_, i) =>
      client.submit(fn, `${String(i).padStart(8, '0')}abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd`, {
        background: true,
      }),
    );
    expect(client.connections[0].bufferedBytes).toBeGreaterThan(2 * 1024 * 1024);
    await within(Promise.all(burst.map((job) => job.created())), 20_000, '20,000 JOB_CREATED');
    const big = fnName('big');
    const worker = res.worker({ maxJobs: 8 });
    worker.register(big, (job) => job.payload);
    await worker.start();
    const jobs = Array.from({ length: 8 }, (_, i) => client.submit(big, Buffer.alloc(1024 * 1024, i)));
    const results = await within(Promise.all(jobs.map((job) => job.result())), 20_000, '8 x 1 MiB');
    expect(results.map((r) => r.length)).toEqual(Array(8).fill(1024 * 1024));
  });

  it('an ERROR answering a WORK_* sent before a heartbeat ECHO goes to the worker, not to the ECHO', async () => {
    const worker = res.worker({ heartbeat: HB });
    worker.register(fnName('idle'), () => 'x');
    await worker.start();
    const conn = worker.connections[0];
    const errors = recordEvents(worker, 'error');
    // A result for a job gearmand does not have: it answers ERROR JOB_NOT_FOUND, then the ECHO_RES.
    conn.send(PacketType.WORK_COMPLETE, ['H:nowhere:1', Buffer.from('late')]);
    const echo = await within(conn.call(PacketType.ECHO_REQ, [Buffer.from('after')]), 3000, 'the ECHO_RES');
    expect(echo.type).toBe(PacketType.ECHO_RES);
    await eventually(() => errors.events.length === 1, 2000, 'the worker error event');
    expect((errors.events[0].args[0] as Error).message).toMatch(/JOB_NOT_FOUND/);
    expect(conn.connected).toBe(true);
  });

  it('heartbeat ECHOs leave a sleeping worker asleep: gearmand still wakes it with NOOP', async () => {
    const fn = fnName('sleeper');
    // No safety poll: only a NOOP can wake it.
    const worker = res.worker({ pollInterval: 0, heartbeat: { interval: 50, timeout: 1000 } });
    worker.register(fn, () => 'awake');
    await worker.start();
    const client = await res.client();
    await quietPeriod(500); // about 8 heartbeat ECHOs while asleep
    const started = performance.now();
    expect((await within(client.submit(fn).result(), 2000, 'the job')).toString()).toBe('awake');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('sends a single packet larger than maxOutgoing when nothing else is queued, and refuses one behind it', async () => {
    const client = await res.client({ highWaterMark: 64 * 1024, maxOutgoing: 256 * 1024 });
    const fn = fnName('large');
    const first = client.submit(fn, Buffer.alloc(1024 * 1024), { background: true });
    const second = client.submit(fn, Buffer.alloc(1024 * 1024), { background: true });
    const error = await rejection(second.result());
    expect(error).toBeInstanceOf(GearmanError);
    expect((error as GearmanError).code).toBe('BACKPRESSURE');
    expect(error.message).toMatch(/maxOutgoing 262144/);
    await within(first.created(), 5000, 'the large packet');
    // Once the buffer is empty again, the next large one goes.
    await within(client.submit(fn, Buffer.alloc(1024 * 1024), { background: true }).created(), 5000, 'the next one');
  });
});

describe('during an outage', () => {
  const res = useResources();

  it('releases the payloads of submits that failed at once, not at the next reconnect attempt', async () => {
    const collect = gc();
    const port = await freePort(); // nothing listens: refused
    // The next reconnect attempt is 5 s away: today the failed jobs were held until then.
    const client = new GearmanClient({
      servers: `127.0.0.1:${port}`,
      connectTimeout: 300,
      reconnect: { initialDelay: 5000, maxDelay: 5000 },
    });
    res.defer(() => client.close());
    await rejection(client.connect());
    const router = (client as unknown as { router: { parked: { size: number } } }).router;
    const before = heapAfterGc(collect);
    const codes = await (async () => {
      const jobs = Array.from({ length: 20 }, (_, i) => client.submit(fnName('outage'), Buffer.alloc(1024 * 1024, i)));
      expect(router.parked.size).toBe(20);
      const errors = await Promise.all(jobs.map((job) => rejection(job.result())));
      return errors.map((e) => (e as GearmanError).code);
    })();
    expect(codes).toEqual(Array(20).fill('NO_SERVER'));
    expect(router.parked.size).toBe(0);
    const held = heapAfterGc(collect) - before;
    expect(held).toBeLessThan(4 * 1024 * 1024); // 20 MiB of payloads submitted
    figures.push(`outage: 20 x 1 MiB submits failed NO_SERVER; heap held after they failed: ${MB(held)} MiB`);
  });

  it('releases a parked job that fails before its deadline (abort)', async () => {
    const port = await freePort();
    const client = new GearmanClient({ servers: `127.0.0.1:${port}`, connectTimeout: 10_000 });
    res.defer(() => client.close());
    client.connect().catch(() => undefined);
    const router = (client as unknown as { router: { parked: { size: number } } }).router;
    const controller = new AbortController();
    const job = client.submit(fnName('abort'), Buffer.alloc(1024), { signal: controller.signal });
    await eventually(() => router.parked.size === 1, 2000, 'the job parked');
    controller.abort();
    expect((await rejection(job.result())).message).toMatch(/aborted/);
    expect(router.parked.size).toBe(0);
  });
});

describe('reconnect backoff', () => {
  const res = useResources();
  const tls = useSelfSignedCert();

  it('grows for a peer that accepts and closes at once, and for TLS peers that fail or close after the handshake', async () => {
    const counts = { closer: 0, tlsCloser: 0, garbage: 0 };
    const closer = await res.serve(
      createServer((s) => {
        counts.closer++;
        s.destroy();
      }),
    );
    const tlsCloser = await res.serve(
      createTlsServer({ key: tls.key, cert: tls.cert }, (s) => {
        counts.tlsCloser++;
        s.destroy();
      }),
    );
    const garbage = await res.serve(
      createServer((s) => {
        counts.garbage++;
        s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      }),
    );
    const clients = [
      new GearmanClient({ servers: closer }),
      new GearmanClient({ servers: tlsCloser, tls: { rejectUnauthorized: false } }),
      new GearmanClient({ servers: garbage, tls: { rejectUnauthorized: false } }),
    ];
    const delays = clients.map((c) => recordEvents(c, 'reconnecting'));
    for (const c of clients) {
      res.defer(() => c.close());
      c.on('error', () => undefined);
      c.connect().catch(() => undefined);
    }
    await quietPeriod(10_000);
    for (const c of clients) await c.close();
    figures.push(
      `connects in 10 s (default backoff): accept-and-close ${counts.closer}, TLS accept-and-close ${counts.tlsCloser}, ` +
        `TLS to a peer speaking garbage ${counts.garbage}; last delays ${delays.map((d) => d.events.at(-1)?.args[2]).join(', ')} ms`,
    );
    // 100, 200, 400, ... ms (20 % jitter): 7 or 8 attempts in 10 s (today: ~100 and more).
    for (const n of Object.values(counts)) {
      expect(n).toBeGreaterThan(1);
      expect(n).toBeLessThanOrEqual(10);
    }
    for (const d of delays) expect(d.events.at(-1)!.args[2]).toBeGreaterThanOrEqual(2000);
  });

  it('starts again from the first delay after a connection that proved healthy', async () => {
    const g = await res.gearmand();
    const client = new GearmanClient({ servers: g.address, heartbeat: HB });
    res.defer(() => client.close());
    await client.connect();
    await client.echo(g.address);
    const reconnecting = nextEvent<[string, number, number]>(client, 'reconnecting', 5000);
    client.connections[0].destroy();
    const [, attempt] = await reconnecting;
    expect(attempt).toBe(1);
    await within(client.connections[0].waitConnected(), 5000, 'the reconnect');
  });
});
