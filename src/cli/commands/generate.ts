/** `lstm-lyrics generate`: write lyrics from a saved model. */
import type { Argv } from 'yargs';
import { latestModelDir, loadCheckpoint, readCheckpointMeta, resolveModelDir } from '../../node/model-dir';
import { describeModel } from '../../core/config';
import { encode, vocabularyOf } from '../../core/vocab';
import { InterruptedError, UsageError } from '../../core/errors';
import { streamText } from '../../core/generate';
import { makeRng } from '../../core/random';
import type { Logger } from '../logger';
import { backendOption, nonNegative, seedOf, startBackend, wholeNumber, type ArgsOf } from '../options';

export const command = 'generate';
export const describe = 'write lyrics from a saved model, starting with a prefix';

export const generateOptions = {
  prefix: { type: 'string', demandOption: true, describe: 'the text to continue, e.g. 不分开' },
  model: { type: 'string', describe: 'model directory', defaultDescription: 'the most recently trained model in models/' },
  length: { type: 'number', default: 50, describe: 'characters to generate after the prefix' },
  temperature: { type: 'number', default: 0, describe: '0: greedy (the lesson); higher: more varied' },
  'top-k': { type: 'number', default: 0, describe: 'sample among the k most likely characters (0: all)' },
  seed: { type: 'number', describe: 'seed for sampling (temperature > 0)', defaultDescription: 'random' },
  ...backendOption,
} as const;

export type GenerateArgs = ArgsOf<typeof generateOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(generateOptions).example([
    ['$0 generate --prefix 不分开', 'greedy, from the last trained model'],
    ['$0 generate --prefix 分开 --model models/builtin --temperature 0.8 --top-k 10 --seed 1', 'sampled'],
  ]);
}

/**
 * Writes the prefix and then the generated text to `write` as it is produced (so a long run shows
 * text at once and an interrupted one keeps what it printed), then a line break. Memory does not
 * grow with --length. When `stop` is aborted (Ctrl-C, SIGTERM), it ends the line and throws an
 * InterruptedError (exit 130) saying how much was written.
 */
export async function handler(
  args: GenerateArgs,
  log: Logger,
  write: (text: string) => void | Promise<void>,
  stop?: AbortSignal,
  modelsDir = 'models',
): Promise<void> {
  const length = wholeNumber('length', args.length, 0);
  const topK = wholeNumber('top-k', args.topK, 0);
  nonNegative('temperature', args.temperature);
  const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : seedOf(args.seed);
  if (args.prefix.length === 0) throw new UsageError('--prefix must not be empty');
  const dir = args.model ?? latestModelDir(modelsDir);
  if (dir === undefined) throw new UsageError(`no trained model in ${modelsDir}/; make one with: lstm-lyrics train --impl scratch`);
  // Check everything that can be wrong with the input before printing anything, so a mistake
  // costs one line on stderr.
  const meta = readCheckpointMeta(resolveModelDir(dir));
  encode(vocabularyOf(meta.vocab), args.prefix);
  // One step at a time is too small to share between threads: auto means one here (measured: two
  // threads generate 2-4x slower).
  const backend = await startBackend(args, 1);
  const { model, vocab, dir: from } = await loadCheckpoint(dir);
  try {
    log.info(backend.description);
    log.info(
      `model: ${from} (${describeModel(meta.model)}, epoch ${meta.epoch}, perplexity ${meta.history.at(-1)?.perplexity.toFixed(3) ?? '?'})`,
    );
    // A signal while the model loaded: nothing printed yet, nothing to keep.
    if (stop?.aborted) throw new InterruptedError(`${String(stop.reason ?? 'stopped')}: stopped before generating`);
    await write(args.prefix);
    const options = { temperature: args.temperature, topK, rng: makeRng(seed) };
    const { written, stopped } = await streamText(model, vocab, args.prefix, length, options, write, { signal: stop });
    // The line ends either way, so an interrupted run's text is a whole line in a file or a terminal.
    await write('\n');
    if (stopped) {
      throw new InterruptedError(
        `${String(stop?.reason ?? 'stopped')}: stopped after ${written} of ${length} characters; the text so far is on stdout`,
      );
    }
  } finally {
    model.dispose();
  }
}
