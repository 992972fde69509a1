import 'reflect-metadata';
import { GearmanContext } from '../../../lib/index.js';
import { createTestContext } from '../../../lib/testing/index.js';

/** A handler as users write them: reads the payload and the context, reports progress and data. */
async function report(rows: { name: string; rows: number }, ctx: GearmanContext): Promise<string> {
  for (let i = 1; i <= rows.rows; i++) {
    await ctx.sendData({ row: i });
    await ctx.sendStatus(i, rows.rows);
  }
  if (ctx.getUnique() === 'warn') await ctx.sendWarning('almost empty');
  return `${rows.name}@${ctx.getHandle()}:${ctx.getFunction()}`;
}

describe('createTestContext', () => {
  it('gives the handler its decoded payload and a context, and records what it sends', async () => {
    const t = createTestContext({ payload: { name: 'q3', rows: 2 }, functionName: 'reports.build', unique: 'warn' });
    const result = await report(t.data as { name: string; rows: number }, t.context);
    expect(result).toBe('q3@H:test:1:reports.build');
    expect(t.sent.data).toEqual([{ row: 1 }, { row: 2 }]);
    expect(t.sent.statuses).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(t.sent.warnings).toEqual(['almost empty']);
    expect(t.sent.all.map((r) => r.type)).toEqual(['data', 'status', 'data', 'status', 'warning']);
  });

  it('decodes with the pattern codec, and takes a Buffer as the raw payload', () => {
    expect(createTestContext({ payload: 'plain text', codec: 'text' }).data).toBe('plain text');
    expect(createTestContext({ payload: Buffer.from('{"a":1}') }).data).toEqual({ a: 1 });
    expect(createTestContext().data).toBeUndefined();
  });

  it('exposes handle, unique, metadata and an AbortSignal that is not aborted', () => {
    const t = createTestContext({ handle: 'H:x:9', unique: 'u-1', metadata: { traceparent: '00-abc' } });
    expect(t.context.getHandle()).toBe('H:x:9');
    expect(t.context.getUnique()).toBe('u-1');
    expect(t.context.getMetadata()).toEqual({ traceparent: '00-abc' });
    expect(t.context.getSignal().aborted).toBe(false);
  });

  it("records the engine job's own complete, exception and fail", () => {
    const done = createTestContext({ payload: 1 });
    done.context.getJob().complete(Buffer.from('"ok"'));
    expect(done.sent.all).toEqual([{ type: 'complete', value: 'ok' }]);
    const failed = createTestContext();
    failed.context.getJob().exception('boom');
    expect(failed.sent.all).toEqual([{ type: 'exception', value: 'boom' }]);
    const plain = createTestContext();
    plain.context.getJob().fail();
    expect(plain.sent.all).toEqual([{ type: 'fail' }]);
  });
});
