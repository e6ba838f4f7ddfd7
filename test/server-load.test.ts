/**
 * `lstm-lyrics serve` under load, as a real process on 127.0.0.1 (issue 11's server rules): a
 * bounded request flood leaves its memory flat, slow clients are cut off without blocking anyone,
 * and model files that are saved again or removed while served never come out half-written.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { SERVER_LIMITS } from '../src/node/page-server';
import { REPETITIVE_LYRIC, tempDir, writeFile } from './helpers';

const BIN = path.resolve(__dirname, '..', 'bin', 'lstm-lyrics.js');
const dir = tempDir();
const models = path.join(dir, 'models');
let server: ChildProcess;
let port: number;
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function train(out: string, seed: string): void {
  const corpus = writeFile(dir, 'lyric.txt', REPETITIVE_LYRIC);
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'train',
      '--corpus',
      corpus,
      '--hidden',
      '32',
      '--epochs',
      '1',
      '--batch-size',
      '4',
      '--num-steps',
      '8',
      '--pred-len',
      '2',
      '--seed',
      seed,
      '--threads',
      '1',
      '--out',
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(r.stderr);
}

function get(target: string, method = 'GET'): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The server process' resident memory (Linux), in MiB. */
function rssMiB(): number {
  const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

beforeAll(async () => {
  train(path.join(models, 'runs', 'scratch'), '1');
  train(path.join(dir, 'other'), '2'); // a second version of the same model, for the swaps below
  server = spawn(process.execPath, [BIN, 'serve', '--models', models, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      const m = /serving http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
}, 120_000);

afterAll(() => {
  agent.destroy();
  server.kill('SIGKILL');
});

describe('serve under load (127.0.0.1 only)', () => {
  it('answers a bounded flood of 4,000 requests correctly, with flat memory', async () => {
    const targets: [string, string, number][] = [
      ['GET', '/', 200],
      ['GET', '/models.json', 200],
      ['GET', '/runs/scratch/weights.bin'.replace(/^/, '/models'), 200],
      ['GET', '/nothing/here', 404],
      ['POST', '/', 405],
    ];
    const flood = async (count: number) => {
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const [method, target, status] = targets[next++ % targets.length];
          expect({ target, status: (await get(target, method)).status }).toEqual({ target, status });
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
    };
    await flood(1_000); // warm-up: buffers, JIT
    const before = rssMiB();
    await flood(3_000);
    const after = rssMiB();
    if (process.env.SHOW_RSS)
      console.log(`serve RSS after warm-up ${before.toFixed(1)} MiB, after 3,000 more requests ${after.toFixed(1)} MiB`);
    expect(after - before).toBeLessThan(40);
  }, 120_000);

  it('cuts off clients that never finish their headers, and serves others meanwhile', async () => {
    const slow = Array.from({ length: 50 }, () => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n'));
      socket.on('error', () => undefined);
      socket.resume(); // reads what the server sends (its 408), so the socket can end
      return new Promise<number>((resolve) => {
        const opened = Date.now();
        socket.on('close', () => resolve(Date.now() - opened));
      });
    });
    const started = Date.now();
    expect((await get('/models.json')).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    const lifetimes = await Promise.all(slow);
    for (const ms of lifetimes) expect(ms).toBeLessThan(SERVER_LIMITS.headersTimeoutMs + 5_000);
  }, 60_000);

  it('keeps serving while clients stall in the middle of a model file', async () => {
    const stalled = Array.from({ length: 20 }, () => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(`GET /models/runs/scratch/weights.bin HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
      );
      socket.on('error', () => undefined);
      socket.pause(); // never reads
      return socket;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await get('/models/runs/scratch/checkpoint.json')).status).toBe(200);
    stalled.forEach((s) => s.destroy());
  }, 30_000);

  it('a FIFO appearing in the models folder while it runs stalls no request', async () => {
    const within = <T>(ms: number, p: Promise<T>) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms).unref())]);
    fs.mkdirSync(path.join(models, 'late-fifo'));
    expect(spawnSync('mkfifo', [path.join(models, 'late-fifo', 'checkpoint.json')]).status).toBe(0);
    fs.cpSync(path.join(models, 'runs', 'scratch'), path.join(models, 'late-fifo-weights'), { recursive: true });
    fs.rmSync(path.join(models, 'late-fifo-weights', 'weights.bin'));
    expect(spawnSync('mkfifo', [path.join(models, 'late-fifo-weights', 'weights.bin')]).status).toBe(0);
    try {
      const list = await within(5_000, get('/models.json'));
      expect(list.status).toBe(200);
      const byName = Object.fromEntries(JSON.parse(list.body.toString()).map((m: { name: string }) => [m.name, m]));
      expect(byName['late-fifo']).toMatchObject({ readable: false, reason: 'late-fifo/checkpoint.json is not a regular file' });
      expect(byName['late-fifo-weights']).toMatchObject({ readable: false, reason: 'weights.bin: not a regular file' });
      expect(byName['runs/scratch']).toMatchObject({ readable: true });
      expect((await within(5_000, get('/models/late-fifo/checkpoint.json'))).status).toBe(404);
      expect((await within(5_000, get('/models/late-fifo-weights/weights.bin'))).status).toBe(404);
      expect((await within(5_000, get('/models/runs/scratch/weights.bin'))).status).toBe(200);
    } finally {
      fs.rmSync(path.join(models, 'late-fifo'), { recursive: true, force: true });
      fs.rmSync(path.join(models, 'late-fifo-weights'), { recursive: true, force: true });
    }
  }, 30_000);

  it('never sends half a model file while the model is saved again or removed', async () => {
    const live = path.join(models, 'runs', 'scratch');
    const versions = [fs.readFileSync(path.join(live, 'weights.bin')), fs.readFileSync(path.join(dir, 'other', 'weights.bin'))];
    expect(versions[0].equals(versions[1])).toBe(false);
    let swaps = 0;
    let stop = false;
    // Replace the directory the way a save does (write beside, then rename), alternating the two
    // versions, and now and then leave it missing for a moment.
    const saver = (async () => {
      while (!stop) {
        const from = swaps % 2 === 0 ? path.join(dir, 'other') : path.join(dir, 'first');
        if (swaps === 0) fs.cpSync(live, path.join(dir, 'first'), { recursive: true });
        fs.rmSync(`${live}.tmp`, { recursive: true, force: true });
        fs.cpSync(from, `${live}.tmp`, { recursive: true });
        fs.renameSync(live, `${live}.old`);
        if (swaps % 5 === 4) await new Promise((resolve) => setTimeout(resolve, 5)); // gone for a moment
        fs.renameSync(`${live}.tmp`, live);
        fs.rmSync(`${live}.old`, { recursive: true, force: true });
        swaps++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const statuses = new Map<number, number>();
    for (let round = 0; round < 30; round++) {
      const responses = await Promise.all(Array.from({ length: 20 }, () => get('/models/runs/scratch/weights.bin')));
      for (const r of responses) {
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) expect(versions.some((v) => v.equals(r.body))).toBe(true);
        else expect(r.status).toBe(404);
      }
    }
    stop = true;
    await saver;
    expect(swaps).toBeGreaterThan(10);
    expect(statuses.get(200)).toBeGreaterThan(0);
    expect((await get('/')).status).toBe(200);
  }, 120_000);
});
