/**
 * The LSTM written by hand, as in the lesson: fourteen tf.variables and the gate equations
 *
 *   I = σ(X W_xi + H W_hi + b_i)     F = σ(X W_xf + H W_hf + b_f)
 *   O = σ(X W_xo + H W_ho + b_o)     C̃ = tanh(X W_xc + H W_hc + b_c)
 *   C = F ⊙ C + I ⊙ C̃                H = O ⊙ tanh(C)                  Y = H W_hq + b_q
 *
 * Two liberties for speed, neither changes the math: the four gates' weights are side by side in
 * one matrix per input (one matmul instead of four), and X W_x for a one-hot X is a row gather of
 * W_x, done for all steps at once.
 */
import * as tf from '@tensorflow/tfjs';
import { arrayBufferOf, utf8Bytes, utf8Text } from '../bytes';
import type { ModelConfig } from '../config';
import { zeroState, type CharStepper, type LanguageModel, type LstmState, type ModelFiles } from './types';

/** The lesson's parameter names, in the lesson's order. */
// biome-ignore format: three to a gate, as the lesson lists them
export const SCRATCH_PARAM_NAMES = [
  'W_xi', 'W_hi', 'b_i',
  'W_xf', 'W_hf', 'b_f',
  'W_xo', 'W_ho', 'b_o',
  'W_xc', 'W_hc', 'b_c',
  'W_hq', 'b_q',
] as const;
export type ScratchParamName = (typeof SCRATCH_PARAM_NAMES)[number];
export type ScratchParams = Record<ScratchParamName, tf.Variable>;

/**
 * Gate order inside the fused matrices. i, f, c, o is tf.layers.lstm's order too, so the fused
 * matrices are exactly that layer's kernel, recurrent kernel and bias.
 */
export const GATE_ORDER = ['i', 'f', 'c', 'o'] as const;

const INIT_STDDEV = 0.01;
export const SCRATCH_WEIGHTS_FILE = 'weights.bin';
export const SCRATCH_MANIFEST_FILE = 'weights.json';

let modelCount = 0;

/**
 * A distinct seed per weight matrix. Never 0: TF.js treats a falsy seed as "no seed" and draws a
 * random one, which made --seed 0 (the default) unrepeatable.
 */
export function weightSeed(seed: number, k: number): number {
  return seed * 1000 + k + 1;
}

export class ScratchLstm implements LanguageModel {
  readonly params: ScratchParams;
  readonly variables: readonly tf.Variable[];

  /** `initial` (e.g. loaded weights) replaces the random N(0, 0.01) / zero initialisation. */
  constructor(
    readonly config: ModelConfig,
    seed = 0,
    initial?: tf.NamedTensorMap,
  ) {
    const { vocabSize: V, hidden: H } = config;
    // biome-ignore format: three to a gate, as the lesson lists them
    const shapes: Record<ScratchParamName, number[]> = {
      W_xi: [V, H], W_hi: [H, H], b_i: [H],
      W_xf: [V, H], W_hf: [H, H], b_f: [H],
      W_xo: [V, H], W_ho: [H, H], b_o: [H],
      W_xc: [V, H], W_hc: [H, H], b_c: [H],
      W_hq: [H, V], b_q: [V],
    };
    // Variable names are global in TF.js; a per-model scope lets several models live in one process.
    const scope = `scratch${modelCount++}`;
    const params = {} as ScratchParams;
    SCRATCH_PARAM_NAMES.forEach((name, k) => {
      const shape = shapes[name];
      const value = tf.tidy(() => {
        if (initial) return checkedShape(initial, name, shape);
        return shape.length === 1 ? tf.zeros(shape) : tf.randomNormal(shape, 0, INIT_STDDEV, 'float32', weightSeed(seed, k));
      });
      params[name] = tf.variable(value, true, `${scope}/${name}`);
      value.dispose();
    });
    this.params = params;
    this.variables = SCRATCH_PARAM_NAMES.map((name) => params[name]);
  }

