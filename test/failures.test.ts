/** SIGINT during training, --resume, and what a crash mid-save leaves behind. Spawns the real CLI. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPETITIVE_LYRIC, TINY, spawnCli, startCli, tempDir, writeFile } from './helpers';

const cwd = tempDir();
const corpus = writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
// TINY's epochs are a few hundred characters: 40 of them take seconds, and a run interrupted
// after its first still has most of its work ahead.
const ARGS = ['--impl', 'scratch', '--corpus', corpus, ...TINY, '--lr', '10', '--clip', '1', '--seed', '3'];
const cli = (args: string[]) => spawnCli(args, { cwd });

/**
 * Loaded with `node --require` before the CLI: holds every save for 300 ms after each of its steps,
 * so that a test can kill the process inside a save on purpose rather than by luck.
 */
const PAUSE_SAVES = writeFile(
  cwd,
  'pause-saves.js',
  `require(${JSON.stringify(path.resolve(__dirname, '..', 'dist', 'node', 'model-dir.js'))}).setSaveSeams({\n` +
    '  afterStep: () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300),\n});\n',
);

function finalPerplexity(stdout: string): string {
  return stdout.match(/^epoch \d+, perplexity ([\d.]+)/gm)!.at(-1)!;
}

/** Starts training and sends `signals` once the first report line appears. */
async function interruptAfterFirstReport(
  out: string,
  signals: NodeJS.Signals[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = startCli(['train', ...ARGS, '--epochs', '40', '--report-every', '1', '--out', out], { cwd });
  if (await run.printed(/^epoch 1,/m)) for (const signal of signals) run.child.kill(signal);
  return run.exited;
}

describe('interrupting training', () => {
  it('SIGINT finishes the batch, saves a checkpoint and exits 130; --resume then ends exactly where an uninterrupted run does', async () => {
    const interrupted = await interruptAfterFirstReport('models/a', ['SIGINT']);
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/interrupted in epoch \d+ after batch \d+; saved to models\/a/);
    const meta = JSON.parse(fs.readFileSync(path.join(cwd, 'models/a/checkpoint.json'), 'utf8'));
    expect(meta.epoch).toBeLessThan(40);
    expect(meta.position).toMatchObject({ epoch: meta.epoch + 1, hasState: true }); // stopped mid-epoch

    const resumed = cli(['train', ...ARGS, '--epochs', '40', '--report-every', '40', '--out', 'models/a', '--resume']);
    expect(resumed.status).toBe(0);
    const straight = cli(['train', ...ARGS, '--epochs', '40', '--report-every', '40', '--out', 'models/b']);
    expect(straight.status).toBe(0);
    expect(finalPerplexity(resumed.stdout)).toBe(finalPerplexity(straight.stdout));
  });

  it('a second signal quits at once and the last saved model still loads', async () => {
    const r = await interruptAfterFirstReport('models/c', ['SIGTERM', 'SIGTERM']);
    expect(r.code).toBe(130);
    const gen = cli(['generate', '--prefix', '分开', '--model', 'models/c', '--backend', 'wasm']);
    expect(gen.status).toBe(0);
    expect(gen.stdout.startsWith('分开')).toBe(true);
  });

  it('--resume refuses a model of the other impl, and a finished run', () => {
    const other = cli(['train', ...ARGS, '--impl', 'builtin', '--out', 'models/b', '--resume']);
    expect(other.status).toBe(2);
    expect(other.stderr.trim()).toBe('lstm-lyrics: models/b holds a scratch model; resume it with --impl scratch');
    const done = cli(['train', ...ARGS, '--epochs', '40', '--out', 'models/b', '--resume']);
    expect(done.status).toBe(2);
    expect(done.stderr).toMatch(/already trained 40 epochs/);
  });
});

describe('a diverging run', () => {
  it('stops with a message naming the cause, exits 1, and keeps the last good model', () => {
    const good = cli(['train', ...ARGS, '--epochs', '2', '--out', 'models/d']);
    expect(good.status).toBe(0);
    const before = fs.readFileSync(path.join(cwd, 'models/d/weights.bin'));
    const bad = cli(['train', ...ARGS, '--epochs', '3', '--report-every', '1', '--lr', '1e30', '--clip', '1e30', '--out', 'models/d']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(
      /^lstm-lyrics: error: training diverged: the loss became (NaN|Infinity|[\d.e+]+) in epoch 1; try a smaller --lr or --clip$/,
    );
    expect(fs.readFileSync(path.join(cwd, 'models/d/weights.bin')).equals(before)).toBe(true);
  });
});

describe('a crash during a save', () => {
  /** Trains with every save paused after each step; kills the process once `inSave(dir)` holds. */
  async function killInsideSave(dir: string, inSave: (abs: string) => boolean): Promise<void> {
    const { child, exited } = startCli(['train', ...ARGS, '--epochs', '100000', '--report-every', '1', '--pred-len', '1', '--out', dir], {
      cwd,
      nodeArgs: ['--require', PAUSE_SAVES],
    });
    const abs = path.join(cwd, dir);
    let firstSaveDone = false;
    const poll = setInterval(() => {
      // Once the first model is complete, wait for a later save to be caught in the act.
      firstSaveDone ||= fs.existsSync(path.join(abs, 'checkpoint.json'));
      if (firstSaveDone && inSave(abs)) {
        clearInterval(poll);
        child.kill('SIGKILL');
      }
    }, 10);
    let giveUp: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        exited,
        new Promise((_, reject) => (giveUp = setTimeout(() => reject(new Error('never caught a save in progress')), 90_000))),
      ]);
    } finally {
      clearInterval(poll);
      clearTimeout(giveUp);
    }
  }

  const generates = (dir: string) => {
    const gen = cli(['generate', '--prefix', '分开', '--length', '3', '--model', dir, '--backend', 'wasm']);
    expect(gen.stderr).not.toMatch(/lstm-lyrics:/);
    expect(gen.status).toBe(0);
  };

  it('SIGKILL while the new files are being written leaves the previous model loadable', async () => {
    const dir = 'models/killed-writing';
    // The next save has begun: its .tmp directory exists but is not complete yet.
    await killInsideSave(dir, (abs) => fs.existsSync(`${abs}.tmp`) && !fs.existsSync(path.join(`${abs}.tmp`, 'checkpoint.json')));
    expect(fs.existsSync(path.join(cwd, `${dir}.tmp`))).toBe(true); // the kill did land inside the save
    generates(dir);
  });

  it('SIGKILL between the two renames (the old model moved aside, the new one not yet in place) leaves a loadable model', async () => {
    const dir = 'models/killed-renaming';
    await killInsideSave(dir, (abs) => !fs.existsSync(abs) && fs.existsSync(`${abs}.old`));
    expect(fs.existsSync(path.join(cwd, dir))).toBe(false); // the kill did land between the renames
    generates(dir);
  });

  it('SIGKILL at random moments of a run that saves every epoch always leaves a loadable model', async () => {
    const dir = 'models/crash';
    for (let attempt = 0; attempt < 4; attempt++) {
      const run = startCli(['train', ...ARGS, '--epochs', '100000', '--report-every', '1', '--pred-len', '1', '--out', dir], { cwd });
      // After the first save, kill at a random moment: with a save per epoch, many land mid-save.
      if (await run.printed(/^epoch 1,/m)) setTimeout(() => run.child.kill('SIGKILL'), 50 + Math.random() * 400);
      await run.exited;
      generates(dir);
    }
  });
});
