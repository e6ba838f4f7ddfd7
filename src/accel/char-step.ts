/**
 * Generation's step as one kernel: a recurrent net's whole step for one character (batch 1), from
 * the character id to the next one's logits, the greedy id and the new state. Stock, a step is
 * 9-34 small TF.js kernels (a gather, the matmuls, each gate's activation, the products, argMax),
 * and each kernel's bookkeeping (the engine, tidy, an allocation) costs more than its arithmetic:
 * a 256-unit step is ~80 µs of arithmetic in ~200-400 µs. Here the arithmetic is all there is.
 *
 * What the step computes comes from the stepper as data, its plan (StepPlan in
 * src/core/models/types.ts, which says where each bias is added), and the text sampler calls this
 * kernel when it is registered (generationStep in src/core/generate.ts); the models never do. It runs
 * the same float operations in the same order as the stepper's kernels, so the same bits:
 *
 * - products: the module's gemv adds each output's products in order from 0 or the bias, one
 *   rounded multiply and add each, which is what the library's matmul (XNNPACK's f32 GEMM) does;
 * - sigmoid, tanh: the module's unary(), which is what Sigmoid and Tanh run with accel on;
 * - +, ⊙, 1 − z: single float32 operations (JS computes in double and rounds once, which for one
 *   +, − or × of two float32 values gives the float32 result exactly);
 * - the greedy id: the first index of the largest logit, as the library's ArgMax.
 *
 * Where the module cannot run, the products are the same loop in JS and the activations the
 * registered Sigmoid and Tanh kernels: slower, the same floats.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { SIMD_OP, simdKernels, type SimdExports } from './wasm-kernels-simd';

/** The kernel's name; src/core/generate.ts calls it by this name (test/char-step.test.ts checks they agree). */
export const CHAR_STEP_KERNEL = 'LstmLyricsCharStep';

/**
 * The kernel's attributes. Its inputs: `ids` (int32 [1]), the state as `state0`, `state1`, ...
 * (RecurrentState's order), `outputKernel`, `outputBias`, and each layer l's StepLayerPlan tensors
 * as `l/inputKernel`, `l/inputBias`, ... Its outputs: the greedy id (int32 [1]), the logits
 * [1, vocab] and the new state, in that order.
 */
export interface CharStepAttrs {
  readonly cell: 'rnn' | 'gru' | 'lstm';
  readonly layers: number;
  readonly outputBiasFirst: boolean;
}

const GATES = { rnn: 1, gru: 3, lstm: 4 } as const;
const { SIGMOID, TANH } = SIMD_OP;

/** The arithmetic the step is made of, on float32 arrays in the backend's memory (byte offsets). */
export interface StepOps {
  /** out[0, n) += x[0, k) · w[k, n], each output's products added in order. */
  gemv(x: number, w: number, out: number, k: number, n: number): void;
  /** dst[0, n) += src[0, n) */
  addInto(src: number, dst: number, n: number): void;
  /** x[0, n) = op(x[0, n)), op SIGMOID or TANH */
  activate(op: number, x: number, n: number): void;
  /** out = a ⊙ b */
  mul(a: number, b: number, out: number, n: number): void;
  /** out = a ⊙ b + c ⊙ d */
  mulAdd(a: number, b: number, c: number, d: number, out: number, n: number): void;
  /** out = z ⊙ h + (1 − z) ⊙ c */
  gruMix(z: number, h: number, c: number, out: number, n: number): void;
  /** The index of the first largest of n floats. */
  argmax(x: number, n: number): number;
}

