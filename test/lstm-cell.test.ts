/**
 * The fused LSTM cell (src/accel/lstm-cell.ts) against tf.layers' own LSTMCell.call with every
 * other speed-up on: the same outputs and gradients, to the bit. "Stock" here is the cell with the
 * fused kernel unregistered, which makes the fused call hand over to LSTMCell's own.
 */
import * as tf from '@tensorflow/tfjs';
import { randomFloats, useWasm } from './helpers';
import { setAccel } from '../src/accel';
import { LSTM_GATES_GRAD_KERNEL, LSTM_GATES_KERNEL } from '../src/accel/lstm-cell';

beforeAll(async () => {
  tf.enableProdMode();
  await useWasm();
});

const [B, T, V, UNITS] = [3, 5, 6, 8];

/** Runs fn with LSTMCell's own call (the fused kernel unregistered), then puts the kernel back. */
function stock<R>(fn: () => R): R {
  const config = tf.getKernel(LSTM_GATES_KERNEL, 'wasm')!;
  tf.unregisterKernel(LSTM_GATES_KERNEL, 'wasm');
  try {
    return fn();
  } finally {
    tf.registerKernel(config);
  }
}

const bits = (t: tf.Tensor): number[] => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));

/**
 * A one-layer tf.layers.lstm as the builtin model builds it, fixed weights; its outputs and the
 * gradients of a loss over all of them (the sequence, the last H and, if `useC`, the last C)
 * with respect to the weights, the input and the initial state.
 */
function run(useC: boolean, units = UNITS): number[][] {
  return tf.tidy(() => {
    const layer = tf.layers.lstm({ units, returnSequences: true, returnState: true, recurrentActivation: 'sigmoid' });
    const x = tf.tensor3d(randomFloats(B * T * V, 1, -1, 1), [B, T, V]);
    const h0 = tf.tensor2d(randomFloats(B * units, 2, -0.5, 0.5), [B, units]);
    const c0 = tf.tensor2d(randomFloats(B * units, 3, -2, 2), [B, units]);
    layer.apply(x, { initialState: [h0, c0] }); // builds the weights
    layer.setWeights(layer.getWeights().map((w, k) => tf.tensor(randomFloats(w.size, 10 + k, -0.7, 0.7), w.shape)));
    const r = [1, 2, 3].map((k) => tf.tensor(randomFloats(B * T * units, 20 + k, -1, 1)));
    const loss = (xs: tf.Tensor, h: tf.Tensor, c: tf.Tensor) => {
      const [seq, hT, cT] = layer.apply(xs, { initialState: [h, c] }) as tf.Tensor[];
      const terms = [seq.mul(r[0].reshape(seq.shape)).sum(), hT.mul(r[1].slice(0, hT.size).reshape(hT.shape)).sum()];
      if (useC) terms.push(cT.mul(r[2].slice(0, cT.size).reshape(cT.shape)).sum());
      return tf.addN(terms) as tf.Scalar;
    };
    const outs = layer.apply(x, { initialState: [h0, c0] }) as tf.Tensor[];
    const { value, grads } = tf.variableGrads(
      () => loss(x, h0, c0),
      layer.trainableWeights.map((w) => w.read() as tf.Variable),
    );
    const [dx, dh0, dc0] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => loss(a, b, c))([x, h0, c0]);
    const result = [...outs, value, ...Object.values(grads), dx, dh0, dc0].map(bits);
    layer.dispose();
    return result;
  });
}

describe("the fused LSTM cell: tf.layers' LSTM, its gates in two kernels a step", () => {
  test.each([true, false])('outputs and gradients equal LSTMCell.call to the bit (last C used: %s)', (useC) => {
    const ours = run(useC);
    const theirs = stock(() => run(useC));
    expect(ours).toHaveLength(3 + 1 + 3 + 3);
    ours.forEach((o, i) => expect([i, o]).toEqual([i, theirs[i]]));
  });

  test('runs one forward and one backward kernel a step, and no Sigmoid or Tanh', async () => {
    const profile = await tf.profile(() => {
      run(true);
    });
    const count = (name: string) => profile.kernels.filter((k) => k.name === name).length;
    // Each run applies the layer four times over T steps (to build it, outputs, variableGrads,
    // grads), and differentiates two of them.
    expect(count(LSTM_GATES_KERNEL)).toBe(4 * T);
    expect(count(LSTM_GATES_GRAD_KERNEL)).toBe(2 * T);
    expect(count('Sigmoid') + count('Tanh')).toBe(0);
  });

  test('a cell it does not fit (units not a multiple of 4) runs LSTMCell.call: the same numbers', () => {
    expect(run(true, 6)).toEqual(stock(() => run(true, 6)));
  });

  test('a gradient of a gradient runs LSTMCell.call: the same numbers', () => {
    const secondOrder = () =>
      tf.tidy(() => {
        const cell = tf.layers.lstm({ units: UNITS, recurrentActivation: 'sigmoid', kernelInitializer: 'glorotNormal' });
        const x = tf.tensor3d(randomFloats(B * T * V, 4, -1, 1), [B, T, V]);
        cell.apply(x);
        cell.setWeights(cell.getWeights().map((w, k) => tf.tensor(randomFloats(w.size, 30 + k, -0.7, 0.7), w.shape)));
        const f = (xs: tf.Tensor) => (cell.apply(xs) as tf.Tensor).square().sum() as tf.Scalar;
        const g = (xs: tf.Tensor) => tf.grad(f)(xs).square().sum() as tf.Scalar;
        const result = Array.from(tf.grad(g)(x).dataSync());
        cell.dispose();
        return result;
      });
    const ours = secondOrder();
    const theirs = stock(secondOrder);
    expect(ours.some((v) => v !== 0)).toBe(true);
    expect(ours).toEqual(theirs);
  });

  test('leaves no tensor behind; off puts LSTMCell.call back and unregisters the kernels', () => {
    run(true); // first-use allocations
    const tensors = tf.memory().numTensors;
    run(true);
    run(false);
    expect(tf.memory().numTensors).toBe(tensors);
    const proto = Object.getPrototypeOf(tf.layers.lstmCell({ units: 4 })) as { call: unknown };
    const fused = proto.call;
    setAccel({ setting: 'off' });
    try {
      expect(proto.call).not.toBe(fused);
      expect(tf.getKernel(LSTM_GATES_KERNEL, 'wasm')).toBeUndefined();
      expect(tf.getKernel(LSTM_GATES_GRAD_KERNEL, 'wasm')).toBeUndefined();
    } finally {
      setAccel({ setting: 'on' });
    }
    expect(proto.call).not.toBe(fused); // a fresh wrapper of the same original
    expect(tf.getKernel(LSTM_GATES_KERNEL, 'wasm')).toBeDefined();
  });
});
