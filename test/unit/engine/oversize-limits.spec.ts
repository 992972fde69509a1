import { checkFunctionName, checkReducerName } from '../../../lib/engine/function-name.js';
import { buildSubmitRequest, checkSubmitSize } from '../../../lib/engine/client/submit-request.js';
import { GearmanError, MAX_FUNCTION_NAME_LENGTH } from '../../../lib/protocol/index.js';
import { invalidArgument, thrown } from '../../support/errors.js';

describe('function name limits (docs/gearmand-behaviour.md#function-names)', () => {
  it('takes names up to MAX_FUNCTION_NAME_LENGTH UTF-8 bytes and refuses longer ones, naming the limit', () => {
    expect(MAX_FUNCTION_NAME_LENGTH).toBe(7986);
    expect(() => checkFunctionName('f'.repeat(MAX_FUNCTION_NAME_LENGTH))).not.toThrow();
    expect(() => checkFunctionName('é'.repeat(MAX_FUNCTION_NAME_LENGTH / 2))).not.toThrow();
    const error = invalidArgument(() => checkFunctionName('f'.repeat(MAX_FUNCTION_NAME_LENGTH + 1)));
    expect(error.message).toContain('7987 bytes (UTF-8), above the 7986 bytes gearmand 1.1.20 handles');
    // Counted in bytes, not characters: 3994 characters, 7988 bytes.
    invalidArgument(() => checkFunctionName('é'.repeat(MAX_FUNCTION_NAME_LENGTH / 2 + 1)));
  });

  it('keeps refusing empty names and NUL bytes', () => {
    for (const name of ['', 'a\0b', 42 as unknown as string]) {
      expect(invalidArgument(() => checkFunctionName(name)).message).toContain('Invalid function name');
    }
  });

  it('takes reducers up to 64 bytes, what gearmand 1.1.20 accepts', () => {
    expect(() => checkReducerName('r'.repeat(64))).not.toThrow();
    expect(() => checkReducerName('')).not.toThrow();
    expect(invalidArgument(() => checkReducerName('r'.repeat(65))).message).toContain('above the 64 bytes');
    invalidArgument(() => buildSubmitRequest('map', 'x', { reducer: 'r'.repeat(65) }));
  });
});

describe('checkSubmitSize', () => {
  const tooLarge = (run: () => unknown) => {
    const error = thrown(run);
    expect(error).toBeInstanceOf(GearmanError);
    expect((error as GearmanError).code).toBe('PACKET_TOO_LARGE');
    return error;
  };

  it('counts the whole SUBMIT payload: function, unique, data and their NULs', () => {
    // 'fn' NUL 'u' NUL data: 5 bytes besides the data.
    const at = buildSubmitRequest('fn', Buffer.alloc(95), { unique: 'u' });
    expect(() => checkSubmitSize(at, 100)).not.toThrow();
    const above = buildSubmitRequest('fn', Buffer.alloc(96), { unique: 'u' });
    expect(tooLarge(() => checkSubmitSize(above, 100)).message).toMatch(
      /its packet would be 101 bytes \(payload 96\), above this client's maxPacketSize of 100, so nothing was sent/,
    );
  });

  it('counts strings in UTF-8 bytes, and a reduce job’s reducer and aggregator', () => {
    expect(() => checkSubmitSize(buildSubmitRequest('fn', 'é'.repeat(48)), 100)).not.toThrow(); // 2 + 2 + 96
    tooLarge(() => checkSubmitSize(buildSubmitRequest('fn', 'é'.repeat(49)), 100));
    const reduce = buildSubmitRequest('fn', Buffer.alloc(80), {
      unique: 'u',
      reducer: 'r',
      aggregator: 'a'.repeat(20),
    });
    tooLarge(() => checkSubmitSize(reduce, 100));
  });

  it('lets a large payload well below the limit through without counting', () => {
    expect(() => checkSubmitSize(buildSubmitRequest('fn', Buffer.alloc(1 << 20)), 64 << 20)).not.toThrow();
  });
});
