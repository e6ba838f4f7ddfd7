/**
 * The wasm kernel fixes must give the same numbers as the plain-JS cpu backend, which has neither
 * problem. Data crosses backends only as plain arrays, so each result is computed wholly on one.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { setAccel } from '../src/accel';
import { dropAllPacked } from '../src/accel/gemm';
import { randomFloats } from './helpers';

type Backend = 'wasm' | 'cpu';

/** Deterministic values in [-1, 1): results must not depend on the run. */
const values = (n: number, seed: number): number[] => randomFloats(n, seed);

const size = (shape: number[]): number => shape.reduce((p, d) => p * d, 1);

/** Runs fn on `backend`, returns its flat result, and leaves wasm active again. */
async function on(backend: Backend, fn: () => tf.Tensor): Promise<number[]> {
  await tf.setBackend(backend);
  try {
    return Array.from(tf.tidy(fn).dataSync());
  } finally {
    await tf.setBackend('wasm');
  }
}

/** Runs fn on wasm and expects it to leave no engine tensor and no wasm buffer behind. */
function expectNoLeak(fn: () => void): void {
  const tensors = tf.memory().numTensors;
  const buffers = tf.engine().backend.numDataIds();
  tf.tidy(fn);
  expect(tf.memory().numTensors).toBe(tensors);
  expect(tf.engine().backend.numDataIds()).toBe(buffers);
}

const wasmBackend = (): BackendWasm => tf.engine().findBackend('wasm') as BackendWasm;

function expectClose(actual: number[], expected: number[], rtol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    if (Math.abs(a - expected[i]) > rtol * Math.max(1, Math.abs(expected[i]))) {
      throw new Error(`element ${i}: wasm ${a} vs cpu ${expected[i]}`);
    }
  });
}

beforeAll(async () => {
  tf.enableProdMode(); // silences the cpu backend's "install tfjs-node" banner
  // No setWasmPaths needed in Node: the package's node bundle loads the .wasm next to itself.
  expect(await tf.setBackend('wasm')).toBe(true);
  expect(setAccel({ setting: 'on' }).on).toBe(true);
});

describe('the kernels behind the switch', () => {
  const names = [
    'BatchMatMul',
    '_FusedMatMul',
    'UnsortedSegmentSum',
    'Identity',
    'Slice',
    'Unpack',
    'SplitV',
    'GatherV2',
    'Square',
    'Cast',
    'Exp',
    'Sigmoid',
    'Tanh',
    'Sum',
    'Add',
    'Sub',
    'Multiply',
    'Neg',
  ];
  const kernels = () => names.map((n) => tf.getKernel(n, 'wasm')?.kernelFunc);
  test('off puts every library kernel back, on replaces each again, and switching twice changes nothing', () => {
    const on = kernels();
    setAccel({ setting: 'off' });
    const off = kernels();
    setAccel({ setting: 'off' });
    expect(kernels()).toEqual(off);
    names.forEach((name, i) => expect([name, off[i]]).not.toEqual([name, on[i]]));
    // UnsortedSegmentSum is missing from stock wasm (tf.gather's gradient needs it): it stays, in plain JS.
    expect(off[names.indexOf('UnsortedSegmentSum')]).toBeDefined();
    setAccel({ setting: 'on' });
    setAccel({ setting: 'on' });
    const again = kernels();
    names.forEach((name, i) => expect([name, again[i]]).not.toEqual([name, off[i]]));
  });
});

describe('matMul on wasm equals cpu', () => {
  // [batch dims, M, K, N]: out = a·b with a logically [...batch, M, K] and b [...batch, K, N].
  const shapes: [number[], number, number, number][] = [
    [[], 3, 5, 4],
    [[], 17, 33, 9],
    [[], 1, 6, 7],
    [[2], 3, 5, 4],
    [[3], 8, 2, 11],
  ];
  for (const [batch, m, k, n] of shapes) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const aShape = [...batch, ...(transposeA ? [k, m] : [m, k])];
        const bShape = [...batch, ...(transposeB ? [n, k] : [k, n])];
        const a = values(size(aShape), 1 + m * k);
        const b = values(size(bShape), 2 + k * n);
        const title = `[${aShape}]${transposeA ? 'ᵀ' : ''} x [${bShape}]${transposeB ? 'ᵀ' : ''}`;

        test(`matMul ${title}`, async () => {
          const run = () => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), transposeA, transposeB);
          expectClose(await on('wasm', run), await on('cpu', run));
        });

        // No bias when batched: wasm's own _FusedMatMul adds a bias wrongly to every row but the
        // first of each batch item (upstream bug, with or without this fix; tf.layers never hits it
        // because it reshapes to rank 2 before a fused matMul).
        const withBias = batch.length === 0;
        test(`fused.matMul ${title} with ${withBias ? 'bias and ' : ''}relu`, async () => {
          const bias = values(n, 3 + n);
          const run = () =>
            tf.fused.matMul({
              a: tf.tensor(a, aShape),
              b: tf.tensor(b, bShape),
              transposeA,
              transposeB,
              bias: withBias ? tf.tensor1d(bias) : undefined,
              activation: 'relu',
            });
          expectClose(await on('wasm', run), await on('cpu', run));
        });
      }
    }
  }

  // Batch broadcasting: a shared rank-2 (or batch-1) weight matrix against a batch of inputs.
  for (const [aBatch, bBatch] of [
    [[2], []],
    [[2], [1]],
    [[1], [3]],
  ]) {
    for (const transposeB of [false, true]) {
      const aShape = [...aBatch, 3, 5];
      const bShape = [...bBatch, ...(transposeB ? [4, 5] : [5, 4])];
      test(`matMul broadcasts [${aShape}] x [${bShape}]${transposeB ? 'ᵀ' : ''}`, async () => {
        const a = values(size(aShape), 12);
        const b = values(size(bShape), 13);
        const run = () => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), false, transposeB);
        expectClose(await on('wasm', run), await on('cpu', run));
      });
    }
  }

  for (const [transposeA, transposeB] of [
    [false, true],
    [true, false],
    [true, true],
  ]) {
    test(`matMul transposeA=${transposeA} transposeB=${transposeB} leaks no tensor or wasm buffer`, () => {
      const a = tf.tensor(values(2 * 12, 4), [2, ...(transposeA ? [4, 3] : [3, 4])]);
      const b = tf.tensor(values(2 * 20, 5), [2, ...(transposeB ? [5, 4] : [4, 5])]);
      const tensors = tf.memory().numTensors;
      const buffers = tf.engine().backend.numDataIds();
      tf.tidy(() => {
        tf.matMul(a, b, transposeA, transposeB);
      });
      expect(tf.memory().numTensors).toBe(tensors);
      expect(tf.engine().backend.numDataIds()).toBe(buffers);
      tf.dispose([a, b]);
    });
  }

  test('gradients of a matMul (transposed matMuls inside) equal cpu', async () => {
    const a = values(6 * 5, 6);
    const b = values(5 * 4, 7);
    const run = () => {
      const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([
        tf.tensor2d(a, [6, 5]),
        tf.tensor2d(b, [5, 4]),
      ]);
      return tf.concat([da.flatten(), db.flatten()]);
    };
    expectClose(await on('wasm', run), await on('cpu', run));
  });
});

