import * as tf from '@tensorflow/tfjs';
import { DEFAULT_OPTIMIZER, DEFAULT_TRAIN, IMPLS, type TrainConfig, LEGACY_MODEL } from '../src/core/config';
import { splitHeldOut } from '../src/core/vocab';
import { loadCorpus } from '../src/node/corpus-file';
import { createModel } from '../src/core/models';
import { makeOptimizer } from '../src/core/optimizer';
import { clipByGlobalNorm, crossEntropy, train } from '../src/core/train';
import { REPETITIVE_LYRIC, onBackend, tempDir, useWasm, writeFile } from './helpers';

beforeAll(useWasm);

describe('clipByGlobalNorm', () => {
  it('scales gradients down to the clip norm, keeping their direction', () => {
    const grads = [tf.tensor1d([3, 0]), tf.tensor2d([[0, 4]])]; // global norm 5
    const { clipped, norm } = clipByGlobalNorm(grads, 0.5);
    expect(norm.dataSync()[0]).toBeCloseTo(5, 5);
    const after = Math.sqrt(clipped.reduce((s, g) => s + tf.sum(tf.square(g)).dataSync()[0], 0));
    expect(after).toBeLessThanOrEqual(0.5 + 1e-6);
    expect(Array.from(clipped[0].dataSync())).toEqual([expect.closeTo(0.3, 6), 0]);
    expect(Array.from(clipped[1].dataSync())).toEqual([0, expect.closeTo(0.4, 6)]);
  });

  it('leaves gradients below the clip norm untouched', () => {
    const grads = [tf.tensor1d([0.03, -0.04])];
    const { clipped } = clipByGlobalNorm(grads, 0.1);
    expect(Array.from(clipped[0].dataSync())).toEqual(Array.from(grads[0].dataSync()));
  });
});

describe.each(IMPLS)('training the %s LSTM', (impl) => {
  const corpus = loadCorpus(writeFile(tempDir(), 'song.txt', REPETITIVE_LYRIC), { maxChars: 0 });
  const config: TrainConfig = {
    ...DEFAULT_TRAIN,
    ...DEFAULT_OPTIMIZER[impl],
    corpus: 'song.txt',
    epochs: 30,
    batchSize: 4,
    numSteps: 10,
    reportEvery: 10,
    predLen: 10,
    // The lesson's clip of 0.01 needs its 160 epochs; a looser clip learns this toy corpus in 30.
    clip: impl === 'scratch' ? 1 : 0.1,
    lr: impl === 'scratch' ? 10 : 0.01,
  };

  it('drives perplexity well below where it started, without leaking tensors', async () => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 32 }, 0);
    const reports: string[][] = [];
    const { history } = await train(model, corpus, config, { onReport: (r) => void reports.push([...r.samples]) });
    const first = history[0].perplexity;
    const last = history.at(-1)!.perplexity;
    // The first epoch is near a uniform guess over the vocabulary, never outside [1, V].
    expect(first).toBeGreaterThan(1);
    expect(first).toBeLessThanOrEqual(corpus.vocab.chars.length * 1.5);
    expect(last).toBeLessThan(first / 4);
    // Optimizer slots appear in the first epoch; after that the count must stay flat.
    const counts = history.slice(1).map((m) => m.numTensors);
    expect(new Set(counts).size).toBe(1);
    expect(reports.length).toBe(3);
    for (const samples of reports) {
      expect(samples[0].startsWith('分开') && samples[1].startsWith('不分开')).toBe(true);
      expect(samples.map((s) => Array.from(s).length)).toEqual([2 + 10, 3 + 10]);
    }
    model.dispose();
  });
});

