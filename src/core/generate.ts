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

/** Returns `prefix` followed by `length` generated characters. */
export function generateText(
  model: LanguageModel,
  vocab: Vocabulary,
  prefix: string,
  length: number,
  options: SamplingOptions = GREEDY,
): string {
  const out = Array.from(checkedPrefix(vocab, prefix));
  const steps = stepper(model, out, options);
  try {
    for (let i = 0; i < length; i++) out.push(steps.next());
  } finally {
    steps.dispose();
  }
  return decode(vocab, out);
}

/**
 * generateText, one character at a time for a page: `onChar` gets each new character as it is
 * picked, and the event loop gets a turn every `yieldEvery` characters so the page stays
 * responsive. The same steps and the same picks as generateText, so the text is the same.
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
  const steps = stepper(model, out, options);
  try {
    for (let i = 0; i < length; i++) {
      const id = steps.next();
      out.push(id);
      onChar(vocab.chars[id]);
      if ((i + 1) % yieldEvery === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } finally {
    steps.dispose();
  }
  return decode(vocab, out);
}

function checkedPrefix(vocab: Vocabulary, prefix: string): Int32Array {
  const prefixIds = encode(vocab, prefix);
  if (prefixIds.length === 0) throw new Error('prefix must not be empty');
  return prefixIds;
}

/** The sampler's step: feeds the prefix first, then each picked character, carrying (h, c). */
function stepper(model: LanguageModel, prefixIds: readonly number[], options: SamplingOptions): { next(): number; dispose(): void } {
  let state: LstmState = model.zeroState(1);
  let feed = Int32Array.from(prefixIds);
  return {
    next() {
      const { next, logits } = tf.tidy(() => {
        const step = model.forward(tf.tensor2d(feed, [1, feed.length], 'int32'), state);
        const last = step.logits.slice([0, feed.length - 1, 0], [1, 1, -1]).reshape([-1]);
        return { next: step.state, logits: tf.keep(last) };
      });
      disposeState(state);
      state = next;
      const id = pickCharacter(logits.dataSync() as Float32Array, options);
      logits.dispose();
      feed = Int32Array.of(id);
      return id;
    },
    dispose: () => disposeState(state),
  };
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
