/**
 * The rules for typed numbers, now in the core: the CLI's flags get exactly the messages they always
 * had, the page's fields the same rule with their own names and the text typed; the fewest
 * characters a batch needs is exactly where batchesPerEpoch starts to work; and the page's checks
 * (src/web/inputs.ts, no DOM): a link's parameters, the length cap, the train form, the corpus
 * length, the memory estimate.
 */
import { nonNegative, positiveNumber, seedOf, wholeNumber } from '../src/cli/options';
import { batchesPerEpoch, minimumCorpusLength } from '../src/core/batches';
import { SAMPLINGS } from '../src/core/config';
import { UsageError } from '../src/core/errors';
import {
  givenText,
  MAX_GIVEN_CHARS,
  nonNegativeProblem,
  numberOfText,
  positiveNumberProblem,
  seedProblem,
  wholeNumberProblem,
} from '../src/core/input-rules';
import { corpusFromText } from '../src/core/vocab';
import { formatBytes, trainingBytes, WASM_HEAP_BYTES } from '../src/core/training-memory';
import {
  checkGenerateInputs,
  checkTrainInputs,
  corpusLengthProblem,
  type GenerateField,
  MAX_PAGE_LENGTH,
  pageMemoryLimit,
  TRAIN_FIELDS,
  type TrainField,
  trainingMemory,
  vocabularySize,
} from '../src/web/inputs';
import { PAGE_TRAIN_DEFAULTS } from '../src/web/settings';

describe('the core rules keep the CLI messages', () => {
  it.each([
    [() => wholeNumber('epochs', 2.5), '--epochs must be a whole number >= 1, got 2.5'],
    [() => wholeNumber('epochs', Number.NaN), '--epochs must be a whole number >= 1, got not a number'],
    [() => wholeNumber('length', -1, 0), '--length must be a whole number >= 0, got -1'],
    [() => seedOf(-1), '--seed must be a whole number >= 0, got -1'],
    [() => seedOf(2 ** 53), `--seed must be a whole number >= 0, got ${2 ** 53}`],
    [() => seedOf(Number.NaN), '--seed must be a whole number >= 0, got not a number'],
    [() => positiveNumber('lr', 0), '--lr must be a number > 0, got 0'],
    [() => positiveNumber('lr', Number.NaN), '--lr must be a number > 0, got NaN'],
    [() => nonNegative('temperature', -0.5), '--temperature must be a number >= 0, got -0.5'],
    [() => nonNegative('temperature', Number.POSITIVE_INFINITY), '--temperature must be a number >= 0, got Infinity'],
  ])('%#: %s', (run, message) => {
    expect(run).toThrow(new UsageError(message));
  });

  it('lets good values through unchanged', () => {
    expect(wholeNumber('epochs', 3)).toBe(3);
    expect(wholeNumber('length', 0, 0)).toBe(0);
    expect(seedOf(0)).toBe(0);
    expect(positiveNumber('lr', 0.01)).toBe(0.01);
    expect(nonNegative('temperature', 0)).toBe(0);
    expect(wholeNumberProblem('hidden units', 1)).toBeUndefined();
    expect(seedProblem('seed', Number.MAX_SAFE_INTEGER)).toBeUndefined();
    expect(positiveNumberProblem('clip', 1e-9)).toBeUndefined();
    expect(nonNegativeProblem('temperature', 2)).toBeUndefined();
  });

  it('name the setting as the caller says it, and show what was typed when given', () => {
    expect(wholeNumberProblem('hidden units', 0)).toBe('hidden units must be a whole number >= 1, got 0');
    expect(wholeNumberProblem('length', Number.NaN, 0, 'abc')).toBe('length must be a whole number >= 0, got abc');
    expect(seedProblem('seed', Number.NaN, 'nothing')).toBe('seed must be a whole number >= 0, got nothing');
    expect(nonNegativeProblem('temperature', Number.NaN, 'NaN')).toBe('temperature must be a number >= 0, got NaN');
  });

  it('givenText: trimmed, "nothing" when empty, cut short; numberOfText: empty and words are NaN', () => {
    expect(givenText('  abc ')).toBe('abc');
    expect(givenText('   ')).toBe('nothing');
    expect(givenText('x'.repeat(1000))).toBe(`${'x'.repeat(MAX_GIVEN_CHARS)}…`);
    expect(numberOfText('')).toBeNaN();
    expect(numberOfText('abc')).toBeNaN();
    expect(numberOfText(' 12 ')).toBe(12);
  });
});