describe('held-out perplexity', () => {
  it('is reported every epoch, starts inside [1, vocabulary size], and the tail is never trained on', async () => {
    const whole = loadCorpus(writeFile(tempDir(), 'song.txt', REPETITIVE_LYRIC), { maxChars: 0 });
    const { train: part, heldOut } = splitHeldOut(whole, 100);
    expect(part.ids.length + heldOut!.length).toBe(whole.ids.length);
    const model = createModel({ impl: 'builtin', ...LEGACY_MODEL, vocabSize: whole.vocab.chars.length, hidden: 16 }, 0);
    const config: TrainConfig = {
      ...DEFAULT_TRAIN,
      ...DEFAULT_OPTIMIZER.builtin,
      corpus: '',
      epochs: 3,
      batchSize: 4,
      numSteps: 8,
      reportEvery: 10,
      predLen: 1,
      clip: 0.1,
    };
    const { history } = await train(model, part, config, {}, { heldOut });
    for (const m of history) expect(m.heldOutPerplexity).toBeDefined();
    expect(history[0].heldOutPerplexity!).toBeGreaterThanOrEqual(1);
    expect(history[0].heldOutPerplexity!).toBeLessThanOrEqual(whole.vocab.chars.length);
    // The lyric repeats, so what was learnt carries over to the held-out tail.
    expect(history[2].heldOutPerplexity!).toBeLessThan(history[0].heldOutPerplexity!);
    model.dispose();
  });
});

describe('crossEntropy', () => {
  it('matches tf.losses.softmaxCrossEntropy in value and gradient', () => {
    const logits = tf.randomNormal([6, 9], 0, 3, 'float32', 4);
    const targets = tf.tensor1d([0, 8, 3, 3, 5, 1], 'int32');
    const reference = (l: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(targets, 9), l) as tf.Scalar;
    const ours = (l: tf.Tensor) => crossEntropy(l.reshape([2, 3, 9]), targets.reshape([2, 3]));
    expect(ours(logits).dataSync()[0]).toBeCloseTo(reference(logits).dataSync()[0], 5);
    const a = tf.grad(ours)(logits).dataSync();
    const b = tf.grad(reference)(logits).dataSync();
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 6));
  });

  /** The formula before the target logit was gathered: the row times its one-hot, summed. */
  function withOneHotProduct(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
    const V = logits.shape[logits.shape.length - 1];
    const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [l, oneHot, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      const shifted = l.sub(l.max(1, true));
      const exps = shifted.exp();
      const sums = exps.sum(1, true);
      const probs = exps.div(sums);
      save([probs, oneHot]);
      return {
        value: shifted.mul(oneHot).sum(1, true).sub(sums.log()).mean().neg() as tf.Scalar,
        gradFunc: (dy: tf.Tensor, [p, y]: tf.Tensor[]) => [p.sub(y).mul(dy.div(p.shape[0])), tf.zerosLike(y)],
      };
    });
    return tf.tidy(() => loss(logits.reshape([-1, V]), tf.oneHot(targets.reshape([-1]), V).toFloat()));
  }

  it.each(['wasm', 'cpu'] as const)(
    'gives bit for bit the value and gradient of the one-hot product formula (%s), leaking nothing',
    (backend) =>
      onBackend(backend, () => {
        const logits = tf.randomNormal([4, 35, 97], 0, 4, 'float32', 6);
        const targets = tf.tensor2d(
          Array.from({ length: 140 }, (_, i) => (i * 37) % 97),
          [4, 35],
          'int32',
        );
        const before = tf.memory().numTensors;
        const [v1, v2] = [crossEntropy(logits, targets), withOneHotProduct(logits, targets)];
        expect(v1.dataSync()[0]).toBe(v2.dataSync()[0]);
        const [g1, g2] = [
          tf.grad((l: tf.Tensor) => crossEntropy(l, targets))(logits),
          tf.grad((l: tf.Tensor) => withOneHotProduct(l, targets))(logits),
        ];
        expect(Array.from(g1.dataSync())).toEqual(Array.from(g2.dataSync()));
        tf.dispose([v1, v2, g1, g2]);
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([logits, targets]);
      }),
  );
});

describe('makeOptimizer', () => {
  it("gives the lesson's optimizers, Adam with torch's epsilon of 1e-8", () => {
    expect(makeOptimizer('sgd', 100).getConfig()).toMatchObject({ learningRate: 100 });
    expect(makeOptimizer('adam', 0.01).getConfig()).toMatchObject({ learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
  });
});
