/**
 * Whether a model of the asked-for size can train on the chosen backend at all, checked before any
 * tensor is made: a --hidden too large for memory otherwise allocates until the machine swaps
 * (wasm) or the process is killed. The estimate is the core's (core/training-memory.ts, which the
 * page uses too); what Node adds is the machine's memory for the native backends.
 */
import * as os from 'node:os';
import { UsageError } from '../core/errors';
import { modelParameterCount } from '../core/model-check';
import { formatBytes, trainingBytes, type TrainingSize, WASM_HEAP_BYTES, WASM_HEAP_LIMIT } from '../core/training-memory';

/** What one backend can hold. wasm32 addresses 4 GiB; the others are bounded by the machine. */
export function backendMemoryLimit(backend: string): { bytes: number; what: string } {
  if (backend === 'wasm') return { bytes: WASM_HEAP_BYTES, what: WASM_HEAP_LIMIT };
  return { bytes: os.totalmem(), what: `the ${backend} backend is bounded by this machine's ${formatBytes(os.totalmem())} of memory` };
}

/** Throws a UsageError, with the numbers, when training cannot fit in `backend`'s memory. */
export function checkTrainingFits(size: TrainingSize, backend: string): void {
  const need = trainingBytes(size);
  const limit = backendMemoryLimit(backend);
  if (need.total <= limit.bytes) return;
  throw new UsageError(
    `${need.parameters >= need.activations ? (size.layers > 1 ? `--hidden ${size.hidden} with --layers ${size.layers} is` : `--hidden ${size.hidden} is`) : `--batch-size ${size.batchSize} x --num-steps ${size.numSteps} is`} too large: ` +
      `training needs at least ${formatBytes(need.total)} ` +
      `(${modelParameterCount(size).toLocaleString('en')} parameters with their gradients${size.optimizer === 'adam' ? " and adam's moments" : ''}: ${formatBytes(need.parameters)}; ` +
      `activations of --batch-size ${size.batchSize} x --num-steps ${size.numSteps}: ${formatBytes(need.activations)}), ` +
      `and ${limit.what}; use a smaller --hidden, --layers, --batch-size or --num-steps`,
  );
}
