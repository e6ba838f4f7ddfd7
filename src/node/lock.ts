/**
 * One run at a time per model directory: `<dir>.lock` beside it holds the owner's pid and start
 * time. A second run refuses at start, naming the owner; a lock whose process has died (killed,
 * crashed, the machine restarted) is stale and taken over. The lock goes when its run ends, on
 * errors, and on process.exit (a second Ctrl-C included); only SIGKILL leaves one behind, and
 * that one is stale.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../core/errors';
import { makeDirs, removeEmptyDirs } from './out-path';

export interface Lock {
  readonly file: string;
  release(): void;
}

interface Owner {
  readonly pid: number;
  readonly startedAt: string;
  readonly command?: string;
}

/** Locks held by this process, with how many times (compare holds both dirs, then train each). */
const held = new Map<string, { count: number; madeDirs?: string }>();

/** Takes `<dir>.lock`, or throws a UsageError naming the live process that holds it. */
export function lockModelDir(flag: string, dir: string): Lock {
  const file = `${path.resolve(dir)}.lock`;
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return { file, release: () => release(file) };
  }
  const madeDirs = makeDirs(path.dirname(file));
  try {
    acquire(flag, dir, file);
  } catch (err) {
    if (madeDirs) removeEmptyDirs(path.dirname(file), madeDirs);
    throw err;
  }
  if (held.size === 0) process.once('exit', releaseAll);
  held.set(file, { count: 1, madeDirs });
  return { file, release: () => release(file) };
}

function acquire(flag: string, dir: string, file: string): void {
  const me: Owner = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    command: `lstm-lyrics ${process.argv.slice(2).join(' ')}`.slice(0, 200),
  };
  // Written whole under a private name, then linked into place: link fails if the lock exists,
  // and a reader never sees a half-written lock.
  const mineTmp = `${file}.${process.pid}`;
  fs.writeFileSync(mineTmp, `${JSON.stringify(me)}\n`);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        fs.linkSync(mineTmp, file);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readOwner(file);
      if (owner && alive(owner.pid)) throw inUse(flag, dir, owner, file);
      // Stale: move it aside (atomically: of several runs taking it over, one moves it), then
      // check that what was moved is the stale lock and not a fresh one taken meanwhile.
      const aside = `${file}.stale.${process.pid}`;
      try {
        fs.renameSync(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const moved = readOwner(aside);
      if (moved && moved.pid !== owner?.pid && alive(moved.pid)) {
        try {
          fs.linkSync(aside, file); // put the live one back
        } catch {
          // someone else holds it now; either way, it is not ours
        }
        fs.rmSync(aside, { force: true });
        throw inUse(flag, dir, moved, file);
      }
      fs.rmSync(aside, { force: true });
    }
    throw new UsageError(`${flag} ${dir}: cannot take ${file} (other runs keep taking it)`);
  } finally {
    fs.rmSync(mineTmp, { force: true });
  }
}

function inUse(flag: string, dir: string, owner: Owner, file: string): UsageError {
  return new UsageError(
    `${flag} ${dir} is in use by another run (pid ${owner.pid}, started ${owner.startedAt}${owner.command ? `: ${owner.command}` : ''}); ` +
      `wait for it to end, or pick another ${flag} (if pid ${owner.pid} is no lstm-lyrics run, remove ${file})`,
  );
}

/** The lock's owner, or undefined when the file is gone or unreadable (treated as stale). */
function readOwner(file: string): Owner | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(file, 'utf8')) as Owner;
    return Number.isInteger(owner?.pid) && owner.pid > 0 ? owner : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return false; // not held by this process (see `held`): left by an earlier one
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

function release(file: string): void {
  const mine = held.get(file);
  if (!mine || --mine.count > 0) return;
  held.delete(file);
  fs.rmSync(file, { force: true });
  if (mine.madeDirs) removeEmptyDirs(path.dirname(file), mine.madeDirs);
  if (held.size === 0) process.off('exit', releaseAll);
}

function releaseAll(): void {
  for (const file of [...held.keys()]) {
    try {
      fs.rmSync(file, { force: true });
    } catch {
      // exiting anyway; a lock left behind is stale and will be taken over
    }
  }
  held.clear();
}
