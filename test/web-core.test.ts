/**
 * The core pieces the page adds: generateTextStreaming is generateText a character at a time (the
 * same steps, the same picks), for both impls, every cell and a stacked model, greedy and seeded;
 * the page's training defaults per cell are the CLI's lessons'; its check of layers and dropout is
 * the CLI's; and how it names a model's cell.
 */
import { CELLS, IMPLS, LEGACY_MODEL, lessonDefaults, type Cell, type ModelConfig } from '../src/core/config';
import { generateText, generateTextStreaming } from '../src/core/generate';
import { createModel, type LanguageModel } from '../src/core/models';
import { shapeProblem } from '../src/core/model-check';
import { makeRng } from '../src/core/random';
import { buildVocabulary } from '../src/core/vocab';
import * as app from '../src/web/settings';
import { REPETITIVE_LYRIC, useWasm } from './helpers';

beforeAll(useWasm);

const SHAPES: readonly Pick<ModelConfig, 'cell' | 'layers' | 'dropout'>[] = [
  LEGACY_MODEL,
  { cell: 'gru', layers: 1, dropout: 0 },
  { cell: 'rnn', layers: 1, dropout: 0 },
  { cell: 'lstm', layers: 2, dropout: 0.3 },
];
const CASES = IMPLS.flatMap((impl) => SHAPES.map((shape) => ({ impl, ...shape })));

describe.each(CASES)('generateTextStreaming ($impl $cell, $layers layers, dropout $dropout)', ({ impl, ...shape }) => {
  const vocab = buildVocabulary(REPETITIVE_LYRIC);
  let model: LanguageModel;
  beforeAll(() => {
    model = createModel({ impl, ...shape, vocabSize: vocab.chars.length, hidden: 16 }, 3);
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

describe("the page's training settings", () => {
  it.each(CELLS)("%s: the lesson's epochs, report interval and both learning rates, as train --cell uses them", (cell: Cell) => {
    const d = app.pageTrainDefaults(cell);
    expect(d).toMatchObject({ cell, layers: 1, dropout: 0, epochs: lessonDefaults(cell, 'scratch').epochs });
    expect(d.reportEvery).toBe(lessonDefaults(cell, 'builtin').reportEvery);
    expect(d.lr).toEqual({ scratch: lessonDefaults(cell, 'scratch').lr, builtin: lessonDefaults(cell, 'builtin').lr });
  });

  it('the RNN lesson differs from the LSTM one, which is the form at first', () => {
    expect(app.pageTrainDefaults('rnn')).toMatchObject({ epochs: 250, reportEvery: 50, lr: { scratch: 100, builtin: 0.001 } });
    expect(app.PAGE_TRAIN_DEFAULTS).toMatchObject({ cell: 'lstm', epochs: 160, reportEvery: 40, lr: { scratch: 100, builtin: 0.01 } });
  });

  it('names a shape the way the models table shows it; a model listed without one is one LSTM layer', () => {
    expect(app.describeShape({ cell: 'gru', layers: 1, dropout: 0 })).toBe('GRU');
    expect(app.describeShape({ cell: 'lstm', layers: 2, dropout: 0 })).toBe('LSTM ×2');
    expect(app.describeShape({ cell: 'rnn', layers: 3, dropout: 0.25 })).toBe('RNN ×3, dropout 0.25');
    expect(app.describeShape({})).toBe('LSTM');
  });

  it("refuses layers and dropout as the CLI does, in one line (the page's form, the CLI's flags)", () => {
    expect(shapeProblem(1, 0)).toBeUndefined();
    expect(shapeProblem(64, 0.99)).toBeUndefined();
    expect(shapeProblem(0, 0)).toBe('layers must be a whole number from 1 to 64, got 0');
    expect(shapeProblem(1.5, 0)).toBe('layers must be a whole number from 1 to 64, got 1.5');
    expect(shapeProblem(65, 0)).toBe('layers must be a whole number from 1 to 64, got 65');
    expect(shapeProblem(Number.NaN, 0)).toBe('layers must be a whole number from 1 to 64, got not a number');
    expect(shapeProblem(2, 1)).toBe('dropout must be a number from 0 to below 1, got 1');
    expect(shapeProblem(2, -0.1)).toBe('dropout must be a number from 0 to below 1, got -0.1');
    expect(shapeProblem(2, 1, { layers: '--layers', dropout: '--dropout' })).toBe('--dropout must be a number from 0 to below 1, got 1');
  });
});
