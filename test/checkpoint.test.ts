import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CHECKPOINT_FILE, checkpointFiles } from '../src/core/checkpoint-format';
import { makeOptimizer } from '../src/core/optimizer';
import { latestModelDir, loadCheckpoint, saveCheckpoint, setSaveSeams } from '../src/node/model-dir';
import { DEFAULT_OPTIMIZER, DEFAULT_TRAIN, IMPLS, LEGACY_MODEL } from '../src/core/config';
import { loadCorpus } from '../src/node/corpus-file';
import { generateText } from '../src/core/generate';
import { createModel, type LanguageModel } from '../src/core/models';
import { train } from '../src/core/train';
import { makeRng } from '../src/core/random';
import { REPETITIVE_LYRIC, snapshot, tempDir, useWasm, writeFile } from './helpers';

beforeAll(useWasm);

const corpus = loadCorpus(writeFile(tempDir(), 'song.txt', REPETITIVE_LYRIC), { maxChars: 0 });

function metaFor(model: LanguageModel, epoch: number) {
  return {
    model: model.config,
    train: { ...DEFAULT_TRAIN, ...DEFAULT_OPTIMIZER[model.config.impl], corpus: 'song.txt' },
    vocab: corpus.vocab.chars,
    epoch,
    savedAt: new Date().toISOString(),
    backend: tf.getBackend(),
    versions: {},
    corpusSha256: corpus.sha256,
    history: [],
  };
}

describe.each(IMPLS)('%s checkpoints', (impl) => {
  it('save -> load -> generate gives identical text, greedy and sampled', async () => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 16 }, 1);
    const config = {
      ...DEFAULT_TRAIN,
      ...DEFAULT_OPTIMIZER[impl],
      corpus: '',
      epochs: 3,
      batchSize: 4,
      numSteps: 8,
      clip: 1,
      lr: impl === 'scratch' ? 10 : 0.01,
    };
    await train(model, corpus, config);
    const dir = path.join(tempDir(), impl);
    await saveCheckpoint(dir, model, metaFor(model, 3));
    const loaded = await loadCheckpoint(dir);
    expect(loaded.meta.model).toEqual(model.config);
    expect(loaded.vocab.chars).toEqual(corpus.vocab.chars);
    for (const prefix of ['分开', '不分开']) {
      expect(generateText(loaded.model, loaded.vocab, prefix, 30)).toBe(generateText(model, corpus.vocab, prefix, 30));
      const sampled = (m: LanguageModel) => generateText(m, corpus.vocab, prefix, 30, { temperature: 1, topK: 5, rng: makeRng(9) });
      expect(sampled(loaded.model)).toBe(sampled(model));
    }
    loaded.model.dispose();
    model.dispose();
  });

  it("saving with the optimizer's slots leaks no tensor (getWeights makes a new iteration scalar each call)", async () => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 1);
    const { optimizer: name, lr } = DEFAULT_OPTIMIZER[impl];
    const optimizer = makeOptimizer(name, lr);
    const config = { ...DEFAULT_TRAIN, ...DEFAULT_OPTIMIZER[impl], corpus: '', epochs: 1, batchSize: 4, numSteps: 8 };
    await train(model, corpus, config, {}, { optimizer });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const files = await checkpointFiles(model, metaFor(model, 1), { optimizer });
      expect(Object.keys(files)).toContain('optimizer.bin');
    }
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    model.dispose();
  });

  it('writes the TF.js formats: a Layers model.json for builtin, a weights manifest for scratch', async () => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    const dir = path.join(tempDir(), impl);
    await saveCheckpoint(dir, model, metaFor(model, 0));
    if (impl === 'builtin') {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      expect(json.format).toBe('layers-model');
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      // What a TF.js user does with it:
      const bytes = fs.readFileSync(path.join(dir, 'weights.bin'));
      const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      const artifacts = tf.io.getModelArtifactsForJSONSync(json, json.weightsManifest[0].weights, weightData);
      const layers = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      expect(layers.outputs.map((o) => o.shape)).toEqual([
        [null, null, corpus.vocab.chars.length],
        [null, 8],
        [null, 8],
      ]);
      layers.dispose();
    } else {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'weights.json'), 'utf8'));
      expect(json.weightsManifest[0].weights.map((w: { name: string }) => w.name)).toContain('W_xi');
    }
    model.dispose();
  });
});

describe('saving', () => {
  it('replaces a model as a whole and leaves no temporary files', async () => {
    const root = tempDir();
    const dir = path.join(root, 'm');
    const model = createModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    await saveCheckpoint(dir, model, metaFor(model, 1));
    await saveCheckpoint(dir, model, metaFor(model, 2));
    expect(fs.readdirSync(root)).toEqual(['m']);
    expect((await loadCheckpoint(dir)).meta.epoch).toBe(2);
    model.dispose();
  });

  it('finds the previous model when a save died between its two renames', async () => {
    const root = tempDir();
    const dir = path.join(root, 'm');
    const model = createModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    await saveCheckpoint(dir, model, metaFor(model, 1));
    fs.renameSync(dir, `${dir}.old`); // the state right after the first rename
    const loaded = await loadCheckpoint(dir);
    expect(loaded.meta.epoch).toBe(1);
    loaded.model.dispose();
    model.dispose();
  });

  it('a save that fails between its two renames puts the previous model back, and says so', async () => {
    const root = tempDir();
    const dir = path.join(root, 'm');
    const model = createModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    await saveCheckpoint(dir, model, metaFor(model, 1));
    const before = snapshot(root);
    const restore = setSaveSeams({
      afterStep: (step) => {
        if (step === 'moved aside') throw new Error('EIO: i/o error, rename');
      },
    });
    try {
      await expect(saveCheckpoint(dir, model, metaFor(model, 2))).rejects.toThrow(
        `cannot save the model to ${dir}: EIO: i/o error, rename; the previous model in ${dir} is unchanged`,
      );
    } finally {
      restore();
    }
    expect(snapshot(root)).toEqual(before);
    model.dispose();
  });

  it('latestModelDir picks the most recently saved model', async () => {
    const root = tempDir();
    const model = createModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    await saveCheckpoint(path.join(root, 'a'), model, metaFor(model, 1));
    await saveCheckpoint(path.join(root, 'b'), model, metaFor(model, 1));
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(root, 'b', CHECKPOINT_FILE), past, past);
    expect(latestModelDir(root)).toBe(path.join(root, 'a'));
    expect(latestModelDir(path.join(root, 'none'))).toBeUndefined();
    model.dispose();
  });
});
