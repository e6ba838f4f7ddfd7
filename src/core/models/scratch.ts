/**
 * The series' three cells written by hand, as in the lessons: tf.variables with the lessons'
 * names, N(0, 0.01) weights and zero biases, and the lessons' equations
 *
 *   RNN   H = tanh(X W_xh + H W_hh + b_h)
 *   GRU   Z = σ(X W_xz + H W_hz + b_z)       R = σ(X W_xr + H W_hr + b_r)
 *         H̃ = tanh(X W_xh + (R ⊙ H) W_hh + b_h)        H = Z ⊙ H + (1 − Z) ⊙ H̃
 *   LSTM  I = σ(X W_xi + H W_hi + b_i)       F = σ(X W_xf + H W_hf + b_f)
 *         O = σ(X W_xo + H W_ho + b_o)       C̃ = tanh(X W_xc + H W_hc + b_c)
 *         C = F ⊙ C + I ⊙ C̃                  H = O ⊙ tanh(C)
 *
 * and the output Y = H W_hq + b_q. Stacked layers: layer 1's X is the one-hot character, each
 * further layer's X is the H of the layer below (its names prefixed `layer2/`, `layer3/`, ...).
 *
 * Two liberties for speed, neither changes the math: a cell's gates' weights sit side by side in
 * one matrix per input (one matmul instead of three or four), and X W_x is computed for all steps
 * of a layer at once (for a one-hot X, as a row gather of W_x).
 */
import * as tf from '@tensorflow/tfjs';
import { arrayBufferOf, utf8Bytes, utf8Text } from '../bytes';
import type { Cell, ModelConfig } from '../config';
import { dropoutMask } from './dropout';
import {
  layerState,
  zeroState,
  type CharStepper,
  type LanguageModel,
  type ModelFiles,
  type RecurrentState,
  type StepPlan,
  type Training,
} from './types';

/**
 * Each cell's gates, in the lesson's order (how its parameters are listed and saved) and in the
 * fused order, which is tf.layers' kernel layout for that cell (LSTM i, f, c, o; GRU z, r, h), so
 * the fused matrices are exactly that layer's kernel, recurrent kernel and bias.
 */
export const GATES: Readonly<Record<Cell, { readonly lesson: readonly string[]; readonly fused: readonly string[] }>> = {
  rnn: { lesson: ['h'], fused: ['h'] },
  gru: { lesson: ['z', 'r', 'h'], fused: ['z', 'r', 'h'] },
  lstm: { lesson: ['i', 'f', 'o', 'c'], fused: ['i', 'f', 'c', 'o'] },
};

const INIT_STDDEV = 0.01;
export const SCRATCH_WEIGHTS_FILE = 'weights.bin';
export const SCRATCH_MANIFEST_FILE = 'weights.json';
export const SCRATCH_FORMAT = 'lstm-lyrics-scratch';

let modelCount = 0;

/**
 * A distinct seed per weight matrix. Never 0: TF.js treats a falsy seed as "no seed" and draws a
 * random one, which made --seed 0 (the default) unrepeatable.
 */
export function weightSeed(seed: number, k: number): number {
  return seed * 1000 + k + 1;
}

/** The prefix of layer `layer`'s parameter names (from 0): none for the first, as in the lessons. */
export function layerPrefix(layer: number): string {
  return layer === 0 ? '' : `layer${layer + 1}/`;
}

/**
 * Every parameter with its shape, in the order they are created, listed and saved: each layer's
 * three per gate in the lesson's order (W_x·, W_h·, b_·), then W_hq and b_q. One LSTM layer is the
 * fourteen of the lesson, in its order.
 */
export function scratchParamShapes({ cell, layers, vocabSize: V, hidden: H }: ModelConfig): { name: string; shape: number[] }[] {
  const shapes: { name: string; shape: number[] }[] = [];
  for (let l = 0; l < layers; l++) {
    const p = layerPrefix(l);
    const inputs = l === 0 ? V : H;
    for (const g of GATES[cell].lesson) {
      shapes.push({ name: `${p}W_x${g}`, shape: [inputs, H] }, { name: `${p}W_h${g}`, shape: [H, H] }, { name: `${p}b_${g}`, shape: [H] });
    }
  }
  shapes.push({ name: 'W_hq', shape: [H, V] }, { name: 'b_q', shape: [V] });
  return shapes;
}

/** One layer's weights as a step uses them: the gates fused (see GATES), b added to X W_x. */
// A type, not an interface, so tf.tidy accepts it as a TensorContainer.
type LayerWeights = {
  /** [inputs, gates·hidden] */
  readonly W_x: tf.Tensor2D;
  /** [hidden, gates·hidden]; the GRU's holds only Z's and R's (its W_hh multiplies R ⊙ H). */
  readonly W_h: tf.Tensor2D;
  /** The GRU's candidate weights, [hidden, hidden]. */
  readonly W_hh?: tf.Tensor2D;
  /** [gates·hidden] */
  readonly b: tf.Tensor1D;
};