  forward(inputs: tf.Tensor2D, state: LstmState): { logits: tf.Tensor3D; state: LstmState } {
    return tf.tidy(() => {
      const [batchSize, numSteps] = inputs.shape;
      const p = this.params;
      const { W_x, W_h, b } = this.fusedGates();

      // X W_x + b for every step at once, time-major so step t is a contiguous block of rows.
      const timeMajorIds = inputs.transpose().reshape([-1]);
      const inputGates = tf.gather(W_x, timeMajorIds).add(b).reshape([numSteps, batchSize, -1]);
      const perStep = tf.unstack(inputGates) as tf.Tensor2D[];

      let { h, c } = state;
      const hs: tf.Tensor2D[] = [];
      for (const x of perStep) {
        ({ h, c } = lstmCell(x, { h, c }, W_h));
        hs.push(h);
      }
      const outputs = tf.concat(hs, 0); // [steps·batch, hidden]
      const logits = outputs.matMul(p.W_hq).add(p.b_q).reshape([numSteps, batchSize, -1]).transpose([1, 0, 2]) as tf.Tensor3D;
      return { logits, state: { h, c } };
    });
  }

  zeroState(batchSize: number): LstmState {
    return zeroState(batchSize, this.config.hidden);
  }

  /** The four gates' weights side by side: W_x [vocab, 4·hidden], W_h [hidden, 4·hidden], b [4·hidden]. */
  private fusedGates(): { W_x: tf.Tensor2D; W_h: tf.Tensor2D; b: tf.Tensor1D } {
    const p = this.params;
    const fuse = (i: tf.Tensor, f: tf.Tensor, c: tf.Tensor, o: tf.Tensor, axis: number) => tf.concat([i, f, c, o], axis);
    return {
      W_x: fuse(p.W_xi, p.W_xf, p.W_xc, p.W_xo, 1) as tf.Tensor2D,
      W_h: fuse(p.W_hi, p.W_hf, p.W_hc, p.W_ho, 1) as tf.Tensor2D,
      b: fuse(p.b_i, p.b_f, p.b_c, p.b_o, 0) as tf.Tensor1D,
    };
  }

  /**
   * forward() for one step, with the gates fused once rather than per character (the concat of
   * W_x alone copies vocab·4·hidden floats) and b added to every row of W_x up front: the same
   * additions in the same order, so the same logits bit for bit.
   */
  stepper(): CharStepper {
    const { W_x_b, W_h } = tf.tidy(() => {
      const { W_x, W_h, b } = this.fusedGates();
      return { W_x_b: W_x.add(b) as tf.Tensor2D, W_h };
    });
    const { W_hq, b_q } = this.params;
    return {
      step: (ids, state) =>
        tf.tidy(() => {
          const next = lstmCell(tf.gather(W_x_b, ids), state, W_h);
          return { logits: next.h.matMul(W_hq).add(b_q) as tf.Tensor2D, state: next };
        }),
      dispose: () => tf.dispose([W_x_b, W_h]),
    };
  }

  async toFiles(): Promise<ModelFiles> {
    const { data, specs } = await tf.io.encodeWeights(SCRATCH_PARAM_NAMES.map((name) => ({ name, tensor: this.params[name] })));
    const manifest = { format: 'lstm-lyrics-scratch', weightsManifest: [{ paths: [SCRATCH_WEIGHTS_FILE], weights: specs }] };
    return {
      [SCRATCH_MANIFEST_FILE]: utf8Bytes(JSON.stringify(manifest, null, 1)),
      [SCRATCH_WEIGHTS_FILE]: new Uint8Array(tf.io.CompositeArrayBuffer.join(data)),
    };
  }

  dispose(): void {
    this.variables.forEach((v) => v.dispose());
  }
}

/**
 * One time step. `inputGates` is X W_x + b for this step, [batch, 4·hidden] in GATE_ORDER.
 */
export function lstmCell(inputGates: tf.Tensor2D, state: LstmState, W_h: tf.Tensor2D): LstmState {
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
export function scratchFromFiles(config: ModelConfig, files: ModelFiles): ScratchLstm {
  const manifest = JSON.parse(utf8Text(files[SCRATCH_MANIFEST_FILE]));
  const specs = manifest.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
  const weights = tf.io.decodeWeights(arrayBufferOf(files[SCRATCH_WEIGHTS_FILE]), specs);
  try {
    return new ScratchLstm(config, 0, weights);
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
