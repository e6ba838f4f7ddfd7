/**
 * The loss's softmax and its gradient as one kernel each (src/accel/softmax.ts, wasm-softmax.wat)
 * against the TF.js ops that src/core/loss.ts runs without them: the same bits, module or JS.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { onBackend, randomFloats, useWasm } from './helpers';
import {
  SOFTMAX_GRAD_KERNEL as ACCEL_GRAD_NAME,
  SOFTMAX_KERNEL as ACCEL_NAME,
  softmaxGradientRows,
  softmaxRows,
} from '../src/accel/softmax';
import { crossEntropy, SOFTMAX_GRAD_KERNEL, SOFTMAX_KERNEL } from '../src/core/loss';

const wasmBackend = (): BackendWasm => tf.engine().findBackend('wasm') as BackendWasm;

/** A float32 tensor's values as their bit patterns, so that -0 and NaN compare exactly. */
const bits = (t: tf.Tensor): Uint32Array => new Uint32Array(Float32Array.from(t.dataSync()).buffer);

/** Where two tensors' bits first differ, as "index: ours vs theirs" (hex), or 'none'. */
function firstDifference(a: tf.Tensor, b: tf.Tensor): string {
  const [x, y] = [bits(a), bits(b)];
  if (x.length !== y.length) return `length ${x.length} vs ${y.length}`;
  const i = x.findIndex((v, k) => v !== y[k]);
  return i < 0 ? 'none' : `${i}: ${x[i].toString(16)} vs ${y[i].toString(16)}`;
}

/** What src/core/loss.ts computes without the kernel: softmax, row sums, target logits. */
function stockSoftmax(logits: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor[] {
  return tf.tidy(() => {
    const [rows, cols] = logits.shape;
    const shifted = logits.sub(logits.max(1, true));
    const exps = shifted.exp();
    const sums = exps.sum(1, true);
    const flatIndex = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(cols, 'int32')), ids);
    return [exps.div(sums), sums, tf.gather(shifted.reshape([-1]), flatIndex).reshape([rows, 1])];
  });
}

const stockGradient = (probs: tf.Tensor2D, ids: tf.Tensor1D, scale: tf.Scalar): tf.Tensor =>
  tf.tidy(() => probs.sub(tf.oneHot(ids, probs.shape[1]).toFloat()).mul(scale));

/** The kernel's outputs as tensors (the path `module` says), for comparing. */
function kernelSoftmax(logits: tf.Tensor2D, ids: tf.Tensor1D, module: boolean): tf.Tensor[] {
  return softmaxRows(wasmBackend(), logits, ids, module).map((info) => tf.engine().makeTensorFromTensorInfo(info));
}
function kernelGradient(probs: tf.Tensor2D, ids: tf.Tensor1D, scale: tf.Scalar, module: boolean): tf.Tensor {
  return tf.engine().makeTensorFromTensorInfo(softmaxGradientRows(wasmBackend(), probs, ids, scale, module));
}

/** Rows that test the library Max's rules and exp's ends, padded with spread values to `cols`. */
function awkwardRows(cols: number): number[][] {
  const pad = (row: number[]) => [...row, ...randomFloats(Math.max(0, cols - row.length), row.length + 7, -5, 5)].slice(0, cols);
  return [
    pad([NaN, 1, 2]), // a NaN first stays the max: every output NaN
    pad([-1, NaN, 3]), // a NaN anywhere makes the max NaN
    [...pad([-1, 3]).slice(0, cols - 1), NaN], // ... in the last place too
    pad([-0, 0, -3]).map((v) => (v > 0 ? -v : v)), // a zero max: the sign of the first zero (-0)
    pad([0, -0, -3]).map((v) => (v > 0 ? -v : v)), // ... (+0)
    pad([-3, -0, 0]).map((v) => (v > 0 ? -v : v)),
    pad([-Infinity, 2, 1]),
    pad([Infinity, 2, 1]), // inf - inf: NaN
    pad([80, -30, -60, 20]), // exps that underflow to subnormals and 0
    pad([1e-30, -1e-30, 3e38, -3e38]),
  ];
}

beforeAll(async () => {
  tf.enableProdMode();
  await useWasm();
});

test('the names src/core/loss.ts calls are the ones registered', () => {
  expect(SOFTMAX_KERNEL).toBe(ACCEL_NAME);
  expect(SOFTMAX_GRAD_KERNEL).toBe(ACCEL_GRAD_NAME);
  expect(tf.getKernel(SOFTMAX_KERNEL, 'wasm')).toBeDefined();
  expect(tf.getKernel(SOFTMAX_GRAD_KERNEL, 'wasm')).toBeDefined();
});

