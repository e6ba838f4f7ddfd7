/**
 * One job: the models kept in this browser, in IndexedDB, as the files a model directory holds
 * (checkpoint.json, the weights, optimizer.bin...: what Download zips). Two object stores: `models`
 * (id, name, checkpoint.json: enough to list) and `files` (every file, by the same id), written
 * together in one transaction so a model is either wholly kept or not at all. No DOM, no tensors.
 */
import type { ModelFiles } from '../core/models';

const DB_NAME = 'lstm-lyrics';
const DB_VERSION = 1;
const MODELS = 'models';
const FILES = 'files';

/** A kept model as the list shows it; its other files come from files(id). */
export interface StoredModel {
  readonly id: number;
  readonly name: string;
  readonly checkpoint: Uint8Array;
}

/** Why the browser keeps nothing: IndexedDB missing or refused (private mode), or its quota full. */
export class BrowserStoreError extends Error {
  override readonly name = 'BrowserStoreError';
  constructor(
    readonly reason: 'unavailable' | 'full',
    message: string,
  ) {
    super(message);
  }
}

export interface BrowserStore {
  list(): Promise<StoredModel[]>;
  files(id: number): Promise<ModelFiles>;
  /** Keeps a model's files under `name`; its new id. */
  put(name: string, files: ModelFiles): Promise<number>;
  /** Replaces a kept model's files (a resumed run), keeping its id and name. */
  replace(id: number, files: ModelFiles): Promise<void>;
  rename(id: number, name: string): Promise<void>;
  delete(id: number): Promise<void>;
}

/** Opens (creating on first use) the page's database; a BrowserStoreError if the browser refuses. */
export async function openBrowserStore(factory: IDBFactory | undefined = globalThis.indexedDB): Promise<BrowserStore> {
  let db: IDBDatabase;
  try {
    if (!factory) throw new Error('no indexedDB in this browser');
    db = await requestResult(
      (() => {
        const request = factory.open(DB_NAME, DB_VERSION);
        request.onupgradeneeded = () => {
          request.result.createObjectStore(MODELS, { keyPath: 'id', autoIncrement: true });
          request.result.createObjectStore(FILES);
        };
        return request;
      })(),
    );
  } catch (err) {
    throw new BrowserStoreError('unavailable', `IndexedDB is unavailable (${describe(err)})`);
  }
  return {
    list: () => run(db, [MODELS], 'readonly', (t) => requestResult(t.objectStore(MODELS).getAll() as IDBRequest<StoredModel[]>)),
    async files(id) {
      const files = await run(db, [FILES], 'readonly', (t) =>
        requestResult(t.objectStore(FILES).get(id) as IDBRequest<ModelFiles | undefined>),
      );
      if (!files) throw new Error(`model ${id} is no longer kept in this browser`);
      return files;
    },
    put: (name, files) =>
      run(db, [MODELS, FILES], 'readwrite', async (t) => {
        const id = (await requestResult(t.objectStore(MODELS).add({ name, checkpoint: checkpointOf(files) }))) as number;
        await requestResult(t.objectStore(FILES).put(files, id));
        return id;
      }),
    replace: (id, files) =>
      run(db, [MODELS, FILES], 'readwrite', async (t) => {
        const record = await existing(t, id);
        await requestResult(t.objectStore(MODELS).put({ ...record, checkpoint: checkpointOf(files) }));
        await requestResult(t.objectStore(FILES).put(files, id));
      }),
    rename: (id, name) =>
      run(db, [MODELS], 'readwrite', async (t) => {
        await requestResult(t.objectStore(MODELS).put({ ...(await existing(t, id)), name }));
      }),
    delete: (id) =>
      run(db, [MODELS, FILES], 'readwrite', async (t) => {
        await requestResult(t.objectStore(MODELS).delete(id));
        await requestResult(t.objectStore(FILES).delete(id));
      }),
  };
}

function checkpointOf(files: ModelFiles): Uint8Array {
  const checkpoint = files['checkpoint.json'];
  if (!checkpoint) throw new Error('a model to keep needs its checkpoint.json');
  return checkpoint;
}

async function existing(t: IDBTransaction, id: number): Promise<StoredModel> {
  const record = await requestResult(t.objectStore(MODELS).get(id) as IDBRequest<StoredModel | undefined>);
  if (!record) throw new Error(`model ${id} is no longer kept in this browser`);
  return record;
}

/** `work` inside one transaction; resolves once the transaction commits, with a BrowserStoreError when the quota is full. */
async function run<T>(db: IDBDatabase, stores: string[], mode: IDBTransactionMode, work: (t: IDBTransaction) => Promise<T>): Promise<T> {
  let t: IDBTransaction;
  try {
    t = db.transaction(stores, mode);
  } catch (err) {
    throw storeError(err);
  }
  const done = new Promise<void>((resolve, reject) => {
    t.oncomplete = () => resolve();
    t.onabort = () => reject(storeError(t.error ?? new Error('IndexedDB transaction aborted')));
  });
  let result: T;
  try {
    result = await work(t);
  } catch (err) {
    // Nothing half-written: abort (if the failure has not already), then report the quota if
    // that is what failed, else the work's own error.
    try {
      t.abort();
    } catch {}
    const aborted = await done.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw aborted instanceof BrowserStoreError ? aborted : storeError(err);
  }
  await done;
  return result;
}

function requestResult<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

function storeError(err: unknown): Error {
  if (err instanceof BrowserStoreError) return err;
  if (err instanceof DOMException && err.name === 'QuotaExceededError') {
    return new BrowserStoreError('full', "this browser's storage for the page is full");
  }
  return err instanceof Error ? err : new Error(describe(err));
}

function describe(err: unknown): string {
  const text = err instanceof Error || err instanceof DOMException ? `${err.name}: ${err.message}` : String(err);
  return text.split('\n')[0];
}
