/**
 * The one training loop, for every model: truncated backprop through `numSteps` characters,
 * mean cross-entropy, gradients clipped by their global norm, then one optimizer step.
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatches, type Batch } from './batches';
import { crossEntropy } from './loss';
import type { ModelConfig, Sampling, TrainConfig } from './config';
import { generateText, yieldToEventLoop } from './generate';
import { isReportEpoch, type EpochMetrics, type Report, type TrainPosition } from './metrics';
import type { LanguageModel, RecurrentState } from './models';
import { disposeState, keepState } from './models/types';
import { makeOptimizer } from './optimizer';
import { makeRng } from './random';
import type { Corpus } from './vocab';

export interface TrainHooks {
  /** After every batch (for progress bars). */
  onBatch?(epoch: number, batch: number, batches: number): void;
  /** After every epoch. */
  onEpoch?(metrics: EpochMetrics): void | Promise<void>;
  /** Every `reportEvery` epochs and after the last. */
  onReport?(report: Report): void | Promise<void>;
  /** Polled after every batch; true ends training after that batch (e.g. on SIGINT). */
  shouldStop?(): boolean;
}

export interface TrainOptions {
  /** Defaults to config.optimizer at config.lr; pass a restored one to resume. */
  readonly optimizer?: tf.Optimizer;
  /** Continue from here instead of epoch 1 (see --resume). */
  readonly from?: TrainPosition;
  /** Held-out character ids, evaluated after every epoch. */
  readonly heldOut?: Int32Array;
}

export interface TrainResult {
  readonly history: readonly EpochMetrics[];
  /** Set when shouldStop ended training early: where to resume from. */
  readonly stoppedAt?: TrainPosition;
}

export class DivergedError extends Error {
  override readonly name = 'DivergedError';
}

/**
 * Each batch draws its dropout masks from its own seed (never 0, which TF.js reads as none), so a
 * resumed run drops what the uninterrupted one would have.
 */
