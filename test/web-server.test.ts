/**
 * `lstm-lyrics serve` without a browser: the model list, what the server serves and refuses
 * (path escapes of every kind get 404), methods, headers, stopping, --export, and the page's zip
 * writer. The page itself is driven in real Chromium in web-page.test.ts.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { main, type Io } from '../src/cli/main';
import { listModels, type ReadableModel } from '../src/node/model-listing';
import { allowedHosts, closeServer, createPageServer, resolveRequest, CONTENT_SECURITY_POLICY } from '../src/node/page-server';
import { colorsFor } from '../src/terminal/colors';
import { noProgress } from '../src/terminal/progress';
import { crc32, zipFiles } from '../src/web/zip';
import { tempDir, writeFile, REPETITIVE_LYRIC } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'lstm-lyrics.js');

/** A models folder: two small trained models, and broken neighbours of every kind. */
function modelsFolder(): { models: string; outside: string } {
  const dir = tempDir();
  const models = path.join(dir, 'models');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret');
  const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
  for (const impl of ['scratch', 'builtin']) {
    const r = spawnSyncCli([
      'train',
      '--impl',
      impl,
      '--corpus',
      corpus,
      '--hidden',
      '8',
      '--epochs',
      '2',
      '--batch-size',
      '4',
      '--num-steps',
      '8',
      '--report-every',
      '2',
      '--pred-len',
      '4',
      '--out',
      path.join(models, 'runs', impl),
      '--backend',
      'wasm',
    ]);
    expect(r.status).toBe(0);
  }
  fs.mkdirSync(path.join(models, 'no-checkpoint'));
  fs.writeFileSync(path.join(models, 'no-checkpoint', 'weights.bin'), 'x');
  fs.mkdirSync(path.join(models, 'bad-json'));
  fs.writeFileSync(path.join(models, 'bad-json', 'checkpoint.json'), '{ not json');
  // A model whose weights are a link out of the folder: listed, but the link is never followed.
  fs.cpSync(path.join(models, 'runs', 'scratch'), path.join(models, 'linked'), { recursive: true });
  fs.rmSync(path.join(models, 'linked', 'weights.bin'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(models, 'linked', 'weights.bin'));
  fs.symlinkSync(outside, path.join(models, 'escape'));
  return { models, outside };
}

function spawnSyncCli(args: string[]) {
  return require('node:child_process').spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT }) as {
    status: number;
    stdout: string;
    stderr: string;
  };
}

function request(url: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw request line, so the path reaches the server exactly as written (no client normalising). */
function rawGet(port: number, target: string, host = `127.0.0.1:${port}`): Promise<number> {
  return rawResponse(port, target, host).then((r) => r.status);
}

/** A raw request with the given Host header (or none); the status and the body after the headers. */
function rawResponse(port: number, target: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = require('node:net').connect(port, '127.0.0.1', () =>
      socket.write(`GET ${target} HTTP/1.0\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`),
    );
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    socket.on('error', reject);
  });
}

let models: string;
let server: http.Server;
let base: string;
let port: number;

beforeAll(async () => {
  ({ models } = modelsFolder());
  server = createPageServer({ modelsDir: models });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
}, 120_000);

afterAll(async () => {
  await closeServer(server);
});

