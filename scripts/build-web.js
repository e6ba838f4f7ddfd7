#!/usr/bin/env node
// Builds the page into dist/web: src/web/main.ts bundled with esbuild (TF.js, vega and the core
// included: nothing comes from a CDN), the HTML and CSS, and TF.js' wasm binaries, which the page
// loads from beside itself (setWasmPaths). Runs after tsc in `npm run build`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist', 'web');
const wasmDir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
esbuild.buildSync({
  entryPoints: [path.join(root, 'src', 'web', 'main.ts')],
  outfile: path.join(out, 'app.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // TF.js reads process.env in a few places; a page has no process.
  define: { 'process.env.NODE_ENV': '"production"' },
});
for (const file of ['index.html', 'style.css']) fs.copyFileSync(path.join(root, 'src', 'web', file), path.join(out, file));
// The threaded build needs cross-origin isolation, which the page does not ask for; tfjs then
// picks the SIMD build (or the plain one on a browser without SIMD).
for (const file of ['tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm.wasm'])
  fs.copyFileSync(path.join(wasmDir, file), path.join(out, file));
