/**
 * The framework's cells: tf.layers.simpleRNN / gru / lstm, stacked, and a dense output layer, fed
 * one-hot characters like nn.RNN / nn.GRU / nn.LSTM in the lessons. The layers live in a
 * functional Layers model, so the model saves as a standard TF.js Layers model that
 * tf.loadLayersModel opens.
 *
 * tf.layers.gru applies the reset gate before its product with the state, (R ⊙ H) W_hh, as the
 * GRU lesson does; PyTorch's nn.GRU applies it after, R ⊙ (H W_hh + b_hh). So this GRU is the
 * lesson's, and its curves differ slightly from nn.GRU's.
 */
import * as tf from '@tensorflow/tfjs';
import { arrayBufferOf, utf8Bytes, utf8Text } from '../bytes';
import type { Cell, ModelConfig } from '../config';
import { dropoutMask } from './dropout';
import { GATES, weightSeed } from './scratch';
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

export const BUILTIN_MODEL_FILE = 'model.json';
export const BUILTIN_WEIGHTS_FILE = 'weights.bin';
export const OUTPUT_LAYER = 'output';

/** Each cell's TF.js layer class, as model.json names it. */
export const LAYER_CLASS: Readonly<Record<Cell, string>> = { rnn: 'SimpleRNN', gru: 'GRU', lstm: 'LSTM' };

/** Layer `layer`'s name (from 0): the cell's name, then `lstm_2`, `lstm_3`, ... One LSTM layer is 'lstm', as before stacking. */
export function recurrentLayerName(cell: Cell, layer: number): string {
  return layer === 0 ? cell : `${cell}_${layer + 1}`;
}

/** The weights the model saves, in order, with their shapes. */
export function builtinWeightShapes({ cell, layers, vocabSize: V, hidden: H }: ModelConfig): { name: string; shape: number[] }[] {
  const gates = GATES[cell].fused.length;
  const shapes: { name: string; shape: number[] }[] = [];
  for (let l = 0; l < layers; l++) {
    const name = recurrentLayerName(cell, l);
    shapes.push(
      { name: `${name}/kernel`, shape: [l === 0 ? V : H, gates * H] },
      { name: `${name}/recurrent_kernel`, shape: [H, gates * H] },
      { name: `${name}/bias`, shape: [gates * H] },
    );
  }
  shapes.push({ name: `${OUTPUT_LAYER}/kernel`, shape: [H, V] }, { name: `${OUTPUT_LAYER}/bias`, shape: [V] });
  return shapes;
}

/**
 * Whether the cell's one bias stands for two of the lesson's (see LanguageModel.pairedBiases).
 * nn.RNN adds b_ih and b_hh, each U(-1/√H, 1/√H); tf.layers.simpleRNN has one bias. Trained as one,
 * the builtin RNN's curve lagged nn.RNN's (issue 17). nn.GRU and nn.LSTM have such pairs too, but
 * their builtin curves already lie within PyTorch's spread, and they keep their seeded numbers.
 */
export function hasPairedBias(cell: Cell): boolean {
  return cell === 'rnn';
}

export class BuiltinModel implements LanguageModel {
  readonly variables: readonly tf.Variable[];
  readonly pairedBiases: readonly tf.Variable[];
  private readonly recurrent: readonly tf.layers.Layer[];
  private readonly output: tf.layers.Layer;

  /** `model` is chars → [logits, ...state], with layers named by recurrentLayerName and 'output'. */
  constructor(
    readonly config: ModelConfig,
    readonly model: tf.LayersModel,
  ) {
    this.recurrent = Array.from({ length: config.layers }, (_, l) => model.getLayer(recurrentLayerName(config.cell, l)));
    this.output = model.getLayer(OUTPUT_LAYER);
    // LayerVariable.read() is the tf.Variable the layers compute with, so gradients reach it.
    this.variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.pairedBiases = hasPairedBias(config.cell) ? this.recurrent.map((layer) => layer.trainableWeights[2].read() as tf.Variable) : [];
  }

