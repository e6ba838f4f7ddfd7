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

export interface PageState {
  /** The models table's rows by name: the server's list, the models kept in this browser, the runs trained in this page. */
  readonly entries: Map<string, Entry>;
  /** The model picked in the table, the one generation uses. */
  selected: string | undefined;
  /** The TF.js backend that started ('unknown' until one has). */
  backendName: string;
  /** Bumped by every generation and selection; a running generation that sees a newer number stops. */
  generationToken: number;
  /** Set by the Stop button; the running training reads it between batches. */
  stopRequested: boolean;
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
    stopRequested: false,
    trainedRuns: 0,
    store: undefined,
    storeProblem: undefined,
  };
}
