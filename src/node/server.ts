/**
 * The page's server (`lstm-lyrics serve`) and its static export (`serve --export`): the bundled
 * page, the bundled corpus, a JSON list of the model directories under the models folder, and,
 * read-only, the files those models consist of. Nothing else on disk is reachable: a request names
 * a model by its listed name and a file by a name its checkpoint.json lists, and the file's real
 * path (links resolved) must lie inside the models folder.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { firstLine, UsageError } from '../core/errors';
import { CHECKPOINT_FILE, filesOf, type CheckpointMeta } from '../core/format';
import { readCheckpointMeta } from './model-dir';
import { makeDirs } from './out-path';

/** The built page (scripts/build-web.js writes it), found relative to the package, not the cwd. */
export const WEB_DIR = path.resolve(__dirname, '..', '..', 'dist', 'web');
export const CORPUS_DIR = path.resolve(__dirname, '..', '..', 'corpus');
/** The corpus the page offers for training, served read-only under corpus/. */
export const PAGE_CORPUS = 'songci300.txt';
export const MODEL_LIST_FILE = 'models.json';

/**
 * Narrow on purpose: scripts only from this origin (vega runs its expressions with an interpreter,
 * so no eval), WebAssembly compilation for TF.js' wasm backend, inline style attributes (vega's SVG
 * sets them), blob: for the model download.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** One line of the model list: what the page shows, and what it needs to fetch the model. */
export type ModelListing = ReadableModel | UnreadableModel;

export interface ReadableModel {
  /** The directory's path relative to the models folder, with '/' separators. */
  readonly name: string;
  readonly readable: true;
  readonly impl: string;
  readonly hidden: number;
  readonly vocabSize: number;
  readonly epochs: number;
  readonly perplexity: number | null;
  readonly heldOutPerplexity: number | null;
  /** The corpus file's name (not its path on the server's disk). */
  readonly corpus: string;
  readonly savedAt: string;
  readonly history: readonly { epoch: number; perplexity: number; heldOutPerplexity?: number }[];
}

export interface UnreadableModel {
  readonly name: string;
  readonly readable: false;
  readonly reason: string;
}

/** How deep below the models folder model directories are looked for (runs/compare/scratch: 3). */
const MAX_DEPTH = 4;

/**
 * Every model directory under `root`: a directory holding checkpoint.json, or a directory of files
 * without one (listed as unreadable, like one whose checkpoint cannot be parsed). In-progress
 * saves (`.tmp`, `.old`) and hidden entries are skipped. Never throws for what it finds on disk.
 */
export function listModels(root: string): ModelListing[] {
  const found: ModelListing[] = [];
  let rootReal: string;
  try {
    rootReal = fs.realpathSync(root);
  } catch {
    return found;
  }
  const visit = (rel: string[], depth: number) => {
    const dir = path.join(rootReal, ...rel);
    const name = rel.join('/');
    let entries: fs.Dirent[];
    try {
      if (rel.length > 0 && !insideRoot(rootReal, fs.realpathSync(dir))) {
        found.push({ name, readable: false, reason: 'a link out of the models folder' });
        return;
      }
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (rel.length > 0) found.push({ name, readable: false, reason: firstLine(err) });
      return;
    }
    if (entries.some((e) => e.name === CHECKPOINT_FILE)) {
      found.push(describeModel(dir, name, rootReal));
      return;
    }
    const subdirs = entries.filter((e) => isListable(e.name) && (e.isDirectory() || (e.isSymbolicLink() && isDirectory(path.join(dir, e.name)))));
    if (rel.length > 0 && subdirs.length === 0 && entries.some((e) => e.isFile())) {
      found.push({ name, readable: false, reason: `no ${CHECKPOINT_FILE} (not a saved model, or its save never finished)` });
      return;
    }
    if (depth >= MAX_DEPTH) return;
    for (const sub of subdirs.sort((a, b) => a.name.localeCompare(b.name))) visit([...rel, sub.name], depth + 1);
  };
  visit([], 0);
  return found;
}

function describeModel(dir: string, name: string, rootReal: string): ModelListing {
  try {
    const meta = readCheckpointMeta(dir, `${name}/${CHECKPOINT_FILE}`);
    const missing = filesOf(meta).filter((file) => !isSafeName(file) || !fs.existsSync(path.join(dir, file)));
    if (missing.length > 0) return { name, readable: false, reason: `incomplete: ${missing.join(', ')} missing` };
    const linkedOut = filesOf(meta).filter((file) => !insideRoot(rootReal, fs.realpathSync(path.join(dir, file))));
    if (linkedOut.length > 0) return { name, readable: false, reason: `${linkedOut.join(', ')} links out of the models folder` };
    const last = meta.history.at(-1);
    return {
      name,
      readable: true,
      impl: meta.model.impl,
      hidden: meta.model.hidden,
      vocabSize: meta.model.vocabSize,
      epochs: meta.epoch,
      perplexity: last?.perplexity ?? null,
      heldOutPerplexity: last?.heldOutPerplexity ?? null,
      corpus: path.basename(String(meta.train?.corpus ?? '')),
      savedAt: meta.savedAt,
      history: meta.history.map((m) => ({ epoch: m.epoch, perplexity: m.perplexity, ...(m.heldOutPerplexity !== undefined && { heldOutPerplexity: m.heldOutPerplexity }) })),
    };
  } catch (err) {
    return { name, readable: false, reason: firstLine(err) };
  }
}

