#!/usr/bin/env node
// Writes the README's pictures of the page with a full models table: docs/page-1200.png (a 1200 px
// wide window) and docs/page-390.png (a 390 px phone), each clipped to the models table and the
// generate form, after greedy text has been generated with the first model.
//
//   npm run build && node scripts/page-screenshots.js [--out DIR]
//
// It trains six tiny models with the CLI (RNN, GRU and LSTM, scratch and builtin; hidden 16, 2
// epochs, the first 2,000 characters of the bundled corpus; a couple of seconds each), copies them
// into 100 model directories with varied names that say the truth about their cell and impl (their
// perplexities and dates are the six trained ones', as saved: nothing is made up), serves them with
// `lstm-lyrics serve --models`, and drives /usr/bin/chromium (or
// CHROMIUM_PATH) with playwright-core. Chinese needs a CJK font: `apt-get install -y fonts-noto-cjk`
// where `fc-list | grep -i cjk` finds none.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const bin = path.join(root, 'bin', 'lstm-lyrics.js');
const outArg = process.argv.indexOf('--out');
const outDir = path.resolve(outArg > 0 ? process.argv[outArg + 1] : path.join(root, 'docs'));

const CELLS = ['lstm', 'gru', 'rnn'];
const IMPLS = ['scratch', 'builtin'];

/** `count` names of the kind `train` and `compare` save under models/ over a few weeks, each naming its model's cell and impl. */
function modelNames(count) {
  const names = new Map();
  for (let i = 0; names.size < count; i++) {
    const cell = CELLS[i % 3];
    const impl = IMPLS[Math.floor(i / 3) % 2];
    const day = String(1 + (i % 28)).padStart(2, '0');
    const name = [
      `compare/2026-11-${day}/${cell}-${impl}`,
      `${cell}-${impl}-h${16 * (1 + (i % 16))}`,
      `runs/${cell}/${impl}-${i}`,
      `runs/2026-11-${day}/${cell}/${impl}-lr${impl === 'scratch' ? 100 : 0.01}-seed${i % 5}`,
    ][i % 4];
    if (!names.has(name)) names.set(name, { cell, impl });
  }
  return names;
}

/** Trains one tiny model per cell and impl (a couple of seconds each), then copies them into `count` model directories under DIR/models; returns that folder. */
function hundredModels(dir, count = 100) {
  const trained = (cell, impl) => path.join(dir, 'trained', `${cell}-${impl}`);
  for (const cell of CELLS)
    for (const impl of IMPLS)
      execFileSync(
        process.execPath,
        [
          bin,
          'train',
          '--cell',
          cell,
          '--impl',
          impl,
          '--hidden',
          '16',
          '--epochs',
          '2',
          '--batch-size',
          '4',
          '--num-steps',
          '10',
          '--max-chars',
          '2000',
          '--val-chars',
          '200',
          '--report-every',
          '2',
          '--pred-len',
          '4',
          '--backend',
          'wasm',
          '--out',
          trained(cell, impl),
        ],
        { cwd: root, stdio: 'ignore' },
      );
  const models = path.join(dir, 'models');
  for (const [name, { cell, impl }] of modelNames(count)) {
    const target = path.join(models, ...name.split('/'));
    fs.cpSync(trained(cell, impl), target, { recursive: true });
  }
  return models;
}

/** `lstm-lyrics serve --models DIR --port 0` as a child process: its URL and the process. */
function serve(models) {
  const child = spawn(process.execPath, [bin, 'serve', '--models', models, '--port', '0'], { cwd: root });
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const url = /serving (http:\/\/\S+\/)/.exec(seen);
      if (url) resolve({ url: url[1], child });
    });
    child.on('exit', (code) => reject(new Error(`lstm-lyrics serve exited ${code}`)));
  });
}

/** The rectangle from the top of the models section to the bottom of #generated, full width. */
async function modelsAndGenerate(page) {
  return page.evaluate(() => {
    const top = document.getElementById('models-section').getBoundingClientRect().top + scrollY;
    const bottom = document.getElementById('generated').getBoundingClientRect().bottom + scrollY;
    return { x: 0, y: Math.max(0, top - 8), width: document.documentElement.clientWidth, height: bottom - top + 24 };
  });
}

async function shoot(browser, url, width, height, file) {
  const page = await browser.newPage({ viewport: { width, height } });
  await page.goto(url);
  await page.waitForSelector('#backend[data-state="ready"]', { timeout: 90_000 });
  await page.waitForFunction(() => document.querySelectorAll('#models tbody tr').length >= 100, null, { timeout: 90_000 });
  await page.locator('#models tbody tr').nth(1).click();
  await page.waitForSelector('#generate-button:not([disabled])');
  // Sampled (temperature 1, a fixed seed): a two-epoch model's greedy text is one character repeated.
  await page.fill('#length', '40');
  await page.fill('#temperature', '1');
  await page.fill('#seed', '7');
  await page.click('#generate-button');
  await page.waitForSelector('#generated[data-state="done"]', { timeout: 90_000 });
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.activeElement?.blur();
  });
  await page.screenshot({ path: file, fullPage: true, clip: await modelsAndGenerate(page) });
  await page.close();
  console.log(`${path.relative(process.cwd(), file)}: ${width} px wide, ${fs.statSync(file).size} bytes`);
}

async function main() {
  const { chromium } = require('playwright-core');
  const executablePath = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((c) => c && fs.existsSync(c));
  if (!executablePath)
    throw new Error('no Chromium found (/usr/bin/chromium, CHROMIUM_PATH); install it with: apt-get install -y chromium');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'page-screenshots-'));
  const { url, child } = await serve(hundredModels(work));
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  try {
    fs.mkdirSync(outDir, { recursive: true });
    await shoot(browser, url, 1200, 900, path.join(outDir, 'page-1200.png'));
    await shoot(browser, url, 390, 844, path.join(outDir, 'page-390.png'));
  } finally {
    await browser.close();
    child.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`page-screenshots: ${err.message}`);
  process.exit(1);
});
