/**
 * The command line: yargs wiring, and the only place that turns errors into exit codes
 * (0 ok, 1 runtime failure, 2 bad usage or input, 3 gate failed, 130 interrupted) and that owns
 * the process' signals. Each command is a module exporting command, describe, builder, handler.
 */
import type chalk from 'chalk';
import yargs from 'yargs';
import { EXIT, UsageError, exitCodeOf, firstLine } from '../core/errors';
import { colorsFor } from '../terminal/colors';
import { progressFor, type Progress } from '../terminal/progress';
import * as bench from './commands/bench';
import * as compare from './commands/compare';
import * as corpus from './commands/corpus';
import * as generate from './commands/generate';
import * as serve from './commands/serve';
import * as train from './commands/train';
import type { Logger } from './logger';

export interface Io {
  /** Results: the lesson's report lines, generated lyrics. */
  readonly out: Logger;
  /** Diagnostics and errors. */
  readonly err: Logger;
  /** The progress bar of long runs (drawn only on a terminal). */
  readonly progress: Progress;
  /** Colours for stderr (none unless it is a terminal; see colors.ts). */
  readonly errColors: chalk.Chalk;
  /** Aborted to stop long work early; the process' SIGINT/SIGTERM when not given. */
  readonly stop?: AbortSignal;
  /**
   * Raw text to stdout as it is produced (generate's lyrics, piece by piece). Without it, the
   * pieces are joined and given to `out` line by line (for tests that capture lines).
   */
  readonly write?: (text: string) => void | Promise<void>;
}

const processIo: Io = {
  out: { info: (line) => process.stdout.write(`${line}\n`) },
  err: { info: (line) => process.stderr.write(`${line}\n`) },
  progress: progressFor(process.stderr),
  errColors: colorsFor(process.stderr),
  write: writeStdout,
};

/** Thrown by writeStdout once stdout's reader has gone (`generate | head`): the run ends quietly. */
class StdoutClosed extends Error {}

let stdoutClosed = false;

/**
 * Writes to stdout, waiting for it to drain when its buffer is full, so a fast generator behind a
 * slow reader never piles text up in memory. Once a write fails with EPIPE (the reader has exited,
 * as `head` does), it throws StdoutClosed: Node ignores SIGPIPE, so without this an endless
 * `generate | head` would generate forever into a closed pipe.
 */
function writeStdout(text: string): Promise<void> | undefined {
  if (process.stdout.listenerCount('error') === 0) {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      stdoutClosed = true;
    });
  }
  if (stdoutClosed) throw new StdoutClosed('stdout closed');
  if (process.stdout.write(text)) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      process.stdout.off('drain', done);
      process.stdout.off('close', done);
      process.stdout.off('error', done);
      resolve();
    };
    process.stdout.on('drain', done);
    process.stdout.on('close', done);
    process.stdout.on('error', done);
  });
}

/** `write` for an Io without one: whole lines to `out` (the text so far stays until its line break). */
function linesTo(out: Logger): (text: string) => void {
  let line: string[] = [];
  return (text) => {
    const parts = text.split('\n');
    line.push(parts[0]);
    for (const next of parts.slice(1)) {
      out.info(line.join(''));
      line = [next];
    }
  };
}

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const signals = io.stop ? undefined : stopOnSignals();
  const stop = io.stop ?? signals!.stop;
  const parser = yargs([...argv])
    .scriptName('lstm-lyrics')
    // A flag given twice takes its last value (as most CLIs do), not an array of both.
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .usage(
      '$0 <command> [options]\n\nA character-level language model (RNN, GRU or LSTM) that learns to write lyrics: written by hand, or tf.layers.',
    )
    .command(train.command, train.describe, train.builder, async (args) => {
      // With --json, stdout carries only the summary object, for machines.
      const summary = await train.handler(args, args.json ? io.err : io.out, io.progress, stop);
      if (args.json) io.out.info(JSON.stringify(summary));
    })
    .command(generate.command, generate.describe, generate.builder, async (args) => {
      try {
        await generate.handler(args, io.err, io.write ?? linesTo(io.out), stop);
      } catch (err) {
        // The reader took what it wanted (`generate | head`): a success, as for any Unix filter.
        if (!(err instanceof StdoutClosed)) throw err;
      }
    })
    .command(compare.command, compare.describe, compare.builder, async (args) => {
      // As with train: --json puts only the result object on stdout.
      const result = await compare.handler(args, args.json ? io.err : io.out, io.progress, stop);
      if (args.json) io.out.info(JSON.stringify(result));
    })
    .command(corpus.command, corpus.describe, corpus.builder, async (args) => {
      for (const line of await corpus.handler(args, io.err)) io.out.info(line);
    })
    .command(serve.command, serve.describe, serve.builder, async (args) => {
      // Serves until stop (Ctrl-C / SIGTERM) aborts, then closes the server and returns.
      await serve.handler(args, io.out, stop, undefined, io.err);
    })
    .command(bench.command, bench.describe, bench.builder, async (args) => {
      // With --json the table and notes go to stderr, and stdout carries only the result object.
      const result = await bench.handler(args, args.json ? io.err : io.out, io.err);
      if (args.json) io.out.info(JSON.stringify(result));
    })
    .demandCommand(1, 'name a command: train, generate, compare, corpus, serve or bench')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .epilogue('Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 3 gate failed, 130 interrupted.')
    .exitProcess(false)
    .fail((message, error) => {
      // yargs spreads some messages over several lines; the CLI's errors are one line.
      throw (
        error ??
        new UsageError(
          `${message
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
            .join(' ')} (see: lstm-lyrics --help)`,
        )
      );
    });
  try {
    await parser.parseAsync();
    return EXIT.ok;
  } catch (err) {
    const code = exitCodeOf(err);
    io.err.info(`${io.errColors.red.bold('lstm-lyrics:')} ${code === EXIT.failure ? 'error: ' : ''}${firstLine(err)}`);
    if (code === EXIT.failure && process.env.LSTM_LYRICS_DEBUG) io.err.info(String((err as Error).stack));
    return code;
  } finally {
    signals?.release();
  }
}

/** How long the first signal waits for the command to stop before the process exits anyway. */
export const STOP_GRACE_MS = 5_000;

/**
 * The first SIGINT or SIGTERM asks the running command to stop (it finishes its batch and saves);
 * a second one exits at once, and so does the first if the command has not ended after
 * STOP_GRACE_MS. Either way the last saved model stays intact: saves are atomic, and exiting
 * removes a half-written `<dir>.tmp` and the run's lock.
 */
function stopOnSignals(): { stop: AbortSignal; release(): void } {
  const controller = new AbortController();
  let grace: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted);
    controller.abort(signal);
    grace = setTimeout(() => {
      process.stderr.write(
        `lstm-lyrics: ${signal}: did not stop within ${STOP_GRACE_MS / 1000} s; quitting without saving (the last saved model is unchanged)\n`,
      );
      process.exit(EXIT.interrupted);
    }, STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stop: controller.signal,
    release() {
      clearTimeout(grace);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
