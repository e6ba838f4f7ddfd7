/**
 * tf.layers' LSTM and GRU cells with their gates in a few kernels a step (lstm-cell.ts,
 * gru-cell.ts): what the two share. Each replaces its cell class's `call` with one that computes
 * the same matmuls as the stock call (so the step-gradient and matmul speed-ups still see them) and
 * the element-wise rest in our kernels, whose registered gradients run the float operations
 * tfjs-core's tape would, in the same order: the same bits (test/fused-cells.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { inputsMovedIn } from './wasm-missing-kernels';
import { simdKernels } from './wasm-kernels-simd';

/** What a fused call reads of a tf.layers cell (its fields are not in the public typings). */
export interface CellFields {
  units: number;
  dropout: number;
  recurrentDropout: number;
  useBias: boolean;
  activation: { getClassName(): string };
  recurrentActivation: { getClassName(): string };
  kernel: { read(): tf.Tensor };
  recurrentKernel: { read(): tf.Tensor };
  bias: { read(): tf.Tensor } | null;
}
export type CellCall = (this: CellFields, inputs: tf.Tensor | tf.Tensor[], kwargs: object) => tf.Tensor | tf.Tensor[];

/** One cell class's fused step, its kernels (wasm) and their gradients. */
export interface FusedCell {
  /** Any instance of the cell class (its prototype's `call` is replaced). */
  readonly instance: () => object;
  /** How many tensors the cell's call takes: the input and the state's. */
  readonly inputCount: number;
  /** The cell's call where fusable (inside a tidy): the same outputs, from the kernels below. */
  readonly step: (cell: CellFields, inputs: tf.Tensor[]) => tf.Tensor[];
  /** The forward kernels first: fusable() asks for the first. */
  readonly kernels: readonly tf.KernelConfig[];
  readonly gradients: readonly tf.GradConfig[];
}

/**
 * Whether a cell's step can run in `kernelName` on these inputs: the wasm backend with our module
 * and the kernel registered, float32, units a multiple of 4 (the module's vectors), tanh and
 * sigmoid (the series' cells), no dropout inside the cell (ours is between layers), and not inside
 * a gradient of a gradient. Depth 1 is a gradient being taken (training); 2 and more would
 * differentiate our backward kernels, which only the cell's own ops can be.
 */
export function fusable(kernelName: string, cell: CellFields, inputs: readonly tf.Tensor[]): boolean {
  const noDropout = (rate: number) => !(rate > 0 && rate < 1);
  const { gradientDepth } = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
  return (
    gradientDepth <= 1 &&
    tf.getBackend() === 'wasm' &&
    tf.getKernel(kernelName, 'wasm') !== undefined &&
    simdKernels(tf.backend() as BackendWasm) !== undefined &&
    cell.units % 4 === 0 &&
    noDropout(cell.dropout) &&
    noDropout(cell.recurrentDropout) &&
    cell.activation.getClassName() === 'tanh' &&
    cell.recurrentActivation.getClassName() === 'sigmoid' &&
    inputs[0].rank === 2 &&
    inputs.every((t) => t.dtype === 'float32')
  );
}

/** x·w as tf.layers' K.dot makes it for two matrices: a fused matMul without bias or activation. */
export function dot(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, transposeA: false, transposeB: false });
}

/**
 * A new float32 tensor whose data a fused kernel fills (it is not initialised): what the forward
 * pass keeps for the backward one. It goes in as an input, not out as an extra output, because the
 * engine hands a gradient function a dy for every output, and for an output nobody uses (as these
 * are) it makes one of zeros in JS and copies it into the heap: a [5, 32, 256] one a step cost
 * more than the gates' arithmetic, and its garbage slowed a long process further. Written only by
 * the kernel that takes it, before anything reads it, so its data never changes once seen.
 */
export function kernelScratch(shape: number[]): tf.Tensor {
  const backend = tf.backend() as BackendWasm;
  return tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, 'float32'));
}

/** Installs the cells (kernels, gradients, calls); returns the function that removes them. */
export function installFusedCells(cells: readonly FusedCell[]): () => void {
  const undo: (() => void)[] = [];
  for (const cell of cells) {
    const proto = Object.getPrototypeOf(cell.instance()) as { call: CellCall };
    const original = proto.call;
    for (const config of cell.kernels) {
      tf.registerKernel({ ...config, kernelFunc: inputsMovedIn(config.kernelFunc) });
      undo.push(() => tf.unregisterKernel(config.kernelName, config.backendName));
    }
    // Left registered on removal (tfjs-core cannot unregister one): without the kernels, nothing
    // records an op they would differentiate.
    for (const gradient of cell.gradients) tf.registerGradient(gradient);
    proto.call = function (this: CellFields, inputs, kwargs) {
      if (!Array.isArray(inputs) || inputs.length !== cell.inputCount || !fusable(cell.kernels[0].kernelName, this, inputs))
        return original.call(this, inputs, kwargs);
      return tf.tidy(() => cell.step(this, inputs));
    };
    undo.push(() => {
      proto.call = original;
    });
  }
  return () => undo.reverse().forEach((f) => f());
}
