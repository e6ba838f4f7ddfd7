/** Each weight's gradient in one product over the time steps (src/core/models/step-gradients.ts). */
import * as tf from '@tensorflow/tfjs';
import { BuiltinLstm } from '../src/core/models/builtin';
import { lstmCell, ScratchLstm } from '../src/core/models/scratch';
import { activeTape, sumWeightGradientsOverSteps } from '../src/core/models/step-gradients';
import type { LanguageModel } from '../src/core/models/types';
import { crossEntropy } from '../src/core/train';
import { onBackend, useWasm } from './helpers';

beforeAll(useWasm);

const VOCAB = 13;
const HIDDEN = 6;
const inputIds = [[1, 5, 2, 12, 0, 7], [3, 3, 7, 9, 11, 4]];
const targetIds = [[5, 2, 12, 0, 7, 8], [3, 7, 9, 11, 4, 1]];

/**
 * The models' forward pass as tfjs records it with no tape rewritten: the layers applied as they
 * are, or scratch's loop written out again without the rewrite.
 */
function untouchedLogits(model: LanguageModel, inputs: tf.Tensor2D): tf.Tensor {
  const state = model.zeroState(inputs.shape[0]);
  if (model instanceof BuiltinLstm) {
    const oneHot = tf.oneHot(inputs, VOCAB).toFloat();
    const [sequence] = model.model.getLayer('lstm').apply(oneHot, { initialState: [state.h, state.c] }) as tf.Tensor[];
    return model.model.getLayer('output').apply(sequence) as tf.Tensor;
  }
  const p = (model as ScratchLstm).params;
  const W_x = tf.concat([p.W_xi, p.W_xf, p.W_xc, p.W_xo], 1);
  const W_h = tf.concat([p.W_hi, p.W_hf, p.W_hc, p.W_ho], 1) as tf.Tensor2D;
  const b = tf.concat([p.b_i, p.b_f, p.b_c, p.b_o]);
  const [batchSize, numSteps] = inputs.shape;
  const inputGates = tf.gather(W_x, inputs.transpose().reshape([-1])).add(b).reshape([numSteps, batchSize, -1]);
  let { h, c } = state;
  const hs: tf.Tensor2D[] = [];
  for (const x of tf.unstack(inputGates) as tf.Tensor2D[]) {
    ({ h, c } = lstmCell(x, { h, c }, W_h));
    hs.push(h);
  }
  return tf.concat(hs, 0).matMul(p.W_hq).add(p.b_q).reshape([numSteps, batchSize, -1]).transpose([1, 0, 2]);
}

function lossAndGradients(model: LanguageModel, rewritten: boolean): { loss: number; grads: Float32Array[] } {
  const inputs = tf.tensor2d(inputIds, undefined, 'int32');
  const targets = tf.tensor2d(targetIds, undefined, 'int32');
  const result = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const logits = rewritten ? model.forward(inputs, model.zeroState(2)).logits : untouchedLogits(model, inputs);
      return crossEntropy(logits, targets);
    }, model.variables as tf.Variable[]);
    return { value, grads: model.variables.map((v) => grads[v.name]) };
  });
  const out = { loss: result.value.dataSync()[0], grads: result.grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([result.value, ...result.grads, inputs, targets]);
  return out;
}

const models = {
  scratch: () => new ScratchLstm({ impl: 'scratch', vocabSize: VOCAB, hidden: HIDDEN }, 3),
  builtin: () => BuiltinLstm.create({ impl: 'builtin', vocabSize: VOCAB, hidden: HIDDEN }, 4),
};

describe.each(['wasm', 'cpu'] as const)('weight gradients summed over the steps (%s)', (backend) => {
  it.each(['scratch', 'builtin'] as const)('%s: the same loss, the same gradients up to rounding, no tensors left', (impl) =>
    onBackend(backend, () => {
      const model = models[impl]();
      const before = tf.memory().numTensors;
      const plain = lossAndGradients(model, false);
      const summed = lossAndGradients(model, true);
      expect(tf.memory().numTensors).toBe(before);
      expect(summed.loss).toBe(plain.loss); // the forward pass is untouched
      expect(summed.grads).toHaveLength(model.variables.length);
      summed.grads.forEach((g, i) => {
        const scale = Math.max(...Array.from(plain.grads[i], Math.abs));
        // Every gradient counts: one left at zero or computed twice would be far off.
        if (model.variables[i].shape.length === 2) expect(scale).toBeGreaterThan(0);
        g.forEach((v, j) => expect(Math.abs(v - plain.grads[i][j])).toBeLessThanOrEqual(1e-5 * scale + 1e-12));
      });
      model.dispose();
    }),
  );
});

