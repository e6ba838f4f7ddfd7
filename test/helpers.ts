/**
 * Shared test fixtures: temp dirs, tiny corpora and training flags, the backend the suite runs on,
 * the CLI run in this process or spawned, directory snapshots, and seeded random numbers.
 *
 * The CLI's modules and TensorFlow.js load on first use, so a test file that needs neither (the
 * terminal's, the kernels') does not pay for them by importing this one.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import type { Io } from '../src/cli/main';
import type { Impl } from '../src/core/config';
import type { LanguageModel } from '../src/core/models';
import type { Corpus } from '../src/core/vocab';

const tempDirs: string[] = [];

/** A fresh directory, removed when the test file that asked for it is done. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lstm-lyrics-test-'));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export function writeFile(dir: string, name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

export function writeZip(dir: string, name: string, entries: Record<string, string>): string {
  const zip = new AdmZip();
  for (const [entry, text] of Object.entries(entries)) zip.addFile(entry, Buffer.from(text, 'utf8'));
  const file = path.join(dir, name);
  zip.writeZip(file);
  return file;
}

/**
 * Every file under `dir` with the hash of its contents, and every directory (as `name/`), keyed by
 * the path relative to `dir`: equal snapshots before and after a command prove it changed nothing.
 */
export function snapshot(dir: string): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (at: string) => {
    for (const e of fs.readdirSync(at, { withFileTypes: true })) {
      const p = path.join(at, e.name);
      if (e.isDirectory()) {
        found[`${path.relative(dir, p)}/`] = 'dir';
        walk(p);
      } else found[path.relative(dir, p)] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return found;
}

/** A short repetitive lyric: learnable in a few epochs, so perplexity must fall fast. */
export const REPETITIVE_LYRIC = '不分开 我们一起唱歌 分开了 就不要再说爱 '.repeat(40);

/**
 * Training flags for a run that does every step (batches, report, save) in as little time as
 * possible: for tests of what happens around training, not of what it learns. Add --corpus and
 * --out; a flag given again later wins, so put TINY first (`...TINY, '--epochs', '3'`).
 */
export const TINY = [
  '--hidden',
  '8',
  '--batch-size',
  '4',
  '--num-steps',
  '8',
  '--epochs',
  '1',
  '--max-chars',
  '200',
  '--pred-len',
  '2',
  '--backend',
  'wasm',
];

/**
 * `n` deterministic floats spread over [lo, hi) (a linear congruential generator from `seed`), so
 * that results do not depend on the run.
 */
export function randomFloats(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

/** The WebAssembly JS API (the tests' TypeScript lib has no DOM, where it is declared). */
export const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared?: boolean }) => { buffer: ArrayBufferLike };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** The suite runs on wasm, the backend users get on machines without native TensorFlow, with the speed-ups on. */
export async function useWasm(): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { selectBackend } = await import('../src/backend/select');
  const { setAccel } = await import('../src/accel');
  if (tf.getBackend() !== 'wasm') await selectBackend('wasm');
  setAccel({ setting: 'on' });
}

export async function onBackend<T>(name: 'cpu' | 'wasm', fn: () => T | Promise<T>): Promise<T> {
  const tf = await import('@tensorflow/tfjs');
  const before = tf.getBackend();
  await tf.setBackend(name);
  try {
    return await fn();
  } finally {
    await tf.setBackend(before);
  }
}

/**
 * Runs the CLI in this process, as `lstm-lyrics ARGV` would in `cwd`, capturing what it prints:
 * for argument errors and results, where a real process adds nothing. (Signals, the real exit
 * status and the stdout/stderr split are tested with spawned processes: spawnCli, startCli.)
 */
export async function runCli(argv: readonly string[], cwd?: string): Promise<{ code: number; out: string[]; err: string[] }> {
  const { main } = await import('../src/cli/main');
  const { noProgress } = await import('../src/terminal/progress');
  const { default: chalk } = await import('chalk');
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = {
    out: { info: (l) => void out.push(l) },
    err: { info: (l) => void err.push(l) },
    progress: noProgress,
    errColors: new chalk.Instance({ level: 0 }),
    stop: new AbortController().signal,
  };
  const before = process.cwd();
  if (cwd) process.chdir(cwd);
  try {
    return { code: await main(argv, io), out, err };
  } finally {
    process.chdir(before);
  }
}

