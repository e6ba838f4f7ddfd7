/**
 * Our WebAssembly SIMD kernels (src/accel/wasm-simd.wat) against the plain-JS cpu backend, which
 * computes exp, sigmoid and tanh in double precision and rounds once: so the distance in ulps to
 * it is the error. Sums and scatter-adds are float additions in the library's order: the same bits.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { onBackend, randomFloats, useWasm, WebAssemblyApi } from './helpers';
import { ADAM_UPDATE_KERNEL } from '../src/accel/adam';
import { setAccel } from '../src/accel';
import {
  ACTIVATION_GRAD_KERNEL,
  binaryPlan,
  SIMD_BINARY_MAX_ELEMENTS,
  simdKernels,
  type SimdExports,
} from '../src/accel/wasm-kernels-simd';
import { SIMD_MODULE_SHARED, SIMD_MODULE_UNSHARED } from '../src/accel/wasm-simd-binary';
import { GEMM_MODULE_SHARED, GEMM_MODULE_UNSHARED } from '../src/accel/wasm-gemm-binary';
import { SOFTMAX_MODULE_SHARED, SOFTMAX_MODULE_UNSHARED } from '../src/accel/wasm-softmax-binary';
import { ADAM_EPSILON, makeOptimizer } from '../src/core/optimizer';

interface WasmModuleSource {
  readonly wat: string;
  readonly out: string;
  readonly constant: string;
}
const buildWasm = require('../scripts/build-wasm.js') as {
  generate(module: WasmModuleSource, wat: string): Promise<string>;
  MODULES: WasmModuleSource[];
};

const wasmBackend = (): BackendWasm => tf.engine().findBackend('wasm') as BackendWasm;

/** Distance in float32 steps (ulps) between two floats; 0 for two NaNs, and +0 vs -0 is 1. */
function ulps(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  // Maps the float order onto the integers: negative floats below -0 below +0 below positives.
  const ordered = (i: number): number => (i < 0 ? -0x80000000 - i - 1 : i);
  return Math.abs(ordered(bits[0]) - ordered(bits[1]));
}

/** n floats spread over [lo, hi], deterministic. */
const spread = (n: number, lo: number, hi: number): Float32Array => Float32Array.from(randomFloats(n, 12345, lo, hi));

const SPECIALS = [
  NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  1e-30,
  -1e-30,
  0.625,
  -0.625,
  0.6249,
  88.7,
  88.73,
  89,
  200,
  -87.5,
  -100,
  -103,
  -104,
  -200,
];

async function both(fn: () => tf.Tensor): Promise<{ wasm: Float32Array; cpu: Float32Array }> {
  const run = () => tf.tidy(fn).dataSync() as Float32Array;
  return { wasm: await onBackend('wasm', run), cpu: await onBackend('cpu', run) };
}

/** fn's result on wasm with the speed-ups off (the library's own kernels); they are on again after. */
async function withLibraryKernels<T>(fn: () => T): Promise<T> {
  setAccel({ setting: 'off' });
  try {
    return await onBackend('wasm', fn);
  } finally {
    setAccel({ setting: 'on' });
  }
}

/** A float32 tensor's values as their bit patterns, so that -0 and NaN compare exactly. */
const bits = (t: tf.Tensor): number[] => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));

beforeAll(async () => {
  tf.enableProdMode();
  await useWasm();
});

