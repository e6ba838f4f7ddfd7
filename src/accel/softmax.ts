/**
 * The loss's two passes over the [N, vocab] logits as one kernel each (src/core/loss.ts calls them
 * where registered). Stock, the forward pass is Max, Sub, Exp, Sum and RealDiv over the whole
 * [1120, 1027] batch (plus a gather for the targets), each a kernel call that reads and writes
 * 4.6 MB; the gradient is OneHot, Cast, Sub and Multiply. Here the forward pass goes row by row in
 * our softmax module (wasm-softmax.wat: a row stays in the L1 cache from its max to its division)
 * and the gradient is one multiplication by the module's binary(), then one subtraction per row.
 *
 * Both give exactly the ops' floats: the same float operations in the same order (the module's
 * comment says which); test/softmax.test.ts checks it to the bit.
 *
 * Where the module cannot run, the same floats come from JS over the backend's memory, with the
 * registered Exp kernel for the exps.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BINARY_OP, heapOffset, type ModuleBuilds, moduleOn, simdKernels } from './wasm-kernels-simd';
import { SOFTMAX_MODULE_SHARED, SOFTMAX_MODULE_UNSHARED } from './wasm-softmax-binary';

/** The kernels' names; src/core/loss.ts calls them by these (test/softmax.test.ts checks they agree). */
export const SOFTMAX_KERNEL = 'LstmLyricsSoftmax';
export const SOFTMAX_GRAD_KERNEL = 'LstmLyricsSoftmaxGrad';

interface SoftmaxExports {
  softmax(logits: number, probs: number, ids: number, targetLogits: number, sums: number, rows: number, cols: number): void;
}

const SOFTMAX_BUILDS: ModuleBuilds = { shared: SOFTMAX_MODULE_SHARED, unshared: SOFTMAX_MODULE_UNSHARED };

/** The softmax module on `wasm`'s memory (it imports the SIMD module's exp), or undefined where it cannot run. */
function softmaxModule(wasm: BackendWasm): SoftmaxExports | undefined {
  const simd = simdKernels(wasm);
  return simd && moduleOn<SoftmaxExports>(wasm, SOFTMAX_BUILDS, { simd: { unary: simd.unary } });
}

/** logits [N, V] float32 and ids [N] int32, each id below V; throws otherwise (a target the loss cannot pick). */
function checkRows(name: string, x: tf.TensorInfo, ids: tf.TensorInfo, idValues: Int32Array): [number, number] {
  if (x.dtype !== 'float32' || x.shape.length !== 2 || ids.dtype !== 'int32' || ids.shape.length !== 1 || ids.shape[0] !== x.shape[0]) {
    throw new Error(`${name}: expected float32 [N, V] and int32 [N], got ${x.dtype} [${x.shape}] and ${ids.dtype} [${ids.shape}]`);
  }
  const [rows, cols] = x.shape;
  for (let r = 0; r < rows; r++) {
    if (!(idValues[r] >= 0 && idValues[r] < cols)) throw new Error(`${name}: target id ${idValues[r]} is not below ${cols}`);
  }
  return [rows, cols];
}

/**
 * SOFTMAX_KERNEL. Inputs: logits [N, V] float32, ids [N] int32. Outputs: the softmax of each row
 * [N, V], each row's sum of exp(x - max) [N, 1], and each row's target logit minus its max [N, 1].
 */
export const softmaxKernel: tf.KernelConfig = {
  kernelName: SOFTMAX_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => softmaxRows(backend as BackendWasm, inputs.logits!, inputs.ids!),
};

