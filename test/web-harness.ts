/**
 * One job: what every Chromium test of the page shares: finding Chromium (the tests skip, saying
 * so, only when none is installed; CI installs one), the CLI as a child process, `serve` on a
 * models folder, a plain static server, and a fresh page that records console errors.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { main, type Io } from '../src/cli/main';
import { contentTypeOf } from '../src/node/page-server';
import { colorsFor } from '../src/terminal/colors';
import { noProgress } from '../src/terminal/progress';

export const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'lstm-lyrics.js');
/** Generous: the page loads a 2 MB bundle and starts wasm on a busy 2-core machine. */
export const WAIT = 90_000;

function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  const onPath = spawnSync('sh', ['-c', 'command -v chromium || command -v chromium-browser || command -v google-chrome'], {
    encoding: 'utf8',
  }).stdout.trim();
  return [...candidates, onPath].find((c): c is string => !!c && fs.existsSync(c));
}

export const CHROMIUM = findChromium();

/** `describe` when Chromium is installed; otherwise `describe.skip`, after a warning naming the test file. */
export function describeIfChromium(file: string): jest.Describe {
  if (CHROMIUM) return describe;
  console.warn(`${file}: SKIPPED: no Chromium found (/usr/bin/chromium, CHROMIUM_PATH); install it with: apt-get install -y chromium`);
  return describe.skip;
}

/** Runs `lstm-lyrics ARGS` and returns its stdout; throws with its stderr if it fails. */
export function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`lstm-lyrics ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** What `lstm-lyrics generate` prints, less the final line break. */
export function cliGenerate(model: string, prefix: string, length: number, extra: string[] = []): string {
  return cli(['generate', '--model', model, '--prefix', prefix, '--length', String(length), '--backend', 'wasm', ...extra]).replace(
    /\n$/,
    '',
  );
}

/** An Io for main() that collects its lines and stops on `stop`. */
export function io(lines: string[], stop: AbortSignal): Io {
  const logger = { info: (l: string) => lines.push(l) };
  return { out: logger, err: logger, progress: noProgress, errColors: colorsFor({ isTTY: false }), stop };
}

/** Serves a folder as any static host would: files by path, a content type, nothing else. */
export function staticServer(dir: string): http.Server {
  return http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    const file = path.join(dir, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': contentTypeOf(file) }).end(fs.readFileSync(file));
  });
}

/** `lstm-lyrics serve --models DIR` on a free port, in this process: its base URL, and how to stop it. */
export async function servePage(models: string): Promise<{ base: string; stop(): Promise<void> }> {
  const lines: string[] = [];
  const abort = new AbortController();
  const serving = main(['serve', '--models', models, '--port', '0'], io(lines, abort.signal));
  while (!lines.some((l) => l.startsWith('serving '))) await new Promise((r) => setTimeout(r, 20));
  const base = /http:\/\/\S+\//.exec(lines.join('\n'))![0];
  return {
    base,
    async stop() {
      abort.abort();
      await serving;
    },
  };
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** A fresh page (in its own context unless one is given) that records console errors and uncaught exceptions, once its backend is ready. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ acceptDownloads: true });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('#backend[data-state="ready"]', { timeout: WAIT });
  return { page, errors };
}

/** #generated's text once a generation is done. */
export async function generatedText(page: Page): Promise<string> {
  await page.waitForSelector('#generated[data-state="done"]', { timeout: WAIT });
  return (await page.textContent('#generated')) ?? '';
}

/** The train form's tiny settings (all of the text, hidden 16, 10 steps, batch 4): a run of seconds. */
export async function fillTinyTraining(page: Page, epochs: number, reportEvery: number): Promise<void> {
  for (const [id, value] of [
    ['max-chars', 0],
    ['hidden', 16],
    ['num-steps', 10],
    ['batch-size', 4],
    ['epochs', epochs],
    ['report-every', reportEvery],
  ] as const) {
    await page.fill(`#${id}`, String(value));
  }
}
