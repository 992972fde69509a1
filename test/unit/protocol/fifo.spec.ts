import { Fifo } from '../../../lib/protocol/fifo.js';

const filled = (n: number, from = 0) => {
  const q = new Fifo<number>();
  for (let i = from; i < from + n; i++) q.push(i);
  return q;
};

describe('Fifo', () => {
  it('is empty at first', () => {
    const q = new Fifo<string>();
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
    expect(q.at(0)).toBeUndefined();
    expect(q.shift()).toBeUndefined();
    expect(q.drain()).toEqual([]);
  });

  it('hands items out in the order they went in', () => {
    const q = filled(3);
    expect(q.length).toBe(3);
    expect([q.shift(), q.shift()]).toEqual([0, 1]);
    q.push(3);
    expect([q.shift(), q.shift(), q.shift()]).toEqual([2, 3, undefined]);
    expect(q.length).toBe(0);
  });

  it('peek() and at() look without removing', () => {
    const q = filled(4);
    q.shift();
    expect(q.peek()).toBe(1);
    expect([q.at(0), q.at(1), q.at(2), q.at(3)]).toEqual([1, 2, 3, undefined]);
    expect(q.length).toBe(3);
  });

  it('keeps falsy items', () => {
    const q = new Fifo<unknown>();
    for (const v of [0, '', false, null]) q.push(v);
    expect(q.length).toBe(4);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([0, '', false, null]);
  });

  it('drain() returns what is left, in order, and leaves the queue empty and usable', () => {
    const q = filled(5);
    q.shift();
    expect(q.drain()).toEqual([1, 2, 3, 4]);
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
    q.push(9);
    expect([q.length, q.shift()]).toEqual([1, 9]);
  });

  it('stays in order across its compactions (long runs of shifts and pushes)', () => {
    const q = filled(5000);
    for (let i = 0; i < 3000; i++) expect(q.shift()).toBe(i);
    expect(q.length).toBe(2000);
    expect([q.peek(), q.at(1999), q.at(2000)]).toEqual([3000, 4999, undefined]);
    // Interleaved: a steady 2000 items while tens of thousands pass through.
    let next = 5000;
    let expected = 3000;
    for (let round = 0; round < 20_000; round++) {
      q.push(next++);
      expect(q.shift()).toBe(expected++);
    }
    expect(q.length).toBe(2000);
    expect(q.drain()).toEqual(Array.from({ length: 2000 }, (_, i) => expected + i));
  });
});
