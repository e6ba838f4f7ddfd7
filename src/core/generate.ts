/**
 * The one text sampler, for every model. The recurrent state is carried from character to character,
 * so each new character costs one step of the network, never a re-run over the whole text.
 */
import * as tf from '@tensorflow/tfjs';
import { decode, encode, type Vocabulary } from './vocab';
import type { LanguageModel, RecurrentState } from './models';
import { disposeState, type CharStepper } from './models/types';

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
   * characters when onText is given (default 16; 1: every character), MAX_UNREAD at a time otherwise.
   * Sampling reads each step's logits anyway, so it streams every character.
   */
  readonly chunk?: number;
}

const DEFAULT_CHUNK = 16;
/**
 * Without onText, greedy ids are read back this many at a time rather than once at the end: one
 * read per thousand characters costs nothing measurable, and a long generation no longer holds a
 * tensor per character until the end (300,000 ids read at once and spread into Array.push
 * overflowed the stack: 'Maximum call stack size exceeded' after two minutes, nothing printed).
 */
const MAX_UNREAD = 1024;
/**
 * The prefix runs through forward() this many characters at a time, the state carried between
 * pieces, so a long prefix costs the memory of one piece (one pass over 100,000 characters kept
 * every step's tensors alive: 2 GB). A prefix this short or shorter is one pass, exactly as before.
 */
export const PREFIX_CHUNK = 512;

/**
 * Returns `prefix` followed by `length` generated characters. The prefix runs through the model
 * in forward passes of PREFIX_CHUNK characters; each further character is one step of the model's
 * stepper. Greedy decoding picks each character on the device (argMax) and feeds it straight back,
 * so nothing is read back per character; sampling reads each step's logits and draws with `rng`,
 * so a seed repeats exactly. It returns the whole text, so its memory grows with `length`: for
 * long generations use streamText, which writes as it goes.
 */
export function generateText(
  model: LanguageModel,
  vocab: Vocabulary,
  prefix: string,
  length: number,
  options: SamplingOptions = GREEDY,
  hooks: GenerateHooks = {},
): string {
  const prefixIds = checkedPrefix(vocab, prefix);
  const pieces = [decode(vocab, prefixIds)];
  const chunk = hooks.onText ? Math.max(1, hooks.chunk ?? DEFAULT_CHUNK) : MAX_UNREAD;
  for (const ids of sampleIds(model, prefixIds, length, options, chunk)) {
    if (ids.length === 0) continue; // between pieces of a long prefix
    const text = decode(vocab, ids);
    pieces.push(text);
    hooks.onText?.(text);
  }
  return pieces.join('');
}

/** How streamText paces itself and when it stops. */
export interface StreamControl {
  /** Once aborted, streamText writes what it has and returns within one piece of work. */
  readonly signal?: AbortSignal;
  /** Characters per write at most (default 64). */
  readonly chunk?: number;
  /**
   * The longest time (ms, default 100) between writes, turns of the event loop and looks at
   * `signal`, so a slow model still shows text at once and a signal is seen in time.
   */
  readonly intervalMs?: number;
  /** Prefix characters per forward pass (default PREFIX_CHUNK); for tests. */
  readonly prefixChunk?: number;
}

/**
 * generateText for a terminal or a pipe: writes the `length` generated characters (not the
 * prefix) to `write` in pieces as they are produced, and keeps none of them, so memory does not
 * grow with `length`. Between pieces it gives the event loop a turn (so a signal handler can run)
 * and stops when `signal` is aborted, after writing what it has. The same sampler as
 * generateText, so the same text. Resolves to the number of characters written and whether it
 * stopped early.
 */
