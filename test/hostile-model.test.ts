/**
 * Model directories made by someone else (issue 18): each test builds one hostile file (a FIFO, a
 * symlink, a `files` entry out of the directory, a string where a number belongs, a layer of
 * 12,000 units, a weights file a byte off, a NaN, a 50 GB checkpoint.json) and asserts exit 2 with
 * one line naming the file and the problem, quickly, without reading what it must not, and with
 * nothing of the file's content in the output. The valid models these are spoiled from load
 * (test/checkpoint.test.ts covers more of that).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINT_FILE, parseCheckpointMeta } from '../src/core/checkpoint-format';
import { UsageError } from '../src/core/errors';
import { REPETITIVE_LYRIC, TINY, runCli, snapshot, spawnCli, tempDir, useWasm, writeFile } from './helpers';

const cwd = tempDir();
const models = path.join(cwd, 'models');
const run = (args: string[]) => runCli(args, cwd);
const generate = (model: string) => ['generate', '--prefix', '分开', '--length', '5', '--backend', 'wasm', '--model', `models/${model}`];

/** A copy of a trained model, spoiled by `spoil` (given the copy's path). */
function spoiled(from: 'scratch' | 'builtin', name: string, spoil: (dir: string) => void): string {
  const dir = path.join(models, name);
  fs.cpSync(path.join(models, from), dir, { recursive: true });
  spoil(dir);
  return name;
}

/** checkpoint.json of `dir`, changed by `edit`. */
// biome-ignore lint/suspicious/noExplicitAny: a hostile edit writes any value into any field
function editMeta(dir: string, edit: (meta: Record<string, any>) => void): void {
  const file = path.join(dir, CHECKPOINT_FILE);
  const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(meta);
  fs.writeFileSync(file, JSON.stringify(meta));
}

/** Runs generate on `model` in this process: exit 2 and one line matching `pattern`, nothing on stdout. */
async function refused(model: string, pattern: RegExp): Promise<string> {
  const r = await run(generate(model));
  expect(r.err).toHaveLength(1);
  expect(r.err[0]).toMatch(/^lstm-lyrics: /);
  expect(r.err[0]).toMatch(pattern);
  expect(r.code).toBe(2);
  expect(r.out).toEqual([]);
  return r.err[0];
}

const passwd = fs.existsSync('/etc/passwd') ? fs.readFileSync('/etc/passwd', 'utf8') : 'root:x:0:0:root:/root:/bin/bash\n';
const passwdLines = passwd.split('\n').filter((l) => l.length >= 4);

beforeAll(async () => {
  await useWasm();
  writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
  for (const impl of ['scratch', 'builtin']) {
    const r = await run(['train', ...TINY, '--impl', impl, '--corpus', 'song.txt', '--out', `models/${impl}`]);
    if (r.code !== 0) throw new Error(r.err.join('\n'));
  }
}, 120_000);

describe('the models spoiled below load as they are', () => {
  it.each(['scratch', 'builtin'])('%s generates', async (impl) => {
    const r = await run(generate(impl));
    expect(r.code).toBe(0);
    expect(r.out.join('')).toMatch(/^分开/);
  });
});

