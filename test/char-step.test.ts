/**
 * Generation's one-kernel step (src/accel/char-step.ts, CHAR_STEP_KERNEL) against the stepper's own
 * kernels (stepper.step + argMax), for every cell, impl and depth: the same logits, state and ids to
 * the bit, the same greedy and sampled text, no tensor left behind; and the module's gemv against the
 * library's matmul, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { setAccel } from '../src/accel';
import { CHAR_STEP_KERNEL as ACCEL_NAME, charStepKernel, heapView, stepOps } from '../src/accel/char-step';
import { simdKernels } from '../src/accel/wasm-kernels-simd';
import { CELLS, IMPLS, type Cell, type Impl } from '../src/core/config';
import { CHAR_STEP_KERNEL, generateText, generationStep } from '../src/core/generate';
import { createModel, type LanguageModel } from '../src/core/models';
import { disposeState, type RecurrentState } from '../src/core/models/types';
import { makeRng } from '../src/core/random';
import type { Vocabulary } from '../src/core/vocab';
import { randomFloats, useWasm } from './helpers';

beforeAll(useWasm);

/** The float32 values' bits, so that -0 and +0, or two NaNs, are told apart as the kernels would. */
const bits = (t: tf.Tensor): number[] => Array.from(new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer));

/**
 * A model whose weights are spread wide (the lessons' N(0, 0.01) start writes one character over and
 * over), so that greedy text moves around the vocabulary and a wrong float would show.
 */
function spreadModel(impl: Impl, cell: Cell, layers: number, vocabSize: number, hidden: number): LanguageModel {
  const model = createModel({ impl, cell, layers, dropout: 0, vocabSize, hidden }, 3);
  model.variables.forEach((v, k) => {
    v.assign(tf.tidy(() => tf.tensor(randomFloats(v.size, 100 + k, -0.8, 0.8), v.shape, 'float32')));
  });
  return model;
}

function vocabulary(size: number): Vocabulary {
  const chars = Array.from({ length: size }, (_, i) => String.fromCharCode(0x4e00 + i));
  return { chars, index: new Map(chars.map((c, i) => [c, i])) };
}

/** Runs `fn` with CHAR_STEP_KERNEL unregistered: the stepper's own kernels. */
function withoutKernel<T>(fn: () => T): T {
  tf.unregisterKernel(CHAR_STEP_KERNEL, 'wasm');
  try {
    return fn();
  } finally {
    tf.registerKernel(charStepKernel);
  }
}

it('core and accel name the kernel alike, and the switch registers it only when on', () => {
  expect(ACCEL_NAME).toBe(CHAR_STEP_KERNEL);
  expect(tf.getKernel(CHAR_STEP_KERNEL, 'wasm')).toBeDefined();
  setAccel({ setting: 'off' });
  try {
    expect(tf.getKernel(CHAR_STEP_KERNEL, 'wasm')).toBeUndefined();
  } finally {
    setAccel({ setting: 'on' });
  }
  expect(tf.getKernel(CHAR_STEP_KERNEL, 'wasm')).toBeDefined();
});

// Odd sizes (hidden 6, vocab 11: rows and columns that are not multiples of 4) and the lessons' (256, 1027).
const SHAPES = [
  { vocab: 11, hidden: 6 },
  { vocab: 1027, hidden: 256 },
];
const CASES = IMPLS.flatMap((impl) =>
  CELLS.flatMap((cell) => [1, 2].flatMap((layers) => SHAPES.map(({ vocab, hidden }) => ({ impl, cell, layers, vocab, hidden })))),
);

