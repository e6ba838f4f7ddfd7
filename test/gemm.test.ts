/**
 * Our matrix product (src/accel/gemm.ts, wasm-gemm.wat) gives the library's bits: every shape
 * around its 4-row tiles and 8-column panels, a bias, transposed operands, NaN, infinities and
 * signed zeros; it leaves nothing behind; and rows shared with the helper thread are the rows one
 * thread computes, on a memory of the test's own and in a CLI process with --threads 2.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { setAccel } from '../src/accel';
import {
  GEMM_HELPER_PROTOCOL,
  type GemmExports,
  gemmHelperControl,
  gemmModuleBytes,
  moduleMultiplies,
  moduleProduct,
  multiplyRows,
} from '../src/accel/gemm';
import { GEMM_HELPER_SOURCE } from '../src/accel/wasm-threads';
import { randomFloats, useWasm, WebAssemblyApi } from './helpers';

const wasmBackend = (): BackendWasm => tf.engine().findBackend('wasm') as BackendWasm;

/** The product's floats with the speed-ups on (ours) and off (the library's XNNPACK). */
function bothWays(fn: () => tf.Tensor): { ours: Float32Array; library: Float32Array } {
  setAccel({ setting: 'off' });
  const library = tf.tidy(fn).dataSync() as Float32Array;
  setAccel({ setting: 'on' });
  const ours = tf.tidy(fn).dataSync() as Float32Array;
  return { ours, library };
}

/** Equal to the bit (NaN payloads and the sign of zero included). */
function expectSameBits(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const at = a.findIndex((bits, i) => bits !== e[i]);
  if (at >= 0) throw new Error(`element ${at}: ours ${actual[at]} vs the library's ${expected[at]}`);
}

const matrix = (rows: number, cols: number, seed: number) => tf.tensor2d(randomFloats(rows * cols, seed), [rows, cols]);

beforeAll(async () => {
  tf.enableProdMode();
  await useWasm();
});

afterAll(() => setAccel({ setting: 'on' }));

