/**
 * The page's HTTP server (`lstm-lyrics serve`): the bundled page, the bundled corpus, the model
 * list, and, read-only, the files those models consist of. Nothing else on disk is reachable: a
 * request is refused segment by segment before it touches the disk, and a model's files are only
 * those model-listing.ts lets be read. Its own module because it is the one part facing the
 * network: headers, limits and streaming are its concern alone.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointCache, fileOfModel, listModels, modelFolder, MODEL_LIST_FILE } from './model-listing';
import { CORPUS_DIR, isFile, isSafeName, PAGE_CORPUS, WEB_DIR, type ServerOptions } from './site-layout';

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
  let hosts: { port: number; allowed: ReadonlySet<string> } | undefined;
  const server: http.Server = http.createServer(
    {
      headersTimeout: SERVER_LIMITS.headersTimeoutMs,
      requestTimeout: SERVER_LIMITS.requestTimeoutMs,
      // How often Node checks those two timeouts (its default, 30 s, would let a slow client linger).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      try {
        // The names it answers to follow the bound address, known only once listening.
        const bound = server.address() as AddressInfo;
        if (hosts?.port !== bound.port) hosts = { port: bound.port, allowed: allowedHosts(bound.address, bound.port, options.host) };
        if (!hosts.allowed.has((req.headers.host ?? '').toLowerCase())) {
          send(res, req, 421, 'text/plain; charset=utf-8', 'misdirected request: this server answers only to its own address\n');
          return;
        }
        handler(req, res);
      } catch {
        if (!res.headersSent) send(res, req, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      }
    },
  );
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

/**
 * The Host headers a request may carry: the names and addresses of the interface the server is
 * bound to, with its port. Any other Host is a page of another site reaching this server through
 * DNS rebinding (its own name made to resolve to this address), which the browser would let read
 * the answers as that site's; refusing it keeps the models unreadable to other sites.
 * Loopback: localhost, 127.0.0.1, [::1]; a wildcard (0.0.0.0, ::): every local interface's
 * address and those; any other address: that address (and the name it was bound by).
 */
export function allowedHosts(address: string, port: number, boundName?: string): Set<string> {
  const loopbackNames = ['localhost', '127.0.0.1', '::1'];
  let names: string[];
  if (isLoopback(address)) names = [...loopbackNames, address];
  else if (address === '0.0.0.0' || address === '::') {
    const local = Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    // The wildcard itself too: only a client that typed it sends it, never a rebound name.
    names = [...loopbackNames, address, ...local];
  } else names = [address];
  // `--host my-machine.lan` binds that name's address; the name itself is this server's too.
  if (boundName !== undefined && boundName !== '') names.push(boundName.replace(/^\[|\]$/g, ''));
  const allowed = new Set<string>();
  for (const name of names) {
    // An IPv6 address is bracketed in a Host header; a link-local one's zone (%eth0) is not sent.
    const host = (name.includes(':') ? `[${name.split('%')[0]}]` : name).toLowerCase();
    allowed.add(`${host}:${port}`);
    if (port === 80) allowed.add(host); // browsers leave out the default port
  }
  return allowed;
}

/** Whether an address (or localhost) reaches this machine only. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(bare);
}

function requestHandler(options: ServerOptions) {
  // One per server: each request re-reads only the checkpoints that changed since the last.
  const cache = new CheckpointCache();
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, req, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const file = resolveRequest(req.url ?? '', options, cache);
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
export function resolveRequest(
  url: string,
  { modelsDir, webDir = WEB_DIR, corpusDir = CORPUS_DIR }: ServerOptions,
  cache = new CheckpointCache(),
): string | { json: unknown } | undefined {
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

  if (decoded.length === 0) return pageAsset(webDir, 'index.html');
  if (decoded.length === 1 && decoded[0] === MODEL_LIST_FILE) return { json: listModels(modelsDir, cache) };
  if (decoded.length === 1) return pageAsset(webDir, decoded[0]);
  if (decoded.length === 2 && decoded[0] === 'corpus' && decoded[1] === PAGE_CORPUS) return pageAsset(corpusDir, PAGE_CORPUS);
  if (decoded[0] === 'models' && decoded.length >= 3) {
    return modelFile(modelsDir, decoded.slice(1, -1), decoded[decoded.length - 1], cache);
  }
  return undefined;
}

/**
 * One of the files the build wrote into the page's folder (index.html, the bundle, wasm...), or
 * the bundled corpus: as its real path, since sendFile follows no last link.
 */
function pageAsset(webDir: string, name: string): string | undefined {
  try {
    const file = fs.realpathSync(path.join(webDir, name));
    return isFile(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

/** A file of a listed model: one its checkpoint.json names, whose real path is inside the folder. */
function modelFile(modelsDir: string, dirSegments: string[], name: string, cache: CheckpointCache): string | undefined {
  const folder = modelFolder(modelsDir, dirSegments, cache);
  return folder && fileOfModel(folder, name);
}

/**
 * Streams a file. It is opened once and read through that descriptor, so a model saved again while
 * it is served (its directory replaced by renames) is sent whole as it was when opened; a file gone
 * by then is a 404. `file` is a real path, checked by the caller; it is opened non-blocking and
 * not through a link, so a FIFO or a link out swapped in after those checks cannot hang the server
 * or leak a file (they are then a 404).
 */
function sendFile(res: http.ServerResponse, req: http.IncomingMessage, file: string): void {
  let fd: number;
  let size: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
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
