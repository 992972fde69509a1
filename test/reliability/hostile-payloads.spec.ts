/**
 * Reliability: hostile payloads from a foreign client (raw packets through the codec's
 * `encodePacket`, as a PHP or Perl caller would send them) to every kind of Nest handler: JSON
 * message, text message, raw message, event, and a JSON echo. Each gets a clear WORK_EXCEPTION (or
 * WORK_FAIL for a caller that did not ask for exceptions, or for a pattern with errorMode 'fail'),
 * or the correct result where the input is valid for that codec; and the worker keeps serving.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { Controller, type LoggerService, Module } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { PacketType, packetName } from '../../lib/protocol/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { RawConnection } from '../support/raw-connection.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const events: unknown[] = [];

@Controller()
class HostileController {
  @MessagePattern('hp.json')
  json(@Payload() data: unknown) {
    return {
      kind: data === null ? 'null' : typeof data,
      size: typeof data === 'string' ? data.length : (JSON.stringify(data)?.length ?? 0),
    };
  }

  @MessagePattern('hp.json.fail', { errorMode: 'fail' })
  jsonFail(@Payload() data: unknown) {
    return { kind: data === null ? 'null' : typeof data };
  }

  @MessagePattern('hp.echo')
  echo(@Payload() data: unknown) {
    return data;
  }

  @MessagePattern('hp.text', { codec: 'text' })
  text(@Payload() data: string | undefined) {
    return `len:${Buffer.byteLength(data ?? '')}:${sha(data ?? '')}`;
  }

  @MessagePattern('hp.raw', { codec: 'raw' })
  raw(@Payload() data: Buffer | undefined) {
    return `len:${data?.length ?? 0}:${sha(data ?? Buffer.alloc(0))}`;
  }

  @EventPattern('hp.event')
  event(@Payload() data: unknown) {
    events.push(data === undefined ? 'undefined' : typeof data);
  }
}

@Module({ controllers: [HostileController] })
class HostileModule {}

type Outcome = { type: 'complete'; data: Buffer } | { type: 'exception'; data: Buffer } | { type: 'fail' };

const payloads: Record<string, Buffer> = {
  'invalid JSON': Buffer.from('{"a": [1, 2,'),
  empty: Buffer.alloc(0),
  '32 MiB of text (not JSON)': Buffer.alloc(32 * MiB, 'gearman '),
  '32 MiB JSON string': Buffer.concat([Buffer.from('"'), Buffer.alloc(32 * MiB - 2, 'x'), Buffer.from('"')]),
  'binary with NULs': Buffer.from([0, 1, 0, 0xff, 0xfe, 0x52, 0x45, 0x53, 0, 0x7b, 0x22, 0, 0xc3, 0x28, 0]),
  'truncated metadata envelope': Buffer.concat([
    Buffer.from('\0NGM1', 'latin1'),
    Buffer.from([0xff, 0xff, 0xff, 0xff]),
    Buffer.from('{}'),
  ]),
  'JSON nested 200 000 deep': Buffer.from('['.repeat(200_000) + ']'.repeat(200_000)),
  '__proto__ in JSON': Buffer.from(
    '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}',
  ),
  'JSON null': Buffer.from('null'),
};

/** What each handler must answer for each payload: a result, or an error. */
function expected(fn: string, name: string, p: Buffer): { result: string } | 'error' {
  const envelope = name === 'truncated metadata envelope';
  switch (fn) {
    case 'hp.json':
    case 'hp.json.fail': {
      if (envelope || ['invalid JSON', '32 MiB of text (not JSON)', 'binary with NULs'].includes(name)) return 'error';
      const data: unknown = p.length === 0 ? undefined : JSON.parse(p.toString());
      if (fn === 'hp.json.fail') return { result: JSON.stringify({ kind: data === null ? 'null' : typeof data }) };
      if (name === 'JSON nested 200 000 deep') return 'error'; // the handler's own JSON.stringify overflows
      const size = typeof data === 'string' ? data.length : (JSON.stringify(data)?.length ?? 0);
      return { result: JSON.stringify({ kind: data === null ? 'null' : typeof data, size }) };
    }
    case 'hp.echo': {
      if (
        envelope ||
        ['invalid JSON', '32 MiB of text (not JSON)', 'binary with NULs', 'JSON nested 200 000 deep'].includes(name)
      )
        return 'error';
      return { result: p.length === 0 ? '' : JSON.stringify(JSON.parse(p.toString())) }; // re-serialised; empty stays empty
    }
    case 'hp.text': {
      // No pattern here reads the metadata envelope (readMetadata): its bytes reach the codec as they are.
      const text = p.toString('utf8');
      return { result: `len:${Buffer.byteLength(text)}:${sha(text)}` };
    }
    case 'hp.raw':
      return { result: `len:${p.length}:${sha(p)}` };
    case 'hp.event':
      if (envelope || ['invalid JSON', '32 MiB of text (not JSON)', 'binary with NULs'].includes(name)) return 'error';
      return { result: '' };
    default:
      throw new Error(fn);
  }
}

