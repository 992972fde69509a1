/**
 * textCodec(encoding) on its own: which encodings it takes, and what it refuses instead of losing
 * data. The bytes on the wire, through a job server: test/nest/codecs.spec.ts.
 */
import { GearmanCodecError, GearmanError, textCodec } from '../../../lib/index.js';

describe('textCodec(encoding)', () => {
  it('takes the character encodings of Buffer by each of their names', () => {
    expect(textCodec('utf-8')).toBe(textCodec('utf8'));
    expect(textCodec('utf8').name).toBe('text');
    expect(['utf16le', 'utf-16le', 'ucs2', 'ucs-2'].map((e) => textCodec(e as 'utf16le').name)).toEqual(
      Array(4).fill('text:utf16le'),
    );
    expect(textCodec('binary').name).toBe('text:latin1');
    expect(textCodec('LATIN1' as 'latin1').encode('é')).toEqual(Buffer.from([0xe9]));
  });

  it.each(['hex', 'base64', 'utf32', '', 'constructor'])('refuses %j with INVALID_ARGUMENT', (encoding) => {
    let error: unknown;
    try {
      textCodec(encoding as 'latin1');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((error as Error).message).toContain(`Unknown text encoding ${JSON.stringify(encoding)}: use one of utf8, `);
    expect((error as Error).message).toContain("use the 'raw' codec");
  });

  it('ascii: refuses characters and bytes above 0x7f, which Buffer would change silently', () => {
    const ascii = textCodec('ascii');
    expect(ascii.encode('plain')).toEqual(Buffer.from('plain'));
    expect(ascii.decode(Buffer.from('plain'))).toBe('plain');
    expect(() => ascii.encode('naïve')).toThrow(
      new GearmanCodecError('The text:ascii codec cannot write U+00EF (character 2): ascii has no such character'),
    );
    expect(() => ascii.decode(Buffer.from([0x61, 0xe9]))).toThrow(
      new GearmanCodecError('payload is not ascii: byte 1 is above 0x7f'),
    );
  });

  it('writes empty and nil values as an empty payload, which reads as undefined', () => {
    for (const encoding of ['utf8', 'latin1', 'utf16le'] as const) {
      const codec = textCodec(encoding);
      expect([codec.encode(''), codec.encode(undefined), codec.encode(null)]).toEqual(Array(3).fill(Buffer.alloc(0)));
      expect(codec.decode(Buffer.alloc(0))).toBeUndefined();
    }
  });
});
