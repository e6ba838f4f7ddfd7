import { consecutiveBatches, randomBatches } from '../src/core/batches';
import { UsageError } from '../src/core/errors';
import { makeRng } from '../src/core/random';

const ids = Int32Array.from({ length: 1000 }, (_, i) => i);
const row = (a: Int32Array, r: number, steps: number) => Array.from(a.subarray(r * steps, (r + 1) * steps));

describe.each([
  ['consecutive', () => consecutiveBatches(ids, 4, 7)],
  ['random', () => randomBatches(ids, 4, 7, makeRng(1))],
])('%s batches', (_name, make) => {
  const batches = make();

  it('have shape [batchSize, numSteps]', () => {
    for (const b of batches) {
      expect([b.batchSize, b.numSteps]).toEqual([4, 7]);
      expect(b.x.length).toBe(28);
      expect(b.y.length).toBe(28);
    }
  });

  it('have Y equal to X shifted by one character, and every window inside the corpus', () => {
    for (const b of batches) {
      for (let r = 0; r < 4; r++) {
        const x = row(b.x, r, 7);
        const y = row(b.y, r, 7);
        // ids are positions, so a window of the corpus is a run of consecutive numbers.
        x.forEach((v, t) => expect(v).toBe(x[0] + t));
        expect(y).toEqual(x.map((v) => v + 1));
        expect(x[0]).toBeGreaterThanOrEqual(0);
        expect(y[6]).toBeLessThan(ids.length);
      }
    }
  });
});

describe('consecutive batches', () => {
  it('continue each row where the previous batch stopped', () => {
    const batches = consecutiveBatches(ids, 4, 7);
    for (let k = 1; k < batches.length; k++) {
      for (let r = 0; r < 4; r++) expect(batches[k].x[r * 7]).toBe(batches[k - 1].x[r * 7 + 6] + 1);
    }
  });

  it('match the lesson: (rowLength - 1) / numSteps batches, rows rowLength apart', () => {
    const batches = consecutiveBatches(ids, 4, 7); // rowLength 250
    expect(batches.length).toBe(Math.floor(249 / 7));
    expect([0, 1, 2, 3].map((r) => batches[0].x[r * 7])).toEqual([0, 250, 500, 750]);
  });

  it('reject a corpus too short for one batch', () => {
    expect(() => consecutiveBatches(ids.subarray(0, 31), 4, 7)).toThrow(UsageError);
    expect(consecutiveBatches(ids.subarray(0, 32), 4, 7).length).toBe(1);
  });
});

describe('random batches', () => {
  it('visit distinct windows in an order that depends on the seed only', () => {
    const starts = (seed: number) => randomBatches(ids, 4, 7, makeRng(seed)).flatMap((b) => [0, 1, 2, 3].map((r) => b.x[r * 7]));
    const a = starts(1);
    expect(new Set(a).size).toBe(a.length);
    expect(starts(1)).toEqual(a);
    expect(starts(2)).not.toEqual(a);
    a.forEach((s) => expect(s % 7).toBe(0));
  });

  it('reject a corpus too short for one batch', () => {
    expect(() => randomBatches(ids.subarray(0, 28), 4, 7, makeRng(0))).toThrow(UsageError);
  });
});
