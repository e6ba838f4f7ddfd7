// The page's own types (document, getComputedStyle) for the functions that run inside it.
/// <reference lib="dom" />
/**
 * The page's layout and accessibility in real (headless) Chromium, with a hundred models listed:
 * at 1200x900 and at 390x844 (a phone) every column header and every cell of the last row can be
 * scrolled into view inside the table's own box and is then wholly visible (not clipped by a
 * scrolling ancestor, not under the sticky header or first column), the page never scrolls
 * sideways, the table's box does not push the generate form far down, and both forms fit the
 * window, also with a column of three buttons in every row and a long message under a field (what
 * per-row actions and per-field messages will add). And what a screen reader needs: every control and button has a name (found again by
 * getByLabel / getByRole), the table is a named grid of selectable rows with one Tab stop, the
 * arrows and Enter pick a model, focus is visible, #generated is a polite live region that is busy
 * while text streams in, the status lines are role=status, headings go in order, and .note text
 * has enough contrast.
 *
 * Skips, saying so, only when no Chromium is installed (CI installs one: see .ci/run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { REPETITIVE_LYRIC, TINY, tempDir, writeFile } from './helpers';
import { cli, describeIfChromium, launchChromium, openPage, servePage, WAIT } from './web-harness';

jest.setTimeout(240_000);

const MODELS = 100;
/** Sorts last (the listing sorts each folder's entries by name) and is the longest name: the hardest last row. */
const LAST = 'zz-sweep/a-rather-long-directory-name-from-a-hyperparameter-sweep/lstm-scratch-hidden16-epochs2-seed0';

/** Model names like those train and compare save, nested up to three folders deep. */
function modelName(i: number): string {
  const cell = ['lstm', 'gru', 'rnn'][i % 3];
  return [
    `compare/2026-11-${String(1 + (i % 28)).padStart(2, '0')}-${i}/${cell}-scratch`,
    `${cell}-h16-run${i}`,
    `runs/${cell}/scratch-${i}`,
  ][i % 3];
}

/**
 * Trains one tiny model and copies it into `count` model directories (the last named LAST), with
 * varied savedAt and perplexity; returns the models folder. Plus one unreadable directory, whose
 * row spans the table with its reason.
 */
