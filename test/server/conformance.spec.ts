/**
 * The embedded job server against gearmand 1.1.20, byte for byte: each scenario runs on a fresh
 * private gearmand and on a fresh embedded server, and what every connection received (packets
 * and admin lines, with their line endings) must be the same. Only what differs by nature is
 * masked: socket numbers in `workers`, the pid, the version string. Against a gearmand 2.x
 * (`GEARMAND=/path/to/gearmand`) the embedded server runs with the options that are 2.0.0's
 * behaviour (docs/gearmand-behaviour.md#gearmand-200).
 */
import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { expect, it } from '@jest/globals';
import type { GearmanServerOptions } from '../../lib/server/index.js';
import { gearmandPath } from '../support/gearmand.js';
import { normalize, startEmbedded, startGearmand } from './support.js';
import { frame, req, Wire } from './wire.js';

type Open = () => Promise<Wire>;
type Transcripts = Record<string, string[] | boolean>;
type Scenario = (open: Open) => Promise<Transcripts>;

const HOST = hostname();
const h = (n: number) => `H:${HOST}:${n}`;

/** `gearmand --version` prints `gearmand 1.1.20+ds - <url>`. */
const GEARMAND_VERSION = execFileSync(gearmandPath(), ['--version'], { encoding: 'utf8' }).split(' ')[1];
const GEARMAND_2 = GEARMAND_VERSION.startsWith('2.');
/** The embedded server's options that are the compared gearmand's defaults. */
const AS_GEARMAND: GearmanServerOptions = GEARMAND_2
  ? { roundRobin: true, globalPriority: true, canDoTimeout: 'current-job' }
  : {};

/**
 * A connection the server has taken in: gearmand queues accepted connections for its I/O thread
 * newest first, so two opened back to back can appear in `workers` in either order (seen on 2.0.0).
 */
async function openTo(port: number, wires: Wire[]): Promise<Wire> {
  const w = await Wire.open(port);
  wires.push(w);
  await w.barrier();
  return w;
}

/** Runs a scenario on a fresh gearmand and on a fresh embedded server; returns both transcripts. */
async function onBoth(
  scenario: Scenario,
  options: { gearmandArgs?: string[]; embedded?: GearmanServerOptions } = {},
): Promise<{ gearmand: Transcripts; embedded: Transcripts }> {
  const out: Partial<Record<'gearmand' | 'embedded', Transcripts>> = {};
  for (const kind of ['gearmand', 'embedded'] as const) {
    const server =
      kind === 'gearmand'
        ? await startGearmand(options.gearmandArgs)
        : await startEmbedded({ ...AS_GEARMAND, ...options.embedded });
    const wires: Wire[] = [];
    try {
      out[kind] = await scenario(() => openTo(server.port, wires));
    } finally {
      for (const w of wires) w.close();
      await server.stop();
    }
  }
  return { gearmand: out.gearmand!, embedded: out.embedded! };
}

function normalized(t: Transcripts): Transcripts {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Array.isArray(v) ? normalize(v) : v]));
}

/** Writes, then waits until every listed connection has received what the server sent so far. */
async function step(w: Wire, data: (Buffer | string)[], ...others: Wire[]): Promise<void> {
  w.write(...data);
  await w.barrier();
  for (const o of others) await o.barrier();
}