export const charStepKernel: tf.KernelConfig = {
  kernelName: CHAR_STEP_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const { cell, layers, outputBiasFirst } = attrs as unknown as CharStepAttrs;
    const input = (name: string) => inputs[name] as tf.TensorInfo | undefined;
    const required = (name: string) => {
      const t = input(name);
      if (!t || t.dtype !== (name === 'ids' ? 'int32' : 'float32'))
        throw new Error(`${CHAR_STEP_KERNEL}: input ${name} missing or not ${name === 'ids' ? 'int32' : 'float32'}`);
      return t;
    };
    const ids = required('ids');
    if (tf.util.sizeFromShape(ids.shape) !== 1) throw new Error(`${CHAR_STEP_KERNEL}: one character at a time, got ${ids.shape}`);
    const outputKernel = required('outputKernel');
    const [H, V] = outputKernel.shape;
    const G = GATES[cell];
    const perLayer = cell === 'lstm' ? 2 : 1;
    const state = Array.from({ length: layers * perLayer }, (_, i) => required(`state${i}`));
    for (const s of state)
      if (tf.util.sizeFromShape(s.shape) !== H) throw new Error(`${CHAR_STEP_KERNEL}: state of shape [${s.shape}], expected [1, ${H}]`);

    // Everything allocated first: an allocation may grow the memory, which replaces its buffer.
    const outId = wasm.makeOutput([1], 'int32');
    const logits = wasm.makeOutput([1, V], 'float32');
    const next = state.map(() => wasm.makeOutput([1, H], 'float32'));
    // xw [G·H], z [G·H], aux [2·H]: the GRU's R ⊙ H and candidate, the LSTM's tanh(C)
    const scratch = wasm.makeOutput([2 * G * H + 2 * H], 'float32');
    try {
      const view = heapView(wasm);
      const at = (t: tf.TensorInfo) => wasm.dataIdMap.get(t.dataId)!.memoryOffset;
      const ops = stepOps(wasm, view);
      const xwAt = at(scratch);
      const zAt = xwAt + G * H * 4;
      const auxAt = zAt + G * H * 4;
      const fill = (ptr: number, n: number, from?: number) => {
        if (from === undefined) view().fill(0, ptr >> 2, (ptr >> 2) + n);
        else view().copyWithin(ptr >> 2, from >> 2, (from >> 2) + n);
      };

      let below = -1; // the H of the layer below (byte offset); -1 for the first layer
      for (let l = 0; l < layers; l++) {
        const inputKernel = required(`${l}/inputKernel`);
        const recurrentKernel = required(`${l}/recurrentKernel`);
        const inputBias = input(`${l}/inputBias`);
        const gateBias = input(`${l}/gateBias`);
        const [h, c] = [state[l * perLayer], state[l * perLayer + 1]];
        const [hOut, cOut] = [next[l * perLayer], next[l * perLayer + 1]];
        const GH = G * H;
        if (inputKernel.shape[1] !== GH || recurrentKernel.shape[0] !== H)
          throw new Error(`${CHAR_STEP_KERNEL}: layer ${l + 1}'s kernels do not fit`);

        // X, [G·H]
        let xw = xwAt;
        if (below < 0) {
          const id = wasm.typedArrayFromHeap(ids)[0];
          if (!(id >= 0 && id < inputKernel.shape[0])) throw new Error(`${CHAR_STEP_KERNEL}: character id ${id} out of range`);
          const row = at(inputKernel) + id * GH * 4;
          if (inputBias) fill(xw, GH, row);
          else xw = row; // read in place
        } else {
          fill(xw, GH);
          ops.gemv(below, at(inputKernel), xw, H, GH);
        }
        if (inputBias) ops.addInto(at(inputBias), xw, GH);

        // Z = X + H · recurrentKernel (+ gateBias): the GRU's Z and R parts only
        const zn = cell === 'gru' ? 2 * H : GH;
        fill(zAt, zn);
        ops.gemv(at(h), at(recurrentKernel), zAt, H, zn);
        ops.addInto(xw, zAt, zn);
        if (gateBias) ops.addInto(at(gateBias), zAt, zn);

        const part = (k: number) => zAt + k * H * 4; // Z's k-th part of H floats
        if (cell === 'rnn') {
          ops.activate(TANH, zAt, H);
          fill(at(hOut), H, zAt);
        } else if (cell === 'lstm') {
          ops.activate(SIGMOID, zAt, 2 * H); // I, F
          ops.activate(TANH, part(2), H); // C̃
          ops.activate(SIGMOID, part(3), H); // O
          ops.mulAdd(part(1), at(c), part(0), part(2), at(cOut), H);
          fill(auxAt, H, at(cOut));
          ops.activate(TANH, auxAt, H);
          ops.mul(part(3), auxAt, at(hOut), H);
        } else {
          const candidateKernel = required(`${l}/candidateKernel`);
          ops.activate(SIGMOID, zAt, 2 * H); // Z, R
          const [rh, cand] = [auxAt, auxAt + H * 4];
          ops.mul(part(1), at(h), rh, H);
          fill(cand, H);
          ops.gemv(rh, at(candidateKernel), cand, H, H);
          ops.addInto(xw + 2 * H * 4, cand, H);
          ops.activate(TANH, cand, H);
          ops.gruMix(part(0), at(h), cand, at(hOut), H);
        }
        below = at(hOut);
      }

      // the logits and the greedy id
      const outputBias = required('outputBias');
      const lo = at(logits);
      fill(lo, V, outputBiasFirst ? at(outputBias) : undefined);
      ops.gemv(below, at(outputKernel), lo, H, V);
      if (!outputBiasFirst) ops.addInto(at(outputBias), lo, V);
      (wasm.typedArrayFromHeap(outId) as Int32Array)[0] = ops.argmax(lo, V);
    } finally {
      wasm.disposeData(scratch.dataId);
    }
    return [outId, logits, ...next];
  },
};

