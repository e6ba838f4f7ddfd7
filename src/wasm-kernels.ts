/**
 * Patches to the kernels of @tensorflow/tfjs-backend-wasm 4.22.0 that training needs.
 *
 * 1. BatchMatMul and _FusedMatMul with transposeA/transposeB are 10-40x slower than without: the
 *    wasm library takes a slow path for a transposed operand. Backprop asks for exactly those
 *    (the gradient of a·b is dy·bᵀ and aᵀ·dy), so each training step paid for it. Transposing the
 *    operand first (one cheap copy) and multiplying without flags is far faster.
 * 2. UnsortedSegmentSum has no wasm kernel, and the gradient of tf.gather (embedding lookups) is
 *    built on it, so training with a gather failed on wasm.
 *
 * Call registerWasmKernelFixes() once the wasm backend is registered (import
 * '@tensorflow/tfjs-backend-wasm'); before or after tf.setBackend('wasm') both work.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

const BACKEND = 'wasm';

/** Marks our replacements on the kernel configs themselves (not in a module variable), so a second
 *  call is a no-op even if this module is loaded twice (e.g. from src and from dist). */
const PATCHED = Symbol.for('lstm-lyrics.wasm-kernel-fix');
type MarkedKernelFunc = tf.KernelFunc & { [PATCHED]?: true };

export function registerWasmKernelFixes(): void {
  const transpose = requireKernel(tf.Transpose).kernelFunc;
  for (const name of [tf.BatchMatMul, tf._FusedMatMul]) {
    const original = requireKernel(name);
    if ((original.kernelFunc as MarkedKernelFunc)[PATCHED]) continue;
    replaceKernel({ ...original, kernelFunc: untransposedMatMul(original.kernelFunc, transpose) });
  }
  if (!tf.getKernel(tf.UnsortedSegmentSum, BACKEND)) {
    tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: BACKEND, kernelFunc: unsortedSegmentSum });
  }
}

function requireKernel(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, BACKEND);
  if (!config) throw new Error(`wasm kernel '${name}' is not registered: import '@tensorflow/tfjs-backend-wasm' first`);
  return config;
}

function replaceKernel(config: tf.KernelConfig): void {
  // config keeps the original setupFunc: if the backend is initialised only after this call,
  // that still binds the wasm function the original kernelFunc calls.
  tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

/** Wraps a (fused) matmul kernel so the wasm library never sees a transpose flag. */
function untransposedMatMul(matMul: tf.KernelFunc, transpose: tf.KernelFunc): tf.KernelFunc {
  const wrapped: MarkedKernelFunc = ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
    if (!transposeA && !transposeB) return matMul({ inputs, backend, attrs });
    const temporaries: tf.TensorInfo[] = [];
    const swapLastTwoAxes = (x: tf.TensorInfo): tf.TensorInfo => {
      const perm = x.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      // Straight to the kernel, not tf.transpose: no engine tensor, nothing recorded on the
      // gradient tape; we free its backend data ourselves below.
      const xT = transpose({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
      temporaries.push(xT);
      return xT;
    };
    try {
      return matMul({
        // Spread keeps _FusedMatMul's bias and preluActivationWeights.
        inputs: { ...inputs, a: transposeA ? swapLastTwoAxes(inputs.a!) : inputs.a, b: transposeB ? swapLastTwoAxes(inputs.b!) : inputs.b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temporaries) (backend as BackendWasm).disposeData(t.dataId);
    }
  };
  wrapped[PATCHED] = true;
  return wrapped;
}

/** out[segmentIds[i]] += x[i], like tfjs-backend-cpu; ids outside [0, numSegments) are dropped. */
function unsortedSegmentSum({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32, not ${x.dtype}`);
  }
  const rows = x.shape[0];
  if (x.shape.length < 1 || tf.util.sizeFromShape(segmentIds.shape) !== rows) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be [x.shape[0]] for x [${x.shape}]`);
  }
  const rowShape = x.shape.slice(1);
  const rowSize = tf.util.sizeFromShape(rowShape);
  const out = wasm.makeOutput([numSegments, ...rowShape], x.dtype);
  // Heap views only after makeOutput: its malloc may grow wasm memory, which detaches older views.
  const outValues = wasm.typedArrayFromHeap(out);
  const xValues = wasm.typedArrayFromHeap(x);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  outValues.fill(0); // malloc'd heap memory is not zeroed
  for (let i = 0; i < rows; i++) {
    const id = ids[i];
    if (id < 0 || id >= numSegments) continue;
    const src = i * rowSize;
    const dst = id * rowSize;
    for (let j = 0; j < rowSize; j++) outValues[dst + j] += xValues[src + j];
  }
  return out;
}
