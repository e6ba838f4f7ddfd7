/**
 * The page keeps models in this browser (IndexedDB) and opens model zips by hand, in real
 * (headless) Chromium: a model trained in the page is listed under "this browser" after a reload
 * and generates the same greedy text; it can be renamed and deleted (both survive a reload) and
 * resumed (more epochs, kept); the zip of a CLI model directory opens and generates exactly
 * `lstm-lyrics generate`'s text; a zip with a corrupt checkpoint.json is refused in one line and
 * nothing is kept; with the store full or without IndexedDB the page says so in one line and the
 * trained model still works in the tab.
 *
 * Skips, saying so, only when no Chromium is installed (CI installs one: see .ci/run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import type { Browser, Page } from 'playwright-core';
import { REPETITIVE_LYRIC, tempDir, writeFile } from './helpers';
import {
  cli,
  cliGenerate,
  describeIfChromium,
  fillTinyTraining,
  generatedText,
  launchChromium,
  openPage,
  servePage,
  WAIT,
} from './web-harness';

jest.setTimeout(300_000);

/** The models table's rows listed under this browser. */
const KEPT_ROWS = '#models tbody tr[data-name][data-group="browser"]';

describeIfChromium('web-store.test.ts')('models kept in this browser and opened by hand', () => {
  let browser: Browser;
  let dir: string;
  let cliModel: string;
  let server: Awaited<ReturnType<typeof servePage>>;

  beforeAll(async () => {
    dir = tempDir();
    const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
    cliModel = path.join(dir, 'cli-models', 'scratch');
    cli([
      'train',
      '--impl',
      'scratch',
      '--corpus',
      corpus,
      '--hidden',
      '16',
      '--epochs',
      '20',
      '--batch-size',
      '4',
      '--num-steps',
      '10',
      '--report-every',
      '20',
      '--pred-len',
      '4',
      '--out',
      cliModel,
      '--backend',
      'wasm',
    ]);
    // The server lists no models: every row here is this browser's or this tab's.
    fs.mkdirSync(path.join(dir, 'served'));
    server = await servePage(path.join(dir, 'served'));
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Names of the rows listed under this browser. */
  const kept = (page: Page) => page.$$eval(KEPT_ROWS, (rows) => rows.map((r) => r.getAttribute('data-name')));

  /**
   * The train form at tiny settings on the pasted repetitive lyric, one impl; returns once the
   * run is done and, where `keeps` (the store works), its model is kept (listed under this browser).
   */
  async function train(page: Page, impl: 'scratch' | 'builtin', epochs: number, keeps = true): Promise<void> {
    const keptBefore = (await kept(page)).length;
    await page.check('input[name="corpus"][value="paste"]');
    await page.fill('#corpus-text', REPETITIVE_LYRIC);
    await fillTinyTraining(page, epochs, epochs);
    await page.setChecked('#impl-scratch', impl === 'scratch');
    await page.setChecked('#impl-builtin', impl === 'builtin');
    // The last run's progress says "done" until this run has read its corpus and replaced the
    // rows: wait for those rows to go first, or "done" is the last run's.
    const lastRun = await page.$('#progress .run');
    await page.click('#train-button');
    if (lastRun) await page.waitForFunction((row) => !row.isConnected, lastRun, { timeout: WAIT });
    await page.waitForSelector('#progress[data-state="done"]', { timeout: 180_000 });
    // The page keeps the model in IndexedDB after it says "done": wait for its row.
    if (keeps) await page.locator(KEPT_ROWS).nth(keptBefore).waitFor({ timeout: WAIT });
  }

  /** Greedy text of `name` (picked in the table) from 不分开. */
  async function greedy(page: Page, name: string, length = 30): Promise<string> {
    await page.click(`#models tbody tr[data-name="${name}"] td:first-child`);
    await page.waitForSelector(`#selected[data-model="${name}"]`, { timeout: WAIT });
    await page.fill('#prefix', '不分开');
    await page.fill('#length', String(length));
    await page.fill('#temperature', '0');
    await page.click('#generate-button');
    await page.waitForSelector(`#generated[data-state="done"][data-model="${name}"]`, { timeout: WAIT });
    return (await page.textContent('#generated'))!;
  }

  async function reload(page: Page): Promise<void> {
    await page.reload();
    await page.waitForSelector('#backend[data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('#store-status:not([data-state="loading"])', { timeout: WAIT });
  }

  /** Deletes a kept row with its Delete button, the confirm accepted, and waits until the row is gone. */
  async function deleteKept(page: Page, name: string): Promise<void> {
    page.once('dialog', (d) => void d.accept());
    await page.click(`#models tbody tr[data-name="${name}"] button[data-action="delete"]`);
    await page.waitForSelector(`#models tbody tr[data-name="${name}"]`, { state: 'detached', timeout: WAIT });
  }

  /** Nothing is kept, before a reload and after it, and the store panel says so. */
  async function expectNothingKept(page: Page): Promise<void> {
    expect(await kept(page)).toEqual([]);
    await reload(page);
    expect(await kept(page)).toEqual([]);
    expect(await page.textContent('#store-status')).toBe('No models kept in this browser yet.');
  }

  it('keeps a model trained in the page: after a reload it is listed under this browser and generates the same greedy text; rename and delete last', async () => {
    const { page, errors } = await openPage(browser, server.base);
    const name = 'this page #1: scratch LSTM';
    await train(page, 'scratch', 4);
    await page.waitForSelector('#store-status[data-state="ready"]:has-text("Kept in this browser")', { timeout: WAIT });
    const before = await greedy(page, name);
    expect(Array.from(before).length).toBe(3 + 30);

    await reload(page);
    expect(await page.textContent('#models tbody tr.group[data-group="browser"]')).toContain('this browser');
    expect(await kept(page)).toEqual([name]);
    expect(await greedy(page, name)).toBe(before);
    // Each row's buttons name their model, as a screen reader lists all rows' buttons together.
    for (const action of ['Download', 'Rename', 'Delete', 'Resume']) {
      expect(await page.getByRole('button', { name: `${action} ${name}`, exact: true }).count()).toBe(1);
    }

    page.once('dialog', (d) => void d.accept('my lyric model'));
    await page.click(`#models tbody tr[data-name="${name}"] button[data-action="rename"]`);
    await page.waitForSelector('#models tbody tr[data-name="my lyric model"]', { timeout: WAIT });
    await reload(page);
    expect(await kept(page)).toEqual(['my lyric model']);
    expect(await greedy(page, 'my lyric model')).toBe(before);

    // A new run after the reload does not take the kept run's name.
    await train(page, 'scratch', 1);
    await page.waitForSelector('#models tbody tr[data-name="this page #1: scratch LSTM"][data-group="browser"]', { timeout: WAIT });
    expect((await kept(page)).sort()).toEqual(['my lyric model', 'this page #1: scratch LSTM']);

    for (const doomed of ['my lyric model', 'this page #1: scratch LSTM']) {
      await deleteKept(page, doomed);
    }
    await expectNothingKept(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('leaks no tensors: repeated generations, training, deleting and reloading leave tf.memory().numTensors where it was', async () => {
    const { page, errors } = await openPage(browser, server.base);
    const tensors = () =>
      page.evaluate(() => (globalThis as unknown as { tf: { memory(): { numTensors: number } } }).tf.memory().numTensors);
    await train(page, 'scratch', 2);
    const first = (await kept(page))[0]!;
    await greedy(page, first);
    const settled = await tensors();
    // A generation holds nothing once done, however many run.
    for (let i = 0; i < 3; i++) await greedy(page, first);
    expect(await tensors()).toBe(settled);
    // Each training's model stays in the tab after it is deleted from the store (the train
    // panel's Download still offers the last one), but one training replaces the last: two
    // train-and-delete rounds leave the same count as one.
    const trainAndDelete = async (): Promise<number> => {
      await train(page, 'builtin', 2);
      const other = (await kept(page)).find((n) => n !== first)!;
      await greedy(page, other);
      await deleteKept(page, other);
      await greedy(page, first);
      return tensors();
    };
    const afterOne = await trainAndDelete();
    expect(await trainAndDelete()).toBe(afterOne);
    // After a reload the kept model is rebuilt from the store for generation, without the SGD
    // optimizer the trained one carried (its learning-rate scalar): one tensor fewer, then flat.
    await reload(page);
    await greedy(page, first);
    const reloaded = await tensors();
    expect(reloaded).toBe(settled - 1);
    await greedy(page, first);
    expect(await tensors()).toBe(reloaded);
    for (const name of await kept(page)) {
      await deleteKept(page, name!);
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('resumes a kept model from its optimizer state: the epochs grow, and the resumed model is what is kept', async () => {
    const { page, errors } = await openPage(browser, server.base);
    const name = 'this page #1: builtin LSTM';
    const epochsCell = `#models tbody tr[data-name="${name}"] td:nth-child(6)`;
    await train(page, 'builtin', 2);
    await page.waitForSelector('#store-status[data-state="ready"]:has-text("Kept in this browser")', { timeout: WAIT });
    await reload(page);
    expect(await page.textContent(epochsCell)).toBe('2');

    // The train form's corpus is the one it was trained on (the pasted lyric); a reload emptied it.
    await page.check('input[name="corpus"][value="paste"]');
    await page.fill('#corpus-text', REPETITIVE_LYRIC);
    await page.fill('#resume-epochs', '3');
    await page.click(`#models tbody tr[data-name="${name}"] button[data-action="resume"]`);
    await page.waitForSelector('#resume-progress[data-state="done"]', { timeout: 180_000 });
    expect(await page.getAttribute('#resume-progress', 'data-epochs')).toBe('5');
    await page.waitForSelector('#store-status:has-text("after 5 epochs")', { timeout: WAIT });
    const resumed = await greedy(page, name);

    await reload(page);
    expect(await page.textContent(epochsCell)).toBe('5');
    expect(await greedy(page, name)).toBe(resumed);

    // Resumed from Adam's saved moments, 2 + 3 epochs end where 5 in one run do (as the CLI's --resume).
    const perplexity = (row: string) => page.textContent(`#models tbody tr[data-name="${row}"] td:nth-child(7)`);
    await train(page, 'builtin', 5);
    expect(await perplexity('this page #2: builtin LSTM')).toBe(await perplexity(name));

    // Its Download is the kept files: the resumed weights, its optimizer, 5 epochs; the CLI generates the same text.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`#models tbody tr[data-name="${name}"] button[data-action="download"]`),
    ]);
    expect(download.suggestedFilename()).toBe('lstm-lyrics-builtin-lstm.zip');
    const unzipped = tempDir();
    await download.saveAs(path.join(unzipped, 'kept.zip'));
    new AdmZip(path.join(unzipped, 'kept.zip')).extractAllTo(unzipped, true);
    const keptDir = path.join(unzipped, 'lstm-lyrics-builtin-lstm');
    const meta = JSON.parse(fs.readFileSync(path.join(keptDir, 'checkpoint.json'), 'utf8'));
    expect(meta.epoch).toBe(5);
    expect(meta.history).toHaveLength(5);
    expect(fs.existsSync(path.join(keptDir, 'optimizer.bin'))).toBe(true);
    expect(cliGenerate(keptDir, '不分开', 30)).toBe(resumed);

    // Another corpus is refused in one line, and the kept model is untouched.
    await page.fill('#corpus-text', `${REPETITIVE_LYRIC}又`);
    await page.click(`#models tbody tr[data-name="${name}"] button[data-action="resume"]`);
    await page.waitForSelector('#store-status[data-state="error"]', { timeout: WAIT });
    expect(await page.textContent('#store-status')).toContain('is not the corpus');
    expect(await page.textContent(epochsCell)).toBe('5');

    // Stop ends a resumed run early; what it trained is kept then.
    await page.fill('#corpus-text', REPETITIVE_LYRIC);
    await page.fill('#resume-epochs', '500');
    await page.click(`#models tbody tr[data-name="${name}"] button[data-action="resume"]`);
    // At least two epochs past the kept 5 (a text test for exactly "epoch 7" can miss it between polls).
    const progress = (await page.$('#resume-progress'))!;
    await page.waitForFunction((p) => Number(/epoch (\d+)\/505/.exec(p.textContent ?? '')?.[1] ?? 0) >= 7, progress, { timeout: WAIT });
    await page.click('#stop-button');
    await page.waitForSelector('#resume-progress[data-state="stopped"]', { timeout: WAIT });
    const stoppedAt = Number(await page.getAttribute('#resume-progress', 'data-epochs'));
    expect(stoppedAt).toBeGreaterThanOrEqual(6);
    expect(stoppedAt).toBeLessThan(505);
    await page.waitForSelector(`#store-status:has-text("after ${stoppedAt} epochs")`, { timeout: WAIT });
    await reload(page);
    expect(await page.textContent(epochsCell)).toBe(String(stoppedAt));
    expect(errors).toEqual([]);
    await page.close();
  });

  it("opens the zip of a CLI model directory, and the directory itself: the page's greedy text is lstm-lyrics generate's, and both are kept", async () => {
    const zipFile = path.join(dir, 'cli-scratch.zip');
    const adm = new AdmZip();
    adm.addLocalFolder(cliModel, 'scratch');
    adm.writeZip(zipFile);
    const { page, errors } = await openPage(browser, server.base);
    await page.waitForSelector('#store-status[data-state="ready"]', { timeout: WAIT });
    await page.setInputFiles('#open-zip', zipFile);
    await page.waitForSelector('#selected[data-model="cli-scratch"]', { timeout: WAIT });
    expect(await greedy(page, 'cli-scratch')).toBe(cliGenerate(cliModel, '不分开', 30));
    // The same directory picked as a folder.
    await page.setInputFiles('#open-folder', cliModel);
    await page.waitForSelector('#selected[data-model="scratch"]', { timeout: WAIT });
    expect(await greedy(page, 'scratch')).toBe(cliGenerate(cliModel, '不分开', 30));
    await reload(page);
    expect(await kept(page)).toEqual(['cli-scratch', 'scratch']);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('refuses a zip with a corrupt checkpoint.json in one line, and keeps nothing', async () => {
    const adm = new AdmZip();
    for (const file of fs.readdirSync(cliModel)) {
      const bytes = fs.readFileSync(path.join(cliModel, file));
      adm.addFile(`scratch/${file}`, file === 'checkpoint.json' ? Buffer.from('{"format": "lstm-lyrics/1", "model": SECRET') : bytes);
    }
    const zipFile = path.join(dir, 'corrupt.zip');
    adm.writeZip(zipFile);
    const { page, errors } = await openPage(browser, server.base);
    await page.waitForSelector('#store-status[data-state="ready"]', { timeout: WAIT });
    await page.setInputFiles('#open-zip', zipFile);
    await page.waitForSelector('#open-problem:not([hidden])', { timeout: WAIT });
    const problem = (await page.textContent('#open-problem'))!;
    expect(problem).toBe('Cannot open the model: cannot read corrupt.zip: checkpoint.json: not valid JSON');
    expect(problem).not.toContain('SECRET');
    await expectNothingKept(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a full store (QuotaExceededError) says so in one line; the model stays in this tab and nothing half-written is kept', async () => {
    const { page, errors } = await openPage(browser, server.base);
    await page.waitForSelector('#store-status[data-state="ready"]', { timeout: WAIT });
    await page.evaluate(() => {
      // As a browser out of quota: writing the model's files fails.
      // biome-ignore lint/suspicious/noExplicitAny: runs in the page; the tests compile without the DOM's types
      (globalThis as any).IDBObjectStore.prototype.put = () => {
        throw new DOMException('the quota has been exceeded', 'QuotaExceededError');
      };
    });
    await train(page, 'scratch', 1, false);
    const name = 'this page #1: scratch LSTM';
    await page.waitForSelector('#store-status[data-state="error"]', { timeout: WAIT });
    expect(await page.textContent('#store-status')).toBe(
      `${name} is not kept in this browser (this browser's storage for the page is full): it works in this tab until the page reloads; download it to keep it.`,
    );
    expect(await page.getAttribute(`#models tbody tr[data-name="${name}"]`, 'data-group')).toBe('tab');
    expect(Array.from(await greedy(page, name, 10))).toHaveLength(3 + 10);
    // The record added before the files failed went with the aborted transaction.
    await reload(page);
    expect(await kept(page)).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('without IndexedDB says so in one line, and the trained model still generates in this tab', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.addInitScript(() => {
      // As a private window that refuses storage: indexedDB.open throws.
      // biome-ignore lint/suspicious/noExplicitAny: runs in the page; the tests compile without the DOM's types
      const factory = (globalThis as any).IDBFactory.prototype;
      factory.open = () => {
        throw new DOMException('storage is disabled', 'SecurityError');
      };
    });
    await page.goto(server.base);
    await page.waitForSelector('#backend[data-state="ready"]', { timeout: WAIT });
    await page.waitForSelector('#store-status[data-state="error"]', { timeout: WAIT });
    const status = (await page.textContent('#store-status'))!;
    expect(status).toContain('IndexedDB is unavailable (SecurityError: storage is disabled)');
    expect(status).not.toContain('\n');

    await train(page, 'scratch', 2, false);
    const name = 'this page #1: scratch LSTM';
    await page.waitForSelector('#store-status:has-text("is not kept in this browser")', { timeout: WAIT });
    expect(await page.getAttribute(`#models tbody tr[data-name="${name}"]`, 'data-group')).toBe('tab');
    expect(Array.from(await greedy(page, name, 20))).toHaveLength(3 + 20);
    expect(await generatedText(page)).toBeTruthy();
    expect(errors).toEqual([]);
    await page.close();
  });
});
