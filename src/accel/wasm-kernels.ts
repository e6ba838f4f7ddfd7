/**
 * Faster kernels for @tensorflow/tfjs-backend-wasm 4.22.0, the same math (see README.md here).
 *
 * 1. BatchMatMul and _FusedMatMul with transposeA/transposeB are 10-40x slower than without: the
 *    wasm library takes a slow path for a transposed operand. Backprop asks for exactly those
 *    (the gradient of a·b is dy·bᵀ and aᵀ·dy), so each training step paid for it. Transposing the
 *    operand first (one copy) and multiplying without flags is far faster. A recurrent net's backprop
 *    transposes the same weight once per time step, so large transposed copies are cached (see
 *    held-data.ts for why that is safe).
 *    A weight's gradient xᵀ·dy is computed as (dyᵀ·x)ᵀ where dy is the wider operand, so the
 *    library packs x rather than a dy that is new every batch (see swappedProduct).
 * 2. A matmul whose left operand is one-hot (tf.layers.lstm on one-hot characters) is a row gather
 *    (a·b) or a row scatter-add (aᵀ·b) of the other operand: ~1000x less work than multiplying.
 * 3. Identity (tf.clone; backprop clones what it saves), Cast, Transpose, Slice, Unpack, SplitV and
 *    GatherV2 copy far more than they need, and each tensor saved for backprop was an Identity
 *    kernel call and a tape node: see wasm-kernels-fast.ts.
 * 4. Square (in the gradient of every tanh: 70 calls a batch) costs ~70 µs on a [32, 256] tensor
 *    with 2 threads (15 µs with 1), where Multiply(x, x), the same float products, costs ~10 µs.
 * 5. Exp, Sigmoid, Tanh and Sum over leading axes run one float at a time (Sum after a transposed
 *    copy), the gradients of Sigmoid and Tanh are three kernels each, Adam's update is 14 kernels a
 *    weight, and UnsortedSegmentSum's rows are added in JS: see wasm-kernels-simd.ts.
 * 6. A stacked layer multiplies layer 1's outputs, unstacked, by its input kernel one step at a
 *    time: stacked-inputs.ts makes that one product over all the steps.
 * 7. Generation's step for one character is 9-34 kernels, each costing more in bookkeeping than in
 *    arithmetic: CHAR_STEP_KERNEL does it all in one (char-step.ts), for the text sampler to call.
 * 8. The loss's softmax and its gradient are 5-7 kernels each over the [N, vocab] logits: one each
 *    in softmax.ts, for the loss to call.
 * 9. The library's matmul itself (XNNPACK) runs at ~60% of what a wasm thread can multiply: every
 *    flag-free float32 product below goes to our module where it runs (gemm.ts), the same bits.
 *
 * installWasmKernels() replaces the registered kernels (the wasm backend must be imported, which
 * registers them; before or after tf.setBackend('wasm') both work) and returns the function that
 * puts the library's back.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { charStepKernel } from './char-step';
import { dropAllPacked, dropStalePacked, moduleMultiplies, moduleProduct } from './gemm';
import { HeldData } from './held-data';
import { softmaxGradGradient, softmaxGradKernel, softmaxKernel } from './softmax';
import { isOneMatrix, type MatMulAttrs, plainMatrices } from './matmul-operands';
import { dropAllStacked, dropStaleStacked, recordingUnpack, stackedProduct } from './stacked-inputs';
import { inputsMovedIn, unsortedSegmentSumKernel } from './wasm-missing-kernels';
import { cloneSavedTensorsDirectly, FAST_COPY_KERNELS } from './wasm-kernels-fast';
import {
  activationGradKernel,
  adamUpdateKernel,
  hotColumnFinder,
  registerActivationGradients,
  rowAdder,
  SIMD_KERNELS,
  simdCast,
} from './wasm-kernels-simd';

const BACKEND = 'wasm';

/** Whether the wasm backend's kernels are registered (its package imported). */
export function wasmKernelsRegistered(): boolean {
  return tf.getKernel(tf.BatchMatMul, BACKEND) !== undefined;
}

