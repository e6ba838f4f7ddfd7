/**
 * The one check of a saved model's files, before anything is built from them. Model directories
 * come from strangers (downloaded, shared, unzipped), so every loader (the CLI's generate and
 * --resume, the server's listing, the page) goes through it: checkpoint.json field by field, the
 * model's own JSON against the checkpoint, each binary file of exactly the length its shapes give,
 * no NaN or infinity in the weights, and the memory the model needs under a budget.
 *
 * Portable (no Node): the page runs it on fetched bytes. Every failure is a UsageError of one line
 * that names the file and the problem and never quotes the file's content (a JSON parser's message
 * does, so it is never passed on).
 */
import type * as tf from '@tensorflow/tfjs';
import { utf8Text } from './bytes';
import { CELLS, IMPLS, LEGACY_MODEL, OPTIMIZERS, SAMPLINGS, type Cell, type ModelConfig } from './config';
import {
  BUILTIN_MODEL_FILE,
  BUILTIN_WEIGHTS_FILE,
  builtinWeightShapes,
  LAYER_CLASS,
  OUTPUT_LAYER,
  recurrentLayerName,
} from './models/builtin';
import { GATES, SCRATCH_FORMAT, SCRATCH_MANIFEST_FILE, SCRATCH_WEIGHTS_FILE, scratchParamShapes } from './models/scratch';
import { stateSize, type ModelFiles } from './models/types';

/** checkpoint.json and a model's own JSON are small (a vocabulary, a layer list): more is not a model. */
export const MAX_JSON_BYTES = 1024 * 1024;
/** What a model may take when no backend says otherwise: the wasm backend's 32-bit heap. */
export const DEFAULT_MODEL_BUDGET = 4 * 1024 ** 3;
/** The optimizer's and the mid-epoch state's files, named as in checkpoint-format.ts (not imported: it imports this). */
const OPTIMIZER_FILE = 'optimizer.bin';
const STATE_FILE = 'state.bin';

/** A plain file name directly inside the model directory: nothing that walks out of it or names it. */
export function isPlainFileName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= 255 &&
    name !== '.' &&
    name !== '..' &&
    !/[/\\\0:]/.test(name) &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
    !/[\u0000-\u001f\u007f]/.test(name)
  );
}

/** The model's own files for each implementation, as its toFiles writes them. */
export function modelFilesOf(impl: ModelConfig['impl']): readonly string[] {
  return impl === 'builtin' ? [BUILTIN_MODEL_FILE, BUILTIN_WEIGHTS_FILE] : [SCRATCH_MANIFEST_FILE, SCRATCH_WEIGHTS_FILE];
}

/** The most stacked layers a model may have: far beyond what trains on a CPU, well short of absurd. */
export const MAX_LAYERS = 64;

/**
 * What is wrong with a fresh model's depth and dropout, in one line that names each setting as the
 * caller spells it (`--layers` in the CLI, `layers` in the page); undefined when nothing is. One
 * rule for both, so the page refuses exactly what the CLI refuses.
 */
export function shapeProblem(
  layers: number,
  dropout: number,
  names: { readonly layers: string; readonly dropout: string } = { layers: 'layers', dropout: 'dropout' },
): string | undefined {
  const shown = (v: number) => (Number.isNaN(v) ? 'not a number' : String(v));
  if (!Number.isInteger(layers) || layers < 1 || layers > MAX_LAYERS) {
    return `${names.layers} must be a whole number from 1 to ${MAX_LAYERS}, got ${shown(layers)}`;
  }
  if (!Number.isFinite(dropout) || dropout < 0 || dropout >= 1) {
    return `${names.dropout} must be a number from 0 to below 1, got ${shown(dropout)}`;
  }
  return undefined;
}

/** The shape of a network, what its size follows from. */
export type ModelShape = Pick<ModelConfig, 'cell' | 'layers' | 'vocabSize' | 'hidden'>;

/**
 * Both implementations: per layer, each gate's [inputs + hidden, hidden] weights and a bias (the
 * first layer's inputs are the vocabulary, the others' the layer below), then [hidden, vocab] + bias.
 */
export function modelParameterCount({ cell, layers, vocabSize: v, hidden: h }: ModelShape): number {
  const gates = GATES[cell].fused.length;
  const first = gates * (v * h + h * h + h);
  const further = gates * (h * h + h * h + h);
  return first + (layers - 1) * further + h * v + v;
}

