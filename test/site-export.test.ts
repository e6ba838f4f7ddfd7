/**
 * `serve --export DIR` never destroys (issue 18): it refuses a folder holding a user's files and
 * any folder in or around the models folder, before writing anything; it writes beside DIR and
 * renames into place, so a failure half-way leaves nothing and a repeated export replaces the old one whole.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main, type Io } from '../src/cli/main';
import { EXPORT_MARKER, exportSite } from '../src/node/site-export';
import { colorsFor } from '../src/terminal/colors';
import { noProgress } from '../src/terminal/progress';
import { REPETITIVE_LYRIC, tempDir, writeFile } from './helpers';

const BIN = path.resolve(__dirname, '..', 'bin', 'lstm-lyrics.js');
let dir: string;
let models: string;

/** Every file under `root`, with its bytes as hex: equal snapshots mean nothing changed. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) visit(r);
      else out[r] = fs.readFileSync(path.join(root, r)).toString('hex');
    }
  };
  visit('');
  return out;
}

async function serve(args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const logger = { info: (l: string) => lines.push(l) };
  const io: Io = {
    out: logger,
    err: logger,
    progress: noProgress,
    errColors: colorsFor({ isTTY: false }),
    stop: new AbortController().signal,
  };
  const code = await main(['serve', '--models', models, ...args], io);
  return { code, lines };
}

beforeAll(() => {
  dir = tempDir();
  models = path.join(dir, 'models');
  const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
  const args = ['train', '--corpus', corpus, '--hidden', '8', '--epochs', '1', '--batch-size', '4', '--num-steps', '8', '--pred-len', '2'];
  const r = spawnSync(process.execPath, [BIN, ...args, '--threads', '1', '--out', path.join(models, 'good')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}, 120_000);

describe('serve --export refuses, before writing anything', () => {
  it("a folder holding a user's files: exit 2, one line, the files unchanged byte for byte", async () => {
    const site = path.join(tempDir(), 'site');
    fs.mkdirSync(site);
    fs.writeFileSync(path.join(site, 'index.html'), '<h1>my own page</h1>\n');
    fs.writeFileSync(path.join(site, 'models.json'), '["mine"]');
    const before = snapshot(site);
    const siblings = fs.readdirSync(path.dirname(site));
    const { code, lines } = await serve(['--export', site]);
    expect(code).toBe(2);
    expect(lines).toEqual([
      `lstm-lyrics: --export ${site} is a folder that holds other files (2 entries, no ${EXPORT_MARKER} from a previous export); name a new or empty folder`,
    ]);
    expect(snapshot(site)).toEqual(before);
    expect(fs.readdirSync(path.dirname(site))).toEqual(siblings);
  });

  it.each([
    ['the models folder', (m: string) => m, 'is the models folder'],
    ['a folder inside it', (m: string) => path.join(m, 'site'), 'is inside the models folder'],
    ['a model directory', (m: string) => path.join(m, 'good'), 'is inside the models folder'],
    ['a folder holding it', (m: string) => path.dirname(m), 'holds the models folder'],
  ])('%s: exit 2, nothing written', async (_what, target, rule) => {
    const site = target(models);
    const before = snapshot(dir);
    const { code, lines } = await serve(['--export', site]);
    expect(code).toBe(2);
    expect(lines).toEqual([`lstm-lyrics: --export ${site} ${rule} ${models}; name a folder outside it`]);
    expect(snapshot(dir)).toEqual(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['lyric.txt', 'models']);
  });

  it('the models folder reached through a link: exit 2', async () => {
    const link = path.join(tempDir(), 'models-link');
    fs.symlinkSync(models, link);
    const before = snapshot(dir);
    expect((await serve(['--export', path.join(link, 'site')])).code).toBe(2);
    expect(snapshot(dir)).toEqual(before);
  });
});

describe('serve --export writes beside and renames into place', () => {
  it('writes into an empty folder, and marks it as an export', async () => {
    const site = path.join(tempDir(), 'site');
    fs.mkdirSync(site);
    expect((await serve(['--export', site])).code).toBe(0);
    expect(fs.existsSync(path.join(site, EXPORT_MARKER))).toBe(true);
    expect(fs.existsSync(path.join(site, 'models', 'good', 'weights.bin'))).toBe(true);
  });

  it('replaces a previous export whole: a file only the old one had is gone, no temp folder is left', async () => {
    const parent = tempDir();
    const site = path.join(parent, 'site');
    fs.cpSync(path.join(models, 'good'), path.join(models, 'second'), { recursive: true });
    try {
      expect((await serve(['--export', site])).code).toBe(0);
      expect(fs.existsSync(path.join(site, 'models', 'second', 'weights.bin'))).toBe(true);
    } finally {
      fs.rmSync(path.join(models, 'second'), { recursive: true });
    }
    expect((await serve(['--export', site])).code).toBe(0);
    expect(fs.existsSync(path.join(site, 'models', 'second'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(site, 'models.json'), 'utf8')).map((m: { name: string }) => m.name)).toEqual(['good']);
    expect(fs.readdirSync(parent)).toEqual(['site']);
  });

  it('a failure half-way leaves no folder and no temp folder', () => {
    const parent = tempDir();
    const site = path.join(parent, 'new', 'site');
    let written = 0;
    const failing = (file: string, bytes: Uint8Array | string) => {
      if (++written === 4) throw new Error('ENOSPC: no space left on device, write');
      fs.writeFileSync(file, bytes);
    };
    expect(() => exportSite(site, { modelsDir: models, writeFile: failing })).toThrow(
      `cannot export to ${site}: ENOSPC: no space left on device, write; nothing was written`,
    );
    expect(written).toBe(4);
    expect(fs.readdirSync(parent)).toEqual([]); // not even the parent it made
  });

  it('a failure half-way over a previous export leaves that export as it was', () => {
    const parent = tempDir();
    const site = path.join(parent, 'site');
    exportSite(site, { modelsDir: models });
    const before = snapshot(site);
    let written = 0;
    const failing = (file: string, bytes: Uint8Array | string) => {
      if (++written === 9) throw new Error('EIO: i/o error, write');
      fs.writeFileSync(file, bytes);
    };
    expect(() => exportSite(site, { modelsDir: models, writeFile: failing })).toThrow(
      `cannot export to ${site}: EIO: i/o error, write; ${site} is unchanged`,
    );
    expect(snapshot(site)).toEqual(before);
    expect(fs.readdirSync(parent)).toEqual(['site']);
  });
});
