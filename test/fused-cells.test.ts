/**
 * The fused LSTM and GRU cells (src/accel/lstm-cell.ts, gru-cell.ts) against tf.layers' own
 * LSTMCell.call and GRUCell.call with every other speed-up on: the same outputs and gradients, to
 * the bit. "Stock" here is the cell with its fused kernels unregistered, which makes the fused call
 * hand over to the cell's own.
 */
import * as tf from '@tensorflow/tfjs';
import { randomFloats, useWasm } from './helpers';
import { setAccel } from '../src/accel';
import { GRU_GATES_GRAD_KERNEL, GRU_GATES_KERNEL, GRU_MIX_GRAD_KERNEL, GRU_MIX_KERNEL } from '../src/accel/gru-cell';
import { LSTM_GATES_GRAD_KERNEL, LSTM_GATES_KERNEL } from '../src/accel/lstm-cell';

beforeAll(async () => {
  tf.enableProdMode();
  await useWasm();
});

const [B, T, V, UNITS] = [3, 5, 6, 8];
type Cell = 'lstm' | 'gru';
const FORWARD: Record<Cell, string[]> = { lstm: [LSTM_GATES_KERNEL], gru: [GRU_GATES_KERNEL, GRU_MIX_KERNEL] };
const BACKWARD: Record<Cell, string[]> = { lstm: [LSTM_GATES_GRAD_KERNEL], gru: [GRU_GATES_GRAD_KERNEL, GRU_MIX_GRAD_KERNEL] };
const STATES: Record<Cell, number> = { lstm: 2, gru: 1 };

/** Runs fn with the cell's own call (its fused forward kernels unregistered), then puts them back. */
function stock<R>(cell: Cell, fn: () => R): R {
  const configs = FORWARD[cell].map((name) => tf.getKernel(name, 'wasm')!);
  for (const name of FORWARD[cell]) tf.unregisterKernel(name, 'wasm');
  try {
    return fn();
  } finally {
    for (const config of configs) tf.registerKernel(config);
  }
}

const bits = (t: tf.Tensor): number[] => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));

const layerOf = (cell: Cell, units: number) =>
  (cell === 'lstm' ? tf.layers.lstm : tf.layers.gru)({ units, returnSequences: true, returnState: true, recurrentActivation: 'sigmoid' });

/**
 * A one-layer tf.layers.lstm or .gru as the builtin model builds it, fixed weights; its outputs
 * and the gradients of a loss over all of them (the sequence, the last H and, if `useLastC`, an
 * LSTM's last C) with respect to the weights, the input and the initial state.
 */
function run(cell: Cell, useLastC: boolean, units = UNITS): number[][] {
  return tf.tidy(() => {
    const layer = layerOf(cell, units);
    const x = tf.tensor3d(randomFloats(B * T * V, 1, -1, 1), [B, T, V]);
    const s0 = Array.from({ length: STATES[cell] }, (_, k) => tf.tensor2d(randomFloats(B * units, 2 + k, -1.5, 1.5), [B, units]));
    layer.apply(x, { initialState: s0 }); // builds the weights
    layer.setWeights(layer.getWeights().map((w, k) => tf.tensor(randomFloats(w.size, 10 + k, -0.7, 0.7), w.shape)));
    const r = [1, 2, 3].map((k) => tf.tensor(randomFloats(B * T * units, 20 + k, -1, 1)));
    const loss = (xs: tf.Tensor, ...states: tf.Tensor[]) => {
      const [seq, hT, cT] = layer.apply(xs, { initialState: states }) as tf.Tensor[];
      const terms = [seq.mul(r[0].reshape(seq.shape)).sum(), hT.mul(r[1].slice(0, hT.size).reshape(hT.shape)).sum()];
      if (useLastC && cT) terms.push(cT.mul(r[2].slice(0, cT.size).reshape(cT.shape)).sum());
      return tf.addN(terms) as tf.Scalar;
    };
    const outs = layer.apply(x, { initialState: s0 }) as tf.Tensor[];
    const { value, grads } = tf.variableGrads(
      () => loss(x, ...s0),
      layer.trainableWeights.map((w) => w.read() as tf.Variable),
    );
    const inputGrads = tf.grads((...args: tf.Tensor[]) => loss(args[0], ...args.slice(1)))([x, ...s0]);
    const result = [...outs, value, ...Object.values(grads), ...inputGrads].map(bits);
    layer.dispose();
    return result;
  });
}

