/**
 * The memory a training run needs, estimated before any tensor is made, for every shell: the CLI
 * refuses a --hidden too large for its backend up front (src/node/memory-limit.ts adds the
 * machine's memory for native backends), the page shows the estimate beside Train and refuses the
 * same sizes. Without it, a size too large for memory allocates until the machine swaps (wasm) or
 * fails deep inside TF.js ("Invalid typed array length").
 */
import type { Cell, OptimizerName } from './config';
import { DEFAULT_MODEL_BUDGET, modelParameterCount } from './model-check';

/** What the wasm backend can hold, wherever it runs: wasm32 addresses 4 GiB (the CLI's and the page's limit). */
export const WASM_HEAP_BYTES = DEFAULT_MODEL_BUDGET;
export const WASM_HEAP_LIMIT = 'the wasm backend holds at most 4 GiB (its 32-bit heap)';

export interface TrainingSize {
  readonly cell: Cell;
  readonly layers: number;
  readonly vocabSize: number;
  readonly hidden: number;
  readonly batchSize: number;
  readonly numSteps: number;
  readonly optimizer: OptimizerName;
}

/**
 * A lower bound on the bytes a training step holds (float32): the weights, their gradients and the
 * optimizer's slots (Adam: 2 per weight), plus the activations kept for backprop (per character of
 * the batch: the logits, their softmax and gradient over the vocabulary, and ~10 hidden-sized
 * gate values per layer). Real use is higher (temporaries, the backend's own copies).
 */
export function trainingBytes(size: TrainingSize): { total: number; parameters: number; activations: number } {
  const params = modelParameterCount(size);
  const perWeight = 2 + (size.optimizer === 'adam' ? 2 : 0);
  const parameters = params * perWeight * 4;
  const activations = size.batchSize * size.numSteps * (3 * size.vocabSize + 10 * size.hidden * size.layers) * 4;
  return { total: parameters + activations, parameters, activations };
}

/** Bytes as the messages say them: "12.3 MB", "121.3 GB" (decimal units). */
export function formatBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}
