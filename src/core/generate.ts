/**
 * The one text sampler, for both models. The (h, c) state is carried from character to character,
 * so each new character costs one LSTM step, never a re-run over the whole text.
 */
import * as tf from '@tensorflow/tfjs';
import { decode, encode, type Vocabulary } from './vocab';
import type { LanguageModel, LstmState } from './models';
import { disposeState } from './models/types';

export interface SamplingOptions {
  /** 0 picks the most likely character (greedy, as the lesson does); higher is more random. */
  readonly temperature: number;
  /** Sample among the k most likely characters only (0: all). Ignored when greedy. */
  readonly topK: number;
  /** Uniform [0, 1) numbers for sampling; unused when greedy. */
  readonly rng: () => number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, rng: Math.random };

/** Optional streaming of generate's output. */
export interface GenerateHooks {
  /** Called with the generated text (never the prefix) piece by piece as it becomes known, in order. */
  onText?(text: string): void;
  /**
   * Greedy decoding keeps the characters on the device and reads them back every `chunk`
   * characters when onText is given (default 16; 1: every character), once at the end otherwise.
   * Sampling reads each step's logits anyway, so it streams every character.
   */
  readonly chunk?: number;
}

const DEFAULT_CHUNK = 16;

/**
 * Returns `prefix` followed by `length` generated characters. The prefix runs through the model
 * in one forward pass; each further character is one step of the model's stepper. Greedy decoding
 * picks each character on the device (argMax) and feeds it straight back, so nothing is read back
 * per character; sampling reads each step's logits and draws with `rng`, so a seed repeats exactly.
 */
export function generateText(
  model: LanguageModel,
  vocab: Vocabulary,
  prefix: string,
  length: number,
  options: SamplingOptions = GREEDY,
  hooks: GenerateHooks = {},
): string {
  const out = Array.from(checkedPrefix(vocab, prefix));
  const chunk = hooks.onText ? Math.max(1, hooks.chunk ?? DEFAULT_CHUNK) : Infinity;
  for (const ids of sampleIds(model, Int32Array.from(out), length, options, chunk)) {
    out.push(...ids);
    hooks.onText?.(decode(vocab, ids));
  }
  return decode(vocab, out);
}

/**
 * generateText for a page: `onChar` gets each new character as it is known, and the event loop
 * gets a turn every `yieldEvery` characters so the page stays responsive. The same sampler, so the
 * same text; an exception from `onChar` stops it and frees its tensors.
 */
export async function generateTextStreaming(
  model: LanguageModel,
  vocab: Vocabulary,
  prefix: string,
  length: number,
  options: SamplingOptions,
  onChar: (char: string) => void,
  yieldEvery = 4,
): Promise<string> {
  const out = Array.from(checkedPrefix(vocab, prefix));
  let sinceYield = 0;
  for (const ids of sampleIds(model, Int32Array.from(out), length, options, Math.max(1, yieldEvery))) {
    for (const id of ids) {
      out.push(id);
      onChar(vocab.chars[id]);
    }
    sinceYield += ids.length;
    if (sinceYield >= yieldEvery) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  return decode(vocab, out);
}

/** One turn of the event loop: setImmediate in Node, a zero-delay timeout in a browser. */
export function yieldToEventLoop(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
}

function checkedPrefix(vocab: Vocabulary, prefix: string): Int32Array {
  const prefixIds = encode(vocab, prefix);
  if (prefixIds.length === 0) throw new Error('prefix must not be empty');
  return prefixIds;
}

/**
 * The one sampler: yields the `length` ids after `prefixIds`, in pieces. Greedy ids stay on the
 * device and are read back `chunk` at a time (Infinity: once at the end); sampled ids come one by
 * one. Stopping the iteration early (break, or an exception in the consumer) frees its tensors.
 */
function* sampleIds(
  model: LanguageModel,
  prefixIds: Int32Array,
  length: number,
  options: SamplingOptions,
  chunk: number,
): Generator<number[]> {
  if (length <= 0) return;
  const stepper = model.stepper();
  let state: LstmState = model.zeroState(1);
  const advance = (step: () => { state: LstmState; next: tf.Tensor }): tf.Tensor => {
    const result = tf.tidy(step);
    disposeState(state);
    state = result.state;
    return result.next;
  };
  const pending: tf.Tensor[] = [];
  let id: tf.Tensor1D | undefined; // greedy: the newest id, on the device
  try {
    // The prefix's last logits: [1, vocab].
    let logits = advance(() => {
      const step = model.forward(tf.tensor2d(prefixIds, [1, prefixIds.length], 'int32'), state);
      return { state: step.state, next: step.logits.slice([0, prefixIds.length - 1, 0], [1, 1, -1]).reshape([1, -1]) };
    });
    if (options.temperature <= 0) {
      id = tf.tidy(() => tf.argMax(logits, 1)) as tf.Tensor1D; // int32 [1], stays on the device
      logits.dispose();
      // Reads the pending ids; frees them, except the newest, which feeds the next step.
      const read = (): number[] => {
        const ids = Array.from(tf.tidy(() => tf.concat(pending).dataSync()));
        tf.dispose(pending.splice(0).filter((t) => t !== id));
        return ids;
      };
      pending.push(id);
      if (pending.length >= chunk) yield read();
      for (let i = 1; i < length; i++) {
        const from: tf.Tensor1D = id;
        id = advance(() => {
          const step = stepper.step(from, state);
          return { state: step.state, next: tf.argMax(step.logits, 1) };
        }) as tf.Tensor1D;
        if (!pending.includes(from)) from.dispose(); // read already
        pending.push(id);
        if (pending.length >= chunk) yield read();
      }
      if (pending.length > 0) yield read();
    } else {
      for (let i = 0; ; i++) {
        let picked: number;
        try {
          picked = pickCharacter(logits.dataSync() as Float32Array, options);
        } finally {
          logits.dispose();
        }
        yield [picked];
        if (i === length - 1) break;
        logits = advance(() => {
          const step = stepper.step(tf.tensor1d([picked], 'int32'), state);
          return { state: step.state, next: step.logits };
        });
      }
    }
  } finally {
    tf.dispose(pending);
    id?.dispose();
    disposeState(state);
    stepper.dispose();
  }
}

/** Chooses the next character id from one step's logits. */
export function pickCharacter(logits: Float32Array, { temperature, topK, rng }: SamplingOptions): number {
  if (temperature <= 0) return argmax(logits);
  let candidates = Array.from(logits.keys());
  if (topK > 0 && topK < candidates.length) {
    candidates = candidates.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  }
  const top = Math.max(...candidates.map((i) => logits[i]));
  const weights = candidates.map((i) => Math.exp((logits[i] - top) / temperature));
  let r = rng() * weights.reduce((a, b) => a + b, 0);
  for (let k = 0; k < candidates.length; k++) {
    r -= weights[k];
    if (r < 0) return candidates[k];
  }
  return candidates[candidates.length - 1];
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
