/** `lstm-lyrics corpus info|fetch`; fetch runs against a local HTTP server, never the internet. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { handler, KNOWN_CORPORA, type CorpusArgs, type KnownCorpus } from '../src/cli/commands/corpus';
import { UsageError } from '../src/core/errors';
import { DownloadError } from '../src/node/fetch';
import { tempDir, writeFile, writeZip } from './helpers';

const DEFAULTS: CorpusArgs = { action: 'info', target: '', maxChars: 10_000, top: 10, sampleChars: 80, dir: 'corpus', timeout: 60 };
const silent = { info: () => {} };

describe('corpus info', () => {
  const dir = tempDir();
  // 11 characters (the line break reads as a space), 5 distinct; the first 5 hold 3 distinct.
  const file = writeFile(dir, 'song.txt', '分开分开 不分开\n爱爱');

  it('prints characters, vocabulary (whole and first N), the most frequent characters and a sample', async () => {
    const lines = await handler({ ...DEFAULTS, target: file, maxChars: 5, top: 3, sampleChars: 4 }, silent);
    const row = (label: string) => lines.find((l) => l.startsWith(`${label} `))?.replace(/^\S+( \S+)?\s+/, '');
    expect(lines[0]).toMatch(new RegExp(`^file\\s+${file.replace(/[/\\]/g, '.')}, 29 bytes, SHA-256 [0-9a-f]{64}$`));
    expect(row('characters')).toMatch(/^11 /);
    expect(row('vocabulary')).toBe('5 distinct characters');
    expect(lines.find((l) => l.startsWith('first 5'))).toMatch(/^first 5\s+3 distinct characters \(what train reads with --max-chars 5\)$/);
    expect(row('most frequent')).toBe('"分" 27.3%  "开" 27.3%  " " 18.2%'); // ties: by code point
    expect(lines.find((l) => l.startsWith('sample'))).toMatch(/^sample\s+分开分开…$/);
    // Values line up in one column.
    expect(new Set(lines.map((l) => l.search(/(?<=\S {2,})\S/))).size).toBe(1);
  });

  it('reads a zip, and leaves out the first-N line when N covers the whole text', async () => {
    const zip = writeZip(dir, 'lyrics.zip', { 'a/lyrics.txt': '不分开'.repeat(3) });
    const lines = await handler({ ...DEFAULTS, target: zip }, silent);
    expect(lines.some((l) => /^characters\s+9 /.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('first'))).toBe(false);
  });

  it.each([
    ['a missing file', { target: path.join(dir, 'nope.txt') }, /corpus not found/],
    ['a negative --top', { target: file, top: -1 }, /--top must be a whole number >= 0/],
  ])('refuses %s as a usage error', async (_what, args, message) => {
    await expect(handler({ ...DEFAULTS, ...args }, silent)).rejects.toThrow(message);
    await expect(handler({ ...DEFAULTS, ...args }, silent)).rejects.toBeInstanceOf(UsageError);
  });
});

describe('corpus fetch', () => {
  // A zip the test makes stands in for jaychou_lyrics.txt.zip.
  const zip = fs.readFileSync(
    writeZip(tempDir(), 'jaychou_lyrics.txt.zip', { 'jaychou_lyrics.txt': '想要有直升机 想要和你飞到宇宙去\n'.repeat(50) }),
  );
  const sha256 = createHash('sha256').update(zip).digest('hex');
  /** What each path of the server does. */
  const routes: Record<string, (res: http.ServerResponse) => void> = {
    '/good.zip': (res) => res.writeHead(200, { 'content-length': zip.length }).end(zip),
    // Promises the whole length, sends half, then drops the connection.
    '/truncated.zip': (res) => {
      res.writeHead(200, { 'content-length': zip.length });
      res.write(zip.subarray(0, zip.length >> 1), () => res.socket?.destroy());
    },
    '/moved': (res) => res.writeHead(302, { location: '/good.zip' }).end(),
    '/missing.zip': (res) => res.writeHead(404).end('not found'),
    '/silent.zip': () => {}, // never answers
  };
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => (routes[req.url ?? ''] ?? routes['/missing.zip'])(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const known = (expected = { bytes: zip.length, sha256 }): Record<string, KnownCorpus> => ({
    jaychou: { ...KNOWN_CORPORA.jaychou, expected },
  });
  const fetch = (dir: string, url: string, more: Partial<CorpusArgs> = {}, expected?: KnownCorpus['expected']) =>
    handler({ ...DEFAULTS, action: 'fetch', target: 'jaychou', dir, url: base + url, ...more }, silent, known(expected));

  it("knows the lesson's zip: d2l-zh v1, 52,607 bytes, its SHA-256", () => {
    expect(KNOWN_CORPORA.jaychou).toMatchObject({
      url: 'https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1/data/jaychou_lyrics.txt.zip',
      file: 'jaychou_lyrics.txt.zip',
      expected: { bytes: 52_607, sha256: '3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043' },
    });
  });

  it('downloads, verifies and saves the zip, which then reads as a corpus; a second fetch keeps it', async () => {
    const dir = path.join(tempDir(), 'corpus'); // made by fetch
    const [line] = await fetch(dir, '/good.zip');
    const saved = path.join(dir, 'jaychou_lyrics.txt.zip');
    expect(line).toBe(
      `saved ${saved} (${zip.length.toLocaleString('en')} bytes, SHA-256 ${sha256} verified); train on it with: lstm-lyrics train --corpus ${saved}`,
    );
    expect(fs.readdirSync(dir)).toEqual(['jaychou_lyrics.txt.zip']);
    expect(fs.readFileSync(saved).equals(zip)).toBe(true);
    const info = await handler({ ...DEFAULTS, target: saved }, silent);
    expect(info.some((l) => /^characters\s+850 /.test(l))).toBe(true);
    const [again] = await fetch(dir, '/missing.zip'); // not asked for: the file is already right
    expect(again).toMatch(/is already here and verified/);
  });

  it('follows redirects', async () => {
    const dir = tempDir();
    await fetch(dir, '/moved');
    expect(fs.readdirSync(dir)).toEqual(['jaychou_lyrics.txt.zip']);
  });

  it.each([
    [
      'the connection drops mid-file',
      '/truncated.zip',
      {},
      undefined,
      /download of \S+\/truncated.zip failed: connection lost after \d[\d,]* of [\d,]+ bytes/,
    ],
    [
      'the checksum is wrong',
      '/good.zip',
      {},
      { bytes: zip.length, sha256: 'f'.repeat(64) },
      new RegExp(`failed: SHA-256 is ${sha256}, expected f{64}; nothing saved$`),
    ],
    ['the size is wrong', '/good.zip', {}, { bytes: zip.length + 1, sha256 }, /failed: got [\d,]+ bytes, expected [\d,]+; nothing saved$/],
    [
      'the server sends more than expected',
      '/good.zip',
      {},
      { bytes: 10, sha256 },
      /failed: the server sent more than the expected 10 bytes/,
    ],
    ['the server answers 404', '/missing.zip', {}, undefined, /failed: HTTP 404 Not Found; nothing saved$/],
    ['the server never answers', '/silent.zip', { timeout: 0.3 }, undefined, /failed: no data for 0.3 s \(timed out\)/],
  ])('leaves nothing behind when %s', async (_what, url, more, expected, message) => {
    const parent = tempDir();
    const dir = path.join(parent, 'corpus', 'lyrics'); // fetch makes it, and removes it again
    const error = await fetch(dir, url, more, expected).catch((err) => err);
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('removes the partial file however early the connection drops', async () => {
    const dir = tempDir();
    for (let i = 0; i < 20; i++) await expect(fetch(dir, '/truncated.zip')).rejects.toThrow(/connection lost/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('replaces a wrong file already there only with a verified one', async () => {
    const dir = tempDir();
    const saved = writeFile(dir, 'jaychou_lyrics.txt.zip', 'not the zip');
    await expect(fetch(dir, '/truncated.zip')).rejects.toThrow(/connection lost/);
    expect(fs.readFileSync(saved, 'utf8')).toBe('not the zip');
    expect(fs.readdirSync(dir)).toEqual(['jaychou_lyrics.txt.zip']);
    await fetch(dir, '/good.zip');
    expect(fs.readFileSync(saved).equals(zip)).toBe(true);
  });

  it.each([
    ['an unknown corpus', { target: 'beatles' }, /no known corpus "beatles"; fetch knows: jaychou/],
    ['a URL that is not http(s)', { url: 'ftp://example.com/x.zip' }, /--url must be http:\/\/ or https:\/\//],
    ['a zero --timeout', { timeout: 0 }, /--timeout must be a number > 0/],
  ])('refuses %s as a usage error, before any download', async (_what, args, message) => {
    const dir = tempDir();
    const error = await handler(
      { ...DEFAULTS, action: 'fetch', target: 'jaychou', dir, url: `${base}/good.zip`, ...args },
      silent,
      known(),
    ).catch((err) => err);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toMatch(message);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
