/**
 * The boundaries of the source tree, checked: the core runs anywhere (no Node), and imports only
 * flow one way, corpus -> batches -> model -> train -> checkpoint format -> shells (node, backend, terminal, web) -> cli.
 * (That the core type-checks with browser globals and without Node's types is `npm run typecheck`,
 * with tsconfig.core.json, not a test.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

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

/**
 * Which folders each folder of src/ may import from, besides itself: the portable core and the
 * speed-ups import no other folder; the shells (terminal, node, backend, the page) only what they
 * build on, never each other, the page never the Node side; only the CLI wires them all.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  core: [],
  accel: [],
  terminal: ['core'],
  node: ['core'],
  backend: ['core', 'accel'],
  web: ['core', 'accel'],
  cli: ['core', 'accel', 'backend', 'node', 'terminal'],
};

/** Inside the core, the order of the data flow: a file may import only from its own place or before. */
const CORE_ORDER = [
  'errors',
  'numbers',
  'input-rules',
  'config',
  'random',
  'bytes',
  'vocab',
  'batches',
  'models',
  'metrics',
  'optimizer',
  'loss',
  'generate',
  'train',
  'model-check',
  'training-memory',
  'checkpoint-format',
  'chart-spec',
];

/** The folder of src/ a file is in, and (in the core) its place in the flow. */
function placeOf(file: string): { folder: string; order: number } {
  const rel = path.relative(SRC, file).replace(/\\/g, '/').replace(/\.ts$/, '');
  const [folder, second] = rel.split('/');
  if (!(folder in MAY_IMPORT)) throw new Error(`${rel}: a file outside the known folders`);
  return { folder, order: folder === 'core' ? CORE_ORDER.indexOf(second) : 0 };
}

const files = sourceFiles(SRC);
const coreFiles = files.filter((f) => f.startsWith(path.join(SRC, 'core') + path.sep));

describe('the portable core (src/core)', () => {
  it('has the model, sampler, vocabulary, loop, text sampler, metrics and file format in it', () => {
    const names = coreFiles.map((f) => path.relative(SRC, f).replace(/\\/g, '/'));
    for (const expected of [
      'core/models/scratch.ts',
      'core/models/builtin.ts',
      'core/batches.ts',
      'core/vocab.ts',
      'core/train.ts',
      'core/loss.ts',
      'core/generate.ts',
      'core/metrics.ts',
      'core/checkpoint-format.ts',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it.each(coreFiles.map((f) => [path.relative(SRC, f), f]))(
    '%s imports only @tensorflow/tfjs, vega-lite types and the core',
    (_name, file) => {
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.')) {
          expect(path.resolve(path.dirname(file), spec).startsWith(path.join(SRC, 'core'))).toBe(true);
        } else {
          expect(['@tensorflow/tfjs', 'vega-lite']).toContain(spec);
        }
      }
    },
  );
});

describe('imports flow one way', () => {
  it('every folder of src/ has its place', () => {
    expect(
      fs
        .readdirSync(SRC)
        .filter((f) => fs.statSync(path.join(SRC, f)).isDirectory())
        .sort(),
    ).toEqual(Object.keys(MAY_IMPORT).sort());
  });

  it.each(files.map((f) => [path.relative(SRC, f), f]))('%s imports only from where it may', (_name, file) => {
    const own = placeOf(file);
    expect(own.order).toBeGreaterThanOrEqual(0);
    for (const spec of importsOf(file).filter((s) => s.startsWith('.') && !s.endsWith('.json'))) {
      const target = path.resolve(path.dirname(file), spec);
      const candidates = [`${target}.ts`, path.join(target, 'index.ts')];
      const resolved = candidates.find((c) => fs.existsSync(c));
      expect(resolved).toBeDefined();
      const theirs = placeOf(resolved!);
      const where = `${path.relative(SRC, file)} imports ${spec}`;
      if (theirs.folder !== own.folder && !MAY_IMPORT[own.folder].includes(theirs.folder))
        throw new Error(`${where}: ${own.folder}/ may not import ${theirs.folder}/`);
      if (theirs.folder === own.folder && theirs.order > own.order) throw new Error(`${where}, which comes later in the flow`);
    }
  });
});

describe('the speed-ups (src/accel)', () => {
  const accelFiles = files.filter((f) => f.startsWith(path.join(SRC, 'accel') + path.sep));
  it.each(accelFiles.map((f) => [path.relative(SRC, f), f]))('%s imports only TF.js (and, for threads, Node)', (_name, file) => {
    const allowed = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'];
    if (path.basename(file) === 'wasm-threads.ts') allowed.push('node:os', 'node:path', 'node:worker_threads');
    for (const spec of importsOf(file).filter((s) => !s.startsWith('.'))) expect(allowed).toContain(spec);
  });
});
