/**
 * Kernels of @tensorflow/tfjs-backend-wasm 4.22.0 that run one float at a time, replaced by our
 * own small WebAssembly SIMD module (wasm-simd.wat), which works in place on the backend's heap.
 *
 * - Exp, Sigmoid and Tanh: the library calls libc's expf / exp (in double) / tanhf per element;
 *   an epoch of the lesson spends ~70 ms in Exp over the [1120, 1027] logits and ~70 ms in the
 *   gates' Sigmoid and Tanh. Ours are Cephes' float algorithms four lanes at a time, within 1 ulp
 *   (exp, tanh) and 2 ulp (sigmoid) of the exact value, where the library is within ~1: results
 *   are not bit-identical to the library's, as the cpu backend's are not either.
 * - Sum over leading axes (a bias gradient sums [1120, 1027] over its rows): the library transposes
 *   the input first (a strided copy of all of it) and sums each column sequentially; ours adds
 *   row after row into the output, four columns at a time: the same sums in the same order, so
 *   the same bits, without the copy.
 * - The gradients of Sigmoid and Tanh: tfjs-core computes dy·(y·(1 - y)) and (1 - y·y)·dy as three
 *   kernels (~1,400 calls a batch between the two impls' gates); ACTIVATION_GRAD_KERNEL is one pass
 *   of the same float operations in the same order (see registerActivationGradients).
 * - ADAM_UPDATE_KERNEL (./adam.ts): tf.train.adam runs 14 kernels over each weight
 *   (8.7 ms a batch for builtin's 1.6M weights); ours is one pass, the same float operations in
 *   the same order, so the same bits.
 * - add_into, the row additions of a scatter-add (UnsortedSegmentSum, the one-hot matmul's aᵀ·b in
 *   wasm-kernels.ts): float additions, so the same bits as the JS loop they replace; hot_column,
 *   the one-hot matmul's check of its left operand, four floats at a time.
 *
 * Where the module cannot run (no WebAssembly SIMD, or a backend whose memory cannot be found),
 * every kernel falls back to the library's, as it does for dtypes other than float32 (the Adam
 * kernel, which has no library twin, to the same float steps in JS).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { ADAM_UPDATE_KERNEL, type AdamUpdateAttrs } from './adam';
import { SIMD_MODULE_SHARED, SIMD_MODULE_UNSHARED } from './wasm-simd-binary';
import { jsRowAdder, type RowAdder } from './wasm-missing-kernels';

/** The module's exports; pointers are byte offsets into the backend's memory. */
export interface SimdExports {
  unary(op: number, inPtr: number, outPtr: number, n: number): void;
  add_into(srcPtr: number, dstPtr: number, n: number): void;
  gemv(xPtr: number, wPtr: number, outPtr: number, k: number, n: number): void;
  mul(aPtr: number, bPtr: number, outPtr: number, n: number): void;
  mul_add(aPtr: number, bPtr: number, cPtr: number, dPtr: number, outPtr: number, n: number): void;
  gru_mix(zPtr: number, hPtr: number, cPtr: number, outPtr: number, n: number): void;
  argmax(xPtr: number, n: number): number;
  hot_column(rowPtr: number, n: number): number;
  activation_grad(op: number, dyPtr: number, yPtr: number, outPtr: number, n: number): void;
  binary(op: number, aPtr: number, bPtr: number, outPtr: number, n: number, bn: number): void;
  i32_to_f32(inPtr: number, outPtr: number, n: number): void;
  lstm_grad(
    dhPtr: number,
    dcPtr: number,
    cPrevPtr: number,
    savedPtr: number,
    dzPtr: number,
    dcPrevPtr: number,
    rows: number,
    units: number,
  ): void;
  adam(
    g: number,
    m: number,
    v: number,
    w: number,
    mOut: number,
    vOut: number,
    wOut: number,
    n: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    d1: number,
    d2: number,
    eps: number,
    negLr: number,
  ): void;
}

/**
 * The part of the WebAssembly JS API used here, typed locally: the Node build compiles without the
 * DOM library, which is where TypeScript declares it.
 */
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/**
 * The module's op codes, for everything here and the kernels built on it (char-step.ts, the fused
 * cells): unary() and activation_grad() take SIGMOID and TANH (unary() also EXP); binary() takes
 * ADD, SUB, MUL, REVERSED_SUB (b - a) and NEGATE (-a).
 */
