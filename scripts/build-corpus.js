#!/usr/bin/env node
// Builds corpus/songci300.txt, the bundled default corpus, from the MIT-licensed npm package
// chinese-poetry@2.0.1 (file dist/songci/宋词三百首.json): one ci per line, its lines joined.
// The package is ~85 MB, so it is fetched with `npm pack` into a temp dir rather than being a
// dependency. Usage: node scripts/build-corpus.js   (needs npm, tar and the npm registry)
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PACKAGE = 'chinese-poetry@2.0.1';
const ENTRY = 'package/dist/songci/宋词三百首.json';
const OUT = path.join(__dirname, '..', 'corpus', 'songci300.txt');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'songci-'));
try {
  const tarball = execFileSync('npm', ['pack', PACKAGE, '--silent'], { cwd: tmp, encoding: 'utf8' }).trim();
  execFileSync('tar', ['xzf', tarball, ENTRY], { cwd: tmp });
  const poems = JSON.parse(fs.readFileSync(path.join(tmp, ENTRY), 'utf8'));
  const lines = poems.map((p) => p.paragraphs.join(''));
  fs.writeFileSync(OUT, `${lines.join('\n')}\n`);
  console.log(`wrote ${lines.length} ci, ${[...lines.join('')].length} characters to ${OUT}`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