describe('files that are not regular files directly inside the directory', () => {
  it('checkpoint.json a FIFO: generate exits 2 within seconds with one line (a real process, nothing opened blocks)', () => {
    const name = spoiled('scratch', 'fifo', (dir) => {
      fs.rmSync(path.join(dir, CHECKPOINT_FILE));
      execFileSync('mkfifo', [path.join(dir, CHECKPOINT_FILE)]);
    });
    const started = Date.now();
    const r = spawnCli(generate(name), { cwd, timeout: 30_000 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `lstm-lyrics: cannot read models/${name}/checkpoint.json: is not a regular file (a FIFO)`,
    ]);
  });

  it('weights.bin a FIFO: exit 2, one line, no hang', async () => {
    const name = spoiled('scratch', 'fifo-weights', (dir) => {
      fs.rmSync(path.join(dir, 'weights.bin'));
      execFileSync('mkfifo', [path.join(dir, 'weights.bin')]);
    });
    await refused(name, /model in models\/fifo-weights is corrupt: weights.bin is not a regular file \(a FIFO\)/);
  });

  it('checkpoint.json a symlink to /etc/passwd: exit 2, and no line of the file in the output', async () => {
    const name = spoiled('scratch', 'passwd', (dir) => {
      fs.rmSync(path.join(dir, CHECKPOINT_FILE));
      fs.symlinkSync('/etc/passwd', path.join(dir, CHECKPOINT_FILE));
    });
    const line = await refused(name, /cannot read models\/passwd\/checkpoint.json: is not a regular file \(a symbolic link\)/);
    for (const l of passwdLines) expect(line).not.toContain(l);
  });

  it('checkpoint.json a symlink to a valid checkpoint elsewhere: refused too (a link may point anywhere)', async () => {
    const name = spoiled('scratch', 'linked-meta', (dir) => {
      fs.rmSync(path.join(dir, CHECKPOINT_FILE));
      fs.symlinkSync(path.join(models, 'scratch', CHECKPOINT_FILE), path.join(dir, CHECKPOINT_FILE));
    });
    await refused(name, /is not a regular file \(a symbolic link\)/);
  });

  it('weights.bin a symlink to /dev/zero: refused before it is opened', async () => {
    const name = spoiled('scratch', 'zero-link', (dir) => {
      fs.rmSync(path.join(dir, 'weights.bin'));
      fs.symlinkSync('/dev/zero', path.join(dir, 'weights.bin'));
    });
    await refused(name, /model in models\/zero-link is corrupt: weights.bin is not a regular file \(a symbolic link\)/);
  });

  it.each([
    ['../../../../dev/zero', 'dev-zero'],
    ['../scratch/weights.bin', 'sibling'],
    ['/etc/passwd', 'absolute'],
    ['..', 'dot-dot'],
    ['.', 'dot'],
    ['', 'empty'],
    ['sub\\weights.bin', 'backslash'],
  ])('files naming %j: exit 2 before any model file is opened', async (entry, label) => {
    const name = spoiled('scratch', `files-${label}`, (dir) =>
      editMeta(dir, (meta) => {
        meta.files = [entry, 'weights.json'];
      }),
    );
    // Every file the command opens, through the one call model-dir.ts opens with.
    const opened: string[] = [];
    const realFs = require('node:fs') as typeof fs;
    const open = realFs.openSync;
    const spy = jest.spyOn(realFs, 'openSync').mockImplementation(((file: fs.PathLike, ...rest: unknown[]) => {
      opened.push(String(file));
      return open(file, ...(rest as [number]));
    }) as typeof fs.openSync);
    try {
      await refused(
        name,
        new RegExp(`models/files-${label}/checkpoint.json is corrupt: files\\[0\\] is not a plain file name inside the model directory`),
      );
    } finally {
      spy.mockRestore();
    }
    expect(opened.some((f) => f.endsWith(CHECKPOINT_FILE))).toBe(true); // the spy sees model-dir.ts' opens
    expect(opened.filter((f) => !f.endsWith(CHECKPOINT_FILE))).toEqual([]);
  });

  it("files not the implementation's own (an extra name): exit 2", async () => {
    const name = spoiled('scratch', 'files-extra', (dir) =>
      editMeta(dir, (meta) => {
        meta.files = [...meta.files, 'notes.txt'];
      }),
    );
    await refused(name, /files must list weights.json and weights.bin/);
  });
});