export const SIMD_OP = { EXP: 0, SIGMOID: 1, TANH: 2 } as const;
export const BINARY_OP = { ADD: 0, SUB: 1, MUL: 2, REVERSED_SUB: 3, NEGATE: 4 } as const;
const UNARY_OPS = { [tf.Exp]: SIMD_OP.EXP, [tf.Sigmoid]: SIMD_OP.SIGMOID, [tf.Tanh]: SIMD_OP.TANH } as const;
const BINARY_OPS = { [tf.Add]: BINARY_OP.ADD, [tf.Sub]: BINARY_OP.SUB, [tf.Multiply]: BINARY_OP.MUL } as const;
/**
 * Up to this many elements the module's binary() runs them; above it, the library's, whose worker
 * threads then pay for their wake-up (a [32, 256] Add: ~15-80 µs in the library with 2 threads,
 * a few µs here; a [1120, 1027] one is faster in the library on 2 threads).
 */
export const SIMD_BINARY_MAX_ELEMENTS = 65536;

/** One of our modules' two builds, base64, from scripts/build-wasm.js. */
export interface ModuleBuilds {
  readonly shared: string;
  readonly unshared: string;
}
const SIMD_BUILDS: ModuleBuilds = { shared: SIMD_MODULE_SHARED, unshared: SIMD_MODULE_UNSHARED };

/** The SIMD module instantiated on `wasm`'s memory, or undefined where it cannot run. */
export function simdKernels(wasm: BackendWasm): SimdExports | undefined {
  return moduleOn<SimdExports>(wasm, SIMD_BUILDS);
}

/**
 * Each backend memory's instances of our modules, by their builds (a re-initialised backend has a
 * new memory); null: the module cannot run there.
 */
const instances = new WeakMap<object, Map<ModuleBuilds, unknown>>();

/**
 * One of our modules instantiated on `wasm`'s memory, once per memory, with `imports` besides the
 * memory (read only the first time): its exports, or undefined where it cannot run.
 */
export function moduleOn<T>(wasm: BackendWasm, builds: ModuleBuilds, imports: object = {}): T | undefined {
  type Module = { wasmMemory?: WasmMemory; asm?: { memory?: WasmMemory } };
  const module = wasm.wasm as unknown as Module;
  // The threaded build creates its shared memory itself (wasmMemory); the others export theirs.
  const memory = module.wasmMemory ?? module.asm?.memory;
  if (!memory) return undefined;
  const mine = instances.get(memory) ?? new Map<ModuleBuilds, unknown>();
  instances.set(memory, mine);
  if (!mine.has(builds)) mine.set(builds, instantiate(memory, builds, imports));
  return (mine.get(builds) ?? undefined) as T | undefined;
}

function instantiate(memory: WasmMemory, builds: ModuleBuilds, imports: object): unknown {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const bytes = base64Bytes(shared ? builds.shared : builds.unshared);
  if (!WebAssemblyApi.validate(bytes)) return null; // an engine without SIMD
  try {
    // Synchronous: each module is small, under the 4 KB browsers allow on the main thread.
    return new WebAssemblyApi.Instance(new WebAssemblyApi.Module(bytes), { ...imports, env: { memory } }).exports;
  } catch {
    return null; // e.g. a page whose Content-Security-Policy forbids compiling WebAssembly
  }
}

/** A module build's bytes from its base64 (gemm.ts hands them to its helper thread). */
export function base64Bytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Where a tensor's data starts in the backend's memory (a byte offset): what the module's functions take. */
export const heapOffset = (wasm: BackendWasm, t: tf.TensorInfo): number => wasm.dataIdMap.get(t.dataId)!.memoryOffset;