const g = useGearmand();
const shared = useResources(g, { scope: 'all' });
const warnings: string[] = [];
const logger: LoggerService = {
  log: () => undefined,
  warn: (m: unknown) => void warnings.push(String(m)),
  error: (m: unknown) => void warnings.push(String(m)),
};

beforeAll(() => shared.microservice({ imports: [HostileModule] }, { logger, maxJobs: 4 }), 30_000);

/** Submits one foreground job on a raw connection and reads until its outcome. */
async function rawJob(conn: RawConnection, fn: string, payload: Buffer, timeoutMs = 20_000): Promise<Outcome> {
  conn.send(PacketType.SUBMIT_JOB, [fn, '', payload]);
  const [handleBuf] = await conn.expect(PacketType.JOB_CREATED, timeoutMs);
  const handle = handleBuf.toString('latin1');
  for (;;) {
    const p = await conn.next(timeoutMs);
    const h = p.args[0]?.toString('latin1').replace(/\0$/, '');
    if (h !== handle) throw new Error(`unexpected ${packetName(p.type)} for ${h}`);
    if (p.type === PacketType.WORK_COMPLETE) return { type: 'complete', data: p.args[1] };
    if (p.type === PacketType.WORK_EXCEPTION) return { type: 'exception', data: p.args[1] };
    if (p.type === PacketType.WORK_FAIL) return { type: 'fail' };
    // WORK_DATA / STATUS / WARNING: keep reading
  }
}

async function healthy(conn: RawConnection): Promise<void> {
  const o = await rawJob(conn, 'hp.json', Buffer.from('{"ok":1}'), 5000);
  expect(o.type === 'complete' && o.data.toString()).toBe(JSON.stringify({ kind: 'object', size: 8 }));
}

const FUNCTIONS = ['hp.json', 'hp.json.fail', 'hp.echo', 'hp.text', 'hp.raw', 'hp.event'];

describe.each([
  ['a caller that asked for exceptions (OPTION_REQ exceptions)', true],
  ['a caller without the exceptions option (gearmand turns exceptions into WORK_FAIL)', false],
])('hostile payloads from %s', (_label, exceptions) => {
  let conn: RawConnection;
  beforeAll(async () => {
    conn = await RawConnection.open(g.port);
    if (exceptions) {
      conn.send(PacketType.OPTION_REQ, ['exceptions']);
      await conn.expect(PacketType.OPTION_RES);
    }
  });
  afterAll(() => conn.close());

  it.each(Object.keys(payloads))(
    '%s: every handler answers clearly, and the worker keeps serving',
    async (name) => {
      const p = payloads[name];
      for (const fn of FUNCTIONS) {
        const want = expected(fn, name, p);
        const got = await rawJob(conn, fn, p);
        const what = `${fn} <- ${name}`;
        if (want === 'error') {
          if (got.type === 'exception') {
            // Only for callers that asked, and only from patterns in exception mode; a readable message.
            expect({ what, exceptions, fn }).toEqual({
              what,
              exceptions: true,
              fn: expect.not.stringMatching(/fail$/),
            });
            const body = JSON.parse(got.data.toString()) as { message?: unknown };
            expect(typeof body.message).toBe('string');
            expect((body.message as string).length).toBeGreaterThan(10);
          } else {
            expect({ what, type: got.type }).toEqual({ what, type: 'fail' });
          }
        } else {
          expect({ what, type: got.type }).toEqual({ what, type: 'complete' });
          if (got.type === 'complete')
            expect({ what, result: got.data.toString() }).toEqual({ what, result: want.result });
        }
        await healthy(conn);
      }
      // Nothing leaked into Object.prototype.
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    },
    60_000,
  );

  it('the same payloads as background jobs to every handler leave the worker serving', async () => {
    for (const fn of FUNCTIONS) {
      for (const p of Object.values(payloads)) {
        conn.send(PacketType.SUBMIT_JOB_BG, [fn, '', p]);
        await conn.expect(PacketType.JOB_CREATED, 20_000);
      }
    }
    await healthy(conn);
  }, 60_000);
});

it('decode failures are logged with the function and what to send instead', () => {
  const decode = warnings.filter((w) => w.includes('could not read its payload'));
  expect(decode.length).toBeGreaterThan(0);
  for (const w of decode) expect(w).toMatch(/Gearman function "hp\.[a-z.]+"/);
});
