/**
 * The speed-ups as one layer (src/accel): the models carry none of it, the switch puts stock TF.js
 * back whole, a TF.js version other than the verified one keeps them off, and a seeded run gives
 * the same perplexities either way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { accelStatus, setAccel } from '../src/accel';
import { VERIFIED_VERSIONS } from '../src/accel/versions';
import { DEFAULT_OPTIMIZER, DEFAULT_TRAIN, IMPLS, type Impl, type TrainConfig, LEGACY_MODEL } from '../src/core/config';
import { createModel } from '../src/core/models';
import { makeOptimizer } from '../src/core/optimizer';
import { train } from '../src/core/train';
import { corpusFromText } from '../src/core/vocab';
import { REPETITIVE_LYRIC, runCli, tempDir, useWasm } from './helpers';

beforeAll(useWasm);
afterAll(() => setAccel({ setting: 'on' }));

const corpus = corpusFromText(REPETITIVE_LYRIC, 0, 'test');

/** A tiny seeded run of `impl`; its perplexity per epoch. Leaves no tensor behind. */
async function perplexities(impl: Impl): Promise<number[]> {
  const config: TrainConfig = {
    ...DEFAULT_TRAIN,
    ...DEFAULT_OPTIMIZER[impl],
    corpus: 'test',
    epochs: 3,
    batchSize: 4,
    numSteps: 8,
    reportEvery: 10,
    predLen: 0,
    prefixes: [],
  };
  const before = tf.memory().numTensors;
  const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 16 }, 7);
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  try {
    const { history } = await train(model, corpus, config, {}, { optimizer });
    return history.map((m) => m.perplexity);
  } finally {
    model.dispose();
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }
}

/** What the speed-ups replace, to see that off puts back exactly what was there. */
function stockParts(): unknown[] {
  const engine = tf.engine() as unknown as Record<string, unknown>;
  const kernels = [
    tf.BatchMatMul,
    tf._FusedMatMul,
    tf.Exp,
    tf.Sigmoid,
    tf.Tanh,
    tf.Sum,
    tf.Identity,
    tf.Square,
    tf.Add,
    tf.Sub,
    tf.Multiply,
    tf.Neg,
  ].map((n) => tf.getKernel(n, 'wasm')?.kernelFunc);
  return [
    engine.gradients,
    engine.runKernel,
    engine.clone,
    tf.AdamOptimizer.prototype.applyGradients,
    tf.getGradient(tf.Sigmoid)?.gradFunc,
    tf.getGradient(tf.Tanh)?.gradFunc,
    (Object.getPrototypeOf(tf.layers.lstmCell({ units: 4 })) as { call: unknown }).call,
    ...kernels,
  ];
}

describe('the models read as the lessons', () => {
  const modelsDir = path.resolve(__dirname, '..', 'src', 'core', 'models');
  it.each(fs.readdirSync(modelsDir))('%s calls no tape, engine or kernel internals', (file) => {
    const text = fs.readFileSync(path.join(modelsDir, file), 'utf8');
    expect(text).not.toMatch(/activeTape|sumWeightGradientsOverSteps|engine\(\)|runKernel|accel/);
  });
});