describe('the SIMD module', () => {
  test.each(buildWasm.MODULES.map((m) => [path.basename(m.wat), m] as const))(
    '%s: the committed module is what it compiles to (run `node scripts/build-wasm.js` after editing it)',
    async (_name, m) => {
      expect(fs.readFileSync(m.out, 'utf8')).toBe(await buildWasm.generate(m, fs.readFileSync(m.wat, 'utf8')));
    },
  );

  test('each module is small enough for browsers to compile synchronously on the main thread (4 KB)', () => {
    const modules = [
      SIMD_MODULE_SHARED,
      SIMD_MODULE_UNSHARED,
      SOFTMAX_MODULE_SHARED,
      SOFTMAX_MODULE_UNSHARED,
      GEMM_MODULE_SHARED,
      GEMM_MODULE_UNSHARED,
    ];
    for (const base64 of modules) expect(Buffer.from(base64, 'base64').length).toBeLessThan(4096);
  });

  test('runs on this backend (Node has WebAssembly SIMD)', () => {
    expect(simdKernels(wasmBackend())).toBeDefined();
  });

  test('gives the same bits on a plain memory as on a shared one', () => {
    const run = (base64: string, shared: boolean): number[] => {
      const memory = new WebAssemblyApi.Memory({ initial: 2, maximum: 2, ...(shared && { shared: true }) });
      const module = new WebAssemblyApi.Module(Buffer.from(base64, 'base64'));
      const simd = new WebAssemblyApi.Instance(module, { env: { memory } }).exports as unknown as SimdExports;
      const heap = new Float32Array(memory.buffer);
      const n = 1027;
      heap.set(spread(n, -20, 20));
      simd.unary(0, 0, 4 * n, n); // exp
      simd.unary(1, 0, 8 * n, n); // sigmoid
      simd.unary(2, 0, 12 * n, n); // tanh
      simd.add_into(0, 4 * n, n);
      simd.activation_grad(1, 0, 4 * n, 28 * n, n - 3); // sigmoid's, from exp's output as y
      simd.activation_grad(2, 0, 8 * n, 29 * n, n - 3); // tanh's
      heap[30 * n] = simd.hot_column(0, n); // -2: x is not one-hot
      heap.set(spread(4 * n, -1, 1), 20 * n); // Adam: g, m, v, w from 20n, new m, v, w from 24n
      simd.adam(80 * n, 84 * n, 88 * n, 92 * n, 96 * n, 100 * n, 104 * n, n - 3, 0.9, 0.1, 0.999, 0.001, 0.5, 0.25, 1e-8, -0.01);
      return Array.from(heap.subarray(n, 30 * n + 1));
    };
    const shared = run(SIMD_MODULE_SHARED, true);
    expect(shared.some((v) => v !== 0)).toBe(true);
    expect(run(SIMD_MODULE_UNSHARED, false)).toEqual(shared);
  });
});

