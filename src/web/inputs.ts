/**
 * One job: the page's inputs checked, without the DOM or TF.js (so tests can load it): the
 * generate form and a link's parameters, the train form, the corpus length and the training
 * memory, each with the CLI's rule (core/input-rules.ts, shapeProblem, minimumCorpusLength,
 * trainingBytes) and a message in the page's words: the field's name as the page says it
 * ("hidden units", "batch size"), never a --flag. The UI modules show each message next to its field.
 */
import { type Cell, type Impl, lessonDefaults } from '../core/config';
import { count } from '../core/numbers';
import { minimumCorpusLength } from '../core/batches';
import { givenText, nonNegativeProblem, numberOfText, positiveNumberProblem, seedProblem, wholeNumberProblem } from '../core/input-rules';
import { modelParameterCount, shapeProblem } from '../core/model-check';
import { normalise, truncate } from '../core/vocab';
import { formatBytes, trainingBytes, WASM_HEAP_BYTES, WASM_HEAP_LIMIT } from '../core/training-memory';
import type { PageTrainSettings } from './settings';

/**
 * The most characters one generation in the page may ask for, from the form or a link. A link
 * generates as soon as it is opened, and the page writes at most about a thousand characters a
 * second (measured in headless Chromium with a tiny model: 980 a second; the event loop's turn
 * every few characters is the limit, and larger models are slower), so without a cap
 * `length=1000000000` keeps a tab busy for days. 100,000 characters (a couple of minutes, far
 * beyond any lyric) is the one limit; the CLI, which streams to a file and stops on Ctrl-C, has none.
 */
export const MAX_PAGE_LENGTH = 100_000;

/** What a check gives: the value, or a one-line problem for each field that is wrong (by the field's id). */
export type Checked<T, F extends string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly problems: Problems<F> };
export type Problems<F extends string> = Partial<Record<F, string>>;

/** The generate form's fields and a link's parameters (the same names: the input ids). */
export const GENERATE_FIELDS = ['prefix', 'length', 'temperature', 'top-k', 'seed'] as const;
export type GenerateField = (typeof GENERATE_FIELDS)[number];

/** What the generate form asks for (app.ts's GenerateRequest); seed undefined draws one, as --seed left out. */
export interface GenerateInputs {
  readonly prefix: string;
  readonly length: number;
  readonly temperature: number;
  readonly topK: number;
  readonly seed?: number;
}

/** An empty number field means what the CLI does when its flag is left out. */
const GENERATE_DEFAULTS = { length: 50, temperature: 0, 'top-k': 0 } as const;

/**
 * The generate form (or a link) checked as `lstm-lyrics generate` checks its flags, plus the
 * page's cap on length. `text` holds each field as typed (or as the link gives it).
 */
export function checkGenerateInputs(text: Readonly<Record<GenerateField, string>>): Checked<GenerateInputs, GenerateField> {
  const problems: Problems<GenerateField> = {};
  const numberOf = (field: keyof typeof GENERATE_DEFAULTS) =>
    text[field].trim() === '' ? GENERATE_DEFAULTS[field] : numberOfText(text[field]);
  const prefix = text.prefix;
  if (prefix.length === 0) problems.prefix = 'the prefix must not be empty';
  const length = numberOf('length');
  problems.length =
    wholeNumberProblem('length', length, 0, givenText(text.length)) ??
    (length > MAX_PAGE_LENGTH
      ? `length must be at most ${count(MAX_PAGE_LENGTH)} characters, got ${count(length)}: so that a link cannot keep a tab busy for hours; generate in steps or use lstm-lyrics generate`
      : undefined);
  const temperature = numberOf('temperature');
  problems.temperature = nonNegativeProblem('temperature', temperature, givenText(text.temperature));
  const topK = numberOf('top-k');
  problems['top-k'] = wholeNumberProblem('top-k', topK, 0, givenText(text['top-k']));
  const seed = text.seed.trim() === '' ? undefined : numberOfText(text.seed);
  if (seed !== undefined) problems.seed = seedProblem('seed', seed, givenText(text.seed));
  const found = withoutEmpty(problems);
  if (found) return { ok: false, problems: found };
  return { ok: true, value: { prefix, length, temperature, topK, seed } };
}

/** The train form's number fields (their input ids). */
export const TRAIN_FIELDS = [
  'layers',
  'dropout',
  'max-chars',
  'hidden',
  'num-steps',
  'batch-size',
  'epochs',
  'lr-scratch',
  'lr-builtin',
  'clip',
  'report-every',
  'train-seed',
] as const;
export type TrainField = (typeof TRAIN_FIELDS)[number];

/** Each train field as the page's messages name it. */
export const TRAIN_FIELD_WORDS: Readonly<Record<TrainField, string>> = {
  layers: 'layers',
  dropout: 'dropout',
  'max-chars': 'characters',
  hidden: 'hidden units',
  'num-steps': 'steps',
  'batch-size': 'batch size',
  epochs: 'epochs',
  'lr-scratch': 'the scratch learning rate',
  'lr-builtin': 'the builtin learning rate',
  clip: 'clip',
  'report-every': 'report every',
  'train-seed': 'seed',
};

/**
 * The train form checked with the CLI's rules for the same settings (`train`'s: whole numbers
 * >= 1, characters >= 0, learning rates and clip > 0, the seed, layers and dropout by
 * shapeProblem), every field at once so each shows its own message.
 */