/** The CLI as users run it (needs the build: `npm test` builds first). */
export const CLI = path.resolve(__dirname, '..', 'bin', 'lstm-lyrics.js');

export interface SpawnOptions {
  readonly cwd?: string;
  /** Added to this process' environment, in which NO_COLOR is set (FORCE_COLOR overrides it). */
  readonly env?: NodeJS.ProcessEnv;
  /** Options for node before the CLI's path, e.g. `['--require', file]` to set a seam first. */
  readonly nodeArgs?: readonly string[];
}

const spawnArgs = (args: readonly string[], options: SpawnOptions) => ({
  argv: [...(options.nodeArgs ?? []), CLI, ...args],
  env: { ...process.env, NO_COLOR: '1', ...options.env },
});

/**
 * Runs `lstm-lyrics ARGS` as a separate process and waits for it. After `timeout` ms (default
 * 100 s, under jest's limit) it is killed with SIGKILL: a command that hangs fails its test
 * instead of hanging the suite.
 */
export function spawnCli(args: readonly string[], options: SpawnOptions & { readonly timeout?: number } = {}): SpawnSyncReturns<string> {
  const { argv, env } = spawnArgs(args, options);
  return spawnSync(process.execPath, argv, {
    cwd: options.cwd,
    env,
    encoding: 'utf8',
    timeout: options.timeout ?? 100_000,
    killSignal: 'SIGKILL',
  });
}

export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves true once what it printed on stdout matches `pattern`; false if it ends first. */
  printed(pattern: RegExp): Promise<boolean>;
  /** Resolves once it has ended: its exit code (null when a signal ended it) and all it printed. */
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `lstm-lyrics ARGS` as a separate process, for a test that signals or kills it. */
export function startCli(args: readonly string[], options: SpawnOptions = {}): CliProcess {
  const { argv, env } = spawnArgs(args, options);
  const child = spawn(process.execPath, argv, { cwd: options.cwd, env });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  let stdout = '';
  let stderr = '';
  let ended = false;
  let waiting: { pattern: RegExp; settle: (matched: boolean) => void }[] = [];
  child.stdout.on('data', (d: string) => {
    stdout += d;
    const matched = waiting.filter((w) => w.pattern.test(stdout));
    waiting = waiting.filter((w) => !matched.includes(w));
    for (const w of matched) w.settle(true);
  });
  child.stderr.on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      ended = true;
      for (const w of waiting.splice(0)) w.settle(false);
      resolve({ code, stdout, stderr });
    }),
  );
  const printed = (pattern: RegExp) =>
    pattern.test(stdout)
      ? Promise.resolve(true)
      : ended
        ? Promise.resolve(false)
        : new Promise<boolean>((settle) => waiting.push({ pattern, settle }));
  return { child, printed, exited };
}

/**
 * A one-layer LSTM of 16 units trained `epochs` epochs on `corpus` with its impl's lesson optimizer
 * (tiny windows, a loose clip), so its greedy text is not one character repeated.
 */
export async function trainedModel(impl: Impl, corpus: Corpus, epochs: number): Promise<LanguageModel> {
  const { DEFAULT_OPTIMIZER, DEFAULT_TRAIN, LEGACY_MODEL } = await import('../src/core/config');
  const { createModel } = await import('../src/core/models');
  const { train } = await import('../src/core/train');
  const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 16 }, 2);
  const config = {
    ...DEFAULT_TRAIN,
    ...DEFAULT_OPTIMIZER[impl],
    corpus: 'test',
    epochs,
    batchSize: 4,
    numSteps: 8,
    clip: 1,
    lr: impl === 'scratch' ? 10 : 0.01,
    prefixes: [],
    predLen: 0,
    reportEvery: 10,
  };
  await train(model, corpus, config);
  return model;
}

/**
 * A stand-in Python interpreter at DIR/NAME: it passes the torch probe (`-c ...`), then runs
 * `lines` of shell, which see the reference script and its arguments as $1, $2, ...
 */
export function fakePython(dir: string, name: string, lines: readonly string[]): string {
  const file = writeFile(dir, name, `${['#!/bin/sh', 'if [ "$1" = -c ]; then exit 0; fi', ...lines].join('\n')}\n`);
  fs.chmodSync(file, 0o755);
  return file;
}
