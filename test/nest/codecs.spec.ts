/**
 * Codecs through a real job server: a custom codec object on ServerGearman and ClientGearman, both
 * ways, with the bytes on the wire seen by the raw engine client and worker (the foreign peers);
 * `textCodec(encoding)` putting latin1 and UTF-16LE text on the wire byte for byte, and refusing
 * what the encoding cannot hold. (The default codecs: server.spec.ts and client.spec.ts.)
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { WorkerJob } from '../../lib/engine/index.js';
import {
  type GearmanCodec,
  GearmanCodecError,
  GearmanContext,
  GearmanRecordBuilder,
  GearmanRpcError,
  textCodec,
} from '../../lib/index.js';
import { fnName, useGearmand, useResources } from '../support/harness.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

/**
 * A codec no built-in one resembles: a `v1:` tag, then the value's JSON in base64. Decoding
 * refuses a payload without the tag.
 */
const taggedCodec: GearmanCodec = {
  name: 'tagged',
  encode: (value) => Buffer.from(tagged(JSON.stringify(value))),
  decode(data) {
    const text = data.toString('utf8');
    if (!text.startsWith('v1:')) throw new Error('no v1: tag');
    return JSON.parse(Buffer.from(text.slice(3), 'base64').toString('utf8'));
  },
};

/** What taggedCodec puts on the wire for this JSON text. */
function tagged(json: string): string {
  return `v1:${Buffer.from(json).toString('base64')}`;
}

@Controller()
class CodecController {
  /** Echoes what it got, and which codec the context encodes with (through sendData). */
  @MessagePattern('codec.echo')
  async echo(@Payload() data: { a: number; b: string }, @Ctx() ctx: GearmanContext) {
    await ctx.sendData({ progress: 1 });
    return { got: data, type: typeof data };
  }

  @MessagePattern('codec.latin1', { codec: textCodec('latin1') })
  latin1(@Payload() text: string): string {
    return `${text.toUpperCase()} ¿?`;
  }

  @MessagePattern('codec.utf16', { codec: textCodec('utf16le') })
  utf16(@Payload() text: string): string {
    return `${text}→ok`;
  }

  /** Returns a character latin1 has no byte for. */
  @MessagePattern('codec.euro', { codec: textCodec('latin1') })
  euro(): string {
    return '5 €';
  }
}

describe('a custom codec', () => {
  it('ServerGearman reads and writes payloads with it (the raw client sees its bytes)', async () => {
    await res.microservice({ controllers: [CodecController] }, { codec: taggedCodec });
    const raw = await res.client();
    const job = raw.submit('codec.echo', tagged('{"a":1,"b":"x"}'));
    const data: string[] = [];
    job.on('data', (d) => data.push(d.toString()));
    const result = (await job.result()).toString();
    expect(data).toEqual([tagged('{"progress":1}')]);
    expect(result).toBe(tagged('{"got":{"a":1,"b":"x"},"type":"object"}'));
  });

  it('a payload it cannot read: the caller hears the codec by name, the worker keeps serving', async () => {
    const { logger } = await res.microservice({ controllers: [CodecController] }, { codec: taggedCodec });
    const raw = await res.client();
    const job = raw.submit('codec.echo', '{"a":1}');
    const exception = new Promise<Buffer>((resolve) => job.on('exception', resolve));
    await expect(job.result()).rejects.toMatchObject({ code: 'JOB_EXCEPTION' });
    const body = JSON.parse((await exception).toString()) as { message: string };
    expect(body.message).toContain('could not read its payload of 7 bytes');
    expect(body.message).toContain('no v1: tag');
    expect(body.message).toContain('what the tagged codec reads');
    expect(logger.find('warn', /no v1: tag/)).toHaveLength(1);
    expect((await raw.run('codec.echo', tagged('{"a":2}'))).toString()).toBe(tagged('{"got":{"a":2},"type":"object"}'));
  });

  it('ClientGearman writes payloads and reads results with it (the raw worker sees its bytes)', async () => {
    const fn = fnName('codec.foreign');
    const seen: string[] = [];
    const worker = res.worker();
    worker.register(fn, (job: WorkerJob) => {
      seen.push(job.payload.toString());
      void job.sendData(Buffer.from(tagged('"half"')));
      return tagged('{"a":1,"z":26}');
    });
    await worker.start();
    const client = res.clientProxy({ codec: taggedCodec });
    const values: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      client.send(fn, { a: 1, b: 'two' }).subscribe({ next: (v) => values.push(v), error: reject, complete: resolve });
    });
    expect(seen).toEqual([tagged('{"a":1,"b":"two"}')]);
    expect(values).toEqual(['half', { a: 1, z: 26 }]);
  });

  it('ClientGearman: its failures are GearmanCodecErrors with the cause', async () => {
    const fn = fnName('codec.untagged');
    const worker = res.worker();
    worker.register(fn, () => '{"a":1}');
    await worker.start();
    const client = res.clientProxy({ codec: taggedCodec });
    const unreadable = await lastValueFrom(client.send(fn, { a: 1 })).catch((err: unknown) => err);
    expect(unreadable).toBeInstanceOf(GearmanCodecError);
    expect((unreadable as Error).message).toContain(
      `"${fn}" could not be read by the tagged codec: no v1: tag (7 bytes)`,
    );
    expect((unreadable as Error).cause).toEqual(new Error('no v1: tag'));

    // A value its encode throws on (JSON has no BigInt): refused before anything is submitted.
    const unwritable = await lastValueFrom(client.send(fn, { n: 1n })).catch((err: unknown) => err);
    expect(unwritable).toBeInstanceOf(GearmanCodecError);
    expect((unwritable as Error).message).toMatch(/^The tagged codec could not write the payload: /);
    expect((unwritable as Error).cause).toBeInstanceOf(TypeError);
  });

  it('ClientGearman to ServerGearman, each with it: values both ways, per call and per server', async () => {
    await res.microservice({ controllers: [CodecController] }, { codec: taggedCodec });
    const perServer = res.clientProxy({ codec: taggedCodec });
    expect(await lastValueFrom(perServer.send('codec.echo', { a: 3, b: 'c' }))).toEqual({
      got: { a: 3, b: 'c' },
      type: 'object',
    });
    // A JSON client's call tagged per call through the record.
    const perCall = res.clientProxy();
    const record = new GearmanRecordBuilder({ a: 4, b: 'd' }).setCodec(taggedCodec).build();
    expect(await lastValueFrom(perCall.send('codec.echo', record))).toEqual({ got: { a: 4, b: 'd' }, type: 'object' });
  });
});

