#!/usr/bin/env node
// Builds dist/: the SIMD module (build-wasm.js), the CLI (tsc) and the page (build-web.js), then
// writes dist/.source-hash, a hash of everything the build reads from this repository.
// `--if-stale` (npm test's pretest) skips the build when that hash matches, so `npm ci && npm test`
// (npm ci builds through `prepare`) builds once, and a test run after an edit still builds.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const stamp = path.join(dist, '.source-hash');

function filesUnder(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(full) : [full];
  });
}

function sourceHash() {
  const inputs = [
    ...filesUnder(path.join(root, 'src')),
    ...filesUnder(path.join(root, 'scripts')),
    ...fs
      .readdirSync(root)
      .filter((f) => /^tsconfig.*\.json$|^package(-lock)?\.json$/.test(f))
      .map((f) => path.join(root, f)),
  ].sort();
  const hash = crypto.createHash('sha256');
  for (const file of inputs) hash.update(path.relative(root, file)).update('\0').update(fs.readFileSync(file)).update('\0');
  return hash.digest('hex');
}

const hash = sourceHash();
if (process.argv.includes('--if-stale') && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash) process.exit(0);

const run = (file, args = []) => execFileSync(process.execPath, [file, ...args], { cwd: root, stdio: 'inherit' });
fs.rmSync(dist, { recursive: true, force: true });
run(path.join(root, 'scripts', 'build-wasm.js'));
run(require.resolve('typescript/bin/tsc'), ['-p', 'tsconfig.json']);
run(path.join(root, 'scripts', 'build-web.js'));
// The hash of the sources as they were when the build started: an edit made meanwhile rebuilds next time.
fs.writeFileSync(stamp, hash);