describe('Exp, Sigmoid and Tanh on wasm', () => {
  const ops: [string, (x: tf.Tensor) => tf.Tensor, number][] = [
    ['exp', tf.exp, 1],
    ['sigmoid', tf.sigmoid, 2],
    ['tanh', tf.tanh, 1],
  ];
  const ranges: [number, number][] = [
    [-110, 95], // exp's whole float range, past overflow and into subnormals
    [-12, 12],
    [-1, 1],
    [-1e-3, 1e-3],
  ];
  for (const [name, op, maxUlps] of ops) {
    for (const [lo, hi] of ranges) {
      test(`${name} on [${lo}, ${hi}] is within ${maxUlps} ulp of cpu`, async () => {
        const x = spread(100_003, lo, hi); // not a multiple of 4: the last three take the scalar path
        const { wasm, cpu } = await both(() => op(tf.tensor1d(x)));
        const worst = wasm.reduce((w, v, i) => Math.max(w, ulps(v, cpu[i])), 0);
        expect(worst).toBeLessThanOrEqual(maxUlps);
      });
    }

    test(`${name} of NaN, ±Infinity, ±0, overflow and subnormal results`, async () => {
      const { wasm, cpu } = await both(() => op(tf.tensor1d(SPECIALS)));
      SPECIALS.forEach((x, i) => {
        if (ulps(wasm[i], cpu[i]) > maxUlps) throw new Error(`${name}(${x}): wasm ${wasm[i]}, cpu ${cpu[i]}`);
      });
      const minusZero = SPECIALS.findIndex((x) => Object.is(x, -0)); // indexOf(-0) finds +0
      if (name === 'tanh') expect(Object.is(wasm[minusZero], -0)).toBe(true);
    });

    test(`${name}: the value of an element does not depend on where it sits`, async () => {
      // Each value once in a four-wide lane and once in the one-at-a-time tail.
      const x = spread(7, -30, 30);
      const { wasm: atStart } = await both(() => op(tf.tensor1d(x)));
      const { wasm: atEnd } = await both(() => op(tf.tensor1d([0, 0, 0, 0, ...x.subarray(0, 3)]))); // 7: the last 3 one by one
      expect(Array.from(atEnd.subarray(4))).toEqual(Array.from(atStart.subarray(0, 3)));
    });

    test(`${name} is the SIMD module's, on [32, 256] as the LSTM's gates`, async () => {
      const x = spread(32 * 256, -6, 6);
      const viaKernel = await onBackend('wasm', () => tf.tidy(() => op(tf.tensor2d(x, [32, 256]))).dataSync());
      const direct = await onBackend('wasm', () => {
        const wasm = wasmBackend();
        const [input, out] = [tf.tensor1d(x), tf.zeros([x.length])];
        const offsetOf = (t: tf.Tensor) => wasm.dataIdMap.get(t.dataId)!.memoryOffset;
        simdKernels(wasm)!.unary(['exp', 'sigmoid', 'tanh'].indexOf(name), offsetOf(input), offsetOf(out), x.length);
        const values = out.dataSync();
        tf.dispose([input, out]);
        return values;
      });
      expect(Array.from(viaKernel)).toEqual(Array.from(direct));
    });
  }

  test('int32 input goes to the library kernel (exp of int32 is float32)', async () => {
    const { wasm, cpu } = await both(() => tf.exp(tf.tensor1d([0, 1, -2, 5], 'int32')));
    wasm.forEach((v, i) => expect(ulps(v, cpu[i])).toBeLessThanOrEqual(1));
  });

  test('leave no tensor or wasm buffer behind, and an empty tensor is fine', () => {
    const tensors = tf.memory().numTensors;
    const buffers = wasmBackend().numDataIds();
    tf.tidy(() => {
      for (const [, op] of ops) {
        op(tf.tensor2d(spread(12, -2, 2), [3, 4]));
        expect(op(tf.zeros([0, 5])).shape).toEqual([0, 5]);
      }
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(buffers);
  });
});

describe('Sum over leading axes on wasm', () => {
  // The library sums a transposed copy sequentially; summing the transpose over its LAST axes
  // takes exactly that path (ours declines trailing axes), so the bits must agree.
  const cases: { shape: number[]; axes: number[]; keepDims?: boolean }[] = [
    { shape: [1120, 1027], axes: [0] },
    { shape: [35, 32, 257], axes: [0, 1] },
    { shape: [7, 6], axes: [-2], keepDims: true },
    { shape: [5, 3, 2], axes: [1, 0], keepDims: true },
  ];
  for (const { shape, axes, keepDims } of cases) {
    test(`[${shape}] over axes [${axes}]${keepDims ? ', keepDims' : ''} equals the library's sum to the bit`, async () => {
      const rank = shape.length;
      const reduced = axes.map((a) => (a + rank) % rank);
      const n = reduced.length;
      const x = spread(
        shape.reduce((p, d) => p * d, 1),
        -3,
        3,
      );
      const [ours, library] = await onBackend('wasm', () =>
        tf.tidy(() => {
          const t = tf.tensor(x, shape);
          const viaLeading = tf.sum(t, axes, keepDims);
          // Move the reduced (leading) axes last and sum those.
          const perm = [...Array.from({ length: rank - n }, (_, i) => i + n), ...Array.from({ length: n }, (_, i) => i)];
          const viaTrailing = tf.sum(
            tf.transpose(t, perm),
            Array.from({ length: n }, (_, i) => rank - n + i),
          );
          expect(viaLeading.shape).toEqual(keepDims ? shape.map((d, i) => (reduced.includes(i) ? 1 : d)) : shape.slice(n));
          return [Array.from(viaLeading.dataSync()), Array.from(viaTrailing.dataSync())];
        }),
      );
      expect(ours).toEqual(library);
    });
  }

  test('over an empty axis is 0, as on cpu (the library returns whatever its heap held)', async () => {
    const { wasm, cpu } = await both(() => tf.sum(tf.zeros([0, 6]), 0));
    expect(Array.from(wasm)).toEqual(new Array(6).fill(0));
    expect(Array.from(cpu)).toEqual(new Array(6).fill(0));
  });

  test('int32, all axes and trailing axes go to the library kernel, equal to cpu', async () => {
    const run = () =>
      tf.stack([
        tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), 0).toFloat(),
        tf
          .sum(tf.tensor2d([1.5, 2, 3, 4, 5, 6], [3, 2]))
          .reshape([1])
          .tile([2]),
        tf.sum(tf.tensor2d([1.5, 2, 3, 4, 5, 6], [2, 3]), 1),
      ]);
    const { wasm, cpu } = await both(run);
    expect(Array.from(wasm)).toEqual(Array.from(cpu));
  });

  test('leaves no tensor or wasm buffer behind', () => {
    const tensors = tf.memory().numTensors;
    const buffers = wasmBackend().numDataIds();
    tf.tidy(() => {
      tf.sum(tf.ones([40, 9]), 0, true);
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(buffers);
  });
});

describe('Add, Sub and Multiply of small float32 tensors on wasm', () => {
  // [a's shape, b's shape]: one shape, a bias either side, a scalar either side, sizes that are
  // not a multiple of 4, leading 1s; and one the module declines (a column broadcast).
  const cases: [number[], number[]][] = [
    [
      [32, 256],
      [32, 256],
    ],
    [[32, 256], [256]],
    [[256], [32, 256]],
    [[7, 13], [13]],
    [[13], [1, 7, 13]],
    [[5, 3], []],
    [[], [5, 3]],
    [[1, 6], [6]],
    [
      [2, 1, 9],
      [1, 9],
    ],
    [
      [7, 5],
      [7, 1],
    ],
    [[3], [3]],
  ];
  const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
  ];
  /** Values with NaN, infinities, signed zeros, tiny and huge ones mixed in. */
  const values = (n: number, seed: number): Float32Array => {
    const v = Float32Array.from(randomFloats(n, seed, -4, 4));
    [NaN, Infinity, -Infinity, 0, -0, 1e-38, 3e38, -3e38].forEach((s, i) => {
      if (i * 5 + (seed % 5) < n) v[i * 5 + (seed % 5)] = s;
    });
    return v;
  };
  const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

  for (const [aShape, bShape] of cases) {
    for (const [name, op] of ops) {
      test(`${name} [${aShape}] and [${bShape}] equals the library's, to the bit`, async () => {
        const run = () =>
          tf.tidy(() => {
            const out = op(tf.tensor(values(size(aShape), 1), aShape), tf.tensor(values(size(bShape), 2), bShape));
            return { shape: out.shape, bits: bits(out) };
          });
        const ours = await onBackend('wasm', run);
        const library = await withLibraryKernels(run);
        expect(ours.shape).toEqual(library.shape);
        // Every NaN the same NaN for the comparison: the bits of a NaN's payload are not the point.
        const canonical = (bits: number[]) => bits.map((b) => ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff ? 0x7fc00000 : b));
        expect(canonical(ours.bits)).toEqual(canonical(library.bits));
      });
    }
  }

  test.each([{ shape: [32, 256] }, { shape: [7, 13] }, { shape: [] as number[] }])(
    "neg [$shape] equals the library's, to the bit",
    async ({ shape }) => {
      const run = () => tf.tidy(() => bits(tf.neg(tf.tensor(values(size(shape), 3), shape))));
      expect(await onBackend('wasm', run)).toEqual(await withLibraryKernels(run));
    },
  );

  test('binaryPlan: the module takes one shape, a repeated smaller operand or a scalar; the library the rest', () => {
    expect(binaryPlan([32, 256], [256])).toEqual({ shape: [32, 256], n: 8192, bn: 256, swapped: false });
    expect(binaryPlan([256], [32, 256])).toEqual({ shape: [32, 256], n: 8192, bn: 256, swapped: true });
    expect(binaryPlan([3], [1, 1, 3])).toEqual({ shape: [1, 1, 3], n: 3, bn: 3, swapped: true });
    expect(binaryPlan([], [4])).toEqual({ shape: [4], n: 4, bn: 1, swapped: true });
    expect(binaryPlan([7, 5], [7, 1])).toBeUndefined();
    expect(binaryPlan([2, 3], [3, 2])).toBeUndefined();
    expect(binaryPlan([2, 3], [1, 1, 3])).toBeUndefined();
    expect(binaryPlan([0, 3], [3])).toBeUndefined();
  });

  test('int32 and large tensors go to the library, equal to cpu', async () => {
    const { wasm, cpu } = await both(() =>
      tf.stack([
        tf.add(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')).toFloat(),
        tf.mul(tf.fill([SIMD_BINARY_MAX_ELEMENTS + 3], 1.5), tf.scalar(2)).slice(SIMD_BINARY_MAX_ELEMENTS, 3),
      ]),
    );
    expect(Array.from(wasm)).toEqual(Array.from(cpu));
    expect(Array.from(wasm)).toEqual([5, 7, 9, 3, 3, 3]);
  });

  test('leaves no tensor or wasm buffer behind', async () => {
    await onBackend('wasm', () => {
      const tensors = tf.memory().numTensors;
      const buffers = wasmBackend().numDataIds();
      tf.tidy(() => {
        tf.add(tf.ones([4, 8]), tf.ones([8]));
        tf.sub(tf.scalar(1), tf.ones([5]));
      });
      expect(tf.memory().numTensors).toBe(tensors);
      expect(wasmBackend().numDataIds()).toBe(buffers);
    });
  });
});

describe('Cast from int32 to float32 on wasm', () => {
  test('equals the library’s, to the bit, large values and odd lengths included', async () => {
    const ints = Int32Array.from([
      0,
      1,
      -1,
      7,
      16777217,
      -16777219,
      2147483647,
      -2147483648,
      123456789,
      ...Array.from({ length: 1030 }, (_, i) => (i * 2654435761) | 0),
    ]);
    const run = () => tf.tidy(() => bits(tf.cast(tf.tensor1d(ints, 'int32'), 'float32')));
    const ours = await onBackend('wasm', run);
    expect(ours).toEqual(await withLibraryKernels(run));
    expect(ours.length).toBe(ints.length);
  });

  test('a one-hot matrix becomes floats; other casts and nothing left behind', async () => {
    await onBackend('wasm', () => {
      const tensors = tf.memory().numTensors;
      tf.tidy(() => {
        expect(
          Array.from(
            tf
              .oneHot(tf.tensor1d([2, 0], 'int32'), 3)
              .toFloat()
              .dataSync(),
          ),
        ).toEqual([0, 0, 1, 1, 0, 0]);
        expect(Array.from(tf.cast(tf.tensor1d([1.5, -2.5]), 'int32').dataSync())).toEqual([1, -2]);
        expect(Array.from(tf.cast(tf.tensor1d([true, false], 'bool'), 'float32').dataSync())).toEqual([1, 0]);
      });
      expect(tf.memory().numTensors).toBe(tensors);
    });
  });
});

describe('Cast to the dtype a tensor already has, on wasm', () => {
  test('shares the data instead of copying it; a real cast still converts', async () => {
    await onBackend('wasm', () => {
      const x = tf.tensor1d([1.5, -2.25, 3]);
      const buffers = wasmBackend().numDataIds();
      const same = tf.cast(x, 'float32');
      expect(wasmBackend().numDataIds()).toBe(buffers); // no new buffer
      expect(Array.from(same.dataSync())).toEqual([1.5, -2.25, 3]);
      const ints = tf.cast(x, 'int32');
      expect(ints.dtype).toBe('int32');
      expect(Array.from(ints.dataSync())).toEqual([1, -2, 3]);
      // x outlives its cast, and the cast outlives x.
      same.dispose();
      expect(Array.from(x.dataSync())).toEqual([1.5, -2.25, 3]);
      const again = tf.cast(x, 'float32');
      x.dispose();
      expect(Array.from(again.dataSync())).toEqual([1.5, -2.25, 3]);
      tf.dispose([again, ints]);
      expect(wasmBackend().numDataIds()).toBe(buffers - 1);
    });
  });
});

describe('the gradients of Sigmoid and Tanh on wasm', () => {
  const ops: [string, (x: tf.Tensor) => tf.Tensor, (dy: tf.Tensor, y: tf.Tensor) => tf.Tensor][] = [
    ['sigmoid', tf.sigmoid, (dy, y) => tf.mul(dy, tf.mul(y, tf.sub(tf.scalar(1), y)))],
    ['tanh', tf.tanh, (dy, y) => tf.mul(tf.sub(tf.scalar(1), tf.square(y)), dy)],
  ];
  for (const [name, op, formula] of ops) {
    for (const shape of [[32, 256], [7, 5], [3]]) {
      test(`${name} on [${shape}]: tfjs-core's formula, op by op, to the bit, in one kernel call`, async () => {
        const n = shape.reduce((p, d) => p * d, 1);
        const x = spread(n, -6, 6);
        const dy = spread(n, -3, 3).map((v, i) => (i === 1 ? NaN : i === 2 ? -Infinity : v));
        const runKernel = jest.spyOn(tf.engine(), 'runKernel');
        const [got, expected] = await onBackend('wasm', () =>
          tf.tidy(() => {
            const [X, DY] = [tf.tensor(x, shape), tf.tensor(dy, shape)];
            // d/dx sum(op(x) · dy): backprop hands op's gradient exactly dy.
            const viaBackprop = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(op(v), DY)))(X);
            return [Array.from(viaBackprop.dataSync()), Array.from(formula(DY, op(X)).dataSync())];
          }),
        );
        const fused = runKernel.mock.calls.filter(([k]) => k === ACTIVATION_GRAD_KERNEL).length;
        runKernel.mockRestore();
        expect(fused).toBe(1);
        got.forEach((v, i) => {
          if (!Object.is(v, expected[i])) throw new Error(`element ${i}: backprop ${v}, formula ${expected[i]}`);
        });
      });
    }

    test(`${name}: a gradient of a gradient (tfjs-core's formula, recorded) equals cpu`, async () => {
      const run = () =>
        tf.grad((v: tf.Tensor) =>
          tf
            .grad((u: tf.Tensor) => tf.mul(op(u), u).sum())(v)
            .sum(),
        )(tf.tensor1d(spread(41, -4, 4)));
      const [wasm, cpu] = [await onBackend('wasm', () => tf.tidy(run).dataSync()), await onBackend('cpu', () => tf.tidy(run).dataSync())];
      wasm.forEach((v, i) => expect(Math.abs(v - cpu[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(cpu[i]))));
    });
  }

  test("on cpu, is tfjs-core's formula op by op (no kernel of ours there)", async () => {
    expect(tf.getKernel(ACTIVATION_GRAD_KERNEL, 'cpu')).toBeUndefined();
    for (const [, op, formula] of ops) {
      const runKernel = jest.spyOn(tf.engine(), 'runKernel');
      const [got, expected] = await onBackend('cpu', () =>
        tf.tidy(() => {
          const [X, DY] = [tf.tensor1d(spread(9, -2, 2)), tf.tensor1d(spread(9, -3, 3))];
          return [
            tf
              .grad((v: tf.Tensor) => tf.sum(tf.mul(op(v), DY)))(X)
              .dataSync(),
            formula(DY, op(X)).dataSync(),
          ];
        }),
      );
      expect(runKernel.mock.calls.some(([k]) => k === ACTIVATION_GRAD_KERNEL)).toBe(false);
      runKernel.mockRestore();
      expect(Array.from(got)).toEqual(Array.from(expected));
    }
  });

  test('leaves no tensor or wasm buffer behind', () => {
    const x = tf.tensor2d(spread(35, -2, 2), [7, 5]);
    const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.tanh(tf.sigmoid(v))));
    grad(x).dispose(); // kernels set up once
    const tensors = tf.memory().numTensors;
    const buffers = wasmBackend().numDataIds();
    grad(x).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(buffers);
    x.dispose();
  });
});

