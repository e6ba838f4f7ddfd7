/** Shared test fixtures: temp dirs, tiny corpora, and the backend the suite runs on. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import AdmZip from 'adm-zip';
import * as tf from '@tensorflow/tfjs';
import chalk from 'chalk';
import { setAccel } from '../src/accel';
import { selectBackend } from '../src/backend/select';
import { main, type Io } from '../src/cli/main';
import { noProgress } from '../src/ui/progress';

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

/** A short repetitive lyric: learnable in a few epochs, so perplexity must fall fast. */
export const REPETITIVE_LYRIC = '不分开 我们一起唱歌 分开了 就不要再说爱 '.repeat(40);

/** The suite runs on wasm, the backend users get on machines without native TensorFlow, with the speed-ups on. */
export async function useWasm(): Promise<void> {
  if (tf.getBackend() !== 'wasm') await selectBackend('wasm');
  setAccel({ setting: 'on' });
}

export async function onBackend<T>(name: 'cpu' | 'wasm', fn: () => T | Promise<T>): Promise<T> {
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
 * status and the stdout/stderr split are tested with spawned processes.)
 */
export async function runCli(argv: readonly string[], cwd?: string): Promise<{ code: number; out: string[]; err: string[] }> {
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
