/**
 * `lstm-lyrics serve`: the page (list, generate with and train models in the browser) on a local
 * HTTP server until the entry point's stop signal; `--export DIR` writes it as static files.
 */
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Argv } from 'yargs';
import { UsageError } from '../../core/errors';
import { listModels } from '../../node/model-listing';
import { closeServer, createPageServer, isLoopback } from '../../node/page-server';
import { exportSite } from '../../node/site-export';
import { WEB_DIR } from '../../node/site-layout';
import type { Logger } from '../logger';
import { wholeNumber, type ArgsOf } from '../options';

export const command = 'serve';
export const describe = 'the page: list saved models, generate with them and train new ones in the browser';

export const serveOptions = {
  models: { type: 'string', default: 'models', describe: 'the folder whose model directories the page lists' },
  port: { type: 'number', default: 8080, describe: 'port to listen on (0: any free one)' },
  host: { type: 'string', default: '127.0.0.1', describe: 'address to bind (the default is reachable from this machine only)' },
  export: { type: 'string', describe: 'write the page and the models as static files into this folder instead of serving' },
  only: {
    type: 'string',
    array: true,
    describe: 'with --export: these model directories only (names as the page lists them)',
    defaultDescription: 'every readable model',
  },
} as const;

export type ServeArgs = ArgsOf<typeof serveOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(serveOptions).example([
    ['$0 serve', 'http://127.0.0.1:8080/ with the models in models/'],
    ['$0 serve --models runs --port 0', 'any free port; the URL is printed'],
    ['$0 serve --export site/', 'the same page as static files'],
  ]);
}

export interface ServeResult {
  /** The page's address while serving, or the folder written by --export. */
  readonly url?: string;
  readonly exported?: { dir: string; models: string[]; files: number };
}

/**
 * Serves until `stop` aborts, then closes the server and every connection and returns.
 * `onListening` gets the URL once the port is bound (tests use it; the log line says the same).
 */
export async function handler(
  args: ServeArgs,
  log: Logger,
  stop?: AbortSignal,
  onListening?: (url: string) => void,
  warn: Logger = log,
): Promise<ServeResult> {
  if (!fs.existsSync(`${WEB_DIR}/index.html`)) throw new Error(`the page is not built (${WEB_DIR}/index.html missing); run npm run build`);
  if (fs.existsSync(args.models) && !fs.statSync(args.models).isDirectory()) {
    throw new UsageError(`--models ${args.models} is not a folder`);
  }
  if (args.export !== undefined) {
    if (args.export.trim() === '') throw new UsageError('--export needs a folder');
    const exported = exportSite(args.export, { modelsDir: args.models, only: args.only });
    log.info(
      `wrote ${exported.files} files to ${exported.dir} (models: ${exported.models.join(', ') || 'none'}); serve it with any static file server`,
    );
    return { exported };
  }
  if (args.only !== undefined) throw new UsageError('--only goes with --export');
  const port = wholeNumber('port', args.port, 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  if (!fs.existsSync(args.models)) log.info(`note: ${args.models}/ does not exist yet; the list is empty until a model is saved there`);

  if (!isLoopback(args.host)) {
    // Anyone who can reach the address can read every model: the user should know before anyone else does.
    warn.info(`warning: --host ${args.host} exposes the page and every model under --models to the network`);
  }
  const server = createPageServer({ modelsDir: args.models, host: args.host });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
          ? new UsageError(`cannot listen on ${args.host}:${port}: ${err.code}`)
          : err,
      ),
    );
    server.listen(port, args.host, () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  const url = `http://${host}:${bound}/`;
  const count = listModels(args.models).length;
  log.info(`serving ${url} (${count} model director${count === 1 ? 'y' : 'ies'} in ${args.models}/; Ctrl-C stops)`);
  onListening?.(url);
  if (stop && !stop.aborted) await new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), { once: true }));
  await closeServer(server);
  log.info('stopped');
  return { url };
}