export function batchSeed(seed: number, epoch: number, batch: number): number {
  return (Math.imul(seed ^ Math.imul(epoch, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(batch + 1, 0xc2b2ae35)) >>> 0 || 1;
}

/**
 * Whether an epoch starts from the state the previous one ended with (consecutive sampling only)
 * rather than from zeros. The lesson's PyTorch loop (train_and_predict_rnn_pytorch, series.py's
 * builtin branch) sets `state = None` once, before its epochs, and carries it on; its scratch loop
 * starts each epoch from zeros. With nn.RNN's two biases (LanguageModel.pairedBiases), that is why
 * the builtin RNN's curve lagged nn.RNN's (issue 17, bundled corpus, epoch 100: ours 53 against
 * 22-25; series.py itself gave 37 with the state zeroed each epoch, 47 with one bias as well). The
 * builtin GRU and LSTM reach perplexity ~1 within a few epochs either way, so they keep zeros and
 * their seeded numbers: the LSTM lies within nn.LSTM's spread, and the GRU's ~0.01 above nn.GRU's
 * plateau is its cell's (series.py with the state zeroed each epoch and one bias stays at nn.GRU's
 * plateau; see the README's fidelity section).
 */
export function carriesStateAcrossEpochs({ impl, cell }: Pick<ModelConfig, 'impl' | 'cell'>, sampling: Sampling): boolean {
  return sampling === 'consecutive' && impl === 'builtin' && cell === 'rnn';
}

/** Each epoch draws its window order from its own seed, so a resumed run needs no RNG state. */
export function epochRng(seed: number, epoch: number): () => number {
  return makeRng((seed ^ Math.imul(epoch, 0x9e3779b1)) >>> 0);
}

export async function train(
  model: LanguageModel,
  corpus: Corpus,
  config: TrainConfig,
  hooks: TrainHooks = {},
  options: TrainOptions = {},
): Promise<TrainResult> {
  const optimizer = options.optimizer ?? makeOptimizer(config.optimizer, config.lr);
  const history: EpochMetrics[] = [];
  const from = options.from;
  const carryState = carriesStateAcrossEpochs(model.config, config.sampling);
  // The state the last epoch ended with, where the next one starts from it (carryState).
  let carried: RecurrentState | null = null;
  try {
    for (let epoch = from?.epoch ?? 1; epoch <= config.epochs; epoch++) {
      const resuming = from !== undefined && epoch === from.epoch;
      const start = performance.now() - (resuming ? from.seconds * 1000 : 0);
      const batches = makeBatches(config.sampling, corpus.ids, config.batchSize, config.numSteps, epochRng(config.seed, epoch));
      // [sum of batch losses, sum of grad norms], kept in a tensor so nothing is read back per batch.
      const totals = tf.tidy(() => tf.variable(tf.tensor1d(resuming ? [from.lossSum, from.normSum] : [0, 0]), false));
      // A run resumed at an epoch's start (from a report's save) has no saved state: it starts from zeros.
      let state: RecurrentState = (resuming && from.state) || carried || model.zeroState(config.batchSize);
      carried = null;
      let done = resuming ? from.batch : 0;
      let stopped = false;
      for (const batch of batches.slice(done)) {
        if (config.sampling === 'random' && done > 0) {
          disposeState(state);
          state = model.zeroState(config.batchSize);
        }
        const next = trainStep(model, optimizer, batch, state, config.clip, totals, batchSeed(config.seed, epoch, done));
        disposeState(state);
        state = next;
        done++;
        hooks.onBatch?.(epoch, done, batches.length);
        // Training is synchronous tensor work; yielding lets signal handlers (SIGINT) and a page's
        // Stop button run between batches.
        await yieldToEventLoop();
        if (hooks.shouldStop?.() && done < batches.length) {
          stopped = true;
          break;
        }
      }
      const [lossSum, normSum] = Array.from(totals.dataSync()); // the epoch's one read back to JS
      totals.dispose();
      const seconds = (performance.now() - start) / 1000;
      if (stopped) return { history, stoppedAt: { epoch, batch: done, lossSum, normSum, seconds, state } };
      if (carryState) carried = state;
      else disposeState(state);

      const loss = lossSum / done;
      // exp overflows past a loss of ~709: such a model is as broken as one whose loss is NaN.
      if (!Number.isFinite(Math.exp(loss))) {
        throw new DivergedError(`training diverged: the loss became ${loss} in epoch ${epoch}; try a smaller --lr or --clip`);
      }
      const metrics: EpochMetrics = {
        epoch,
        loss,
        perplexity: Math.exp(loss),
        ...(options.heldOut && { heldOutPerplexity: Math.exp(heldOutLoss(model, options.heldOut, config.numSteps)) }),
        seconds,
        charsPerSecond: (done * config.batchSize * config.numSteps) / seconds,
        gradNorm: normSum / done,
        lr: config.lr,
        numTensors: tf.memory().numTensors,
      };
      history.push(metrics);
      await hooks.onEpoch?.(metrics);
      if (isReportEpoch(epoch, config.reportEvery, config.epochs)) {
        const samples = config.prefixes.map((prefix) => generateText(model, corpus.vocab, prefix, config.predLen));
        await hooks.onReport?.({ metrics, samples });
      }
    }
    return { history };
  } finally {
    if (carried) disposeState(carried);
  }
}

/**
 * Mean cross-entropy of predicting each character of `ids` from all before it: one row, read in
 * windows of `numSteps` with the state carried, so every character but the first counts once.
 */
export function heldOutLoss(model: LanguageModel, ids: Int32Array, numSteps: number): number {
  let state = model.zeroState(1);
  const total = tf.tidy(() => tf.variable(tf.scalar(0), false));
  try {
    for (let s = 0; s + 1 < ids.length; s += numSteps) {
      const len = Math.min(numSteps, ids.length - 1 - s);
      const next = tf.tidy(() => {
        const x = tf.tensor2d(ids.subarray(s, s + len), [1, len], 'int32');
        const y = tf.tensor2d(ids.subarray(s + 1, s + 1 + len), [1, len], 'int32');
        const out = model.forward(x, state);
        total.assign(total.add(crossEntropy(out.logits, y).mul(len)));
        return out.state;
      });
      disposeState(state);
      state = next;
    }
    return total.dataSync()[0] / (ids.length - 1);
  } finally {
    disposeState(state);
    total.dispose();
  }
}

/**
 * Forward, backward, clip, update on one batch. Returns the state after the batch (a constant:
 * the next batch does not backpropagate into it). Adds the loss and gradient norm to `totals` so
 * nothing is read back to JS per batch.
 */
function trainStep(
  model: LanguageModel,
  optimizer: tf.Optimizer,
  batch: Batch,
  state: RecurrentState,
  clip: number,
  totals: tf.Variable,
  seed: number,
): RecurrentState {
  let next: RecurrentState | undefined;
  tf.tidy(() => {
    const x = tf.tensor2d(batch.x, [batch.batchSize, batch.numSteps], 'int32');
    const y = tf.tensor2d(batch.y, [batch.batchSize, batch.numSteps], 'int32');
    const { value: loss, grads } = tf.variableGrads(() => {
      const out = model.forward(x, state, { seed });
      next = keepState(out.state);
      return crossEntropy(out.logits, y);
    }, model.variables as tf.Variable[]);
    const names = Object.keys(grads);
    const paired = model.pairedBiases ?? [];
    const { clipped, norm } = clipByGlobalNorm(
      names.map((n) => grads[n]),
      clip,
      paired.map((v) => grads[v.name]),
    );
    const before = paired.map((v) => v.clone());
    optimizer.applyGradients(Object.fromEntries(names.map((n, i) => [n, clipped[i]])));
    // Each of the pair would have taken this step: the sum takes it twice.
    paired.forEach((v, i) => v.assign(tf.sub(tf.mul(v, 2), before[i])));
    totals.assign(totals.add(tf.stack([loss, norm])));
  });
  return next!;
}

/**
 * Rescales `grads` so their joint L2 norm is at most `maxNorm` (the lesson's grad_clipping).
 * `countedTwice` (some of `grads`) count a second time in the norm, as a pair of parameters with
 * equal gradients would (see LanguageModel.pairedBiases). Stays in tensors, so it costs no read
 * back to JS. Returns the norm before clipping.
 */
export function clipByGlobalNorm(
  grads: readonly tf.Tensor[],
  maxNorm: number,
  countedTwice: readonly tf.Tensor[] = [],
): { clipped: tf.Tensor[]; norm: tf.Scalar } {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN([...grads, ...countedTwice].map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
    const scale = tf.minimum(1, tf.div(maxNorm, norm));
    return { clipped: grads.map((g) => tf.mul(g, scale)), norm };
  });
}