describe('the model list', () => {
  it('lists every model directory, readable or not, by its path under the folder', () => {
    const list = listModels(models);
    const byName = Object.fromEntries(list.map((m) => [m.name, m]));
    expect(Object.keys(byName).sort()).toEqual(['bad-json', 'escape', 'linked', 'no-checkpoint', 'runs/builtin', 'runs/scratch']);
    expect(byName['runs/scratch']).toMatchObject({ readable: true, impl: 'scratch', hidden: 8, epochs: 2, corpus: 'lyric.txt' });
    expect(byName['runs/builtin']).toMatchObject({ readable: true, impl: 'builtin', hidden: 8, epochs: 2 });
    expect((byName['runs/builtin'] as ReadableModel).history).toHaveLength(2);
    expect(byName['bad-json']).toMatchObject({ readable: false, reason: 'cannot read bad-json/checkpoint.json: not valid JSON' });
    expect(byName['no-checkpoint']).toMatchObject({ readable: false, reason: expect.stringContaining('no checkpoint.json') });
    expect(byName.linked).toMatchObject({ readable: false, reason: 'weights.bin links out of the models folder' });
    expect(byName.escape).toMatchObject({ readable: false, reason: 'a link out of the models folder' });
  });

  it("says each model's cell, layers and dropout; one saved before they existed lists as one LSTM layer", () => {
    const byName = Object.fromEntries(listModels(models).map((m) => [m.name, m]));
    expect(byName['runs/scratch']).toMatchObject({ cell: 'lstm', layers: 1, dropout: 0 });
    // An older checkpoint: the same model with no cell, layers or dropout in checkpoint.json.
    const older = path.join(tempDir(), 'models');
    fs.cpSync(path.join(models, 'runs', 'scratch'), path.join(older, 'old'), { recursive: true });
    const file = path.join(older, 'old', 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const key of ['cell', 'layers', 'dropout']) delete meta.model[key];
    fs.writeFileSync(file, JSON.stringify(meta));
    expect(listModels(older)).toEqual([
      expect.objectContaining({ name: 'old', readable: true, impl: 'scratch', cell: 'lstm', layers: 1, dropout: 0 }),
    ]);
  });

  it('is empty, not an error, for a folder that does not exist', () => {
    expect(listModels(path.join(tempDir(), 'nothing'))).toEqual([]);
  });

  it('is served as JSON at /models.json', async () => {
    const res = await request(`${base}/models.json`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(res.body.toString()).map((m: { name: string }) => m.name)).toContain('runs/scratch');
  });
});

