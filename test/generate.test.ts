/** The text sampler: the same text as one forward() per character, with fewer kernels and reads. */
import * as tf from '@tensorflow/tfjs';
import { GREEDY, generateText, pickCharacter, type SamplingOptions } from '../src/core/generate';
import { IMPLS } from '../src/core/config';
import type { LanguageModel } from '../src/core/models';
import { disposeState } from '../src/core/models/types';
import { makeRng } from '../src/core/random';
import { buildVocabulary, decode, encode, type Corpus } from '../src/core/vocab';
import { REPETITIVE_LYRIC, onBackend, trainedModel, useWasm } from './helpers';

beforeAll(useWasm);

/** generateText as it was: the whole model's forward() on each character, logits read back every time. */
function referenceText(model: LanguageModel, corpus: Corpus, prefix: string, length: number, options: SamplingOptions): string {
  const out = Array.from(encode(corpus.vocab, prefix));
  let state = model.zeroState(1);
  let feed = Int32Array.from(out);
  for (let i = 0; i < length; i++) {
    const { next, logits } = tf.tidy(() => {
      const step = model.forward(tf.tensor2d(feed, [1, feed.length], 'int32'), state);
      return { next: step.state, logits: tf.keep(step.logits.slice([0, feed.length - 1, 0], [1, 1, -1]).reshape([-1])) };
    });
    disposeState(state);
    state = next;
    const id = pickCharacter(logits.dataSync() as Float32Array, options);
    logits.dispose();
    out.push(id);
    feed = Int32Array.of(id);
  }
  disposeState(state);
  return decode(corpus.vocab, out);
}

const text = REPETITIVE_LYRIC;
const vocab = buildVocabulary(text);
const corpus: Corpus = { vocab, ids: encode(vocab, text) } as Corpus;

describe.each(['wasm', 'cpu'] as const)('generateText on %s', (backend) => {
  describe.each(IMPLS)('%s', (impl) => {
    let model: LanguageModel;
    beforeAll(async () => {
      await onBackend(backend, async () => (model = await trainedModel(impl, corpus, 3)));
    });
    afterAll(() => model.dispose());

    it('greedy: the same text as one forward() per character, and no tensors left', () =>
      onBackend(backend, () => {
        const before = tf.memory().numTensors;
        for (const prefix of ['分开', '不分开', '我']) {
          const expected = referenceText(model, corpus, prefix, 40, GREEDY);
          expect(generateText(model, corpus.vocab, prefix, 40)).toBe(expected);
          expect(new Set(expected.slice(prefix.length)).size).toBeGreaterThan(2); // a real test: not one character
        }
        expect(tf.memory().numTensors).toBe(before);
      }));

    it('sampling with a seed: the same text as before, and it repeats', () =>
      onBackend(backend, () => {
        const before = tf.memory().numTensors;
        const options = () => ({ temperature: 1, topK: 5, rng: makeRng(11) });
        const expected = referenceText(model, corpus, '分开', 30, options());
        expect(generateText(model, corpus.vocab, '分开', 30, options())).toBe(expected);
        expect(generateText(model, corpus.vocab, '分开', 30, options())).toBe(expected);
        expect(tf.memory().numTensors).toBe(before);
      }));

    it.each([
      ['greedy, chunks of 1', GREEDY, 1],
      ['greedy, chunks of 7', GREEDY, 7],
      ['greedy, default chunks', GREEDY, undefined],
      ['sampled', { temperature: 0.8, topK: 0, rng: makeRng(3) }, undefined],
    ] as const)('streams the generated text through onText (%s)', (_, options, chunk) =>
      onBackend(backend, () => {
        const before = tf.memory().numTensors;
        const pieces: string[] = [];
        const full = generateText(model, corpus.vocab, '不分开', 23, options, { onText: (t) => pieces.push(t), chunk });
        expect(`不分开${pieces.join('')}`).toBe(full);
        if (chunk === 1 || options !== GREEDY) expect(pieces).toHaveLength(23);
        if (chunk === 7) expect(pieces.map((p) => Array.from(p).length)).toEqual([7, 7, 7, 2]);
        expect(tf.memory().numTensors).toBe(before);
      }),
    );

    it('returns the prefix alone for length 0', () => {
      expect(generateText(model, corpus.vocab, '分开', 0)).toBe('分开');
    });
  });
});

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
