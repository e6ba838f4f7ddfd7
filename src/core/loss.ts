/**
 * The loss every model trains on: the mean cross-entropy of next-character logits against the
 * characters that follow, with its own gradient, (softmax - onehot) / N, so the softmax computed
 * for the loss is reused in backprop (tf.losses.softmaxCrossEntropy exponentiates the [N, vocab]
 * logits three times per batch, and on wasm that alone cost a tenth of an epoch).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The loss's two passes over the [N, vocab] logits, each as one kernel: src/accel/softmax.ts
 * registers them on wasm with accel on (the same strings there: test/softmax.test.ts checks they
 * agree and that they give the ops' bits); --accel off, or another backend, runs the ops below.
 */
export const SOFTMAX_KERNEL = 'LstmLyricsSoftmax';
export const SOFTMAX_GRAD_KERNEL = 'LstmLyricsSoftmaxGrad';

/** Mean cross-entropy of next-character logits [..., vocab] against int32 targets [...]. */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const vocabSize = logits.shape[logits.shape.length - 1];
  const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [flatLogits, ids, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    const { probs, sums, targetLogits } = softmax(flatLogits, ids);
    save([probs, ids]);
    const targetLogProbs = targetLogits.sub(sums.log());
    return {
      value: targetLogProbs.mean().neg() as tf.Scalar,
      gradFunc: (dy: tf.Tensor, [p, y]: tf.Tensor[]) => [softmaxGradient(p, y as tf.Tensor1D, dy.div(p.shape[0])), tf.zerosLike(y)],
    };
  });
  return tf.tidy(() => loss(logits.reshape([-1, vocabSize]), targets.reshape([-1]).toInt()));
}

/**
 * Each row's softmax, its sum of exps and its target's logit, all shifted by the row's largest
 * logit (so the largest is 0 and nothing overflows).
 */
function softmax(logits: tf.Tensor2D, ids: tf.Tensor1D): { probs: tf.Tensor2D; sums: tf.Tensor2D; targetLogits: tf.Tensor2D } {
  if (tf.getKernel(SOFTMAX_KERNEL, tf.getBackend())) {
    const [probs, sums, targetLogits] = tf.engine().runKernel(SOFTMAX_KERNEL, { logits, ids }) as tf.Tensor2D[];
    return { probs, sums, targetLogits };
  }
  const shifted = logits.sub(logits.max(1, true));
  const exps = shifted.exp();
  const sums = exps.sum(1, true) as tf.Tensor2D;
  // Each row's target logit, picked out (the sum of the row times its one-hot, without the
  // [N, vocab] product: the same number, as every other term is 0).
  const [rows, vocabSize] = logits.shape;
  const flatIndex = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(vocabSize, 'int32')), ids);
  const targetLogits = tf.gather(shifted.reshape([-1]), flatIndex).reshape([rows, 1]) as tf.Tensor2D;
  return { probs: exps.div(sums) as tf.Tensor2D, sums, targetLogits };
}

/** (probs - onehot(ids)) · scale: the loss's gradient with respect to the logits, scale being dy / N. */
function softmaxGradient(probs: tf.Tensor, ids: tf.Tensor1D, scale: tf.Tensor): tf.Tensor {
  if (tf.getKernel(SOFTMAX_GRAD_KERNEL, tf.getBackend()))
    return tf.engine().runKernel(SOFTMAX_GRAD_KERNEL, { probs, ids, scale }) as tf.Tensor;
  return probs.sub(tf.oneHot(ids, probs.shape[1]!).toFloat()).mul(scale);
}