describe('what the server serves', () => {
  it.each([
    ['/', 'text/html; charset=utf-8'],
    ['/index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'text/javascript; charset=utf-8'],
    ['/style.css', 'text/css; charset=utf-8'],
    ['/tfjs-backend-wasm-simd.wasm', 'application/wasm'],
    ['/corpus/songci300.txt', 'text/plain; charset=utf-8'],
    ['/models/runs/scratch/checkpoint.json', 'application/json; charset=utf-8'],
    ['/models/runs/scratch/weights.json', 'application/json; charset=utf-8'],
    ['/models/runs/scratch/weights.bin', 'application/octet-stream'],
    ['/models/runs/builtin/model.json', 'application/json; charset=utf-8'],
    ['/models/runs/builtin/weights.bin', 'application/octet-stream'],
  ])('GET %s: 200, %s, with a Content-Security-Policy', async (url, type) => {
    const res = await request(base + url);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(type);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.body.length).toBeGreaterThan(0);
  });

  it('serves a model file byte for byte as the CLI wrote it', async () => {
    const res = await request(`${base}/models/runs/builtin/weights.bin`);
    expect(res.body.equals(fs.readFileSync(path.join(models, 'runs', 'builtin', 'weights.bin')))).toBe(true);
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await request(`${base}/app.js`, 'HEAD');
    expect(res.status).toBe(200);
    expect(Number(res.headers['content-length'])).toBeGreaterThan(1000);
    expect(res.body.length).toBe(0);
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('answers %s with 405 and Allow: GET, HEAD', async (method) => {
    const res = await request(`${base}/`, method);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it('keeps the script policy strict: no unsafe-eval, no inline scripts, no other origins', () => {
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/'unsafe-eval'|script-src[^;]*'unsafe-inline'|https?:/);
  });
});

describe('nothing else on disk is reachable', () => {
  const escapes = [
    '/../package.json',
    '/models/../../package.json',
    '/models/runs/scratch/../../../package.json',
    '/%2e%2e/package.json',
    '/%2E%2E/%2E%2E/package.json',
    '/models/%2e%2e/%2e%2e/package.json',
    '/models/runs%2f..%2f..%2fpackage.json',
    '/models/runs%2Fscratch%2Fweights.bin',
    '/..%2fpackage.json',
    '/..%5cpackage.json',
    '/models\\..\\..\\package.json',
    '/models/runs\\scratch/weights.bin',
    '//etc/passwd',
    '/etc/passwd',
    '/%2fetc%2fpasswd',
    '/models//etc/passwd',
    '/models/runs/scratch/weights.bin%00.txt',
    '/models/runs/scratch%00/weights.bin',
    '/models/linked/weights.bin',
    '/models/escape/secret.txt',
    '/models/runs/scratch/optimizer.bin.tmp',
    '/models/runs/scratch/',
    '/models/runs/scratch',
    '/models/no-checkpoint/weights.bin',
    '/models/bad-json/checkpoint.json',
    '/corpus/../package.json',
    '/corpus/README.md',
    '/package.json',
    '/src/node/page-server.ts',
    '/%',
    '/./index.html',
    'http://127.0.0.1/../package.json',
  ];

  it.each(escapes)('GET %s: 404', async (target) => {
    expect(await rawGet(port, target)).toBe(404);
  });

  it('refuses the same paths before touching the disk', () => {
    for (const target of escapes.filter((t) => t.startsWith('/'))) expect(resolveRequest(target, { modelsDir: models })).toBeUndefined();
  });

  it('does not follow a link out of the folder even when checkpoint.json names the file', async () => {
    expect(fs.readFileSync(path.join(models, 'linked', 'weights.bin'), 'utf8')).toBe('secret');
    expect((await request(`${base}/models/linked/checkpoint.json`)).status).toBe(200);
    expect((await request(`${base}/models/linked/weights.bin`)).status).toBe(404);
  });
});

describe('the Host header (DNS rebinding)', () => {
  it.each(['/', '/models.json', '/models/runs/scratch/weights.bin'])(
    'GET %s with a foreign Host: 421, a short plain line',
    async (target) => {
      for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `localhost:${port + 1}`]) {
        const res = await rawResponse(port, target, host);
        expect({ host, status: res.status }).toEqual({ host, status: 421 });
        expect(res.body).toBe('misdirected request: this server answers only to its own address\n');
      }
      expect((await rawResponse(port, target)).status).toBe(421); // no Host at all (HTTP/1.0)
    },
  );

  it.each(['127.0.0.1', 'localhost', 'LocalHost', '[::1]'])('GET with Host %s:PORT: served', async (name) => {
    expect(await rawGet(port, '/models.json', `${name}:${port}`)).toBe(200);
    expect(await rawGet(port, '/models/runs/scratch/weights.bin', `${name}:${port}`)).toBe(200);
  });

  it('answers to the names of the bound interface only', () => {
    expect([...allowedHosts('127.0.0.1', 8080)].sort()).toEqual(['127.0.0.1:8080', '[::1]:8080', 'localhost:8080']);
    expect(allowedHosts('192.168.1.5', 8080)).toEqual(new Set(['192.168.1.5:8080']));
    expect(allowedHosts('192.168.1.5', 80, 'Box.lan')).toEqual(new Set(['192.168.1.5:80', '192.168.1.5', 'box.lan:80', 'box.lan']));
    const wildcard = allowedHosts('0.0.0.0', 8080);
    for (const list of Object.values(os.networkInterfaces())) {
      for (const i of list ?? [])
        expect(wildcard.has(i.family === 'IPv6' ? `[${i.address.split('%')[0]}]:8080` : `${i.address}:8080`)).toBe(true);
    }
    expect(wildcard.has('localhost:8080')).toBe(true);
    expect(wildcard.has('evil.example:8080')).toBe(false);
  });
});

describe('lstm-lyrics serve', () => {
  function io(lines: string[], stop: AbortSignal): Io {
    const logger = { info: (l: string) => lines.push(l) };
    return { out: logger, err: logger, progress: noProgress, errColors: colorsFor({ isTTY: false }), stop };
  }

  it('--port 0 picks a free port, prints the URL, and returns as soon as the stop signal aborts', async () => {
    const controller = new AbortController();
    const lines: string[] = [];
    const running = main(['serve', '--models', models, '--port', '0'], io(lines, controller.signal));
    while (!lines.some((l) => l.startsWith('serving '))) await new Promise((r) => setTimeout(r, 20));
    const url = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(lines.join('\n'))![0];
    expect(Number(/:(\d+)\//.exec(url)![1])).toBeGreaterThan(0);
    expect((await request(url)).status).toBe(200);
    const t0 = Date.now();
    controller.abort();
    expect(await running).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(request(url)).rejects.toThrow();
  });

  it('warns on stderr, in one line, when --host is not a loopback address', async () => {
    const controller = new AbortController();
    const out: string[] = [];
    const err: string[] = [];
    const running = main(['serve', '--models', models, '--port', '0', '--host', '0.0.0.0'], {
      ...io(out, controller.signal),
      err: { info: (l: string) => err.push(l) },
    });
    while (!out.some((l) => l.startsWith('serving '))) await new Promise((r) => setTimeout(r, 20));
    expect(err).toEqual(['warning: --host 0.0.0.0 exposes the page and every model under --models to the network']);
    const bound = Number(/:(\d+)\//.exec(out.join('\n'))![1]);
    expect(await rawGet(bound, '/models.json', `localhost:${bound}`)).toBe(200);
    expect(await rawGet(bound, '/models.json', `evil.example:${bound}`)).toBe(421);
    controller.abort();
    expect(await running).toBe(0);
  });

  it('binds 127.0.0.1 by default', async () => {
    const controller = new AbortController();
    const lines: string[] = [];
    const running = main(['serve', '--models', models, '--port', '0'], io(lines, controller.signal));
    while (!lines.some((l) => l.startsWith('serving '))) await new Promise((r) => setTimeout(r, 20));
    expect(lines.join('\n')).toMatch(/serving http:\/\/127\.0\.0\.1:\d+\//);
    expect(lines.join('\n')).not.toContain('warning'); // out and err both go to lines here
    controller.abort();
    expect(await running).toBe(0);
  });

  it('stops at once on Ctrl-C (SIGINT) when run as a process, exit 0', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--models', models, '--port', '0'], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    while (!out.includes('serving ')) await new Promise((r) => setTimeout(r, 20));
    const url = /http:\/\/\S+/.exec(out)![0];
    expect((await request(`${url}models.json`)).status).toBe(200);
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(out).toContain('stopped');
  }, 60_000);

  it('a port in use is a usage error (exit 2)', async () => {
    const lines: string[] = [];
    expect(await main(['serve', '--models', models, '--port', String(port)], io(lines, new AbortController().signal))).toBe(2);
    expect(lines.join('\n')).toContain('EADDRINUSE');
  });

  it('--export writes the page, the model list and the chosen models as static files', async () => {
    const site = path.join(tempDir(), 'site');
    const lines: string[] = [];
    expect(
      await main(['serve', '--models', models, '--export', site, '--only', 'runs/scratch'], io(lines, new AbortController().signal)),
    ).toBe(0);
    for (const file of [
      'index.html',
      'app.js',
      'style.css',
      'tfjs-backend-wasm-simd.wasm',
      'corpus/songci300.txt',
      'models.json',
      'models/runs/scratch/checkpoint.json',
      'models/runs/scratch/weights.bin',
    ]) {
      expect(fs.existsSync(path.join(site, file))).toBe(true);
    }
    expect(fs.existsSync(path.join(site, 'models', 'runs', 'builtin'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(site, 'models.json'), 'utf8')).map((m: { name: string }) => m.name)).toEqual([
      'runs/scratch',
    ]);
    expect(await main(['serve', '--models', models, '--export', site, '--only', 'bad-json'], io(lines, new AbortController().signal))).toBe(
      2,
    );
  });
});

describe("the page's zip writer", () => {
  it('writes stored entries any unzip reads back, names in UTF-8, CRC-32 right', () => {
    const files = {
      'scratch/checkpoint.json': Buffer.from('{"a":"不分开"}'),
      'scratch/weights.bin': Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251)),
      'scratch/空.txt': Buffer.alloc(0),
    };
    const zip = new AdmZip(Buffer.from(zipFiles(Object.entries(files).map(([name, bytes]) => ({ name, bytes })))));
    const read = Object.fromEntries(zip.getEntries().map((e) => [e.entryName, e.getData()]));
    expect(Object.keys(read)).toEqual(Object.keys(files));
    for (const [name, bytes] of Object.entries(files)) expect(read[name].equals(bytes)).toBe(true);
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});
