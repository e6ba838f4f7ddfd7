/** tf.layers.lstm's input matmul differentiates only the kernel (src/core/models/lazy-gradients.ts). */
import * as tf from '@tensorflow/tfjs';
import { BuiltinLstm } from '../src/core/models/builtin';
import { activeTape, deferMatMulGradients } from '../src/core/models/lazy-gradients';
import { crossEntropy } from '../src/core/train';
import { onBackend, useWasm } from './helpers';

beforeAll(useWasm);

const config = { impl: 'builtin' as const, vocabSize: 13, hidden: 6 };

/** Loss and gradients of the builtin LSTM through the layer, with or without the deferred input gradient. */
function gradients(model: BuiltinLstm, inputs: tf.Tensor2D, targets: tf.Tensor2D, defer: boolean): { loss: number; grads: Float32Array[] } {
  const result = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      if (defer) {
        const out = model.forward(inputs, model.zeroState(inputs.shape[0]));
        return crossEntropy(out.logits, targets);
      }
      // The same as forward(), with the tape left as tfjs records it.
      const oneHot = tf.oneHot(inputs, config.vocabSize).toFloat();
      const state = model.zeroState(inputs.shape[0]);
      const [sequence] = model.model.getLayer('lstm').apply(oneHot, { initialState: [state.h, state.c] }) as tf.Tensor[];
      return crossEntropy(model.model.getLayer('output').apply(sequence) as tf.Tensor, targets);
    }, model.variables as tf.Variable[]);
    return { value, grads: model.variables.map((v) => grads[v.name]) };
  });
  const out = { loss: result.value.dataSync()[0], grads: result.grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([result.value, ...result.grads]);
  return out;
}

describe.each(['wasm', 'cpu'] as const)('deferred input gradient of tf.layers.lstm (%s)', (backend) => {
  it('gives bit-identical loss and gradients for every weight, and leaks no tensors', () =>
    onBackend(backend, () => {
      const model = BuiltinLstm.create(config, 4);
      const inputs = tf.tensor2d([[1, 5, 2, 12, 0], [3, 3, 7, 9, 11]], [2, 5], 'int32');
      const targets = tf.tensor2d([[5, 2, 12, 0, 4], [3, 7, 9, 11, 1]], [2, 5], 'int32');
      const before = tf.memory().numTensors;
      const plain = gradients(model, inputs, targets, false);
      const deferred = gradients(model, inputs, targets, true);
      expect(tf.memory().numTensors).toBe(before);
      expect(deferred.loss).toBe(plain.loss);
      expect(deferred.grads).toHaveLength(5);
      deferred.grads.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(plain.grads[i])));
      expect(Math.max(...Array.from(deferred.grads[0], Math.abs))).toBeGreaterThan(0); // the kernel learns
      tf.dispose([inputs, targets]);
      model.dispose();
    }));
});

describe('deferMatMulGradients', () => {
  it('changes one tape node per time step (the input matmul), and none outside a tape', () => {
    const model = BuiltinLstm.create(config, 1);
    const lstm = model.model.getLayer('lstm');
    const inputs = tf.oneHot(tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32'), config.vocabSize).toFloat();
    let changed = -1;
    tf.tidy(() => {
      tf.variableGrads(() => {
        const from = activeTape()!.length;
        const [seq] = lstm.apply(inputs) as tf.Tensor[];
        changed = deferMatMulGradients(from, lstm.trainableWeights[0].read());
        return seq.sum() as tf.Scalar;
      }, model.variables as tf.Variable[]);
    });
    expect(changed).toBe(4);
    expect(activeTape()).toBeUndefined();
    expect(deferMatMulGradients(0, lstm.trainableWeights[0].read())).toBe(0);
    inputs.dispose();
    model.dispose();
  });

  it('never asks for the gradient of the one-hot input', async () => {
    const model = BuiltinLstm.create(config, 1);
    const inputs = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, 6], 'int32');
    const info = await tf.profile(() =>
      tf.tidy(() => {
        tf.variableGrads(() => crossEntropy(model.forward(inputs, model.zeroState(1)).logits, targets), model.variables as tf.Variable[]);
      }),
    );
    // dX = dy·kernelᵀ would be a [1, 1, 4·hidden]·[1, vocab, 4·hidden]ᵀ -> [1, 1, vocab] product.
    const matmuls = info.kernels.filter((k) => k.name === 'BatchMatMul');
    expect(matmuls.length).toBeGreaterThan(0);
    expect(matmuls.filter((k) => k.outputShapes[0]?.at(-1) === config.vocabSize && k.inputShapes[1]?.at(-2) === config.vocabSize)).toHaveLength(0);
    tf.dispose([inputs, targets]);
    model.dispose();
  });
});