function hundredModels(count: number): string {
  const dir = tempDir();
  const corpus = writeFile(dir, 'a-rather-long-corpus-file-name.txt', REPETITIVE_LYRIC);
  const once = path.join(dir, 'trained-once');
  cli(['train', ...TINY, '--hidden', '16', '--epochs', '2', '--num-steps', '10', '--val-chars', '100', '--corpus', corpus, '--out', once]);
  const models = path.join(dir, 'models');
  for (let i = 0; i < count; i++) {
    const target = path.join(models, ...(i === count - 1 ? LAST : modelName(i)).split('/'));
    fs.cpSync(once, target, { recursive: true });
    const file = path.join(target, 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
    meta.savedAt = new Date(Date.UTC(2026, 10, 1 + (i % 30), i % 24, i % 60)).toISOString();
    meta.history[meta.history.length - 1].perplexity = 1 + ((i * 37) % 1000) + i / 1000;
    fs.writeFileSync(file, JSON.stringify(meta));
  }
  fs.mkdirSync(path.join(models, 'half-saved'));
  fs.writeFileSync(path.join(models, 'half-saved', 'weights.bin'), 'x');
  return models;
}

/**
 * Scrolls `cell` into view (its right edge to the right of its scrolling box, as a user scrolling
 * right would), then says what keeps it from being wholly visible: outside the window, clipped by
 * an ancestor that clips (overflow other than visible), or covered (the sticky header or first
 * column) at its left, middle or right. '' when nothing does.
 */
async function hiddenBy(cell: Locator): Promise<string> {
  return cell.evaluate((el) => {
    el.scrollIntoView({ block: 'nearest', inline: 'end' });
    const r = el.getBoundingClientRect();
    const slack = 1; // sub-pixel rounding of borders
    if (r.width === 0 || r.height === 0) return 'no size';
    if (r.left < -slack || r.top < -slack || r.right > innerWidth + slack || r.bottom > innerHeight + slack)
      return `outside the window: ${JSON.stringify(r)}`;
    for (let a = el.parentElement; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
      const box = a.getBoundingClientRect();
      const left = box.left + a.clientLeft;
      const top = box.top + a.clientTop;
      if (r.left < left - slack || r.top < top - slack || r.right > left + a.clientWidth + slack || r.bottom > top + a.clientHeight + slack)
        return `clipped by <${a.tagName.toLowerCase()} class="${a.className}">`;
    }
    const y = r.top + r.height / 2;
    for (const x of [r.left + 3, r.left + r.width / 2, r.right - 3]) {
      const hit = document.elementFromPoint(x, y);
      if (!hit || !(hit === el || el.contains(hit)))
        return `covered at x=${Math.round(x)} by <${hit?.tagName.toLowerCase()}> ${hit?.textContent}`;
    }
    return '';
  });
}

describeIfChromium('web-layout.test.ts')('the page with 100 models: layout and accessibility', () => {
  let browser: Browser;
  let server: Awaited<ReturnType<typeof servePage>>;

  beforeAll(async () => {
    server = await servePage(hundredModels(MODELS));
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** The page at a window size, with the list rendered and the first model selected. */
  async function open(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
    const opened = await openPage(browser, server.base);
    await opened.page.setViewportSize({ width, height });
    await opened.page.waitForSelector('#models-status[data-state="ready"]', { timeout: WAIT });
    await opened.page.waitForSelector('#selected[data-model]', { timeout: WAIT });
    return opened;
  }

  it.each([
    [1200, 900],
    [390, 844],
  ])(
    'at %dx%d every column and the last row are reachable inside the table box, and the page never scrolls sideways',
    async (width, height) => {
      const { page, errors } = await open(width, height);
      const rows = page.locator('#models tbody tr');
      expect(await rows.count()).toBe(MODELS + 1);
      const last = rows.last();
      expect(await last.getAttribute('data-name')).toBe(LAST);

      const headers = page.locator('#models thead th');
      const cells = last.locator('td');
      expect(await headers.count()).toBe(9);
      expect(await cells.count()).toBe(9);
      const problems: string[] = [];
      for (const [what, list] of [
        ['header', headers],
        ['last row cell', cells],
      ] as const) {
        for (let i = 0; i < (await list.count()); i++) {
          const problem = await hiddenBy(list.nth(i));
          if (problem) problems.push(`${what} ${i + 1} (${await list.nth(i).textContent()}): ${problem}`);
        }
      }
      expect(problems).toEqual([]);

      const layout = await page.evaluate(() => ({
        pageWidth: document.documentElement.scrollWidth,
        window: document.documentElement.clientWidth,
        tableBox: document.querySelector('.table-wrap')!.getBoundingClientRect().height,
        generateFormTop: document.getElementById('generate-form')!.getBoundingClientRect().top + scrollY,
      }));
      console.log(`${width}x${height}: ${JSON.stringify(layout)}`);
      expect(layout.pageWidth).toBeLessThanOrEqual(layout.window);
      // A hundred rows scroll inside the box: it takes at most about two thirds of the window, and
      // the generate form starts within the first two windows' height.
      expect(layout.tableBox).toBeLessThanOrEqual(0.7 * height);
      expect(layout.generateFormTop).toBeLessThan(2 * height);

      // Both forms fit the window: every field, fieldset and button lies within it.
      const outside = await page.$$eval(
        '#generate-form :is(label, input, textarea, button, fieldset, select), #train-form :is(label, input, textarea, button, fieldset, select)',
        (els) =>
          els
            .filter((el) => {
              const r = el.getBoundingClientRect();
              return r.left < -1 || r.right > document.documentElement.clientWidth + 1;
            })
            .map((el) => el.outerHTML.slice(0, 80)),
      );
      expect(outside).toEqual([]);
      // Long lyrics, even a run of punctuation no line may start with, wrap inside #generated.
      await page.evaluate(() => {
        document.getElementById('generated')!.textContent = `不分开${'，'.repeat(200)}`;
      });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(layout.window);
      expect(errors).toEqual([]);
      await page.close();
    },
  );

  it('at 390x844 the layout still holds with a column of three buttons in every row and a long message under a field', async () => {
    const { page, errors } = await open(390, 844);
    // What per-row actions (Rename, Delete, Download) and per-field messages add to the markup.
    await page.evaluate(() => {
      document.querySelector('#models thead tr')!.append(Object.assign(document.createElement('th'), { textContent: 'actions' }));
      document.querySelectorAll('#models tbody tr').forEach((row) => {
        const td = document.createElement('td');
        for (const label of ['Rename', 'Delete', 'Download'])
          td.append(Object.assign(document.createElement('button'), { type: 'button', textContent: label }), ' ');
        row.append(td);
      });
      const message = Object.assign(document.createElement('span'), {
        className: 'problem',
        textContent: `hidden must be a whole number from 1 to 4096, not ${'9'.repeat(60)}`,
      });
      document.getElementById('hidden')!.after(message);
    });
    const last = page.locator('#models tbody tr').last();
    expect(await hiddenBy(last.locator('td').last())).toBe('');
    expect(await hiddenBy(page.locator('#models thead th').last())).toBe('');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('every control and button has a name a screen reader reads, and getByLabel / getByRole find it by that name', async () => {
    const { page, errors } = await open(390, 844);
    const cdp = await page.context().newCDPSession(page);
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
    const selector = 'input, textarea, select, button, progress';
    const { nodeIds } = await cdp.send('DOM.querySelectorAll', { nodeId: root.nodeId, selector });
    expect(nodeIds.length).toBeGreaterThan(20);
    const unnamed: string[] = [];
    const named: { id: string; role: string; name: string }[] = [];
    for (const nodeId of nodeIds) {
      const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
      const ax = nodes[0];
      const name = String(ax.name?.value ?? '').trim();
      const { outerHTML } = await cdp.send('DOM.getOuterHTML', { nodeId });
      const id = /\bid="([^"]+)"/.exec(outerHTML)?.[1] ?? '';
      if (!name) unnamed.push(outerHTML.slice(0, 100));
      else named.push({ id, role: String(ax.role?.value), name });
    }
    expect(unnamed).toEqual([]);
    for (const { id, role, name } of named.filter((n) => n.id)) {
      const found = role === 'button' ? page.getByRole('button', { name, exact: true }) : page.getByLabel(name, { exact: true });
      expect({ id, name, found: await found.evaluateAll((els) => els.map((el) => el.id)) }).toEqual({
        id,
        name,
        found: expect.arrayContaining([id]),
      });
    }
    // The fields the brief names, by their visible labels.
    for (const [label, id] of [
      ['prefix', 'prefix'],
      ['length', 'length'],
      ['temperature', 'temperature'],
      ['top-k', 'top-k'],
      ['hidden', 'hidden'],
      ['epochs', 'epochs'],
      ['corpus text to paste', 'corpus-text'],
      ['corpus .txt file', 'corpus-file'],
    ])
      expect(await page.getByLabel(label, { exact: true }).getAttribute('id')).toBe(id);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the table is a named grid with one Tab stop; arrows move, Enter picks a model, and focus shows', async () => {
    const { page, errors } = await open(1200, 900);
    const grid = page.getByRole('grid', { name: 'Models' });
    expect(await grid.getAttribute('id')).toBe('models');
    const first = await page.getAttribute('#selected', 'data-model');
    expect(await page.locator('#models tbody tr[aria-selected="true"]').count()).toBe(1);
    expect(await page.getAttribute('#models tbody tr[aria-selected="true"]', 'data-name')).toBe(first);
    // The unreadable row is not offered for selection.
    expect(await page.getAttribute('#models tbody tr.unreadable', 'aria-selected')).toBeNull();

    // Tab from the top of the page reaches the selected row first (nothing before it takes focus)...
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await page.keyboard.press('Tab');
    const focused = () => page.evaluate(() => (document.activeElement as HTMLElement).dataset.name ?? document.activeElement!.id);
    expect(await focused()).toBe(first);
    // ...its focus is visible (a ring drawn by its cells)...
    expect(await page.$eval('#models tbody tr:focus td', (td) => getComputedStyle(td).boxShadow)).not.toBe('none');
    // ...ArrowDown moves to the next rows, End to the last, Enter picks it.
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    const third = await focused();
    expect(third).not.toBe(first);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`#selected[data-model="${third}"]`, { timeout: WAIT });
    expect(await page.getAttribute(`#models tbody tr[data-name="${third}"]`, 'aria-selected')).toBe('true');
    expect(await page.locator('#models tbody tr[aria-selected="true"]').count()).toBe(1);
    await page.keyboard.press('End');
    expect(await focused()).toBe(LAST);
    await page.keyboard.press(' ');
    await page.waitForSelector(`#selected[data-model="${LAST}"]`, { timeout: WAIT });
    // One Tab stop for a hundred rows: the next Tab leaves the table for the first control after
    // it, the "open a model zip" picker of the store panel.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement!.closest('#models') === null)).toBe(true);
    expect(await focused()).toBe('open-zip');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('#generated is a polite live region, busy while it streams; status lines, headings and .note contrast', async () => {
    const { page, errors } = await open(1200, 900);
    expect(await page.getAttribute('#generated', 'aria-live')).toBe('polite');
    await page.evaluate(() => {
      const seen: (string | null)[] = [];
      (window as unknown as { busy: (string | null)[] }).busy = seen;
      const out = document.getElementById('generated')!;
      new MutationObserver(() => seen.push(out.getAttribute('aria-busy'))).observe(out, {
        attributes: true,
        attributeFilter: ['aria-busy'],
      });
    });
    await page.fill('#length', '30');
    await page.click('#generate-button');
    await page.waitForSelector('#generated[data-state="done"]', { timeout: WAIT });
    expect(await page.evaluate(() => (window as unknown as { busy: (string | null)[] }).busy)).toEqual(['true', null]);

    for (const id of ['backend', 'models-status', 'progress']) expect(await page.getAttribute(`#${id}`, 'role')).toBe('status');

    const levels = await page.$$eval('h1, h2, h3, h4, h5, h6', (hs) => hs.map((h) => Number(h.tagName[1])));
    expect(levels[0]).toBe(1);
    expect(levels.filter((l) => l === 1)).toHaveLength(1);
    for (let i = 1; i < levels.length; i++) expect(levels[i] - levels[i - 1]).toBeLessThanOrEqual(1);

    // WCAG AA for normal text: 4.5:1 between .note's colour and the first opaque background behind it.
    const ratios = await page.$$eval('.note', (notes) => {
      const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
      const luminance = ([r, g, b]: number[]) => {
        const lin = (v: number) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
      };
      return notes.map((note) => {
        let bg = [255, 255, 255];
        for (let a: Element | null = note; a; a = a.parentElement) {
          const c = rgb(getComputedStyle(a).backgroundColor);
          if (c.length === 3 || (c.length === 4 && c[3] === 1)) {
            bg = c.slice(0, 3);
            break;
          }
        }
        const [l1, l2] = [luminance(rgb(getComputedStyle(note).color)), luminance(bg)].sort((x, y) => y - x);
        return { id: note.id || note.textContent!.slice(0, 20), ratio: Math.round(((l1 + 0.05) / (l2 + 0.05)) * 100) / 100 };
      });
    });
    console.log(`.note contrast: ${[...new Set(ratios.map((r) => r.ratio))].join(', ')} to 1`);
    expect(ratios.length).toBeGreaterThan(3);
    expect(ratios.filter((r) => r.ratio < 4.5)).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });
});