describe("Adam's update as one kernel a weight on wasm", () => {
  const shapes = [[7, 5], [1027], [3, 4, 8]];
  const STEPS = 6;
  let runs = 0;

  /** Trains three variables for STEPS steps of fixed gradients; returns every number it ends with. */
  async function run(backend: 'wasm' | 'cpu', optimizer: () => tf.Optimizer): Promise<{ values: number[][]; slots: number[][] }> {
    return onBackend(backend, async () => {
      const vars = shapes.map((s, k) =>
        tf.tidy(() =>
          tf.variable(
            tf.tensor(
              spread(
                s.reduce((p, d) => p * d, 1),
                -1,
                1,
              ).map((v) => v * (k + 1)),
              s,
            ),
            true,
            `adam-test-${++runs}-${k}`,
          ),
        ),
      );
      const opt = optimizer();
      for (let step = 0; step < STEPS; step++) {
        const grads = Object.fromEntries(
          vars.map((v, k) => [
            v.name,
            tf.tensor(
              spread(v.size, -1, 1).map((g, i) => g * 10 ** -(step + k + (i % 5))),
              v.shape,
            ),
          ]),
        );
        opt.applyGradients(grads);
        tf.dispose(Object.values(grads));
      }
      const values = vars.map((v) => Array.from(v.dataSync()));
      const weights = await opt.getWeights();
      const slots = weights.map((w) => Array.from(w.tensor.dataSync()));
      opt.dispose();
      tf.dispose(weights.map((w) => w.tensor)); // the iterations count is a new tensor
      tf.dispose(vars);
      return { values, slots };
    });
  }

  test("gives tf.train.adam's numbers (on cpu) to the bit, weights and optimizer slots, in one kernel call per weight", async () => {
    const runKernel = jest.spyOn(tf.engine(), 'runKernel');
    const ours = await run('wasm', () => makeOptimizer('adam', 0.01));
    const fused = runKernel.mock.calls.filter(([name]) => name === ADAM_UPDATE_KERNEL).length;
    runKernel.mockRestore();
    expect(fused).toBe(STEPS * shapes.length);
    const stock = await run('cpu', () => tf.train.adam(0.01, 0.9, 0.999, ADAM_EPSILON));
    expect(ours.slots.length).toBe(1 + 2 * shapes.length); // iterations, then m and v of each
    expect(ours).toEqual(stock);
  });

  test('the same numbers from its plain-JS path (an engine without WebAssembly SIMD)', async () => {
    const ours = await run('wasm', () => makeOptimizer('adam', 0.01));
    const kernel = tf.getKernel(ADAM_UPDATE_KERNEL, 'wasm')!;
    tf.unregisterKernel(ADAM_UPDATE_KERNEL, 'wasm');
    // The backend as the kernel sees it, but with its memory hidden, so the module cannot run.
    tf.registerKernel({
      ...kernel,
      kernelFunc: (args) => {
        const backend = args.backend as BackendWasm;
        const real = backend.wasm;
        backend.wasm = new Proxy(real, { get: (m, key) => (key === 'wasmMemory' || key === 'asm' ? undefined : Reflect.get(m, key)) });
        try {
          return kernel.kernelFunc(args);
        } finally {
          backend.wasm = real;
        }
      },
    });
    try {
      expect(await run('wasm', () => makeOptimizer('adam', 0.01))).toEqual(ours);
    } finally {
      tf.unregisterKernel(ADAM_UPDATE_KERNEL, 'wasm');
      tf.registerKernel(kernel);
    }
  });

  test('falls back to tf.train.adam for a gradient the kernel does not take (one that broadcasts)', async () => {
    const step = () => {
      const v = tf.tidy(() => tf.variable(tf.tensor1d(spread(6, -1, 1)), true, `adam-test-${++runs}`));
      const opt = makeOptimizer('adam', 0.01);
      const g = tf.scalar(0.5); // tf.train.adam broadcasts it over v
      opt.applyGradients({ [v.name]: g });
      const values = Array.from(v.dataSync());
      tf.dispose([v, g]);
      opt.dispose();
      return values;
    };
    const stock = await onBackend('cpu', step);
    expect(await onBackend('wasm', step)).toEqual(stock);
  });

  test('resumes from its slots (getWeights, setWeights), takes NamedTensor[] and a missing gradient, as tf.train.adam', async () => {
    const resumed = (optimizer: () => tf.Optimizer) =>
      onBackend('wasm', async () => {
        const [a, b] = [0, 1].map((k) =>
          tf.tidy(() => tf.variable(tf.tensor1d(spread(9, -1, 1).map((x) => x * (k + 1))), true, `adam-test-${++runs}`)),
        );
        const grads = (step: number) =>
          [a, b].map((v, k) => ({ name: v.name, tensor: tf.tensor1d(spread(9, -1, 1).map((x) => x * 10 ** -(step + k))) }));
        const first = optimizer();
        for (let step = 0; step < 3; step++) {
          const g = grads(step);
          first.applyGradients(step === 1 ? [g[0]] : g); // b has no gradient in step 1
          tf.dispose(g.map((x) => x.tensor));
        }
        const slots = await first.getWeights();
        const second = optimizer();
        await second.setWeights(slots);
        for (let step = 3; step < 5; step++) {
          const g = grads(step);
          second.applyGradients(g);
          tf.dispose(g.map((x) => x.tensor));
        }
        const values = [a, b].map((v) => Array.from(v.dataSync()));
        tf.dispose([a, b, ...slots.map((w) => w.tensor)]);
        first.dispose();
        second.dispose();
        return values;
      });
    expect(await resumed(() => makeOptimizer('adam', 0.01))).toEqual(await resumed(() => tf.train.adam(0.01, 0.9, 0.999, ADAM_EPSILON)));
  });

  test('on a backend without the kernel, is tf.train.adam itself', async () => {
    expect(tf.getKernel(ADAM_UPDATE_KERNEL, 'cpu')).toBeUndefined();
    expect(await run('cpu', () => makeOptimizer('adam', 0.01))).toEqual(
      await run('cpu', () => tf.train.adam(0.01, 0.9, 0.999, ADAM_EPSILON)),
    );
  });

  test('leaves no tensor or wasm buffer behind', async () => {
    await run('wasm', () => makeOptimizer('adam', 0.01)); // slots and kernels made once
    const tensors = tf.memory().numTensors;
    const buffers = wasmBackend().numDataIds();
    await run('wasm', () => makeOptimizer('adam', 0.01));
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(buffers);
  });
});
