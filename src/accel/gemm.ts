/**
 * Float32 matrix products in our module (wasm-gemm.wat) instead of XNNPACK's, with the same bits.
 *
 * XNNPACK's WebAssembly build multiplies at ~60% of what one wasm thread can (the lesson's output
 * layer, [1120, 256]·[256, 1027]: ~18 GMAC/s a thread against ~29 for a loop that only multiplies
 * and adds registers); the module's 4×8 tile, over columns in blocks that stay in the L2 cache,
 * reaches ~25. It adds each output's products in the library's order, from the bias or +0, a
 * multiply and an add each, so every product is the library's to the bit (test/gemm.test.ts):
 * switching it changes no number. B is packed once per product, or once while it lives for a
 * recurrent weight multiplied at every step (held like the transposed copies, held-data.ts).
 *
 * Threads: the library spreads a product over its thread pool, which our module cannot use. Where
 * the backend runs one thread (the page without cross-origin isolation, --threads 1) the module
 * runs on the calling thread, faster than the library there. Where it runs more, in Node,
 * wasm-threads.ts starts one helper thread on the backend's memory (its GEMM_HELPER_SOURCE) and the
 * rows are shared between it and the calling thread; where no helper runs (a page with threads),
 * the library multiplies.
 */
import type * as tf from '@tensorflow/tfjs';
import { type BackendWasm, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { HeldData } from './held-data';
import { type MatMulAttrs, type MatMulInputs, plainMatrices } from './matmul-operands';
import { GEMM_MODULE_SHARED, GEMM_MODULE_UNSHARED } from './wasm-gemm-binary';
import { base64Bytes, heapOffset, type ModuleBuilds, moduleOn } from './wasm-kernels-simd';

export interface GemmExports {
  pack_b(b: number, k: number, n: number, bias: number, hasBias: number, dst: number): void;
  gemm(a: number, packed: number, c: number, m0: number, m1: number, k: number, n: number, blockCols: number): void;
}

const GEMM_BUILDS: ModuleBuilds = { shared: GEMM_MODULE_SHARED, unshared: GEMM_MODULE_UNSHARED };

// ---- the helper thread ---------------------------------------------------------------------------

/** Slots of the helper's control block (an Int32Array on a SharedArrayBuffer). */
const SLOT = { JOB: 0, DONE: 1, FAILED: 2, READY: 3, ARGS: 4 } as const;
const GEMM_ARGS = 8;
const CONTROL_INTS = SLOT.ARGS + GEMM_ARGS;
/** The packed panels of one block of columns (gemm's blockCols): a quarter of a 1 MB L2 cache. */
const BLOCK_BYTES = 256 * 1024;
/** A share of rows the helper has not finished in this long means it is gone: an error, not a hang. */
const HELPER_TIMEOUT_MS = 20_000;
/**
 * Loads of the control block each thread makes before it sleeps (Atomics.wait): a recurrent step's
 * products come every 0.1-0.3 ms, and a futex wake-up costs more than a [32, 256]·[256, 256]
 * product's share. Spinning, that product takes ~50 µs on two threads; sleeping at once, ~80.
 */
const SPINS = 20_000;

/**
 * How the helper thread and the calling thread talk, for the helper's program (wasm-threads.ts):
 * the control block's slots, gemm()'s argument count, and the spins before sleeping.
 */
export const GEMM_HELPER_PROTOCOL = { SLOT, GEMM_ARGS, SPINS } as const;

/** A helper thread (wasm-threads.ts' GEMM_HELPER_SOURCE): its control block, and the memory it multiplies in. */
export interface GemmHelper {
  readonly control: Int32Array;
  readonly memory: object;
}

let helper: GemmHelper | undefined;

/** A fresh control block for a helper thread (wasm-threads.ts passes it as workerData.control). */
export function gemmHelperControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_INTS * 4);
}

/** The module's bytes for a shared memory, as the helper thread instantiates them. */
export function gemmModuleBytes(): Uint8Array {
  return base64Bytes(GEMM_MODULE_SHARED);
}

/** Uses (or, undefined, stops using) a helper thread started on `memory`. */
export function setGemmHelper(next: GemmHelper | undefined): void {
  helper = next;
}

/** The helper, if one runs on this backend's memory and has started. */
function helperFor(wasm: BackendWasm): GemmHelper | undefined {
  if (!helper || Atomics.load(helper.control, SLOT.READY) !== 1 || Atomics.load(helper.control, SLOT.FAILED) !== 0) return undefined;
  const module = wasm.wasm as unknown as { wasmMemory?: object };
  return module.wasmMemory === helper.memory ? helper : undefined;
}

/** Whether a helper thread shares this backend's products (for the tests). */
export function gemmHelperRunning(wasm: BackendWasm): boolean {
  return helperFor(wasm) !== undefined;
}

/**
 * Whether our module multiplies on this backend: it runs here, and on as many threads as the
 * library (one, or two with the helper); the library's pool beats our one thread.
 */
export function moduleMultiplies(wasm: BackendWasm): boolean {
  return gemmOn(wasm) !== undefined;
}