describe.each<Cell>(['lstm', 'gru'])("the fused %s cell: tf.layers' cell, its element-wise work in our kernels", (cell) => {
  test.each([true, false])('outputs and gradients equal the cell’s own call to the bit (an LSTM’s last C used: %s)', (useLastC) => {
    const ours = run(cell, useLastC);
    const theirs = stock(cell, () => run(cell, useLastC));
    // outputs (sequence and state), the loss, 3 weights, the input and the initial state
    expect(ours).toHaveLength(1 + STATES[cell] + 1 + 3 + 1 + STATES[cell]);
    ours.forEach((o, i) => expect([i, o]).toEqual([i, theirs[i]]));
  });

  test('runs its kernels once a step each way, and no Sigmoid or Tanh', async () => {
    const profile = await tf.profile(() => {
      run(cell, true);
    });
    const count = (name: string) => profile.kernels.filter((k) => k.name === name).length;
    // Each run applies the layer four times over T steps (to build it, outputs, variableGrads,
    // grads), and differentiates two of them.
    for (const name of FORWARD[cell]) expect([name, count(name)]).toEqual([name, 4 * T]);
    for (const name of BACKWARD[cell]) expect([name, count(name)]).toEqual([name, 2 * T]);
    expect(count('Sigmoid') + count('Tanh')).toBe(0);
  });

  test('a cell it does not fit (units not a multiple of 4) runs the cell’s own call: the same numbers', () => {
    expect(run(cell, true, 6)).toEqual(stock(cell, () => run(cell, true, 6)));
  });

  test('a gradient of a gradient runs the cell’s own call: the same numbers', () => {
    const secondOrder = () =>
      tf.tidy(() => {
        const layer = (cell === 'lstm' ? tf.layers.lstm : tf.layers.gru)({ units: UNITS, recurrentActivation: 'sigmoid' });
        const x = tf.tensor3d(randomFloats(B * T * V, 4, -1, 1), [B, T, V]);
        layer.apply(x);
        layer.setWeights(layer.getWeights().map((w, k) => tf.tensor(randomFloats(w.size, 30 + k, -0.7, 0.7), w.shape)));
        const f = (xs: tf.Tensor) => (layer.apply(xs) as tf.Tensor).square().sum() as tf.Scalar;
        const g = (xs: tf.Tensor) => tf.grad(f)(xs).square().sum() as tf.Scalar;
        const result = Array.from(tf.grad(g)(x).dataSync());
        layer.dispose();
        return result;
      });
    const ours = secondOrder();
    expect(ours.some((v) => v !== 0)).toBe(true);
    expect(ours).toEqual(stock(cell, secondOrder));
  });

  test('leaves no tensor behind; off puts the cell’s call back and unregisters the kernels', () => {
    run(cell, true); // first-use allocations
    const tensors = tf.memory().numTensors;
    run(cell, true);
    run(cell, false);
    expect(tf.memory().numTensors).toBe(tensors);
    const proto = Object.getPrototypeOf((cell === 'lstm' ? tf.layers.lstmCell : tf.layers.gruCell)({ units: 4 })) as { call: unknown };
    const fused = proto.call;
    setAccel({ setting: 'off' });
    try {
      expect(proto.call).not.toBe(fused);
      for (const name of [...FORWARD[cell], ...BACKWARD[cell]]) expect(tf.getKernel(name, 'wasm')).toBeUndefined();
    } finally {
      setAccel({ setting: 'on' });
    }
    expect(proto.call).not.toBe(fused); // a fresh wrapper of the same original
    for (const name of FORWARD[cell]) expect(tf.getKernel(name, 'wasm')).toBeDefined();
  });
});