export function checkTrainInputs(text: Readonly<Record<TrainField, string>>, cell: Cell): Checked<PageTrainSettings, TrainField> {
  const value = (field: TrainField) => numberOfText(text[field]);
  const given = (field: TrainField) => givenText(text[field]);
  const words = TRAIN_FIELD_WORDS;
  const whole = (field: TrainField, min = 1) => wholeNumberProblem(words[field], value(field), min, given(field));
  const positive = (field: TrainField) => positiveNumberProblem(words[field], value(field), given(field));
  const problems: Problems<TrainField> = {
    // shapeProblem checks the pair; each of its lines names one field, so it goes next to that one.
    layers: shapeProblem(value('layers'), 0, { layers: words.layers, dropout: words.dropout }),
    dropout: shapeProblem(1, value('dropout'), { layers: words.layers, dropout: words.dropout }),
    'max-chars': whole('max-chars', 0),
    hidden: whole('hidden'),
    'num-steps': whole('num-steps'),
    'batch-size': whole('batch-size'),
    epochs: whole('epochs'),
    'lr-scratch': positive('lr-scratch'),
    'lr-builtin': positive('lr-builtin'),
    clip: positive('clip'),
    'report-every': whole('report-every'),
    'train-seed': seedProblem(words['train-seed'], value('train-seed'), given('train-seed')),
  };
  const found = withoutEmpty(problems);
  if (found) return { ok: false, problems: found };
  return {
    ok: true,
    value: {
      cell,
      layers: value('layers'),
      dropout: value('dropout'),
      maxChars: value('max-chars'),
      hidden: value('hidden'),
      numSteps: value('num-steps'),
      batchSize: value('batch-size'),
      epochs: value('epochs'),
      lr: { scratch: value('lr-scratch'), builtin: value('lr-builtin') },
      clip: value('clip'),
      reportEvery: value('report-every'),
      seed: value('train-seed'),
    },
  };
}

/**
 * What is wrong with a corpus of `length` characters for this batch size and steps (the CLI's
 * rule, batchesPerEpoch with consecutive windows, as the page trains), in the page's words.
 */
export function corpusLengthProblem(length: number, batchSize: number, numSteps: number): string | undefined {
  const needed = minimumCorpusLength('consecutive', batchSize, numSteps);
  if (length >= needed) return undefined;
  return (
    `the corpus is too short: ${count(length)} character${length === 1 ? '' : 's'}, and a batch size of ${count(batchSize)} with ${count(numSteps)} steps ` +
    `needs at least ${count(needed)}; use more text, or a smaller batch size or fewer steps`
  );
}

/** How much memory the page may use on a backend: wasm's 4 GiB heap; elsewhere what the browser reports, if it does. */
export function pageMemoryLimit(backend: string, deviceMemoryGiB?: number): { bytes: number; what: string } | undefined {
  if (backend === 'wasm') return { bytes: WASM_HEAP_BYTES, what: WASM_HEAP_LIMIT };
  if (deviceMemoryGiB === undefined || !(deviceMemoryGiB > 0)) return undefined;
  const bytes = deviceMemoryGiB * 1024 ** 3;
  return { bytes, what: `this device has about ${formatBytes(bytes)} of memory, as the browser reports it` };
}

/** The memory a training in the page needs, and whether it fits. */
export interface MemoryEstimate {
  readonly bytes: number;
  /** One line for beside Train: "needs about 12.3 MB", or why it is refused. */
  readonly text: string;
  readonly fits: boolean;
}

/**
 * trainingBytes (the CLI's estimate) for the page: every ticked impl with its lesson's optimizer
 * (SGD for scratch, Adam for builtin), summed because the page trains them side by side, against
 * `limit`. Too large, the line says by how much and what to make smaller, in the page's words.
 */
export function trainingMemory(
  settings: Pick<PageTrainSettings, 'cell' | 'layers' | 'hidden' | 'batchSize' | 'numSteps'>,
  impls: readonly Impl[],
  vocabSize: number,
  limit: { bytes: number; what: string } | undefined,
): MemoryEstimate {
  const size = { ...settings, vocabSize };
  const each = impls.map((impl) => trainingBytes({ ...size, optimizer: lessonDefaults(settings.cell, impl).optimizer }));
  const bytes = each.reduce((sum, e) => sum + e.total, 0);
  const parameters = each.reduce((sum, e) => sum + e.parameters, 0);
  const activations = each.reduce((sum, e) => sum + e.activations, 0);
  if (!limit || bytes <= limit.bytes) return { bytes, fits: true, text: `Training needs about ${formatBytes(bytes)} of memory.` };
  const what =
    parameters >= activations
      ? `${count(settings.hidden)} hidden units${settings.layers > 1 ? ` in ${settings.layers} layers` : ''}`
      : `a batch of ${count(settings.batchSize)} × ${count(settings.numSteps)} steps`;
  return {
    bytes,
    fits: false,
    text:
      `Too large: training ${what} needs at least ${formatBytes(bytes)} ` +
      `(${count(modelParameterCount(size))} parameters in each model, with their gradients${impls.includes('builtin') ? " and Adam's moments" : ''}: ${formatBytes(parameters)}; ` +
      `activations of a batch: ${formatBytes(activations)}), and ${limit.what}; use fewer hidden units or layers, a smaller batch size or fewer steps.`,
  };
}

/**
 * The vocabulary a corpus text will have for training (corpusFromText's: line breaks as spaces, the
 * first `maxChars` characters), without encoding it: what the memory estimate needs.
 */
export function vocabularySize(text: string, maxChars: number): number {
  return new Set(truncate(normalise(text), maxChars)).size;
}

function withoutEmpty<F extends string>(problems: Problems<F>): Problems<F> | undefined {
  const found = Object.fromEntries(Object.entries(problems).filter(([, p]) => p !== undefined)) as Problems<F>;
  return Object.keys(found).length > 0 ? found : undefined;
}
