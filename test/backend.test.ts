import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendLoaders } from '../src/backend/select';
import { UsageError } from '../src/core/errors';
import * as os from 'node:os';
import { MAX_AUTO_THREADS, idleCores, resolveThreads } from '../src/backend/threads';
import { threadsOf } from '../src/cli/options';

/** Loaders that record what was tried; `installed` packages load, `broken` backends fail to start. */
function fakeLoaders(opts: { gpu: boolean; installed: string[]; broken?: string[] }) {
  const tried: string[] = [];
  const loaders: BackendLoaders = {
    nvidiaGpuVisible: () => opts.gpu,
    loadNative(pkg) {
      tried.push(`load ${pkg}`);
      if (!opts.installed.includes(pkg)) throw Object.assign(new Error(`Cannot find module '${pkg}'`), { code: 'MODULE_NOT_FOUND' });
    },
    async activate(name) {
      tried.push(`activate ${name}`);
      if (opts.broken?.includes(name)) throw new Error(`${name} exploded`);
      return undefined;
    },
  };
  return { loaders, tried };
}

describe('selectBackend (decision logic, injected loaders)', () => {
  it('takes CUDA when a GPU is visible and tfjs-node-gpu loads, and never loads tfjs-node too', async () => {
    const { loaders, tried } = fakeLoaders({ gpu: true, installed: ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.name).toBe('tensorflow');
    expect(choice.description).toBe('backend: tensorflow (CUDA, @tensorflow/tfjs-node-gpu)');
    expect(tried).toEqual(['load @tensorflow/tfjs-node-gpu', 'activate tensorflow']);
  });

  it('skips CUDA without a GPU and takes native CPU', async () => {
    const { loaders, tried } = fakeLoaders({ gpu: false, installed: ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.description).toBe('backend: tensorflow (native CPU, @tensorflow/tfjs-node) (skipped: CUDA: no NVIDIA GPU visible)');
    expect(tried).toEqual(['load @tensorflow/tfjs-node', 'activate tensorflow']);
  });

  it('falls back to tfjs-node when tfjs-node-gpu is not installed', async () => {
    const { loaders } = fakeLoaders({ gpu: true, installed: ['@tensorflow/tfjs-node'] });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.description).toBe(
      'backend: tensorflow (native CPU, @tensorflow/tfjs-node) (skipped: @tensorflow/tfjs-node-gpu: not installed)',
    );
  });

  it('does not load the second native package once the first loaded but failed to start', async () => {
    const { loaders, tried } = fakeLoaders({
      gpu: true,
      installed: ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'],
      broken: ['tensorflow'],
    });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.name).toBe('wasm');
    expect(tried).not.toContain('load @tensorflow/tfjs-node');
    expect(choice.description).toMatch(/@tensorflow\/tfjs-node-gpu loaded but failed to start: tensorflow exploded/);
  });

  it('falls back to wasm, naming every reason, when no native package is installed', async () => {
    const { loaders } = fakeLoaders({ gpu: false, installed: [] });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.description).toBe(
      'backend: wasm (WebAssembly, SIMD, 1 thread) (skipped: CUDA: no NVIDIA GPU visible; @tensorflow/tfjs-node: not installed)',
    );
  });

  it('falls back to plain JS when wasm fails too', async () => {
    const { loaders } = fakeLoaders({ gpu: false, installed: [], broken: ['wasm'] });
    const choice = await selectBackend('auto', {}, loaders);
    expect(choice.name).toBe('cpu');
    expect(choice.description).toMatch(/wasm failed to start: wasm exploded/);
  });

  it('makes an explicitly requested backend that cannot start a usage error', async () => {
    await expect(selectBackend('tensorflow', {}, fakeLoaders({ gpu: false, installed: [] }).loaders)).rejects.toThrow(UsageError);
    await expect(selectBackend('wasm', {}, fakeLoaders({ gpu: false, installed: [], broken: ['wasm'] }).loaders)).rejects.toThrow(
      /--backend wasm failed to start/,
    );
  });
});

describe('selectBackend on this machine (real loaders)', () => {
  it('auto ends on tensorflow if a native package is installed, else on wasm', async () => {
    let native = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      native = false;
    }
    const choice = await selectBackend('auto');
    expect(choice.name).toBe(native ? 'tensorflow' : 'wasm');
    expect(tf.getBackend()).toBe(choice.name);
    if (!native) expect(choice.description).toMatch(/@tensorflow\/tfjs-node: not installed/);
  });

  it('--backend cpu gives plain JS', async () => {
    expect((await selectBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });
});

describe('--threads', () => {
  it.each([
    [2, 2.0, 2, 'an idle 2-core machine uses both cores'],
    [2, 1.8, 2, 'a light load still leaves two'],
    [2, 1.6, 1, 'half a core busy: one thread'],
    [2, 1.0, 1, 'another busy process: one thread'],
    [2, 0.1, 1, 'a very busy machine: one thread'],
    [16, 16, MAX_AUTO_THREADS, 'many idle cores: capped'],
    [1, 1, 1, 'one core: one thread'],
  ])('auto with %i cores, %f of them idle, gives %i (%s)', async (cores, idle, expected) => {
    const choice = await resolveThreads('auto', cores, idle);
    expect(choice.threads).toBe(expected);
    expect(choice.why).toBe(`auto: ${idle.toFixed(1)} of ${cores} cores idle`);
  });

  it('measures the idle cores', async () => {
    const idle = await idleCores(50);
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(os.cpus().length);
  });

  it('a number is taken as given', async () => {
    expect(await resolveThreads(3, 2, 0)).toEqual({ threads: 3 });
  });

  it('parses the flag', () => {
    expect(threadsOf('auto')).toBe('auto');
    expect(threadsOf('2')).toBe(2);
    expect(threadsOf(1)).toBe(1);
    for (const bad of ['0', '1.5', 'two', '']) expect(() => threadsOf(bad)).toThrow(/--threads must be auto or a whole number >= 1/);
  });

  it('says in the backend line what auto chose and why', async () => {
    const { loaders } = fakeLoaders({ gpu: false, installed: [] });
    const choice = await selectBackend('wasm', { wasmThreads: 'auto' }, loaders);
    expect(choice.description).toMatch(/^backend: wasm \(WebAssembly, SIMD, (1 thread|\d threads): auto: [\d.]+ of \d+ cores idle\)$/);
  });
});

describe('a second start in the same process', () => {
  it('keeps the wasm backend that is running, and says how many threads it really has', async () => {
    await selectBackend('wasm', { wasmThreads: 1 });
    // What a second command in one process (a test, a page) asks for after the first started wasm.
    const again = await selectBackend('wasm', { wasmThreads: 2 });
    expect(again.name).toBe('wasm');
    expect(again.description).toMatch(/^backend: wasm \(WebAssembly, SIMD, 1 thread: already started in this process \(2 asked for\)\)$/);
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).arraySync())).toEqual([2, 3]);
  });
});
