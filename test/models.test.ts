import * as tf from '@tensorflow/tfjs';
import { CELLS, type Cell, type ModelConfig } from '../src/core/config';
import { crossEntropy } from '../src/core/loss';
import { generateText } from '../src/core/generate';
import { modelFromFiles } from '../src/core/models';
import { BuiltinModel, recurrentLayerName } from '../src/core/models/builtin';
import { GATES, layerPrefix, ScratchModel } from '../src/core/models/scratch';
import type { LanguageModel, RecurrentState } from '../src/core/models/types';
import { vocabularyOf } from '../src/core/vocab';
import { onBackend, useWasm } from './helpers';

beforeAll(useWasm);

const V = 11;
const H = 6;
const configOf = (impl: 'scratch' | 'builtin', cell: Cell, layers: number, dropout = 0): ModelConfig => ({
  impl,
  cell,
  layers,
  dropout,
  vocabSize: V,
  hidden: H,
});

const CASES = CELLS.flatMap((cell) => [1, 2].map((layers) => [cell, layers] as const));

/** The scratch weights laid out as tf.layers' kernel, recurrent kernel and bias per layer (gates in GATES[cell].fused order). */
function copyScratchIntoBuiltin(scratch: ScratchModel, builtin: BuiltinModel): void {
  const { cell, layers } = scratch.config;
  const p = scratch.params;
  for (let l = 0; l < layers; l++) {
    const pick = (kind: string) => GATES[cell].fused.map((g) => p[`${layerPrefix(l)}${kind}${g}`]);
    builtin.model
      .getLayer(recurrentLayerName(cell, l))
      .setWeights([tf.concat(pick('W_x'), 1), tf.concat(pick('W_h'), 1), tf.concat(pick('b_'), 0)]);
  }
  builtin.model.getLayer('output').setWeights([p.W_hq, p.b_q]);
}

/** A scratch model with every weight and bias drawn wide (N(0, 0.5)), so a gate mix-up cannot hide, and a builtin one given the same. */
function twins(cell: Cell, layers: number, dropout = 0): { scratch: ScratchModel; builtin: BuiltinModel } {
  const scratch = new ScratchModel(configOf('scratch', cell, layers, dropout), 3);
  Object.values(scratch.params).forEach((v, k) => v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 100 + k)));
  const builtin = BuiltinModel.create(configOf('builtin', cell, layers, dropout), 5);
  copyScratchIntoBuiltin(scratch, builtin);
  return { scratch, builtin };
}

function inputsOf(batch: number, steps: number): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: batch * steps }, (_, i) => (i * 7 + 3) % V),
    [batch, steps],
    'int32',
  );
}

function randomState(model: LanguageModel, batch: number): RecurrentState {
  return model.zeroState(batch).map((z, i) => {
    const s = tf.randomNormal(z.shape, 0, 0.5, 'float32', 1 + i) as tf.Tensor2D;
    z.dispose();
    return s;
  });
}