/** Polls an admin command until `accept` likes its reply (bounded); the replies are not recorded. */
async function until(
  adm: Wire,
  command: string,
  accept: (lines: string[]) => boolean,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    adm.write(command);
    await adm.barrier();
    const lines = adm.take();
    if (accept(lines)) return;
    if (Date.now() > deadline) throw new Error(`"${command.trim()}" never matched: ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The scenario's transcripts on both servers must be equal. gearmand has races of its own (see
 * openTo, and the lost-worker scenario's use-after-free), so a mismatch is checked once more
 * against a second gearmand run before it fails.
 */
async function expectSame(
  scenario: Scenario,
  options: { gearmandArgs?: string[]; embedded?: GearmanServerOptions } = {},
) {
  const { gearmand, embedded } = await onBoth(scenario, options);
  const mine = normalized(embedded);
  let theirs = normalized(gearmand);
  if (!isDeepStrictEqual(mine, theirs)) {
    const server = await startGearmand(options.gearmandArgs);
    const wires: Wire[] = [];
    try {
      theirs = normalized(await scenario(() => openTo(server.port, wires)));
    } finally {
      for (const w of wires) w.close();
      await server.stop();
    }
  }
  expect(mine).toEqual(theirs);
  return mine;
}

describe(`the embedded server answers byte for byte as gearmand ${GEARMAND_VERSION}`, () => {
  it('admin: status, prioritystatus, workers, show jobs, show unique jobs, maxqueue, cancel, create/drop function, errors', async () => {
    const t = await expectSame(async (open) => {
      const adm = await open();
      const w = await open();
      const c = await open();
      await step(adm, [req(22, 'admin conn')]);
      await step(w, [req(22, 'worker one'), req(1, 'fa'), req(1, 'fb'), req(23, 'fc', '5000'), req(1, 'fa')]);
      await step(
        c,
        [
          req(32, 'fa', '', 'high'),
          req(18, 'fa', '', 'n1'),
          req(18, 'fa', 'u1', 'n2'),
          req(34, 'fa', '', 'low'),
          req(18, 'fb', '-', 'x'),
          req(18, 'fb', '-', 'x'),
          req(34, 'fd', 'ud', 'l'),
          req(7, 'fa', 'u2', 'fg'),
          req(7, 'fa', 'u1', 'merged'),
          req(21, 'fb', '', 'fghigh'),
        ],
        w,
      );
      await step(w, [req(30)]);
      await step(adm, ['status\n', 'prioritystatus\n', 'workers\n', 'show jobs\n', 'show unique jobs\n']);
      await step(adm, ['maxqueue fa 1\n']);
      await step(c, [req(18, 'fa', '', 'over')]);
      await step(adm, ['maxqueue fa 0\n', 'maxqueue fa 1 2 3\n', 'maxqueue fb\n', 'maxqueue\n', 'maxqueue nosuch 5\n']);
      await step(adm, ['maxqueue fa -1 2\n']);
      await step(c, [req(33, 'fa', '', 'low-ok'), req(18, 'fa', '', 'normal-over')]);
      await step(
        adm,
        [`cancel job ${h(7)}\n`, 'cancel job nosuch\n', 'cancel x y\n', 'cancel job\n', 'show jobs\n'],
        c,
      );
      await step(adm, [
        'create function newfn\n',
        'create function other\r\n',
        'create function dropme\r\n',
        'drop function fa\n',
        'drop function DROPME\n',
        'drop function zz\n',
        'drop x\n',
        'create x\n',
        'status\n',
      ]);
      await step(adm, [
        'version\n',
        'getpid\n',
        'verbose\n',
        'shutdown\n',
        'shutdown graceful\n',
        'SHOW\n',
        'show x\n',
        'show jobs x\n',
        ' status\n',
        'Status\r\n',
        'status   \n',
        'nonsense arg\n',
        '\n',
        'a b c d e\n',
      ]);
      // Text and binary on one connection, in one write.
      await step(adm, [Buffer.concat([Buffer.from('version\n'), req(16, 'mixed'), Buffer.from('getpid\r\n')])]);
      return { adm: adm.take(), w: w.take(), c: c.take() };
    });
    // A few facts, spelled out.
    expect(t.adm).toContain('T:newf\t0\t0\t0\n');
    expect(t.adm).toContain('T:other\t0\t0\t0\n');
    expect(t.adm).toContain('T:ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n');
    // Round-robin (always on in 2.0.0) moved fa, whose job the worker got, behind the others.
    expect(t.adm).toContain(`T:FD 127.0.0.1 worker one : ${GEARMAND_2 ? 'fc fb fa fa' : 'fa fc fb fa'}\n`);
    expect(t.c).toContain(`WORK_FAIL ${h(7)}`);
    expect(t.c).toContain('ERROR QUEUE_ERROR\\0Job queue is full');
  });

  it('closes the connection where gearmand does: 6 words, an 8 KiB line, bad magic, types 0 and 43, long GET_STATUS and CAN_DO_TIMEOUT, epoch overflow', async () => {
    await expectSame(async (open) => {
      const cases: [string, Buffer | string][] = [
        ['six words', 'a b c d e f\n'],
        ['9000-byte line', `${'x'.repeat(9000)}\n`],
        ['bad magic', Buffer.concat([Buffer.from('\0REX'), Buffer.alloc(8)])],
        ['type 0', req(0)],
        ['type 43', req(43)],
        ['64-byte GET_STATUS handle', req(15, 'H'.repeat(64))],
        ['64-byte GET_STATUS_UNIQUE', req(41, 'u'.repeat(64))],
        ['21-digit CAN_DO_TIMEOUT', req(23, 'f', '1'.repeat(21))],
        ['epoch overflow', req(36, 'f', '', '99999999999999999999999', 'x')],
        ['12-character WORK_STATUS denominator', Buffer.concat([req(1, 'st'), req(7, 'st', '', 'x'), req(9)])],
      ];
      const out: Transcripts = {};
      for (const [name, bytes] of cases) {
        const w = await open();
        w.write(bytes);
        if (name.startsWith('12-character')) {
          await w.waitFor(2);
          const assign = w.take();
          const handle = assign[1].split(' ')[1].split('\\0')[0];
          w.write(req(12, handle, '1', '123456789012'));
        }
        w.write(req(16, 'after'));
        await w.whenClosed();
        out[name] = w.take();
        out[`${name} closed`] = w.closed;
      }
      return out;
    });
  });

  it("gearmand's 8 KiB buffers: an argument or admin line of 8192 bytes passes, one more byte closes; so does a JOB_ASSIGN above 8 KiB", async () => {
    await expectSame(async (open) => {
      // [what, bytes, whether gearmand keeps the connection]
      const cases: [string, (Buffer | string)[], boolean][] = [
        ['8191 characters and \\n', [`${'x'.repeat(8191)}\n`], true],
        ['8192 characters and \\n', [`${'x'.repeat(8192)}\n`], false],
        ['function name of 8191 bytes and its NUL', [req(18, 'f'.repeat(8191), '', 'data')], true],
        ['function name of 8192 bytes and its NUL', [req(18, 'f'.repeat(8192), '', 'data')], false],
        ['CAN_DO of 8192 bytes', [req(1, 'c'.repeat(8192)), req(9)], true],
        ['CAN_DO of 8193 bytes', [req(1, 'c'.repeat(8193)), req(9)], false],
        ['SET_CLIENT_ID of 8193 bytes', [req(22, 'i'.repeat(8193))], false],
      ];
      const out: Transcripts = {};
      for (const [name, data, kept] of cases) {
        const w = await open();
        w.write(...data, req(16, 'after'));
        if (kept) await w.barrier();
        else await w.whenClosed();
        out[name] = w.take();
        out[`${name} closed`] = w.closed;
      }
      // JOB_ASSIGN: header, handle, function name (8173 bytes) and NULs come to 8193 bytes.
      const adm = await open();
      const worker = await open();
      const client = await open();
      await step(worker, [req(1, 'g'.repeat(8173))]);
      await step(client, [req(18, 'g'.repeat(8173), '', 'data'), req(18, 'g'.repeat(8172), '', 'fits')]);
      worker.write(req(9), req(16, 'after'));
      await worker.whenClosed();
      out.worker = worker.take();
      await until(adm, 'status\n', (l) => l.some((x) => /^T:g+\t1\t0\t0\n$/.test(x)));
      const small = await open();
      await step(small, [req(1, 'g'.repeat(8172)), req(9)]);
      out.small = small.take();
      return out;
    });
  });

  it('jobs: coalescing onto one handle, WORK_* to every client, exceptions option, GET_STATUS(_UNIQUE), PRE_SLEEP/NOOP', async () => {
    const t = await expectSame(async (open) => {
      const w = await open();
      const c1 = await open();
      const c2 = await open();
      const c3 = await open();
      await step(w, [req(1, 'f'), req(4)]);
      await step(c1, [req(26, 'EXCEPTIONS'), req(26, 'bogus'), req(26, 'e'.repeat(70))]);
      await step(c1, [req(7, 'f', 'u', 'data1')], w);
      await step(c2, [req(7, 'f', 'u', 'data2')], w);
      await step(c1, [req(7, 'f', 'u', 'data3')], w);
      await step(c3, [req(18, 'f', 'u', 'data4'), req(18, 'f', '', 'no-unique'), req(18, 'f', '', 'no-unique')], w);
      await step(w, [req(4), req(30)]);
      const handle = h(1);
      await step(w, [req(12, handle, '1', '2'), req(28, handle, 'data'), req(29, handle, 'warn')], c1, c2, c3);
      await step(c3, [req(15, handle), req(41, 'u'), req(15, 'nosuch'), req(41, 'nosuch')]);
      await step(w, [req(25, handle, 'boom')], c1, c2, c3);
      await step(w, [req(13, handle, 'late'), req(14, handle), req(12, handle, '1', '2')]);
      await step(c3, [req(15, handle), req(41, 'u')]);
      await step(w, [req(9), req(39), req(9), req(4)]);
      return { w: w.take(), c1: c1.take(), c2: c2.take(), c3: c3.take() };
    });
    expect(t.c1).toEqual(
      expect.arrayContaining([`JOB_CREATED ${h(1)}`, `WORK_EXCEPTION ${h(1)}\\0boom`, 'OPTION_RES EXCEPTIONS']),
    );
    expect(t.c2).toContain(`WORK_FAIL ${h(1)}\\0`);
  });

  it('a worker gets HIGH, NORMAL, LOW of its most recently registered function first, then the next function (2.0.0: priority across both, taking turns)', async () => {
    const t = await expectSame(async (open) => {
      const w = await open();
      const c = await open();
      await step(w, [req(1, 'fa'), req(1, 'fb')]);
      await step(c, [
        req(18, 'fa', '', 'fa:N'),
        req(34, 'fa', '', 'fa:L'),
        req(34, 'fb', '', 'fb:L'),
        req(18, 'fb', '', 'fb:N'),
        req(32, 'fb', '', 'fb:H'),
        req(32, 'fa', '', 'fa:H'),
      ]);
      await step(
        w,
        Array.from({ length: 7 }, () => req(9)),
      );
      return { w: w.take() };
    });
    expect((t.w as string[]).map((l) => l.split('\\0').pop())).toEqual(
      GEARMAND_2
        ? ['fb:H', 'fa:H', 'fb:N', 'fa:N', 'fb:L', 'fa:L', 'NO_JOB']
        : ['fb:H', 'fb:N', 'fb:L', 'fa:H', 'fa:N', 'fa:L', 'NO_JOB'],
    );
  });

  it("round-robin between a worker's functions (gearmand -R, roundRobin: true)", async () => {
    await expectSame(
      async (open) => {
        const w = await open();
        const c = await open();
        await step(w, [req(1, 'ra'), req(1, 'rb')]);
        await step(
          c,
          ['a1', 'a2', 'a3']
            .map((d) => req(18, 'ra', '', d))
            .concat(['b1', 'b2', 'b3'].map((d) => req(18, 'rb', '', d))),
        );
        await step(
          w,
          Array.from({ length: 7 }, () => req(9)),
          c,
        );
        return { w: w.take(), c: c.take() };
      },
      { gearmandArgs: ['-R'], embedded: { roundRobin: true } },
    );
  });

  it('framing and errors: INVALID_MAGIC, INVALID_COMMAND, unique and reducer limits, unknown handles, client ids, CAN_DO bookkeeping, epochs in the past', async () => {
    await expectSame(async (open) => {
      const c = await open();
      const adm = await open();
      await step(c, [
        frame('RES', 16, ['hi']),
        frame('RES', 8, ['H:x']),
        req(5),
        req(5, 'payload'),
        req(24),
        req(35, 'f', 'u', '1', '2', '3', '4', '5', 'data'),
        req(6),
        req(8, 'H:x:1'),
        req(19, 'CODE', 'text'),
        req(3, 'ignored payload'),
      ]);
      await step(c, [
        req(7, 'f', 'u'.repeat(64), 'a'),
        req(7, 'f', 'u'.repeat(64), 'b'),
        req(7, 'f', 'u'.repeat(65), 'c'),
        req(37, 'r', 'ru', 'reducer', '', 'reduce-data'),
        req(38, 'r', 'ru2', 'r'.repeat(65), '', 'too long reducer'),
        req(38, 'r', 'ru3', 'r'.repeat(64), '', 'reducer of 64'),
        req(37, 'rx', 'x'.repeat(100), 'red', '', 'long unique, unchecked for reduce'),
      ]);
      await step(c, [
        req(28, 'nosuch', 'x'),
        req(29, 'nosuch', 'x'),
        req(12, 'nosuch', '1', '2'),
        req(13, 'nosuch', 'x'),
        req(14, 'nosuch'),
        req(14, `${'H'.repeat(64)}`),
        req(25, 'nosuch', 'x'),
        req(15, 'nosuch\0trailing'),
        req(41, ''),
      ]);
      await step(c, [
        req(22, 'i'.repeat(200)),
        req(1, 'g'),
        req(1, 'g'),
        req(1, 'h'),
        req(2, 'h'),
        req(23, 'k', 'abc'),
      ]);
      await step(adm, ['workers\n', 'status\n']);
      await step(c, [req(3)]);
      await step(adm, ['workers\n', 'status\n']);
      await step(c, [req(4), req(9), req(30), req(39)]);
      await step(c, [
        req(36, 'ep', '', '0', 'epoch 0'),
        req(36, 'ep', '', '1', 'epoch in 1970'),
        req(36, 'ep', '', '-5', 'negative epoch'),
        req(36, 'ep', '', 'abc', 'not a number'),
      ]);
      // (Not the jobs of 'f' and 'rx': gearmand sends their over-long uniques with bytes from past its buffer.)
      await step(c, [
        req(1, 'ep'),
        req(9),
        req(9),
        req(9),
        req(9),
        req(9),
        req(2, 'ep'),
        req(1, 'r'),
        req(39),
        req(39),
        req(39),
      ]);
      await step(adm, ['show jobs\n', 'show unique jobs\n']);
      return { c: c.take(), adm: adm.take() };
    });
  });

  it("a lost worker's job is requeued under the same handle (retries + 1); a second worker finishes it", async () => {
    await expectSame(async (open) => {
      const adm = await open();
      const c = await open();
      const w1 = await open();
      const w2 = await open();
      await step(w1, [req(1, 'f')]);
      await step(c, [req(7, 'f', 'u', 'data')]);
      await step(w1, [req(30), req(28, h(1), 'first run')], c);
      w1.close();
      await until(adm, 'show jobs\n', (l) => l.includes(`T:${h(1)}\t1\t0\t0\n`));
      // The result only once the JOB_ASSIGN is in, as a real worker sends it: gearmand copies a
      // JOB_ASSIGN's payload from the job when it writes the packet out, so a WORK_COMPLETE read in
      // the same batch frees it first and the worker gets freed memory (once the bytes of a later ECHO).
      await step(w2, [req(1, 'f'), req(30)]);
      await step(w2, [req(28, h(1), 'second run'), req(13, h(1), 'done')], c);
      await step(adm, ['show jobs\n', 'status\n']);
      return { c: c.take(), w2: w2.take(), adm: adm.take() };
    });
  });

  it('--job-retries 2 / jobRetries: 2 drops the job at its second loss and fails it to the client', async () => {
    await expectSame(
      async (open) => {
        const adm = await open();
        const c = await open();
        await step(c, [req(7, 'f', '', 'data')]);
        for (let run = 1; run <= 2; run++) {
          const w = await open();
          await step(w, [req(1, 'f'), req(9)]);
          w.close();
          await until(adm, 'status\n', (l) => l.includes(`T:f\t${run === 1 ? 1 : 0}\t0\t0\n`));
        }
        await c.barrier();
        await step(adm, ['show jobs\n']);
        return { c: c.take(), adm: adm.take() };
      },
      { gearmandArgs: ['-j', '2'], embedded: { jobRetries: 2 } },
    );
  });

  it('a client that leaves: its queued foreground job is dropped at the next GRAB, and so is a background job it merged onto', async () => {
    await expectSame(async (open) => {
      const adm = await open();
      const bg = await open();
      const c1 = await open();
      const c2 = await open();
      await step(c1, [req(7, 'f', 'fg', 'foreground')]);
      await step(bg, [req(18, 'f', 'shared', 'background')]);
      await step(c2, [req(7, 'f', 'shared', 'merged')]);
      c1.close();
      c2.close();
      await until(adm, 'show jobs\n', (l) => l.filter((x) => /\t0\t1\t0\n$/.test(x)).length === 2);
      await step(adm, ['show jobs\n', 'status\n']);
      const w = await open();
      await step(w, [req(1, 'f'), req(9), req(4)]);
      await step(adm, ['show jobs\n', 'status\n']);
      return { adm: adm.take(), w: w.take() };
    });
  });

  it('CAN_DO_TIMEOUT: values under 1000 ms count as 1000; the job is requeued to a sleeping worker; the late result gets JOB_NOT_FOUND', async () => {
    const started = Date.now();
    await expectSame(async (open) => {
      const c = await open();
      const w1 = await open();
      const w2 = await open();
      await step(w1, [req(23, 'slow', '1')]);
      await step(c, [req(7, 'slow', '', 'data')]);
      const assigned = Date.now();
      await step(w1, [req(30)]);
      await step(w2, [req(1, 'slow'), req(4)]);
      await w2.waitFor(1, 4000);
      const requeuedAfter = Date.now() - assigned;
      expect(requeuedAfter).toBeGreaterThanOrEqual(900);
      await step(w2, [req(30)]);
      await step(w1, [req(13, h(1), 'late')]);
      await step(w2, [req(13, h(1), 'on time')], c);
      return { c: c.take(), w1: w1.take(), w2: w2.take() };
    });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('--worker-wakeup 1 / workerWakeup: 1 wakes one sleeping worker per job, in turn', async () => {
    await expectSame(
      async (open) => {
        const c = await open();
        const ws = [await open(), await open(), await open()];
        for (const w of ws) await step(w, [req(1, 'f'), req(4)]);
        await step(c, [req(18, 'f', '', 'one')], ...ws);
        await step(c, [req(18, 'f', '', 'two')], ...ws);
        return Object.fromEntries(ws.map((w, i) => [`w${i}`, w.take()]));
      },
      { gearmandArgs: ['-w', '1'], embedded: { workerWakeup: 1 } },
    );
  });

  it('--exceptions / exceptions: true and --job-handle-prefix / jobHandlePrefix', async () => {
    await expectSame(
      async (open) => {
        const c = await open();
        const w = await open();
        await step(w, [req(1, 'f')]);
        await step(c, [req(7, 'f', '', 'x')]);
        await step(w, [req(30)]);
        await step(w, [req(25, 'PFX:1', 'boom')], c);
        return { c: c.take(), w: w.take() };
      },
      {
        gearmandArgs: ['--exceptions', '--job-handle-prefix=PFX'],
        embedded: { exceptions: true, jobHandlePrefix: 'PFX' },
      },
    );
  });

  it('an epoch job in the future: a NOOP at submit, NO_JOB until it is due', async () => {
    await expectSame(async (open) => {
      const c = await open();
      const w = await open();
      await step(w, [req(1, 'e'), req(4)]);
      await step(c, [req(36, 'e', '', String(Math.floor(Date.now() / 1000) + 3600), 'later')], w);
      await step(w, [req(9), req(4)]);
      await step(c, ['prioritystatus\n', 'status\n']);
      return { c: c.take(), w: w.take() };
    });
  });
});
