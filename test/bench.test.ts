import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { combineRounds, GEN_CHARS, GEN_RUNS, GEN_WARMUP_RUNS, generationRate, type ImplResult } from '../src/cli/bench/rounds';
import { scaleNotes, scaleTable } from '../src/cli/bench/scale';
import { handler, type BenchArgs } from '../src/cli/commands/bench';
import { cellsOf } from '../src/cli/options';
import { UsageError } from '../src/core/errors';
import { DEFAULT_REFERENCE_SCRIPT, parseResultLine, referenceCommand, referenceEnv, referenceProblem } from '../src/node/pytorch-reference';
import { REPETITIVE_LYRIC, spawnCli, tempDir, useWasm, writeFile, fakePython } from './helpers';
import { formatTable } from '../src/terminal/table';
import { median } from '../src/core/metrics';

describe('bench helpers', () => {
  it("parses the reference script's RESULT line, ignoring the lines before it", () => {
    const out =
      'epoch 40, perplexity 1.02\n - 分开 ...\nRESULT impl=scratch vocab=1027 epochs=160 median_epoch_s=0.552 total_s=92.2 final_perplexity=3.6195\n';
    expect(parseResultLine(out)).toEqual({
      impl: 'scratch',
      vocab: 1027,
      epochs: 160,
      medianEpochSeconds: 0.552,
      totalSeconds: 92.2,
      finalPerplexity: 3.6195,
    });
  });

  it("parses series.py's RESULT line (cell, layers, no total) and its GEN line", () => {
    const out =
      'epoch 2, perplexity 300.1\nGEN chars_per_s=512\nRESULT cell=gru impl=builtin layers=2 vocab=1027 epochs=2 median_epoch_s=0.410 final_perplexity=300.1234\n';
    expect(parseResultLine(out)).toEqual({
      impl: 'builtin',
      cell: 'gru',
      layers: 2,
      vocab: 1027,
      epochs: 2,
      medianEpochSeconds: 0.41,
      finalPerplexity: 300.1234,
      generateCharsPerSecond: 512,
    });
  });

  it('runs seed_lstm.py for the one-layer LSTM, series.py with cell, impl and layers for the rest', () => {
    const scripts = { python: 'py', lstm: '/r/seed_lstm.py', series: '/r/series.py' };
    const run = { corpusPath: '/c.zip', impl: 'builtin' as const, epochs: 4, genChars: 200 };
    expect(referenceCommand(scripts, { ...run, cell: 'lstm', layers: 1 })).toEqual([
      '/r/seed_lstm.py',
      '/c.zip',
      'builtin',
      '4',
      '1000',
      '200',
    ]);
    expect(referenceCommand(scripts, { ...run, cell: 'lstm', layers: 2 })).toEqual([
      '/r/series.py',
      '/c.zip',
      'lstm',
      'builtin',
      '4',
      '1000',
      '2',
      '200',
    ]);
    expect(referenceCommand(scripts, { ...run, cell: 'rnn', layers: 1 })).toEqual([
      '/r/series.py',
      '/c.zip',
      'rnn',
      'builtin',
      '4',
      '1000',
      '1',
      '200',
    ]);
  });

  it('times generation as the median of GEN_RUNS runs after GEN_WARMUP_RUNS untimed ones, not one run', () => {
    // Each run lasts the next of these milliseconds on a fake clock: the untimed ones are slow, one timed run too.
    const lasts = [...Array<number>(GEN_WARMUP_RUNS).fill(50), 10, 40, 8, 12, 9];
    expect(GEN_RUNS).toBe(5);
    let clock = 0;
    let calls = 0;
    const rate = generationRate(
      () => (clock += lasts[calls++]),
      () => clock,
    );
    expect(calls).toBe(GEN_WARMUP_RUNS + GEN_RUNS);
    expect(rate).toBeCloseTo(GEN_CHARS / 0.01); // 8, 9, 10, 12, 40 ms: the median is 10
  });

  it('reads --cell as one cell, all, or a comma list, each once, and refuses anything else', () => {
    expect(cellsOf('lstm')).toEqual(['lstm']);
    expect(cellsOf('all')).toEqual(['rnn', 'gru', 'lstm']);
    expect(cellsOf('gru,rnn')).toEqual(['gru', 'rnn']);
    expect(cellsOf('gru, GRU,lstm')).toEqual(['gru', 'lstm']);
    expect(() => cellsOf('foo')).toThrow(new UsageError('--cell must be rnn, gru, lstm, all, or a comma list of them, got foo'));
    expect(() => cellsOf('gru,foo')).toThrow(/got gru,foo$/);
    expect(() => cellsOf('')).toThrow(/got nothing$/);
  });

  it('returns undefined when there is no usable RESULT line', () => {
    expect(parseResultLine('Traceback (most recent call last):\n')).toBeUndefined();
    expect(parseResultLine('RESULT impl=scratch median_epoch_s=oops')).toBeUndefined();
  });

  it('takes the upper middle of an even count, like the reference script', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('aligns text left and numbers right', () => {
    expect(
      formatTable(
        [
          ['scratch', '1.500'],
          ['builtin', '12.250'],
        ],
        ['impl', 's/epoch'],
      ),
    ).toEqual(['impl     s/epoch', '-------  -------', 'scratch    1.500', 'builtin   12.250']);
  });
});

describe('lstm-lyrics bench (handler in process)', () => {
  const lines: string[] = [];
  const log = { info: (line: string) => lines.push(line) };
  let corpus: string;
  const tiny = (over: Partial<BenchArgs> = {}): BenchArgs => ({
    epochs: 1,
    rounds: 1,
    corpus,
    maxChars: 0,
    hidden: 8,
    impl: 'scratch',
    cell: 'lstm',
    layers: 1,
    reference: false,
    python: 'python3',
    referenceScript: DEFAULT_REFERENCE_SCRIPT,
    json: false,
    scale: false,
    backend: 'wasm',
    accel: 'on',
    threads: '1',
    ...over,
  });

  beforeAll(async () => {
    await useWasm();
    corpus = writeFile(tempDir(), 'lyric.txt', REPETITIVE_LYRIC.repeat(3));
  });
  beforeEach(() => lines.splice(0));

  it('times one impl and leaks no tensors', async () => {
    const result = await handler(tiny(), log);
    expect(result.results).toHaveLength(1);
    const [r] = result.results;
    expect(r).toMatchObject({ cell: 'lstm', layers: 1, impl: 'scratch', hidden: 8, epochs: 1, tensorsLeaked: 0 });
    expect(r.medianEpochSeconds).toBeGreaterThan(0);
    expect(r.medianEpochCpuSeconds).toBeGreaterThan(0);
    expect(r.generateCharsPerSecond).toBeGreaterThan(0);
    expect(r.reference).toBeUndefined();
    expect(lines.join('\n')).toMatch(/lstm\s+1\s+scratch\s+wasm/);
  });

  it('says why a missing reference script is skipped, before training, and still benchmarks', async () => {
    const missing = path.join(tempDir(), 'nope.py');
    const result = await handler(tiny({ reference: true, referenceScript: missing }), log);
    expect(result.referenceNote).toMatch(/nope\.py not found \(see --reference-script\)/);
    expect(lines[1]).toMatch(/^reference skipped: .*nope\.py not found/);
    expect(result.results[0].reference).toBeUndefined();
  });

  it('says so when the interpreter does not exist', () => {
    expect(referenceProblem('/no/such/python3', __filename)).toMatch(/cannot run \/no\/such\/python3: ENOENT \(see --python\)/);
  });

  it('says so when the interpreter lacks torch, pointing to the README section on --reference', () => {
    // `node -c 'import torch'` fails like a Python without torch.
    expect(referenceProblem(process.execPath, __filename)).toBe(
      `${process.execPath} cannot import torch: PyTorch is not installed for it; see README, 'lstm-lyrics bench' (--reference, --python)`,
    );
    // The section it names exists, and documents both flags.
    const readme = fs.readFileSync(path.resolve(__dirname, '..', 'README.md'), 'utf8');
    const start = readme.indexOf('\n### `lstm-lyrics bench`\n');
    expect(start).toBeGreaterThanOrEqual(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start));
    expect(section).toMatch(/`--reference`/);
    expect(section).toMatch(/`--python PATH`/);
  });

  it('runs the reference without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, and leaves ours alone', async () => {
    const dir = tempDir();
    // A stand-in interpreter: passes the torch probe and prints a RESULT line naming what it saw.
    const fake = fakePython(dir, 'fake-python', [
      'echo "epoch 1 ..."',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell script, whose ${VAR:-unset} is the shell's
      'echo "RESULT impl=$3 vocab=${OPENBLAS_CORETYPE:-unset}${OPENBLAS_L2_SIZE:-unset} epochs=$4 median_epoch_s=0.5 total_s=1.0 final_perplexity=9.5"',
    ]);
    const saved = { ...process.env };
    process.env.OPENBLAS_CORETYPE = 'Haswell';
    process.env.OPENBLAS_L2_SIZE = '512';
    try {
      const result = await handler(tiny({ reference: true, python: fake, referenceScript: fake }), log);
      const ref = result.results[0].reference!;
      expect(ref).toMatchObject({ impl: 'scratch', epochs: 2, medianEpochSeconds: 0.5, finalPerplexity: 9.5, target: 1.0 });
      expect(ref.vocab).toBeNaN(); // "unsetunset": both were removed for the child
      expect(process.env.OPENBLAS_CORETYPE).toBe('Haswell');
      expect(lines.join('\n')).toMatch(/OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset/);
    } finally {
      process.env = saved;
    }
  });

  it('--rounds runs ours and PyTorch back to back, round by round, and reports the median ratio', async () => {
    const dir = tempDir();
    const counter = path.join(dir, 'runs');
    // PyTorch takes 1, 2, 3... seconds an epoch in successive runs.
    const fake = fakePython(dir, 'fake-python', [
      `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '${counter}'`,
      'echo "RESULT impl=$3 vocab=5 epochs=$4 median_epoch_s=$n total_s=1.0 final_perplexity=9.5"',
    ]);
    const result = await handler(tiny({ reference: true, python: fake, referenceScript: fake, rounds: 3 }), log);
    const order = lines.filter((l) => /^(training|running PyTorch)/.test(l));
    expect(order).toEqual(
      [1, 2, 3].flatMap((k) => [
        `training lstm scratch (round ${k} of 3): 1 warm-up + 1 timed epochs...`,
        `running PyTorch reference lstm scratch (round ${k} of 3): 2 epochs...`,
      ]),
    );
    const r = result.results[0];
    expect(r.roundRatios).toHaveLength(3);
    expect(r.reference!.medianEpochSeconds).toBe(2);
    expect(r.reference!.ratio).toBe([...r.roundRatios!].sort((a, b) => a - b)[1]);
    expect(lines.join('\n')).toMatch(/lstm scratch: ours\/PyTorch by round \d+\.\d\dx, \d+\.\d\dx, \d+\.\d\dx/);
  });

  it('--cell gru,rnn times a row per cell and impl, each with its numbers and no leaks', async () => {
    const result = await handler(tiny({ cell: 'gru,rnn', impl: undefined }), log);
    expect(result.results.map((r) => [r.cell, r.layers, r.impl])).toEqual([
      ['gru', 1, 'scratch'],
      ['gru', 1, 'builtin'],
      ['rnn', 1, 'scratch'],
      ['rnn', 1, 'builtin'],
    ]);
    for (const r of result.results) {
      expect(r.tensorsLeaked).toBe(0);
      expect(r.medianEpochSeconds).toBeGreaterThan(0);
      expect(r.generateCharsPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(r.finalPerplexity)).toBe(true);
    }
    const table = lines.join('\n');
    for (const [cell, impl] of [
      ['gru', 'scratch'],
      ['gru', 'builtin'],
      ['rnn', 'scratch'],
      ['rnn', 'builtin'],
    ]) {
      expect(table).toMatch(new RegExp(`^${cell}\\s+1\\s+${impl}\\s+wasm\\s+on\\s+\\d+\\.\\d{3}\\s`, 'm'));
    }
  });

  it('stacks --layers in every model', async () => {
    const result = await handler(tiny({ cell: 'rnn', layers: 2, impl: 'builtin' }), log);
    expect(result.results[0]).toMatchObject({ cell: 'rnn', layers: 2, impl: 'builtin', tensorsLeaked: 0 });
    expect(lines.join('\n')).toMatch(/^rnn\s+2\s+builtin\s+wasm/m);
  });

  it('refuses a bad --cell or --layers before training', async () => {
    await expect(handler(tiny({ cell: 'foo' }), log)).rejects.toThrow(UsageError);
    await expect(handler(tiny({ layers: 0 }), log)).rejects.toThrow(new UsageError('--layers must be a whole number from 1 to 64, got 0'));
    expect(lines.filter((l) => /^training/.test(l))).toEqual([]);
  });

  it('--reference runs series.py for other cells and depths, seed_lstm.py for the one-layer LSTM, and sets generation beside ours', async () => {
    const dir = tempDir();
    const calls = path.join(dir, 'calls');
    // Stand-ins for both scripts (series.py found beside --reference-script, its default place).
    const seed = writeFile(dir, 'seed_lstm.py', '');
    writeFile(dir, 'series.py', '');
    // A stand-in interpreter: records its arguments, then answers as the script named would.
    const fake = fakePython(dir, 'fake-python', [
      `echo "$*" >> '${calls}'`,
      'case "$1" in',
      '  *series.py) echo "GEN chars_per_s=1000000"; echo "RESULT cell=$3 impl=$4 layers=$7 vocab=5 epochs=$5 median_epoch_s=0.5 final_perplexity=9.5" ;;',
      '  *) echo "GEN chars_per_s=0.001"; echo "RESULT impl=$3 vocab=5 epochs=$4 median_epoch_s=1000 total_s=2.0 final_perplexity=9.5" ;;',
      'esac',
    ]);
    const result = await handler(tiny({ reference: true, python: fake, referenceScript: seed, cell: 'gru,lstm', impl: undefined }), log);
    expect(fs.readFileSync(calls, 'utf8').trim().split('\n')).toEqual([
      `${dir}/series.py ${corpus} gru scratch 2 1000 1 200`,
      `${dir}/series.py ${corpus} gru builtin 2 1000 1 200`,
      `${seed} ${corpus} scratch 2 1000 200`,
      `${seed} ${corpus} builtin 2 1000 200`,
    ]);
    const [gru] = result.results;
    expect(gru.reference).toMatchObject({ cell: 'gru', impl: 'scratch', layers: 1, epochs: 2, generateCharsPerSecond: 1e6, target: 1.0 });
    expect(gru.reference!.ratio).toBeCloseTo(gru.medianEpochSeconds / 0.5);
    expect(gru.reference!.generateRatio).toBeCloseTo(gru.generateCharsPerSecond / 1e6);
    expect(gru.reference).toMatchObject({ generateMet: false }); // no one generates a million characters a second here
    const lstm = result.results[3];
    expect(lstm.reference).toMatchObject({ impl: 'builtin', totalSeconds: 2, target: 2.0, met: true, generateMet: true });
    const out = lines.join('\n');
    expect(out).toMatch(/PyTorch gen chars\/s\s+gen ours\/PyTorch\s+gen goal\s+gen met$/m);
    expect(out).toMatch(/^gru\s+1\s+scratch\s.*\s1,000,000\s+\d+\.\d\dx\s+>=1\.0x\s+NO$/m);
    expect(out).toMatch(/^goals: every scratch <=1\.0x .* every builtin <=2\.0x nn\.RNN \/ nn\.GRU \/ nn\.LSTM/m);

    // Two layers: the LSTM too goes to series.py, which must then exist.
    fs.writeFileSync(calls, '');
    await handler(tiny({ reference: true, python: fake, referenceScript: seed, cell: 'lstm', layers: 2, impl: 'builtin' }), log);
    expect(fs.readFileSync(calls, 'utf8').trim()).toBe(`${dir}/series.py ${corpus} lstm builtin 2 1000 2 200`);
    fs.rmSync(path.join(dir, 'series.py'));
    const skipped = await handler(tiny({ reference: true, python: fake, referenceScript: seed, cell: 'rnn' }), log);
    expect(skipped.referenceNote).toBe(`${dir}/series.py not found (see --series-script)`);
  });

  it('combines rounds: medians of each measure and of the per-round ratios, largest peak RSS', () => {
    const ours = (seconds: number, rss: number): ImplResult => ({
      cell: 'lstm',
      layers: 1,
      impl: 'builtin',
      backend: 'wasm',
      accel: 'on',
      chars: 100,
      vocab: 5,
      hidden: 8,
      epochs: 1,
      medianEpochSeconds: seconds,
      medianEpochCpuSeconds: seconds * 2,
      charsPerSecond: 100 / seconds,
      finalPerplexity: 3,
      peakRssMiB: rss,
      tensorsLeaked: 0,
      generateCharsPerSecond: 10,
    });
    const reference = (seconds: number) => ({
      impl: 'builtin',
      vocab: 5,
      epochs: 2,
      medianEpochSeconds: seconds,
      totalSeconds: 1,
      finalPerplexity: 3,
    });
    // Round ratios 2.0, 1.5, 3.0: the median 2.0 (the slow second round of ours met a slow PyTorch).
    const r = combineRounds([
      { ours: ours(1.0, 300), reference: reference(0.5) },
      { ours: ours(1.5, 350), reference: reference(1.0) },
      { ours: ours(0.9, 320), reference: reference(0.3) },
    ]);
    expect(r.roundRatios).toEqual([2, 1.5, 3]);
    expect(r.reference).toMatchObject({ ratio: 2, medianEpochSeconds: 0.5, target: 2.0, met: true });
    expect(r).toMatchObject({ medianEpochSeconds: 1.0, medianEpochCpuSeconds: 2.0, peakRssMiB: 350 });
    // One round is its own result, without per-round ratios.
    const one = combineRounds([{ ours: ours(1.2, 300), reference: reference(0.5) }]);
    expect(one.roundRatios).toBeUndefined();
    expect(one.reference).toMatchObject({ ratio: 2.4, met: false });
    expect(combineRounds([{ ours: ours(1.2, 300) }]).reference).toBeUndefined();
  });

  it('removes only the two OpenBLAS variables', () => {
    expect(referenceEnv({ OPENBLAS_CORETYPE: 'x', OPENBLAS_L2_SIZE: '1', OPENBLAS_NUM_THREADS: '2', PATH: '/bin' })).toEqual({
      OPENBLAS_NUM_THREADS: '2',
      PATH: '/bin',
    });
  });
});