describe.each([
  ['the module', true],
  ['JS (where the module cannot run)', false],
])('on %s', (_name, module) => {
  // The lesson's batch; widths around the module's four lanes; rows around its groups of four.
  const shapes: [number, number][] = [
    [1120, 1027],
    [37, 5],
    [9, 4],
    [9, 3],
    [10, 2],
    [1, 8],
    [6, 97],
  ];
  test.each(shapes)('softmax [%i, %i]: the ops’ bits', (rows, cols) =>
    onBackend('wasm', () => {
      const logits = tf.tensor2d(randomFloats(rows * cols, rows + cols, -12, 12), [rows, cols]);
      const ids = tf.tensor1d(
        Array.from({ length: rows }, (_, r) => (r * 31) % cols),
        'int32',
      );
      const before = tf.memory().numTensors;
      const ours = kernelSoftmax(logits, ids, module);
      const stock = stockSoftmax(logits, ids);
      for (let i = 0; i < 3; i++) expect(firstDifference(ours[i], stock[i])).toBe('none');
      const scale = tf.scalar(0.37 / rows);
      const gradient = kernelGradient(ours[0] as tf.Tensor2D, ids, scale, module);
      const stockGrad = stockGradient(stock[0] as tf.Tensor2D, ids, scale);
      expect(firstDifference(gradient, stockGrad)).toBe('none');
      tf.dispose([...ours, ...stock, gradient, stockGrad, scale]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([logits, ids]);
    }),
  );

  test.each([
    [4, 9],
    [7, 6],
    [37, 2],
  ])('rows of NaN, infinities, signed zeros and huge values [·, %i], %i ids: the ops’ bits', (cols, targetOffset) =>
    onBackend('wasm', () => {
      const rows = awkwardRows(cols);
      const logits = tf.tensor2d(rows.flat(), [rows.length, cols]);
      const ids = tf.tensor1d(
        rows.map((_, r) => (r + targetOffset) % cols),
        'int32',
      );
      const ours = kernelSoftmax(logits, ids, module);
      const stock = stockSoftmax(logits, ids);
      for (let i = 0; i < 3; i++) expect(firstDifference(ours[i], stock[i])).toBe('none');
      tf.dispose([...ours, ...stock, logits, ids]);
    }),
  );

  test('a target id outside the vocabulary is an error, not a read past the row', () =>
    onBackend('wasm', () => {
      const logits = tf.zeros([2, 5]) as tf.Tensor2D;
      for (const bad of [5, -1]) {
        const ids = tf.tensor1d([0, bad], 'int32');
        expect(() => kernelSoftmax(logits, ids, module)).toThrow(`${SOFTMAX_KERNEL}: target id ${bad} is not below 5`);
        expect(() => kernelGradient(logits, ids, tf.scalar(1), module)).toThrow(`${SOFTMAX_GRAD_KERNEL}: target id ${bad} is not below 5`);
        ids.dispose();
      }
      logits.dispose();
    }));
});

describe('crossEntropy with the kernels', () => {
  /** crossEntropy's value and gradient, with the kernels registered or, for `stock`, not. */
  const lossAndGradient = (stock: boolean) =>
    onBackend('wasm', () => {
      const configs = [SOFTMAX_KERNEL, SOFTMAX_GRAD_KERNEL].map((name) => tf.getKernel(name, 'wasm')!);
      if (stock) for (const c of configs) tf.unregisterKernel(c.kernelName, 'wasm');
      try {
        const logits = tf.tensor3d(randomFloats(4 * 35 * 97, 3, -6, 6), [4, 35, 97]);
        const targets = tf.tensor2d(
          Array.from({ length: 140 }, (_, i) => (i * 37) % 97),
          [4, 35],
          'int32',
        );
        const variable = tf.variable(logits, true, `softmax-test-${stock}`);
        const before = tf.memory().numTensors;
        const { value, grads } = tf.variableGrads(() => crossEntropy(variable, targets), [variable]);
        const result = { value: Array.from(bits(value)), gradient: Array.from(bits(Object.values(grads)[0])) };
        tf.dispose([value, ...Object.values(grads)]);
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([variable, logits, targets]);
        return result;
      } finally {
        if (stock) for (const c of configs) tf.registerKernel(c);
      }
    });

  test('gives the stock ops’ loss and gradient to the bit, leaking nothing', async () => {
    const ours = await lossAndGradient(false);
    const stock = await lossAndGradient(true);
    expect(ours).toEqual(stock);
  });

  test('a gradient of its gradient, where the gradient’s scale depends on what is differentiated', () =>
    onBackend('wasm', () => {
      const logits = tf.tensor2d(randomFloats(6 * 11, 9, -3, 3), [6, 11]);
      const targets = tf.tensor1d([0, 10, 3, 3, 5, 1], 'int32');
      // d/dc of |d(c · loss)/dlogits|²: the inner gradient's dy is c, so the kernel's scale is c / 6.
      const penalty = (c: tf.Tensor) =>
        tf
          .grad((l: tf.Tensor) => crossEntropy(l, targets).mul(c))(logits)
          .square()
          .sum();
      const ours = tf.grad(penalty)(tf.scalar(1.5));
      const configs = [SOFTMAX_KERNEL, SOFTMAX_GRAD_KERNEL].map((name) => tf.getKernel(name, 'wasm')!);
      for (const c of configs) tf.unregisterKernel(c.kernelName, 'wasm');
      let stock: tf.Tensor;
      try {
        stock = tf.grad(penalty)(tf.scalar(1.5));
      } finally {
        for (const c of configs) tf.registerKernel(c);
      }
      expect(Math.abs(ours.dataSync()[0])).toBeGreaterThan(0);
      expect(ours.dataSync()[0]).toBeCloseTo(stock.dataSync()[0], 6);
      tf.dispose([logits, targets, ours, stock]);
    }));
});