/**
 * A lower bound on the bytes loading a model holds: the weights file and the tensors made from it
 * (float32), and the optimizer's slots for --resume.
 */
export function loadBytes(model: ModelShape, optimizerScalars = 0): number {
  return (2 * modelParameterCount(model) + 2 * optimizerScalars) * 4;
}

/** How each file a checkpoint names may be read: binaries to exactly their length, JSON up to a cap. */
export type FileLimit = { readonly exact: number } | { readonly max: number };

/**
 * The byte limit of every file besides checkpoint.json that a checked checkpoint needs (its keys
 * are filesOf(meta)), known before any is read, so a reader stops at it.
 */
export function fileLimits(meta: CheckedMeta): Record<string, FileLimit> {
  const limits: Record<string, FileLimit> = {};
  const [manifest, weights] = modelFilesOf(meta.model.impl);
  limits[manifest] = { max: MAX_JSON_BYTES };
  limits[weights] = { exact: modelParameterCount(meta.model) * 4 };
  if (meta.optimizerWeights) limits[OPTIMIZER_FILE] = { exact: scalarsOf(meta.optimizerWeights) * 4 };
  if (meta.position?.hasState) limits[STATE_FILE] = { exact: stateSize(meta.model) * meta.train.batchSize * meta.model.hidden * 4 };
  return limits;
}

/** What checkCheckpointMeta guarantees; checkpoint-format's CheckpointMeta is this, typed more loosely in places. */
export interface CheckedMeta {
  readonly model: ModelConfig;
  readonly train: { readonly batchSize: number };
  readonly vocab: readonly string[];
  readonly files: readonly string[];
  readonly optimizerWeights?: readonly tf.io.WeightsManifestEntry[];
  readonly position?: { readonly hasState: boolean };
}