/** Kernel name → (library kernel) → replacement. */
export const SIMD_KERNELS: Record<string, (original: tf.KernelFunc) => tf.KernelFunc> = {
  ...Object.fromEntries(
    Object.entries(UNARY_OPS).map(([name, op]) => [
      name,
      (original: tf.KernelFunc): tf.KernelFunc =>
        (args) => {
          const x = args.inputs.x!;
          const wasm = args.backend as BackendWasm;
          const simd = x.dtype === 'float32' ? simdKernels(wasm) : undefined;
          if (!simd) return original(args);
          const out = wasm.makeOutput(x.shape, 'float32');
          const n = tf.util.sizeFromShape(x.shape);
          if (n > 0) simd.unary(op, heapOffset(wasm, x), heapOffset(wasm, out), n);
          return out;
        },
    ]),
  ),

  ...Object.fromEntries(
    Object.entries(BINARY_OPS).map(([name, op]) => [
      name,
      (original: tf.KernelFunc): tf.KernelFunc =>
        (args) => {
          const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
          const wasm = args.backend as BackendWasm;
          const plan = a.dtype === 'float32' && b.dtype === 'float32' ? binaryPlan(a.shape, b.shape) : undefined;
          const simd = plan && plan.n <= SIMD_BINARY_MAX_ELEMENTS ? simdKernels(wasm) : undefined;
          if (!plan || !simd) return original(args);
          const out = wasm.makeOutput(plan.shape, 'float32');
          // The smaller operand is the module's b; for a subtraction whose smaller operand is a,
          // the module subtracts the other way round. Add and Multiply are exact either way round.
          const [big, small] = plan.swapped ? [b, a] : [a, b];
          const code = plan.swapped && op === BINARY_OP.SUB ? BINARY_OP.REVERSED_SUB : op;
          if (plan.n > 0) simd.binary(code, heapOffset(wasm, big), heapOffset(wasm, small), heapOffset(wasm, out), plan.n, plan.bn);
          return out;
        },
    ]),
  ),
  // tf.layers' GRU computes 1 - Z as add(1, neg(Z)): the library's Neg took ~70 µs on [32, 256].
  [tf.Neg]: (original) => (args) => {
    const x = args.inputs.x!;
    const wasm = args.backend as BackendWasm;
    const n = tf.util.sizeFromShape(x.shape);
    const simd = x.dtype === 'float32' && n <= SIMD_BINARY_MAX_ELEMENTS ? simdKernels(wasm) : undefined;
    if (!simd) return original(args);
    const out = wasm.makeOutput(x.shape, 'float32');
    if (n > 0) simd.binary(BINARY_OP.NEGATE, heapOffset(wasm, x), heapOffset(wasm, x), heapOffset(wasm, out), n, n);
    return out;
  },
  [tf.Sum]: (original) => (args) => {
    const x = args.inputs.x!;
    const wasm = args.backend as BackendWasm;
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    // Only leading axes, and not all of them (a full sum is one sequential pass already).
    const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
    const simd = x.dtype === 'float32' && leading ? simdKernels(wasm) : undefined;
    if (!simd) return original(args);
    const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
    const kept = x.shape.slice(axes.length);
    const out = wasm.makeOutput(keepDims ? [...axes.map(() => 1), ...kept] : kept, 'float32');
    const cols = tf.util.sizeFromShape(kept);
    // From +0, each row added in turn: every column's floats summed in row order, as the library
    // does on its transposed copy; row by row, so memory is read in order.
    (wasm.typedArrayFromHeap(out) as Float32Array).fill(0);
    const addRow = rowAdder(wasm, x, out, cols);
    for (let r = 0; r < rows && cols > 0; r++) addRow(r, 0);
    return out;
  },
};

/**
 * ADAM_UPDATE_KERNEL on wasm: new m, v and value in one pass of the module's adam(). Registered
 * by registerWasmKernelFixes; where the module cannot run, the same float steps in JS.
 */
export const adamUpdateKernel: tf.KernelConfig = {
  kernelName: ADAM_UPDATE_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const { gradient, m, v, value } = inputs as Record<'gradient' | 'm' | 'v' | 'value', tf.TensorInfo>;
    const a = attrs as unknown as AdamUpdateAttrs;
    const outs = [m, v, value].map((t) => wasm.makeOutput(t.shape, 'float32'));
    const n = tf.util.sizeFromShape(value.shape);
    const scalars = [
      a.beta1,
      a.oneMinusBeta1,
      a.beta2,
      a.oneMinusBeta2,
      a.oneMinusAccBeta1,
      a.oneMinusAccBeta2,
      a.epsilon,
      a.negLearningRate,
    ] as const;
    const [g, m0, v0, w0, m1, v1, w1] = [gradient, m, v, value, ...outs];
    // The module does all but the last n % 4 (or nothing, where it cannot run); JS the rest.
    const simd = simdKernels(wasm);
    const done = simd ? n - (n % 4) : 0;
    if (simd && done > 0) simd.adam(...([g, m0, v0, w0, m1, v1, w1].map((t) => heapOffset(wasm, t)) as Seven), n, ...scalars);
    const heap = (t: tf.TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
    adamInJs(done, n, heap(g), heap(m0), heap(v0), heap(w0), heap(m1), heap(v1), heap(w1), scalars);
    return outs;
  },
};

