/**
 * Dropout between stacked layers, shared by both implementations so that it sits in the same
 * place and, given the same seed, drops the same units: scratch and builtin with the same weights
 * and the same training seed compute the same logits, dropout and all.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The mask for layer `layer`'s outputs, time-major [steps, batch, hidden]: each unit kept with
 * probability 1 - rate and then scaled by 1 / (1 - rate) (inverted dropout, as nn.Dropout and
 * tf.dropout), so nothing changes at inference. A constant: no gradient flows into it.
 */
export function dropoutMask(shape: [number, number, number], rate: number, seed: number, layer: number): tf.Tensor3D {
  return tf.tidy(() => {
    // Never 0: TF.js reads a falsy seed as "no seed".
    const layerSeed = (Math.imul(seed, 0x9e3779b1) ^ (layer + 1)) >>> 0 || 1;
    const keep = tf.randomUniform(shape, 0, 1, 'float32', layerSeed).greaterEqual(rate);
    return keep.toFloat().div(1 - rate) as tf.Tensor3D;
  });
}
