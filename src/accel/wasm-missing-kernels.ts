/**
 * A kernel that stock @tensorflow/tfjs-backend-wasm 4.22.0 lacks: UnsortedSegmentSum, on which
 * tfjs-core builds the gradient of tf.gather (the scratch models' input lookup). Without it,
 * training a scratch model on wasm fails. Not a speed-up: it is registered whatever --accel says,
 * wherever the wasm backend has no such kernel, with its rows added in plain JS; the speed-ups
 * (./wasm-kernels.ts) add them with the SIMD module instead, the same float additions.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** dst[dstRow] += src[srcRow], rows of `rowSize` values of two tensors on `wasm`. */
export type RowAdder = (
  wasm: BackendWasm,
  src: tf.TensorInfo,
  dst: tf.TensorInfo,
  rowSize: number,
) => (srcRow: number, dstRow: number) => void;

/** A RowAdder in plain JS. Call it after making dst (it takes views of the heap). */
export const jsRowAdder: RowAdder = (wasm, src, dst, rowSize) => {
  const [from, to] = [wasm.typedArrayFromHeap(src), wasm.typedArrayFromHeap(dst)];
  return (srcRow, dstRow) => {
    const [a, b] = [srcRow * rowSize, dstRow * rowSize];
    for (let j = 0; j < rowSize; j++) to[b + j] += from[a + j];
  };
};

/** out[segmentIds[i]] += x[i], like tfjs-backend-cpu; ids outside [0, numSegments) are dropped. */
export function unsortedSegmentSumKernel(rowAdder: RowAdder): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
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
    const ids = wasm.typedArrayFromHeap(segmentIds);
    outValues.fill(0); // malloc'd heap memory is not zeroed
    const addRow = rowAdder(wasm, x, out, rowSize);
    for (let i = 0; i < rows; i++) if (ids[i] >= 0 && ids[i] < numSegments) addRow(i, ids[i]);
    return out;
  };
}

/**
 * Runs kernelFunc once every input is in the wasm heap. An input made on another backend moves in
 * when the wasm backend first looks it up, and the move may grow the heap, which detaches every
 * view of it taken before; the library's typedArrayFromHeap even takes the heap's buffer before that
 * look-up. Our kernels take views only after making their outputs, so with the inputs moved in
 * first, nothing grows the heap under a view.
 */
export function inputsMovedIn(kernelFunc: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const wasm = args.backend as BackendWasm;
    for (const input of Object.values(args.inputs)) if (input) wasm.dataIdMap.get(input.dataId);
    return kernelFunc(args);
  };
}

/** Registers the kernels above where the wasm backend lacks them (its package must be imported). */
export function registerMissingWasmKernels(): void {
  if (tf.getKernel(tf.UnsortedSegmentSum, 'wasm')) return;
  tf.registerKernel({
    kernelName: tf.UnsortedSegmentSum,
    backendName: 'wasm',
    kernelFunc: inputsMovedIn(unsortedSegmentSumKernel(jsRowAdder)),
  });
}