type Seven = [number, number, number, number, number, number, number];

/** The module's adam() for elements [from, to), in JS: each step rounded to float32 as it does. */
function adamInJs(
  from: number,
  to: number,
  g: Float32Array,
  m0: Float32Array,
  v0: Float32Array,
  w0: Float32Array,
  m1: Float32Array,
  v1: Float32Array,
  w1: Float32Array,
  scalars: readonly number[],
): void {
  const [b1, c1, b2, c2, d1, d2, eps, negLr] = scalars;
  const f = Math.fround;
  for (let i = from; i < to; i++) {
    m1[i] = f(f(m0[i] * b1) + f(g[i] * c1));
    v1[i] = f(f(v0[i] * b2) + f(f(g[i] * g[i]) * c2));
    w1[i] = f(f(f(f(m1[i] / d1) / f(f(Math.sqrt(f(v1[i] / d2))) + eps)) * negLr) + w0[i]);
  }
}

/**
 * dst[dstRow] += src[srcRow] for rows of `rowSize` values of two tensors on `wasm` of one dtype:
 * float32 with the SIMD module where it runs, anything else in JS. Call it after making dst (it may
 * take views of the heap).
 */
export const rowAdder: RowAdder = (wasm, src, dst, rowSize) => {
  const simd = src.dtype === 'float32' && dst.dtype === 'float32' ? simdKernels(wasm) : undefined;
  if (!simd) return jsRowAdder(wasm, src, dst, rowSize);
  const [srcAt, dstAt, rowBytes] = [heapOffset(wasm, src), heapOffset(wasm, dst), rowSize * 4];
  return (srcRow, dstRow) => simd.add_into(srcAt + srcRow * rowBytes, dstAt + dstRow * rowBytes, rowSize);
};

/**
 * For row r of a float32 [rows, cols] tensor on `wasm`: the column of its one 1 (-1 for a row of
 * zeros), or -2 for a row that is not one-hot; undefined where the SIMD module cannot run.
 */
export function hotColumnFinder(wasm: BackendWasm, x: tf.TensorInfo, cols: number): ((row: number) => number) | undefined {
  const simd = x.dtype === 'float32' ? simdKernels(wasm) : undefined;
  if (!simd) return undefined;
  const at = heapOffset(wasm, x);
  return (row) => simd.hot_column(at + row * cols * 4, cols);
}

/** One kernel for the gradient of sigmoid or tanh from its output (attrs: { activation }). */
export const ACTIVATION_GRAD_KERNEL = 'LstmLyricsActivationGrad';
type Activation = 'sigmoid' | 'tanh';
const ACTIVATION_OPS: Record<Activation, number> = { sigmoid: 1, tanh: 2 };

/** tfjs-core's gradients of Sigmoid and Tanh, op by op. */
const STOCK_GRADIENT: Record<Activation, (dy: tf.Tensor, y: tf.Tensor) => tf.Tensor> = {
  sigmoid: (dy, y) => tf.mul(dy, tf.mul(y, tf.sub(tf.scalar(1), y))),
  tanh: (dy, y) => tf.mul(tf.sub(tf.scalar(1), tf.square(y)), dy),
};

/** The same, one float at a time in JS (each step rounded to float32, as the kernels do). */
const GRADIENT_IN_JS: Record<Activation, (dy: number, y: number) => number> = {
  sigmoid: (dy, y) => Math.fround(dy * Math.fround(y * Math.fround(1 - y))),
  tanh: (dy, y) => Math.fround(Math.fround(1 - Math.fround(y * y)) * dy),
};

