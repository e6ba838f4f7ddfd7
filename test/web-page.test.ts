/**
 * The page in real (headless) Chromium, driven by playwright-core: it loads without console
 * errors, lists the models (unreadable ones too) with their cells, generates exactly the CLI's
 * greedy text for both impls and for a GRU, an RNN and a stacked LSTM, repeats a seeded sample,
 * fills #generated from a link, trains a GRU with both impls (perplexity falls, the chart gets its
 * points; the cell's lesson fills the form, bad layers or dropout are refused), keeps a stopped
 * model, and downloads a zip the CLI reads. And the --export folder works from a plain static server.
 *
 * Skips, saying so, only when no Chromium is installed (CI installs one: see .ci/run).
 */
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import type { Browser, Page } from 'playwright-core';
import { main } from '../src/cli/main';
import { REPETITIVE_LYRIC, TINY, tempDir, writeFile } from './helpers';
import {
  cli,
  cliGenerate,
  describeIfChromium,
  fillTinyTraining,
  generatedText,
  io,
  launchChromium,
  openPage,
  servePage,
  staticServer,
  WAIT,
} from './web-harness';

jest.setTimeout(240_000);

/** series/NAME (in the list's order): trained with --impl IMPL --cell CELL and the extra flags; the table's cell column for it. */
const SERIES: readonly [string, string, string, string[], string][] = [
  ['gru', 'scratch', 'gru', [], 'GRU'],
  ['lstm2', 'builtin', 'lstm', ['--layers', '2', '--dropout', '0.3'], 'LSTM ×2, dropout 0.3'],
  ['rnn', 'builtin', 'rnn', [], 'RNN'],
];

