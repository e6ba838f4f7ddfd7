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

export interface TrainHooks {
  /** After every epoch. */
  onEpoch?(metrics: EpochMetrics): void | Promise<void>;
  /** Every `reportEvery` epochs and after the last. */
  onReport?(report: Report): void | Promise<void>;
  /** Polled after every batch; true ends training after that batch (e.g. on SIGINT). */
  shouldStop?(): boolean;
}

export interface TrainResult {
  readonly history: readonly EpochMetrics[];
  /** True when shouldStop ended training early. */
  readonly stopped: boolean;
}

export class DivergedError extends Error {
  override readonly name = 'DivergedError';
}

export function makeOptimizer(name: OptimizerName, lr: number): tf.Optimizer {
  return name === 'sgd' ? tf.train.sgd(lr) : tf.train.adam(lr);
}

export async function train(
  model: LanguageModel,
  corpus: Corpus,
  config: TrainConfig,
  hooks: TrainHooks = {},
  optimizer: tf.Optimizer = makeOptimizer(config.optimizer, config.lr),
  firstEpoch = 1,
): Promise<TrainResult> {
  const rng = makeRng(config.seed);
  const history: EpochMetrics[] = [];
  for (let epoch = firstEpoch; epoch <= config.epochs; epoch++) {
    const start = performance.now();
    const batches = makeBatches(config.sampling, corpus.ids, config.batchSize, config.numSteps, rng);
    const totals = tf.tidy(() => tf.variable(tf.zeros([2]), false)); // [sum of batch losses, sum of grad norms]
    let state = model.zeroState(config.batchSize);
    let done = 0;
    try {
      for (const batch of batches) {
        if (config.sampling === 'random' && done > 0) {
          disposeState(state);
          state = model.zeroState(config.batchSize);
        }
        const next = trainStep(model, optimizer, batch, state, config.clip, totals);
        disposeState(state);
        state = next;
        done++;
        if (hooks.shouldStop?.()) break;
      }
    } finally {
      disposeState(state);
    }
    const [lossSum, normSum] = Array.from(totals.dataSync()); // the epoch's one read back to JS
    totals.dispose();
    const seconds = (performance.now() - start) / 1000;
    const loss = lossSum / done;
    if (!Number.isFinite(loss)) {
      throw new DivergedError(`loss became ${loss} in epoch ${epoch}; try a smaller --lr or --clip`);
    }
    const metrics: EpochMetrics = {
      epoch,
      loss,
      perplexity: Math.exp(loss),
      seconds,
      charsPerSecond: (done * config.batchSize * config.numSteps) / seconds,
      gradNorm: normSum / done,
      lr: config.lr,
      numTensors: tf.memory().numTensors,
    };
    history.push(metrics);
    await hooks.onEpoch?.(metrics);
    const stopped = done < batches.length;
    if (epoch % config.reportEvery === 0 || epoch === config.epochs || stopped) {
      const samples = config.prefixes.map((prefix) => generateText(model, corpus.vocab, prefix, config.predLen));
      await hooks.onReport?.({ metrics, samples });
    }
    if (stopped) return { history, stopped: true };
  }
  return { history, stopped: false };
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