/** SOFTMAX_KERNEL's work; `module` false takes the JS path, as where the module cannot run (a test's switch). */
export function softmaxRows(wasm: BackendWasm, logits: tf.TensorInfo, ids: tf.TensorInfo, module = true): tf.TensorInfo[] {
  const idValues = wasm.typedArrayFromHeap(ids) as Int32Array;
  const [rows, cols] = checkRows(SOFTMAX_KERNEL, logits, ids, idValues);
  const probs = wasm.makeOutput([rows, cols], 'float32');
  const sums = wasm.makeOutput([rows, 1], 'float32');
  const targetLogits = wasm.makeOutput([rows, 1], 'float32');
  const softmax = module && rows * cols > 0 ? softmaxModule(wasm) : undefined;
  if (softmax) {
    const at = (t: tf.TensorInfo) => heapOffset(wasm, t);
    softmax.softmax(at(logits), at(probs), at(ids), at(targetLogits), at(sums), rows, cols);
    return [probs, sums, targetLogits];
  }
  // The same floats in JS: fround of a double +, - or / of two floats is the float operation's result.
  const x = wasm.typedArrayFromHeap(logits) as Float32Array;
  const p = wasm.typedArrayFromHeap(probs) as Float32Array;
  const s = wasm.typedArrayFromHeap(sums) as Float32Array;
  const picked = wasm.typedArrayFromHeap(targetLogits) as Float32Array;
  for (let r = 0, start = 0; r < rows; r++, start += cols) {
    let max = x[start];
    for (let j = start; j < start + cols; j++) if (x[j] > max || Number.isNaN(x[j])) max = x[j];
    for (let j = start; j < start + cols; j++) p[j] = x[j] - max;
    picked[r] = p[start + idValues[r]];
  }
  const exp = tf.getKernel(tf.Exp, 'wasm')!.kernelFunc({ inputs: { x: probs }, backend: wasm, attrs: {} }) as tf.TensorInfo;
  const e = wasm.typedArrayFromHeap(exp) as Float32Array;
  for (let r = 0, start = 0; r < rows; r++, start += cols) {
    let sum = 0;
    for (let j = start; j < start + cols; j++) sum = Math.fround(sum + e[j]);
    s[r] = sum;
    for (let j = start; j < start + cols; j++) p[j] = e[j] / sum;
  }
  wasm.disposeData(exp.dataId);
  return [probs, sums, targetLogits];
}

/** SOFTMAX_GRAD_KERNEL. Inputs: probs [N, V], ids [N] int32, scale [] float32. Output: (probs - onehot(ids)) · scale. */
export const softmaxGradKernel: tf.KernelConfig = {
  kernelName: SOFTMAX_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => softmaxGradientRows(backend as BackendWasm, inputs.probs!, inputs.ids!, inputs.scale!),
};

/** SOFTMAX_GRAD_KERNEL's work; `module` false takes the JS path, as where the module cannot run (a test's switch). */
export function softmaxGradientRows(
  wasm: BackendWasm,
  probs: tf.TensorInfo,
  ids: tf.TensorInfo,
  scale: tf.TensorInfo,
  module = true,
): tf.TensorInfo {
  const idValues = wasm.typedArrayFromHeap(ids) as Int32Array;
  const [rows, cols] = checkRows(SOFTMAX_GRAD_KERNEL, probs, ids, idValues);
  if (scale.dtype !== 'float32' || tf.util.sizeFromShape(scale.shape) !== 1)
    throw new Error(`${SOFTMAX_GRAD_KERNEL}: scale must be one float32`);
  const out = wasm.makeOutput([rows, cols], 'float32');
  const p = wasm.typedArrayFromHeap(probs) as Float32Array;
  const g = wasm.typedArrayFromHeap(out) as Float32Array;
  const s = (wasm.typedArrayFromHeap(scale) as Float32Array)[0];
  const simd = module && rows * cols > 0 ? simdKernels(wasm) : undefined;
  // p - 0 is p, so every entry but the targets is p · scale; a target's is (p - 1) · scale.
  if (simd) simd.binary(BINARY_OP.MUL, heapOffset(wasm, probs), heapOffset(wasm, scale), heapOffset(wasm, out), rows * cols, 1);
  else for (let i = 0; i < rows * cols; i++) g[i] = p[i] * s;
  for (let r = 0; r < rows; r++) {
    const i = r * cols + idValues[r];
    g[i] = Math.fround(p[i] - 1) * s;
  }
  return out;
}

/**
 * The gradient of SOFTMAX_GRAD_KERNEL, for a gradient of a gradient taken through the loss (which
 * tfjs-core's tape asks for only where probs or scale depend on what is differentiated; the stock
 * ops give the same): d/dprobs = dy · scale, d/dscale = Σ dy ⊙ (probs - onehot(ids)).
 */
export const softmaxGradGradient: tf.GradConfig = {
  kernelName: SOFTMAX_GRAD_KERNEL,
  inputsToSave: ['probs', 'ids', 'scale'],
  gradFunc: (dy, saved) => {
    const [probs, ids, scale] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Scalar];
    const d = dy as tf.Tensor;
    return {
      probs: () => d.mul(scale),
      ids: () => tf.zerosLike(ids),
      scale: () => d.mul(probs.sub(tf.oneHot(ids, probs.shape[1]).toFloat())).sum(),
    };
  },
};
