/**
 * Each weight's gradient in one product over the time steps (src/accel/step-gradients.ts): a hook
 * on the engine, so the models' own code is differentiated with and without it.
 */
import * as tf from '@tensorflow/tfjs';
import { setAccel } from '../src/accel';
import { LEGACY_MODEL } from '../src/core/config';
import { installStepGradients } from '../src/accel/step-gradients';
import { BuiltinModel } from '../src/core/models/builtin';
import { ScratchModel } from '../src/core/models/scratch';
import type { LanguageModel } from '../src/core/models/types';
import { crossEntropy } from '../src/core/loss';
import { onBackend, useWasm } from './helpers';

// Stock TF.js but for the hook under test: the other speed-ups off, so only the hook differs.
beforeAll(async () => {
  await useWasm();
  setAccel({ setting: 'off' });
});
afterAll(() => setAccel({ setting: 'on' }));

const VOCAB = 13;
const HIDDEN = 6;
const inputIds = [
  [1, 5, 2, 12, 0, 7],
  [3, 3, 7, 9, 11, 4],
];
const targetIds = [
  [5, 2, 12, 0, 7, 8],
  [3, 7, 9, 11, 4, 1],
];

/** fn with the hook installed, or not (until fn's promise settles, if it returns one). */
function withHook<T>(hooked: boolean, fn: () => T): T {
  const remove = hooked ? installStepGradients() : () => undefined;
  let result: T;
  try {
    result = fn();
  } catch (err) {
    remove();
    throw err;
  }
  if (result instanceof Promise) return result.finally(remove) as T;
  remove();
  return result;
}

function lossAndGradients(model: LanguageModel, hooked: boolean): { loss: number; grads: Float32Array[] } {
  const inputs = tf.tensor2d(inputIds, undefined, 'int32');
  const targets = tf.tensor2d(targetIds, undefined, 'int32');
  const result = withHook(hooked, () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => crossEntropy(model.forward(inputs, model.zeroState(2)).logits, targets),
        model.variables as tf.Variable[],
      );
      return { value, grads: model.variables.map((v) => grads[v.name]) };
    }),
  );
  const out = { loss: result.value.dataSync()[0], grads: result.grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([result.value, ...result.grads, inputs, targets]);
  return out;
}

const models = {
  scratch: () => new ScratchModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: VOCAB, hidden: HIDDEN }, 3),
  builtin: () => BuiltinModel.create({ impl: 'builtin', ...LEGACY_MODEL, vocabSize: VOCAB, hidden: HIDDEN }, 4),
  'scratch, 2 layers': () => new ScratchModel({ impl: 'scratch', ...LEGACY_MODEL, layers: 2, vocabSize: VOCAB, hidden: HIDDEN }, 5),
  'builtin, 2 layers': () => BuiltinModel.create({ impl: 'builtin', ...LEGACY_MODEL, layers: 2, vocabSize: VOCAB, hidden: HIDDEN }, 6),
};