/**
 * One time step of a cell: `xw` is X W_x + b for this step, [batch, gates·hidden] in fused order;
 * `state` is the layer's [H] or [H, C]. Returns the layer's new state, H first.
 */
type CellStep = (xw: tf.Tensor2D, state: tf.Tensor2D[], w: LayerWeights) => tf.Tensor2D[];

export const CELL_STEPS: Readonly<Record<Cell, CellStep>> = {
  rnn: (xw, [h], w) => [tf.tanh(xw.add(h.matMul(w.W_h))) as tf.Tensor2D],
  gru: (xw, [h], w) => {
    // Z and R side by side, as their weights: one addition and one sigmoid for both (the same
    // float operations, element by element, as one per gate).
    const [xzr, xh] = tf.split(xw, [2 * h.shape[1], h.shape[1]], 1);
    const [Z, R] = tf.split(tf.sigmoid(xzr.add(h.matMul(w.W_h))), 2, 1);
    const H_tilde = tf.tanh(xh.add(R.mul(h).matMul(w.W_hh as tf.Tensor2D)));
    return [Z.mul(h).add(tf.sub(1, Z).mul(H_tilde)) as tf.Tensor2D];
  },
  lstm: (xw, [h, c], w) => {
    const next = lstmCell(xw, { h, c }, w.W_h);
    return [next.h, next.c];
  },
};

export class ScratchModel implements LanguageModel {
  readonly params: Readonly<Record<string, tf.Variable>>;
  readonly variables: readonly tf.Variable[];

  /** `initial` (e.g. loaded weights) replaces the random N(0, 0.01) / zero initialisation. */
  constructor(
    readonly config: ModelConfig,
    seed = 0,
    initial?: tf.NamedTensorMap,
  ) {
    // Variable names are global in TF.js; a per-model scope lets several models live in one process.
    const scope = `scratch${modelCount++}`;
    const params: Record<string, tf.Variable> = {};
    scratchParamShapes(config).forEach(({ name, shape }, k) => {
      const value = tf.tidy(() => {
        if (initial) return checkedShape(initial, name, shape);
        return shape.length === 1 ? tf.zeros(shape) : tf.randomNormal(shape, 0, INIT_STDDEV, 'float32', weightSeed(seed, k));
      });
      params[name] = tf.variable(value, true, `${scope}/${name}`);
      value.dispose();
    });
    this.params = params;
    this.variables = Object.values(params);
  }

  forward(inputs: tf.Tensor2D, state: RecurrentState, training?: Training): { logits: tf.Tensor3D; state: RecurrentState } {
    return tf.tidy(() => {
      const [batchSize, numSteps] = inputs.shape;
      const { cell, layers, dropout, hidden } = this.config;
      const step = CELL_STEPS[cell];
      // Time-major throughout, so step t is a contiguous block of rows.
      const timeMajorIds = inputs.transpose().reshape([-1]);
      let x: tf.Tensor2D | undefined; // the layer below's H at every step, [steps·batch, hidden]
      const next: tf.Tensor2D[] = [];
      for (let l = 0; l < layers; l++) {
        const w = this.layerWeights(l);
        // X W_x + b for every step at once.
        const xw = (x === undefined ? tf.gather(w.W_x, timeMajorIds) : x.matMul(w.W_x)).add(w.b);
        let s = layerState(state, cell, l);
        const hs: tf.Tensor2D[] = [];
        for (const xt of tf.unstack(xw.reshape([numSteps, batchSize, -1])) as tf.Tensor2D[]) {
          s = step(xt, s, w);
          hs.push(s[0]);
        }
        next.push(...s);
        x = tf.concat(hs, 0);
        if (training && dropout > 0 && l < layers - 1) {
          x = x.mul(dropoutMask([numSteps, batchSize, hidden], dropout, training.seed, l).reshape([-1, hidden])) as tf.Tensor2D;
        }
      }
      const { W_hq, b_q } = this.params;
      const logits = (x as tf.Tensor2D).matMul(W_hq).add(b_q).reshape([numSteps, batchSize, -1]).transpose([1, 0, 2]) as tf.Tensor3D;
      return { logits, state: next };
    });
  }

  zeroState(batchSize: number): RecurrentState {
    return zeroState(this.config, batchSize);
  }

  /** Layer `layer`'s gates fused (GATES' fused order); a one-gate cell's weights are its variables. */
  private layerWeights(layer: number): LayerWeights {
    const p = this.params;
    const prefix = layerPrefix(layer);
    const gates = GATES[this.config.cell].fused;
    const fuse = (kind: string, names: readonly string[], axis: number) =>
      names.length === 1
        ? p[`${prefix}${kind}${names[0]}`]
        : tf.concat(
            names.map((g) => p[`${prefix}${kind}${g}`]),
            axis,
          );
    const recurrent = this.config.cell === 'gru' ? ['z', 'r'] : gates;
    return {
      W_x: fuse('W_x', gates, 1) as tf.Tensor2D,
      W_h: fuse('W_h', recurrent, 1) as tf.Tensor2D,
      ...(this.config.cell === 'gru' && { W_hh: p[`${prefix}W_hh`] as tf.Tensor2D }),
      b: fuse('b_', gates, 0) as tf.Tensor1D,
    };
  }

