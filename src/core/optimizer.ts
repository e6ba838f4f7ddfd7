/** The two optimizers of the lesson, made the same way wherever a run starts or resumes. */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from './config';

/** ε = 1e-8 as in torch.optim.Adam (TF.js defaults to 1e-7). With gradients clipped to a norm of
 * 0.01, per-weight gradients are ~1e-5 and ε is not negligible: at 1e-7 the builtin LSTM's
 * perplexity at epoch 12 was 165, at 1e-8 it was 66 (bundled corpus, seed 1). */
export const ADAM_EPSILON = 1e-8;

export function makeOptimizer(name: OptimizerName, lr: number): tf.Optimizer {
  return name === 'sgd' ? tf.train.sgd(lr) : new Adam(lr, 0.9, 0.999, ADAM_EPSILON);
}

/**
 * An optional kernel that does Adam's update of one variable in one pass, where tf.train.adam runs
 * 14 kernels over the whole variable. A backend may register it (src/backend/wasm-kernels-simd.ts
 * does, for wasm). Inputs: gradient, m, v, value (float32, one shape); attrs: AdamUpdateAttrs;
 * outputs: the new m, v and value, the same floats tf.train.adam computes, to the bit.
 */
export const ADAM_UPDATE_KERNEL = 'LstmLyricsAdamUpdate';

/** The update's scalars, each the float32 tf.train.adam's kernels use. */
export interface AdamUpdateAttrs {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** 1 - beta1^t and 1 - beta2^t: the bias corrections of step t. */
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
  epsilon: number;
  negLearningRate: number;
}

/** AdamOptimizer's state, private in its typings; kept exactly as it keeps it, so getWeights,
 *  setWeights (checkpoints) and dispose work unchanged. */
interface AdamState {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
}

/**
 * tf.train.adam (the same class, state and numbers), whose update runs as one ADAM_UPDATE_KERNEL
 * call per variable on a backend that has that kernel, and as tf.train.adam's own elsewhere.
 */
export class Adam extends tf.AdamOptimizer {
  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const gradientOf = (name: string, i: number): tf.Tensor | undefined =>
      (Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name]) ?? undefined;
    // The kernel takes float32 gradients shaped as their variables; tf.train.adam also broadcasts.
    const kernelFits = (): boolean =>
      names.every((name, i) => {
        const [gradient, value] = [gradientOf(name, i), tf.engine().registeredVariables[name]];
        return !gradient || (gradient.dtype === 'float32' && value.dtype === 'float32' && tf.util.arraysEqual(gradient.shape, value.shape));
      });
    if (!tf.getKernel(ADAM_UPDATE_KERNEL, tf.getBackend()) || !kernelFits()) {
      super.applyGradients(variableGradients);
      return;
    }
    const state = this as unknown as AdamState;
    // What tf.train.adam computes as float32 tensors, as float32 numbers (one read of two scalars).
    const f = Math.fround;
    const attrs: AdamUpdateAttrs = {
      beta1: f(this.beta1),
      oneMinusBeta1: f(1 - this.beta1),
      beta2: f(this.beta2),
      oneMinusBeta2: f(1 - this.beta2),
      oneMinusAccBeta1: f(1 - state.accBeta1.dataSync()[0]),
      oneMinusAccBeta2: f(1 - state.accBeta2.dataSync()[0]),
      epsilon: f(this.epsilon),
      negLearningRate: f(-this.learningRate),
    };
    tf.tidy(() => {
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        // Slots made as tf.train.adam makes them, so its getWeights/setWeights read them.
        state.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        state.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = gradientOf(name, i);
        if (!gradient) return;
        const m = state.accumulatedFirstMoment[i].variable;
        const v = state.accumulatedSecondMoment[i].variable;
        const inputs = { gradient, m, v, value };
        const [newM, newV, newValue] = tf.engine().runKernel(ADAM_UPDATE_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        m.assign(newM);
        v.assign(newV);
        value.assign(newValue);
      });
      state.accBeta1.assign(tf.mul(state.accBeta1, this.beta1));
      state.accBeta2.assign(tf.mul(state.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }
}