describe('checkpoint.json checked field by field', () => {
  it('history[].perplexity a string: exit 2 naming the field (not a TypeError, exit 1)', async () => {
    const name = spoiled('scratch', 'perplexity-string', (dir) =>
      editMeta(dir, (meta) => {
        meta.history[0].perplexity = 'lots';
      }),
    );
    const line = await refused(
      name,
      /models\/perplexity-string\/checkpoint.json is corrupt: history\[0\].perplexity must be a finite number/,
    );
    expect(line).not.toContain('lots');
  });

  // biome-ignore lint/suspicious/noExplicitAny: a hostile edit writes any value into any field
  it.each<[string, (meta: Record<string, any>) => void, RegExp]>([
    ['a fractional hidden size', (m) => (m.model.hidden = 8.5), /model.hidden must be a whole number >= 1/],
    ['a vocabulary entry of two characters', (m) => (m.vocab[0] = 'ab'), /vocab\[0\] must be a single character/],
    ['a repeated vocabulary character', (m) => (m.vocab[1] = m.vocab[0]), /vocab\[1\] repeats an earlier character/],
    ['a vocabulary of the wrong length', (m) => m.vocab.pop(), /vocab has \d+ characters, model.vocabSize says \d+/],
    ['a negative epoch', (m) => (m.epoch = -1), /epoch must be a whole number >= 0/],
    ['a batch size of zero', (m) => (m.train.batchSize = 0), /train.batchSize must be a whole number >= 1/],
    ['a history entry that is not an object', (m) => (m.history[0] = 3), /history\[0\] must be an object/],
    ['versions of numbers', (m) => (m.versions = { tfjs: 4 }), /versions must be an object of strings/],
    ['an unknown impl', (m) => (m.model.impl = 'gru'), /model.impl must be "scratch" or "builtin"/],
  ])('%s: exit 2, one line naming the field', async (_what, edit, pattern) => {
    const name = spoiled('scratch', `field-${_what.replace(/\W+/g, '-')}`, (dir) => editMeta(dir, edit));
    await refused(name, pattern);
  });

  it('a 50 GB (sparse) checkpoint.json: exit 2 at once, without reading it', async () => {
    const name = spoiled('scratch', 'huge-meta', (dir) => fs.truncateSync(path.join(dir, CHECKPOINT_FILE), 50 * 1024 ** 3));
    const started = Date.now();
    await refused(name, /cannot read models\/huge-meta\/checkpoint.json: is larger than 1 MiB \(53687091200 bytes\)/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a 50 MB checkpoint.json of real bytes: exit 2, its content not quoted', async () => {
    const name = spoiled('scratch', 'big-meta', (dir) => fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), '{"x":"'.padEnd(50e6, 'A')));
    const line = await refused(name, /cannot read models\/big-meta\/checkpoint.json: is larger than 1 MiB/);
    expect(line).not.toContain('AAAA');
  });

  it('checkpoint.json not JSON: says so without quoting it (a JSON parser quotes what it failed on)', async () => {
    const name = spoiled('scratch', 'not-json', (dir) => fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), passwd));
    const line = await refused(name, /cannot read models\/not-json\/checkpoint.json: not valid JSON$/);
    for (const l of passwdLines) expect(line).not.toContain(l);
  });
});

describe('the model files checked against the checkpoint before anything is built', () => {
  it('a builtin model.json with an LSTM of 12,000 units: exit 2 in seconds, in little memory (a real process)', () => {
    const name = spoiled('builtin', 'units-12000', (dir) => {
      const file = path.join(dir, 'model.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      const lstm = json.modelTopology.config.layers.find((l: { class_name: string }) => l.class_name === 'LSTM');
      lstm.config.units = 12000;
      fs.writeFileSync(file, JSON.stringify(json));
    });
    // The child's peak RSS, written on exit to a file (stderr must stay one line).
    const rssFile = path.join(tempDir(), 'rss');
    const reporter = writeFile(
      tempDir(),
      'rss.js',
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));`,
    );
    const started = Date.now();
    const r = spawnCli(generate(name), { cwd, timeout: 60_000, nodeArgs: ['--require', reporter] });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `lstm-lyrics: model in models/${name} is corrupt: model.json layer 2 must be an LSTM of 8 units named lstm (the checkpoint's cell and hidden size)`,
    ]);
    const maxRssKb = Number(fs.readFileSync(rssFile, 'utf8'));
    expect(maxRssKb).toBeLessThan(600 * 1024); // 2.5 GB before the check
  });

  it('a checkpoint and model.json both saying 12,000 hidden units: refused by the memory budget before any file is read', async () => {
    const name = spoiled('builtin', 'hidden-12000', (dir) => editMeta(dir, (meta) => (meta.model.hidden = 12000)));
    await refused(
      name,
      /checkpoint.json is corrupt: a model of \d+ characters, 1 lstm layer and 12000 hidden units needs at least [\d.]+ GB, more than/,
    );
  });

  it('a weight shape in the manifest that disagrees with the checkpoint: exit 2', async () => {
    const name = spoiled('scratch', 'bad-shape', (dir) => {
      const file = path.join(dir, 'weights.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      json.weightsManifest[0].weights[0].shape = [3, 3];
      fs.writeFileSync(file, JSON.stringify(json));
    });
    await refused(name, /model in models\/bad-shape is corrupt: weights.json weight W_xi has shape \[3,3\], expected \[\d+,8\]/);
  });

  describe.each(['scratch', 'builtin'] as const)('%s weights.bin', (impl) => {
    it.each([
      ['one byte short', -1],
      ['one byte long', 1],
    ])('%s: exit 2 naming both lengths', async (what, delta) => {
      const name = spoiled(impl, `${impl}-${what.replace(/ /g, '-')}`, (dir) => {
        const file = path.join(dir, 'weights.bin');
        const bytes = fs.readFileSync(file);
        fs.writeFileSync(file, delta < 0 ? bytes.subarray(0, bytes.length - 1) : Buffer.concat([bytes, Buffer.from([0])]));
      });
      const size = fs.statSync(path.join(models, impl, 'weights.bin')).size;
      await refused(name, new RegExp(`model in models/${name} is corrupt: weights.bin has ${size + delta} bytes, expected ${size}$`));
    });

    it.each([
      ['NaN', Number.NaN],
      ['infinity', Number.POSITIVE_INFINITY],
    ])('%s in the weights: exit 2', async (what, value) => {
      const name = spoiled(impl, `${impl}-${what}`, (dir) => {
        const file = path.join(dir, 'weights.bin');
        const bytes = fs.readFileSync(file);
        bytes.writeFloatLE(value, 12);
        fs.writeFileSync(file, bytes);
      });
      await refused(name, /weights.bin holds a non-finite value \(NaN or infinity\) at float 3/);
    });
  });
});