  static create(config: ModelConfig, seed = 0): BuiltinModel {
    const { cell, layers, vocabSize: V, hidden: H } = config;
    // nn.RNN / nn.GRU / nn.LSTM and nn.Linear initialise every weight U(-1/√hidden, 1/√hidden);
    // matching it (rather than Keras' glorot/orthogonal) keeps the comparison like for like.
    const uniform = (k: number) =>
      tf.initializers.randomUniform({ minval: -1 / Math.sqrt(H), maxval: 1 / Math.sqrt(H), seed: weightSeed(seed, k) });
    const chars = tf.input({ shape: [null, V], name: 'chars' });
    let x = chars;
    const states: tf.SymbolicTensor[] = [];
    for (let l = 0; l < layers; l++) {
      // Seeds 1-3 for the first layer and 4-5 for the output, as before stacking; 6 on for the rest.
      const k = l === 0 ? 1 : 3 * l + 3;
      const options = {
        units: H,
        returnSequences: true,
        returnState: true,
        kernelInitializer: uniform(k),
        recurrentInitializer: uniform(k + 1),
        biasInitializer: uniform(k + 2),
        name: recurrentLayerName(cell, l),
      };
      // tf.layers' default recurrent activation is hardSigmoid; the lessons (and PyTorch) use the sigmoid.
      const layer =
        cell === 'rnn'
          ? tf.layers.simpleRNN(options)
          : cell === 'gru'
            ? tf.layers.gru({ ...options, recurrentActivation: 'sigmoid' })
            : tf.layers.lstm({ ...options, recurrentActivation: 'sigmoid' });
      const [sequence, ...state] = layer.apply(x) as tf.SymbolicTensor[];
      x = sequence;
      states.push(...state);
    }
    const logits = tf.layers
      .dense({ units: V, kernelInitializer: uniform(4), biasInitializer: uniform(5), name: OUTPUT_LAYER })
      .apply(x) as tf.SymbolicTensor;
    // The saved graph starts from a zero state, as any user of the file expects; training and
    // sampling call the same layers directly with the carried state instead. Dropout is not in
    // it: it acts only in training, which forward() does (the checkpoint records the rate).
    const built = new BuiltinModel(config, tf.model({ inputs: chars, outputs: [logits, ...states], name: 'lstm_lyrics' }));
    // A paired bias starts as the sum of the pair's draws, b_ih + b_hh (seeds past the layers').
    built.pairedBiases.forEach((bias, l) => {
      const k = 1 / Math.sqrt(H);
      tf.tidy(() => bias.assign(tf.add(bias, tf.randomUniform(bias.shape, -k, k, 'float32', weightSeed(seed, 500 + l)))));
    });
    return built;
  }

  forward(inputs: tf.Tensor2D, state: RecurrentState, training?: Training): { logits: tf.Tensor3D; state: RecurrentState } {
    return tf.tidy(() => {
      const { cell, layers, dropout, vocabSize, hidden } = this.config;
      const [batchSize, numSteps] = inputs.shape;
      let x = tf.oneHot(inputs, vocabSize).toFloat();
      const next: tf.Tensor2D[] = [];
      this.recurrent.forEach((layer, l) => {
        const [sequence, ...s] = layer.apply(x, { initialState: layerState(state, cell, l) }) as tf.Tensor[];
        next.push(...(s as tf.Tensor2D[]));
        x = sequence;
        if (training && dropout > 0 && l < layers - 1) {
          // The scratch model's mask, time-major, turned batch-major.
          x = x.mul(dropoutMask([numSteps, batchSize, hidden], dropout, training.seed, l).transpose([1, 0, 2]));
        }
      });
      const logits = this.output.apply(x) as tf.Tensor3D;
      return { logits, state: next };
    });
  }

  zeroState(batchSize: number): RecurrentState {
    return zeroState(this.config, batchSize);
  }

  /**
   * The layers' step written out with their own weights and the very ops their cells call
   * (SimpleRNNCell / GRUCell / LSTMCell.call with the sigmoid, then Dense.call), minus tf.layers'
   * per-call bookkeeping (input checks, transposes to time-major and back, a one-hot row): the
   * same logits bit for bit, tested.
   */
  stepper(): CharStepper {
    const { cell } = this.config;
    const cellStep = BUILTIN_STEPS[cell];
    const weights = this.recurrent.map((layer) => {
      const [kernel, recurrentKernel, bias] = layer.trainableWeights.map((w) => w.read()) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
      return { kernel, recurrentKernel, bias };
    });
    // GRUCell splits its recurrent kernel into [Z R | H] at every step; once is enough here.
    const split = tf.tidy(() =>
      cell === 'gru'
        ? weights.map((w) => tf.split(w.recurrentKernel, [2 * this.config.hidden, this.config.hidden], 1) as tf.Tensor2D[])
        : [],
    );
    // The RNN and GRU cells add the bias to X·kernel first: for the first layer's one-hot X that is
    // row ids of kernel + bias, added up front (the same additions, once instead of per character).
    const biasFirst = cell !== 'lstm';
    const firstKernel = biasFirst ? tf.tidy(() => tf.add(weights[0].kernel, weights[0].bias) as tf.Tensor2D) : weights[0].kernel;
    const [outKernel, outBias] = this.output.trainableWeights.map((w) => w.read());
    // What step() below computes, as data (see StepPlan).
    const plan: StepPlan = {
      cell,
      layers: weights.map((w, l) => ({
        inputKernel: l === 0 ? firstKernel : w.kernel,
        ...(l > 0 && biasFirst && { inputBias: w.bias }),
        recurrentKernel: cell === 'gru' ? split[l][0] : w.recurrentKernel,
        ...(cell === 'gru' && { candidateKernel: split[l][1] }),
        ...(!biasFirst && { gateBias: w.bias }),
      })),
      outputKernel: outKernel as tf.Tensor2D,
      outputBias: outBias as tf.Tensor1D,
      outputBiasFirst: true,
    };
    return {
      plan,
      step: (ids, state) =>
        tf.tidy(() => {
          const next: tf.Tensor2D[] = [];
          let x: tf.Tensor2D | undefined;
          weights.forEach((w, l) => {
            // X·kernel for a one-hot X is row ids of the kernel. A matmul without bias or
            // activation is the same product fused or not (one kernel fewer unfused).
            let xKernel: tf.Tensor2D;
            if (x === undefined) xKernel = tf.gather(firstKernel, ids);
            else xKernel = biasFirst ? tf.add(tf.matMul(x, w.kernel), w.bias) : tf.matMul(x, w.kernel);
            const s = cellStep(xKernel, layerState(state, cell, l), { ...w, split: split[l] });
            next.push(...s);
            x = s[0];
          });
          const logits = tf.fused.matMul({ a: x as tf.Tensor2D, b: outKernel as tf.Tensor2D, bias: outBias, activation: 'linear' });
          return { logits: logits as tf.Tensor2D, state: next };
        }),
      dispose: () => tf.dispose([...split.flat(), ...(biasFirst ? [firstKernel] : [])]),
    };
  }