/** JSON text as a value, or a one-line error that does not quote it. */
export function parseJson(bytes: Uint8Array, fail: (problem: string) => never): unknown {
  if (bytes.byteLength > MAX_JSON_BYTES) fail(`larger than ${MAX_JSON_BYTES / 1024 / 1024} MiB (${bytes.byteLength} bytes)`);
  let text: string;
  try {
    text = utf8Text(bytes, true);
  } catch {
    fail('not UTF-8 text');
  }
  try {
    return JSON.parse(text);
  } catch {
    fail('not valid JSON');
  }
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isWhole = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;
/** A name from a closed set, shown as it is; anything else as what it is, never its text. */
const shown = (v: unknown): string =>
  typeof v === 'string' && /^[\w./-]{1,40}$/.test(v) ? JSON.stringify(v) : typeof v === 'string' ? 'an unknown string' : typeof v;

/** Throws (via `fail`) unless `obj[key]` passes `ok`; `what` says what was expected. */
function field(obj: Obj, key: string, prefix: string, ok: (v: unknown) => boolean, what: string, fail: (p: string) => never): void {
  if (!ok(obj[key])) fail(`${prefix}${key} must be ${what}`);
}

/**
 * checkpoint.json's value checked field by field against what checkpointFiles writes; `format` is
 * the one this version reads. `fail` throws the one-line error.
 */
export function checkCheckpointMeta(
  value: unknown,
  format: string,
  fail: (problem: string) => never,
  budget = DEFAULT_MODEL_BUDGET,
): CheckedMeta {
  if (!isObject(value)) return fail('not a JSON object');
  const m = value;
  if (m.format !== format) fail(`not a model this version can read (format ${shown(m.format)}, expected ${format})`);
  const whole = (min: number) => (v: unknown) => isWhole(v, min);
  const str = (v: unknown) => typeof v === 'string';

  if (!isObject(m.model)) fail('model must be an object');
  const model = m.model as Obj;
  if (!IMPLS.includes(model.impl as ModelConfig['impl'])) fail('model.impl must be "scratch" or "builtin"');
  field(model, 'vocabSize', 'model.', whole(1), 'a whole number >= 1', fail);
  field(model, 'hidden', 'model.', whole(1), 'a whole number >= 1', fail);
  // Saved before the series had cells and layers: one LSTM layer without dropout.
  for (const [key, value] of Object.entries(LEGACY_MODEL)) if (model[key] === undefined) model[key] = value;
  field(model, 'cell', 'model.', (v) => CELLS.includes(v as Cell), `one of ${CELLS.join(', ')}`, fail);
  field(model, 'layers', 'model.', (v) => isWhole(v, 1) && v <= MAX_LAYERS, `a whole number from 1 to ${MAX_LAYERS}`, fail);
  field(model, 'dropout', 'model.', (v) => isFiniteNumber(v) && v >= 0 && v < 1, 'a number from 0 to below 1', fail);

  if (!Array.isArray(m.vocab)) fail('vocab must be an array');
  const vocab = m.vocab as unknown[];
  if (vocab.length !== model.vocabSize) fail(`vocab has ${vocab.length} characters, model.vocabSize says ${model.vocabSize}`);
  const seen = new Set<string>();
  vocab.forEach((c, i) => {
    // One code point: an astral character is two UTF-16 units but one character of the corpus.
    if (typeof c !== 'string' || [...c].length !== 1) fail(`vocab[${i}] must be a single character`);
    if (seen.has(c as string)) fail(`vocab[${i}] repeats an earlier character`);
    seen.add(c as string);
  });

  if (!isObject(m.train)) fail('train must be an object');
  const train = m.train as Obj;
  for (const key of ['epochs', 'numSteps', 'batchSize', 'reportEvery']) field(train, key, 'train.', whole(1), 'a whole number >= 1', fail);
  for (const key of ['maxChars', 'predLen']) field(train, key, 'train.', whole(0), 'a whole number >= 0', fail);
  field(train, 'seed', 'train.', (v) => Number.isSafeInteger(v), 'a whole number', fail);
  field(train, 'valChars', 'train.', (v) => isFiniteNumber(v) && v >= 0, 'a number >= 0', fail);
  for (const key of ['lr', 'clip']) field(train, key, 'train.', (v) => isFiniteNumber(v) && v > 0, 'a number > 0', fail);
  field(train, 'corpus', 'train.', str, 'a string', fail);
  field(train, 'entry', 'train.', (v) => v === undefined || typeof v === 'string', 'a string', fail);
  field(train, 'sampling', 'train.', (v) => SAMPLINGS.includes(v as never), `one of ${SAMPLINGS.join(', ')}`, fail);
  field(train, 'optimizer', 'train.', (v) => OPTIMIZERS.includes(v as never), `one of ${OPTIMIZERS.join(', ')}`, fail);
  field(train, 'prefixes', 'train.', (v) => Array.isArray(v) && v.every(str), 'an array of strings', fail);

  field(m, 'epoch', '', whole(0), 'a whole number >= 0', fail);
  for (const key of ['savedAt', 'backend', 'corpusSha256']) field(m, key, '', str, 'a string', fail);
  field(m, 'versions', '', (v) => isObject(v) && Object.values(v).every(str), 'an object of strings', fail);

  if (!Array.isArray(m.history)) fail('history must be an array');
  (m.history as unknown[]).forEach((entry, i) => {
    if (!isObject(entry)) fail(`history[${i}] must be an object`);
    const e = entry as Obj;
    field(e, 'epoch', `history[${i}].`, whole(0), 'a whole number >= 0', fail);
    for (const key of ['loss', 'perplexity', 'seconds', 'charsPerSecond', 'gradNorm', 'lr', 'numTensors']) {
      field(e, key, `history[${i}].`, isFiniteNumber, 'a finite number', fail);
    }
    field(e, 'heldOutPerplexity', `history[${i}].`, (v) => v === undefined || isFiniteNumber(v), 'a finite number', fail);
  });

  if (!Array.isArray(m.files)) fail('files must be an array');
  const files = m.files as unknown[];
  files.forEach((name, i) => {
    if (!isPlainFileName(name)) fail(`files[${i}] is not a plain file name inside the model directory`);
  });
  const expected = modelFilesOf(model.impl as ModelConfig['impl']);
  if (files.length !== expected.length || !expected.every((name) => files.includes(name))) {
    fail(`files must list ${expected.join(' and ')} (a ${model.impl} model's files)`);
  }

  if (m.optimizerWeights !== undefined) {
    if (!Array.isArray(m.optimizerWeights)) fail('optimizerWeights must be an array');
    (m.optimizerWeights as unknown[]).forEach((spec, i) => checkSpec(spec, `optimizerWeights[${i}]`, fail));
  }
  if (m.position !== undefined) {
    if (!isObject(m.position)) fail('position must be an object');
    const p = m.position as Obj;
    field(p, 'epoch', 'position.', whole(1), 'a whole number >= 1', fail);
    field(p, 'batch', 'position.', whole(0), 'a whole number >= 0', fail);
    for (const key of ['lossSum', 'normSum', 'seconds']) field(p, key, 'position.', isFiniteNumber, 'a finite number', fail);
    field(p, 'hasState', 'position.', (v) => typeof v === 'boolean', 'true or false', fail);
  }

  const config = model as unknown as ModelConfig;
  const optimizerScalars = m.optimizerWeights ? scalarsOf(m.optimizerWeights as tf.io.WeightsManifestEntry[]) : 0;
  const need = loadBytes(config, optimizerScalars);
  if (need > budget) {
    fail(
      `a model of ${config.vocabSize} characters, ${config.layers} ${config.cell} layer${config.layers === 1 ? '' : 's'} and ${config.hidden} hidden units needs at least ${mb(need)}, more than the ${mb(budget)} allowed`,
    );
  }
  return m as unknown as CheckedMeta;
}

/** A weights-manifest entry: a name, a shape of whole numbers, float32 or int32 (4 bytes each), no quantization. */
function checkSpec(spec: unknown, where: string, fail: (p: string) => never): void {
  if (!isObject(spec)) fail(`${where} must be an object`);
  const s = spec as Obj;
  field(s, 'name', `${where}.`, (v) => typeof v === 'string', 'a string', fail);
  field(
    s,
    'shape',
    `${where}.`,
    (v) => Array.isArray(v) && v.length <= 4 && v.every((d) => isWhole(d, 0)),
    'an array of whole numbers',
    fail,
  );
  field(s, 'dtype', `${where}.`, (v) => v === 'float32' || v === 'int32', 'float32 or int32', fail);
  if (s.quantization !== undefined) fail(`${where} is quantized, which this version never writes`);
}

function scalarsOf(specs: readonly tf.io.WeightsManifestEntry[]): number {
  return specs.reduce((n, spec) => n + spec.shape.reduce((a, d) => a * d, 1), 0);
}

function mb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The weights each implementation saves, in order, with their shapes (see ScratchModel and BuiltinModel.create). */
function expectedWeights(config: ModelConfig): { name: string; shape: number[] }[] {
  return config.impl === 'builtin' ? builtinWeightShapes(config) : scratchParamShapes(config);
}

/**
 * The model's own files and the optimizer's and state's, checked against a checked checkpoint:
 * every file present and within its limit, the manifest's (and for builtin the layers') shapes
 * those the checkpoint's vocabulary and hidden size give, every float finite. Run before
 * tf.loadLayersModel or any tensor is made. `fail` throws the one-line error.
 */
export function checkModelFiles(meta: CheckedMeta, files: ModelFiles, fail: (problem: string) => never): void {
  const limits = fileLimits(meta);
  for (const [name, limit] of Object.entries(limits)) {
    const bytes = files[name];
    if (!bytes) fail(`${name} is missing`);
    if ('exact' in limit && bytes.byteLength !== limit.exact) fail(`${name} has ${bytes.byteLength} bytes, expected ${limit.exact}`);
    if ('max' in limit && bytes.byteLength > limit.max) fail(`${name} is larger than ${limit.max} bytes`);
  }
  const [manifestFile, weightsFile] = modelFilesOf(meta.model.impl);
  const inManifest = (problem: string) => fail(`${manifestFile} ${problem}`);
  const json = parseJson(files[manifestFile], inManifest);
  if (!isObject(json)) inManifest('is not a JSON object');
  const doc = json as Obj;
  if (meta.model.impl === 'builtin') {
    if (doc.format !== 'layers-model') inManifest('is not a TF.js Layers model');
    checkLayers(doc.modelTopology, meta.model, inManifest);
  } else if (doc.format !== SCRATCH_FORMAT) inManifest('is not a scratch model manifest');
  const groups = doc.weightsManifest;
  if (!Array.isArray(groups) || groups.length !== 1 || !isObject(groups[0])) inManifest('must have one weightsManifest group');
  const group = (groups as Obj[])[0];
  if (!Array.isArray(group.paths) || group.paths.length !== 1 || group.paths[0] !== weightsFile) {
    inManifest(`weightsManifest must name only ${weightsFile}`);
  }
  if (!Array.isArray(group.weights)) inManifest('weightsManifest has no weights');
  const specs = group.weights as unknown[];
  const expected = expectedWeights(meta.model);
  if (specs.length !== expected.length) inManifest(`lists ${specs.length} weights, expected ${expected.length}`);
  specs.forEach((spec, i) => {
    checkSpec(spec, `weight ${i}`, inManifest);
    const s = spec as tf.io.WeightsManifestEntry;
    const want = expected[i];
    if (s.name !== want.name) inManifest(`weight ${i} must be ${want.name}`);
    if (s.dtype !== 'float32') inManifest(`weight ${want.name} must be float32`);
    if (s.shape.length !== want.shape.length || s.shape.some((d, k) => d !== want.shape[k])) {
      inManifest(
        `weight ${want.name} has shape [${s.shape}], expected [${want.shape}] (from the checkpoint's vocabulary, cell, layers and hidden size)`,
      );
    }
  });
  checkFinite(files[weightsFile], weightsFile, fail);
  if (meta.optimizerWeights) checkFinite(files[OPTIMIZER_FILE], OPTIMIZER_FILE, fail, meta.optimizerWeights);
  if (meta.position?.hasState) checkFinite(files[STATE_FILE], STATE_FILE, fail);
}

/**
 * A builtin model's layers: an input of the vocabulary's width, the checkpoint's number of
 * recurrent layers of its cell, each of `hidden` units and named as BuiltinModel names them, one
 * dense output of the vocabulary's width, nothing else. tf.loadLayersModel builds what this says
 * before it looks at the weights, so a layer of 12,000 units would cost gigabytes before the
 * shape check of the weights failed.
 */
function checkLayers(topology: unknown, { cell, layers: depth, vocabSize: V, hidden: H }: ModelConfig, fail: (p: string) => never): void {
  const config = isObject(topology) && isObject(topology.config) ? topology.config : undefined;
  const layers = config?.layers;
  const kind = LAYER_CLASS[cell];
  if (!Array.isArray(layers) || layers.length !== depth + 2) fail(`must have ${depth + 2} layers (input, ${depth} ${kind}, dense)`);
  const checked = (layers as unknown[]).map((l) => (isObject(l) && isObject(l.config) ? l : undefined));
  const sameShape = (v: unknown, want: (number | null)[]) =>
    Array.isArray(v) && v.length === want.length && v.every((d, i) => d === want[i]);
  const input = checked[0];
  if (input?.class_name !== 'InputLayer' || !sameShape((input.config as Obj).batch_input_shape, [null, null, V])) {
    fail(`layer 1 must be an input of ${V} characters`);
  }
  for (let l = 0; l < depth; l++) {
    const layer = checked[l + 1];
    const config = layer?.config as Obj | undefined;
    if (layer?.class_name !== kind || config?.units !== H || config?.name !== recurrentLayerName(cell, l)) {
      fail(
        `layer ${l + 2} must be ${kind === 'LSTM' ? 'an' : 'a'} ${kind} of ${H} units named ${recurrentLayerName(cell, l)} (the checkpoint's cell and hidden size)`,
      );
    }
  }
  const dense = checked[depth + 1];
  if (dense?.class_name !== 'Dense' || (dense.config as Obj).units !== V || (dense.config as Obj).name !== OUTPUT_LAYER) {
    fail(`layer ${depth + 2} must be a dense layer of ${V} units (the vocabulary) named ${OUTPUT_LAYER}`);
  }
}

/** Refuses NaN and infinity: a model with them generates spaces, or nothing, without a word. */
function checkFinite(bytes: Uint8Array, name: string, fail: (p: string) => never, specs?: readonly tf.io.WeightsManifestEntry[]): void {
  // A copy when the view is not 4-byte aligned (a file read into a pooled buffer).
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const floats = new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  // Int32 slots (none today) are skipped: any bit pattern is a valid int32.
  const ranges: [number, number][] = [];
  if (specs) {
    let at = 0;
    for (const spec of specs) {
      const n = spec.shape.reduce((a, d) => a * d, 1);
      if (spec.dtype === 'float32') ranges.push([at, at + n]);
      at += n;
    }
  } else ranges.push([0, floats.length]);
  for (const [from, to] of ranges) {
    for (let i = from; i < to; i++) {
      if (!Number.isFinite(floats[i])) fail(`${name} holds a non-finite value (NaN or infinity) at float ${i}`);
    }
  }
}
