/**
 * Reduce jobs from Nest to Nest: ClientGearman submits them (GearmanRecordBuilder.setReducer, i.e.
 * SUBMIT_REDUCE_JOB), a ServerGearman with `grab: 'all'` (GRAB_JOB_ALL) takes them and reads the
 * reducer from `ctx.getReducer()`. The job server only carries the reducer's name to the worker
 * (JOB_ASSIGN_ALL): it runs no reducer and passes no aggregator (docs/gearmand-behaviour.md#packets-with-their-own-rules).
 */
import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { GearmanContext, GearmanRecordBuilder } from '../../lib/index.js';
import { useGearmand, useResources } from '../support/harness.js';
import { deferred, within } from '../support/wait.js';

const gearmand = useGearmand();
const res = useResources(gearmand);

interface Seen {
  words: string;
  reducer: string | undefined;
  unique: string;
}

let probe = newProbe();
function newProbe() {
  return { reducerRuns: 0, background: deferred<Seen>() };
}
beforeEach(() => {
  probe = newProbe();
});

@Controller()
class MapController {
  /** The "map" step: counts the words it was given and says which reducer the caller named. */
  @MessagePattern('reduce.map')
  map(@Payload() words: string, @Ctx() ctx: GearmanContext): Seen & { count: number } {
    return { words, count: words.split(' ').length, reducer: ctx.getReducer(), unique: ctx.getUnique() };
  }

  /** The reducer the callers name: gearmand never calls it. */
  @MessagePattern('reduce.sum')
  sum(): number {
    probe.reducerRuns++;
    return 0;
  }

  @EventPattern<string>('reduce.background')
  background(@Payload() words: string, @Ctx() ctx: GearmanContext): void {
    probe.background.resolve({ words, reducer: ctx.getReducer(), unique: ctx.getUnique() });
  }
}

describe("a Nest worker with grab: 'all'", () => {
  it('takes a reduce job from ClientGearman and sees its reducer; the result is its own', async () => {
    await res.microservice({ controllers: [MapController] }, { grab: 'all' });
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder('a b c').setReducer('reduce.sum').setUnique('words-1').build();
    expect(await lastValueFrom(client.send('reduce.map', record))).toEqual({
      words: 'a b c',
      count: 3,
      reducer: 'reduce.sum',
      unique: 'words-1',
    });
    expect(probe.reducerRuns).toBe(0);

    // A plain job comes to the same worker without a reducer (JOB_ASSIGN_UNIQ).
    expect(await lastValueFrom(client.send('reduce.map', 'd e'))).toEqual({
      words: 'd e',
      count: 2,
      reducer: undefined,
      unique: '',
    });
  });

  it('takes a background reduce job (emit) with an aggregator, which the worker does not see', async () => {
    await res.microservice({ controllers: [MapController] }, { grab: 'all' });
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder('x y').setReducer('reduce.sum', 'agg').setUnique('bg-1').build();
    await lastValueFrom(client.emit('reduce.background', record));
    expect(await within(probe.background.promise, 5000, 'the background reduce job')).toEqual({
      words: 'x y',
      reducer: 'reduce.sum',
      unique: 'bg-1',
    });
  });
});

describe('a Nest worker with the default grab (uniq)', () => {
  it('takes a reduce job as a plain job: no reducer', async () => {
    await res.microservice({ controllers: [MapController] });
    const client = res.clientProxy();
    const record = new GearmanRecordBuilder('a b').setReducer('reduce.sum').setUnique('words-2').build();
    expect(await lastValueFrom(client.send('reduce.map', record))).toEqual({
      words: 'a b',
      count: 2,
      reducer: undefined,
      unique: 'words-2',
    });
  });
});
