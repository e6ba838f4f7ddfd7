/**
 * The page checks its inputs as the CLI does, and says so in its own words beside each field, in
 * real (headless) Chromium: every bad link parameter and every bad train field shows its message
 * next to its field (aria-invalid, aria-describedby) and nothing runs; a link asking for more than
 * MAX_PAGE_LENGTH characters is refused with the reason; the memory estimate beside Train is the
 * CLI's and refuses hidden 100000 before anything trains; a corpus too short for the batch says so
 * in the progress row; and Stop ends a long generation within a second, keeping its text.
 *
 * Skips, saying so, only when no Chromium is installed (CI installs one: see .ci/run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { formatBytes, trainingBytes } from '../src/core/training-memory';
import { MAX_PAGE_LENGTH, vocabularySize } from '../src/web/inputs';
import { REPETITIVE_LYRIC, TINY, tempDir, writeFile } from './helpers';
import { cli, describeIfChromium, launchChromium, openPage, ROOT, servePage, WAIT } from './web-harness';

jest.setTimeout(240_000);

describeIfChromium('web-inputs.test.ts')('the page checks its inputs', () => {
  let browser: Browser;
  let base: string;
  let server: Awaited<ReturnType<typeof servePage>>;

  beforeAll(async () => {
    const dir = tempDir();
    const models = path.join(dir, 'models');
    const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
    cli(['train', ...TINY, '--impl', 'builtin', '--corpus', corpus, '--out', path.join(models, 'tiny'), '--backend', 'wasm']);
    server = await servePage(models);
    base = server.base;
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  function link(params: Record<string, string>): string {
    return `${base}?${new URLSearchParams({ model: 'tiny', prefix: '不分开', ...params })}`;
  }

  /** The field's message beside it, and that the input is marked invalid and described by it. */
  async function fieldProblem(page: Page, id: string): Promise<string> {
    await page.waitForSelector(`#${id}-error:not([hidden])`, { timeout: WAIT });
    expect(await page.getAttribute(`#${id}`, 'aria-invalid')).toBe('true');
    expect((await page.getAttribute(`#${id}`, 'aria-describedby'))?.split(' ')).toContain(`${id}-error`);
    return (await page.textContent(`#${id}-error`)) ?? '';
  }

  const TOO_LONG = `length must be at most ${MAX_PAGE_LENGTH.toLocaleString('en')} characters, got 1,000,000,000: so that a link cannot keep a tab busy for hours; generate in steps or use lstm-lyrics generate`;

  it.each([
    ['length', 'abc', 'length must be a whole number >= 0, got abc'],
    ['temperature', 'NaN', 'temperature must be a number >= 0, got NaN'],
    ['seed', 'abc', 'seed must be a whole number >= 0, got abc'],
    ['top-k', '-1', 'top-k must be a whole number >= 0, got -1'],
    ['length', '1000000000', TOO_LONG],
  ])('a link with %s=%s shows its message beside the field and generates nothing', async (field, value, message) => {
    const { page, errors } = await openPage(browser, link({ length: '20', [field]: value }));
    await page.waitForSelector('#generated[data-state="error"]', { timeout: WAIT });
    expect(await fieldProblem(page, field)).toBe(message);
    expect(await page.textContent('#generated')).toBe(`Nothing generated: the link's ${field} is not valid (see beside it).`);
    // The model is still selected, so the form can be fixed; nothing was written.
    await page.waitForSelector('#selected[data-model="tiny"]', { timeout: WAIT });
    expect(await page.locator('#generated .prefix').count()).toBe(0);
    expect(await page.getAttribute('#generated', 'data-state')).toBe('error');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the form refuses a length over the cap the same way, and a fixed field clears its message', async () => {
    const { page } = await openPage(browser, base);
    await page.waitForSelector('#selected[data-model="tiny"]', { timeout: WAIT });
    await page.fill('#length', String(MAX_PAGE_LENGTH + 1));
    await page.click('#generate-button');
    expect(await fieldProblem(page, 'length')).toMatch(/^length must be at most 100,000 characters, got 100,001: so that a link/);
    expect(await page.getAttribute('#generated', 'data-state')).toBe('idle');
    await page.fill('#length', '5');
    await page.waitForSelector('#length-error', { state: 'hidden', timeout: WAIT });
    expect(await page.getAttribute('#length', 'aria-invalid')).toBeNull();
    await page.click('#generate-button');
    await page.waitForSelector('#generated[data-state="done"]', { timeout: WAIT });
    expect(Array.from((await page.textContent('#generated')) ?? '')).toHaveLength(3 + 5);
    await page.close();
  });

  /** Tiny, valid training settings on pasted text. */
  async function setUpTraining(page: Page): Promise<void> {
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    await page.check('input[name="corpus"][value="paste"]');
    await page.fill('#corpus-text', REPETITIVE_LYRIC);
    for (const [id, value] of Object.entries(GOOD)) await page.fill(`#${id}`, value);
  }

  const GOOD: Record<string, string> = {
    layers: '1',
    dropout: '0',
    'max-chars': '0',
    hidden: '8',
    'num-steps': '8',
    'batch-size': '4',
    epochs: '1',
    'lr-scratch': '100',
    'lr-builtin': '0.01',
    clip: '0.01',
    'report-every': '1',
    'train-seed': '0',
  };

  it("refuses each bad train field with the CLI's rule in the page's words, beside the field, and trains nothing", async () => {
    const { page, errors } = await openPage(browser, base);
    await setUpTraining(page);
    for (const [field, value, message] of [
      ['hidden', '0', 'hidden units must be a whole number >= 1, got 0'],
      ['batch-size', '2.5', 'batch size must be a whole number >= 1, got 2.5'],
      ['num-steps', '', 'steps must be a whole number >= 1, got nothing'],
      ['epochs', '-1', 'epochs must be a whole number >= 1, got -1'],
      ['max-chars', '-5', 'characters must be a whole number >= 0, got -5'],
      ['lr-scratch', '0', 'the scratch learning rate must be a number > 0, got 0'],
      ['lr-builtin', '-1', 'the builtin learning rate must be a number > 0, got -1'],
      ['clip', '0', 'clip must be a number > 0, got 0'],
      ['report-every', '0', 'report every must be a whole number >= 1, got 0'],
      ['train-seed', '1.5', 'seed must be a whole number >= 0, got 1.5'],
      ['layers', '0', 'layers must be a whole number from 1 to 64, got 0'],
      ['dropout', '1', 'dropout must be a number from 0 to below 1, got 1'],
    ]) {
      await page.fill(`#${field}`, value);
      await page.click('#train-button');
      expect(await fieldProblem(page, field)).toBe(message);
      expect(message).not.toMatch(/--/);
      expect(await page.textContent('#train-problem')).toBe(message);
      expect(await page.getAttribute('#progress', 'data-state')).toBe('error');
      expect(await page.locator('#progress .run').count()).toBe(0);
      expect(await page.getAttribute('#train-estimate', 'data-state')).toBe('unknown');
      await page.fill(`#${field}`, GOOD[field]);
      await page.waitForSelector(`#${field}-error`, { state: 'hidden', timeout: WAIT });
    }
    // Nothing trained: no model of this page joined the table.
    expect(await page.locator('#models tbody tr[data-name^="this page"]').count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows the CLI's memory estimate beside Train, and refuses hidden 100000 with it before training", async () => {
    const { page, errors } = await openPage(browser, base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    // The lesson's settings on the bundled corpus, both impls (SGD and Adam): the CLI's trainingBytes, summed.
    const text = fs.readFileSync(path.join(ROOT, 'corpus', 'songci300.txt'), 'utf8');
    const size = { cell: 'lstm', layers: 1, vocabSize: vocabularySize(text, 10_000), hidden: 256, batchSize: 32, numSteps: 35 } as const;
    const bytes = trainingBytes({ ...size, optimizer: 'sgd' }).total + trainingBytes({ ...size, optimizer: 'adam' }).total;
    await page.waitForSelector('#train-estimate[data-state="fits"]', { timeout: WAIT });
    expect(await page.textContent('#train-estimate')).toBe(`Training needs about ${formatBytes(bytes)} of memory.`);

    await setUpTraining(page);
    await page.fill('#hidden', '100000');
    await page.waitForSelector('#train-estimate[data-state="too-large"]', { timeout: WAIT });
    const refusal = (await page.textContent('#train-estimate')) ?? '';
    expect(refusal).toMatch(
      /^Too large: training 100,000 hidden units needs at least [\d.]+ GB \([\d,]+ parameters in each model, .*the wasm backend holds at most 4 GiB .*; use fewer hidden units or layers, a smaller batch size or fewer steps\.$/,
    );
    expect(refusal).not.toMatch(/--/);
    await page.click('#train-button');
    await page.waitForSelector('#train-problem:not([hidden])', { timeout: WAIT });
    expect(await page.textContent('#train-problem')).toBe(refusal);
    expect(await page.getAttribute('#progress', 'data-state')).toBe('error');
    expect(await page.locator('#progress .run').count()).toBe(0);
    expect(await page.isEnabled('#train-button')).toBe(true);
    expect(await page.isDisabled('#stop-button')).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a 3-character corpus: one line in the progress row, in page words', async () => {
    const { page, errors } = await openPage(browser, base);
    await page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    await page.check('input[name="corpus"][value="paste"]');
    await page.fill('#corpus-text', 'abc');
    await page.click('#train-button');
    await page.waitForSelector('#progress[data-state="error"]', { timeout: WAIT });
    const message =
      'the corpus is too short: 3 characters, and a batch size of 32 with 35 steps needs at least 1,152; use more text, or a smaller batch size or fewer steps';
    expect(await page.locator('#progress .run').allTextContents()).toEqual([message]);
    expect(await page.textContent('#progress')).not.toContain('starting');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('Stop ends a long generation within a second of the click and keeps the text so far', async () => {
    const { page, errors } = await openPage(browser, base);
    await page.waitForSelector('#selected[data-model="tiny"]', { timeout: WAIT });
    expect(await page.isDisabled('#stop-generate-button')).toBe(true);
    await page.fill('#length', String(MAX_PAGE_LENGTH));
    await page.click('#generate-button');
    await page.waitForSelector('#generated[data-state="running"]', { timeout: WAIT });
    const started = Date.now();
    // Some text first, so there is text to keep.
    while (((await page.textContent('#generated')) ?? '').length <= 100) await page.waitForTimeout(20);
    expect(await page.isEnabled('#stop-generate-button')).toBe(true);
    const clicked = Date.now();
    await page.click('#stop-generate-button');
    await page.waitForSelector('#generated[data-state="stopped"]', { timeout: WAIT });
    const took = Date.now() - clicked;
    console.log(`Stop ended a ${MAX_PAGE_LENGTH}-character generation ${took} ms after the click`);
    expect(took).toBeLessThan(1000);
    const kept = (await page.textContent('#generated')) ?? '';
    expect(kept.startsWith('不分开')).toBe(true);
    const written = Array.from(kept).length - 3;
    console.log(
      `the page wrote ${written} characters in ${clicked - started} ms before Stop (${Math.round((written * 1000) / (clicked - started))} a second)`,
    );
    expect(written).toBeGreaterThan(100);
    expect(written).toBeLessThan(MAX_PAGE_LENGTH);
    expect(await page.textContent('#generate-status')).toBe(
      `Stopped after ${written.toLocaleString('en')} of ${MAX_PAGE_LENGTH.toLocaleString('en')} characters; the text so far stays.`,
    );
    // Stopped for good: the text does not grow, Stop is off, Generate works again.
    await page.waitForTimeout(500);
    expect(await page.textContent('#generated')).toBe(kept);
    expect(await page.isDisabled('#stop-generate-button')).toBe(true);
    await page.fill('#length', '5');
    await page.click('#generate-button');
    await page.waitForSelector('#generated[data-state="done"]', { timeout: WAIT });
    expect(Array.from((await page.textContent('#generated')) ?? '')).toHaveLength(3 + 5);
    expect(errors).toEqual([]);
    await page.close();
  });
});
