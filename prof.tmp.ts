import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './src/backend';
import { loadCorpus } from './src/data/corpus';
import { createModel } from './src/models';
import { train } from './src/train';
import { DEFAULT_TRAIN, DEFAULT_OPTIMIZER } from './src/config';
(async () => {
  await selectBackend((process.argv[3] as any) ?? 'wasm');
  const impl = (process.argv[2] ?? 'scratch') as 'scratch' | 'builtin';
  const corpus = loadCorpus('corpus/songci300.txt', { maxChars: 10000 });
  const model = createModel({ impl, vocabSize: corpus.vocab.chars.length, hidden: 256 }, 0);
  const cfg = { ...DEFAULT_TRAIN, ...DEFAULT_OPTIMIZER[impl], corpus: '', epochs: 1, predLen: 1, reportEvery: 100 };
  await train(model, corpus, cfg);
  const info = await tf.profile(async () => { await train(model, corpus, cfg); });
  const by = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) { const key = k.name + (["BatchMatMul","Add","Unpack","SplitV","Pack","Transpose","Sum","Exp","GatherV2"].includes(k.name) ? " " + JSON.stringify(k.inputShapes) : ""); const e = by.get(key) ?? { ms: 0, n: 0 }; e.ms += k.kernelTimeMs as number; e.n++; by.set(key, e); }
  const rows = [...by.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40);
  let total = 0; for (const [, e] of by) total += e.ms;
  console.log('total kernel ms', total.toFixed(0));
  for (const [name, e] of rows) console.log(name.padEnd(60), e.ms.toFixed(1).padStart(9), String(e.n).padStart(6));
  const t0 = performance.now(); await train(model, corpus, cfg); console.log('epoch s', ((performance.now() - t0) / 1000).toFixed(2));
})();