/** The backend's memory as floats; a function, since growing the memory replaces its buffer. */
export function heapView(wasm: BackendWasm): () => Float32Array {
  const module = wasm.wasm as unknown as { HEAPU8: Uint8Array };
  let view = new Float32Array(module.HEAPU8.buffer);
  return () => {
    if (view.buffer !== module.HEAPU8.buffer) view = new Float32Array(module.HEAPU8.buffer);
    return view;
  };
}

/** The step's arithmetic: the SIMD module's, or where it cannot run (`simd` null) the same float operations in JS. */
export function stepOps(wasm: BackendWasm, view: () => Float32Array, simd: SimdExports | null = simdKernels(wasm) ?? null): StepOps {
  if (simd) {
    return {
      gemv: simd.gemv,
      addInto: simd.add_into,
      activate: (op, x, n) => simd.unary(op, x, x, n),
      mul: simd.mul,
      mulAdd: simd.mul_add,
      gruMix: simd.gru_mix,
      argmax: simd.argmax,
    };
  }
  const f = Math.fround;
  const elementwise = (pointers: number[], out: number, n: number, op: (...values: number[]) => number) => {
    const heap = view();
    const at = pointers.map((p) => p >> 2);
    for (let j = 0; j < n; j++) heap[(out >> 2) + j] = op(...at.map((i) => heap[i + j]));
  };
  return {
    mul: (a, b, out, n) => elementwise([a, b], out, n, (x, y) => f(x * y)),
    mulAdd: (a, b, c, d, out, n) => elementwise([a, b, c, d], out, n, (w, x, y, z) => f(f(w * x) + f(y * z))),
    gruMix: (z, h, c, out, n) => elementwise([z, h, c], out, n, (zj, hj, cj) => f(f(zj * hj) + f(f(1 - zj) * cj))),
    argmax: (x, n) => {
      const heap = view();
      let best = 0;
      for (let j = 1; j < n; j++) if (heap[(x >> 2) + j] > heap[(x >> 2) + best]) best = j;
      return best;
    },
    gemv: (x, w, out, k, n) => {
      const heap = view();
      const [xi, wi, oi] = [x >> 2, w >> 2, out >> 2];
      for (let j = 0; j < n; j++) {
        let acc = heap[oi + j];
        for (let i = 0; i < k; i++) acc = f(acc + f(heap[xi + i] * heap[wi + i * n + j]));
        heap[oi + j] = acc;
      }
    },
    addInto: (src, dst, n) => {
      const heap = view();
      for (let j = 0; j < n; j++) heap[(dst >> 2) + j] = f(heap[(dst >> 2) + j] + heap[(src >> 2) + j]);
    },
    activate: (op, x, n) => {
      // The registered kernel (the library's, where the module cannot run) on a copy.
      const kernel = tf.getKernel(op === SIGMOID ? tf.Sigmoid : tf.Tanh, 'wasm')!.kernelFunc;
      const copy = wasm.makeOutput([n], 'float32');
      let result: tf.TensorInfo | undefined;
      try {
        view().copyWithin(wasm.dataIdMap.get(copy.dataId)!.memoryOffset >> 2, x >> 2, (x >> 2) + n);
        result = kernel({ inputs: { x: copy }, backend: wasm, attrs: {} }) as tf.TensorInfo;
        view().set(wasm.typedArrayFromHeap(result) as Float32Array, x >> 2);
      } finally {
        wasm.disposeData(copy.dataId);
        if (result) wasm.disposeData(result.dataId);
      }
    },
  };
}