describe('lstm-lyrics bench (the CLI command)', () => {
  const BIN = path.resolve(__dirname, '..', 'bin', 'lstm-lyrics.js');

  it('--json prints one JSON object on stdout, the table on stderr', () => {
    const dir = tempDir();
    const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC.repeat(3));
    // A script that exists, so the missing interpreter is what gets reported (the default script
    // is in ../shared, which a clone need not have beside it).
    const script = writeFile(dir, 'reference.py', '');
    const r = spawnSync(
      process.execPath,
      [
        BIN,
        'bench',
        '--json',
        '--impl',
        'builtin',
        '--epochs',
        '1',
        '--hidden',
        '8',
        '--max-chars',
        '0',
        '--corpus',
        corpus,
        '--backend',
        'wasm',
        '--reference',
        '--python',
        '/no/such/python',
        '--reference-script',
        script,
      ],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
    );
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]);
    expect(result.results[0]).toMatchObject({ cell: 'lstm', layers: 1, impl: 'builtin', hidden: 8, tensorsLeaked: 0 });
    expect(result.referenceNote).toMatch(/cannot run \/no\/such\/python/);
    expect(r.stderr).toMatch(/builtin\s+wasm/);
  });
});

describe('lstm-lyrics bench: bad --cell and --layers', () => {
  it.each([
    [['--cell', 'foo'], '--cell must be rnn, gru, lstm, all, or a comma list of them, got foo'],
    [['--layers', '0'], '--layers must be a whole number from 1 to 64, got 0'],
  ])('bench %j exits 2 with one line', (flags, message) => {
    const r = spawnCli(['bench', '--backend', 'wasm', ...flags]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
  });
});

describe('bench --scale', () => {
  const row = (impl: 'scratch' | 'builtin', chars: number, vocab: number, hidden: number, seconds: number, rss: number) => ({
    cell: 'lstm' as const,
    layers: 1,
    impl,
    backend: 'wasm',
    accel: 'on' as const,
    chars,
    vocab,
    hidden,
    epochs: 1,
    medianEpochSeconds: seconds,
    medianEpochCpuSeconds: seconds,
    charsPerSecond: chars / seconds,
    finalPerplexity: 1,
    peakRssMiB: rss,
    tensorsLeaked: 0,
    generateCharsPerSecond: 1,
  });

  it('says where CPU time per character departs from the matmul work, or memory changes, with corpus length', () => {
    const notes = scaleNotes([
      { ...row('scratch', 10_000, 1027, 256, 1.0, 300), medianEpochCpuSeconds: 1.0 },
      // work per character: (786,432 + 3·256·2582) / (786,432 + 3·256·1027) = 1.76; CPU: (11.14 / 63,282) / (1 / 10,000) = 1.76
      { ...row('scratch', 63_282, 2582, 256, 30, 310), medianEpochCpuSeconds: 11.14 },
      { ...row('builtin', 10_000, 1027, 256, 2.0, 400), medianEpochCpuSeconds: 2.0 },
      { ...row('builtin', 63_282, 2582, 256, 25.3, 900), medianEpochCpuSeconds: 40 },
    ]);
    expect(notes).toEqual([
      'lstm scratch hidden 256, 10,000 -> 63,282 characters (vocabulary 1,027 -> 2,582): CPU time per character x1.76, matmul work per character x1.76 (linear in characters); peak RSS x1.03 (flat)',
      'lstm builtin hidden 256, 10,000 -> 63,282 characters (vocabulary 1,027 -> 2,582): CPU time per character x3.16, matmul work per character x1.76 (NOT linear in characters); peak RSS x2.25 (NOT flat)',
    ]);
  });

  it('tabulates ms per 1k characters', () => {
    const table = scaleTable([row('scratch', 10_000, 1027, 128, 0.5, 250)]).split('\n');
    expect(table[0]).toMatch(
      /^cell\s+layers\s+impl\s+chars\s+vocab\s+hidden\s+s\/epoch\s+CPU s\/epoch\s+ms per 1k chars\s+peak RSS MiB\s+tensors left$/,
    );
    expect(table[2]).toMatch(/^lstm\s+1\s+scratch\s+10,000\s+1,027\s+128\s+0\.500\s+0\.500\s+50\.0\s+250\s+0$/);
  });
});
