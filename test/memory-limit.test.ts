/** The up-front memory check of train: its parameter count is the models' own, and the lesson's settings fit. */
import { CELLS, DEFAULT_HIDDEN, DEFAULT_TRAIN, IMPLS, LEGACY_MODEL } from '../src/core/config';
import { UsageError } from '../src/core/errors';
import { createModel, parameterCount } from '../src/core/models';
import { modelParameterCount } from '../src/core/model-check';
import { checkTrainingFits } from '../src/node/memory-limit';
import { trainingBytes } from '../src/core/training-memory';
import { useWasm } from './helpers';

beforeAll(useWasm);

describe('checkTrainingFits', () => {
  it.each(CELLS.flatMap((cell) => IMPLS.flatMap((impl) => [1, 3].map((layers) => [cell, impl, layers] as const))))(
    'counts the parameters a %s %s model of %i layer(s) really has',
    (cell, impl, layers) => {
      const config = { impl, cell, layers, dropout: 0, vocabSize: 23, hidden: 7 };
      const model = createModel(config, 0);
      try {
        expect(modelParameterCount(config)).toBe(parameterCount(model));
      } finally {
        model.dispose();
      }
    },
  );

  it('refuses a huge --layers before anything is built, naming it', () => {
    const deep = {
      cell: 'lstm' as const,
      layers: 64,
      vocabSize: 1414,
      hidden: 4096,
      batchSize: 32,
      numSteps: 35,
      optimizer: 'adam' as const,
    };
    expect(() => checkTrainingFits(deep, 'wasm')).toThrow(/--hidden 4096 with --layers 64 is too large: training needs at least/);
  });

  it.each(IMPLS)('counts the parameters %s really has', (impl) => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: 23, hidden: 7 }, 0);
    try {
      expect(modelParameterCount({ ...LEGACY_MODEL, vocabSize: 23, hidden: 7 })).toBe(parameterCount(model));
    } finally {
      model.dispose();
    }
  });

  it("lets the lesson's settings (and much larger ones) through on wasm", () => {
    const lesson = {
      ...LEGACY_MODEL,
      vocabSize: 1414,
      hidden: DEFAULT_HIDDEN,
      batchSize: DEFAULT_TRAIN.batchSize,
      numSteps: DEFAULT_TRAIN.numSteps,
    };
    for (const optimizer of ['sgd', 'adam'] as const) {
      expect(() => checkTrainingFits({ ...lesson, optimizer }, 'wasm')).not.toThrow();
      expect(() => checkTrainingFits({ ...lesson, hidden: 4096, optimizer }, 'wasm')).not.toThrow();
    }
    expect(trainingBytes({ ...lesson, optimizer: 'sgd' }).total).toBeLessThan(100e6);
  });

  it("refuses a model whose weights cannot fit in wasm's 4 GiB, with the numbers", () => {
    const huge = { ...LEGACY_MODEL, vocabSize: 1414, hidden: 60_000, batchSize: 32, numSteps: 35, optimizer: 'sgd' as const };
    expect(() => checkTrainingFits(huge, 'wasm')).toThrow(UsageError);
    expect(() => checkTrainingFits(huge, 'wasm')).toThrow(
      /needs at least 121.3 GB \(14,824,441,414 parameters.*wasm backend holds at most 4 GiB/,
    );
    expect(() => checkTrainingFits(huge, 'cpu')).toThrow(/the cpu backend is bounded by this machine's [\d.]+ GB of memory/);
  });
});
