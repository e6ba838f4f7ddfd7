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
  type WithPThreads = { wasm: { PThread: { runningWorkers: wt.Worker[] } } };
  (tf.backend() as unknown as WithPThreads).wasm.PThread.runningWorkers.forEach((w) => w.unref());
  return wasmBackend.getThreadsCount();
}
