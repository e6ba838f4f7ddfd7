/**
 * The PyTorch version of the lesson, run as a child process for `bench --reference`: whether the
 * interpreter can run it, the environment it runs in, and the one result line it prints.
 *
 * Apart from the CLI because it is Node shell work (spawning Python, reading its output), not
 * option wiring: the command only decides when to call it and how to print what comes back.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Impl } from '../core/config';

/** The package root: the reference script's default path is relative to it, not to the cwd. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_REFERENCE_SCRIPT = path.resolve(PACKAGE_ROOT, '..', 'shared', 'reference', 'seed_lstm.py');
/**
 * Set on these machines and slowing OpenBLAS down (a wrong core type, a small L2): removed from the
 * reference child's environment only, never from ours.
 */
export const OPENBLAS_VARS_UNSET = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/** The reference script's last line, parsed. */
export interface ReferenceResult {
  readonly impl: string;
  readonly vocab: number;
  readonly epochs: number;
  readonly medianEpochSeconds: number;
  readonly totalSeconds: number;
  readonly finalPerplexity: number;
}

/** Parses `RESULT impl=... vocab=... ...` from the reference script's output (its last such line). */
export function parseResultLine(stdout: string): ReferenceResult | undefined {
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('RESULT '));
  if (!line) return undefined;
  const f = Object.fromEntries(
    line
      .slice(7)
      .trim()
      .split(/\s+/)
      .map((kv) => kv.split('=', 2)),
  );
  const num = (k: string) => Number(f[k]);
  const result = {
    impl: f.impl,
    vocab: num('vocab'),
    epochs: num('epochs'),
    medianEpochSeconds: num('median_epoch_s'),
    totalSeconds: num('total_s'),
    finalPerplexity: num('final_perplexity'),
  };
  return result.impl && Number.isFinite(result.medianEpochSeconds) ? result : undefined;
}

/**
 * Whether `python` can run the reference: undefined when it can, else why not (one line).
 * Checked before training, so a missing interpreter costs seconds, not a whole benchmark.
 */
export function referenceProblem(python: string, script: string): string | undefined {
  if (!fs.existsSync(script)) return `${script} not found (see --reference-script)`;
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', env: referenceEnv() });
  if (probe.error) return `cannot run ${python}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message} (see --python)`;
  if (probe.status !== 0) {
    return `${python} cannot import torch: PyTorch is not installed for it; see README, 'lstm-lyrics bench' (--reference, --python)`;
  }
  return undefined;
}

/** Our environment without OPENBLAS_VARS_UNSET: for the reference child process only. */
export function referenceEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of OPENBLAS_VARS_UNSET) delete copy[name];
  return copy;
}

/** Runs the PyTorch lesson for `epochs` epochs and parses its result. */
export function runReference(python: string, script: string, corpusPath: string, impl: Impl, epochs: number): ReferenceResult {
  // REPORT_EVERY 1000: never samples text inside the timed epochs.
  const run = spawnSync(python, [script, corpusPath, impl, String(epochs), '1000'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: referenceEnv(),
  });
  const result = run.status === 0 ? parseResultLine(run.stdout) : undefined;
  if (!result) {
    const why = run.error?.message ?? (run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${script} ${impl} failed (exit ${run.status}): ${why}`);
  }
  return result;
}
