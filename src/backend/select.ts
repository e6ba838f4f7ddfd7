/**
 * Picks the TF.js backend and says why. `auto` prefers CUDA (@tensorflow/tfjs-node-gpu, only when
 * an NVIDIA GPU is visible), then native CPU TensorFlow (@tensorflow/tfjs-node), then WASM, then
 * plain JS. The native packages are optional dependencies: their install downloads libtensorflow,
 * which fails where that host is unreachable, and everything else must still work.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { firstLine, UsageError } from '../core/errors';
import { registerMissingWasmKernels } from '../accel/wasm-missing-kernels';
import { resolveThreads, type ThreadsSetting } from './threads';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

type NativePackage = '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node';

/** The side effects of choosing, injectable so the decision logic is testable anywhere. */
export interface BackendLoaders {
  nvidiaGpuVisible(): boolean;
  /** Loads a native package, which registers the 'tensorflow' backend; throws if it cannot. */
  loadNative(pkg: NativePackage): void;
  /** Makes `name` the active backend; throws if it cannot initialise. For wasm it may return the
   *  thread count actually in use, when that differs from the one asked for. */
  activate(name: 'tensorflow' | 'wasm' | 'cpu', options?: BackendOptions): Promise<number | undefined>;
}

export interface BackendOptions {
  /** XNNPACK threads for wasm (1, the default: the stock single-threaded build; 'auto': see threads.ts). */
  readonly wasmThreads?: ThreadsSetting;
}

export interface BackendChoice {
  /** tf.getBackend() after choosing: 'tensorflow', 'wasm' or 'cpu'. */
  readonly name: string;
  /** One line for the user: what runs and why the better ones did not. */
  readonly description: string;
}

export async function selectBackend(
  preference: BackendPreference,
  options: BackendOptions = {},
  loaders: BackendLoaders = nodeLoaders,
): Promise<BackendChoice> {
  // Prod mode drops debug checks and the cpu backend's "install tfjs-node" banner: the one line
  // below says what runs and why, and the README says how to get the native packages.
  tf.enableProdMode();
  const skipped: string[] = [];
  const describe = (name: string, what: string): BackendChoice => ({
    name,
    description: `backend: ${what}${skipped.length ? ` (skipped: ${skipped.join('; ')})` : ''}`,
  });

  if (preference === 'auto' || preference === 'tensorflow') {
    const native = await tryNative(loaders, skipped);
    if (native) return describe('tensorflow', native);
    if (preference === 'tensorflow') {
      throw new UsageError(`--backend tensorflow is not available: ${skipped.join('; ')}`);
    }
  }
  if (preference === 'auto' || preference === 'wasm') {
    try {
      const resolved = await resolveThreads(options.wasmThreads ?? 1);
      const inUse = (await loaders.activate('wasm', { ...options, wasmThreads: resolved.threads })) ?? resolved.threads;
      const why = inUse === resolved.threads ? resolved.why : `already started in this process (${resolved.threads} asked for)`;
      return describe('wasm', `wasm (WebAssembly, SIMD, ${inUse === 1 ? '1 thread' : `${inUse} threads`}${why ? `: ${why}` : ''})`);
    } catch (err) {
      if (preference === 'wasm') throw new UsageError(`--backend wasm failed to start: ${message(err)}`);
      skipped.push(`wasm failed to start: ${message(err)}`);
    }
  }
  await loaders.activate('cpu');
  return describe('cpu', 'cpu (plain JavaScript, slowest)');
}

/**
 * CUDA first when a GPU is visible, else native CPU. Never both native packages in one process:
 * each registers a backend named 'tensorflow' around its own libtensorflow. So once the GPU
 * package has loaded, a failure to start it is final.
 */
async function tryNative(loaders: BackendLoaders, skipped: string[]): Promise<string | undefined> {
  const attempts: [NativePackage, string][] = [];
  if (loaders.nvidiaGpuVisible()) attempts.push(['@tensorflow/tfjs-node-gpu', 'tensorflow (CUDA, @tensorflow/tfjs-node-gpu)']);
  else skipped.push('CUDA: no NVIDIA GPU visible');
  attempts.push(['@tensorflow/tfjs-node', 'tensorflow (native CPU, @tensorflow/tfjs-node)']);
  for (const [pkg, description] of attempts) {
    try {
      loaders.loadNative(pkg);
    } catch (err) {
      skipped.push(`${pkg}: ${message(err)}`);
      continue;
    }
    try {
      await loaders.activate('tensorflow');
      return description;
    } catch (err) {
      skipped.push(`${pkg} loaded but failed to start: ${message(err)}`);
      return undefined;
    }
  }
  return undefined;
}

function message(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'MODULE_NOT_FOUND' && /Cannot find module '@tensorflow\/tfjs-node/.test(e.message)) return 'not installed';
  return firstLine(err);
}

/** The real loaders. */
export const nodeLoaders: BackendLoaders = {
  nvidiaGpuVisible: () => fs.existsSync('/proc/driver/nvidia/version') || fs.existsSync('/dev/nvidia0'),
  loadNative(pkg) {
    require(pkg);
  },
  async activate(name, options = {}) {
    if (name === 'wasm') require('@tensorflow/tfjs-backend-wasm');
    const threads = options.wasmThreads === 'auto' ? (await resolveThreads('auto')).threads : (options.wasmThreads ?? 1);
    // The wasm module starts once per process with its thread count (a second command run in the
    // same process, as tests do, or a page): a started one is kept as it is.
    const registry = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
    if (name === 'wasm' && registry.wasm !== undefined) {
      if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') failed");
      registerMissingWasmKernels();
      const wasmBackend = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
      return Math.max(1, wasmBackend.getThreadsCount());
    }
    if (name === 'wasm' && threads > 1) {
      const { startThreadedWasm } = require('../accel/wasm-threads') as typeof import('../accel/wasm-threads');
      await startThreadedWasm(threads);
    } else if (!(await tf.setBackend(name))) {
      throw new Error(`tf.setBackend('${name}') failed`);
    }
    if (name === 'wasm') registerMissingWasmKernels();
  },
};
