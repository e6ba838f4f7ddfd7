/**
 * One job: the page's mutable state, in one object that start() (ui.ts) creates and hands to the
 * panels that read or change it. No UI module keeps state of its own at module level.
 */
import type { LoadedModel, ModelSummary, TrainedModel } from './app';
import type { BrowserStore } from './browser-store';

/** A row of the models table. */
export interface Entry {
  summary: ModelSummary;
  /** Trained in this page (or opened by hand when the browser keeps nothing): in this tab, downloadable. */
  local?: TrainedModel;
  /** Kept in this browser (IndexedDB) under this id: listed under "this browser", survives a reload. */
  stored?: { readonly id: number };
  loaded?: Promise<LoadedModel>;
}

/** A corpus being read (or read) for training: the memory estimate and Train share one read. */
export interface CorpusRead {
  readonly bytes: Promise<{ bytes: Uint8Array; name: string }>;
  done?: { bytes: Uint8Array; name: string };
}

export interface PageState {
  /** The models table's rows by name: the server's list, the models kept in this browser, the runs trained in this page. */
  readonly entries: Map<string, Entry>;
  /** The model picked in the table, the one generation uses. */
  selected: string | undefined;
  /** The TF.js backend that started ('unknown' until one has). */
  backendName: string;
  /** Bumped by every generation and selection; a running generation that sees a newer number stops. */
  generationToken: number;
  /** The generationToken of the generation writing into #generated, if one is. */
  generating: number | undefined;
  /** Set by the generate form's Stop to the generation it stops; that generation reads it every character. */
  stopGeneration: number | undefined;
  /** Set by the Stop button; the running training reads it between batches. */
  stopRequested: boolean;
  /** The bundled corpus, fetched once for the train form. */
  bundledCorpus?: CorpusRead;
  /** The .txt file picked in the train form, read once. */
  fileCorpus?: { readonly file: File; readonly read: CorpusRead };
  /** The last vocabulary the memory estimate counted, so typing in a field does not count it again. */
  vocabEstimate?: { readonly of: Uint8Array; readonly maxChars: number; readonly count: number | undefined };
  /** The last run's models, which the train panel's Download buttons offer (see releaseIfUnused). */
  trainPanelModels: TrainedModel[];
  /** How many trainings this page has started (names its models: "this page #N: impl"). */
  trainedRuns: number;
  /** Where models are kept across reloads; undefined until opened, or when the browser refuses (see storeProblem). */
  store: BrowserStore | undefined;
  /** Why models are not kept in this browser (IndexedDB unavailable), in one line. */
  storeProblem: string | undefined;
}

export function createState(): PageState {
  return {
    entries: new Map(),
    selected: undefined,
    backendName: 'unknown',
    generationToken: 0,
    generating: undefined,
    stopGeneration: undefined,
    stopRequested: false,
    trainPanelModels: [],
    trainedRuns: 0,
    store: undefined,
    storeProblem: undefined,
  };
}
