/**
 * Fidelity from outside TF.js: a saved model of every cell, depth and impl, put through the
 * lessons' own PyTorch equations (scripts/lesson-formulas.py), gives exactly the greedy text
 * `lstm-lyrics generate` prints. Needs Debian's python3-torch (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { REPETITIVE_LYRIC, runCli, tempDir, TINY, writeFile } from './helpers';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.resolve(__dirname, '..', 'scripts', 'lesson-formulas.py');
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

const CASES = [
  ['rnn', 'scratch', 1],
  ['rnn', 'builtin', 2],
  ['gru', 'scratch', 2],
  ['gru', 'builtin', 1],
  ['lstm', 'scratch', 1],
  ['lstm', 'builtin', 2],
] as const;

(hasTorch ? describe : describe.skip)('saved weights through the lessons’ PyTorch formulas', () => {
  const dir = tempDir();
  const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);

  it.each(CASES)('%s %s, %i layer(s): the same greedy text as lstm-lyrics generate', async (cell, impl, layers) => {
    const out = path.join(dir, `${cell}-${impl}-${layers}`);
    // Trained a little (Adam for both impls: quick), so the text depends on every weight (an
    // untrained model repeats one character).
    const flags = [...TINY, '--hidden', '16', '--epochs', '8', '--optimizer', 'adam', '--lr', '0.02', '--max-chars', '600'];
    const trained = await runCli([
      'train',
      ...flags,
      '--cell',
      cell,
      '--impl',
      impl,
      '--layers',
      String(layers),
      '--corpus',
      corpus,
      '--out',
      out,
    ]);
    expect(trained.code).toBe(0);
    const ours = await runCli(['generate', '--model', out, '--prefix', '分开', '--length', '40', '--backend', 'wasm']);
    expect(ours.code).toBe(0);
    const theirs = spawnSync(PYTHON, [SCRIPT, out, '分开', '40'], { encoding: 'utf8' });
    expect(theirs.stderr).toBe('');
    expect(theirs.stdout.trim()).toBe(ours.out.join('\n').trim());
    expect(new Set(theirs.stdout.trim()).size).toBeGreaterThan(3);
  });
});