describe('textCodec(encoding)', () => {
  it('latin1: a foreign worker gets and sends latin1 bytes, one byte per character', async () => {
    const fn = fnName('latin1.peer');
    const seen: Buffer[] = [];
    const worker = res.worker();
    worker.register(fn, (job: WorkerJob) => {
      seen.push(job.payload);
      return Buffer.from([0x72, 0xe9, 0x73, 0x75, 0x6d, 0xe9, 0x20, 0xa3, 0x35]); // "résumé £5"
    });
    await worker.start();
    const client = res.clientProxy({ codec: textCodec('latin1') });
    expect(await lastValueFrom(client.send(fn, 'café ñ ÿ'))).toBe('résumé £5');
    expect(seen).toEqual([Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xf1, 0x20, 0xff])]);
  });

  it('latin1 and UTF-16LE patterns: a foreign client gets exactly those bytes back', async () => {
    await res.microservice({ controllers: [CodecController] });
    const raw = await res.client();
    const latin1 = await raw.run('codec.latin1', Buffer.from([0x67, 0x61, 0x72, 0xe7, 0x6f, 0x6e])); // "garçon"
    expect(latin1).toEqual(Buffer.from([0x47, 0x41, 0x52, 0xc7, 0x4f, 0x4e, 0x20, 0xbf, 0x3f])); // "GARÇON ¿?"

    // "h€" with a character outside the BMP (U+1F600, a surrogate pair) in UTF-16LE.
    const utf16 = await raw.run('codec.utf16', Buffer.from([0x68, 0x00, 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde]));
    expect(utf16).toEqual(
      Buffer.from([0x68, 0x00, 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde, 0x92, 0x21, 0x6f, 0x00, 0x6b, 0x00]), // "h€😀→ok"
    );
  });

  it('UTF-16LE per call: a Nest client and a Nest worker agree, and other values travel as JSON in it', async () => {
    await res.microservice({ controllers: [CodecController] });
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder('日本').setCodec(textCodec('utf-16le')).build();
    expect(await lastValueFrom(client.send('codec.utf16', record))).toBe('日本→ok');

    const fn = fnName('utf16.json');
    const seen: Buffer[] = [];
    const worker = res.worker();
    worker.register(fn, (job: WorkerJob) => {
      seen.push(job.payload);
      return job.payload;
    });
    await worker.start();
    const json = new GearmanRecordBuilder({ n: 'é' }).setCodec(textCodec('ucs2')).build();
    // The worker echoes the bytes: a JSON text read back as a string.
    expect(await lastValueFrom(client.send(fn, json))).toBe('{"n":"é"}');
    expect(seen).toEqual([Buffer.from('{"n":"é"}', 'utf16le')]);
  });

  it('refuses what would lose data: a character latin1 lacks, an odd UTF-16LE payload', async () => {
    await res.microservice({ controllers: [CodecController] });
    const client = res.clientProxy({ codec: textCodec('latin1') });
    const unwritable = await lastValueFrom(client.send('codec.latin1', 'price: 5 €')).catch((err: unknown) => err);
    expect(unwritable).toBeInstanceOf(GearmanCodecError);
    expect((unwritable as Error).message).toBe(
      'The text:latin1 codec cannot write U+20AC (character 9): latin1 has no such character',
    );

    // The worker's result: the caller gets an error report instead of "5 ¬" (the euro's low byte).
    const result = await lastValueFrom(client.send('codec.euro', 'x')).catch((err: unknown) => err);
    expect(result).toBeInstanceOf(GearmanRpcError);
    expect((result as Error).message).toContain('cannot write U+20AC');

    const raw = await res.client();
    const job = raw.submit('codec.utf16', Buffer.from([0x68, 0x00, 0x69]));
    const exception = new Promise<Buffer>((resolve) => job.on('exception', resolve));
    await expect(job.result()).rejects.toMatchObject({ code: 'JOB_EXCEPTION' });
    expect((JSON.parse((await exception).toString()) as { message: string }).message).toContain(
      'payload is not UTF-16LE: 3 bytes, an odd number',
    );
  });
});