  /** model.json + weights.bin, exactly what tfjs-node's file:// handler would write. */
  async toFiles(): Promise<ModelFiles> {
    let files: ModelFiles = {};
    await this.model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const modelJson = {
          modelTopology: artifacts.modelTopology,
          format: artifacts.format,
          generatedBy: artifacts.generatedBy,
          convertedBy: artifacts.convertedBy ?? null,
          weightsManifest: [{ paths: [BUILTIN_WEIGHTS_FILE], weights: artifacts.weightSpecs }],
        };
        files = {
          [BUILTIN_MODEL_FILE]: utf8Bytes(JSON.stringify(modelJson)),
          [BUILTIN_WEIGHTS_FILE]: new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData)),
        };
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      }),
    );
    return files;
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** A layer's weights as its cell's step uses them; `split` is the GRU's recurrent kernel as [Z R | H]. */
interface CellWeights {
  readonly recurrentKernel: tf.Tensor2D;
  readonly bias: tf.Tensor1D;
  readonly split?: tf.Tensor2D[];
}

/**
 * One step of each tf.layers cell, the same float operations element by element: `xKernel` is
 * X·kernel + bias for the RNN and GRU (which add the bias first), X·kernel for the LSTM; `state`
 * is the layer's [H] or [H, C].
 */
const BUILTIN_STEPS: Readonly<Record<Cell, (xKernel: tf.Tensor2D, state: tf.Tensor2D[], w: CellWeights) => tf.Tensor2D[]>> = {
  // SimpleRNNCell: tanh((X·kernel + bias) + H·recurrent_kernel)
  rnn: (matrixX, [h], w) => [tf.tanh(tf.add(matrixX, tf.matMul(h, w.recurrentKernel))) as tf.Tensor2D],
  // GRUCell (no reset_after in TF.js): the reset gate multiplies H before the product. Z and R
  // side by side, as in the kernels: one addition and one sigmoid for both; 1 - z is 1 + (-z).
  gru: (matrixX, [h], w) => {
    const [rk1, rk2] = w.split as tf.Tensor2D[];
    const units = h.shape[1];
    const [xZR, xH] = tf.split(matrixX, [2 * units, units], 1);
    const [z, r] = tf.split(tf.sigmoid(tf.add(xZR, tf.matMul(h, rk1))), 2, 1);
    const hh = tf.tanh(tf.add(xH, tf.matMul(tf.mul(r, h), rk2)));
    return [tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), hh)) as tf.Tensor2D];
  },
  // LSTMCell: gates i, f, c, o.
  lstm: (xKernel, [h, cPrev], w) => {
    const z = tf.add(tf.add(xKernel, tf.matMul(h, w.recurrentKernel)), w.bias);
    const [zi, zf, zc, zo] = tf.split(z, 4, 1);
    const i = tf.sigmoid(zi);
    const f = tf.sigmoid(zf);
    const c = tf.add(tf.mul(f, cPrev), tf.mul(i, tf.tanh(zc))) as tf.Tensor2D;
    const o = tf.sigmoid(zo);
    return [tf.mul(o, tf.tanh(c)) as tf.Tensor2D, c];
  },
};

/** Reads model.json + weights.bin (see toFiles) with tf.loadLayersModel. */
export async function builtinFromFiles(config: ModelConfig, files: ModelFiles): Promise<BuiltinModel> {
  const modelJson = JSON.parse(utf8Text(files[BUILTIN_MODEL_FILE])) as tf.io.ModelJSON;
  const weightData = arrayBufferOf(files[BUILTIN_WEIGHTS_FILE]);
  const artifacts = tf.io.getModelArtifactsForJSONSync(modelJson, modelJson.weightsManifest[0].weights, weightData);
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return new BuiltinModel(config, model);
}
