import { JobControl } from '../../../lib/engine/client/job.js';
import { JobTable } from '../../../lib/engine/client/job-table.js';
import { buildSubmitRequest } from '../../../lib/engine/client/submit-request.js';

const job = (unique = 'u') => new JobControl(buildSubmitRequest('f', 'x', { unique }), () => Promise.resolve());
const collect = (table: JobTable, handle: string) => {
  const seen: JobControl[] = [];
  table.each(handle, (j, list: JobControl[]) => list.push(j), seen, undefined);
  return seen;
};

describe('JobTable', () => {
  it('finds one job by its handle and forgets it when the job ends on the server', () => {
    const table = new JobTable();
    const a = job();
    table.add('H:1', a);
    expect(table.has('H:1')).toBe(true);
    expect(collect(table, 'H:1')).toEqual([a]);
    const ended: JobControl[] = [];
    table.end('H:1', (j, list: JobControl[]) => list.push(j), ended, undefined);
    expect(ended).toEqual([a]);
    expect(table.has('H:1')).toBe(false);
    expect(table.size).toBe(0);
  });

  it('keeps every job of a handle that several submits share, in submit order', () => {
    const table = new JobTable();
    const [a, b, c] = [job(), job(), job()];
    table.add('H:1', a);
    table.add('H:1', b);
    table.add('H:1', c);
    expect(collect(table, 'H:1')).toEqual([a, b, c]);
    const ended: JobControl[] = [];
    table.end('H:1', (j, list: JobControl[]) => list.push(j), ended, undefined);
    expect(ended).toEqual([a, b, c]);
  });

  it('removes one job of a shared handle and leaves the others', () => {
    const table = new JobTable();
    const [a, b, c] = [job(), job(), job()];
    table.add('H:1', a);
    table.add('H:1', b);
    table.add('H:1', c);
    table.remove('H:1', b);
    expect(collect(table, 'H:1')).toEqual([a, c]);
    table.remove('H:1', a);
    expect(collect(table, 'H:1')).toEqual([c]);
    table.remove('H:1', c);
    expect(table.has('H:1')).toBe(false);
  });

  it('ignores a job or handle it does not hold', () => {
    const table = new JobTable();
    const a = job();
    table.add('H:1', a);
    table.remove('H:1', job());
    table.remove('H:2', a);
    expect(collect(table, 'H:1')).toEqual([a]);
    expect(collect(table, 'H:2')).toEqual([]);
  });

  it('lets a callback that removes jobs run over the others of the handle', () => {
    const table = new JobTable();
    const [a, b] = [job(), job()];
    table.add('H:1', a);
    table.add('H:1', b);
    const seen: JobControl[] = [];
    table.each(
      'H:1',
      (j) => {
        seen.push(j);
        table.remove('H:1', j);
      },
      undefined,
      undefined,
    );
    expect(seen).toEqual([a, b]);
    expect(table.has('H:1')).toBe(false);
  });

  it('drains every job of every handle', () => {
    const table = new JobTable();
    const [a, b, c] = [job(), job(), job()];
    table.add('H:1', a);
    table.add('H:2', b);
    table.add('H:2', c);
    expect(table.drain()).toEqual([a, b, c]);
    expect(table.size).toBe(0);
  });
});