describe('minimumCorpusLength', () => {
  it.each(SAMPLINGS.flatMap((s) => [1, 3, 32].flatMap((b) => [1, 8, 35].map((n) => [s, b, n] as const))))(
    '%s, batch %i, %i steps: one batch from exactly this length on',
    (sampling, batchSize, numSteps) => {
      const needed = minimumCorpusLength(sampling, batchSize, numSteps);
      expect(batchesPerEpoch(sampling, needed, batchSize, numSteps)).toBe(1);
      expect(() => batchesPerEpoch(sampling, needed - 1, batchSize, numSteps)).toThrow(
        `corpus too short: ${needed - 1} characters, need at least ${needed} for this --batch-size and --num-steps`,
      );
    },
  );
});

describe("the page's checks (src/web/inputs.ts)", () => {
  const form = (over: Partial<Record<GenerateField, string>> = {}): Record<GenerateField, string> => ({
    prefix: '不分开',
    length: '50',
    temperature: '0',
    'top-k': '0',
    seed: '',
    ...over,
  });

  it('a good form (or link) is the request; empty number fields are what the CLI does without the flag', () => {
    expect(checkGenerateInputs(form({ seed: '7', temperature: '0.8' }))).toEqual({
      ok: true,
      value: { prefix: '不分开', length: 50, temperature: 0.8, topK: 0, seed: 7 },
    });
    expect(checkGenerateInputs(form({ length: '', temperature: ' ', 'top-k': '' }))).toEqual({
      ok: true,
      value: { prefix: '不分开', length: 50, temperature: 0, topK: 0, seed: undefined },
    });
  });

  it.each([
    [{ length: 'abc' }, 'length', 'length must be a whole number >= 0, got abc'],
    [{ length: '2.5' }, 'length', 'length must be a whole number >= 0, got 2.5'],
    [{ temperature: 'NaN' }, 'temperature', 'temperature must be a number >= 0, got NaN'],
    [{ temperature: '-1' }, 'temperature', 'temperature must be a number >= 0, got -1'],
    [{ 'top-k': '-1' }, 'top-k', 'top-k must be a whole number >= 0, got -1'],
    [{ seed: 'abc' }, 'seed', 'seed must be a whole number >= 0, got abc'],
    [{ seed: '-1' }, 'seed', 'seed must be a whole number >= 0, got -1'],
    [{ prefix: '' }, 'prefix', 'the prefix must not be empty'],
  ] as const)('%j: %s is refused', (over, field, message) => {
    expect(checkGenerateInputs(form(over))).toEqual({ ok: false, problems: { [field]: message } });
  });

  it(`length: at most MAX_PAGE_LENGTH (${MAX_PAGE_LENGTH}), with the reason`, () => {
    expect(checkGenerateInputs(form({ length: String(MAX_PAGE_LENGTH) })).ok).toBe(true);
    const refused = checkGenerateInputs(form({ length: '1000000000' }));
    expect(refused).toEqual({
      ok: false,
      problems: {
        length:
          'length must be at most 100,000 characters, got 1,000,000,000: so that a link cannot keep a tab busy for hours; generate in steps or use lstm-lyrics generate',
      },
    });
  });

  it('every wrong field at once, each with its own line', () => {
    const result = checkGenerateInputs(form({ length: 'x', 'top-k': '1.5', seed: '-2' }));
    expect(result.ok ? [] : Object.keys(result.problems).sort()).toEqual(['length', 'seed', 'top-k']);
  });

  const trainForm = (over: Partial<Record<TrainField, string>> = {}): Record<TrainField, string> => ({
    layers: '2',
    dropout: '0.2',
    'max-chars': '0',
    hidden: '16',
    'num-steps': '10',
    'batch-size': '4',
    epochs: '3',
    'lr-scratch': '100',
    'lr-builtin': '0.01',
    clip: '0.01',
    'report-every': '1',
    'train-seed': '5',
    ...over,
  });

  it('a good train form is the settings', () => {
    expect(checkTrainInputs(trainForm(), 'gru')).toEqual({
      ok: true,
      value: {
        cell: 'gru',
        layers: 2,
        dropout: 0.2,
        maxChars: 0,
        hidden: 16,
        numSteps: 10,
        batchSize: 4,
        epochs: 3,
        lr: { scratch: 100, builtin: 0.01 },
        clip: 0.01,
        reportEvery: 1,
        seed: 5,
      },
    });
  });

  it.each([
    ['hidden', '0', 'hidden units must be a whole number >= 1, got 0'],
    ['batch-size', '', 'batch size must be a whole number >= 1, got nothing'],
    ['num-steps', '1.5', 'steps must be a whole number >= 1, got 1.5'],
    ['max-chars', '-1', 'characters must be a whole number >= 0, got -1'],
    ['lr-scratch', '0', 'the scratch learning rate must be a number > 0, got 0'],
    ['clip', 'abc', 'clip must be a number > 0, got abc'],
    ['train-seed', '-1', 'seed must be a whole number >= 0, got -1'],
    ['layers', '65', 'layers must be a whole number from 1 to 64, got 65'],
    ['dropout', '1', 'dropout must be a number from 0 to below 1, got 1'],
  ] as const)('train field %s = %j: %s', (field, value, message) => {
    expect(checkTrainInputs(trainForm({ [field]: value }), 'lstm')).toEqual({ ok: false, problems: { [field]: message } });
  });

  it("the form's first values pass", () => {
    const fields = Object.fromEntries(TRAIN_FIELDS.map((f) => [f, '1'])) as Record<TrainField, string>;
    const defaults = { ...fields, dropout: String(PAGE_TRAIN_DEFAULTS.dropout), hidden: String(PAGE_TRAIN_DEFAULTS.hidden) };
    expect(checkTrainInputs(defaults, 'lstm').ok).toBe(true);
  });

  it("a corpus too short for the batch: the CLI's limit in the page's words", () => {
    expect(corpusLengthProblem(1152, 32, 35)).toBeUndefined();
    expect(corpusLengthProblem(3, 32, 35)).toBe(
      'the corpus is too short: 3 characters, and a batch size of 32 with 35 steps needs at least 1,152; use more text, or a smaller batch size or fewer steps',
    );
  });

  it("the memory estimate is trainingBytes of each impl with its lesson's optimizer, summed; too large on wasm, it says why", () => {
    const settings = { cell: 'lstm', layers: 1, hidden: 256, batchSize: 32, numSteps: 35 } as const;
    const size = { ...settings, vocabSize: 1414 };
    const both = trainingBytes({ ...size, optimizer: 'sgd' }).total + trainingBytes({ ...size, optimizer: 'adam' }).total;
    const wasm = pageMemoryLimit('wasm');
    expect(trainingMemory(settings, ['scratch', 'builtin'], 1414, wasm)).toEqual({
      bytes: both,
      fits: true,
      text: `Training needs about ${formatBytes(both)} of memory.`,
    });
    const huge = trainingMemory({ ...settings, hidden: 100_000 }, ['scratch'], 1414, wasm);
    expect(huge.fits).toBe(false);
    expect(huge.bytes).toBeGreaterThan(WASM_HEAP_BYTES);
    const need = trainingBytes({ ...size, hidden: 100_000, optimizer: 'sgd' });
    expect(huge.text).toBe(
      `Too large: training 100,000 hidden units needs at least ${formatBytes(need.total)} ` +
        `(40,707,401,414 parameters in each model, with their gradients: ${formatBytes(need.parameters)}; activations of a batch: ${formatBytes(need.activations)}), ` +
        'and the wasm backend holds at most 4 GiB (its 32-bit heap); use fewer hidden units or layers, a smaller batch size or fewer steps.',
    );
    expect(huge.text).not.toMatch(/--|Adam/);
    // Where the activations are most of it, the batch is named instead.
    const wide = trainingMemory({ ...settings, hidden: 8, batchSize: 100_000, numSteps: 1000 }, ['builtin'], 1414, wasm);
    expect(wide.text).toMatch(/^Too large: training a batch of 100,000 × 1,000 steps needs at least [\d.]+ GB \(.* and Adam's moments: /);
    // Without a known limit (a backend other than wasm, no deviceMemory), it estimates and lets it through.
    expect(pageMemoryLimit('webgl')).toBeUndefined();
    expect(trainingMemory({ ...settings, hidden: 100_000 }, ['scratch'], 1414, undefined).fits).toBe(true);
    expect(pageMemoryLimit('cpu', 8)?.bytes).toBe(8 * 1024 ** 3);
  });

  it('vocabularySize is the vocabulary training builds from the same text (line breaks as spaces, the first characters)', () => {
    const text = '不分开\r\n我们一起唱歌 分开了\n就不要再说爱';
    for (const maxChars of [0, 5, 12]) {
      expect(vocabularySize(text, maxChars)).toBe(corpusFromText(text, maxChars, '').vocab.chars.length);
    }
  });
});
