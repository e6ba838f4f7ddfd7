/**
 * How many wasm compute threads `--threads auto` (the default of train, compare and bench) uses:
 * the cores nobody else is using, going by the last minute's load average, at most
 * MAX_AUTO_THREADS. Two threads speed training up on an idle 2-core machine, but when another
 * process holds the second core they are slower than one (the pool waits for a thread the OS has
 * not scheduled), so a busy machine gets one. Results do not depend on the count (tested).
 */
import * as os from 'os';

/** Beyond this XNNPACK's gain on the lesson's [32, 256]·[256, 1024] matmuls is small. */
export const MAX_AUTO_THREADS = 4;

export type ThreadsSetting = number | 'auto';

export interface ThreadsChoice {
  readonly threads: number;
  /** Why, for the backend line: e.g. "auto: 2 cores, load 0.1". */
  readonly why?: string;
}

export function resolveThreads(setting: ThreadsSetting, cores = os.cpus().length, load = os.loadavg()[0]): ThreadsChoice {
  if (setting !== 'auto') return { threads: setting };
  const idle = Math.round(cores - load);
  return { threads: Math.max(1, Math.min(MAX_AUTO_THREADS, cores, idle)), why: `auto: ${cores} cores, load ${load.toFixed(1)}` };
}
