/**
 * Downloads a file whose size and SHA-256 are known in advance, with Node's own http/https.
 *
 * The bytes stream into a temporary file beside the destination and are renamed into place only
 * once both checks pass, so the destination is either the verified file or untouched; on any
 * failure the temporary file is deleted.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { firstLine, UsageError } from '../core/errors';
import { count } from '../core/numbers';
import { makeDirs, removeEmptyDirs } from './out-path';

/** What the downloaded file must be. */
export interface ExpectedFile {
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

export interface DownloadOptions {
  /** Give up when the connection is idle this long (connecting, or between chunks). */
  readonly timeoutMs?: number;
  readonly maxRedirects?: number;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_REDIRECTS = 5;

/** Thrown for every failure of a download; the message is one line naming what failed. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
}

export async function downloadVerified(url: string, dest: string, expected: ExpectedFile, options: DownloadOptions = {}): Promise<void> {
  checkUrl(url);
  const made = makeDirs(path.dirname(dest));
  const tmp = `${dest}.${process.pid}.part`;
  // Exiting mid-download (a signal) leaves nothing behind either.
  const removePartial = () => {
    fs.rmSync(tmp, { force: true });
    if (made !== undefined) removeEmptyDirs(path.dirname(dest), made);
  };
  process.once('exit', removePartial);
  try {
    const response = await get(url, url, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.maxRedirects ?? DEFAULT_MAX_REDIRECTS);
    const hash = createHash('sha256');
    let received = 0;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        // Stop early rather than fill the disk when a server sends something else entirely.
        if (received > expected.bytes)
          return done(new DownloadError(`the server sent more than the expected ${count(expected.bytes)} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const file = fs.createWriteStream(tmp);
    // The file may still be opening or closing when the pipeline settles; removing or renaming it
    // must wait until it is closed.
    const closed = new Promise<void>((resolve) => file.once('close', () => resolve()));
    try {
      await pipeline(response, check, file);
    } catch (err) {
      await closed;
      if (err instanceof DownloadError) throw err;
      // File system errors name their path; a dropped connection does not.
      if ((err as NodeJS.ErrnoException).path !== undefined) throw new DownloadError(`cannot write ${tmp}: ${firstLine(err)}`);
      throw new DownloadError(`connection lost after ${count(received)} of ${count(expected.bytes)} bytes (${firstLine(err)})`);
    }
    await closed;
    if (received !== expected.bytes) throw new DownloadError(`got ${count(received)} bytes, expected ${count(expected.bytes)}`);
    const sha256 = hash.digest('hex');
    if (sha256 !== expected.sha256.toLowerCase()) throw new DownloadError(`SHA-256 is ${sha256}, expected ${expected.sha256}`);
    fs.renameSync(tmp, dest);
  } catch (err) {
    removePartial();
    throw new DownloadError(`download of ${url} failed: ${firstLine(err)}; nothing saved`);
  } finally {
    process.off('exit', removePartial);
  }
}

/** SHA-256 (hex) and size of a file on disk. */
export function fileDigest(file: string): { bytes: number; sha256: string } {
  const bytes = fs.readFileSync(file);
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url ${url} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url must be http:// or https://, got ${url}`);
}

/** The 200 response for `url`, following redirects. */
function get(url: string, original: string, timeoutMs: number, redirectsLeft: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const request = client.get(url, { headers: { 'user-agent': 'lstm-lyrics' } }, (response) => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (status >= 300 && status < 400 && location) {
        response.resume();
        if (redirectsLeft <= 0) return reject(new DownloadError('too many redirects'));
        const next = new URL(location, url).toString();
        if (!/^https?:/.test(next)) return reject(new DownloadError(`redirected to ${next}, which is not http(s)`));
        return resolve(get(next, original, timeoutMs, redirectsLeft - 1));
      }
      if (status !== 200) {
        response.resume();
        return reject(
          new DownloadError(`HTTP ${status} ${response.statusMessage ?? ''}`.trim() + (url === original ? '' : ` from ${url}`)),
        );
      }
      resolve(response);
    });
    // An idle socket (no connection, or no bytes for timeoutMs) fails the request and any body
    // still streaming from it.
    request.setTimeout(timeoutMs, () => request.destroy(new DownloadError(`no data for ${timeoutMs / 1000} s (timed out)`)));
    request.on('error', reject);
  });
}
