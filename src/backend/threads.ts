/**
 * How many wasm compute threads `--threads auto` (the default of train, compare and bench) uses:
 * the cores found idle while sampling the kernel's per-core time counters for a quarter of a
 * second at start-up, at most MAX_AUTO_THREADS. Two threads speed training up on an idle 2-core
 * machine, but when another process holds the second core they are slower than one (the pool
 * waits for a thread the OS has not scheduled), so a busy machine gets one. (The load average
 * would lag by a minute: a training that has just ended would still count as busy.) Results do
 * not depend on the count (tested).
 */
import * as os from 'node:os';

/** Beyond this XNNPACK's gain on the lesson's [32, 256]·[256, 1024] matmuls is small. */
export const MAX_AUTO_THREADS = 4;
/** How long auto samples the cores' idle time. */
export const IDLE_SAMPLE_MS = 250;

export type ThreadsSetting = number | 'auto';

export interface ThreadsChoice {
  readonly threads: number;
  /** Why, for the backend line: e.g. "auto: 2.0 of 2 cores idle". */
  readonly why?: string;
}

/**
 * A number as given; for auto, one thread per idle core (a core counts from three quarters idle),
 * at least 1 and at most MAX_AUTO_THREADS. `idle` (cores' worth of idle time) is measured unless given.
 */
export async function resolveThreads(setting: ThreadsSetting, cores = os.cpus().length, idle?: number): Promise<ThreadsChoice> {
  if (setting !== 'auto') return { threads: setting };
  const free = idle ?? (await idleCores());
  return {
    threads: Math.max(1, Math.min(MAX_AUTO_THREADS, cores, Math.floor(free + 0.25))),
    why: `auto: ${free.toFixed(1)} of ${cores} cores idle`,
  };
}

/**
 * Cores' worth of time over the next `ms` milliseconds (0 to the number of cores) that other
 * processes leave free: idle time plus this process' own. Our own start-up work (V8 compiles the
 * wasm module on background threads while this samples) must not count as a busy machine: without
 * it an idle 2-core machine measured 1.6-1.7 cores idle here and got one thread.
 */
export async function idleCores(ms = IDLE_SAMPLE_MS): Promise<number> {
  const sum = () => {
    const cpus = os.cpus();
    let idle = 0;
    let all = 0;
    for (const { times: t } of cpus) {
      idle += t.idle;
      all += t.user + t.nice + t.sys + t.idle + t.irq;
    }
    return { idle, all, cores: cpus.length };
  };
  const ownMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const before = sum();
  const ownBefore = ownMs();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = sum();
  const free = after.idle - before.idle + (ownMs() - ownBefore);
  const all = after.all - before.all;
  return all > 0 ? Math.min(after.cores, Math.max(0, (after.cores * free) / all)) : after.cores;
}
