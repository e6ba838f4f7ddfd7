/**
 * A one-line progress bar (epoch, batch, last perplexity, ETA) on stderr, drawn only on a TTY:
 * in CI or when piped, output stays the lesson's plain lines.
 */
export interface Progress {
  update(epoch: number, epochs: number, batch: number, batches: number, perplexity?: number): void;
  /** Erases the bar so a normal line can be printed. */
  clear(): void;
}

export const noProgress: Progress = { update: () => {}, clear: () => {} };

interface Terminal {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): boolean;
}

/** A bar on `stream` when it is a terminal and CI is not set; otherwise nothing. */
export function progressFor(stream: Terminal, env: NodeJS.ProcessEnv = process.env): Progress {
  if (!stream.isTTY || env.CI) return noProgress;
  const started = Date.now();
  let startBatches: number | undefined;
  let drawn = false;
  return {
    update(epoch, epochs, batch, batches, perplexity) {
      const done = (epoch - 1) * batches + batch;
      startBatches ??= done - 1;
      const total = epochs * batches;
      const perBatch = (Date.now() - started) / Math.max(1, done - startBatches);
      const width = 24;
      const filled = Math.round((width * done) / total);
      const ppl = perplexity === undefined ? '' : `  perplexity ${perplexity.toFixed(2)}`;
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] epoch ${epoch}/${epochs} batch ${batch}/${batches}${ppl}  ETA ${formatSeconds((perBatch * (total - done)) / 1000)}`;
      stream.write(`\r${line.slice(0, (stream.columns ?? 100) - 1)}\x1b[K`);
      drawn = true;
    },
    clear() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
