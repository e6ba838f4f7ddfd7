/**
 * The boundaries of the source tree, checked: the core runs anywhere (no Node), and imports only
 * flow one way, corpus -> batches -> model -> train -> format -> shells (node, backend, ui) -> cli.
 * (That the core type-checks with browser globals and without Node's types is `npm run typecheck`,
 * with tsconfig.core.json, not a test.)
 */
import * as fs from 'fs';
import * as path from 'path';

const SRC = path.resolve(__dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every module a file imports or requires, as written. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const found = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g), // import x from 'm'
    ...text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g), // import 'm'
    ...text.matchAll(/\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g), // require('m'), import('m')
  ];
  return found.map((m) => m[1]);
}

/** Where a module sits in the flow; a file may import only from its own rank or below. */
const CORE_ORDER = ['errors', 'config', 'random', 'bytes', 'vocab', 'batches', 'models', 'metrics', 'optimizer', 'generate', 'train', 'format', 'chart-spec'];
function rank(file: string): number {
  const rel = path.relative(SRC, file).replace(/\\/g, '/').replace(/\.ts$/, '');
  const [top, second] = rel.split('/');
  if (top === 'core') return CORE_ORDER.indexOf(second === 'models' ? 'models' : second);
  if (top === 'node' || top === 'backend' || top === 'ui') return 100;
  if (top === 'cli') return 200;
  if (top === 'web') return 200;
  throw new Error(`${rel}: a file outside the known folders`);
}

const files = sourceFiles(SRC);
const coreFiles = files.filter((f) => f.startsWith(path.join(SRC, 'core') + path.sep));

describe('the portable core (src/core)', () => {
  it('has the model, sampler, vocabulary, loop, text sampler, metrics and file format in it', () => {
    const names = coreFiles.map((f) => path.relative(SRC, f).replace(/\\/g, '/'));
    for (const expected of ['core/models/scratch.ts', 'core/models/builtin.ts', 'core/batches.ts', 'core/vocab.ts', 'core/train.ts', 'core/generate.ts', 'core/metrics.ts', 'core/format.ts']) {
      expect(names).toContain(expected);
    }
  });

  it.each(coreFiles.map((f) => [path.relative(SRC, f), f]))('%s imports only @tensorflow/tfjs, vega-lite types and the core', (_name, file) => {
    for (const spec of importsOf(file)) {
      if (spec.startsWith('.')) {
        expect(path.resolve(path.dirname(file), spec).startsWith(path.join(SRC, 'core'))).toBe(true);
      } else {
        expect(['@tensorflow/tfjs', 'vega-lite']).toContain(spec);
      }
    }
  });
});

describe('imports flow one way', () => {
  it.each(files.map((f) => [path.relative(SRC, f), f]))('%s imports nothing later in the flow', (_name, file) => {
    const own = rank(file);
    expect(own).toBeGreaterThanOrEqual(0);
    for (const spec of importsOf(file).filter((s) => s.startsWith('.') && !s.endsWith('.json'))) {
      const target = path.resolve(path.dirname(file), spec);
      const candidates = [`${target}.ts`, path.join(target, 'index.ts')];
      const resolved = candidates.find((c) => fs.existsSync(c));
      expect(resolved).toBeDefined();
      if (rank(resolved!) > own) throw new Error(`${path.relative(SRC, file)} imports ${spec}, which comes later in the flow`);
    }
  });
});