export interface ServerOptions {
  /** The models folder. */
  readonly modelsDir: string;
  /** The built page; defaults to WEB_DIR. */
  readonly webDir?: string;
  /** Where the bundled corpus lies; defaults to the package's corpus/. */
  readonly corpusDir?: string;
}

/**
 * Limits that keep the server alive under a flood or slow clients: a client gets this long to send
 * its headers (a "slowloris" holding sockets open is cut off), and its whole request; a socket
 * idle this long (a client that stopped reading) is closed; at most this many connections at once.
 * Files are streamed, so memory per connection is one read buffer, whatever the file's size.
 */
export const SERVER_LIMITS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleSocketMs: 60_000, maxConnections: 256 } as const;

/** An http.Server for the page; listen() is the caller's. */
export function createPageServer(options: ServerOptions): http.Server {
  const handler = requestHandler(options);
  const server = http.createServer({
    headersTimeout: SERVER_LIMITS.headersTimeoutMs,
    requestTimeout: SERVER_LIMITS.requestTimeoutMs,
    // How often Node checks those two timeouts (its default, 30 s, would let a slow client linger).
    connectionsCheckingInterval: 1_000,
  }, (req, res) => {
    try {
      handler(req, res);
    } catch {
      if (!res.headersSent) send(res, req, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  });
  server.maxConnections = SERVER_LIMITS.maxConnections;
  // With no 'timeout' listener, Node destroys a socket idle this long.
  server.setTimeout(SERVER_LIMITS.idleSocketMs);
  return server;
}

/** Closes the server and every open connection (keep-alive ones too), so a stop is immediate. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function requestHandler(options: ServerOptions) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, req, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const file = resolveRequest(req.url ?? '', options);
    if (file === undefined) {
      send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
    } else if (typeof file !== 'string') {
      send(res, req, 200, 'application/json; charset=utf-8', JSON.stringify(file.json));
    } else {
      sendFile(res, req, file);
    }
  };
}

/**
 * The file a request path names, the model list as `{ json }`, or undefined (404). Works on the
 * raw path, segment by segment, before anything could normalise `..` away: a segment that is
 * empty, `.` or `..`, or holds `/`, `\` or NUL once decoded, is refused outright.
 */
export function resolveRequest(url: string, { modelsDir, webDir = WEB_DIR, corpusDir = CORPUS_DIR }: ServerOptions): string | { json: unknown } | undefined {
  const rawPath = url.split(/[?#]/)[0];
  if (!rawPath.startsWith('/')) return undefined;
  const segments = rawPath === '/' ? [] : rawPath.slice(1).split('/');
  let decoded: string[];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  if (!decoded.every(isSafeName)) return undefined;

  if (decoded.length === 0) return path.join(webDir, 'index.html');
  if (decoded.length === 1 && decoded[0] === MODEL_LIST_FILE) return { json: listModels(modelsDir) };
  if (decoded.length === 1) return pageAsset(webDir, decoded[0]);
  if (decoded.length === 2 && decoded[0] === 'corpus' && decoded[1] === PAGE_CORPUS) return path.join(corpusDir, PAGE_CORPUS);
  if (decoded[0] === 'models' && decoded.length >= 3) return modelFile(modelsDir, decoded.slice(1, -1), decoded[decoded.length - 1]);
  return undefined;
}

/** One of the files the build wrote into the page's folder (index.html, the bundle, wasm...). */
function pageAsset(webDir: string, name: string): string | undefined {
  const file = path.join(webDir, name);
  return isFile(file) ? file : undefined;
}

/** A file of a listed model: one its checkpoint.json names, whose real path is inside the folder. */
function modelFile(modelsDir: string, dirSegments: string[], name: string): string | undefined {
  const folder = modelFolder(modelsDir, dirSegments);
  return folder && fileOfModel(folder, name);
}

interface ModelFolder {
  readonly rootReal: string;
  readonly dir: string;
  readonly meta: CheckpointMeta;
}

/** A listed model's folder, inside the models folder, and its checkpoint; undefined if not one. */
function modelFolder(modelsDir: string, dirSegments: string[]): ModelFolder | undefined {
  try {
    const rootReal = fs.realpathSync(modelsDir);
    const dir = path.join(rootReal, ...dirSegments);
    if (!insideRoot(rootReal, fs.realpathSync(dir))) return undefined;
    if (dirSegments.some((s) => !isListable(s))) return undefined;
    return { rootReal, dir, meta: readCheckpointMeta(dir, CHECKPOINT_FILE) };
  } catch {
    return undefined;
  }
}

/** checkpoint.json or a file it names, if its real path is inside the models folder. */
function fileOfModel({ rootReal, dir, meta }: ModelFolder, name: string): string | undefined {
  if (name !== CHECKPOINT_FILE && !filesOf(meta).includes(name)) return undefined;
  const file = path.join(dir, name);
  try {
    return insideRoot(rootReal, fs.realpathSync(file)) && isFile(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

export interface ExportResult {
  readonly dir: string;
  readonly models: string[];
  readonly files: number;
}

/**
 * The page as static files any static host serves: the page's files, the bundled corpus,
 * models.json, and models/<name>/<file> for each chosen model (all readable ones by default).
 */
export function exportSite(outDir: string, options: ServerOptions & { readonly only?: readonly string[] }): ExportResult {
  const { modelsDir, webDir = WEB_DIR, corpusDir = CORPUS_DIR, only } = options;
  const listed = listModels(modelsDir);
  const readable = listed.filter((m): m is ReadableModel => m.readable);
  const unknown = (only ?? []).filter((name) => !readable.some((m) => m.name === name));
  if (unknown.length > 0) {
    throw new UsageError(`not a readable model under ${modelsDir}: ${unknown.join(', ')} (readable: ${readable.map((m) => m.name).join(', ') || 'none'})`);
  }
  const chosen = only ? readable.filter((m) => only.includes(m.name)) : readable;
  let count = 0;
  const write = (rel: string[], bytes: Uint8Array | string) => {
    const file = path.join(outDir, ...rel);
    makeDirs(path.dirname(file)); // one level at a time: a recursive mkdir spins forever on /proc
    fs.writeFileSync(file, bytes);
    count++;
  };
  for (const name of fs.readdirSync(webDir)) {
    if (isFile(path.join(webDir, name))) write([name], fs.readFileSync(path.join(webDir, name)));
  }
  write(['corpus', PAGE_CORPUS], fs.readFileSync(path.join(corpusDir, PAGE_CORPUS)));
  for (const model of chosen) {
    const segments = model.name.split('/');
    const folder = modelFolder(modelsDir, segments);
    if (folder === undefined) throw new UsageError(`cannot export ${model.name}/${CHECKPOINT_FILE}: not inside ${modelsDir}`);
    for (const name of [CHECKPOINT_FILE, ...filesOf(folder.meta)]) {
      const from = fileOfModel(folder, name);
      if (from === undefined) throw new UsageError(`cannot export ${model.name}/${name}: not inside ${modelsDir}`);
      write(['models', ...segments, name], fs.readFileSync(from));
    }
  }
  write([MODEL_LIST_FILE], JSON.stringify(chosen));
  return { dir: outDir, models: chosen.map((m) => m.name), files: count };
}

/**
 * Streams a file. It is opened once and read through that descriptor, so a model saved again while
 * it is served (its directory replaced by renames) is sent whole as it was when opened; a file gone
 * by then is a 404.
 */
function sendFile(res: http.ServerResponse, req: http.IncomingMessage, file: string): void {
  let fd: number;
  let size: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new Error('not a file');
    size = stat.size;
  } catch {
    fs.closeSync(fd);
    send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  res.writeHead(200, { ...headers(contentTypeOf(file)), 'Content-Length': size });
  if (req.method === 'HEAD' || size === 0) {
    fs.closeSync(fd);
    res.end();
    return;
  }
  const stream = fs.createReadStream(file, { fd, start: 0, end: size - 1, autoClose: true });
  // A client that goes away mid-file: stop reading and free the descriptor.
  res.on('close', () => stream.destroy());
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

function headers(type: string): http.OutgoingHttpHeaders {
  return {
    'Content-Type': type,
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // Models change when a run saves again; the page is small enough to fetch anew.
    'Cache-Control': 'no-cache',
  };
}

function send(res: http.ServerResponse, req: http.IncomingMessage, status: number, type: string, body: string | Buffer): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...headers(type), 'Content-Length': bytes.length });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/** A single path segment that names something directly (no traversal, no separators, no NUL). */
function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\\\0]/.test(name) && !path.isAbsolute(name);
}

function isListable(name: string): boolean {
  return !name.startsWith('.') && !name.endsWith('.tmp') && !name.endsWith('.old');
}

function insideRoot(rootReal: string, real: string): boolean {
  return real === rootReal || real.startsWith(rootReal + path.sep);
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}
