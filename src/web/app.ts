/**
 * What the page does, without the DOM: start a backend, fetch the model list and models over
 * HTTP (the files the CLI wrote, unconverted), generate, train, and pack a model as a zip. It
 * reports through callbacks; the UI modules (ui.ts and the panels it wires) own every element.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { setAccel, type AccelSetting } from '../accel';
import { DEFAULT_CORPUS, DEFAULT_TRAIN, lessonDefaults, type Cell, type Impl, type TrainConfig } from '../core/config';
import { firstLine, UsageError } from '../core/errors';
import {
  CHECKPOINT_FILE,
  checkpointFiles,
  filesOf,
  modelOfCheckpoint,
  parseCheckpointMeta,
  restoreTraining,
  type CheckpointFiles,
  type CheckpointInfo,
  type TrainingState,
} from '../core/checkpoint-format';
import { generateTextStreaming } from '../core/generate';
import type { EpochMetrics, Report } from '../core/metrics';
import { createModel, type LanguageModel, type ModelFiles } from '../core/models';
import { makeOptimizer } from '../core/optimizer';
import { makeRng } from '../core/random';
import { batchesPerEpoch } from '../core/batches';
import { train } from '../core/train';
import { utf8Text } from '../core/bytes';
import { corpusFromText, defaultPrefixes, splitHeldOut, type Corpus, type Vocabulary } from '../core/vocab';
import type { BrowserStore } from './browser-store';
import type { GenerateInputs } from './inputs';
import type { PageTrainSettings } from './settings';
import type { PageState } from './state';
import { zipFiles } from './zip';

export type BackendName = 'wasm' | 'webgl' | 'cpu';

/** The backend the page runs on. */
export interface PageBackend {
  readonly name: string;
  /** One sentence: what runs and why, and whether the speed-ups are on. */
  readonly why: string;
}

/**
 * wasm first: it is the backend the CLI runs on where native TensorFlow is missing, and the same
 * WebAssembly kernels (with the same patches) give the same floats, so greedy text here equals
 * `lstm-lyrics generate`'s. webgl computes in GPU shaders (float rounding differs, texture reads
 * per step make one-character steps slow); cpu is plain JavaScript. `?backend=` picks one, and
 * `?accel=off` runs stock TF.js, without our speed-ups (src/accel).
 */
export async function startBackend(wanted?: string, accel: AccelSetting = 'on'): Promise<PageBackend> {
  tf.enableProdMode();
  const skipped: string[] = [];
  const order: BackendName[] = wanted === 'webgl' ? ['webgl', 'wasm', 'cpu'] : wanted === 'cpu' ? ['cpu'] : ['wasm', 'webgl', 'cpu'];
  for (const name of order) {
    try {
      if (name === 'wasm') {
        // The .wasm files lie beside the page (copied from @tensorflow/tfjs-backend-wasm at build time).
        setWasmPaths(new URL('./', location.href).href);
      }
      if (await tf.setBackend(name)) {
        await tf.ready();
        return { name, why: `${reasonFor(name, skipped)}; ${setAccel({ setting: accel }).description}` };
      }
      skipped.push(`${name} failed to start`);
    } catch (err) {
      skipped.push(`${name} failed to start: ${firstLine(err)}`);
    }
  }
  throw new Error(`no TF.js backend started: ${skipped.join('; ')}`);
}

function reasonFor(name: string, skipped: string[]): string {
  const why =
    name === 'wasm'
      ? 'WebAssembly with SIMD, the backend the CLI uses where native TensorFlow is not installed: the same kernels give the same numbers, so greedy text here is exactly what lstm-lyrics generate prints'
      : name === 'webgl'
        ? 'the GPU through WebGL (its float arithmetic differs slightly from the CLI, so greedy text may too)'
        : 'plain JavaScript, the slowest';
  return skipped.length ? `${why} (${skipped.join('; ')})` : why;
}

