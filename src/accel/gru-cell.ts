/**
 * tf.layers' GRU cell with its gates in two kernels a step and their two gradients, instead of ~40
 * kernels (installed by fused-cells.ts).
 *
 * GRUCell.call (the lesson's GRU: the reset gate before the product) computes, besides its three
 * matmuls,
 *
 *   Z = σ(x_z + h·U_z)    R = σ(x_r + h·U_r)    H̃ = tanh(x_h + (R ⊙ h)·U_h)    H = Z ⊙ h + (1 + (−Z)) ⊙ H̃
 *
 * as ~16 kernels of a [32, 256] array a step, and its tape ~25 more. The product (R ⊙ h)·U_h sits
 * between the gates and the mix, so here there are two kernels around it:
 *
 *   GRU_GATES_KERNEL  Z, R and R ⊙ h, from x_z, x_r, h·U_z, h·U_r (GRUCell's splits) and h;
 *   GRU_MIX_KERNEL    H̃ and H, from x_h, (R ⊙ h)·U_h, Z and h.
 *
 * The matmuls and splits are GRUCell's own, made in its order, and each kernel's gradient runs the
 * module's element-wise functions (binary(), activation_grad(): what Add, Multiply, Neg and the
 * activation gradients run with accel on) with the float operations tfjs-core's tape runs over
 * GRUCell's ops: the same bits (test/fused-cells.test.ts). h's gradient still arrives in the tape's
 * order (the sequence, then R ⊙ h's and Z ⊙ h's parts, then h·U's), as the kernels touching h are
 * made in GRUCell's order.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type CellFields, dot, type FusedCell, kernelScratch } from './fused-cells';
import { BINARY_OP, heapOffset, SIMD_OP, type SimdExports, simdKernels } from './wasm-kernels-simd';

export const GRU_GATES_KERNEL = 'LstmLyricsGruGates';
export const GRU_GATES_GRAD_KERNEL = 'LstmLyricsGruGatesGrad';
export const GRU_MIX_KERNEL = 'LstmLyricsGruMix';
export const GRU_MIX_GRAD_KERNEL = 'LstmLyricsGruMixGrad';

const { SIGMOID, TANH } = SIMD_OP;
const { ADD, MUL, REVERSED_SUB, NEGATE } = BINARY_OP;

/** The module, the backend, the element count of a [rows, units] input, and offsets of tensors. */
function context(backend: unknown, like: tf.TensorInfo) {
  const wasm = backend as BackendWasm;
  const simd = simdKernels(wasm) as SimdExports; // the cell runs these kernels only where the module runs
  const n = tf.util.sizeFromShape(like.shape);
  const make = () => wasm.makeOutput(like.shape, 'float32');
  return { wasm, simd, n, make, at: (t: tf.TensorInfo) => heapOffset(wasm, t) };
}

/** forward: Z = σ(x_z + hU_z) and R ⊙ h out, R = σ(x_r + hU_r) into `r` (kernelScratch). */
const gatesKernel: tf.KernelConfig = {
  kernelName: GRU_GATES_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const { xZ, xR, hZ, hR, h, r } = inputs as Record<'xZ' | 'xR' | 'hZ' | 'hR' | 'h' | 'r', tf.TensorInfo>;
    const { simd, n, make, at } = context(backend, h);
    const [z, rh] = [make(), make()];
    simd.binary(ADD, at(xZ), at(hZ), at(z), n, n);
    simd.unary(SIGMOID, at(z), at(z), n);
    simd.binary(ADD, at(xR), at(hR), at(r), n, n);
    simd.unary(SIGMOID, at(r), at(r), n);
    simd.binary(MUL, at(r), at(h), at(rh), n, n);
    return [z, rh];
  },
};

/** backward: from dZ and d(R ⊙ h), the gradients of x_z (= of hU_z), x_r (= of hU_r) and h. */
const gatesGradKernel: tf.KernelConfig = {
  kernelName: GRU_GATES_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const { dz, drh, h, z, r } = inputs as Record<'dz' | 'drh' | 'h' | 'z' | 'r', tf.TensorInfo>;
    const { simd, n, make, at } = context(backend, h);
    const [dZpre, dRpre, dh] = [make(), make(), make()];
    simd.binary(MUL, at(drh), at(h), at(dRpre), n, n); // dR = d(R ⊙ h)·h
    simd.activation_grad(SIGMOID, at(dRpre), at(r), at(dRpre), n); // dR·(R(1 − R))
    simd.binary(MUL, at(drh), at(r), at(dh), n, n); // d(R ⊙ h)·R
    simd.activation_grad(SIGMOID, at(dz), at(z), at(dZpre), n);
    return [dZpre, dRpre, dh];
  },
};

/** forward: H = Z ⊙ h + (1 − Z) ⊙ H̃ out, H̃ = tanh(x_h + (R ⊙ h)U_h) into `hTilde` (kernelScratch). */
const mixKernel: tf.KernelConfig = {
  kernelName: GRU_MIX_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const { xH, rhU, z, h, hTilde } = inputs as Record<'xH' | 'rhU' | 'z' | 'h' | 'hTilde', tf.TensorInfo>;
    const { simd, n, make, at } = context(backend, h);
    const hNext = make();
    simd.binary(ADD, at(xH), at(rhU), at(hTilde), n, n);
    simd.unary(TANH, at(hTilde), at(hTilde), n);
    // Z ⊙ h + (1 − Z) ⊙ H̃: GRUCell's add(1, neg(Z)) is the same float as 1 − Z.
    simd.gru_mix(at(z), at(h), at(hTilde), at(hNext), n);
    return [hNext];
  },
};

