/**
 * The speed-ups, behind one switch. Each makes stock TF.js faster without changing the math, and
 * attaches from outside (kernel registry, engine methods, an optimizer's prototype), so the models
 * read as the lessons and a new model gets them without a line of its own (see README.md here).
 *
 *   setAccel({ setting: 'on' })   installs them, if the installed TF.js is the verified version
 *   setAccel({ setting: 'off' })  takes them out again: stock TF.js (what --accel off runs)
 *
 * Call it once a backend has been chosen: the wasm kernels are replaced only where the wasm
 * backend's are registered. Multi-threaded wasm in Node (./wasm-threads.ts) is the one speed-up
 * that cannot be switched in a running process: the backend starts with its threads.
 */
import * as tf from '@tensorflow/tfjs';
import { installOnePassAdam } from './adam';
import { installStepGradients } from './step-gradients';
import { installedVersions, versionMismatch, VERIFIED_VERSIONS, type InstalledVersions } from './versions';
import { installFusedCells } from './fused-cells';
import { FUSED_GRU_CELL } from './gru-cell';
import { FUSED_LSTM_CELL } from './lstm-cell';
import { installWasmKernels, wasmKernelsRegistered } from './wasm-kernels';
import { registerMissingWasmKernels } from './wasm-missing-kernels';

export type AccelSetting = 'on' | 'off';
export const ACCEL_SETTINGS: readonly AccelSetting[] = ['on', 'off'];

export interface AccelOptions {
  readonly setting: AccelSetting;
  /** The TF.js packages installed; by default read from them. A test fakes other versions. */
  readonly versions?: InstalledVersions;
}

export interface AccelStatus {
  /** Whether the speed-ups are installed now. */
  readonly on: boolean;
  /** One line for the user: `accel: on (...)` or `accel: off (why)`. */
  readonly description: string;
}

/** What is installed, kept on the engine: one per TF.js engine, even if this module loads twice. */
interface Installed {
  readonly status: AccelStatus;
  readonly remove?: () => void;
}
const INSTALLED = Symbol.for('lstm-lyrics.accel');
type EngineWithAccel = { [INSTALLED]?: Installed };

/** Installs or removes the speed-ups as `options` say; returns what is in force now. */
export function setAccel(options: AccelOptions): AccelStatus {
  const engine = tf.engine() as unknown as EngineWithAccel;
  engine[INSTALLED]?.remove?.();
  // Not a speed-up: a kernel stock wasm lacks, needed to train at all (see the file).
  if (wasmKernelsRegistered()) registerMissingWasmKernels();
  const installed = install(options);
  engine[INSTALLED] = installed;
  return installed.status;
}

/** What setAccel last put in force (off if it was never called). */
export function accelStatus(): AccelStatus {
  return (tf.engine() as unknown as EngineWithAccel)[INSTALLED]?.status ?? { on: false, description: 'accel: off (not installed)' };
}

function install({ setting, versions = installedVersions() }: AccelOptions): Installed {
  if (setting === 'off') return { status: { on: false, description: 'accel: off (stock TF.js, as asked)' } };
  const mismatch = versionMismatch(versions);
  if (mismatch) return { status: { on: false, description: `accel: off (${mismatch}: stock TF.js runs)` } };
  // Removed in reverse order: each puts back what it found, which may be the one before's wrapper.
  const removers = [installStepGradients(), installOnePassAdam()];
  const parts = ['step gradients', 'one-pass Adam'];
  if (wasmKernelsRegistered()) {
    removers.push(installWasmKernels(), installFusedCells([FUSED_LSTM_CELL, FUSED_GRU_CELL]));
    parts.push('wasm kernels', 'fused LSTM and GRU cells');
  }
  return {
    status: { on: true, description: `accel: on (${parts.join(', ')}; verified on TF.js ${VERIFIED_VERSIONS['@tensorflow/tfjs-core']})` },
    remove: () => removers.reverse().forEach((remove) => remove()),
  };
}