  /**
   * forward() for one step, with the gates fused once rather than per character (the concat of
   * W_x alone copies vocab·gates·hidden floats) and b added to every row of the first layer's
   * W_x up front: the same additions in the same order, so the same logits bit for bit.
   */
  stepper(): CharStepper {
    const { cell, layers } = this.config;
    const step = CELL_STEPS[cell];
    const arranged: LayerWeights[] = tf.tidy(() =>
      Array.from({ length: layers }, (_, l) => {
        const w = this.layerWeights(l);
        return l === 0 ? { ...w, W_x: w.W_x.add(w.b) as tf.Tensor2D } : w;
      }),
    );
    const { W_hq, b_q } = this.params;
    // What step() below computes, as data (see StepPlan): the first layer's bias is in its rows.
    const plan: StepPlan = {
      cell,
      layers: arranged.map((w, l) => ({
        inputKernel: w.W_x,
        ...(l > 0 && { inputBias: w.b }),
        recurrentKernel: w.W_h,
        ...(w.W_hh && { candidateKernel: w.W_hh }),
      })),
      outputKernel: W_hq as tf.Tensor2D,
      outputBias: b_q as tf.Tensor1D,
      outputBiasFirst: false,
    };
    return {
      plan,
      step: (ids, state) =>
        tf.tidy(() => {
          const next: tf.Tensor2D[] = [];
          let x: tf.Tensor2D | undefined;
          arranged.forEach((w, l) => {
            const xw = x === undefined ? (tf.gather(w.W_x, ids) as tf.Tensor2D) : (x.matMul(w.W_x).add(w.b) as tf.Tensor2D);
            const s = step(xw, layerState(state, cell, l), w);
            next.push(...s);
            x = s[0];
          });
          return { logits: (x as tf.Tensor2D).matMul(W_hq).add(b_q) as tf.Tensor2D, state: next };
        }),
      // The model's own variables (a one-gate cell's W_h, say) are the model's to free.
      dispose: () => tf.dispose(arranged.flatMap((w) => Object.values(w)).filter((t) => !(t instanceof tf.Variable))),
    };
  }

  async toFiles(): Promise<ModelFiles> {
    const names = scratchParamShapes(this.config).map((s) => s.name);
    const { data, specs } = await tf.io.encodeWeights(names.map((name) => ({ name, tensor: this.params[name] })));
    const manifest = { format: SCRATCH_FORMAT, weightsManifest: [{ paths: [SCRATCH_WEIGHTS_FILE], weights: specs }] };
    return {
      [SCRATCH_MANIFEST_FILE]: utf8Bytes(JSON.stringify(manifest, null, 1)),
      [SCRATCH_WEIGHTS_FILE]: new Uint8Array(tf.io.CompositeArrayBuffer.join(data)),
    };
  }

  dispose(): void {
    this.variables.forEach((v) => v.dispose());
  }
}

/** An LSTM step's state, named as in the lesson. */
export type LstmCellState = { readonly h: tf.Tensor2D; readonly c: tf.Tensor2D };

/** One LSTM time step. `inputGates` is X W_x + b for this step, [batch, 4·hidden] in GATES.lstm.fused order. */
export function lstmCell(inputGates: tf.Tensor2D, state: LstmCellState, W_h: tf.Tensor2D): LstmCellState {
  const z = inputGates.add(state.h.matMul(W_h));
  const [zi, zf, zc, zo] = tf.split(z, 4, 1);
  const I = tf.sigmoid(zi);
  const F = tf.sigmoid(zf);
  const C_tilde = tf.tanh(zc);
  const O = tf.sigmoid(zo);
  const c = F.mul(state.c).add(I.mul(C_tilde)) as tf.Tensor2D;
  const h = O.mul(tf.tanh(c)) as tf.Tensor2D;
  return { h, c };
}

/** Reads a scratch model's files (see toFiles) back into a model. */
export function scratchFromFiles(config: ModelConfig, files: ModelFiles): ScratchModel {
  const manifest = JSON.parse(utf8Text(files[SCRATCH_MANIFEST_FILE]));
  const specs = manifest.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
  const weights = tf.io.decodeWeights(arrayBufferOf(files[SCRATCH_WEIGHTS_FILE]), specs);
  try {
    return new ScratchModel(config, 0, weights);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

function checkedShape(weights: tf.NamedTensorMap, name: string, shape: number[]): tf.Tensor {
  const w = weights[name];
  if (!w) throw new Error(`weights lack ${name}`);
  if (!tf.util.arraysEqual(w.shape, shape)) throw new Error(`weight ${name} has shape [${w.shape}], expected [${shape}]`);
  return w.clone();
}