describeIfChromium('web-page.test.ts')('the page in Chromium', () => {
  let browser: Browser;
  let models: string;
  let corpus: string;
  let base: string;
  let server: Awaited<ReturnType<typeof servePage>>;

  beforeAll(async () => {
    const dir = tempDir();
    models = path.join(dir, 'models');
    corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
    // Tiny models that learn the repetitive lyric, so greedy text is more than one repeated character.
    for (const [impl, epochs] of [
      ['scratch', '30'],
      ['builtin', '12'],
    ]) {
      cli([
        'train',
        '--impl',
        impl,
        '--corpus',
        corpus,
        '--hidden',
        '16',
        '--epochs',
        epochs,
        '--batch-size',
        '4',
        '--num-steps',
        '10',
        '--report-every',
        epochs,
        '--pred-len',
        '4',
        '--out',
        path.join(models, 'runs', impl),
        '--backend',
        'wasm',
      ]);
    }
    // The series' other cells and a stacked LSTM, saved by the CLI (series/ sorts after runs/, so
    // runs/builtin stays the first readable model, the one the page selects).
    for (const [name, impl, cell, extra] of SERIES) {
      cli([
        'train',
        ...TINY,
        '--hidden',
        '16',
        '--epochs',
        '4',
        '--report-every',
        '4',
        '--impl',
        impl,
        '--cell',
        cell,
        ...extra,
        '--corpus',
        corpus,
        '--out',
        path.join(models, 'series', name),
      ]);
    }
    // A model saved before checkpoints recorded a cell: runs/scratch without cell, layers, dropout.
    fs.cpSync(path.join(models, 'runs', 'scratch'), path.join(models, 'saved-before-cells'), { recursive: true });
    const older = path.join(models, 'saved-before-cells', 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(older, 'utf8'));
    for (const key of ['cell', 'layers', 'dropout']) delete meta.model[key];
    fs.writeFileSync(older, JSON.stringify(meta));
    fs.mkdirSync(path.join(models, 'half-saved'));
    fs.writeFileSync(path.join(models, 'half-saved', 'weights.bin'), 'x');
    server = await servePage(models);
    base = server.base;
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const open = (url: string) => openPage(browser, url);

  function link(model: string, params: Record<string, string | number>): string {
    return `${base}?${new URLSearchParams({ model, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) })}`;
  }

  it('loads with no console errors, says which backend runs and why, and lists every model', async () => {
    const { page, errors } = await open(base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    const backend = await page.getAttribute('#backend', 'data-backend');
    console.log(`headless Chromium's TF.js backend: ${backend}: ${await page.textContent('#backend')}`);
    expect(backend).toBe('wasm');
    expect(await page.textContent('#backend')).toContain('lstm-lyrics generate');
    const rows = await page.$$eval('#models tbody tr', (trs) =>
      trs.map((tr) => ({ name: tr.getAttribute('data-name'), text: tr.textContent })),
    );
    expect(rows.map((r) => r.name)).toEqual([
      'half-saved',
      'runs/builtin',
      'runs/scratch',
      'saved-before-cells',
      ...SERIES.map(([name]) => `series/${name}`),
    ]);
    expect(rows[0].text).toContain('unreadable: no checkpoint.json');
    expect(rows[1].text).toContain('builtin');
    expect(rows[1].text).toContain('lyric.txt');
    // The cell column (the third): every cell, the stacked one's layers and dropout; the older model an LSTM.
    const cells = await page.$$eval('#models tbody tr:not(.unreadable) td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
    expect(cells).toEqual(['LSTM', 'LSTM', 'LSTM', ...SERIES.map(([, , , , shown]) => shown)]);
    // The first readable model is selected, and its curve drawn with its sibling's (as compare saves them).
    await page.waitForSelector('#chart svg', { timeout: WAIT });
    expect(Number(await page.getAttribute('#chart', 'data-points'))).toBe(12 + 30);
    expect(errors).toEqual([]);
    await page.close();
  });

  it.each(['scratch', 'builtin'])(
    '%s: greedy text from a link equals lstm-lyrics generate, in #generated with data-state="done"',
    async (impl) => {
      const { page, errors } = await open(link(`runs/${impl}`, { prefix: '不分开', length: 40 }));
      const text = await generatedText(page);
      expect(text).toBe(cliGenerate(path.join(models, 'runs', impl), '不分开', 40));
      expect(text.startsWith('不分开')).toBe(true);
      expect(Array.from(text)).toHaveLength(43);
      expect(errors).toEqual([]);
      await page.close();
    },
  );

  it("a GRU, an RNN and a 2-layer LSTM with dropout: the page's greedy text equals lstm-lyrics generate", async () => {
    const { page, errors } = await open(base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    for (const [name, impl, , , shown] of SERIES) {
      const model = `series/${name}`;
      await page.click(`#models tbody tr[data-name="${model}"]`);
      await page.waitForSelector(`#selected[data-model="${model}"]`, { timeout: WAIT });
      expect(await page.textContent('#selected')).toContain(`${model}: ${impl} ${shown},`);
      await page.fill('#prefix', '分开');
      await page.fill('#length', '40');
      await page.fill('#temperature', '0');
      await page.click('#generate-button');
      await page.waitForSelector(`#generated[data-state="done"][data-model="${model}"]`, { timeout: WAIT });
      expect(await page.textContent('#generated')).toBe(cliGenerate(path.join(models, 'series', name), '分开', 40));
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('?accel=off runs stock TF.js, says so, and generates what lstm-lyrics generate --accel off does', async () => {
    const { page, errors } = await open(`${link('runs/scratch', { prefix: '不分开', length: 30 })}&accel=off`);
    expect(await page.textContent('#backend')).toContain('accel: off (stock TF.js, as asked)');
    expect(await generatedText(page)).toBe(cliGenerate(path.join(models, 'runs', 'scratch'), '不分开', 30, ['--accel', 'off']));
    expect(errors).toEqual([]);
    await page.close();
  });

  it("a seeded sample repeats, and equals the CLI's with the same seed", async () => {
    const params = { prefix: '分开', length: 30, temperature: 1, 'top-k': 5, seed: 42 };
    const { page } = await open(link('runs/builtin', params));
    const first = await generatedText(page);
    await page.click('#generate-button');
    const second = await generatedText(page);
    expect(second).toBe(first);
    expect(first).toBe(
      cliGenerate(path.join(models, 'runs', 'builtin'), '分开', 30, ['--temperature', '1', '--top-k', '5', '--seed', '42']),
    );
    await page.close();
  });

  it('a link to an unreadable model says so in #generated', async () => {
    const { page } = await open(link('half-saved', { prefix: '不分开' }));
    await page.waitForSelector('#generated[data-state="error"]', { timeout: WAIT });
    expect(await page.textContent('#generated')).toContain('no checkpoint.json');
    await page.close();
  });

  it('names prefix characters the vocabulary lacks, inline', async () => {
    const { page } = await open(link('runs/scratch', { prefix: '不X开', length: 5 }));
    await page.waitForSelector('#generated[data-state="error"]', { timeout: WAIT });
    expect(await page.textContent('#prefix-problem mark')).toBe('X');
    await page.close();
  });

  /** Fills the training form with tiny settings on pasted text. */
  async function setUpTraining(page: Page, epochs: number, source: 'paste' | 'file' = 'paste'): Promise<void> {
    await page.check(`input[name="corpus"][value="${source}"]`);
    if (source === 'paste') await page.fill('#corpus-text', REPETITIVE_LYRIC);
    else await page.setInputFiles('#corpus-file', corpus);
    await fillTinyTraining(page, epochs, 2);
  }

  /** The train form's field values, by id. */
  async function formValues(page: Page, ids: readonly string[]): Promise<Record<string, string>> {
    return Object.fromEntries(await Promise.all(ids.map(async (id) => [id, await page.inputValue(`#${id}`)])));
  }

  it("trains a GRU with both impls in the page: the cell's lesson fills the form, bad layers or dropout are refused, perplexity falls, the chart gets every epoch, Download gives a zip that lstm-lyrics generate reads", async () => {
    const { page, errors } = await open(base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    const lessonFields = ['epochs', 'report-every', 'lr-scratch', 'lr-builtin'];
    // At first the LSTM lesson's; picking the RNN puts in its own (as train --cell rnn).
    expect(await formValues(page, lessonFields)).toEqual({
      epochs: '160',
      'report-every': '40',
      'lr-scratch': '100',
      'lr-builtin': '0.01',
    });
    await page.check('#cell-rnn');
    expect(await formValues(page, lessonFields)).toEqual({
      epochs: '250',
      'report-every': '50',
      'lr-scratch': '100',
      'lr-builtin': '0.001',
    });
    // What the user typed (epochs, report every) stays when the cell changes; the rest follows the GRU's lesson.
    await setUpTraining(page, 6);
    await page.check('#cell-gru');
    expect(await formValues(page, lessonFields)).toEqual({ epochs: '6', 'report-every': '2', 'lr-scratch': '100', 'lr-builtin': '0.01' });

    // Layers and dropout are checked as the CLI checks them: one line, and nothing trains.
    for (const [layers, dropout, message] of [
      ['0', '0', 'layers must be a whole number from 1 to 64, got 0'],
      ['1.5', '0', 'layers must be a whole number from 1 to 64, got 1.5'],
      ['2', '1', 'dropout must be a number from 0 to below 1, got 1'],
    ]) {
      await page.fill('#layers', layers);
      await page.fill('#dropout', dropout);
      await page.click('#train-button');
      await page.waitForSelector('#train-problem:not([hidden])', { timeout: WAIT });
      expect(await page.textContent('#train-problem')).toBe(message);
      expect(await page.getAttribute('#progress', 'data-state')).toBe('error');
      expect(await page.locator('#progress .run').count()).toBe(0);
    }
    await page.fill('#layers', '1');
    await page.fill('#dropout', '0');
    await page.click('#train-button');
    await page.waitForSelector('#progress[data-state="done"]', { timeout: 180_000 });
    for (const impl of ['scratch', 'builtin']) {
      const perplexities = (await page.getAttribute(`#progress .run[data-impl="${impl}"]`, 'data-perplexities'))!.split(',').map(Number);
      expect(perplexities).toHaveLength(6);
      expect(perplexities[5]).toBeLessThan(perplexities[0]);
    }
    expect(Number(await page.getAttribute('#train-chart', 'data-points'))).toBe(12);
    expect(await page.$$eval('#train-chart svg path', (p) => p.length)).toBeGreaterThan(0);
    expect(await page.locator('#samples pre').count()).toBeGreaterThanOrEqual(6);

    const unzipped = tempDir();
    for (const impl of ['scratch', 'builtin']) {
      const name = `this page #1: ${impl} GRU`;
      await page.click(`#models tbody tr[data-name="${name}"]`);
      await page.waitForSelector(`#selected[data-model="${name}"]`, { timeout: WAIT });
      expect(await page.textContent(`#models tbody tr[data-name="${name}"] td:nth-child(3)`)).toBe('GRU');
      await page.fill('#prefix', '不分开');
      await page.fill('#length', '30');
      await page.fill('#temperature', '0');
      await page.click('#generate-button');
      await page.waitForSelector(`#generated[data-state="done"][data-model="${name}"]`, { timeout: WAIT });
      const pageText = (await page.textContent('#generated'))!;

      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#trained button[data-impl="${impl}"]`)]);
      expect(download.suggestedFilename()).toBe(`lstm-lyrics-${impl}-gru.zip`);
      const zipFile = path.join(unzipped, `${impl}.zip`);
      await download.saveAs(zipFile);
      new AdmZip(zipFile).extractAllTo(unzipped, true);
      const dir = path.join(unzipped, `lstm-lyrics-${impl}-gru`);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')).model).toMatchObject({
        impl,
        cell: 'gru',
        layers: 1,
        dropout: 0,
        hidden: 16,
      });
      expect(cliGenerate(dir, '不分开', 30)).toBe(pageText);
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('Stop ends training early and keeps a usable model', async () => {
    const { page, errors } = await open(base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    await setUpTraining(page, 500, 'file');
    await page.uncheck('#impl-builtin');
    await page.click('#train-button');
    await page.waitForSelector('#train-chart svg', { timeout: WAIT });
    // A function, not a string: the page's policy forbids eval, and playwright evaluates strings.
    // biome-ignore lint/suspicious/noExplicitAny: runs in the page; the tests compile without the DOM's types
    await page.waitForFunction(() => Number((globalThis as any).document.getElementById('train-chart').dataset.points) >= 2, undefined, {
      timeout: WAIT,
    });
    await page.click('#stop-button');
    await page.waitForSelector('#progress[data-state="stopped"]', { timeout: WAIT });
    expect(await page.textContent('#progress')).toMatch(/scratch: stopped after \d+ epochs/);
    expect(await page.textContent('#models')).toContain('lyric.txt');
    await page.waitForSelector('#selected[data-model$=": scratch LSTM"]', { timeout: WAIT });
    await page.fill('#length', '20');
    await page.click('#generate-button');
    expect(Array.from(await generatedText(page))).toHaveLength(3 + 20);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("--export: the page and models from a plain static server generate the CLI's text", async () => {
    const site = path.join(tempDir(), 'site');
    expect(await main(['serve', '--models', models, '--export', site], io([], new AbortController().signal))).toBe(0);
    const server = staticServer(site);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?model=runs%2Fscratch&prefix=${encodeURIComponent('分开')}&length=25`;
      const { page, errors } = await open(url);
      expect(await generatedText(page)).toBe(cliGenerate(path.join(models, 'runs', 'scratch'), '分开', 25));
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