describe('the switch', () => {
  it('off puts every part of stock TF.js back; on replaces each; twice either way changes nothing', () => {
    setAccel({ setting: 'off' });
    const stock = stockParts();
    setAccel({ setting: 'off' });
    stockParts().forEach((part, i) => expect([i, part === stock[i]]).toEqual([i, true]));
    expect(accelStatus()).toEqual({ on: false, description: 'accel: off (stock TF.js, as asked)' });
    setAccel({ setting: 'on' });
    const on = stockParts();
    on.forEach((part, i) => expect([i, part]).not.toEqual([i, stock[i]]));
    setAccel({ setting: 'on' }); // takes the first install out before installing again: nothing wrapped twice
    stockParts().forEach((part, i) => expect([i, part]).not.toEqual([i, stock[i]]));
    expect(accelStatus().on).toBe(true);
    expect(accelStatus().description).toMatch(
      /^accel: on \(step gradients, one-pass Adam, wasm kernels, fused LSTM and GRU cells; verified on TF.js 4\.22\.0\)$/,
    );
    setAccel({ setting: 'off' });
    stockParts().forEach((part, i) => expect([i, part === stock[i]]).toEqual([i, true]));
    setAccel({ setting: 'on' });
  });

  it.each(IMPLS)('%s: a seeded run gives the same perplexities on and off, to 1e-3 relative', async (impl) => {
    setAccel({ setting: 'on' });
    const on = await perplexities(impl);
    setAccel({ setting: 'off' });
    const off = await perplexities(impl);
    setAccel({ setting: 'on' });
    expect(on).toHaveLength(3);
    // Trained, not stuck: otherwise equal curves would prove little.
    expect(on[2]).toBeLessThan(on[0]);
    on.forEach((p, i) => expect(Math.abs(p - off[i]) / off[i]).toBeLessThan(1e-3));
  });
});

describe('the version check', () => {
  const other = { '@tensorflow/tfjs-core': '4.23.0', '@tensorflow/tfjs-backend-wasm': VERIFIED_VERSIONS['@tensorflow/tfjs-backend-wasm'] };

  it('keeps every speed-up off on another TF.js, says why in one line, and training works as stock', async () => {
    setAccel({ setting: 'off' });
    const stock = stockParts();
    const offRun = await perplexities('builtin');
    const status = setAccel({ setting: 'on', versions: other });
    expect(status).toEqual({
      on: false,
      description: 'accel: off (@tensorflow/tfjs-core is 4.23.0, verified on 4.22.0: stock TF.js runs)',
    });
    stockParts().forEach((part, i) => expect([i, part === stock[i]]).toEqual([i, true]));
    expect(await perplexities('builtin')).toEqual(offRun);
    expect(await perplexities('scratch')).toHaveLength(3);
    setAccel({ setting: 'on' });
  });

  it('names each package that differs', () => {
    const status = setAccel({ setting: 'on', versions: { '@tensorflow/tfjs-core': '5.0.0', '@tensorflow/tfjs-backend-wasm': '5.0.1' } });
    expect(status.description).toBe(
      'accel: off (@tensorflow/tfjs-core is 5.0.0, verified on 4.22.0; @tensorflow/tfjs-backend-wasm is 5.0.1, verified on 4.22.0: stock TF.js runs)',
    );
    setAccel({ setting: 'on' });
  });
});

describe('--accel on the command line', () => {
  it('train --accel off says so in its backend line and trains', async () => {
    const dir = tempDir();
    const corpusFile = path.join(dir, 'song.txt');
    fs.writeFileSync(corpusFile, REPETITIVE_LYRIC);
    const r = await runCli([
      'train',
      '--accel',
      'off',
      '--backend',
      'wasm',
      '--corpus',
      corpusFile,
      '--max-chars',
      '0',
      '--epochs',
      '1',
      '--hidden',
      '8',
      '--batch-size',
      '2',
      '--num-steps',
      '5',
      '--out',
      path.join(dir, 'm'),
    ]);
    setAccel({ setting: 'on' });
    expect(r.code).toBe(0);
    expect([...r.out, ...r.err].join('\n')).toMatch(
      /^backend: wasm \(WebAssembly, SIMD, 1 thread.*\); accel: off \(stock TF\.js, as asked\)$/m,
    );
  });

  it('--accel off with --threads 2 is a usage error (threaded wasm in Node is one of the speed-ups)', async () => {
    const r = await runCli(['train', '--accel', 'off', '--threads', '2', '--epochs', '1', '--out', path.join(tempDir(), 'm')]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--threads 2 needs --accel on/);
  });

  it('--accel maybe is a usage error', async () => {
    const r = await runCli(['train', '--accel', 'maybe']);
    expect(r.code).toBe(2);
  });
});
