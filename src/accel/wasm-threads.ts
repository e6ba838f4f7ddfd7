/**
 * Runs tfjs-backend-wasm 4.22's multi-threaded SIMD build in Node, where tfjs turns it off: its
 * pthread workers are created from Blob URLs, which Node's worker_threads cannot load. Four small
 * runtime patches, scoped to the backend's start-up, make it work (no files in node_modules are
 * changed). Opt-in (--threads): on 2 cores it speeds large matmuls ~1.7x when the machine is
 * otherwise idle, but is slower when another process holds the second core.
 */
// `import x = require()`, not `import * as`: the patches must reach the real module objects.
import os = require('node:os');
import path = require('node:path');
import wt = require('node:worker_threads');
import * as tf from '@tensorflow/tfjs';
import { GEMM_HELPER_PROTOCOL, gemmHelperControl, gemmModuleBytes, setGemmHelper } from './gemm';

/** Starts the wasm backend with `numThreads` XNNPACK threads; returns the count in use. */
export async function startThreadedWasm(numThreads: number): Promise<number> {
  const wasmBackend = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  // The standalone Emscripten glue, which a worker can evaluate from a file.
  const gluePath = path.join(dir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  // The pthread worker's source; newlines escaped as tfjs does before making its Blob.
  const workerSource: string = require(path.join(dir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')).wasmWorkerContents.replace(
    /\n/g,
    '\\n',
  );

  const RealWorker = wt.Worker;
  class PthreadWorker extends RealWorker {
    // 1. Ignore the blob: URL tfjs passes and run the worker source directly.
    constructor(_blobUrl: unknown, options?: wt.WorkerOptions) {
      super(workerSource, { ...options, eval: true });
    }
    // 2. The 'load' message names a Blob of tfjs' bundled factory (unreadable in a worker): send
    //    the glue file's path instead.
    override postMessage(message: { cmd?: string }, transfer?: readonly wt.TransferListItem[]): void {
      super.postMessage(message?.cmd === 'load' ? { ...message, urlOrBlob: gluePath } : message, transfer);
    }
  }
  // 3. The C++ side caps threads at os.cpus().length / 2 (1 on a 2-core machine); report enough
  //    cores while the module starts.
  const realCpus = os.cpus;
  const patchedOs = os as { cpus: typeof os.cpus };
  const patchedWt = wt as { Worker: typeof wt.Worker };
  patchedOs.cpus = () => {
    const cpus = realCpus.call(os);
    while (cpus.length < 2 * numThreads) cpus.push(cpus[0]);
    return cpus;
  };
  patchedWt.Worker = PthreadWorker; // the glue reads Worker from the worker_threads module at start
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasmBackend.setThreadsCount(numThreads);
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the threaded wasm backend failed to start');
  } finally {
    patchedWt.Worker = RealWorker;
    patchedOs.cpus = realCpus;
  }
  // 4. Running pthread workers are ref()'d and never exit, which would keep Node alive forever.
  type WithPThreads = { wasm: { PThread: { runningWorkers: wt.Worker[] }; wasmMemory: object } };
  const module = (tf.backend() as unknown as WithPThreads).wasm;
  module.PThread.runningWorkers.forEach((w) => w.unref());
  const threads = wasmBackend.getThreadsCount();
  if (threads > 1) startGemmHelper(module.wasmMemory);
  return threads;
}

const { SLOT, GEMM_ARGS, SPINS } = GEMM_HELPER_PROTOCOL;

/**
 * The helper thread's program (a worker_threads Worker, eval'd), given workerData { memory, bytes,
 * control }: the module on the backend's shared memory, then, for each job posted in the control
 * block, gemm() over the rows it names, and the job's number in DONE.
 */
export const GEMM_HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, bytes, control } = workerData;
const ctl = new Int32Array(control);
const { gemm } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
Atomics.store(ctl, ${SLOT.READY}, 1);
let seen = 0;
for (;;) {
  for (let i = 0; i < ${SPINS} && Atomics.load(ctl, ${SLOT.JOB}) === seen; i++);
  Atomics.wait(ctl, ${SLOT.JOB}, seen);
  seen = Atomics.load(ctl, ${SLOT.JOB});
  try {
    gemm(${Array.from({ length: GEMM_ARGS }, (_, i) => `ctl[${SLOT.ARGS + i}]`).join(', ')});
  } catch {
    Atomics.store(ctl, ${SLOT.FAILED}, 1);
  }
  Atomics.store(ctl, ${SLOT.DONE}, seen);
  Atomics.notify(ctl, ${SLOT.DONE});
}
`;

/**
 * The second thread of our matrix products (gemm.ts): XNNPACK's pool cannot run our module, so
 * one worker of our own waits, on the backend's shared memory, for a share of each product's rows.
 * Unref'd, so it never keeps Node alive; until it has started, or if it fails, the library multiplies.
 */
function startGemmHelper(memory: object): void {
  const control = gemmHelperControl();
  const worker = new wt.Worker(GEMM_HELPER_SOURCE, { eval: true, workerData: { memory, bytes: gemmModuleBytes(), control } });
  worker.unref();
  const gone = () => setGemmHelper(undefined);
  worker.on('error', gone);
  worker.on('exit', gone);
  setGemmHelper({ control: new Int32Array(control), memory });
}