describe.each(CASES)('%s, %i layer(s): scratch and builtin compute the same function', (cell, layers) => {
  it.each([1, 4])('logits and final state agree to 1e-5 over several steps with a carried state (batch %i)', (batch) => {
    const { scratch, builtin } = twins(cell, layers);
    const inputs = inputsOf(batch, 5);
    const start = randomState(scratch, batch);
    expect(start).toHaveLength(layers * (cell === 'lstm' ? 2 : 1));
    const a = scratch.forward(inputs, start);
    const b = builtin.forward(inputs, start);
    expect(a.logits.shape).toEqual([batch, 5, V]);
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
    expect(b.state).toHaveLength(start.length);
    a.state.forEach((s, i) => expect(maxAbsDiff(s, b.state[i])).toBeLessThan(1e-5));
    // And the carried state matters, every layer's of it: from zeros the result differs.
    const fromZero = scratch.forward(inputs, scratch.zeroState(batch));
    expect(maxAbsDiff(fromZero.logits, a.logits)).toBeGreaterThan(1e-3);
    tf.dispose([a, b, fromZero, inputs, start] as unknown as tf.Tensor[]);
    scratch.dispose();
    builtin.dispose();
  });

  it('the stepper gives forward()’s logits and state, one character at a time', () => {
    for (const model of Object.values(twins(cell, layers))) {
      const stepper = model.stepper();
      const ids = [3, 9, 0, 5];
      let state = model.zeroState(2);
      let stepped = model.zeroState(2);
      for (const id of ids) {
        const x = tf.tensor2d([id, (id + 4) % V], [2, 1], 'int32');
        const full = model.forward(x, state);
        const one = stepper.step(x.reshape([2]) as tf.Tensor1D, stepped);
        expect(maxAbsDiff(full.logits.reshape([2, V]), one.logits)).toBeLessThan(1e-6);
        tf.dispose([x, full.logits, one.logits, ...state, ...stepped]);
        state = full.state;
        stepped = one.state;
      }
      state.forEach((s, i) => expect(maxAbsDiff(s, stepped[i])).toBeLessThan(1e-6));
      tf.dispose([...state, ...stepped]);
      const before = tf.memory().numTensors;
      stepper.dispose();
      // Frees only what it arranged: the model still runs.
      expect(tf.memory().numTensors).toBeLessThanOrEqual(before);
      const check = model.forward(inputsOf(1, 2), model.zeroState(1));
      expect(check.logits.shape).toEqual([1, 2, V]);
      model.dispose();
    }
  });

  it('saved and loaded, it generates the same greedy text', async () => {
    const vocab = vocabularyOf('abcdefghijk'.split(''));
    for (const model of Object.values(twins(cell, layers))) {
      const loaded = await modelFromFiles(model.config, await model.toFiles());
      expect(generateText(loaded, vocab, 'abc', 30)).toBe(generateText(model, vocab, 'abc', 30));
      loaded.variables.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(model.variables[i].dataSync())));
      loaded.dispose();
      model.dispose();
    }
  });

  it('weight gradients on wasm (with the speed-ups) equal those on the cpu backend', async () => {
    const gradientsOn = (backend: 'cpu' | 'wasm', impl: 'scratch' | 'builtin') =>
      onBackend(backend, () => {
        const { scratch, builtin } = twins(cell, layers);
        const model = impl === 'scratch' ? scratch : builtin;
        const inputs = inputsOf(3, 6);
        const targets = tf.tensor2d(
          Array.from({ length: 18 }, (_, i) => (i * 5 + 1) % V),
          [3, 6],
          'int32',
        );
        const start = randomState(model, 3);
        const { grads } = tf.variableGrads(
          () => crossEntropy(model.forward(inputs, start).logits, targets),
          model.variables as tf.Variable[],
        );
        const values = model.variables.map((v) => Array.from(grads[v.name].dataSync()));
        tf.dispose([inputs, targets, ...start, ...Object.values(grads)]);
        scratch.dispose();
        builtin.dispose();
        return values;
      });
    for (const impl of ['scratch', 'builtin'] as const) {
      const onCpu = await gradientsOn('cpu', impl);
      const onWasm = await gradientsOn('wasm', impl);
      expect(onWasm).toHaveLength(onCpu.length);
      onCpu.forEach((g, i) => {
        const scale = Math.max(1e-3, ...g.map(Math.abs));
        const diff = Math.max(...g.map((x, k) => Math.abs(x - onWasm[i][k])));
        expect(diff / scale).toBeLessThan(1e-4);
        expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(0); // every weight gets a gradient
      });
    }
  });

  it('frees every intermediate of forward and of the stepper', () => {
    for (const model of Object.values(twins(cell, layers))) {
      const inputs = inputsOf(2, 3);
      const state = model.zeroState(2);
      const before = tf.memory().numTensors;
      const out = model.forward(inputs, state, { seed: 7 });
      expect(tf.memory().numTensors).toBe(before + 1 + state.length); // logits and the new state
      tf.dispose([out.logits, ...out.state]);
      const stepper = model.stepper();
      const step = stepper.step(tf.tensor1d([1, 2], 'int32'), state);
      tf.dispose([step.logits, ...step.state]);
      stepper.dispose();
      expect(tf.memory().numTensors).toBe(before + 1); // the ids tensor of step()
      tf.dispose([inputs, ...state]);
      model.dispose();
    }
  });
});

describe('dropout between layers', () => {
  it.each(CELLS)('%s: the same masks in both implementations, only in training, only between layers', (cell) => {
    const { scratch, builtin } = twins(cell, 3, 0.5);
    const inputs = inputsOf(4, 5);
    const start = scratch.zeroState(4);
    const logits = (model: LanguageModel, seed?: number) => model.forward(inputs, start, seed === undefined ? undefined : { seed });
    const [a, b] = [logits(scratch, 11), logits(builtin, 11)];
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
    // Inference is untouched by it, and another seed drops other units.
    const inference = logits(scratch);
    const other = logits(scratch, 12);
    expect(maxAbsDiff(inference.logits, a.logits)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(other.logits, a.logits)).toBeGreaterThan(1e-3);
    // The last layer's output is never dropped: a one-layer model ignores the rate.
    const single = new ScratchModel(configOf('scratch', cell, 1, 0.5), 3);
    const [s1, s2] = [logits(single, 11), logits(single)];
    expect(maxAbsDiff(s1.logits, s2.logits)).toBe(0);
    tf.dispose([a, b, inference, other, s1, s2, inputs, start] as unknown as tf.Tensor[]);
    [scratch, builtin, single].forEach((m) => m.dispose());
  });
});

