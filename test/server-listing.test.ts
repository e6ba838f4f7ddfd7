/**
 * The model list (/models.json) over a hostile models folder (issue 18): links out of the folder,
 * FIFOs, files too large, JSON that does not parse, a string where a number belongs. Each such
 * model is listed as unreadable with a reason that quotes nothing of the file, nothing is opened
 * that could block, the other models are unaffected; and unchanged checkpoints are not parsed again.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { CheckpointCache, listModels, modelFolder, parseCheckpoint, type ModelListing } from '../src/node/model-listing';
import { closeServer, createPageServer } from '../src/node/page-server';
import { REPETITIVE_LYRIC, tempDir, writeFile } from './helpers';

const BIN = path.resolve(__dirname, '..', 'bin', 'lstm-lyrics.js');
const dir = tempDir();
const models = path.join(dir, 'models');
const outside = path.join(dir, 'outside');
const SECRET = 'SECRET-CONTENT-4711';

function byName(list: ModelListing[]): Record<string, ModelListing> {
  return Object.fromEntries(list.map((m) => [m.name, m]));
}

function copyModel(name: string): string {
  const to = path.join(models, name);
  fs.cpSync(path.join(models, 'good'), to, { recursive: true });
  return to;
}

beforeAll(() => {
  const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
  const args = ['train', '--corpus', corpus, '--hidden', '8', '--epochs', '1', '--batch-size', '4', '--num-steps', '8', '--pred-len', '2'];
  const r = spawnSync(process.execPath, [BIN, ...args, '--threads', '1', '--out', path.join(models, 'good')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  fs.mkdirSync(outside);
  fs.cpSync(path.join(models, 'good'), path.join(outside, 'model'), { recursive: true });

  // checkpoint.json a link to /etc/passwd, and to a checkpoint outside the folder.
  fs.rmSync(path.join(copyModel('passwd-link'), 'checkpoint.json'));
  fs.symlinkSync('/etc/passwd', path.join(models, 'passwd-link', 'checkpoint.json'));
  fs.rmSync(path.join(copyModel('outside-link'), 'checkpoint.json'));
  fs.symlinkSync(path.join(outside, 'model', 'checkpoint.json'), path.join(models, 'outside-link', 'checkpoint.json'));
  // Not JSON, with something the parser's own message would quote.
  fs.writeFileSync(path.join(copyModel('bad-json'), 'checkpoint.json'), `${SECRET} {`);
  // A FIFO as checkpoint.json, and as a weight file.
  fs.mkdirSync(path.join(models, 'fifo-checkpoint'));
  spawnSync('mkfifo', [path.join(models, 'fifo-checkpoint', 'checkpoint.json')]);
  fs.rmSync(path.join(copyModel('fifo-weights'), 'weights.bin'));
  spawnSync('mkfifo', [path.join(models, 'fifo-weights', 'weights.bin')]);
  // Over the cap: 2 MiB of valid-looking JSON.
  fs.mkdirSync(path.join(models, 'huge'));
  fs.writeFileSync(path.join(models, 'huge', 'checkpoint.json'), `{"format":"lstm-lyrics/1","pad":"${'x'.repeat(2 * 1024 * 1024)}"}`);
  // A string where a number belongs (it broke the page's whole list).
  const meta = JSON.parse(fs.readFileSync(path.join(models, 'good', 'checkpoint.json'), 'utf8'));
  meta.history[0].perplexity = SECRET;
  fs.writeFileSync(path.join(copyModel('string-perplexity'), 'checkpoint.json'), JSON.stringify(meta));
  // `files` naming something outside the directory.
  const escaping = {
    ...JSON.parse(fs.readFileSync(path.join(models, 'good', 'checkpoint.json'), 'utf8')),
    files: ['../../outside/model/weights.bin'],
  };
  fs.writeFileSync(path.join(copyModel('files-escape'), 'checkpoint.json'), JSON.stringify(escaping));
}, 120_000);

describe('a hostile models folder', () => {
  it('lists each bad model as unreadable, with a reason that quotes nothing of the file, and the good one as readable', () => {
    const t0 = Date.now();
    const list = byName(listModels(models));
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(list.good).toMatchObject({ readable: true, impl: 'scratch' });
    expect(list).toMatchObject({
      'passwd-link': { readable: false, reason: 'passwd-link/checkpoint.json links out of the models folder' },
      'outside-link': { readable: false, reason: 'outside-link/checkpoint.json links out of the models folder' },
      'bad-json': { readable: false, reason: 'cannot read bad-json/checkpoint.json: not valid JSON' },
      'fifo-checkpoint': { readable: false, reason: 'fifo-checkpoint/checkpoint.json is not a regular file' },
      'fifo-weights': { readable: false, reason: 'weights.bin: not a regular file' },
      huge: {
        readable: false,
        reason: expect.stringMatching(/^huge\/checkpoint\.json is too large \(\d+ bytes; a checkpoint is at most 1 MiB\)$/),
      },
      'string-perplexity': {
        readable: false,
        reason: 'string-perplexity/checkpoint.json is corrupt: history[0].perplexity must be a finite number',
      },
      'files-escape': {
        readable: false,
        reason: 'files-escape/checkpoint.json is corrupt: files[0] is not a plain file name inside the model directory',
      },
    });
    const json = JSON.stringify(Object.values(list));
    expect(json).not.toContain(SECRET);
    expect(json).not.toContain('root:');
    expect(json).not.toContain(dir); // no path on the server's disk either
  });

  it('never reads a checkpoint over the cap', () => {
    const parse = jest.fn(parseCheckpoint);
    listModels(models, new CheckpointCache(parse));
    expect(parse.mock.calls.map(([, where]) => where)).not.toContain('huge/checkpoint.json');
  });

  it('serves /models.json and refuses the bad models files, quickly, over HTTP', async () => {
    const server = createPageServer({ modelsDir: models });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const get = (target: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: target, timeout: 5_000 }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('timeout', () => req.destroy(new Error(`${target}: no answer in 5 s`)));
        req.on('error', reject);
      });
    try {
      const list = await get('/models.json');
      expect(list.status).toBe(200);
      expect(list.body).not.toContain(SECRET);
      expect(list.body).not.toContain('root:');
      for (const target of [
        '/models/passwd-link/checkpoint.json',
        '/models/outside-link/checkpoint.json',
        '/models/fifo-checkpoint/checkpoint.json',
        '/models/fifo-weights/weights.bin',
        '/models/huge/checkpoint.json',
        '/models/files-escape/weights.bin',
      ]) {
        expect({ target, status: (await get(target)).status }).toEqual({ target, status: 404 });
      }
      expect((await get('/models/good/weights.bin')).status).toBe(200);
    } finally {
      await closeServer(server);
    }
  });
});

describe('serve over the hostile folder, as a process', () => {
  it('starts within seconds despite the FIFOs, lists the models, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--models', models, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const started = Date.now();
      const out = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stdout!.on('data', (d) => {
          text += d;
          if (text.includes('serving ')) resolve(text);
        });
        setTimeout(() => reject(new Error(`serve did not start in 10 s: ${text}`)), 10_000).unref();
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(out).toMatch(/serving http:\/\/127\.0\.0\.1:\d+\/ \(\d+ model directories in /);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 30_000);
});

describe('the checkpoint cache', () => {
  it('parses an unchanged checkpoint once, and one that changed again', () => {
    const parse = jest.fn(parseCheckpoint);
    const cache = new CheckpointCache(parse);
    const parsedFor = (name: string) => parse.mock.calls.filter(([, where]) => where === `${name}/checkpoint.json`).length;
    const first = byName(listModels(models, cache));
    expect(parsedFor('good')).toBe(1);
    expect(parsedFor('bad-json')).toBe(1);
    const calls = parse.mock.calls.length;
    const second = byName(listModels(models, cache));
    expect(parse.mock.calls.length).toBe(calls); // nothing re-parsed, good or bad
    expect(second).toEqual(first);

    // A save replaces checkpoint.json: written beside, renamed over (a new inode, maybe the same mtime).
    const file = path.join(models, 'good', 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
    meta.epoch = 7;
    fs.writeFileSync(`${file}.new`, JSON.stringify(meta));
    fs.renameSync(`${file}.new`, file);
    const third = byName(listModels(models, cache));
    expect(parsedFor('good')).toBe(2);
    expect(parse.mock.calls.length).toBe(calls + 1);
    expect(third.good).toMatchObject({ readable: true, epochs: 7 });
  });

  it('gives the same reason whether a model file request or the list read the checkpoint first', () => {
    const cache = new CheckpointCache();
    expect(modelFolder(models, ['bad-json'], cache)).toBeUndefined();
    expect(byName(listModels(models, cache))['bad-json']).toEqual({
      name: 'bad-json',
      readable: false,
      reason: 'cannot read bad-json/checkpoint.json: not valid JSON',
    });
  });
});
