import * as tf from '@tensorflow/tfjs';
import { BuiltinLstm } from '../src/core/models/builtin';
import { GATE_ORDER, ScratchLstm } from '../src/core/models/scratch';
import { useWasm } from './helpers';

beforeAll(useWasm);

const config = { vocabSize: 11, hidden: 6 };

/** The scratch weights laid out as tf.layers.lstm's kernel [V, 4H], recurrent kernel [H, 4H], bias [4H] (gates i, f, c, o). */
function copyScratchIntoBuiltin(scratch: ScratchLstm, builtin: BuiltinLstm): void {
  const p = scratch.params;
  const pick = (prefix: string) => GATE_ORDER.map((g) => p[`${prefix}${g}` as keyof typeof p]);
  builtin.model.getLayer('lstm').setWeights([tf.concat(pick('W_x'), 1), tf.concat(pick('W_h'), 1), tf.concat(pick('b_'), 0)]);
  builtin.model.getLayer('output').setWeights([p.W_hq, p.b_q]);
}

describe('scratch and builtin LSTMs compute the same function', () => {
  it.each([1, 4])('logits and final (H, C) agree to 1e-5 over several steps with a carried state (batch %i)', (batch) => {
    const scratch = new ScratchLstm({ impl: 'scratch', ...config }, 3);
    // Biases start at zero in the lesson; give them values so a gate mix-up cannot hide.
    for (const name of ['b_i', 'b_f', 'b_c', 'b_o', 'b_q'] as const) {
      scratch.params[name].assign(tf.randomNormal(scratch.params[name].shape, 0, 0.5, 'float32', 7));
    }
    for (const name of ['W_xi', 'W_xf', 'W_xc', 'W_xo', 'W_hi', 'W_hf', 'W_hc', 'W_ho'] as const) {
      scratch.params[name].assign(tf.randomNormal(scratch.params[name].shape, 0, 0.5, 'float32', 8));
    }
    const builtin = BuiltinLstm.create({ impl: 'builtin', ...config }, 5);
    copyScratchIntoBuiltin(scratch, builtin);

    const inputs = tf.tensor2d(
      Array.from({ length: batch * 5 }, (_, i) => (i * 7) % 11),
      [batch, 5],
      'int32',
    );
    const start = {
      h: tf.randomNormal([batch, 6], 0, 0.5, 'float32', 1) as tf.Tensor2D,
      c: tf.randomNormal([batch, 6], 0, 0.5, 'float32', 2) as tf.Tensor2D,
    };
    const a = scratch.forward(inputs, start);
    const b = builtin.forward(inputs, start);
    expect(a.logits.shape).toEqual([batch, 5, 11]);
    expect(b.logits.shape).toEqual([batch, 5, 11]);
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a.state.h, b.state.h)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a.state.c, b.state.c)).toBeLessThan(1e-5);
    // And the state matters: from zeros the result differs.
    const fromZero = scratch.forward(inputs, scratch.zeroState(batch));
    expect(maxAbsDiff(fromZero.logits, a.logits)).toBeGreaterThan(1e-3);
    tf.dispose([
      a.logits,
      a.state.h,
      a.state.c,
      b.logits,
      b.state.h,
      b.state.c,
      fromZero.logits,
      fromZero.state.h,
      fromZero.state.c,
      inputs,
      start.h,
      start.c,
    ]);
    scratch.dispose();
    builtin.dispose();
  });
});

describe.each([0, 5])('with --seed %i', (seed) => {
  it.each(['scratch', 'builtin'] as const)('%s starts from the same weights every time', (impl) => {
    const make = () => (impl === 'scratch' ? new ScratchLstm({ impl, ...config }, seed) : BuiltinLstm.create({ impl, ...config }, seed));
    const [a, b] = [make(), make()];
    a.variables.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(b.variables[i].dataSync())));
    const other = impl === 'scratch' ? new ScratchLstm({ impl, ...config }, seed + 1) : BuiltinLstm.create({ impl, ...config }, seed + 1);
    expect(Array.from(other.variables[0].dataSync())).not.toEqual(Array.from(a.variables[0].dataSync()));
    [a, b, other].forEach((m) => m.dispose());
  });
});

describe('scratch LSTM', () => {
  it("has the lesson's parameters: N(0, 0.01) weights, zero biases, named as in the lesson", () => {
    const model = new ScratchLstm({ impl: 'scratch', vocabSize: 50, hidden: 40 }, 0);
    expect(Object.keys(model.params)).toEqual([
      'W_xi',
      'W_hi',
      'b_i',
      'W_xf',
      'W_hf',
      'b_f',
      'W_xo',
      'W_ho',
      'b_o',
      'W_xc',
      'W_hc',
      'b_c',
      'W_hq',
      'b_q',
    ]);
    expect(model.params.W_xi.shape).toEqual([50, 40]);
    expect(model.params.W_hc.shape).toEqual([40, 40]);
    expect(model.params.W_hq.shape).toEqual([40, 50]);
    const w = Array.from(model.params.W_hq.dataSync());
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.008);
    expect(std).toBeLessThan(0.012);
    expect(Math.max(...Array.from(model.params.b_f.dataSync(), Math.abs))).toBe(0);
    model.dispose();
  });

  it('frees every intermediate of forward', () => {
    const model = new ScratchLstm({ impl: 'scratch', vocabSize: 9, hidden: 4 }, 0);
    const state = model.zeroState(2);
    const inputs = tf.tensor2d(
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [2, 3],
      'int32',
    );
    const before = tf.memory().numTensors;
    const out = model.forward(inputs, state);
    expect(tf.memory().numTensors).toBe(before + 3); // logits, h, c
    tf.dispose([out.logits, out.state.h, out.state.c, inputs, state.h, state.c]);
    model.dispose();
  });
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