describe.each(['wasm', 'cpu'] as const)('weight gradients summed over the steps (%s)', (backend) => {
  it.each(['scratch', 'builtin', 'scratch, 2 layers', 'builtin, 2 layers'] as const)(
    '%s: the same loss, the same gradients up to rounding, no tensors left',
    (impl) =>
      onBackend(backend, () => {
        const model = models[impl]();
        const before = tf.memory().numTensors;
        const plain = lossAndGradients(model, false);
        const summed = lossAndGradients(model, true);
        expect(tf.engine().state.activeTape).toBeNull(); // and the hook is gone
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
    const h0 = tf.tensor2d(
      Array.from({ length: 2 * HIDDEN }, (_, i) => Math.sin(i) / 4),
      [2, HIDDEN],
    );
    const c0 = tf.zeros([2, HIDDEN]) as tf.Tensor2D;
    const loss = (h: tf.Tensor) => crossEntropy(model.forward(inputs, [h as tf.Tensor2D, c0]).logits, targets);
    const g = withHook(true, () => tf.grad((h: tf.Tensor) => tf.square(tf.grad(loss)(h)).sum())(h0));
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

describe('the hook', () => {
  /** A plain RNN written here, as a new cell would be: it gets the summed gradient without a line of its own. */
  const rnnLoss = (W_xh: tf.Tensor, W_hh: tf.Tensor) => () => {
    const xs = tf.unstack(tf.oneHot(tf.tensor2d(inputIds, undefined, 'int32').transpose(), VOCAB).toFloat()) as tf.Tensor2D[];
    let h = tf.zeros([2, HIDDEN]) as tf.Tensor2D;
    for (const x of xs) h = tf.tanh(tf.add(tf.matMul(x, W_xh), tf.matMul(h, W_hh))) as tf.Tensor2D;
    return tf.sum(tf.square(h)) as tf.Scalar;
  };
  it("serves a cell it has never seen: one product for each weight's gradient, the same numbers", async () => {
    const W_xh = tf.variable(tf.randomNormal([VOCAB, HIDDEN], 0, 0.5, 'float32', 1));
    const W_hh = tf.variable(tf.randomNormal([HIDDEN, HIDDEN], 0, 0.5, 'float32', 2));
    const gradients = () =>
      tf.tidy(() => Object.values(tf.variableGrads(rnnLoss(W_xh, W_hh), [W_xh, W_hh]).grads).map((g) => Array.from(g.dataSync())));
    const plain = gradients();
    const profile = await withHook(true, () => tf.profile(() => void gradients()));
    // dW = xᵀ·dy: per step [k, 2]·[2, HIDDEN] unhooked; hooked, one [k, 12]·[12, HIDDEN] per weight.
    const weightGradients = profile.kernels.filter(
      (k) => k.name === 'BatchMatMul' && k.outputShapes[0]?.at(-1) === HIDDEN && [VOCAB, HIDDEN].includes(k.outputShapes[0]?.at(-2) ?? 0),
    );
    expect(weightGradients.map((k) => k.inputShapes[0])).toEqual(
      expect.arrayContaining([
        [12, VOCAB],
        [12, HIDDEN],
      ]),
    );
    expect(weightGradients).toHaveLength(2);
    const hooked = withHook(true, gradients);
    hooked.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(plain[i][j], 5)));
    tf.dispose([W_xh, W_hh]);
  });

  it('leaves the engine as it found it when removed', () => {
    const engine = tf.engine() as unknown as Record<string, unknown>;
    const before = [engine.gradients, engine.runKernel];
    installStepGradients()();
    expect([engine.gradients, engine.runKernel]).toEqual(before);
  });

  it.each(['scratch', 'builtin'] as const)(
    "%s: one weight-gradient product per weight, none per step, and never the one-hot input's",
    async (impl) => {
      const model = models[impl]();
      const steps = 6;
      const inputs = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, steps], 'int32');
      const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, steps], 'int32');
      const info = await withHook(true, () =>
        tf.profile(() =>
          tf.tidy(() => {
            tf.variableGrads(
              () => crossEntropy(model.forward(inputs, model.zeroState(1)).logits, targets),
              model.variables as tf.Variable[],
            );
          }),
        ),
      );
      const products = (rows: number, cols: number) =>
        info.kernels.filter((k) => k.name === 'BatchMatMul' && k.outputShapes[0]?.at(-2) === rows && k.outputShapes[0]?.at(-1) === cols)
          .length;
      expect(products(HIDDEN, 4 * HIDDEN)).toBe(1); // dW_h: [hidden, steps]·[steps, 4·hidden]
      if (impl === 'builtin') expect(products(VOCAB, 4 * HIDDEN)).toBe(1); // the input kernel's
      // dX = dy·kernelᵀ for the one-hot input would be a [1, 4·hidden]·[4·hidden, vocab] product.
      expect(
        info.kernels.filter((k) => k.name === 'BatchMatMul' && k.outputShapes[0]?.at(-1) === VOCAB && k.inputShapes[1]?.at(-2) === VOCAB),
      ).toHaveLength(0);
      tf.dispose([inputs, targets]);
      model.dispose();
    },
  );

  it.each(['scratch, 2 layers', 'builtin, 2 layers'] as const)(
    "%s: the second layer's input gradients in one product, the same gradients; the recurrent state's still per step",
    async (impl) => {
      const model = models[impl]();
      const steps = 6;
      const inputs = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, steps], 'int32');
      const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, steps], 'int32');
      const run = (hooked: boolean) =>
        withHook(hooked, () =>
          tf.tidy(() => {
            const { grads } = tf.variableGrads(
              () => crossEntropy(model.forward(inputs, model.zeroState(1)).logits, targets),
              model.variables as tf.Variable[],
            );
            return model.variables.map((v) => Array.from(grads[v.name].dataSync()));
          }),
        );
      const before = tf.memory().numTensors;
      const info = await tf.profile(() => void run(true));
      // dx = dy·Wᵀ: [rows, 4·hidden]·[hidden, 4·hidden]ᵀ. Batched: one with a row a step.
      const inputGradients = (rows: number) =>
        info.kernels.filter(
          (k) =>
            k.name === 'BatchMatMul' &&
            k.outputShapes[0]?.at(-2) === rows &&
            k.outputShapes[0]?.at(-1) === HIDDEN &&
            k.inputShapes[0]?.at(-1) === 4 * HIDDEN,
        ).length;
      // Layer 2's input gradients: one product over the steps. The recurrent kernels' (both
      // layers): one a step but the first, whose state is the initial zeros, nobody's to differentiate.
      expect(inputGradients(steps)).toBe(1);
      expect(inputGradients(1)).toBe(2 * (steps - 1));
      expect(tf.memory().numTensors).toBe(before);
      // Layer 1's gradients come through layer 2's inputs: the same numbers as per step.
      const plain = run(false);
      const hooked = run(true);
      expect(tf.memory().numTensors).toBe(before);
      hooked.forEach((g, i) => {
        const scale = Math.max(...plain[i].map(Math.abs));
        expect(scale).toBeGreaterThan(0);
        g.forEach((v, j) => expect(Math.abs(v - plain[i][j])).toBeLessThanOrEqual(1e-5 * scale));
      });
      tf.dispose([inputs, targets]);
      model.dispose();
    },
  );
});
