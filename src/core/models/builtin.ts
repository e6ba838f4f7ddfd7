/**
 * The framework's LSTM: tf.layers.lstm and a dense output layer, fed one-hot characters like
 * nn.LSTM in the lesson. The layers live in a functional Layers model, so the model saves as a
 * standard TF.js Layers model that tf.loadLayersModel opens.
 */
import * as tf from '@tensorflow/tfjs';
import { arrayBufferOf, utf8Bytes, utf8Text } from '../bytes';
import type { ModelConfig } from '../config';
import { weightSeed } from './scratch';
import { zeroState, type CharStepper, type LanguageModel, type LstmState, type ModelFiles } from './types';

export const BUILTIN_MODEL_FILE = 'model.json';
export const BUILTIN_WEIGHTS_FILE = 'weights.bin';

export class BuiltinLstm implements LanguageModel {
  readonly variables: readonly tf.Variable[];
  private readonly lstm: tf.layers.Layer;
  private readonly output: tf.layers.Layer;

  /** `model` is chars → [logits, h, c], with layers named 'lstm' and 'output'. */
  constructor(
    readonly config: ModelConfig,
    readonly model: tf.LayersModel,
  ) {
    this.lstm = model.getLayer('lstm');
    this.output = model.getLayer('output');
    // LayerVariable.read() is the tf.Variable the layers compute with, so gradients reach it.
    this.variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  static create(config: ModelConfig, seed = 0): BuiltinLstm {
    const { vocabSize: V, hidden: H } = config;
    // nn.LSTM and nn.Linear initialise every weight U(-1/√fan, 1/√fan); matching it (rather than
    // Keras' glorot/orthogonal) keeps the comparison with the lesson like for like.
    const uniform = (fan: number, k: number) =>
      tf.initializers.randomUniform({ minval: -1 / Math.sqrt(fan), maxval: 1 / Math.sqrt(fan), seed: weightSeed(seed, k) });
    const chars = tf.input({ shape: [null, V], name: 'chars' });
    const lstm = tf.layers.lstm({
      units: H,
      returnSequences: true,
      returnState: true,
      // tf.layers' default is hardSigmoid; the lesson's LSTM (and nn.LSTM) uses the sigmoid.
      recurrentActivation: 'sigmoid',
      kernelInitializer: uniform(H, 1),
      recurrentInitializer: uniform(H, 2),
      biasInitializer: uniform(H, 3),
      name: 'lstm',
    });
    const [sequence, h, c] = lstm.apply(chars) as tf.SymbolicTensor[];
    const logits = tf.layers
      .dense({ units: V, kernelInitializer: uniform(H, 4), biasInitializer: uniform(H, 5), name: 'output' })
      .apply(sequence) as tf.SymbolicTensor;
    // The saved graph starts from a zero state, as any user of the file expects; training and
    // sampling call the same layers directly with the carried state instead.
    return new BuiltinLstm(config, tf.model({ inputs: chars, outputs: [logits, h, c], name: 'lstm_lyrics' }));
  }

  forward(inputs: tf.Tensor2D, state: LstmState): { logits: tf.Tensor3D; state: LstmState } {
    return tf.tidy(() => {
      const oneHot = tf.oneHot(inputs, this.config.vocabSize).toFloat();
      const [sequence, h, c] = this.lstm.apply(oneHot, { initialState: [state.h, state.c] }) as tf.Tensor[];
      const logits = this.output.apply(sequence) as tf.Tensor3D;
      return { logits, state: { h: h as tf.Tensor2D, c: c as tf.Tensor2D } };
    });
  }

  zeroState(batchSize: number): LstmState {
    return zeroState(batchSize, this.config.hidden);
  }

  /**
   * The layers' step written out with their own weights and the very ops they call (LSTMCell.call
   * with the sigmoid, then Dense.call), minus tf.layers' per-call bookkeeping (input checks,
   * transposes to time-major and back, a one-hot row): the same logits bit for bit, tested.
   */
  stepper(): CharStepper {
    const [kernel, recurrentKernel, bias] = this.lstm.trainableWeights.map((w) => w.read());
    const [outKernel, outBias] = this.output.trainableWeights.map((w) => w.read());
    return {
      step: (ids, state) =>
        tf.tidy(() => {
          // X·kernel for a one-hot X is row ids of the kernel. A matmul without bias or activation
          // is the same product fused or not (one kernel fewer unfused).
          const z = tf.add(tf.add(tf.gather(kernel, ids), tf.matMul(state.h, recurrentKernel as tf.Tensor2D)), bias);
          const [zi, zf, zc, zo] = tf.split(z, 4, 1);
          const i = tf.sigmoid(zi);
          const f = tf.sigmoid(zf);
          const c = tf.add(tf.mul(f, state.c), tf.mul(i, tf.tanh(zc))) as tf.Tensor2D;
          const o = tf.sigmoid(zo);
          const h = tf.mul(o, tf.tanh(c)) as tf.Tensor2D;
          const logits = tf.fused.matMul({ a: h, b: outKernel as tf.Tensor2D, bias: outBias, activation: 'linear' }) as tf.Tensor2D;
          return { logits, state: { h, c } };
        }),
      dispose: () => undefined, // arranges nothing: the layers' weights are used as they are
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

/** Reads model.json + weights.bin (see toFiles) with tf.loadLayersModel. */
export async function builtinFromFiles(config: ModelConfig, files: ModelFiles): Promise<BuiltinLstm> {
  const modelJson = JSON.parse(utf8Text(files[BUILTIN_MODEL_FILE])) as tf.io.ModelJSON;
  const weightData = arrayBufferOf(files[BUILTIN_WEIGHTS_FILE]);
  const artifacts = tf.io.getModelArtifactsForJSONSync(modelJson, modelJson.weightsManifest[0].weights, weightData);
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return new BuiltinLstm(config, model);
}