/** backward: from dH, the gradients of x_h (= of (R ⊙ h)U_h), Z and h. */
const mixGradKernel: tf.KernelConfig = {
  kernelName: GRU_MIX_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const { dy, z, h, hTilde } = inputs as Record<'dy' | 'z' | 'h' | 'hTilde', tf.TensorInfo>;
    const { wasm, simd, n, make, at } = context(backend, h);
    const [dPre, dz, dh] = [make(), make(), make()];
    const one = wasm.makeOutput([1], 'float32');
    (wasm.typedArrayFromHeap(one) as Float32Array)[0] = 1;
    // dZ = −(dH·H̃) + dH·h (from neg(Z) and Z ⊙ h; two terms, so either order is the same float).
    simd.binary(MUL, at(dy), at(hTilde), at(dz), n, n);
    simd.binary(NEGATE, at(dz), at(dz), at(dz), n, n);
    simd.binary(MUL, at(dy), at(h), at(dPre), n, n);
    simd.binary(ADD, at(dz), at(dPre), at(dz), n, n);
    // dH̃ = dH·(1 − Z), then tanh's gradient.
    simd.binary(REVERSED_SUB, at(z), at(one), at(dPre), n, 1);
    simd.binary(MUL, at(dy), at(dPre), at(dPre), n, n);
    simd.activation_grad(TANH, at(dPre), at(hTilde), at(dPre), n);
    simd.binary(MUL, at(dy), at(z), at(dh), n, n); // dh = dH·Z
    wasm.disposeData(one.dataId);
    return [dPre, dz, dh];
  },
};

// Each gradient runs its kernel once, in gradFunc: the tape calls each input's function in its own
// tidy, and one call makes them all; what is not asked for is freed with the rest of the backward
// pass. An addition's two inputs get the same gradient, as tfjs-core's Add gives each its own
// tensor on the same data (clone()). The scratch inputs (R, H̃) are on no path from a weight: the
// tape never asks for their gradients.
const gatesGradient: tf.GradConfig = {
  kernelName: GRU_GATES_KERNEL,
  inputsToSave: ['h', 'r'],
  outputsToSave: [true, false],
  gradFunc: (dys, saved) => {
    const [dz, drh] = dys as tf.Tensor[];
    const [h, r, z] = saved;
    const [dZpre, dRpre, dh] = tf.engine().runKernel(GRU_GATES_GRAD_KERNEL, { dz, drh, h, z, r }) as tf.Tensor[];
    return { xZ: () => dZpre, hZ: () => dZpre.clone(), xR: () => dRpre, hR: () => dRpre.clone(), h: () => dh, r: () => tf.zerosLike(r) };
  },
};

const mixGradient: tf.GradConfig = {
  kernelName: GRU_MIX_KERNEL,
  inputsToSave: ['z', 'h', 'hTilde'],
  gradFunc: (dy, saved) => {
    const [z, h, hTilde] = saved;
    const [dPre, dz, dh] = tf.engine().runKernel(GRU_MIX_GRAD_KERNEL, { dy: dy as tf.Tensor, z, h, hTilde }) as tf.Tensor[];
    return { xH: () => dPre, rhU: () => dPre.clone(), z: () => dz, h: () => dh, hTilde: () => tf.zerosLike(hTilde) };
  },
};

/** GRUCell.call's outputs [H, H], the gates and the mix in our kernels. */
function step(cell: CellFields, [x, h]: tf.Tensor[]): tf.Tensor[] {
  const units = cell.units;
  // GRUCell's matmuls and splits, in its order.
  let matrixX = dot(x, cell.kernel.read());
  if (cell.useBias && cell.bias) matrixX = tf.add(matrixX, cell.bias.read());
  const recurrent = cell.recurrentKernel.read();
  const [U_zr, U_h] = tf.split(recurrent, [2 * units, units], recurrent.rank - 1);
  const matrixInner = dot(h, U_zr);
  const [xZ, xR, xH] = tf.split(matrixX, 3, matrixX.rank - 1);
  const [hZ, hR] = tf.split(matrixInner, 2, matrixInner.rank - 1);
  const r = kernelScratch(h.shape);
  const [z, rh] = tf.engine().runKernel(GRU_GATES_KERNEL, { xZ, xR, hZ, hR, h, r }) as tf.Tensor[];
  const rhU = dot(rh, U_h);
  const hTilde = kernelScratch(h.shape);
  const [hNext] = tf.engine().runKernel(GRU_MIX_KERNEL, { xH, rhU, z, h, hTilde }) as tf.Tensor[];
  return [hNext, hNext];
}

export const FUSED_GRU_CELL: FusedCell = {
  instance: () => tf.layers.gruCell({ units: 4 }),
  inputCount: 2,
  step,
  kernels: [gatesKernel, gatesGradKernel, mixKernel, mixGradKernel],
  gradients: [gatesGradient, mixGradient],
};
