/**
 * The one contract every model honours (each cell, each depth, scratch or builtin), so the
 * trainer and the text sampler never know which one they drive.
 */
import * as tf from '@tensorflow/tfjs';
import type { Cell, ModelConfig } from '../config';

/**
 * The recurrent state, each tensor [batch, hidden], layer by layer from the input up: per layer
 * H (RNN, GRU) or H then C (LSTM). One LSTM layer is [H, C], as the models saved before stacking
 * wrote it.
 */
// An array, not a class, so tf.tidy accepts it as a TensorContainer.
export type RecurrentState = tf.Tensor2D[];

/** Tensors of state per layer: the LSTM carries H and C, the others only H. */
export function stateTensorsPerLayer(cell: Cell): number {
  return cell === 'lstm' ? 2 : 1;
}

/** Tensors in a model's state (see RecurrentState). */
export function stateSize({ cell, layers }: Pick<ModelConfig, 'cell' | 'layers'>): number {
  return layers * stateTensorsPerLayer(cell);
}

/** Layer `layer`'s part of the state. */
export function layerState(state: RecurrentState, cell: Cell, layer: number): tf.Tensor2D[] {
  const k = stateTensorsPerLayer(cell);
  return state.slice(layer * k, (layer + 1) * k);
}

/** The files a model is saved as, by file name. */
export type ModelFiles = Record<string, Uint8Array>;

/** Given to forward() when training: dropout between layers is on, its masks drawn from `seed`. */
export interface Training {
  readonly seed: number;
}

export interface LanguageModel {
  readonly config: ModelConfig;
  /** What the optimizer updates. */
  readonly variables: readonly tf.Variable[];
  /**
   * Those of `variables` that stand for the sum of two parameters of the lesson's model whose
   * gradients are always equal (nn.RNN's b_ih + b_hh), trained as the two would be: their gradient
   * counts twice in the clipping norm, and they move twice as far as the optimizer says. None if absent.
   */
  readonly pairedBiases?: readonly tf.Variable[];
  /**
   * Runs the network over `inputs` (int32 character ids, [batch, steps]) from `state`.
   * Returns next-character logits [batch, steps, vocab] and the state after the last step.
   * With `training`, dropout (if the model has any) is applied between layers.
   */
  forward(inputs: tf.Tensor2D, state: RecurrentState, training?: Training): { logits: tf.Tensor3D; state: RecurrentState };
  /** The all-zero state a sequence starts from. */
  zeroState(batchSize: number): RecurrentState;
  /**
   * One character at a time, as generation runs: the weights arranged once (dispose it after),
   * each step a few kernels. Same numbers as forward() on a one-step sequence.
   */
  stepper(): CharStepper;
  /** The weights in this model's file format (see checkpoint-format.ts for the layout on disk). */
  toFiles(): Promise<ModelFiles>;
  dispose(): void;
}

/** See LanguageModel.stepper. Valid until the model's weights change. */
export interface CharStepper {
  /** `ids`: int32 [batch] character ids. Returns the next character's logits [batch, vocab] and the state after `ids`. */
  step(ids: tf.Tensor1D, state: RecurrentState): { logits: tf.Tensor2D; state: RecurrentState };
  /** step() as data (see StepPlan), for the text sampler's one-kernel step where a backend has one. */
  readonly plan?: StepPlan;
  /** Frees what the stepper arranged (never the model's weights). */
  dispose(): void;
}

export function disposeState(state: RecurrentState): void {
  tf.dispose(state);
}

/** The all-zero state that every sequence starts from. */
export function zeroState(config: Pick<ModelConfig, 'cell' | 'layers' | 'hidden'>, batchSize: number): RecurrentState {
  return Array.from({ length: stateSize(config) }, () => tf.zeros([batchSize, config.hidden]) as tf.Tensor2D);
}

/** Keeps every tensor of a state past the tf.tidy it was made in. */
export function keepState(state: RecurrentState): RecurrentState {
  return state.map((t) => tf.keep(t));
}

/**
 * A stepper's step() written down as data: the weights it multiplies, as it arranged them, and
 * where each bias is added, since a float sum's rounding depends on its order. With it the text
 * sampler can run the whole step as one kernel where a speed-up has registered one (see
 * generationStep in generate.ts): the same float operations in the same order, so the same logits to
 * the bit. The model itself never calls a kernel. Each layer computes, for batch 1 (`·` a matmul
 * whose products are added in order from 0; `+`, `⊙` element by element; gates in GATES' fused order):
 *
 *   X = row `id` of inputKernel (layer 1) or H_below · inputKernel (above), then + inputBias if given
 *   Z = X + H · recurrentKernel (the GRU: X's Z and R parts), then + gateBias if given
 *   RNN   H = tanh(Z)
 *   LSTM  I, F, C̃, O = σ, σ, tanh, σ of Z's four parts; C = F ⊙ C + I ⊙ C̃; H = O ⊙ tanh(C)
 *   GRU   Z, R = σ of Z's two parts; H̃ = tanh(X_h + (R ⊙ H) · candidateKernel); H = Z ⊙ H + (1 − Z) ⊙ H̃
 *
 * and the logits are H_top · outputKernel + outputBias, the products added from the bias when
 * outputBiasFirst (tf.fused.matMul), from 0 and the bias after otherwise.
 */
// Types, not interfaces, so tf.tidy accepts them as TensorContainers.
export type StepPlan = {
  readonly cell: Cell;
  readonly layers: readonly StepLayerPlan[];
  readonly outputKernel: tf.Tensor2D;
  readonly outputBias: tf.Tensor1D;
  readonly outputBiasFirst: boolean;
};

/** One layer of a StepPlan; see there. */
export type StepLayerPlan = {
  /** [inputs, gates·hidden] */
  readonly inputKernel: tf.Tensor2D;
  /** [gates·hidden] */
  readonly inputBias?: tf.Tensor1D;
  /** [hidden, gates·hidden]; the GRU's [hidden, 2·hidden] */
  readonly recurrentKernel: tf.Tensor2D;
  /** The GRU's [hidden, hidden] */
  readonly candidateKernel?: tf.Tensor2D;
  /** [gates·hidden] */
  readonly gateBias?: tf.Tensor1D;
};
