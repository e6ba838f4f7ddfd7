/** The one place that picks a model by name. */
import type { ModelConfig } from '../config';
import { BuiltinModel, builtinFromFiles } from './builtin';
import { ScratchModel, scratchFromFiles } from './scratch';
import type { LanguageModel, ModelFiles } from './types';

export type { LanguageModel, ModelFiles, RecurrentState, Training } from './types';

export function createModel(config: ModelConfig, seed: number): LanguageModel {
  return config.impl === 'scratch' ? new ScratchModel(config, seed) : BuiltinModel.create(config, seed);
}

export async function modelFromFiles(config: ModelConfig, files: ModelFiles): Promise<LanguageModel> {
  return config.impl === 'scratch' ? scratchFromFiles(config, files) : builtinFromFiles(config, files);
}

/** Trainable scalars, for the comparison table and the CLI banner. */
export function parameterCount(model: LanguageModel): number {
  return model.variables.reduce((n, v) => n + v.size, 0);
}