describe('our matrix product on the backend', () => {
  it('multiplies on this backend (one thread: ours beats the library there)', () => {
    expect(moduleMultiplies(wasmBackend())).toBe(true);
  });

  // Rows around the 4-row tile, columns around the 8-column panel, depths from 1.
  const shapes: [number, number, number][] = [];
  for (const m of [1, 2, 3, 4, 5, 8, 11]) for (const n of [1, 7, 8, 9, 16, 19]) shapes.push([m, 3, n]);
  shapes.push([32, 256, 256], [33, 1, 1027], [1120, 256, 1027], [37, 1027, 13]);

  it.each(shapes)('[%i, %i]·[%i...] is the library product to the bit', (m, k, n) => {
    const a = matrix(m, k, m * 31 + k);
    const b = matrix(k, n, n * 17 + k);
    // It is ours that runs, not the library's behind a fallback.
    const probe = moduleProduct({ a, b } as unknown as tf.NamedTensorInfoMap, { transposeA: false, transposeB: false }, wasmBackend());
    expect(probe).toBeDefined();
    wasmBackend().disposeData(probe!.dataId);
    const { ours, library } = bothWays(() => tf.matMul(a, b));
    expectSameBits(ours, library);
    tf.dispose([a, b]);
  });

  it('adds a bias as the library does (from the bias, then each product)', () => {
    for (const [m, k, n] of [
      [5, 7, 9],
      [32, 256, 1027],
    ]) {
      const a = matrix(m, k, 1);
      const b = matrix(k, n, 2);
      const bias = tf.tensor1d(randomFloats(n, 3, -5, 5));
      const { ours, library } = bothWays(() => tf.fused.matMul({ a, b, bias }));
      expectSameBits(ours, library);
      bias.dispose();
      tf.dispose([a, b]);
    }
  });

  it('leaves to the library what it does not do: an activation, a batch of matrices, int32', () => {
    const a = matrix(4, 3, 1);
    const b = matrix(3, 8, 2);
    const wasm = wasmBackend();
    const flat = { transposeA: false, transposeB: false };
    expect(moduleProduct({ a, b } as unknown as tf.NamedTensorInfoMap, { ...flat, activation: 'relu' }, wasm)).toBeUndefined();
    const batch = tf.zeros([2, 4, 3]);
    expect(moduleProduct({ a: batch, b } as unknown as tf.NamedTensorInfoMap, flat, wasm)).toBeUndefined();
    const ints = tf.zeros([3, 8], 'int32');
    expect(moduleProduct({ a, b: ints } as unknown as tf.NamedTensorInfoMap, flat, wasm)).toBeUndefined();
    tf.dispose([a, b, batch, ints]);
  });

  it('multiplies transposed operands (backprop) as the library multiplies their transposed copies', () => {
    const a = matrix(35, 16, 5);
    const b = matrix(21, 16, 6);
    const c = matrix(35, 21, 7);
    setAccel({ setting: 'off' });
    const abT = tf.tidy(() => tf.matMul(a, b.transpose()).dataSync()) as Float32Array;
    const aTc = tf.tidy(() => tf.matMul(a.transpose(), c).dataSync()) as Float32Array;
    setAccel({ setting: 'on' });
    expectSameBits(tf.tidy(() => tf.matMul(a, b, false, true).dataSync()) as Float32Array, abT);
    expectSameBits(tf.tidy(() => tf.matMul(a, c, true, false).dataSync()) as Float32Array, aTc);
    tf.dispose([a, b, c]);
  });

  it('gives the library bits for NaN, infinities and signed zeros', () => {
    const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, 1e38, -1e38, 1e-45];
    const values = (n: number, seed: number) => randomFloats(n, seed).map((v, i) => (i % 3 === 0 ? special[(i / 3) % special.length] : v));
    for (const [m, k, n] of [
      [6, 5, 11],
      [9, 2, 17],
    ]) {
      const a = tf.tensor2d(values(m * k, 8), [m, k]);
      const b = tf.tensor2d(values(k * n, 9), [k, n]);
      const { ours, library } = bothWays(() => tf.matMul(a, b));
      expectSameBits(ours, library);
      // -0 · +0 is -0, and a sum from +0 of it is +0: the sign of an all-zero row's product.
      const zeros = tf.tensor2d([-0, -0], [1, 2]);
      const ones = tf.tensor2d([0, 0, 0, 0], [2, 2]);
      const z = bothWays(() => tf.matMul(zeros, ones));
      expectSameBits(z.ours, z.library);
      tf.dispose([a, b, zeros, ones]);
    }
  });

  it('leaks nothing: repeated products with fresh and kept operands leave tensors and backend data where they were', () => {
    const w = matrix(64, 40, 1);
    const round = () => {
      const x = matrix(33, 64, 2);
      const fresh = matrix(64, 40, 3);
      tf.tidy(() => {
        tf.matMul(x, w);
        tf.matMul(x, fresh);
        tf.fused.matMul({ a: x, b: w, bias: tf.ones([40]) });
      });
      tf.dispose([x, fresh]);
    };
    round();
    const tensors = tf.memory().numTensors;
    const data = wasmBackend().numDataIds();
    for (let i = 0; i < 5; i++) round();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(data);
    w.dispose();
  });

  it('frees what it holds when the speed-ups are switched off', () => {
    setAccel({ setting: 'off' });
    const data = wasmBackend().numDataIds();
    setAccel({ setting: 'on' });
    const a = matrix(8, 256, 1);
    const b = matrix(256, 256, 2);
    tf.matMul(a, b).dispose(); // holds b packed (64K elements: large enough to keep)
    expect(wasmBackend().numDataIds()).toBe(data + 3);
    setAccel({ setting: 'off' });
    tf.dispose([a, b]);
    expect(wasmBackend().numDataIds()).toBe(data);
    setAccel({ setting: 'on' });
  });
});

