/**
 * Backend data a speed-up keeps across kernel calls, computed from other data and found again by
 * it: the matmul's transposed operands (wasm-kernels.ts) and a stacked layer's input products
 * (stacked-inputs.ts).
 *
 * Why an entry may be reused: it is keyed by the dataId objects of what it was computed from, and
 * in tfjs-core 4.22 the data under a dataId never changes while it lives in a backend. Kernels
 * write only outputs they allocate; Reshape and Identity share data (Identity once patched, as on
 * cpu), never write it; tf.Variable.assign does not write in place but points the variable at the
 * new value's dataId (so each optimizer step brings new keys); moving data between backends
 * re-creates the same values. The key string also holds the shapes the sources were read as, as
 * reshapes share a dataId. A dataId object is never reused while referenced (an entry holds it),
 * and dropStale frees each entry one of whose sources has left the backend: called before any
 * lookup, it means none is returned stale.
 *
 * Held data outlives the kernel call that made it, so tfjs' IS_TEST per-kernel leak check (off
 * unless set) would report it.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

interface Entry {
  /** The dataIds it was computed from. */
  readonly sources: readonly object[];
  readonly key: string;
  /** Backend data that only this entry references: no engine tensor, nothing on the tape. */
  readonly data: tf.TensorInfo;
}

/** Per backend instance, at most `capacity` entries, least recently used first. */
export class HeldData {
  private readonly lists = new WeakMap<BackendWasm, Entry[]>();

  /** `capacity`: at least as many as one kernel call may use at once (eviction must not free one in use). */
  constructor(private readonly capacity: number) {}

  /** The data held for these sources read as `key` (now the most recently used), or undefined. */
  find(wasm: BackendWasm, sources: readonly object[], key: string): tf.TensorInfo | undefined {
    const list = this.listOf(wasm);
    const at = list.findIndex((e) => e.key === key && e.sources.length === sources.length && e.sources.every((s, i) => s === sources[i]));
    if (at < 0) return undefined;
    const [entry] = list.splice(at, 1);
    list.push(entry);
    return entry.data;
  }

  /** Holds `data` for these sources read as `key`, freeing the least recently used beyond capacity. */
  hold(wasm: BackendWasm, sources: readonly object[], key: string, data: tf.TensorInfo): void {
    const list = this.listOf(wasm);
    list.push({ sources, key, data });
    if (list.length > this.capacity) wasm.disposeData(list.shift()!.data.dataId);
  }

  /** Frees the entries one of whose sources was disposed (or moved to another backend). */
  dropStale(wasm: BackendWasm): void {
    const list = this.lists.get(wasm);
    if (!list) return;
    for (let i = list.length - 1; i >= 0; i--) {
      // has(), not get(): get() of a missing dataId would pull it over from another backend.
      if (list[i].sources.every((s) => wasm.dataIdMap.has(s))) continue;
      wasm.disposeData(list[i].data.dataId);
      list.splice(i, 1);
    }
  }

  /** Frees every entry (when the speed-ups are removed). */
  dropAll(wasm: BackendWasm): void {
    const list = this.lists.get(wasm);
    if (!list) return;
    for (const e of list) if (wasm.dataIdMap.has(e.data.dataId)) wasm.disposeData(e.data.dataId);
    list.length = 0;
  }

  private listOf(wasm: BackendWasm): Entry[] {
    let list = this.lists.get(wasm);
    if (!list) {
      list = [];
      this.lists.set(wasm, list);
    }
    return list;
  }
}
