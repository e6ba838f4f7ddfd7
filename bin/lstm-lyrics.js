#!/usr/bin/env node
'use strict';
// Entry point: runs the compiled CLI (dist/, built by `npm ci` / `npm run build`) and sets the exit code.
let cli;
try {
  cli = require('../dist/cli/main');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && /dist[\\/]cli[\\/]main/.test(err.message)) {
    console.error('lstm-lyrics: not built yet; run `npm ci` (or `npm run build`) in the project first');
    process.exit(1);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