export function installWasmKernels(): () => void {
  const undo: (() => void)[] = [];
  const transpose = requireKernel(tf.Transpose).kernelFunc;
  const multiply = requireKernel(tf.Multiply).kernelFunc;
  const patches: Record<string, (original: tf.KernelFunc) => tf.KernelFunc> = {
    [tf.BatchMatMul]: (matMul) => fastMatMul(matMul, transpose),
    [tf._FusedMatMul]: (matMul) => fastMatMul(matMul, transpose),
    ...FAST_COPY_KERNELS,
    [tf.Unpack]: (unpack) => recordingUnpack(FAST_COPY_KERNELS[tf.Unpack](unpack)),
    ...SIMD_KERNELS,
    [tf.Cast]: (cast) => simdCast(FAST_COPY_KERNELS[tf.Cast](cast)),
    [tf.Square]: (square) => (args) =>
      args.inputs.x!.dtype === 'float32' ? multiply({ ...args, inputs: { a: args.inputs.x!, b: args.inputs.x! } }) : square(args),
    [tf.UnsortedSegmentSum]: () => unsortedSegmentSumKernel(rowAdder),
  };
  for (const [name, make] of Object.entries(patches)) undo.push(patchKernel(name, make));
  for (const config of [adamUpdateKernel, activationGradKernel, charStepKernel, softmaxKernel, softmaxGradKernel]) {
    tf.registerKernel({ ...config, kernelFunc: inputsMovedIn(config.kernelFunc) });
    undo.push(() => tf.unregisterKernel(config.kernelName, BACKEND));
  }
  // Gradients are registered for every backend and cannot be taken out again: this one stays,
  // harmless, as its kernel does not exist without the speed-ups.
  if (!tf.getGradient(softmaxGradGradient.kernelName)) tf.registerGradient(softmaxGradGradient);
  undo.push(cloneSavedTensorsDirectly(), registerActivationGradients(), () => {
    const wasm = tf.findBackend(BACKEND) as BackendWasm | null;
    if (!wasm) return;
    transposes.dropAll(wasm);
    dropAllStacked(wasm);
    dropAllPacked(wasm);
  });
  return () => undo.reverse().forEach((f) => f());
}

function requireKernel(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, BACKEND);
  if (!config) throw new Error(`wasm kernel '${name}' is not registered: import '@tensorflow/tfjs-backend-wasm' first`);
  return config;
}

/** Replaces a kernel by make(its kernelFunc); returns the function that puts the original back. */
function patchKernel(name: string, make: (original: tf.KernelFunc) => tf.KernelFunc): () => void {
  const original = requireKernel(name);
  // Keeps the original setupFunc: if the backend is initialised only after this call, that still
  // binds the wasm function the original kernelFunc calls.
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel({ ...original, kernelFunc: inputsMovedIn(make(original.kernelFunc)) });
  return () => {
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel(original);
  };
}

