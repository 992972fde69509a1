/**
 * The `text` and `json` codecs copy long all-ASCII text as latin1 (lib/nest/codecs.ts): the bytes
 * and strings must be exactly UTF-8's, for ASCII and for every text that is not.
 */
import { describe, expect, it } from '@jest/globals';
import { jsonCodec, resolveCodec } from '../../../lib/nest/codecs.js';

const text = resolveCodec('text');
const long = (unit: string, length = 2000) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length);

const samples: [string, string][] = [
  ['short ASCII', 'hello'],
  ['long ASCII', long('abcdefghijklmnopqrstuvwxyz0123456789')],
  ['ASCII with control characters', long('a\u0000\u0001\u007f\n')],
  ['long ASCII then one latin1 character', `${long('a')}é`],
  ['one latin1 character then long ASCII', `é${long('a')}`],
  ['long latin1', long('éàü\u00ff')],
  ['long CJK', long('漢字かな')],
  ['emoji (surrogate pairs)', long('😀a')],
  ['a lone surrogate', `${long('a')}\ud800`],
];

describe('text and json codecs on long text', () => {
  it.each(samples)('text writes and reads %s as UTF-8', (_name, value) => {
    const encoded = text.encode(value);
    expect(encoded.equals(Buffer.from(value, 'utf8'))).toBe(true);
    expect(text.decode(encoded)).toBe(Buffer.from(value, 'utf8').toString('utf8'));
  });

  it.each(samples)('json writes and reads %s as UTF-8', (_name, value) => {
    const encoded = jsonCodec.encode({ value });
    expect(encoded.equals(Buffer.from(JSON.stringify({ value }), 'utf8'))).toBe(true);
    expect(jsonCodec.decode(encoded)).toEqual(JSON.parse(Buffer.from(JSON.stringify({ value })).toString('utf8')));
  });

  it('reads bytes that are not UTF-8 as UTF-8 does (replacement characters)', () => {
    const bytes = Buffer.concat([Buffer.from(long('a')), Buffer.from([0xff, 0xfe, 0x80])]);
    expect(text.decode(bytes)).toBe(bytes.toString('utf8'));
  });
});