export async function streamText(
  model: LanguageModel,
  vocab: Vocabulary,
  prefix: string,
  length: number,
  options: SamplingOptions,
  write: (text: string) => void | Promise<void>,
  control: StreamControl = {},
): Promise<{ written: number; stopped: boolean }> {
  const { signal, chunk = 64, intervalMs = 100, prefixChunk = PREFIX_CHUNK } = control;
  const now = () => performance.now();
  let last = now();
  const due = () => now() - last >= intervalMs;
  let piece: string[] = [];
  let pieceChars = 0;
  let written = 0;
  const flush = async () => {
    if (pieceChars === 0) return;
    const text = piece.join('');
    piece = [];
    written += pieceChars;
    pieceChars = 0;
    await write(text);
  };
  if (signal?.aborted) return { written, stopped: true };
  const ids = sampleIds(model, checkedPrefix(vocab, prefix), length, options, Math.max(1, chunk), due, prefixChunk);
  // for...of, not a manual loop: leaving it early (stop, or a write that throws) frees the tensors.
  for (const next of ids) {
    if (next.length > 0) {
      piece.push(decode(vocab, next));
      pieceChars += next.length;
    }
    if (pieceChars >= chunk || due()) {
      await flush();
      await yieldToEventLoop();
      last = now();
      if (signal?.aborted) return { written, stopped: true };
    }
  }
  await flush();
  return { written, stopped: false };
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
  const prefixIds = checkedPrefix(vocab, prefix);
  const pieces = [decode(vocab, prefixIds)];
  let sinceYield = 0;
  for (const ids of sampleIds(model, prefixIds, length, options, Math.max(1, yieldEvery))) {
    for (const id of ids) {
      const char = vocab.chars[id];
      pieces.push(char);
      onChar(char);
    }
    sinceYield += ids.length;
    // A long prefix yields [] between its pieces: a turn for the page there too.
    if (sinceYield >= yieldEvery || ids.length === 0) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  return pieces.join('');
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
 * device and are read back `chunk` at a time, or sooner once `due()` says so; sampled ids come one
 * by one. A prefix longer than `prefixChunk` runs in pieces with an empty yield after each but the
 * last, so a consumer can pause or stop there too. Stopping the iteration early (break, or an
 * exception in the consumer) frees its tensors.
 */
function* sampleIds(
  model: LanguageModel,
  prefixIds: Int32Array,
  length: number,
  options: SamplingOptions,
  chunk: number,
  due: () => boolean = () => false,
  prefixChunk = PREFIX_CHUNK,
): Generator<number[]> {
  if (length <= 0) return;
  const stepper = model.stepper();
  const step = generationStep(stepper);
  let state: RecurrentState = model.zeroState(1);
  const advance = (step: () => { state: RecurrentState; next: tf.Tensor }): tf.Tensor => {
    const result = tf.tidy(step);
    disposeState(state);
    state = result.state;
    return result.next;
  };
  const pending: tf.Tensor[] = [];
  let id: tf.Tensor1D | undefined; // greedy: the newest id, on the device
  try {
    // All of the prefix but its last piece: only the state matters.
    let start = 0;
    for (; prefixIds.length - start > prefixChunk; start += prefixChunk) {
      const part = prefixIds.slice(start, start + prefixChunk); // a copy: a tensor of a view may read its whole buffer
      const next = tf.tidy(() => model.forward(tf.tensor2d(part, [1, part.length], 'int32'), state).state);
      disposeState(state);
      state = next;
      yield [];
    }
    // The last piece (the whole prefix when short, as before): its last logits, [1, vocab].
    const last = start === 0 ? prefixIds : prefixIds.slice(start);
    let logits = advance(() => {
      const step = model.forward(tf.tensor2d(last, [1, last.length], 'int32'), state);
      return { state: step.state, next: step.logits.slice([0, last.length - 1, 0], [1, 1, -1]).reshape([1, -1]) };
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
      if (pending.length >= chunk || due()) yield read();
      for (let i = 1; i < length; i++) {
        const from: tf.Tensor1D = id;
        id = advance(() => {
          const result = step(from, state);
          return { state: result.state, next: result.id ?? tf.argMax(result.logits, 1) };
        }) as tf.Tensor1D;
        if (!pending.includes(from)) from.dispose(); // read already
        pending.push(id);
        if (pending.length >= chunk || due()) yield read();
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
          const result = step(tf.tensor1d([picked], 'int32'), state);
          return { state: result.state, next: result.logits };
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

/**
 * The one-kernel step's name. src/accel/char-step.ts registers it on wasm with accel on (the same
 * string there: test/char-step.test.ts checks they agree); --accel off, or another backend, has none.
 */
export const CHAR_STEP_KERNEL = 'LstmLyricsCharStep';

/** One step of generation: the logits and state after `ids`, and the greedy id where it comes with them. */
export type Step = (ids: tf.Tensor1D, state: RecurrentState) => { logits: tf.Tensor2D; state: RecurrentState; id?: tf.Tensor1D };

/**
 * stepper.step, or, where the backend in use has CHAR_STEP_KERNEL registered, the stepper's plan
 * (StepPlan) run as that one kernel, which also picks the greedy id: the same float operations in
 * the same order, so the same logits, ids and text to the bit (test/char-step.test.ts), in one kernel
 * call instead of 9-34 (see src/accel/char-step.ts for why that is faster).
 */
export function generationStep(stepper: CharStepper): Step {
  const { plan } = stepper;
  if (!plan || !tf.getKernel(CHAR_STEP_KERNEL, tf.getBackend())) return (ids, state) => stepper.step(ids, state);
  const weights: tf.NamedTensorMap = { outputKernel: plan.outputKernel, outputBias: plan.outputBias };
  plan.layers.forEach((layer, l) => {
    for (const [name, tensor] of Object.entries(layer)) if (tensor) weights[`${l}/${name}`] = tensor;
  });
  const attrs = { cell: plan.cell, layers: plan.layers.length, outputBiasFirst: plan.outputBiasFirst };
  return (ids, state) => {
    if (ids.size !== 1) return stepper.step(ids, state); // the kernel steps one character
    const inputs: tf.NamedTensorMap = { ...weights, ids };
    state.forEach((t, i) => {
      inputs[`state${i}`] = t;
    });
    const [id, logits, ...next] = tf.engine().runKernel(CHAR_STEP_KERNEL, inputs, attrs) as tf.Tensor[];
    return { id: id as tf.Tensor1D, logits: logits as tf.Tensor2D, state: next as tf.Tensor2D[] };
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