describe('a gradient of a gradient through the models (a gradient penalty)', () => {
  /** d/dh0 of the squared norm of d(loss)/dh0: two levels of tape over the rewritten steps. */
  const penaltyGradient = (model: LanguageModel) => {
    const inputs = tf.tensor2d(inputIds, undefined, 'int32');
    const targets = tf.tensor2d(targetIds, undefined, 'int32');
    const h0 = tf.tensor2d(Array.from({ length: 2 * HIDDEN }, (_, i) => Math.sin(i) / 4), [2, HIDDEN]);
    const c0 = tf.zeros([2, HIDDEN]) as tf.Tensor2D;
    const loss = (h: tf.Tensor) => crossEntropy(model.forward(inputs, { h: h as tf.Tensor2D, c: c0 }).logits, targets);
    const g = tf.grad((h: tf.Tensor) => tf.square(tf.grad(loss)(h)).sum())(h0);
    const out = Array.from(g.dataSync());
    tf.dispose([inputs, targets, h0, c0, g]);
    return out;
  };
  const penaltyGradientOn = (backend: 'wasm' | 'cpu', impl: keyof typeof models) =>
    onBackend(backend, () => {
      const model = models[impl]();
      try {
        return penaltyGradient(model);
      } finally {
        model.dispose();
      }
    });
  it.each(['scratch', 'builtin'] as const)('%s: the same on wasm as on cpu', async (impl) => {
    const onWasm = await penaltyGradientOn('wasm', impl);
    const onCpu = await penaltyGradientOn('cpu', impl);
    const scale = Math.max(...onCpu.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    onWasm.forEach((v, i) => expect(Math.abs(v - onCpu[i])).toBeLessThanOrEqual(1e-4 * scale));
  });
});

describe('sumWeightGradientsOverSteps', () => {
  it('finds one product per step for each of the layer kernels, and does nothing outside a tape', () => {
    const model = models.builtin();
    const lstm = model.model.getLayer('lstm');
    const weights = lstm.trainableWeights.slice(0, 2).map((w) => w.read());
    const inputs = tf.oneHot(tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32'), VOCAB).toFloat();
    let counts: number[] = [];
    tf.tidy(() => {
      tf.variableGrads(() => {
        const from = activeTape()!.length;
        const [seq] = lstm.apply(inputs) as tf.Tensor[];
        counts = sumWeightGradientsOverSteps(from, weights);
        return seq.sum() as tf.Scalar;
      }, model.variables as tf.Variable[]);
    });
    expect(counts).toEqual([4, 4]);
    expect(activeTape()).toBeUndefined();
    expect(sumWeightGradientsOverSteps(0, weights)).toEqual([0, 0]);
    inputs.dispose();
    model.dispose();
  });

  it.each(['scratch', 'builtin'] as const)('%s: one weight-gradient product per weight, none per step, and never the one-hot input\'s', async (impl) => {
    const model = models[impl]();
    const steps = 6;
    const inputs = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, steps], 'int32');
    const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, steps], 'int32');
    const info = await tf.profile(() =>
      tf.tidy(() => {
        tf.variableGrads(() => crossEntropy(model.forward(inputs, model.zeroState(1)).logits, targets), model.variables as tf.Variable[]);
      }),
    );
    const products = (rows: number, cols: number) =>
      info.kernels.filter((k) => k.name === 'BatchMatMul' && k.outputShapes[0]?.at(-2) === rows && k.outputShapes[0]?.at(-1) === cols).length;
    expect(products(HIDDEN, 4 * HIDDEN)).toBe(1); // dW_h: [hidden, steps]·[steps, 4·hidden]
    if (impl === 'builtin') expect(products(VOCAB, 4 * HIDDEN)).toBe(1); // the input kernel's
    // dX = dy·kernelᵀ for the one-hot input would be a [1, 4·hidden]·[4·hidden, vocab] product.
    expect(info.kernels.filter((k) => k.name === 'BatchMatMul' && k.outputShapes[0]?.at(-1) === VOCAB && k.inputShapes[1]?.at(-2) === VOCAB)).toHaveLength(0);
    tf.dispose([inputs, targets]);
    model.dispose();
  });
});
