/**
 * The core pieces the page adds: generateTextStreaming is generateText a character at a time (the
 * same steps, the same picks), for both impls, greedy and seeded.
 */
import { IMPLS, LEGACY_MODEL } from '../src/core/config';
import { generateText, generateTextStreaming } from '../src/core/generate';
import { createModel, type LanguageModel } from '../src/core/models';
import { makeRng } from '../src/core/random';
import { buildVocabulary } from '../src/core/vocab';
import { REPETITIVE_LYRIC, useWasm } from './helpers';

beforeAll(useWasm);

describe.each(IMPLS)('generateTextStreaming (%s)', (impl) => {
  const vocab = buildVocabulary(REPETITIVE_LYRIC);
  let model: LanguageModel;
  beforeAll(() => {
    model = createModel({ impl, ...LEGACY_MODEL, vocabSize: vocab.chars.length, hidden: 16 }, 3);
  });
  afterAll(() => model.dispose());

  it.each([
    ['greedy', 0, 0],
    ['sampled, temperature 1', 1, 0],
    ['sampled, top-k 3', 0.8, 3],
  ])('%s: the same text as generateText, character by character', async (_what, temperature, topK) => {
    const expected = generateText(model, vocab, '不分开', 30, { temperature, topK, rng: makeRng(7) });
    const chars: string[] = [];
    const got = await generateTextStreaming(model, vocab, '不分开', 30, { temperature, topK, rng: makeRng(7) }, (c) => chars.push(c), 4);
    expect(got).toBe(expected);
    expect(`不分开${chars.join('')}`).toBe(expected);
    expect(chars).toHaveLength(30);
  });

  it('frees every tensor, also when the callback cancels', async () => {
    const { memory } = await import('@tensorflow/tfjs');
    const before = memory().numTensors;
    await expect(
      generateTextStreaming(model, vocab, '分开', 10, { temperature: 0, topK: 0, rng: Math.random }, () => {
        throw new Error('cancel');
      }),
    ).rejects.toThrow('cancel');
    await generateTextStreaming(model, vocab, '分开', 10, { temperature: 0, topK: 0, rng: Math.random }, () => undefined);
    expect(memory().numTensors).toBe(before);
  });

  it('names prefix characters outside the vocabulary', async () => {
    await expect(
      generateTextStreaming(model, vocab, '不X', 5, { temperature: 0, topK: 0, rng: Math.random }, () => undefined),
    ).rejects.toThrow('"X"');
  });
});
