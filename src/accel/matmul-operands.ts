/**
 * How the matmul speed-ups (wasm-kernels.ts, stacked-inputs.ts, step-gradients.ts) read the inputs
 * and attributes of BatchMatMul and _FusedMatMul.
 */
import type * as tf from '@tensorflow/tfjs';

export type MatMulInputs = { a?: tf.TensorInfo; b?: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
export type MatMulAttrs = tf.BatchMatMulAttrs & Partial<Pick<tf._FusedMatMulAttrs, 'activation'>>;

/** Rank 2, or more with every leading axis 1: one matrix. */
export function isOneMatrix(shape: readonly number[]): boolean {
  return shape.length >= 2 && shape.slice(0, -2).every((d) => d === 1);
}

/**
 * a and b where the product is a plain one of two float32 matrices (isOneMatrix): no bias, no
 * prelu weights, a linear activation; undefined otherwise. Transposes are the caller's to check.
 */
export function plainMatrices(inputs: tf.NamedTensorInfoMap, attrs: MatMulAttrs): { a: tf.TensorInfo; b: tf.TensorInfo } | undefined {
  const { a, b, bias, preluActivationWeights } = inputs as MatMulInputs;
  if (!a || !b || bias || preluActivationWeights || (attrs.activation ?? 'linear') !== 'linear') return undefined;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || !isOneMatrix(a.shape) || !isOneMatrix(b.shape)) return undefined;
  return { a, b };
}
