/**
 * A stacked layer's input products over all time steps in one matmul, for
 * @tensorflow/tfjs-backend-wasm 4.22.0 (installed by wasm-kernels.ts).
 *
 * tf.layers' RNN unstacks its input sequence [T, B, K] (tfjs-layers' rnn(): transpose, then
 * unstack) and its cell multiplies each step's slice x_t by the input kernel W: T products of
 * [B, K]·[K, N]. For layer 1 the slices are one-hot (a row gather, see wasm-kernels.ts); for layer
 * 2 they are layer 1's outputs, all known before the first step. Here Unpack records where each
 * output came from; the first product of such a slice by a large weight multiplies the whole
 * [T·B, K] input by it at once, and it and the later steps' products are copies of their rows.
 * Each row of a matmul is the same dot products, in the same order, whatever the number of rows
 * (the library's kernels tile rows and columns, never the sum), so the values are the per-step
 * products' to the bit (tested: test/wasm-kernels.test.ts). One call instead of T saves the
 * library's per-call cost, and on threads the per-call synchronisation.
 *
 * The product is held (held-data.ts) keyed by the input's and the weight's dataIds, and freed once
 * either is gone (checked before every lookup) or when pushed out by newer ones.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { HeldData } from './held-data';
import { type MatMulAttrs, plainMatrices } from './matmul-operands';

/** Smaller weights multiply in microseconds: not worth holding a product for. */
const MIN_WEIGHT_ELEMENTS = 65536;
/** Products held per backend, [T·B, N] each (one stacked layer at a time runs its steps). */
const products = new HeldData(2);

/** Each Unpack output along axis 0 (by its dataId): the input it is a slice of, and which. */
const unpackedFrom = new WeakMap<object, { source: tf.TensorInfo; index: number }>();

/** Wraps Unpack: records where each float32 output along axis 0 came from. */
export function recordingUnpack(unpack: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const outs = unpack(args) as tf.TensorInfo[];
    const value = args.inputs.value!;
    const axis = tf.util.parseAxisParam((args.attrs as unknown as tf.UnpackAttrs).axis, value.shape)[0];
    if (axis === 0 && value.dtype === 'float32' && value.shape.length >= 3) {
      const source = { dataId: value.dataId, shape: value.shape, dtype: value.dtype };
      outs.forEach((out, index) => unpackedFrom.set(out.dataId, { source, index }));
    }
    return outs;
  };
}

/**
 * a·b as rows of the whole unpacked input's product, when a is a slice Unpack recorded and b a
 * large weight (untransposed, no bias, linear); undefined otherwise (the caller multiplies). Call
 * dropStaleStacked first.
 */
export function stackedProduct(
  inputs: tf.NamedTensorInfoMap,
  attrs: MatMulAttrs,
  wasm: BackendWasm,
  matMul: tf.KernelFunc,
): tf.TensorInfo | undefined {
  const plain = attrs.transposeA || attrs.transposeB ? undefined : plainMatrices(inputs, attrs);
  if (!plain || tf.util.sizeFromShape(plain.b.shape) < MIN_WEIGHT_ELEMENTS) return undefined;
  const { a, b } = plain;
  const from = unpackedFrom.get(a.dataId);
  if (!from) return undefined;
  const [rows, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  const { source, index } = from;
  const steps = source.shape[0];
  // a must be the whole slice: [B, K] rows of the input, read the same way.
  if (k !== k2 || rows * k * steps !== tf.util.sizeFromShape(source.shape) || source.shape.at(-1) !== k) return undefined;
  // has(), not get(): get() of a missing dataId would pull it over from another backend.
  if (!wasm.dataIdMap.has(source.dataId)) return undefined;
  const sources = [source.dataId, b.dataId];
  const key = `${steps}x${rows}x${k}x${n}`;
  let product = products.find(wasm, sources, key);
  if (!product) {
    const whole = { dataId: source.dataId, shape: [1, steps * rows, k], dtype: source.dtype };
    product = matMul({
      inputs: { ...inputs, a: whole, b: { ...b, shape: [1, k, n] } },
      backend: wasm,
      attrs: attrs as unknown as tf.NamedAttrMap,
    }) as tf.TensorInfo;
    products.hold(wasm, sources, key, product);
  }
  const outShape = [...new Array(Math.max(a.shape.length, b.shape.length) - 2).fill(1), rows, n];
  const out = wasm.makeOutput(outShape, 'float32');
  // Views only now: makeOutput may grow wasm memory, which detaches views taken before.
  const all = wasm.typedArrayFromHeap(product) as Float32Array;
  (wasm.typedArrayFromHeap(out) as Float32Array).set(all.subarray(index * rows * n, (index + 1) * rows * n));
  return out;
}

/** Frees the products whose input or weight data was disposed (or moved to another backend); the
 *  caller calls it before every matmul. */
export function dropStaleStacked(wasm: BackendWasm): void {
  products.dropStale(wasm);
}

/** Frees every product held (when the speed-ups are removed). */
export function dropAllStacked(wasm: BackendWasm): void {
  products.dropAll(wasm);
}