describe.each(CASES)('$impl $cell, $layers layer(s), vocab $vocab, hidden $hidden', ({ impl, cell, layers, vocab, hidden }) => {
  let model: LanguageModel;
  beforeAll(() => {
    model = spreadModel(impl, cell, layers, vocab, hidden);
  });
  afterAll(() => model.dispose());

  it('one kernel gives the stepper kernels’ logits, state and greedy ids, bit for bit, step after step', () => {
    const before = tf.memory().numTensors;
    const stepper = model.stepper();
    const fast = generationStep(stepper);
    expect(stepper.plan).toBeDefined();
    let state: RecurrentState = model.zeroState(1);
    let id = 1;
    try {
      for (let t = 0; t < 12; t++) {
        const ids = tf.tensor1d([id], 'int32');
        const mine = tf.tidy(() => fast(ids, state));
        const stock = tf.tidy(() => withoutKernel(() => generationStep(stepper)(ids, state)));
        expect(mine.id).toBeDefined(); // the kernel ran
        expect(stock.id).toBeUndefined(); // the stepper's kernels ran
        expect(bits(mine.logits)).toEqual(bits(stock.logits));
        mine.state.forEach((s, i) => expect([i, bits(s)]).toEqual([i, bits(stock.state[i])]));
        const greedy = tf.tidy(() => tf.argMax(stock.logits, 1).dataSync()[0]);
        expect(mine.id!.dataSync()[0]).toBe(greedy);
        // Feed a different character than the greedy one sometimes, so more rows are read.
        id = t % 3 === 2 ? (greedy * 7 + 3) % vocab : greedy;
        tf.dispose([ids, mine.logits, mine.id!, stock.logits]);
        disposeState(stock.state);
        disposeState(state);
        state = mine.state;
      }
    } finally {
      disposeState(state);
      stepper.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('writes the same greedy and sampled text as the stepper’s kernels, with no tensor left behind', () => {
    const vocabulary_ = vocabulary(vocab);
    const prefix = vocabulary_.chars.slice(1, 4).join('');
    const before = tf.memory().numTensors;
    const greedy = generateText(model, vocabulary_, prefix, 60);
    const sampling = () => ({ temperature: 0.8, topK: 5, rng: makeRng(7) });
    const sampled = generateText(model, vocabulary_, prefix, 40, sampling());
    expect(tf.memory().numTensors).toBe(before);
    expect(withoutKernel(() => generateText(model, vocabulary_, prefix, 60))).toBe(greedy);
    expect(withoutKernel(() => generateText(model, vocabulary_, prefix, 40, sampling()))).toBe(sampled);
    // Not one character over and over, which would prove little (a tiny model's greedy text may
    // settle on one: the step-by-step test above feeds it other characters too).
    expect(new Set(sampled.slice(prefix.length)).size).toBeGreaterThan(1);
    if (vocab > 100) expect(new Set(greedy.slice(prefix.length)).size).toBeGreaterThan(1);
  });

  it('generates each greedy character after the first with one kernel call, the one-kernel step, and nothing else', () => {
    // Every kernel the engine runs for a greedy text, by name; 40 characters more must be 40
    // CHAR_STEP_KERNEL calls more and not one other kernel (no fallback to the stepper's kernels,
    // no per-character argMax, gather or bias addition), whatever the plan holds (a layer above the
    // first has inputBias for the RNN and GRU, a gateBias for the LSTM).
    const vocabulary_ = vocabulary(vocab);
    const prefix = vocabulary_.chars.slice(1, 4).join('');
    const kernelCounts = (length: number): Map<string, number> => {
      const runKernel = jest.spyOn(tf.engine(), 'runKernel');
      try {
        generateText(model, vocabulary_, prefix, length);
        const counts = new Map<string, number>();
        for (const [name] of runKernel.mock.calls) counts.set(name, (counts.get(name) ?? 0) + 1);
        return counts;
      } finally {
        runKernel.mockRestore();
      }
    };
    const short = kernelCounts(10);
    const long = kernelCounts(50);
    expect(short.get(CHAR_STEP_KERNEL)).toBe(9); // the first character comes from the prefix's logits
    const more = [...new Set([...short.keys(), ...long.keys()])]
      .map((name) => [name, (long.get(name) ?? 0) - (short.get(name) ?? 0)])
      .filter(([, n]) => n !== 0);
    expect(more).toEqual([[CHAR_STEP_KERNEL, 40]]);
  });
});

describe("the module's gemv", () => {
  it.each([
    [1, 1],
    [3, 5],
    [4, 4],
    [6, 11],
    [256, 1027],
    [1027, 256],
  ])('x[1, %i] · w, n %i: the library matmul to the bit, from 0 and from a bias', (k, n) => {
    const wasm = tf.backend() as BackendWasm;
    const simd = simdKernels(wasm)!;
    expect(simd).toBeDefined();
    const x = tf.tensor2d(randomFloats(k, 1, -2, 2), [1, k]);
    const w = tf.tensor2d(randomFloats(k * n, 2, -0.5, 0.5), [k, n]);
    const bias = tf.tensor1d(randomFloats(n, 3, -1, 1));
    for (const from of [undefined, bias]) {
      const out = tf.tensor1d(from ? from.dataSync() : new Float32Array(n)); // its own memory (a clone may share)
      const at = (t: tf.Tensor) => wasm.dataIdMap.get(t.dataId)!.memoryOffset;
      simd.gemv(at(x), at(w), at(out), k, n);
      const library = from ? tf.fused.matMul({ a: x, b: w, bias: from }) : tf.matMul(x, w);
      expect(bits(out)).toEqual(bits(library));
      tf.dispose([out, library]);
    }
    tf.dispose([x, w, bias]);
  });
});

describe("the step's arithmetic where the SIMD module cannot run", () => {
  it("JS gives the SIMD module's floats, op by op, bit for bit (odd lengths: the tails too)", () => {
    const wasm = tf.backend() as BackendWasm;
    const view = heapView(wasm);
    const simd = stepOps(wasm, view);
    const js = stepOps(wasm, view, null);
    const at = (t: tf.Tensor) => wasm.dataIdMap.get(t.dataId)!.memoryOffset;
    const n = 37;
    const k = 6;
    // Values around 0 and 1 (gates), some large (saturated activations), a tie for argmax.
    const inputs = [1, 2, 3, 4].map((seed) => tf.tensor1d(randomFloats(n, seed, -3, 3)));
    const w = tf.tensor1d(randomFloats(k * n, 5, -1, 1));
    const run = (ops: typeof simd) => {
      const outs = [0, 1, 2, 3, 4].map(() => tf.tensor1d(new Float32Array(n))); // each its own memory
      const [a, b, c, d] = inputs.map(at);
      ops.mul(a, b, at(outs[0]), n);
      ops.mulAdd(a, b, c, d, at(outs[1]), n);
      ops.gruMix(a, b, c, at(outs[2]), n);
      ops.gemv(a, at(w), at(outs[3]), k, n);
      view().set(inputs[3].dataSync() as Float32Array, at(outs[4]) >> 2);
      ops.addInto(a, at(outs[4]), n);
      ops.activate(1, at(outs[4]), 20);
      ops.activate(2, at(outs[4]) + 80, n - 20);
      const result = { floats: outs.map(bits), argmax: ops.argmax(at(outs[1]), n) };
      tf.dispose(outs);
      return result;
    };
    const fromSimd = run(simd);
    expect(run(js)).toEqual(fromSimd);
    expect(new Set(fromSimd.floats[0]).size).toBeGreaterThan(n / 2); // real values, not zeros
    tf.dispose([...inputs, w]);
  });
});