/** Wraps a (fused) matmul kernel: one-hot fast path, and the wasm library never sees a transpose flag. */
function fastMatMul(libraryMatMul: tf.KernelFunc, transpose: tf.KernelFunc): tf.KernelFunc {
  // Every flag-free product below, in our module where it is faster (gemm.ts).
  const matMul: tf.KernelFunc = (args) =>
    moduleProduct(args.inputs, args.attrs as unknown as MatMulAttrs, args.backend as BackendWasm) ?? libraryMatMul(args);
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const { transposeA, transposeB } = attrs as unknown as MatMulAttrs;
    transposes.dropStale(wasm);
    dropStaleStacked(wasm);
    dropStalePacked(wasm);
    const temporaries: tf.TensorInfo[] = [];
    const untransposed = (x: tf.TensorInfo) => transposedOperand(x, wasm, transpose, temporaries);
    try {
      const product = oneHotProduct(inputs, attrs as unknown as MatMulAttrs, wasm, untransposed);
      if (product) return product;
      if (!transposeA && !transposeB)
        return stackedProduct(inputs, attrs as unknown as MatMulAttrs, wasm, matMul) ?? matMul({ inputs, backend, attrs });
      // Our module packs its right operand with one sequential copy, cheaper than the swap's two
      // transposes: the swap is for the library's products.
      const swapped = moduleMultiplies(wasm)
        ? undefined
        : swappedProduct(inputs, attrs as unknown as MatMulAttrs, wasm, matMul, transpose, temporaries);
      if (swapped) return swapped;
      return matMul({
        // Spread keeps _FusedMatMul's bias and preluActivationWeights.
        inputs: { ...inputs, a: transposeA ? untransposed(inputs.a!) : inputs.a, b: transposeB ? untransposed(inputs.b!) : inputs.b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temporaries) wasm.disposeData(t.dataId);
    }
  };
}

// ---- aᵀ·b as (bᵀ·a)ᵀ ---------------------------------------------------------------------------

/** Below this many elements in b, packing it costs less than the two transposes. */
const SWAP_MIN_ELEMENTS = 65536;

/**
 * aᵀ·b for a [K, M] and b [K, N] with N > M (a weight's gradient, xᵀ·dy, where dy is wider than
 * x: the output layer's [1120, 256]ᵀ·[1120, 1027], a gate matrix's [1120, 256]ᵀ·[1120, 1024]), as
 * the transpose of bᵀ·a. The library packs its right operand before multiplying, and caches that
 * per tensor, which pays off for a weight used again; a gradient's dy is new every batch, and
 * packing a [1120, 1027] one (transposed, for the flag-free path) took ~6 of a ~16 ms product.
 * Here the right operand is a, the narrower one, and the two transposes are plain copies. Each
 * output is the same dot product over K in the same order whichever operand is packed (products
 * commute), so the same bits (tested). Undefined where this does not apply.
 */
function swappedProduct(
  inputs: tf.NamedTensorInfoMap,
  attrs: MatMulAttrs,
  wasm: BackendWasm,
  matMul: tf.KernelFunc,
  transpose: tf.KernelFunc,
  temporaries: tf.TensorInfo[],
): tf.TensorInfo | undefined {
  const plain = attrs.transposeA && !attrs.transposeB ? plainMatrices(inputs, attrs) : undefined;
  if (!plain) return undefined;
  const { a, b } = plain;
  const [k, m] = a.shape.slice(-2);
  const [kb, n] = b.shape.slice(-2);
  if (k !== kb || n <= m || k * n < SWAP_MIN_ELEMENTS) return undefined;
  const flip = (x: tf.TensorInfo, rows: number, cols: number) => {
    const t = transpose({ inputs: { x: { ...x, shape: [rows, cols] } }, backend: wasm, attrs: { perm: [1, 0] } }) as tf.TensorInfo;
    temporaries.push(t);
    return t;
  };
  const productT = matMul({
    inputs: { a: flip(b, k, n), b: { ...a, shape: [k, m] } },
    backend: wasm,
    attrs: { ...attrs, transposeA: false, transposeB: false },
  }) as tf.TensorInfo;
  temporaries.push(productT);
  const product = transpose({ inputs: { x: productT }, backend: wasm, attrs: { perm: [1, 0] } }) as tf.TensorInfo;
  const batch = a.shape.length >= b.shape.length ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  return { ...product, shape: [...batch, m, n] };
}

// ---- Cache of transposed operands ----------------------------------------------------------------

/** Smaller operands transpose in microseconds: caching them would only churn the cache. */
const CACHE_MIN_ELEMENTS = 65536;
/** Enough for an LSTM's weights in one backward pass plus a few one-off activations; at least 2,
 *  as one call may use two cached copies. */
const transposes = new HeldData(4);

/**
 * x with its last two axes swapped, as backend data: a temporary (freed by the caller) or a copy
 * held (held-data.ts: freed on eviction, or once x's data is gone; see there why it may be reused).
 * A recurrent net's backprop multiplies by the same weight's transpose at every time step: the
 * copy of the weight that backprop saves at each step shares its data (Identity patched), so it
 * hits here.
 */
function transposedOperand(x: tf.TensorInfo, wasm: BackendWasm, transpose: tf.KernelFunc, temporaries: tf.TensorInfo[]): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  const held = tf.util.sizeFromShape(x.shape) >= CACHE_MIN_ELEMENTS;
  const key = `${x.shape[rank - 2]}x${x.shape[rank - 1]}`;
  const hit = held ? transposes.find(wasm, [x.dataId], key) : undefined;
  if (hit) return { ...hit, shape: perm.map((i) => x.shape[i]) }; // the same data, seen with x's batch dims
  // Straight to the kernel, not tf.transpose: no engine tensor, nothing recorded on the gradient tape.
  const xT = transpose({ inputs: { x }, backend: wasm, attrs: { perm } }) as tf.TensorInfo;
  if (held) transposes.hold(wasm, [x.dataId], key, xT);
  else temporaries.push(xT);
  return xT;
}