describe.each([0, 5])('with --seed %i', (seed) => {
  it.each(CASES)('%s, %i layer(s): each impl starts from the same weights every time, another seed from others', (cell, layers) => {
    for (const impl of ['scratch', 'builtin'] as const) {
      const make = (s: number) =>
        impl === 'scratch' ? new ScratchModel(configOf(impl, cell, layers), s) : BuiltinModel.create(configOf(impl, cell, layers), s);
      const [a, b, other] = [make(seed), make(seed), make(seed + 1)];
      a.variables.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(b.variables[i].dataSync())));
      expect(Array.from(other.variables[0].dataSync())).not.toEqual(Array.from(a.variables[0].dataSync()));
      [a, b, other].forEach((m) => m.dispose());
    }
  });
});

describe('scratch cells', () => {
  it("have the lessons' parameters: N(0, 0.01) weights, zero biases, named as in the lessons", () => {
    const names = (cell: Cell, layers = 1) => Object.keys(new ScratchModel(configOf('scratch', cell, layers), 0).params);
    // biome-ignore format: three to a gate, as the lessons list them
    expect(names('lstm')).toEqual([
      'W_xi', 'W_hi', 'b_i', 'W_xf', 'W_hf', 'b_f', 'W_xo', 'W_ho', 'b_o', 'W_xc', 'W_hc', 'b_c', 'W_hq', 'b_q',
    ]);
    // biome-ignore format: three to a gate
    expect(names('gru')).toEqual(['W_xz', 'W_hz', 'b_z', 'W_xr', 'W_hr', 'b_r', 'W_xh', 'W_hh', 'b_h', 'W_hq', 'b_q']);
    expect(names('rnn')).toEqual(['W_xh', 'W_hh', 'b_h', 'W_hq', 'b_q']);
    expect(names('rnn', 2)).toEqual(['W_xh', 'W_hh', 'b_h', 'layer2/W_xh', 'layer2/W_hh', 'layer2/b_h', 'W_hq', 'b_q']);

    const model = new ScratchModel({ impl: 'scratch', cell: 'gru', layers: 2, dropout: 0, vocabSize: 50, hidden: 40 }, 0);
    expect(model.params.W_xz.shape).toEqual([50, 40]);
    expect(model.params['layer2/W_xz'].shape).toEqual([40, 40]);
    expect(model.params.W_hh.shape).toEqual([40, 40]);
    expect(model.params.W_hq.shape).toEqual([40, 50]);
    const w = Array.from(model.params['layer2/W_hr'].dataSync());
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.008);
    expect(std).toBeLessThan(0.012);
    expect(Math.max(...Array.from(model.params['layer2/b_z'].dataSync(), Math.abs))).toBe(0);
    model.dispose();
  });
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe("builtin cells' biases", () => {
  const hidden = 256;
  const k = 1 / Math.sqrt(hidden);
  const configOfCell = (cell: Cell, layers: number): ModelConfig => ({ impl: 'builtin', cell, layers, dropout: 0, vocabSize: 30, hidden });

  it("the RNN's bias is nn.RNN's b_ih + b_hh: the sum of two U(-1/√H, 1/√H) draws, one paired bias per layer", () => {
    const model = BuiltinModel.create(configOfCell('rnn', 2), 0);
    const names = model.pairedBiases.map((v) => v.name);
    expect(names).toEqual([expect.stringMatching(/^rnn\/bias/), expect.stringMatching(/^rnn_2\/bias/)]);
    for (const bias of model.pairedBiases) {
      expect(model.variables).toContain(bias);
      const values = Array.from(bias.dataSync());
      // A sum of two U(-k, k) lies in (-2k, 2k), a quarter of it beyond ±k; its std is k·√(2/3).
      expect(Math.max(...values.map(Math.abs))).toBeLessThan(2 * k);
      expect(values.filter((v) => Math.abs(v) > k).length).toBeGreaterThan(hidden / 8);
      const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
      expect(std).toBeGreaterThan(0.8 * k * Math.sqrt(2 / 3));
      expect(std).toBeLessThan(1.2 * k * Math.sqrt(2 / 3));
    }
    model.dispose();
  });

  it.each(['gru', 'lstm'] as const)("the %s's bias is one U(-1/√H, 1/√H) draw, not paired", (cell) => {
    const model = BuiltinModel.create(configOfCell(cell, 1), 0);
    expect(model.pairedBiases).toEqual([]);
    const bias = model.model.getLayer(cell).getWeights()[2];
    expect(Math.max(...Array.from(bias.dataSync(), Math.abs))).toBeLessThanOrEqual(k);
    model.dispose();
  });
});
