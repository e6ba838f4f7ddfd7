/**
 * tf.layers' LSTM cell with its gates in two kernels a step, forward and backward, instead of ~30
 * (installed by fused-cells.ts).
 *
 * Stock, LSTMCell.call splits z = x·W + h·U + b into the four gates and runs each activation, the
 * products and the sum as a kernel of its own (10 a step), and the tape runs ~20 more backward:
 * with 35 steps a batch that is ~1,000 kernel calls of a [32, 256] float array each, and each
 * call's bookkeeping (the engine, tidy, an allocation, the library's worker threads) costs more
 * than its arithmetic. Here the cell computes z exactly as LSTMCell.call does (the same kernels, so
 * the step-gradient and matmul speed-ups still see them), then
 *
 *   forward  (LSTM_GATES_KERNEL)       I, F, O = σ(z_i, z_f, z_o), C̃ = tanh(z_c), C = F ⊙ C_prev + I ⊙ C̃,
 *                                      H = O ⊙ tanh(C): the module's unary(), mul_add() and mul(),
 *                                      which are what Sigmoid, Tanh, Multiply and Add run with accel on;
 *   backward (LSTM_GATES_GRAD_KERNEL)  the module's lstm_grad(): the float operations tfjs-core's tape
 *                                      runs over LSTMCell's ops (see wasm-simd.wat), in one pass.
 *
 * So the same bits as stock LSTMCell with the speed-ups on (test/fused-cells.test.ts checks outputs
 * and gradients), where fusable() in fused-cells.ts says; anything else runs LSTMCell's own call.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type CellFields, dot, type FusedCell, kernelScratch } from './fused-cells';
import { heapOffset, SIMD_OP, simdKernels } from './wasm-kernels-simd';

export const LSTM_GATES_KERNEL = 'LstmLyricsLstmGates';
export const LSTM_GATES_GRAD_KERNEL = 'LstmLyricsLstmGatesGrad';

const { SIGMOID, TANH } = SIMD_OP;
/** The forward pass's saved gates, as five [rows, units] blocks: I, F, C̃, O, tanh(C). */
const SAVED_BLOCKS = 5;

/** forward: inputs z [rows, 4·units], c [rows, units] and `saved` (kernelScratch, filled here); outputs H and C. */
const gatesKernel: tf.KernelConfig = {
  kernelName: LSTM_GATES_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const wasm = backend as BackendWasm;
    const simd = simdKernels(wasm)!; // the cell runs this kernel only where the module runs
    const { z, c, saved } = inputs as Record<'z' | 'c' | 'saved', tf.TensorInfo>;
    const [rows, units] = c.shape;
    const h = wasm.makeOutput([rows, units], 'float32');
    const cNext = wasm.makeOutput([rows, units], 'float32');
    const n = rows * units;
    const [zAt, cAt, hAt, cNextAt, savedAt] = [z, c, h, cNext, saved].map((t) => heapOffset(wasm, t));
    const block = (k: number) => savedAt + 4 * k * n;
    // tf.layers' kernel holds the gates side by side in the order i, f, c, o; each row's slices.
    for (let r = 0; r < rows; r++) {
      [SIGMOID, SIGMOID, TANH, SIGMOID].forEach((op, gate) => {
        simd.unary(op, zAt + 4 * (r * 4 * units + gate * units), block(gate) + 4 * r * units, units);
      });
    }
    const [I, F, C_tilde, O, tanhC] = [0, 1, 2, 3, 4].map(block);
    simd.mul_add(F, cAt, I, C_tilde, cNextAt, n); // C = F ⊙ C_prev + I ⊙ C̃
    simd.unary(TANH, cNextAt, tanhC, n);
    simd.mul(O, tanhC, hAt, n); // H = O ⊙ tanh(C)
    return [h, cNext];
  },
};

/** backward: inputs dh, dc, c (C_prev) and saved; outputs dz and dC_prev. */
const gatesGradKernel: tf.KernelConfig = {
  kernelName: LSTM_GATES_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const wasm = backend as BackendWasm;
    const simd = simdKernels(wasm)!;
    const { dh, dc, c, saved } = inputs as Record<'dh' | 'dc' | 'c' | 'saved', tf.TensorInfo>;
    const [rows, units] = c.shape;
    const dz = wasm.makeOutput([rows, 4 * units], 'float32');
    const dcPrev = wasm.makeOutput([rows, units], 'float32');
    const at = (t: tf.TensorInfo) => heapOffset(wasm, t);
    simd.lstm_grad(at(dh), at(dc), at(c), at(saved), at(dz), at(dcPrev), rows, units);
    return [dz, dcPrev];
  },
};

const gatesGradient: tf.GradConfig = {
  kernelName: LSTM_GATES_KERNEL,
  inputsToSave: ['c', 'saved'],
  gradFunc: (dys, savedTensors) => {
    // A missing gradient (the last step's C, which nobody uses) arrives as zeros from the engine.
    // No gradient of this gradient is ever taken: the cell is fused only outside nested gradients
    // (see fusable).
    const [dh, dc] = dys as tf.Tensor[];
    const [cPrev, saved] = savedTensors;
    // Run here, not in the functions below: the tape calls each in its own tidy, and one call makes
    // both. What is not asked for is freed with the rest of the backward pass.
    const [dz, dcPrev] = tf.engine().runKernel(LSTM_GATES_GRAD_KERNEL, { dh, dc, c: cPrev, saved }) as tf.Tensor[];
    // `saved` is on no path from a weight: the tape never asks for its gradient.
    return { z: () => dz, c: () => dcPrev, saved: () => tf.zerosLike(saved) };
  },
};

/** LSTMCell.call's outputs [H, H, C], the gates in LSTM_GATES_KERNEL. */
function step(cell: CellFields, [x, h, c]: tf.Tensor[]): tf.Tensor[] {
  // z as LSTMCell.call makes it: x·W + h·U, + b.
  let z = tf.add(dot(x, cell.kernel.read()), dot(h, cell.recurrentKernel.read()));
  if (cell.useBias && cell.bias) z = tf.add(z, cell.bias.read());
  const saved = kernelScratch([SAVED_BLOCKS, ...c.shape]);
  const [hNext, cNext] = tf.engine().runKernel(LSTM_GATES_KERNEL, { z, c, saved }) as tf.Tensor[];
  return [hNext, hNext, cNext];
}

export const FUSED_LSTM_CELL: FusedCell = {
  instance: () => tf.layers.lstmCell({ units: 4 }),
  inputCount: 3,
  step,
  kernels: [gatesKernel, gatesGradKernel],
  gradients: [gatesGradient],
};
