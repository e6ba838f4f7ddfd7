/** The text sampler's choice of the next character: greedy, temperature and top-k, seeded. */
import { GREEDY, pickCharacter } from '../src/core/generate';
import { makeRng } from '../src/core/random';

/** Logits where the order matters: id 3 is best, then 0, 5, 1, ...; the tail is not negligible. */
const LOGITS = Float32Array.from([2.0, 1.0, -1.0, 2.5, 0.0, 1.5, -0.5, 0.5]);
const ORDER = [3, 0, 5, 1, 7, 4, 6, 2]; // ids by falling logit

function draws(options: { temperature: number; topK: number; seed: number }, n = 4000): number[] {
  const rng = makeRng(options.seed);
  return Array.from({ length: n }, () => pickCharacter(LOGITS, { ...options, rng }));
}

/** Shannon entropy (nats) of the empirical distribution of `ids`. */
function entropy(ids: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return -[...counts.values()].reduce((h, c) => h + (c / ids.length) * Math.log(c / ids.length), 0);
}

describe('pickCharacter', () => {
  it('greedy (temperature 0) picks the largest logit, whatever the rng', () => {
    expect(pickCharacter(LOGITS, GREEDY)).toBe(3);
    expect(pickCharacter(LOGITS, { temperature: 0, topK: 0, rng: () => 0.999 })).toBe(3);
  });

  it.each([1, 2, 3, 5])('with top-k %i, no character outside the k most likely is ever drawn, and all of them are', (k) => {
    const seen = new Set(draws({ temperature: 1, topK: k, seed: 7 }));
    expect([...seen].sort()).toEqual(ORDER.slice(0, k).sort());
  });

  it('without top-k, every character can be drawn (so the top-k test above can fail)', () => {
    expect(new Set(draws({ temperature: 1, topK: 0, seed: 7 })).size).toBe(LOGITS.length);
  });

  it('top-k 1 equals greedy at any temperature', () => {
    for (const temperature of [0.5, 1, 5]) expect(new Set(draws({ temperature, topK: 1, seed: 3 }, 200))).toEqual(new Set([3]));
  });

  it('a temperature near 0 equals greedy', () => {
    expect(new Set(draws({ temperature: 1e-3, topK: 0, seed: 11 }, 500))).toEqual(new Set([3]));
  });

  it('the same seed repeats the same draws; another seed gives others', () => {
    const a = draws({ temperature: 1, topK: 0, seed: 42 }, 200);
    expect(draws({ temperature: 1, topK: 0, seed: 42 }, 200)).toEqual(a);
    expect(draws({ temperature: 1, topK: 0, seed: 43 }, 200)).not.toEqual(a);
  });

  it('a higher temperature spreads the choices (the entropy of the draws rises)', () => {
    const entropies = [0.3, 1, 3].map((temperature) => entropy(draws({ temperature, topK: 0, seed: 5 })));
    expect(entropies[0]).toBeLessThan(entropies[1]);
    expect(entropies[1]).toBeLessThan(entropies[2]);
  });

  it('draws in proportion to softmax(logits / T)', () => {
    const n = 20000;
    const seen = draws({ temperature: 1, topK: 0, seed: 1 }, n);
    const z = Array.from(LOGITS, (l) => Math.exp(l));
    const total = z.reduce((a, b) => a + b, 0);
    for (const id of ORDER.slice(0, 3)) {
      expect(seen.filter((x) => x === id).length / n).toBeCloseTo(z[id] / total, 1);
    }
  });
});