/** A model in the list: one the server lists, or one trained in this page. */
export interface ModelSummary {
  readonly name: string;
  readonly readable: boolean;
  readonly reason?: string;
  readonly impl?: Impl;
  /** Absent from a list written before cells and layers existed: one LSTM layer (LEGACY_MODEL). */
  readonly cell?: Cell;
  readonly layers?: number;
  readonly dropout?: number;
  readonly hidden?: number;
  readonly vocabSize?: number;
  readonly epochs?: number;
  readonly perplexity?: number | null;
  readonly heldOutPerplexity?: number | null;
  readonly corpus?: string;
  readonly savedAt?: string;
  readonly history?: readonly { epoch: number; perplexity: number; heldOutPerplexity?: number }[];
}

export async function fetchModelList(): Promise<ModelSummary[]> {
  const res = await fetch('models.json', { cache: 'no-cache' });
  if (!res.ok) throw new Error(`models.json: HTTP ${res.status}`);
  return (await res.json()) as ModelSummary[];
}

/** A model ready to generate with. */
export interface LoadedModel {
  readonly model: LanguageModel;
  readonly vocab: Vocabulary;
  readonly info: CheckpointInfo;
  /** Trained in this page: its optimizer (and where a stopped run stopped), saved with it so it resumes. */
  readonly training?: TrainingState;
}

/** The URL of a model file: each segment of the model's name escaped on its own. */
function modelUrl(name: string, file: string): string {
  return ['models', ...name.split('/'), file].map(encodeURIComponent).join('/');
}