/** The module and the helper (if any) where our module multiplies on this backend (moduleMultiplies). */
function gemmOn(wasm: BackendWasm): { module: GemmExports; shared: GemmHelper | undefined } | undefined {
  const shared = helperFor(wasm);
  if (!shared && getThreadsCount() > 1) return undefined;
  const module = moduleOn<GemmExports>(wasm, GEMM_BUILDS);
  return module && { module, shared };
}

/**
 * gemm() over rows [0, m) of C at `c` (A at `a`, B packed at `packed`), the helper doing the second
 * share where `shared`. Exported for test/gemm.test.ts, which runs it on a memory of its own.
 */
export function multiplyRows(
  module: GemmExports,
  shared: GemmHelper | undefined,
  a: number,
  packed: number,
  c: number,
  m: number,
  k: number,
  n: number,
): void {
  const blockCols = 8 * Math.max(1, Math.floor(BLOCK_BYTES / (32 * (k + 1))));
  // A share of fewer than 4 rows would leave a thread mostly idle; split on a 4-row tile.
  const split = shared && m >= 8 ? Math.ceil(m / 8) * 4 : m;
  if (split === m || !shared) {
    module.gemm(a, packed, c, 0, m, k, n, blockCols);
    return;
  }
  const ctl = shared.control;
  const job = Atomics.load(ctl, SLOT.JOB) + 1;
  [a, packed, c, split, m, k, n, blockCols].forEach((v, i) => Atomics.store(ctl, SLOT.ARGS + i, v));
  Atomics.store(ctl, SLOT.JOB, job);
  Atomics.notify(ctl, SLOT.JOB);
  module.gemm(a, packed, c, 0, split, k, n, blockCols);
  for (let i = 0; i < SPINS && Atomics.load(ctl, SLOT.DONE) !== job; i++);
  for (let done = Atomics.load(ctl, SLOT.DONE); done !== job; done = Atomics.load(ctl, SLOT.DONE)) {
    if (Atomics.wait(ctl, SLOT.DONE, done, HELPER_TIMEOUT_MS) === 'timed-out') {
      Atomics.store(ctl, SLOT.FAILED, 1);
      throw new Error(`the matmul helper thread did not finish its rows in ${HELPER_TIMEOUT_MS / 1000} s`);
    }
  }
  if (Atomics.load(ctl, SLOT.FAILED) !== 0) throw new Error('the matmul helper thread failed');
}

// ---- the product ---------------------------------------------------------------------------------

/** B packed with its bias (pack_b), kept while B lives: a recurrent weight is multiplied at every step. */
const packedOperands = new HeldData(4);
/** A smaller B packs in microseconds: holding it would only churn what is held. */
const HOLD_MIN_ELEMENTS = 65536;

/** Frees what is held for products whose operands are gone (call before any product). */
export function dropStalePacked(wasm: BackendWasm): void {
  packedOperands.dropStale(wasm);
}

/** Frees everything held (when the speed-ups are removed). */
export function dropAllPacked(wasm: BackendWasm): void {
  packedOperands.dropAll(wasm);
}

/**
 * a·b (+ bias) for a flag-free BatchMatMul or _FusedMatMul of two float32 matrices, in our module,
 * where it is faster than the library's (see the top): undefined where it does not apply, for the
 * caller to run the library's.
 */
export function moduleProduct(inputs: tf.NamedTensorInfoMap, attrs: MatMulAttrs, wasm: BackendWasm): tf.TensorInfo | undefined {
  // The operands as plainMatrices reads them, the bias apart: the module adds one.
  const { bias, ...operands } = inputs as MatMulInputs;
  const plain = attrs.transposeA || attrs.transposeB ? undefined : plainMatrices(operands as tf.NamedTensorInfoMap, attrs);
  if (!plain) return undefined;
  const { a, b } = plain;
  const [m, k] = a.shape.slice(-2);
  const [kb, n] = b.shape.slice(-2);
  if (k !== kb || k === 0 || m === 0 || n === 0) return undefined;
  if (bias && (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== n)) return undefined;
  const on = gemmOn(wasm);
  if (!on) return undefined;
  const { module, shared } = on;

  const key = `gemm ${k}x${n}`;
  const sources = bias ? [b.dataId, bias.dataId] : [b.dataId];
  const hold = k * n >= HOLD_MIN_ELEMENTS;
  let packed = hold ? packedOperands.find(wasm, sources, key) : undefined;
  if (!packed) {
    packed = wasm.makeOutput([8 * (k + 1) * Math.ceil(n / 8)], 'float32');
    module.pack_b(heapOffset(wasm, b), k, n, bias ? heapOffset(wasm, bias) : 0, bias ? 1 : 0, heapOffset(wasm, packed));
    if (hold) packedOperands.hold(wasm, sources, key, packed);
  }
  const batch = a.shape.length >= b.shape.length ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  const out = wasm.makeOutput([...batch, m, n], 'float32');
  try {
    multiplyRows(module, shared, heapOffset(wasm, a), heapOffset(wasm, packed), heapOffset(wasm, out), m, k, n);
  } catch (err) {
    wasm.disposeData(out.dataId);
    throw err;
  } finally {
    if (!hold) wasm.disposeData(packed.dataId);
  }
  return out;
}