describe("a weight's gradient aᵀ·b with b wider than a, as (bᵀ·a)ᵀ, on wasm", () => {
  // The output layer's xᵀ·dy and a gate matrix's; a batch dim of 1; one below the size it applies to.
  const cases: [number[], number[]][] = [
    [
      [1120, 256],
      [1120, 1027],
    ],
    [
      [70, 16],
      [70, 1024],
    ],
    [
      [1, 40, 8],
      [1, 40, 2000],
    ],
    [
      [30, 20],
      [30, 50],
    ],
  ];
  test.each(cases)('%jᵀ·%j equals the product of the transposed copy, to the bit, and cpu', async (aShape, bShape) => {
    const x = () => tf.tensor(values(size(aShape), 51), aShape) as tf.Tensor as tf.Tensor2D;
    const dy = () => tf.tensor(values(size(bShape), 52), bShape) as tf.Tensor as tf.Tensor2D;
    const ours = await on('wasm', () => tf.matMul(x(), dy(), true, false));
    // The plain product of an explicit transpose: the library packs b, the path this replaces.
    const plain = await on('wasm', () => {
      const rank = aShape.length;
      const perm = [...aShape.keys()];
      [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
      return tf.matMul(tf.transpose(x(), perm), dy());
    });
    expect(ours).toEqual(plain);
    // (cpu's plain-JS matmul takes seconds on the output layer's shape: the smaller ones suffice.)
    if (size(aShape) * bShape[bShape.length - 1] < 1e7) expectClose(ours, await on('cpu', () => tf.matMul(x(), dy(), true, false)), 1e-4);
  });

  test('the output has the batch dims of the inputs; nothing is left behind', () => {
    const a = tf.ones([1, 40, 8]);
    const b = tf.ones([1, 40, 2000]);
    tf.matMul(a, b, true, false).dispose(); // first-use allocations
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    const product = tf.matMul(a, b, true, false);
    expect(product.shape).toEqual([1, 8, 2000]);
    expect(product.dataSync()[1234]).toBe(40);
    product.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    tf.dispose([a, b]);
  });
});

describe('UnsortedSegmentSum on wasm equals cpu', () => {
  // Repeated ids, ids never used (their rows must be zero) and, last, ids out of range (dropped).
  const cases: { xShape: number[]; ids: number[]; numSegments: number }[] = [
    { xShape: [5], ids: [0, 2, 0, 2, 3], numSegments: 5 },
    { xShape: [5, 3], ids: [0, 2, 0, 2, 3], numSegments: 5 },
    { xShape: [4, 2, 3], ids: [1, 1, 1, 0], numSegments: 3 },
    { xShape: [6, 4], ids: [3, 0, 3, 3, 0, 5], numSegments: 7 },
    { xShape: [4, 2], ids: [-1, 1, 4, 1], numSegments: 3 },
    // Rows of 1027: four floats at a time, then the last three one at a time.
    { xShape: [6, 1027], ids: [2, 0, 2, 1, 2, 0], numSegments: 4 },
  ];
  for (const { xShape, ids, numSegments } of cases) {
    const x = values(size(xShape), 8 + size(xShape));
    test(`x [${xShape}], ids [${ids}], ${numSegments} segments`, async () => {
      const run = () => tf.unsortedSegmentSum(tf.tensor(x, xShape), tf.tensor1d(ids, 'int32'), numSegments);
      const onWasm = await on('wasm', run);
      expectClose(onWasm, await on('cpu', run));
      expect(onWasm).toHaveLength(numSegments * size(xShape.slice(1)));
    });
  }

  test('int32 x (its rows added in JS) equals cpu', async () => {
    const run = () =>
      tf.unsortedSegmentSum(tf.tensor2d([1, -2, 3, 40, 5, 6, -7, 8, 9], [3, 3], 'int32'), tf.tensor1d([2, 0, 2], 'int32'), 3);
    const onWasm = await on('wasm', run);
    expect(onWasm).toEqual(await on('cpu', run));
    expect(onWasm).toEqual([40, 5, 6, 0, 0, 0, -6, 6, 12]);
  });

  test('zeroes its output even where the heap held old data', () => {
    const x = tf.ones([2, 8]);
    const ids = tf.tensor1d([0, 0], 'int32');
    // Free a same-sized buffer of sevens just before, so the allocator likely hands it back.
    tf.fill([6, 8], 7).dispose();
    const out = tf.unsortedSegmentSum(x, ids, 6);
    expect(Array.from(out.dataSync())).toEqual([...Array(8).fill(2), ...Array(40).fill(0)]);
    tf.dispose([x, ids, out]);
  });

  test('leaks no tensor or wasm buffer', () => {
    const x = tf.tensor2d(values(12, 9), [4, 3]);
    const ids = tf.tensor1d([2, 0, 2, 1], 'int32');
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    tf.tidy(() => {
      tf.unsortedSegmentSum(x, ids, 4);
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    tf.dispose([x, ids]);
  });
});

describe('gradient of tf.gather on wasm equals cpu', () => {
  // An embedding lookup: repeated rows must accumulate, rows never looked up get zero gradient.
  const cases: { wShape: number[]; ids: number[]; idsShape: number[] }[] = [
    { wShape: [6, 4], ids: [1, 3, 1, 0, 1], idsShape: [5] },
    { wShape: [10, 3], ids: [2, 2, 7, 0, 9, 2], idsShape: [2, 3] },
    { wShape: [5, 2, 3], ids: [4, 0, 4], idsShape: [3] },
  ];
  for (const { wShape, ids, idsShape } of cases) {
    const w = values(size(wShape), 10 + size(wShape));
    const outShape = [...idsShape, ...wShape.slice(1)];
    const weights = values(size(outShape), 11);
    test(`W [${wShape}], ids [${ids}] shaped [${idsShape}]`, async () => {
      const run = () => {
        const ix = tf.tensor(ids, idsShape, 'int32');
        const coeffs = tf.tensor(weights, outShape);
        return tf.grad((W: tf.Tensor) => tf.sum(tf.mul(tf.gather(W, ix), coeffs)))(tf.tensor(w, wShape));
      };
      expectClose(await on('wasm', run), await on('cpu', run));
    });
  }
});

describe('cache of transposed matMul operands', () => {
  // Operands of >= 64K elements are cached; these are 256·512 = 128K.
  const K = 256;
  const N = 512;

  test('repeated matMuls with one large transposed weight equal cpu', async () => {
    const w = values(N * K, 21);
    const x = values(4 * K, 22);
    const run = () => {
      const W = tf.tensor2d(w, [N, K]);
      const X = tf.tensor2d(x, [4, K]);
      // The same weight, transposed as B then as A, and via a batch-1 reshape (same dataId).
      const outs = [0, 1, 2].map(() => tf.matMul(X, W, false, true));
      outs.push(tf.matMul(W, tf.tensor2d(x.slice(0, N * 2), [N, 2]), true, false)); // W as a transposed A
      outs.push(tf.matMul(X.reshape([1, 4, K]), W.reshape([1, N, K]), false, true).reshape([4, N]));
      return tf.concat(outs.map((o) => o.flatten()));
    };
    expectClose(await on('wasm', run), await on('cpu', run));
  });

  test('a reshape of the same data to other last two dims is not served the cached copy', async () => {
    const w = values(N * K, 23);
    const run = () => {
      const W = tf.tensor2d(w, [N, K]);
      const first = tf.matMul(tf.ones([2, K]), W, false, true); // caches Wᵀ read as [N, K]
      const second = tf.matMul(tf.ones([2, N]), W.reshape([K, N]), false, true); // same dataId read as [K, N]
      return tf.concat([first.flatten(), second.flatten()]);
    };
    expectClose(await on('wasm', run), await on('cpu', run));
  });

  test('a variable assigned a new value is multiplied with the new value', () => {
    const initial = tf.tensor2d(values(N * K, 24), [N, K]);
    const v = tf.variable(initial); // shares initial's dataId
    initial.dispose();
    const x = tf.tensor2d(values(3 * K, 25), [3, K]);
    const before = tf.tidy(() => tf.matMul(x, v, false, true));
    const doubled = v.mul<tf.Tensor2D>(2);
    v.assign(doubled); // v now shares doubled's dataId
    doubled.dispose();
    const after = tf.matMul(x, v, false, true);
    expectClose(
      Array.from(after.dataSync()),
      Array.from(before.dataSync(), (y) => 2 * y),
    );
    tf.dispose([v, x, before, after]);
  });

  test('keeps at most 4 copies, and frees each once its source is disposed', () => {
    // Counts the copies: the products' packed operands (gemm.ts, held as well) are freed first.
    const heldBuffers = () => {
      dropAllPacked(tf.engine().backend as BackendWasm);
      return tf.engine().backend.numDataIds();
    };
    const x = tf.tensor2d(values(2 * K, 26), [2, K]);
    // Empty the cache: 4 fresh weights evict whatever earlier tests left, then they die too.
    const fresh = [0, 1, 2, 3].map((i) => tf.tensor2d(values(N * K, 26 + i), [N, K]));
    for (const w of fresh) tf.matMul(x, w, false, true).dispose();
    tf.dispose(fresh);
    tf.matMul(x, x, false, true).dispose(); // any matMul drops the copies of dead sources
    const buffers = heldBuffers();
    const weights = [0, 1, 2, 3, 4, 5].map((i) => tf.tensor2d(values(N * K, 30 + i), [N, K]));
    const bufferOfWeights = heldBuffers();
    for (const w of weights) tf.matMul(x, w, false, true).dispose();
    expect(heldBuffers()).toBe(bufferOfWeights + 4);
    tf.dispose(weights);
    tf.matMul(x, x, false, true).dispose();
    expect(heldBuffers()).toBe(buffers);
    x.dispose();
  });
});

describe('matMul with a one-hot left operand on wasm equals cpu', () => {
  /** [rows, cols] with a 1 at (r, hot[r]); hot -1 leaves a row of zeros. */
  const oneHot = (hot: number[], cols: number): number[] => hot.flatMap((h) => Array.from({ length: cols }, (_, c) => (c === h ? 1 : 0)));
  const hot = [3, 0, 3, 7, -1, 2]; // a repeated row, and a row of zeros
  const [M, K, N] = [hot.length, 9, 16];
  const a = oneHot(hot, K);
  const b = values(K * N, 40);
  const bT = values(N * K, 41);
  const bias = values(N, 42);

  const cases: { title: string; run: () => tf.Tensor }[] = [
    { title: 'a·b', run: () => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N])) },
    { title: 'a·bᵀ', run: () => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(bT, [N, K]), false, true) },
    { title: 'a·b, batch of 1', run: () => tf.matMul(tf.tensor3d(a, [1, M, K]), tf.tensor3d(b, [1, K, N])) },
    { title: 'a·b, batch of 1 against rank 2', run: () => tf.matMul(tf.tensor3d(a, [1, M, K]), tf.tensor2d(b, [K, N])) },
    {
      title: 'fused a·b + bias',
      run: () => tf.fused.matMul({ a: tf.tensor2d(a, [M, K]), b: tf.tensor2d(b, [K, N]), bias: tf.tensor1d(bias) }),
    },
    {
      title: 'fused a·bᵀ + bias',
      run: () => tf.fused.matMul({ a: tf.tensor2d(a, [M, K]), b: tf.tensor2d(bT, [N, K]), transposeB: true, bias: tf.tensor1d(bias) }),
    },
    {
      title: 'fused a·b + bias, relu (general path)',
      run: () => tf.fused.matMul({ a: tf.tensor2d(a, [M, K]), b: tf.tensor2d(b, [K, N]), bias: tf.tensor1d(bias), activation: 'relu' }),
    },
    // aᵀ·dz with a [M, K]: dz [M, N], the result [K, N] sums dz's rows by hot column.
    { title: 'aᵀ·dz', run: () => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(values(M * N, 43), [M, N]), true, false) },
    { title: 'aᵀ·dz, batch of 1', run: () => tf.matMul(tf.tensor3d(a, [1, M, K]), tf.tensor3d(values(M * N, 43), [1, M, N]), true, false) },
    { title: 'aᵀ·dzᵀ', run: () => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(values(N * M, 44), [N, M]), true, true) },
    {
      title: 'a batch of 2 (general path)',
      run: () => tf.matMul(tf.tensor3d([...a, ...a.slice().reverse()], [2, M, K]), tf.tensor3d(b, [1, K, N])),
    },
    // Not one-hot: a second 1 in a row; a value other than 0 and 1 late in the matrix.
    {
      title: 'two 1s in a row (general path)',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (i === 1 ? 1 : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    {
      title: 'a 2 in the last row (general path)',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (i === M * K - 1 ? 2 : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    { title: 'all zeros', run: () => tf.fused.matMul({ a: tf.zeros([M, K]), b: tf.tensor2d(b, [K, N]), bias: tf.tensor1d(bias) }) },
    // The check runs four floats at a time, then the last K % 4 one by one: odd values in both.
    {
      title: 'a 0.5 beside the 1 in the same four (general path)',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (i === 2 ? 0.5 : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    {
      title: 'a second 1 in the last column (general path)',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (i === K - 1 ? 1 : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    {
      title: 'a NaN (general path: it spreads)',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (i === K + 5 ? NaN : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    {
      title: '-0 counts as 0',
      run: () =>
        tf.matMul(
          tf.tensor2d(
            a.map((v, i) => (v === 0 && i % 2 ? -0 : v)),
            [M, K],
          ),
          tf.tensor2d(b, [K, N]),
        ),
    },
    {
      title: 'rows of 1027 (the lesson vocabulary), aᵀ·dz',
      run: () =>
        tf.matMul(tf.oneHot(tf.tensor1d([5, 1026, 0, 5], 'int32'), 1027).toFloat(), tf.tensor2d(values(4 * N, 47), [4, N]), true, false),
    },
  ];
  for (const { title, run } of cases) {
    test(title, async () => expectClose(await on('wasm', run), await on('cpu', run)));
  }

  test('the gradients of a fused one-hot matMul (as in tf.layers.lstm) equal cpu', async () => {
    const run = () => {
      const f = (w: tf.Tensor, c: tf.Tensor) =>
        tf.sum(
          tf.square(
            tf.fused.matMul({
              a: tf.tensor2d(a, [M, K]).reshape([1, M, K]) as tf.Tensor3D,
              b: w.reshape([1, K, N]) as tf.Tensor3D,
              bias: c,
            }),
          ),
        );
      const [dw, dc] = tf.grads(f)([tf.tensor2d(b, [K, N]), tf.tensor1d(bias)]);
      return tf.concat([dw.flatten(), dc]);
    };
    expectClose(await on('wasm', run), await on('cpu', run));
  });

  test('with b made on cpu: moved into a growing wasm heap before any view of it is taken', async () => {
    // 64 MB of b: moving it in grows the heap, which detaches views taken before (it threw).
    const [k, n] = [8, 1 << 21];
    const bValues = Float32Array.from({ length: k * n }, (_, i) => (i % 7) + 1);
    for (const transposeA of [false, true]) {
      await tf.setBackend('cpu');
      const b = tf.tensor2d(bValues, [k, n]);
      await tf.setBackend('wasm');
      // a·b picks rows 3 and 5 of b; aᵀ·b with a [k, 2] adds row 0 into row 0 and row 1 into row 1.
      const out = transposeA
        ? tf.matMul(tf.tensor2d(oneHot([0, 1, -1, -1, -1, -1, -1, -1], 2), [k, 2]), b, true, false)
        : tf.matMul(tf.tensor2d(oneHot([3, 5], k), [2, k]), b);
      const values = out.dataSync();
      (transposeA ? [0, 1] : [3, 5]).forEach((row, r) => {
        expect(values.subarray(r * n, (r + 1) * n).every((v, i) => v === bValues[row * n + i])).toBe(true);
      });
      tf.dispose([b, out]);
    }
  });

  test('takes the fast path: rows of b that are not picked do not matter', () => {
    // A matmul computes 0·Infinity = NaN for every output; a gather or scatter never reads them.
    const bad = b.map((v, i) => (Math.floor(i / N) === 5 ? Infinity : v)); // row 5 of b, picked by no row of a
    const gathered = tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(bad, [K, N]));
    expect(gathered.dataSync().every(Number.isFinite)).toBe(true);
    const dz = values(M * N, 45).map((v, i) => (Math.floor(i / N) === 4 ? Infinity : v)); // dz row of the zero row of a
    const scattered = tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(dz, [M, N]), true, false);
    expect(scattered.dataSync().every(Number.isFinite)).toBe(true);
    tf.dispose([gathered, scattered]);
  });

  test('leaks no tensor or wasm buffer', () => {
    const A = tf.tensor2d(a, [M, K]);
    const B = tf.tensor2d(bT, [N, K]);
    const dz = tf.tensor2d(values(M * N, 46), [M, N]);
    expectNoLeak(() => {
      tf.fused.matMul({ a: A, b: B, transposeB: true, bias: tf.tensor1d(bias) });
      tf.matMul(A, dz, true, false);
    });
    tf.dispose([A, B, dz]);
  });
});

describe('Transpose on wasm', () => {
  // Moving only axes of size 1 keeps the layout: x's data under the new shape, no copy.
  const cases: [number[], number[], boolean][] = [
    [[4, 6], [0, 1], true],
    [[1, 5], [1, 0], true],
    [[3, 1, 4], [1, 0, 2], true],
    [[2, 1, 3, 1], [1, 0, 3, 2], true],
    [[2, 3], [1, 0], false],
    [[2, 1, 3], [2, 1, 0], false],
  ];
  for (const [shape, perm, shares] of cases) {
    test(`[${shape}] by [${perm}] equals cpu${shares ? ', sharing the data' : ''}`, async () => {
      const run = () => tf.transpose(tf.tensor(values(size(shape), 90), shape), perm);
      const onWasm = await on('wasm', run);
      expect(onWasm).toEqual(await on('cpu', run));
      const x = tf.tensor(values(size(shape), 90), shape);
      const buffers = tf.engine().backend.numDataIds();
      const y = tf.transpose(x, perm);
      expect(y.shape).toEqual(perm.map((a) => shape[a]));
      expect(tf.engine().backend.numDataIds()).toBe(shares ? buffers : buffers + 1);
      x.dispose();
      expect(Array.from(y.dataSync())).toEqual(onWasm);
      y.dispose();
      expect(tf.engine().backend.numDataIds()).toBe(buffers - 1);
    });
  }
});

describe('Identity (tf.clone, and every tensor saved for backprop) on wasm', () => {
  test('a gradient of a gradient follows saved tensors, also through a gradient taken inside one', async () => {
    const x = () => tf.tensor1d(values(20, 82));
    const nested = () =>
      tf.grad((v: tf.Tensor) =>
        tf
          .grad((u: tf.Tensor) => tf.mul(tf.mul(u, u), tf.tanh(u)).sum())(v)
          .sum(),
      )(x());
    expectClose(await on('wasm', nested), await on('cpu', nested));
    // y is recorded by the outer tape; the inner gradient's backward pass, recorded by it too, reads
    // what y's op saved: the outer gradient must follow those saved tensors back to x.
    const inside = () =>
      tf.grad((v: tf.Tensor) => {
        const y = tf.mul(tf.tanh(v), v);
        return tf
          .grad((u: tf.Tensor) => tf.add(y.sum(), tf.mul(tf.mul(u, u), u).sum()))(v)
          .sum();
      })(x());
    expectClose(await on('wasm', inside), await on('cpu', inside));
  });

  test('shares the data, which outlives either tensor alone, and leaks nothing', () => {
    const x = tf.tensor2d(values(6, 60), [2, 3]);
    const expected = Array.from(x.dataSync());
    const buffers = tf.engine().backend.numDataIds();
    const y = tf.clone(x);
    expect(tf.engine().backend.numDataIds()).toBe(buffers); // no copy
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual(expected);
    y.dispose();
    expect(tf.engine().backend.numDataIds()).toBe(buffers - 1);
  });

  test('gradients through a saved, cloned weight used at many steps equal cpu', async () => {
    // As an LSTM's backprop: each step's matMul saves (clones) the same large weight.
    const w = values(256 * 512, 61);
    const run = () =>
      tf.grad((W: tf.Tensor) => {
        let h: tf.Tensor = tf.tensor2d(values(2 * 256, 62), [2, 256]);
        for (let t = 0; t < 3; t++) h = tf.tanh(tf.matMul(tf.matMul(h, W), W, false, true));
        return tf.sum(h);
      })(tf.tensor2d(w, [256, 512]));
    expectClose(await on('wasm', run), await on('cpu', run), 1e-3);
  });
});

describe('tensors saved for backprop on wasm', () => {
  const tapeLength = () => (tf.engine().state as unknown as { activeTape: unknown[] }).activeTape.length;
  let recorded = -1;
  /** Gradient of a small net; `recorded`: the tape nodes its forward pass added. */
  const lossAndGradient = () => {
    const w = tf.tidy(() => tf.variable(tf.tensor2d(values(12, 80), [3, 4])));
    const g = tf.tidy(() => {
      const x = tf.tensor2d(values(6, 81), [2, 3]);
      const { grads } = tf.variableGrads(() => {
        const before = tapeLength();
        const y = tf.tanh(tf.matMul(x, w)); // each saves its inputs or its output
        recorded = tapeLength() - before;
        return tf.sum(tf.mul(y, y));
      }, [w]);
      return grads[w.name];
    });
    w.dispose();
    return g;
  };

  test('share the data, with no Identity kernel call and no clone on the tape; gradients equal cpu; nothing leaks', async () => {
    // Once first: a matMul frees cached transposes an earlier test left, which would count here.
    lossAndGradient().dispose();
    const buffers = wasmBackend().numDataIds();
    const tensors = tf.memory().numTensors;
    let g: tf.Tensor | undefined;
    const profile = await tf.profile(() => {
      g = lossAndGradient();
    });
    expect(profile.kernels.map((k) => k.name)).not.toContain('Identity');
    expect(recorded).toBe(2); // the matMul and the tanh
    const wasmGrad = Array.from(g!.dataSync());
    g!.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmBackend().numDataIds()).toBe(buffers);
    expectClose(wasmGrad, await on('cpu', lossAndGradient));
    expect(recorded).toBe(5); // on cpu: and a clone node for each of the three saved tensors
  });
});

describe('the same Slice or SplitV of the same data (tf.layers.gru splits its weight at every step) on wasm', () => {
  const dataOf = (t: tf.Tensor) => t.dataId;

  test('shares the outputs of the last one while they live, and leaks nothing', () => {
    const w = tf.variable(tf.tensor2d(values(8 * 12, 61), [8, 12]));
    expectNoLeak(() => {
      const [a1, b1] = tf.split(w, [8, 4], 1);
      const [a2, b2] = tf.split(w, [8, 4], 1);
      expect([dataOf(a2), dataOf(b2)]).toEqual([dataOf(a1), dataOf(b1)]);
      expect(a2.dataSync()).toEqual(a1.dataSync());
      const s1 = tf.slice(w, [2, 3], [4, 5]);
      const s2 = tf.slice(w, [2, 3], [4, 5]);
      expect(dataOf(s2)).toBe(dataOf(s1));
      // Another split, slice or shape of the same data is another result.
      expect(dataOf(tf.split(w, [4, 8], 1)[0])).not.toBe(dataOf(a1));
      expect(dataOf(tf.slice(w, [2, 3], [4, 4]))).not.toBe(dataOf(s1));
      const asRows = w.reshape([12, 8]);
      const [r1] = tf.split(asRows, [8, 4], 0);
      expect(dataOf(r1)).not.toBe(dataOf(a1));
      expect(Array.from(r1.dataSync())).toEqual(Array.from(w.dataSync().slice(0, 64)));
    });
    w.dispose();
  });

  test('recomputes once the last outputs are disposed, and after a variable is assigned', async () => {
    const run = () => {
      const w = tf.variable(tf.tensor2d(values(6 * 9, 62), [6, 9]));
      const first = tf.split(w, 3, 1);
      tf.dispose(first);
      const again = tf.split(w, 3, 1); // the first outputs are gone: copies again
      w.assign(w.mul(2));
      const assigned = tf.split(w, 3, 1); // new data under the variable
      const sliced = [tf.slice(w, [1, 1], [2, 2]), tf.slice(w, [1, 1], [2, 2])];
      const out = tf.concat([...again, ...assigned, ...sliced].map((t) => t.flatten()));
      w.dispose();
      return out;
    };
    expectClose(await on('wasm', run), await on('cpu', run), 0);
  });

  test('the gradients of a loop that splits a weight at every step (as GRUCell) equal cpu, and nothing leaks', async () => {
    const run = () => {
      const h0 = tf.tensor2d(values(3 * 4, 63), [3, 4]);
      const w = tf.variable(tf.tensor2d(values(4 * 12, 64), [4, 12]));
      const { value, grads } = tf.variableGrads(() => {
        let h = h0;
        for (let t = 0; t < 5; t++) {
          const [w1, w2] = tf.split(w, [8, 4], 1);
          const [z, r] = tf.split(tf.sigmoid(h.matMul(w1)), 2, 1);
          h = z.mul(h).add(tf.tanh(r.mul(h).matMul(w2)));
        }
        return h.square().sum() as tf.Scalar;
      }, [w]);
      const out = tf.concat([value.reshape([1]), grads[w.name].flatten()]);
      w.dispose();
      return out;
    };
    expectClose(await on('wasm', run), await on('cpu', run));
    expectNoLeak(() => {
      run();
    });
  });
});

describe('Square (as Multiply) on wasm equals cpu', () => {
  // x·x in float32 is one correctly rounded product on both: the same bits, not merely close.
  const cases: [string, () => tf.Tensor][] = [
    [
      'float32 [32,256]',
      () =>
        tf.square(
          tf.tensor2d(
            values(32 * 256, 70).map((v) => v * 1e3),
            [32, 256],
          ),
        ),
    ],
    [
      'float32 with 0, -0, ±Infinity, NaN, tiny and huge',
      () => tf.square(tf.tensor1d([0, -0, Infinity, -Infinity, NaN, 1e-30, -3e19, 1.5])),
    ],
    ['int32 (the library kernel)', () => tf.square(tf.tensor1d([-3, 0, 7, 300], 'int32'))],
  ];
  for (const [title, run] of cases) {
    test(title, async () => expect(await on('wasm', run)).toEqual(await on('cpu', run)));
  }

  test('the gradient of tanh, 1 - tanh² (via Square), is 1 - t·t to the bit', () => {
    tf.tidy(() => {
      const x = tf.tensor1d(values(300, 71).map((v) => v * 4));
      const t = tf.tanh(x);
      const expected = tf.sub(1, tf.mul(t, t));
      expect(
        Array.from(
          tf
            .grad((v: tf.Tensor) => tf.tanh(v).sum())(x)
            .dataSync(),
        ),
      ).toEqual(Array.from(expected.dataSync()));
    });
  });
});

describe('Slice, Unpack, SplitV and GatherV2 on wasm equal cpu', () => {
  const cases: { title: string; run: () => tf.Tensor }[] = [];
  const add = (title: string, run: () => tf.Tensor | tf.Tensor[]) =>
    cases.push({ title, run: () => [run()].flat().reduce<tf.Tensor>((all, t) => tf.concat([all, t.flatten().toFloat()]), tf.zeros([0])) });
  const x3 = (shape: number[], dtype: 'float32' | 'int32' = 'float32') =>
    tf.tensor(
      values(size(shape), 50 + size(shape)).map((v) => (dtype === 'int32' ? Math.round(v * 100) : v)),
      shape,
      dtype,
    );

  for (const axis of [0, 1, 2, -1]) add(`unstack [7,4,6] axis ${axis}`, () => tf.unstack(x3([7, 4, 6]), axis));
  add('unstack [1,1,5,3] axis 2', () => tf.unstack(x3([1, 1, 5, 3]), 2));
  add('unstack [5] (to scalars)', () => tf.unstack(x3([5])));
  add('unstack int32 [3,40] axis 1', () => tf.unstack(x3([3, 40], 'int32'), 1));
  add('unstack bool [3,4]', () => tf.unstack(tf.tensor2d([1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0], [3, 4], 'bool')).map((t) => t.toInt()));

  add('split [12,5] axis 0 into [3,4,5]', () => tf.split(x3([12, 5]), [3, 4, 5], 0));
  add('split [5,12] axis 1 into [2,-1,3]', () => tf.split(x3([5, 12]), [2, -1, 3], 1));
  add('split [3,8,40] axis 1 in 4', () => tf.split(x3([3, 8, 40]), 4, 1));
  add('split [4,200] axis 1 in 4 (long rows)', () => tf.split(x3([4, 200]), 4, 1));
  add('split int32 [6,3] axis 0 in 3', () => tf.split(x3([6, 3], 'int32'), 3, 0));

  add('slice [5,6] from [1,2] size [3,-1]', () => tf.slice(x3([5, 6]), [1, 2], [3, -1]));
  add('slice [4,5,70] middle axis', () => tf.slice(x3([4, 5, 70]), [0, 1, 0], [-1, 3, -1]));
  add('slice [2,3,4,5,6] (rank 5)', () => tf.slice(x3([2, 3, 4, 5, 6]), [1, 0, 1, 2, 3], [1, 2, 3, 2, 3]));
  add('slice int32 [10] from 3', () => tf.slice(x3([10], 'int32'), 3, 4));

  const ids = (v: number[], shape = [v.length]) => tf.tensor(v, shape, 'int32');
  add('gather [6,40] rows [5,0,5,2]', () => tf.gather(x3([6, 40]), ids([5, 0, 5, 2])));
  add('gather [6,3] rows shaped [2,3]', () => tf.gather(x3([6, 3]), ids([1, 1, 4, 0, 5, 2], [2, 3])));
  add('gather [7] (scalar rows)', () => tf.gather(x3([7]), ids([6, 0, 3])));
  add('gather [5,2,3] rows', () => tf.gather(x3([5, 2, 3]), ids([4, 0])));
  add('gather int32 [4,3] rows', () => tf.gather(x3([4, 3], 'int32'), ids([3, 3, 1])));
  add('gather axis 1 (general path)', () => tf.gather(x3([4, 5]), ids([4, 0, 2]), 1));
  add('gather batchDims 1 (general path)', () => tf.gather(x3([2, 5, 3]), ids([4, 0, 1, 1], [2, 2]), 1, 1));

  for (const { title, run } of cases) {
    test(title, async () => expectClose(await on('wasm', run), await on('cpu', run)));
  }

  test('string tensors (not on the wasm heap) still work', () => {
    tf.tidy(() => {
      const s = tf.tensor2d(['a', 'b', 'c', 'd', 'e', 'f'], [3, 2]);
      const read = (t: tf.Tensor) => Array.from(t.dataSync() as unknown as Uint8Array[], (b) => Buffer.from(b).toString());
      expect(tf.unstack(s, 1).map(read)).toEqual([
        ['a', 'c', 'e'],
        ['b', 'd', 'f'],
      ]);
      expect(read(tf.slice(s, [1, 1], [2, 1]))).toEqual(['d', 'f']);
      expect(read(tf.clone(s))).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    });
  });

  test('gather with an index out of range throws, as on cpu, and leaks nothing', async () => {
    const run = () => tf.gather(tf.zeros([4, 3]), tf.tensor1d([1, 4], 'int32'));
    await expect(on('cpu', run)).rejects.toThrow('GatherV2: the index value 4 is not in [0, 3]');
    await expect(on('wasm', run)).rejects.toThrow('GatherV2: the index value 4 is not in [0, 3]');
    const x = tf.zeros([4, 3]);
    const bad = tf.tensor1d([-1], 'int32');
    const buffers = tf.engine().backend.numDataIds();
    expect(() => tf.gather(x, bad)).toThrow('not in [0, 3]');
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    tf.dispose([x, bad]);
  });

  test('leak no tensor or wasm buffer', () => {
    const x = x3([6, 8, 40]);
    const i = ids([5, 1, 1]);
    expectNoLeak(() => {
      tf.unstack(x, 1);
      tf.split(x, [2, 6], 1);
      tf.slice(x, [1, 2, 3], [2, 3, 4]);
      tf.gather(x, i);
    });
    tf.dispose([x, i]);
  });

  test('read their input correctly when making the outputs grows wasm memory', () => {
    // makeOutput can grow the heap, which detaches any view of it taken earlier. An input of half
    // the heap and outputs as large again cannot fit without growing it.
    const heapBytes = () => (wasmBackend().wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.buffer.byteLength;
    const halfHeap = () => {
      const rows = Math.ceil(heapBytes() / 4 / 1024 / 4) * 2;
      return tf.tidy(() => tf.range(0, rows * 1024, 1, 'int32').reshape([rows, 1024]));
    };
    const expectRows = (t: tf.Tensor, firstRow: number) => {
      const v = t.dataSync();
      expect([v[0], v[v.length - 1]]).toEqual([firstRow * 1024, firstRow * 1024 + v.length - 1]);
    };
    for (const op of ['split', 'gather'] as const) {
      const x = halfHeap();
      const rows = x.shape[0];
      const indices = tf.range(0, rows, 1, 'int32');
      const before = heapBytes();
      const outs = op === 'split' ? tf.split(x, 2, 0) : [tf.gather(x, indices)];
      expect(heapBytes()).toBeGreaterThan(before);
      outs.forEach((t, i) => expectRows(t, (i * rows) / outs.length));
      tf.dispose([x, indices, ...outs]);
    }
  });
});

describe("a stacked layer's input products (an unstacked input times a large weight) on wasm", () => {
  // Weights of >= 64K elements qualify: 64·1024.
  const [T, B, K, N] = [5, 3, 64, 1024];
  const xs = values(T * B * K, 41);
  const ws = values(K * N, 42);
  const steps = (fused: boolean) => () => {
    const X = tf.tensor3d(xs, [T, B, K]);
    const W = tf.tensor2d(ws, [K, N]);
    return tf.stack(tf.unstack(X).map((x) => (fused ? tf.fused.matMul({ a: x, b: W }) : tf.matMul(x, W))));
  };

  test.each([false, true])('fused %s: every step the per-step product to the bit (stock wasm), and cpu', async (fused) => {
    const ours = await on('wasm', steps(fused));
    setAccel({ setting: 'off' });
    try {
      expect(await on('wasm', steps(fused))).toEqual(ours);
    } finally {
      setAccel({ setting: 'on' });
    }
    expectClose(ours, await on('cpu', steps(fused)));
  });

  test('no tensor left; the product held is freed once the input is gone', () => {
    // Counts the products held: the weight packed for the product (gemm.ts, held as well) is freed first.
    const heldBuffers = () => {
      dropAllPacked(tf.engine().backend as BackendWasm);
      return tf.engine().backend.numDataIds();
    };
    const anyMatMul = () => tf.tidy(() => void tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])));
    anyMatMul(); // drops what earlier tests left
    const tensors = tf.memory().numTensors;
    const buffers = heldBuffers();
    const X = tf.tensor3d(xs, [T, B, K]);
    const W = tf.tensor2d(ws, [K, N]);
    const parts = tf.unstack(X);
    const first = tf.matMul(parts[0], W);
    // Inputs, weight, the T slices, the step's output, and the product held.
    expect(heldBuffers()).toBe(buffers + 2 + T + 1 + 1);
    const second = tf.matMul(parts[1], W);
    expect(heldBuffers()).toBe(buffers + 2 + T + 2 + 1); // served from it
    tf.dispose([X, ...parts, first, second]);
    anyMatMul(); // drops the product of an input that is gone
    W.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(heldBuffers()).toBe(buffers);
  });

  test('a weight assigned between steps is multiplied with its new value', () => {
    const X = tf.tensor3d(xs, [T, B, K]);
    const v = tf.variable(tf.tensor2d(ws, [K, N]));
    const parts = tf.unstack(X);
    const before = tf.matMul(parts[1], v);
    tf.matMul(parts[0], v).dispose(); // holds X·v
    const doubled = v.mul<tf.Tensor2D>(2);
    v.assign(doubled);
    doubled.dispose();
    const after = tf.matMul(parts[1], v);
    expect(Array.from(after.dataSync())).toEqual(Array.from(before.dataSync(), (y) => 2 * y));
    tf.dispose([X, v, ...parts, before, after]);
  });
});
