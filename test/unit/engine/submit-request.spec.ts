import { PacketType } from '../../../lib/protocol/packet-types.js';
import { buildSubmitRequest } from '../../../lib/engine/client/submit-request.js';
import { GearmanError } from '../../../lib/engine/errors.js';

const fixedUnique = () => 'generated-unique';

describe('buildSubmitRequest', () => {
  it('builds SUBMIT_JOB with function, unique and payload for a plain foreground job', () => {
    const r = buildSubmitRequest('resize', 'img', {}, fixedUnique);
    expect(r).toMatchObject({ functionName: 'resize', unique: '', background: false, priority: 'normal', retries: 0 });
    expect(r.type).toBe(PacketType.SUBMIT_JOB);
    expect(r.args).toEqual(['resize', '', Buffer.from('img')]);
  });

  it.each([
    ['high', false, PacketType.SUBMIT_JOB_HIGH],
    ['high', true, PacketType.SUBMIT_JOB_HIGH_BG],
    ['normal', true, PacketType.SUBMIT_JOB_BG],
    ['low', false, PacketType.SUBMIT_JOB_LOW],
    ['low', true, PacketType.SUBMIT_JOB_LOW_BG],
  ] as const)('picks the packet type for priority %s, background %s', (priority, background, type) => {
    expect(buildSubmitRequest('f', '', { priority, background, unique: 'u' }, fixedUnique).type).toBe(type);
  });

  it('gives a background job without a unique a generated wire unique, but keeps its own unique empty', () => {
    const r = buildSubmitRequest('f', 'x', { background: true }, fixedUnique);
    expect(r.unique).toBe('');
    expect(r.args[1]).toBe('generated-unique');
    expect(buildSubmitRequest('f', 'x', {}, fixedUnique).args[1]).toBe('');
  });

  it('builds SUBMIT_JOB_EPOCH (always background) from seconds or a Date', () => {
    const r = buildSubmitRequest('f', 'x', { epoch: new Date(1_700_000_000_500), unique: 'u' }, fixedUnique);
    expect(r.background).toBe(true);
    expect(r.type).toBe(PacketType.SUBMIT_JOB_EPOCH);
    expect(r.args).toEqual(['f', 'u', '1700000000', Buffer.from('x')]);
  });

  it('builds SUBMIT_REDUCE_JOB with four NUL-terminated arguments (an empty aggregator by default)', () => {
    const r = buildSubmitRequest('map', 'x', { reducer: 'sum', unique: 'u' }, fixedUnique);
    expect(r.type).toBe(PacketType.SUBMIT_REDUCE_JOB);
    expect(r.args).toEqual(['map', 'u', 'sum', '', Buffer.from('x')]);
    expect(
      buildSubmitRequest('map', 'x', { reducer: 'sum', aggregator: 'agg', background: true }, fixedUnique).type,
    ).toBe(PacketType.SUBMIT_REDUCE_JOB_BACKGROUND);
  });

  it('allows retries only for jobs with a unique', () => {
    expect(buildSubmitRequest('f', '', { retry: true }, fixedUnique).retries).toBe(0);
    expect(buildSubmitRequest('f', '', { retry: true, unique: 'u' }, fixedUnique).retries).toBe(3);
    expect(buildSubmitRequest('f', '', { retry: 5, unique: 'u' }, fixedUnique).retries).toBe(5);
    expect(buildSubmitRequest('f', '', { retry: -2, unique: 'u' }, fixedUnique).retries).toBe(0);
  });

  it.each([
    ['an empty function name', () => buildSubmitRequest('', 'x')],
    ['a function name with NUL', () => buildSubmitRequest('a\0b', 'x')],
    ['a unique of 64 bytes', () => buildSubmitRequest('f', 'x', { unique: 'u'.repeat(64) })],
    ['a unique with NUL', () => buildSubmitRequest('f', 'x', { unique: 'a\0' })],
    ['an unknown priority', () => buildSubmitRequest('f', 'x', { priority: 'urgent' as never })],
    ['a fractional epoch', () => buildSubmitRequest('f', 'x', { epoch: 1.5 })],
    ['a negative epoch', () => buildSubmitRequest('f', 'x', { epoch: -1 })],
    ['an epoch reduce job', () => buildSubmitRequest('f', 'x', { epoch: 1, reducer: 'r' })],
  ])('rejects %s with INVALID_ARGUMENT', (_what, build) => {
    let error: unknown;
    try {
      build();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('accepts a unique of 63 bytes', () => {
    expect(buildSubmitRequest('f', 'x', { unique: 'u'.repeat(63) }).unique).toHaveLength(63);
  });
});
