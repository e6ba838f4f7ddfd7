/**
 * The one contract both LSTMs honour, so the trainer and the text sampler never know which one
 * they drive.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config';

/** Hidden and cell state of the LSTM, each [batch, hidden]. */
// A type, not an interface, so tf.tidy accepts it as a TensorContainer.
export type LstmState = {
  readonly h: tf.Tensor2D;
  readonly c: tf.Tensor2D;
};

/** The files a model is saved as, by file name. */
export type ModelFiles = Record<string, Uint8Array>;

export interface LanguageModel {
  readonly config: ModelConfig;
  /** What the optimizer updates. */
  readonly variables: readonly tf.Variable[];
  /**
   * Runs the LSTM over `inputs` (int32 character ids, [batch, steps]) from `state`.
   * Returns next-character logits [batch, steps, vocab] and the state after the last step.
   */
  forward(inputs: tf.Tensor2D, state: LstmState): { logits: tf.Tensor3D; state: LstmState };
  /** The all-zero state a sequence starts from. */
  zeroState(batchSize: number): LstmState;
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
  step(ids: tf.Tensor1D, state: LstmState): { logits: tf.Tensor2D; state: LstmState };
  /** Frees what the stepper arranged (never the model's weights). */
  dispose(): void;
}

export function disposeState(state: LstmState): void {
  state.h.dispose();
  state.c.dispose();
}

/** The all-zero (h, c) that every sequence starts from. */
export function zeroState(batchSize: number, hidden: number): LstmState {
  return { h: tf.zeros([batchSize, hidden]), c: tf.zeros([batchSize, hidden]) };
}