export const activationGradKernel: tf.KernelConfig = {
  kernelName: ACTIVATION_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const { dy, y } = inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
    const { activation } = attrs as unknown as { activation: Activation };
    const out = wasm.makeOutput(y.shape, 'float32');
    const n = tf.util.sizeFromShape(y.shape);
    // The module does all but the last n % 4 (activationGradient runs this only where it can run).
    const vectors = n - (n % 4);
    if (vectors > 0)
      simdKernels(wasm)!.activation_grad(
        ACTIVATION_OPS[activation],
        heapOffset(wasm, dy),
        heapOffset(wasm, y),
        heapOffset(wasm, out),
        vectors,
      );
    const [dyv, yv, outv] = [dy, y, out].map((t) => wasm.typedArrayFromHeap(t) as Float32Array);
    for (let i = vectors; i < n; i++) outv[i] = GRADIENT_IN_JS[activation](dyv[i], yv[i]);
    return out;
  },
};

/**
 * Registers the gradients of Sigmoid and Tanh (tfjs keeps one per kernel name, for every backend):
 * ACTIVATION_GRAD_KERNEL where it runs (wasm with the SIMD module, float32, dy shaped as y) and the
 * gradient is first-order, since then nothing records the backward pass and the kernel needs no
 * gradient of its own; tfjs-core's formula, op by op, everywhere else (other backends, a gradient
 * of a gradient). Either way the same floats. Returns the function that puts tfjs-core's back.
 */
export function registerActivationGradients(): () => void {
  const stock = [tf.Sigmoid, tf.Tanh].map((kernelName) => tf.getGradient(kernelName));
  for (const [kernelName, activation] of [
    [tf.Sigmoid, 'sigmoid'],
    [tf.Tanh, 'tanh'],
  ] as const) {
    tf.registerGradient({
      kernelName,
      outputsToSave: [true],
      gradFunc: (dy, saved) => {
        const [y] = saved;
        const dyT = dy as tf.Tensor;
        return { x: () => activationGradient(activation, dyT, y) ?? STOCK_GRADIENT[activation](dyT, y) };
      },
    });
  }
  return () => stock.forEach((config) => tf.registerGradient(config));
}

function activationGradient(activation: Activation, dy: tf.Tensor, y: tf.Tensor): tf.Tensor | undefined {
  const engine = tf.engine() as unknown as { state: { gradientDepth: number } };
  if (engine.state.gradientDepth > 0 || !tf.getKernel(ACTIVATION_GRAD_KERNEL, tf.getBackend())) return undefined;
  if (dy.dtype !== 'float32' || y.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, y.shape)) return undefined;
  if (!simdKernels(tf.backend() as BackendWasm)) return undefined;
  return tf.engine().runKernel(ACTIVATION_GRAD_KERNEL, { dy, y }, { activation }) as tf.Tensor;
}

/**
 * How the module's binary() can compute a op b: when one operand's elements repeat along the
 * other's leading axes (the same shape; a bias [N] added to [B, N]; a scalar), the larger's shape
 * is the output's, and `bn` is the smaller's size. Undefined for any other broadcast, left to the
 * library.
 */
export function binaryPlan(
  aShape: readonly number[],
  bShape: readonly number[],
): { shape: number[]; n: number; bn: number; swapped: boolean } | undefined {
  const an = tf.util.sizeFromShape(aShape as number[]);
  const bn = tf.util.sizeFromShape(bShape as number[]);
  const swapped = bn > an || (bn === an && bShape.length > aShape.length);
  const [big, small] = swapped ? [aShape, bShape].reverse() : [aShape, bShape];
  const smallN = swapped ? an : bn;
  // The smaller's axes, leading 1s dropped, must be the larger's last axes.
  const core = small.slice(small.findIndex((d) => d !== 1) === -1 ? small.length : small.findIndex((d) => d !== 1));
  if (small.length > big.length || core.some((d, i) => d !== big[big.length - core.length + i])) return undefined;
  if (smallN === 0) return undefined;
  return { shape: [...big], n: swapped ? bn : an, bn: smallN, swapped };
}

/**
 * Cast from int32 to float32 four values at a time (the module's i32_to_f32); the library copies
 * through a typed array one value at a time, ~0.6 ms for the loss's [1120, 1027] one-hot. Both
 * round to nearest: the same bits. Anything else goes to `original`.
 */
export function simdCast(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x!;
    const wasm = args.backend as BackendWasm;
    const toFloat = x.dtype === 'int32' && (args.attrs as unknown as tf.CastAttrs).dtype === 'float32';
    const simd = toFloat ? simdKernels(wasm) : undefined;
    if (!simd) return original(args);
    const out = wasm.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) simd.i32_to_f32(heapOffset(wasm, x), heapOffset(wasm, out), n);
    return out;
  };
}