describe('--resume goes through the same check', () => {
  const resume = (out: string) => ['train', ...TINY, '--corpus', 'song.txt', '--out', `models/${out}`, '--resume', '--epochs', '2'];

  it('a string perplexity: exit 2 with the same line as generate, the model untouched', async () => {
    const name = spoiled('scratch', 'resume-perplexity', (dir) =>
      editMeta(dir, (meta) => {
        meta.history[0].perplexity = 'lots';
      }),
    );
    const before = snapshot(path.join(models, name)); // not all of models/: it holds FIFOs and links to /dev/zero
    const r = await run(resume(name));
    expect(r.code).toBe(2);
    expect(r.err).toEqual([`lstm-lyrics: models/${name}/checkpoint.json is corrupt: history[0].perplexity must be a finite number`]);
    expect(snapshot(path.join(models, name))).toEqual(before);
  });

  it('a weights.bin one byte short: exit 2, the model untouched', async () => {
    const name = spoiled('scratch', 'resume-short', (dir) => {
      const file = path.join(dir, 'weights.bin');
      fs.truncateSync(file, fs.statSync(file).size - 1);
    });
    const before = snapshot(path.join(models, name)); // not all of models/: it holds FIFOs and links to /dev/zero
    const r = await run(resume(name));
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/model in models\/resume-short is corrupt: weights.bin has \d+ bytes, expected \d+$/);
    expect(snapshot(path.join(models, name))).toEqual(before);
  });

  it('a valid model resumes', async () => {
    const name = spoiled('scratch', 'resume-ok', () => undefined);
    const r = await run(resume(name));
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
  });
});

describe('the core parse the page and the server listing call', () => {
  it('refuses a string perplexity with a UsageError naming the field, so one bad model does not break a list', () => {
    const bytes = fs.readFileSync(path.join(models, 'scratch', CHECKPOINT_FILE));
    const meta = JSON.parse(bytes.toString('utf8'));
    expect(parseCheckpointMeta(bytes, 'scratch/checkpoint.json').history).toEqual(meta.history);
    meta.history[0].perplexity = 'x';
    const bad = () => parseCheckpointMeta(Buffer.from(JSON.stringify(meta)), 'scratch/checkpoint.json');
    expect(bad).toThrow(UsageError);
    expect(bad).toThrow('scratch/checkpoint.json is corrupt: history[0].perplexity must be a finite number');
  });

  it('a format string is named only when it looks like one', () => {
    const bytes = (format: unknown) => Buffer.from(JSON.stringify({ format }));
    expect(() => parseCheckpointMeta(bytes('lstm-lyrics/9'), 'm')).toThrow(
      'm is not a model this version can read (format "lstm-lyrics/9"',
    );
    expect(() => parseCheckpointMeta(bytes('root:x:0:0:root:/root:/bin/bash'), 'm')).toThrow('(format an unknown string,');
  });
});
