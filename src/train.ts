/**
 * The one training loop, for both models: truncated backprop through `numSteps` characters,
 * mean cross-entropy, gradients clipped by their global norm, then one optimizer step.
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName, TrainConfig } from './config';
import { makeBatches, type Batch } from './data/batches';
import type { Corpus } from './data/corpus';
import { generateText } from './generate';
import type { LanguageModel, LstmState } from './models';
import { disposeState } from './models/types';
import { makeRng } from './random';

/** What one epoch did; a line of --metrics output. */
export interface EpochMetrics {
  readonly epoch: number;
  /** Mean cross-entropy per character over the epoch (nats). */
  readonly loss: number;
  /** exp(loss): the lesson's measure. 1 is perfect; the vocabulary size is a uniform guess. */
  readonly perplexity: number;
  /** Perplexity on the held-out tail of the corpus (--val-chars), which training never sees. */
  readonly heldOutPerplexity?: number;
  readonly seconds: number;
  readonly charsPerSecond: number;
  /** Mean over the epoch's batches of the global gradient norm, before clipping. */
  readonly gradNorm: number;
  readonly lr: number;
  /** tf.memory().numTensors after the epoch: flat from epoch to epoch, or something leaks. */
  readonly numTensors: number;
}

/** A report: the epoch's metrics and a greedy line for each prefix. */
export interface Report {
  readonly metrics: EpochMetrics;
  readonly samples: readonly string[];
}

/**
 * Where training stands, mid-epoch included: enough to continue exactly where it stopped.
 * `state` (the LSTM state carried by consecutive sampling) is owned by the position.
 */
export interface TrainPosition {
  /** The epoch in progress, from 1. */
  readonly epoch: number;
  /** Batches of that epoch already trained. */
  readonly batch: number;
  /** Over those batches: summed loss and summed gradient norm, and seconds spent. */
  readonly lossSum: number;
  readonly normSum: number;
  readonly seconds: number;
  readonly state: LstmState | null;
}

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

/** ε = 1e-8 as in torch.optim.Adam (TF.js defaults to 1e-7). With gradients clipped to a norm of
 * 0.01, per-weight gradients are ~1e-5 and ε is not negligible: at 1e-7 the builtin LSTM's
 * perplexity at epoch 12 was 165, at 1e-8 it was 66 (bundled corpus, seed 1). */
export const ADAM_EPSILON = 1e-8;

export function makeOptimizer(name: OptimizerName, lr: number): tf.Optimizer {
  return name === 'sgd' ? tf.train.sgd(lr) : tf.train.adam(lr, 0.9, 0.999, ADAM_EPSILON);
}

/**
 * The middle value, the upper one of an even count: the rule of the lesson's reference script
 * (sorted[n // 2]), so our "median seconds per epoch" compares like for like with its own.
 */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
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
  for (let epoch = from?.epoch ?? 1; epoch <= config.epochs; epoch++) {
    const resuming = from !== undefined && epoch === from.epoch;
    const start = performance.now() - (resuming ? from.seconds * 1000 : 0);
    const batches = makeBatches(config.sampling, corpus.ids, config.batchSize, config.numSteps, epochRng(config.seed, epoch));
    // [sum of batch losses, sum of grad norms], kept in a tensor so nothing is read back per batch.
    const totals = tf.tidy(() => tf.variable(tf.tensor1d(resuming ? [from.lossSum, from.normSum] : [0, 0]), false));
    let state = (resuming && from.state) || model.zeroState(config.batchSize);
    let done = resuming ? from.batch : 0;
    let stopped = false;
    for (const batch of batches.slice(done)) {
      if (config.sampling === 'random' && done > 0) {
        disposeState(state);
        state = model.zeroState(config.batchSize);
      }
      const next = trainStep(model, optimizer, batch, state, config.clip, totals);
      disposeState(state);
      state = next;
      done++;
      hooks.onBatch?.(epoch, done, batches.length);
      // Training is synchronous tensor work; this lets signal handlers (SIGINT) run between batches.
      await new Promise((resolve) => setImmediate(resolve));
      if (hooks.shouldStop?.() && done < batches.length) {
        stopped = true;
        break;
      }
    }
    const [lossSum, normSum] = Array.from(totals.dataSync()); // the epoch's one read back to JS
    totals.dispose();
    const seconds = (performance.now() - start) / 1000;
    if (stopped) return { history, stoppedAt: { epoch, batch: done, lossSum, normSum, seconds, state } };
    disposeState(state);

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
    if (epoch % config.reportEvery === 0 || epoch === config.epochs) {
      const samples = config.prefixes.map((prefix) => generateText(model, corpus.vocab, prefix, config.predLen));
      await hooks.onReport?.({ metrics, samples });
    }
  }
  return { history };
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
  state: LstmState,
  clip: number,
  totals: tf.Variable,
): LstmState {
  let next: LstmState | undefined;
  tf.tidy(() => {
    const x = tf.tensor2d(batch.x, [batch.batchSize, batch.numSteps], 'int32');
    const y = tf.tensor2d(batch.y, [batch.batchSize, batch.numSteps], 'int32');
    const { value: loss, grads } = tf.variableGrads(() => {
      const out = model.forward(x, state);
      next = { h: tf.keep(out.state.h), c: tf.keep(out.state.c) };
      return crossEntropy(out.logits, y);
    }, model.variables as tf.Variable[]);
    const names = Object.keys(grads);
    const { clipped, norm } = clipByGlobalNorm(names.map((n) => grads[n]), clip);
    optimizer.applyGradients(Object.fromEntries(names.map((n, i) => [n, clipped[i]])));
    totals.assign(totals.add(tf.stack([loss, norm])));
  });
  return next!;
}

/**
 * Mean cross-entropy of next-character logits [..., vocab] against int32 targets [...].
 * Written with its own gradient, (softmax - onehot) / N, so the softmax computed for the loss is
 * reused in backprop: tf.losses.softmaxCrossEntropy exponentiates the [N, vocab] logits three
 * times per batch, and on wasm that alone cost a tenth of an epoch.
 */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const vocabSize = logits.shape[logits.shape.length - 1];
  const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [flatLogits, oneHot, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const shifted = flatLogits.sub(flatLogits.max(1, true)); // stable: largest logit is 0
    const exps = shifted.exp();
    const sums = exps.sum(1, true);
    const probs = exps.div(sums);
    save([probs, oneHot]);
    const targetLogProbs = shifted.mul(oneHot).sum(1, true).sub(sums.log());
    return {
      value: targetLogProbs.mean().neg() as tf.Scalar,
      gradFunc: (dy: tf.Tensor, [p, y]: tf.Tensor[]) => [p.sub(y).mul(dy.div(p.shape[0])), tf.zerosLike(y)],
    };
  });
  return tf.tidy(() => loss(logits.reshape([-1, vocabSize]), tf.oneHot(targets.reshape([-1]), vocabSize).toFloat()));
}

/**
 * Rescales `grads` so their joint L2 norm is at most `maxNorm` (the lesson's grad_clipping).
 * Stays in tensors, so it costs no read back to JS. Returns the norm before clipping.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { clipped: tf.Tensor[]; norm: tf.Scalar } {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
    const scale = tf.minimum(1, tf.div(maxNorm, norm));
    return { clipped: grads.map((g) => tf.mul(g, scale)), norm };
  });
}
