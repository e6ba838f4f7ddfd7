/** One job: hand a model to the browser as a .zip download (a model directory the CLI reads, and --resume continues). */
import type { ModelFiles } from '../core/models';
import { modelFiles, modelZip, type TrainedModel } from './app';

export async function download(trained: TrainedModel): Promise<void> {
  // The impl and the cell: a GRU and an LSTM trained in one page download under different names.
  downloadFiles(await modelFiles(trained), `lstm-lyrics-${trained.impl}-${trained.model.config.cell}`);
}

/** Files already made (a model kept in this browser) as `<folder>.zip` holding `<folder>/...`. */
export function downloadFiles(files: ModelFiles, folder: string): void {
  const bytes = modelZip(files, folder);
  const url = URL.createObjectURL(new Blob([bytes as unknown as BlobPart], { type: 'application/zip' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${folder}.zip`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