// ---- One-hot left operand ------------------------------------------------------------------------

/** Below this many output columns the scan of `a` would cost about as much as the matmul. */
const ONE_HOT_MIN_COLUMNS = 8;

/**
 * a·b (or aᵀ·b) when every row of the stored `a` holds at most one 1 and zeros elsewhere: row r of
 * a·b is row hot[r] of b, and aᵀ·b adds row r of b into row hot[r]. The same numbers as a matmul
 * (up to summation order) except that a NaN or ±Infinity in a row of b no row picks is not spread
 * by 0·x as a matmul would.
 * Undefined (so: the general path) for anything else, including batches of matrices, fused
 * activations and biases the wasm kernel would not take.
 */
function oneHotProduct(
  inputs: tf.NamedTensorInfoMap,
  { transposeA, transposeB, activation }: MatMulAttrs,
  wasm: BackendWasm,
  untransposed: (x: tf.TensorInfo) => tf.TensorInfo,
): tf.TensorInfo | undefined {
  const { a, b, bias, preluActivationWeights } = inputs;
  if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32' || !isOneMatrix(a.shape) || !isOneMatrix(b.shape)) return undefined;
  if ((activation ?? 'linear') !== 'linear' || preluActivationWeights) return undefined;
  const [rows, cols] = a.shape.slice(-2);
  const [k, n] = transposeB ? b.shape.slice(-2).reverse() : b.shape.slice(-2);
  if (k !== (transposeA ? rows : cols) || n < ONE_HOT_MIN_COLUMNS) return undefined; // a mismatch is the library's to report
  if (bias && (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== n)) return undefined;
  const hot = hotColumns(wasm, a, rows, cols);
  if (!hot) return undefined;

  const bRows = transposeB ? untransposed(b) : b; // [k, n]
  const m = transposeA ? cols : rows;
  const batchDims = new Array<number>(Math.max(a.shape.length, b.shape.length) - 2).fill(1);
  const out = wasm.makeOutput([...batchDims, m, n], 'float32');
  // Views only now: makeOutput may grow wasm memory, which detaches views taken before.
  const outValues = wasm.typedArrayFromHeap(out) as Float32Array;
  const bValues = wasm.typedArrayFromHeap(bRows) as Float32Array;
  if (transposeA) {
    outValues.fill(0); // malloc'd heap memory is not zeroed
    const addRow = rowAdder(wasm, bRows, out, n);
    for (let r = 0; r < rows; r++) if (hot[r] >= 0) addRow(r, hot[r]);
  } else {
    for (let r = 0; r < rows; r++) {
      if (hot[r] < 0) outValues.fill(0, r * n, (r + 1) * n);
      else outValues.set(bValues.subarray(hot[r] * n, (hot[r] + 1) * n), r * n);
    }
  }
  if (bias) {
    const biasValues = wasm.typedArrayFromHeap(bias) as Float32Array;
    for (let i = 0; i < m * n; i++) outValues[i] += biasValues[i % n];
  }
  return out;
}

/**
 * For each row of a row-major [rows, cols] matrix, the column of its 1 (-1 for a row of zeros);
 * undefined at the first value other than 0 and 1 or a second 1 in a row. A dense matrix so
 * costs a few reads; a one-hot one a single pass, a fraction 1/n of the matmul it replaces (four
 * floats at a time with the SIMD module's hot_column, where it runs).
 */
function hotColumns(wasm: BackendWasm, a: tf.TensorInfo, rows: number, cols: number): Int32Array | undefined {
  const hot = new Int32Array(rows).fill(-1);
  const inRow = hotColumnFinder(wasm, a, cols);
  if (inRow) {
    for (let r = 0; r < rows; r++) {
      hot[r] = inRow(r);
      if (hot[r] === -2) return undefined;
    }
    return hot;
  }
  const values = wasm.typedArrayFromHeap(a) as Float32Array;
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, i++) {
      const v = values[i];
      if (v === 0) continue;
      if (v !== 1 || hot[r] >= 0) return undefined;
      hot[r] = c;
    }
  }
  return hot;
}
