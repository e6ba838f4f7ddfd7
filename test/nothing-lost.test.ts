/**
 * Nothing lost, nothing hung: every path the CLI writes is checked before the long work, nothing
 * that is not the CLI's own is replaced, a failed save leaves no partial files and says what is
 * unchanged, one run at a time per model directory, memory bounded by the settings. Spawns the
 * real CLI, as a user (or a CI job) runs it; the full disk is a seam of the save (setSaveSeams),
 * so those runs are in this process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { MAX_TEXT_BYTES } from '../src/node/corpus-file';
import { setSaveSeams } from '../src/node/model-dir';
import { REPETITIVE_LYRIC, TINY, runCli, snapshot as snapshotOf, spawnCli, startCli, tempDir, useWasm, writeFile } from './helpers';

const cwd = tempDir();
const TRAIN = ['--corpus', 'song.txt', ...TINY];
// SIGKILL after a minute: a command that hangs (as serve --export on /proc once did, ignoring
// SIGTERM) fails its test instead of hanging the suite.
const run = (args: string[]) => spawnCli(args, { cwd, timeout: 60_000 });
const train = (...args: string[]) => ['train', ...TRAIN, ...args];

/** Every file under the test's directory with its hash (and every directory): what must not change. */
const snapshot = () => snapshotOf(cwd);

/** Exit code, and stderr as exactly one `lstm-lyrics: ...` line matching `pattern`. */
function expectOneLine(r: { status: number | null; stderr: string }, status: number, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  expect({ status: r.status, lines }).toEqual({ status, lines: [expect.stringMatching(pattern)] });
  expect(lines[0]).toMatch(/^lstm-lyrics: /);
}

beforeAll(() => {
  writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
  writeFile(cwd, 'notes.txt', 'my notes, not a model\n');
  fs.mkdirSync(path.join(cwd, 'photos'));
  writeFile(cwd, 'photos/cat.jpg', 'not really a cat');
  fs.mkdirSync(path.join(cwd, 'a-directory'));
  fs.mkdirSync(path.join(cwd, 'cmp/scratch'), { recursive: true });
  writeFile(cwd, 'cmp/scratch/readme.txt', 'mine');
  // A zip bomb: one repeated line, more than MAX_TEXT_BYTES unpacked, a few hundred KB packed.
  const line = Buffer.from(`${REPETITIVE_LYRIC.slice(0, 24)}\n`);
  const zip = new AdmZip();
  zip.addFile('lyrics.txt', Buffer.alloc(MAX_TEXT_BYTES + 1_000_000, line));
  zip.writeZip(path.join(cwd, 'bomb.zip'));
});

