/**
 * Adam's update in one kernel call a weight, where tf.train.adam runs 14 kernels over each weight
 * (8.7 ms a batch for the builtin LSTM's 1.6M weights on wasm; 1.9 ms this way).
 *
 * It attaches from outside: tf.AdamOptimizer.prototype.applyGradients is wrapped, so every
 * tf.train.adam (the same class, slots, getWeights/setWeights, so checkpoints and resume are
 * unchanged) runs one ADAM_UPDATE_KERNEL call per variable on a backend that registers that kernel
 * (./wasm-kernels-simd.ts does, for wasm), and tf.train.adam's own code everywhere else. The kernel
 * does the same float operations in the same order: the same bits.
 *
 * Relies on tfjs-core 4.22's AdamOptimizer fields (accBeta1, accBeta2, accumulatedFirstMoment,
 * accumulatedSecondMoment; see ./versions.ts).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The kernel: inputs gradient, m, v, value (float32, one shape); attrs: AdamUpdateAttrs; outputs:
 * the new m, v and value, the same floats tf.train.adam computes, to the bit.
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

/** AdamOptimizer's state, private in its typings; kept exactly as it keeps it. */
interface AdamState {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly learningRate: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  incrementIterations(): void;
}

type VariableGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

/** Wraps tf.AdamOptimizer.prototype.applyGradients (see above); returns the function that puts it back. */
export function installOnePassAdam(): () => void {
  const prototype = tf.AdamOptimizer.prototype;
  const original = prototype.applyGradients;
  prototype.applyGradients = function (this: tf.AdamOptimizer, variableGradients: VariableGradients): void {
    if (!applyInOnePass(this as unknown as AdamState, variableGradients)) original.call(this, variableGradients);
  };
  return () => {
    prototype.applyGradients = original;
  };
}

/** The update with ADAM_UPDATE_KERNEL; false (nothing done) where the backend has no such kernel or a gradient does not fit it. */
function applyInOnePass(adam: AdamState, variableGradients: VariableGradients): boolean {
  if (!tf.getKernel(ADAM_UPDATE_KERNEL, tf.getBackend())) return false;
  const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
  const gradientOf = (name: string, i: number): tf.Tensor | undefined =>
    (Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name]) ?? undefined;
  // The kernel takes float32 gradients shaped as their variables; tf.train.adam also broadcasts.
  const fits = names.every((name, i) => {
    const [gradient, value] = [gradientOf(name, i), tf.engine().registeredVariables[name]];
    return !gradient || (gradient.dtype === 'float32' && value.dtype === 'float32' && tf.util.arraysEqual(gradient.shape, value.shape));
  });
  if (!fits) return false;
  // What tf.train.adam computes as float32 tensors, as float32 numbers (one read of two scalars).
  const f = Math.fround;
  const attrs: AdamUpdateAttrs = {
    beta1: f(adam.beta1),
    oneMinusBeta1: f(1 - adam.beta1),
    beta2: f(adam.beta2),
    oneMinusBeta2: f(1 - adam.beta2),
    oneMinusAccBeta1: f(1 - adam.accBeta1.dataSync()[0]),
    oneMinusAccBeta2: f(1 - adam.accBeta2.dataSync()[0]),
    epsilon: f(adam.epsilon),
    negLearningRate: f(-adam.learningRate),
  };
  tf.tidy(() => {
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name];
      // Slots made as tf.train.adam makes them, so its getWeights/setWeights read them.
      adam.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      adam.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      const gradient = gradientOf(name, i);
      if (!gradient) return;
      const m = adam.accumulatedFirstMoment[i].variable;
      const v = adam.accumulatedSecondMoment[i].variable;
      const [newM, newV, newValue] = tf
        .engine()
        .runKernel(ADAM_UPDATE_KERNEL, { gradient, m, v, value }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      m.assign(newM);
      v.assign(newV);
      value.assign(newValue);
    });
    adam.accBeta1.assign(tf.mul(adam.accBeta1, adam.beta1));
    adam.accBeta2.assign(tf.mul(adam.accBeta2, adam.beta2));
  });
  adam.incrementIterations();
  return true;
}
