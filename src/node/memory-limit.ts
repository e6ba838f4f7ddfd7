/**
 * Whether a model of the asked-for size can train on the chosen backend at all, checked before any
 * tensor is made: a --hidden too large for memory otherwise allocates until the machine swaps
 * (wasm) or the process is killed.
 */
import * as os from 'node:os';
import { UsageError } from '../core/errors';
import { modelParameterCount } from '../core/model-check';
import type { Cell, OptimizerName } from '../core/config';

/** What one backend can hold. wasm32 addresses 4 GiB; the others are bounded by the machine. */
export function backendMemoryLimit(backend: string): { bytes: number; what: string } {
  if (backend === 'wasm') return { bytes: 4 * 1024 ** 3, what: 'the wasm backend holds at most 4 GiB (its 32-bit heap)' };
  return { bytes: os.totalmem(), what: `the ${backend} backend is bounded by this machine's ${gb(os.totalmem())} of memory` };
}

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

/** Throws a UsageError, with the numbers, when training cannot fit in `backend`'s memory. */
export function checkTrainingFits(size: TrainingSize, backend: string): void {
  const need = trainingBytes(size);
  const limit = backendMemoryLimit(backend);
  if (need.total <= limit.bytes) return;
  throw new UsageError(
    `${need.parameters >= need.activations ? (size.layers > 1 ? `--hidden ${size.hidden} with --layers ${size.layers} is` : `--hidden ${size.hidden} is`) : `--batch-size ${size.batchSize} x --num-steps ${size.numSteps} is`} too large: ` +
      `training needs at least ${gb(need.total)} ` +
      `(${modelParameterCount(size).toLocaleString('en')} parameters with their gradients${size.optimizer === 'adam' ? " and adam's moments" : ''}: ${gb(need.parameters)}; ` +
      `activations of --batch-size ${size.batchSize} x --num-steps ${size.numSteps}: ${gb(need.activations)}), ` +
      `and ${limit.what}; use a smaller --hidden, --layers, --batch-size or --num-steps`,
  );
}

function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}
