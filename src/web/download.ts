/** One job: hand a model trained in this page to the browser as a .zip download (a model directory the CLI reads). */
import { modelZip, type TrainedModel } from './app';

export async function download(trained: TrainedModel): Promise<void> {
  // The impl and the cell: a GRU and an LSTM trained in one page download under different names.
  const folder = `lstm-lyrics-${trained.impl}-${trained.model.config.cell}`;
  const bytes = await modelZip(trained, folder);
  const url = URL.createObjectURL(new Blob([bytes as unknown as BlobPart], { type: 'application/zip' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${folder}.zip`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
