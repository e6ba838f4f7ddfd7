/**
 * The paths the CLI writes (train's --out and --metrics, compare's --out, corpus fetch's --dir),
 * checked before any long work starts, so that a run that cannot save, or that would replace
 * something that is not its own, costs one line on stderr instead of a training run.
 *
 * Directories are made one mkdir at a time: fs.mkdirSync's recursive mode never returns on some
 * pseudo file systems (on /proc it retries ENOENT forever, at 100% CPU, deaf to signals).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { firstLine, UsageError } from '../core/errors';
import { CHECKPOINT_FILE } from '../core/checkpoint-format';

/**
 * A directory path without trailing separators: `models/x/` (as shells complete it) would put
 * `<dir>.tmp` and `<dir>.old` inside the directory they replace.
 */
export function withoutTrailingSlash(dir: string): string {
  const trimmed = dir.replace(/[\\/]+$/, '');
  return trimmed === '' || /^[A-Za-z]:$/.test(trimmed) ? dir : trimmed;
}

/** Makes `dir` and its missing parents; returns the topmost directory it made (undefined: none). */
export function makeDirs(dir: string): string | undefined {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return missing[0];
}

/** Removes `dir` and its parents up to `top`, as far as they are empty (the ones makeDirs made). */
export function removeEmptyDirs(dir: string, top: string): void {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      return;
    }
    if (d === path.resolve(top) || path.dirname(d) === d) return;
  }
}

/**
 * `--out DIR` of train: DIR may be missing, empty, or a model directory (which a save replaces);
 * anything else (a file, a directory of other things) is not train's to replace.
 */
export function checkModelOut(flag: string, dir: string): void {
  const stat = statOrUndefined(dir);
  if (stat && !stat.isDirectory()) throw new UsageError(`${flag} ${dir} is a file, not a model directory`);
  if (stat) {
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes(CHECKPOINT_FILE)) {
      throw new UsageError(
        `${flag} ${dir} is a directory that holds no model (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, no ${CHECKPOINT_FILE}); name a new or empty directory`,
      );
    }
  }
  // A save writes DIR.tmp beside DIR, then renames: the parent is what must be writable.
  checkCanCreateIn(flag, dir, path.dirname(path.resolve(dir)));
}

/** A directory the CLI writes files into (compare's --out, corpus fetch's --dir). */
export function checkOutDir(flag: string, dir: string): void {
  const stat = statOrUndefined(dir);
  if (stat && !stat.isDirectory()) throw new UsageError(`${flag} ${dir} is a file, not a directory`);
  checkCanCreateIn(flag, dir, path.resolve(dir));
}

/** A file the CLI writes (--metrics, compare's chart): a file or nothing, in a writable place. */
export function checkOutFile(flag: string, file: string): void {
  const stat = statOrUndefined(file);
  if (stat?.isDirectory()) throw new UsageError(`${flag} ${file} is a directory, not a file`);
  if (stat?.isFile()) {
    try {
      fs.closeSync(fs.openSync(file, 'a')); // opens for writing, changes nothing
    } catch (err) {
      throw new UsageError(`${flag} ${file} cannot be written (${firstLine(err)})`);
    }
    return;
  }
  if (stat) return; // a device (/dev/stdout) or a pipe: opening one to try it could block
  checkCanCreateIn(flag, file, path.dirname(path.resolve(file)));
}

/**
 * Whether files can be created in `dir` (or, where it does not exist yet, in its nearest existing
 * ancestor, where the missing directories would be made): tried for real, with a probe directory
 * made and removed at once. Permission bits say nothing for root, nor about read-only mounts.
 */
function checkCanCreateIn(flag: string, target: string, dir: string): void {
  let base = dir;
  while (!fs.existsSync(base) && path.dirname(base) !== base) base = path.dirname(base);
  if (!fs.statSync(base).isDirectory()) throw new UsageError(`${flag} ${target} cannot be written: ${base} is a file`);
  let probe: string;
  try {
    probe = fs.mkdtempSync(path.join(base, '.lstm-lyrics-probe-'));
  } catch (err) {
    throw new UsageError(`${flag} ${target} cannot be written (${firstLine(err)})`);
  }
  fs.rmdirSync(probe);
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}