describe('paths checked before any training: exit 2, one line on stderr, every file around unchanged', () => {
  const cases: [string, string[], RegExp][] = [
    ['train --out naming an existing file', train('--out', 'notes.txt'), /--out notes.txt is a file, not a model directory$/],
    ['train --out in a place that cannot be written', train('--out', '/proc/lstm-test'), /--out \/proc\/lstm-test cannot be written \(/],
    [
      'train --out a directory that holds no model',
      train('--out', 'photos'),
      /--out photos is a directory that holds no model \(1 entry, no checkpoint.json\)/,
    ],
    ['train --out under a file', train('--out', 'notes.txt/model'), /--out notes.txt\/model cannot be written: .*notes.txt is a file/],
    [
      'train --metrics naming a directory',
      train('--out', 'models/m', '--metrics', 'a-directory'),
      /--metrics a-directory is a directory, not a file$/,
    ],
    [
      'train --metrics in a place that cannot be written',
      train('--out', 'models/m', '--metrics', '/proc/lstm-test.jsonl'),
      /--metrics \/proc\/lstm-test.jsonl cannot be written/,
    ],
    ['compare --out naming a file', ['compare', ...TRAIN, '--out', 'notes.txt'], /--out notes.txt is a file, not a directory$/],
    [
      'compare --out whose model directory would replace other things',
      ['compare', ...TRAIN, '--out', 'cmp'],
      /--out cmp\/scratch is a directory that holds no model/,
    ],
    [
      'compare --out in a place that cannot be written',
      ['compare', ...TRAIN, '--out', '/proc/lstm-test'],
      /--out \/proc\/lstm-test cannot be written/,
    ],
    [
      'corpus fetch --dir naming a file',
      ['corpus', 'fetch', 'jaychou', '--dir', 'notes.txt', '--url', 'http://127.0.0.1:9/x'],
      /--dir notes.txt is a file, not a directory$/,
    ],
    [
      'corpus fetch --dir in a place that cannot be written',
      ['corpus', 'fetch', 'jaychou', '--dir', '/proc/lstm-test', '--url', 'http://127.0.0.1:9/x'],
      /--dir \/proc\/lstm-test cannot be written/,
    ],
    ['serve --export naming a file', ['serve', '--export', 'notes.txt'], /--export notes.txt is a file, not a directory$/],
    [
      'serve --export in a place that cannot be written',
      ['serve', '--export', '/proc/lstm-test'],
      /--export \/proc\/lstm-test cannot be written/,
    ],
    [
      'a --hidden whose weights cannot fit',
      train('--out', 'models/huge', '--hidden', '60000'),
      /--hidden 60000 is too large: training needs at least [\d.]+ GB \([\d,]+ parameters .*\), and the wasm backend holds at most 4 GiB/,
    ],
    [
      'a zip whose entry unpacks to more than the limit, read whole (--max-chars 0)',
      train('--out', 'models/bomb', '--corpus', 'bomb.zip', '--max-chars', '0'),
      /bomb.zip:lyrics.txt unpacks to more than 32 MiB \([\d,]+ bytes packed, [\d,]+ bytes declared\); with --max-chars 0 a corpus text may be at most 32 MiB/,
    ],
  ];

  it.each(cases)('%s', (_what, args, pattern) => {
    const before = snapshot();
    const started = Date.now();
    const r = run(args);
    expectOneLine(r, 2, pattern);
    expect(Date.now() - started).toBeLessThan(30_000); // refused at start, not after training or hanging
    expect(snapshot()).toEqual(before);
  });
});

describe('--out with a trailing slash (as shells complete it)', () => {
  it('saves, and saves again over it, as without one', () => {
    expect(run(train('--out', 'models/slashed/')).status).toBe(0);
    const again = run(train('--out', 'models/slashed/', '--resume', '--epochs', '2'));
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(fs.readdirSync(path.join(cwd, 'models/slashed')).sort()).toEqual([
      'checkpoint.json',
      'optimizer.bin',
      'weights.bin',
      'weights.json',
    ]);
  });
});

describe('memory bounded by the settings, not by the input', () => {
  it('a 2 MB-style zip bomb trains on the first --max-chars characters, quickly', () => {
    const started = Date.now();
    const r = run(train('--out', 'models/from-bomb', '--corpus', 'bomb.zip', '--max-chars', '2000'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/2,000 training characters/);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe('a failed save (disk full): exit 1, one line naming what failed and what is unchanged, no partial files', () => {
  beforeAll(useWasm);

  /**
   * Runs the CLI in this process with every model file written after the first `files` failing
   * half-way with ENOSPC, as on a full disk; stderr as a process would print it.
   */
  async function withDiskFullAfter(files: number, args: string[]): Promise<{ status: number; stderr: string }> {
    let written = 0;
    const restore = setSaveSeams({
      write(fd, bytes) {
        if (written++ < files) return void fs.writeSync(fd, bytes);
        fs.writeSync(fd, bytes.subarray(0, bytes.length >> 1));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    });
    try {
      const r = await runCli(args, cwd);
      return { status: r.code, stderr: r.err.map((l) => `${l}\n`).join('') };
    } finally {
      restore();
    }
  }

  it('with a previous model: that model is byte-identical afterwards', async () => {
    expect((await runCli(train('--out', 'models/full'), cwd)).code).toBe(0);
    const before = snapshot();
    const r = await withDiskFullAfter(1, train('--out', 'models/full', '--seed', '7'));
    expectOneLine(
      r,
      1,
      /^lstm-lyrics: error: cannot save the model to models\/full: ENOSPC: no space left on device, write \(models\/full.tmp\/\S+\); the previous model in models\/full is unchanged$/,
    );
    expect(snapshot()).toEqual(before);
  });

  it('without one: nothing is left behind', async () => {
    const before = snapshot();
    const r = await withDiskFullAfter(0, train('--out', 'models/new/first', '--metrics', 'first.jsonl'));
    expectOneLine(r, 1, /cannot save the model to models\/new\/first: ENOSPC: .*; nothing was saved$/);
    // The metrics file (its epoch line) is the one thing the run leaves: no model, no .tmp, no lock.
    expect(Object.keys(snapshot()).filter((f) => !(f in before))).toEqual(['first.jsonl']);
  });
});

describe('a failed write of --metrics (a real full disk: /dev/full)', () => {
  it('exit 1, one line naming the file and what is saved, nothing left behind', () => {
    const before = snapshot();
    const r = run(train('--out', 'models/metrics-full', '--metrics', '/dev/full'));
    expectOneLine(
      r,
      1,
      /^lstm-lyrics: error: cannot write --metrics \/dev\/full: ENOSPC: no space left on device, write; no model was saved$/,
    );
    expect(snapshot()).toEqual(before);
  });
});

/** Spawns a long run of train; `started` resolves once it has started training (it holds the lock then). */
function startLongRun(out: string) {
  const run = startCli(train('--epochs', '100000', '--report-every', '100000', '--out', out), { cwd });
  return { child: run.child, started: run.printed(/^training /m), exited: run.exited };
}

describe('one run at a time per --out', () => {
  it('of three runs started at once with the same --out, one trains; the others refuse at start, naming it', async () => {
    const runs = [0, 1, 2].map(() => startLongRun('models/shared'));
    const outcomes = await Promise.all(runs.map((r) => r.started));
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    const winner = runs[outcomes.indexOf(true)];
    for (const loser of runs.filter((r) => r !== winner)) {
      const { code, stderr } = await loser.exited;
      expectOneLine(
        { status: code, stderr },
        2,
        new RegExp(
          `--out models/shared is in use by another run \\(pid ${winner.child.pid}, started .*\\); wait for it to end, or pick another --out \\(if pid ${winner.child.pid} is no lstm-lyrics run, remove .*models/shared.lock\\)$`,
        ),
      );
    }
    expect(fs.existsSync(path.join(cwd, 'models/shared.lock'))).toBe(true);
    // A second signal ends it at once; the lock goes with it.
    winner.child.kill('SIGTERM');
    winner.child.kill('SIGTERM');
    expect((await winner.exited).code).toBe(130);
    expect(fs.existsSync(path.join(cwd, 'models/shared.lock'))).toBe(false);
    expect(fs.readdirSync(path.join(cwd, 'models')).filter((f) => f.startsWith('shared.'))).toEqual([]);
  });

  it('a lock left by a process that died is taken over, and released at the end', () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    fs.mkdirSync(path.join(cwd, 'models'), { recursive: true });
    writeFile(cwd, 'models/stale.lock', JSON.stringify({ pid: dead, startedAt: '2026-01-01T00:00:00.000Z' }));
    writeFile(cwd, 'models/garbled.lock', '{"pid": 12');
    for (const out of ['models/stale', 'models/garbled']) {
      const r = run(train('--out', out));
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(fs.existsSync(path.join(cwd, `${out}.lock`))).toBe(false);
    }
  });

  it('compare takes both of its directories at start: one in use, it refuses before training either', () => {
    fs.mkdirSync(path.join(cwd, 'busy'), { recursive: true });
    writeFile(
      cwd,
      'busy/builtin.lock',
      JSON.stringify({ pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z', command: 'lstm-lyrics train' }),
    );
    const before = snapshot();
    const r = run(['compare', ...TRAIN, '--out', 'busy']);
    expectOneLine(
      r,
      2,
      new RegExp(
        `--out busy/builtin is in use by another run \\(pid ${process.pid}, started 2026-01-01T00:00:00.000Z: lstm-lyrics train\\)`,
      ),
    );
    expect(snapshot()).toEqual(before);
  });

  it('an interrupted run (first signal) saves, exits 130 and releases its lock', async () => {
    const r = startLongRun('models/interrupted');
    expect(await r.started).toBe(true);
    r.child.kill('SIGINT');
    const { code, stderr } = await r.exited;
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted in epoch \d+ after batch \d+; saved to models\/interrupted/);
    expect(fs.existsSync(path.join(cwd, 'models/interrupted.lock'))).toBe(false);
    expect(fs.existsSync(path.join(cwd, 'models/interrupted/checkpoint.json'))).toBe(true);
  });
});

describe('every signal ends the process within seconds', () => {
  it('SIGTERM during a download that has stalled: exit 130 within seconds, nothing left behind', async () => {
    // A server that sends headers and a few bytes, then nothing (the download's own timeout is 60 s).
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '52607' });
      res.write('PK');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const before = snapshot();
      const { child, exited } = startCli(['corpus', 'fetch', 'jaychou', '--dir', 'downloads/new', '--url', `http://127.0.0.1:${port}/x`], {
        cwd,
      });
      // Wait until the partial file exists, then stop it.
      const part = () =>
        fs.existsSync(path.join(cwd, 'downloads/new')) && fs.readdirSync(path.join(cwd, 'downloads/new')).some((f) => f.endsWith('.part'));
      for (let i = 0; i < 200 && !part(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(part()).toBe(true);
      const signalled = Date.now();
      child.kill('SIGTERM');
      const { code, stderr } = await exited;
      expect(code).toBe(130);
      expect(Date.now() - signalled).toBeLessThan(15_000); // STOP_GRACE_MS is 5 s
      expect(stderr).toMatch(/lstm-lyrics: SIGTERM: did not stop within 5 s; quitting without saving/);
      expect(snapshot()).toEqual(before);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