/** The files the CLI wrote, as they are: checkpoint.json, then the files it names. */
export async function loadModel(name: string): Promise<LoadedModel> {
  const fetchBytes = async (file: string) => {
    const res = await fetch(modelUrl(name, file), { cache: 'no-cache' });
    if (!res.ok) throw new UsageError(`${name}/${file}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
  const meta = parseCheckpointMeta(await fetchBytes(CHECKPOINT_FILE), `${name}/${CHECKPOINT_FILE}`);
  const files: Record<string, Uint8Array> = {};
  for (const file of filesOf(meta)) files[file] = await fetchBytes(file);
  return loadCheckpoint({ meta, files }, name);
}

/** A checkpoint's files (kept in this browser, or opened by hand) as a model, through the core's checks. */
export async function loadCheckpoint(checkpoint: CheckpointFiles, where: string): Promise<LoadedModel> {
  const { model, vocab } = await modelOfCheckpoint(checkpoint, where);
  return { model, vocab, info: checkpoint.meta };
}

/** A model kept in this browser, read back and checked as a fetched one. */
export async function loadStoredModel(store: BrowserStore, id: number, name: string): Promise<LoadedModel> {
  return loadCheckpoint(checkpointOfFiles(await store.files(id), name), name);
}

/** Reads checkpoint.json from a model's files (checked as every loader checks it). */
export function checkpointOfFiles(files: ModelFiles, where: string): CheckpointFiles {
  const bytes = files[CHECKPOINT_FILE];
  if (!bytes) throw new UsageError(`model in ${where} is incomplete: ${CHECKPOINT_FILE} is missing`);
  return { meta: parseCheckpointMeta(bytes, `${where}: ${CHECKPOINT_FILE}`), files };
}

/** A model's row in the list, from its checkpoint. */
export function summaryOf(name: string, info: CheckpointInfo): ModelSummary {
  const last = info.history.at(-1);
  return {
    name,
    readable: true,
    impl: info.model.impl,
    cell: info.model.cell,
    layers: info.model.layers,
    dropout: info.model.dropout,
    hidden: info.model.hidden,
    vocabSize: info.model.vocabSize,
    epochs: info.epoch,
    perplexity: last?.perplexity ?? null,
    heldOutPerplexity: last?.heldOutPerplexity ?? null,
    corpus: info.train.corpus,
    savedAt: info.savedAt,
    history: info.history,
  };
}

/** Frees a model's tensors and its optimizer's (and a stopped run's carried state). */
export function disposeLoaded(loaded: LoadedModel): void {
  loaded.model.dispose();
  loaded.training?.optimizer.dispose();
  if (loaded.training?.position?.state) tf.dispose(loaded.training.position.state);
}

/**
 * Frees a model trained in this page (or opened by hand) when nothing in the page holds it any
 * more: no row's (`local`) and not one of the train panel's last run, which its Download buttons
 * offer. Callers stop any generation with it first (generationToken).
 */
export function releaseIfUnused(state: PageState, model: LoadedModel): void {
  if (state.trainPanelModels.includes(model as TrainedModel)) return;
  for (const entry of state.entries.values()) if (entry.local === model) return;
  disposeLoaded(model);
}

/** A generation's settings, as the generate form and a link give them once checked (inputs.ts). */
export type GenerateRequest = GenerateInputs;

/**
 * What `lstm-lyrics generate` prints, a character at a time: the same sampler, the same seeded
 * random numbers. `onChar` may throw to cancel.
 */
export function generate(loaded: LoadedModel, request: GenerateRequest, onChar: (char: string) => void): Promise<string> {
  const rng = makeRng(request.seed ?? Math.floor(Math.random() * 2 ** 32));
  return generateTextStreaming(
    loaded.model,
    loaded.vocab,
    request.prefix,
    request.length,
    { temperature: request.temperature, topK: request.topK, rng },
    onChar,
  );
}

/** The bundled corpus, served read-only beside the page. */
export async function fetchBundledCorpus(): Promise<{ bytes: Uint8Array; name: string }> {
  const res = await fetch(DEFAULT_CORPUS);
  if (!res.ok) throw new Error(`${DEFAULT_CORPUS}: HTTP ${res.status}`);
  return { bytes: new Uint8Array(await res.arrayBuffer()), name: DEFAULT_CORPUS.split('/').pop()! };
}

/** A corpus from bytes, as the CLI reads a .txt (UTF-8, line breaks as spaces, first maxChars). */
export async function corpusOfBytes(bytes: Uint8Array, name: string, maxChars: number): Promise<Corpus> {
  let text: string;
  try {
    text = utf8Text(bytes, true);
  } catch {
    throw new UsageError(`${name} is not UTF-8 text`);
  }
  return corpusFromText(text, maxChars, await sha256Hex(bytes), name);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // crypto.subtle exists only in secure contexts (https, localhost); elsewhere the digest is unknown.
  if (!globalThis.crypto?.subtle) return 'unknown';
  const digest = await crypto.subtle.digest('SHA-256', bytes as unknown as ArrayBuffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface TrainCallbacks {
  onBatch?(impl: Impl, epoch: number, batch: number, batches: number): void;
  onEpoch?(impl: Impl, metrics: EpochMetrics): void;
  onReport?(impl: Impl, report: Report): void;
  shouldStop(): boolean;
}

export interface TrainedModel extends LoadedModel {
  readonly impl: Impl;
  /** True when Stop ended it early; the model keeps what it learnt. */
  readonly stopped: boolean;
}

/**
 * Trains each impl with the one training loop, side by side: the loop yields after every batch,
 * so the runs take turns batch by batch.
 */
export async function trainModels(
  corpus: Corpus,
  corpusName: string,
  impls: readonly Impl[],
  settings: PageTrainSettings,
  backend: string,
  callbacks: TrainCallbacks,
): Promise<TrainedModel[]> {
  batchesPerEpoch('consecutive', corpus.ids.length, settings.batchSize, settings.numSteps); // throws if too short
  const { prefixes } = defaultPrefixes(corpus, DEFAULT_TRAIN.prefixes);
  const runs = impls.map(async (impl): Promise<TrainedModel> => {
    const config: TrainConfig = {
      ...DEFAULT_TRAIN,
      corpus: corpusName,
      maxChars: settings.maxChars,
      epochs: settings.epochs,
      numSteps: settings.numSteps,
      batchSize: settings.batchSize,
      optimizer: lessonDefaults(settings.cell, impl).optimizer,
      lr: settings.lr[impl],
      clip: settings.clip,
      reportEvery: settings.reportEvery,
      prefixes,
      seed: settings.seed,
    };
    const model = createModel(
      {
        impl,
        cell: settings.cell,
        layers: settings.layers,
        dropout: settings.dropout,
        vocabSize: corpus.vocab.chars.length,
        hidden: settings.hidden,
      },
      config.seed,
    );
    // Made here rather than by train(), so the model keeps it: saved with it, a run resumes.
    const optimizer = makeOptimizer(config.optimizer, config.lr);
    const result = await train(
      model,
      corpus,
      config,
      {
        onBatch: (epoch, batch, batches) => callbacks.onBatch?.(impl, epoch, batch, batches),
        onEpoch: (metrics) => callbacks.onEpoch?.(impl, metrics),
        onReport: (report) => callbacks.onReport?.(impl, report),
        shouldStop: callbacks.shouldStop,
      },
      { optimizer },
    );
    const info: CheckpointInfo = {
      model: model.config,
      train: config,
      vocab: corpus.vocab.chars,
      epoch: result.history.length,
      savedAt: new Date().toISOString(),
      backend,
      versions: { ...(tf.version as Record<string, string>), page: navigator.userAgent },
      corpusSha256: corpus.sha256,
      history: result.history,
    };
    const training: TrainingState = { optimizer, position: result.stoppedAt };
    return { impl, model, vocab: corpus.vocab, info, training, stopped: result.stoppedAt !== undefined };
  });
  return Promise.all(runs);
}

/**
 * `lstm-lyrics train --resume` in the page: `more` epochs beyond those done, from the saved
 * optimizer slots and (for a stopped run) the saved position, on the corpus the model was trained
 * on (its SHA-256 must match), with its saved settings. The caller keeps the result.
 */
export async function resumeTraining(
  checkpoint: CheckpointFiles,
  where: string,
  corpusBytes: { bytes: Uint8Array; name: string },
  more: number,
  backend: string,
  callbacks: TrainCallbacks,
): Promise<TrainedModel> {
  const { meta } = checkpoint;
  if (!Number.isInteger(more) || more < 1) throw new UsageError(`more epochs must be a whole number >= 1, got ${more}`);
  const config: TrainConfig = { ...meta.train, epochs: meta.epoch + more };
  const whole = await corpusOfBytes(corpusBytes.bytes, corpusBytes.name, config.maxChars);
  if (whole.sha256 !== meta.corpusSha256) {
    throw new UsageError(
      `${corpusBytes.name} is not the corpus ${where} was trained on (${config.corpus}; SHA-256 differs): pick that corpus in the train form to resume`,
    );
  }
  const { train: corpus, heldOut } = splitHeldOut(whole, config.valChars);
  const { model, vocab } = await modelOfCheckpoint(checkpoint, where);
  const impl = model.config.impl;
  let training: TrainingState | undefined;
  try {
    training = await restoreTraining(checkpoint, config);
    const from = training.position ?? { epoch: meta.epoch + 1, batch: 0, lossSum: 0, normSum: 0, seconds: 0, state: null };
    const history = [...meta.history];
    const result = await train(
      model,
      corpus,
      config,
      {
        onBatch: (epoch, batch, batches) => callbacks.onBatch?.(impl, epoch, batch, batches),
        onEpoch: (metrics) => {
          history.push(metrics);
          callbacks.onEpoch?.(impl, metrics);
        },
        onReport: (report) => callbacks.onReport?.(impl, report),
        shouldStop: callbacks.shouldStop,
      },
      { optimizer: training.optimizer, from, heldOut },
    );
    const info: CheckpointInfo = {
      model: meta.model,
      train: config,
      vocab: meta.vocab,
      epoch: history.at(-1)?.epoch ?? meta.epoch,
      savedAt: new Date().toISOString(),
      backend,
      versions: { ...(tf.version as Record<string, string>), page: navigator.userAgent },
      corpusSha256: meta.corpusSha256,
      history,
    };
    return {
      impl,
      model,
      vocab,
      info,
      training: { optimizer: training.optimizer, position: result.stoppedAt },
      stopped: result.stoppedAt !== undefined,
    };
  } catch (err) {
    disposeLoaded({ model, vocab, info: meta, training });
    throw err;
  }
}

/** A model's files as a model directory holds them, with the optimizer's (and a stopped run's position) when it has them. */
export function modelFiles(loaded: LoadedModel): Promise<ModelFiles> {
  return checkpointFiles(loaded.model, loaded.info, loaded.training);
}

/** A model's files as one zip holding one model directory (`<folder>/checkpoint.json`, ...). */
export function modelZip(files: ModelFiles, folder: string): Uint8Array {
  return zipFiles(Object.entries(files).map(([name, bytes]) => ({ name: `${folder}/${name}`, bytes })));
}