describe('rows shared with the helper thread', () => {
  // A memory and module of the test's own, as wasm-threads.ts gives the helper the backend's.
  const memory = new WebAssemblyApi.Memory({ initial: 400, maximum: 1000, shared: true });
  const module = new WebAssemblyApi.Instance(new WebAssemblyApi.Module(gemmModuleBytes()), { env: { memory } })
    .exports as unknown as GemmExports;
  let worker: Worker;
  let control: Int32Array;

  beforeAll(async () => {
    const shared = gemmHelperControl();
    control = new Int32Array(shared);
    worker = new Worker(GEMM_HELPER_SOURCE, { eval: true, workerData: { memory, bytes: gemmModuleBytes(), control: shared } });
    const started = Date.now();
    while (Atomics.load(control, GEMM_HELPER_PROTOCOL.SLOT.READY) !== 1) {
      if (Date.now() - started > 10_000) throw new Error('the helper did not start');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });

  afterAll(() => worker.terminate());

  /** C = A·B for A [m, k] and B [k, n] in the memory, by one thread or two. */
  function product(m: number, k: number, n: number, helper: boolean): Float32Array {
    const heap = new Float32Array(memory.buffer);
    const a = 0;
    const b = a + m * k;
    const packed = b + k * n;
    const c = packed + 8 * (k + 1) * Math.ceil(n / 8);
    heap.set(randomFloats(m * k, m), a);
    heap.set(randomFloats(k * n, n), b);
    heap.fill(Number.NaN, c, c + m * n);
    module.pack_b(4 * b, k, n, 0, 0, 4 * packed);
    multiplyRows(module, helper ? { control, memory } : undefined, 4 * a, 4 * packed, 4 * c, m, k, n);
    return heap.slice(c, c + m * n);
  }

  it.each([
    [8, 5, 9],
    [9, 3, 17],
    [32, 256, 256],
    [1120, 256, 1027],
  ])("[%i, %i]·[%i...]: two threads give one thread's bits, every row written", (m, k, n) => {
    const one = product(m, k, n, false);
    const two = product(m, k, n, true);
    expect(one.some(Number.isNaN)).toBe(false);
    expectSameBits(two, one);
  });

  it('a helper whose rows fail is an error in one line, not a hang', () => {
    // The helper's share of C lies past the end of the memory: its gemm() traps.
    const end = memory.buffer.byteLength;
    const m = 64;
    const n = 8;
    const k = 1;
    module.pack_b(0, k, n, 0, 0, 1024);
    expect(() => multiplyRows(module, { control, memory }, 0, 1024, end - 4 * n * 40, m, k, n)).toThrow(
      /^the matmul helper thread failed$/,
    );
  });
});

describe('in a CLI process with two threads', () => {
  it('starts the helper and multiplies with it, giving the library bits and leaking nothing', () => {
    const dist = path.join(__dirname, '..', 'dist');
    const script = `
      const tf = require('@tensorflow/tfjs');
      (async () => {
        await require(${JSON.stringify(path.join(dist, 'backend', 'select'))}).selectBackend('wasm', { wasmThreads: 2 });
        const { setAccel } = require(${JSON.stringify(path.join(dist, 'accel'))});
        const gemm = require(${JSON.stringify(path.join(dist, 'accel', 'gemm'))});
        setAccel({ setting: 'on' });
        const started = Date.now();
        while (!gemm.gemmHelperRunning(tf.backend())) {
          if (Date.now() - started > 10000) throw new Error('no helper');
          await new Promise((r) => setTimeout(r, 10));
        }
        const multiplies = gemm.moduleMultiplies(tf.backend());
        const a = tf.randomNormal([1120, 256], 0, 1, 'float32', 1), b = tf.randomNormal([256, 1027], 0, 1, 'float32', 2);
        const small = tf.randomNormal([32, 256], 0, 1, 'float32', 3), odd = tf.randomNormal([37, 13], 0, 1, 'float32', 4);
        const narrow = tf.randomNormal([13, 9], 0, 1, 'float32', 5);
        const products = () => [tf.matMul(a, b), tf.matMul(small, b), tf.matMul(odd, narrow)].map((t) => { const d = t.dataSync().slice(); t.dispose(); return d; });
        const ours = products();
        const tensors = tf.memory().numTensors;
        products();
        const same = tensors === tf.memory().numTensors;
        setAccel({ setting: 'off' });
        const library = products();
        const equal = ours.every((d, i) => Buffer.compare(Buffer.from(d.buffer), Buffer.from(library[i].buffer)) === 0);
        console.log(JSON.stringify({ multiplies, equal, same }));
      })().catch((e) => { console.error(e.message); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: path.join(__dirname, '..'), timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toEqual({ multiplies: true, equal: true, same: true });
  });
});
