/**
 * Data-movement kernels for @tensorflow/tfjs-backend-wasm 4.22.0, written in JS over the wasm heap.
 *
 * The library's Slice kernel starts with backend.readSync(x), a copy of the WHOLE input, and its
 * Unpack and SplitV call that Slice once per output. Unstacking [35,32,1024] so copied the input
 * 35 times (~40-80 ms where one pass of memcpy is enough); splitting a weight in four, four times.
 * Its GatherV2 goes element by element (~36 ms for 1120 rows of 1024). Here each output is filled
 * straight from a view of the input's heap memory, in runs as long as the layout allows, by
 * TypedArray.set (a memcpy).
 *
 * Identity, Cast to the same dtype and a Transpose that keeps the layout, which the library
 * implements as copies, share the data instead, as the cpu backend does for the first two.
 *
 * Each factory takes the library's kernel and falls back to it for what it does not handle
 * (strings, which live outside the heap; GatherV2 other than rows of axis 0).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type HeapArray = Float32Array | Int32Array | Uint8Array;
/** What typedArrayFromHeap can view (strings live outside the heap; wasm has no complex64). */
const onHeap = (t: tf.TensorInfo): boolean => t.dtype === 'float32' || t.dtype === 'int32' || t.dtype === 'bool';

/** Kernel name → (library kernel) → replacement. */
export const FAST_COPY_KERNELS: Record<string, (original: tf.KernelFunc) => tf.KernelFunc> = {
  // tfjs-core clones each tensor it saves for backprop (engine.saveTensorsForBackwardMode) with
  // this kernel. The library copies the data; the cpu backend shares it, as a dataId's data never
  // changes (see held-data.ts). Sharing saves a copy of the LSTM's weights
  // per time step, and lets the transpose cache see each step's saved weight as the same operand.
  [tf.Identity]: (original) => (args) => (onHeap(args.inputs.x!) ? share(args) : original(args)),

  // A cast to the dtype x already has: the library copies; it is x (tfjs-core's gradients of
  // Multiply and Square cast their inputs to float32, ~200 no-op casts a batch).
  [tf.Cast]: (original) => (args) => {
    const x = args.inputs.x!;
    return onHeap(x) && x.dtype === (args.attrs as unknown as tf.CastAttrs).dtype ? share(args) : original(args);
  },

  // A transpose that moves only axes of size 1 (tfjs-core's gradient of tf.gather asks for [0, 1]
  // twice a batch, on [1120, 1024] and [1027, 1024]): the library copies the data; the layout is
  // already the output's, so it is x's data under the new shape.
  [tf.Transpose]: (original) => (args) => {
    const x = args.inputs.x!;
    const { perm } = args.attrs as unknown as tf.TransposeAttrs;
    const moved = perm.filter((axis) => x.shape[axis] !== 1);
    if (!onHeap(x) || moved.some((axis, i) => i > 0 && axis < moved[i - 1])) return original(args);
    return { ...share(args), shape: perm.map((axis) => x.shape[axis]) };
  },

  [tf.Slice]: (original) => (args) => {
    const x = args.inputs.x!;
    if (!onHeap(x)) return original(args);
    const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
    const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size);
    const wasm = args.backend as BackendWasm;
    return repeated(wasm, x, `Slice [${x.shape}] ${begin_} ${size_}`, () => {
      const out = wasm.makeOutput(size_, x.dtype);
      copyBlock(heap(wasm, x), x.shape, begin_, size_, heap(wasm, out));
      return [out];
    })[0];
  },

  [tf.Unpack]: (original) => (args) => {
    const value = args.inputs.value!;
    if (!onHeap(value)) return original(args);
    const rank = value.shape.length;
    const axis = tf.util.parseAxisParam((args.attrs as unknown as tf.UnpackAttrs).axis, value.shape)[0];
    const outShape = value.shape.filter((_, i) => i !== axis);
    const blocks = Array.from({ length: value.shape[axis] }, (_, i) => {
      const begin = new Array<number>(rank).fill(0);
      begin[axis] = i;
      return { begin, size: value.shape.map((d, k) => (k === axis ? 1 : d)), shape: outShape };
    });
    return copyBlocks(args.backend as BackendWasm, value, blocks);
  },

  [tf.SplitV]: (original) => (args) => {
    const x = args.inputs.x!;
    if (!onHeap(x)) return original(args);
    const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
    const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
    let start = 0;
    const blocks = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, $axis).map((s) => {
      const begin = x.shape.map((_, k) => (k === $axis ? start : 0));
      start += s;
      const size = x.shape.map((d, k) => (k === $axis ? s : d));
      return { begin, size, shape: size };
    });
    const wasm = args.backend as BackendWasm;
    return repeated(wasm, x, `SplitV [${x.shape}] ${blocks.map((b) => `${b.begin}+${b.size}`).join(' ')}`, () =>
      copyBlocks(wasm, x, blocks),
    );
  },

  [tf.GatherV2]: (original) => (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
    if (!onHeap(x) || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0 || tf.util.parseAxisParam(axis, x.shape)[0] !== 0) {
      return original(args);
    }
    const wasm = args.backend as BackendWasm;
    const numRows = x.shape[0];
    // Like the cpu backend (and the library's kernel): an index out of range throws.
    for (const index of heap(wasm, indices)) {
      tf.util.assert(index >= 0 && index < numRows, () => `GatherV2: the index value ${index} is not in [0, ${numRows - 1}]`);
    }
    const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
    const out = wasm.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    // Views only now: makeOutput may grow wasm memory, which detaches views taken before.
    const [src, dst, ids] = [heap(wasm, x), heap(wasm, out), heap(wasm, indices)];
    for (let i = 0; i < ids.length; i++) copyRun(src, ids[i] * rowSize, dst, i * rowSize, rowSize);
    return out;
  },
};

/**
 * The last outputs of the same Slice or SplitV of the same data, while they live.
 *
 * tf.layers.gru splits its recurrent kernel in two at every time step (tfjs-layers' GRUCell.call),
 * so each step multiplied by fresh copies: 35 copies a batch, and in backprop neither the per-step
 * weight gradients (step-gradients.ts groups products by their operand's data) nor the transpose
 * cache (wasm-kernels.ts, keyed the same way) saw one weight; each step paid for its own transposed
 * copy, product, concat of the split's gradient and weight-sized addition. A dataId's data never
 * changes while it lives (see held-data.ts), so the same slices of it are
 * the same values: the outputs share the data of the previous call's outputs (as Identity and
 * Reshape share theirs) if those are still alive. Nothing is held here: an entry whose outputs have
 * all been disposed is recomputed, and one whose input is gone is collected with its dataId.
 */
const lastSlices = new WeakMap<object, { key: string; outs: tf.TensorInfo[] }>();

function repeated(wasm: BackendWasm, x: tf.TensorInfo, key: string, compute: () => tf.TensorInfo[]): tf.TensorInfo[] {
  // The key holds x's shape: reshapes share a dataId.
  const last = lastSlices.get(x.dataId);
  // has(), not get(): get() of a missing dataId would pull it over from another backend.
  if (last && last.key === key && last.outs.every((o) => wasm.dataIdMap.has(o.dataId))) {
    return last.outs.map((o) => {
      wasm.incRef(o.dataId);
      return { ...o };
    });
  }
  const outs = compute();
  lastSlices.set(x.dataId, { key, outs: outs.map(({ dataId, shape, dtype }) => ({ dataId, shape, dtype })) });
  return outs;
}

/** x itself as the output: its data, counted once more. */
function share(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const x = args.inputs.x!;
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

interface Block {
  begin: number[];
  size: number[];
  /** The output's shape: `size`, or `size` less the unstacked axis. */
  shape: number[];
}

/** One output per block of x. All outputs are allocated before any heap view is taken. */
function copyBlocks(wasm: BackendWasm, x: tf.TensorInfo, blocks: Block[]): tf.TensorInfo[] {
  const outs = blocks.map(({ shape }) => wasm.makeOutput(shape, x.dtype));
  const src = heap(wasm, x);
  blocks.forEach(({ begin, size }, i) => copyBlock(src, x.shape, begin, size, heap(wasm, outs[i])));
  return outs;
}

function heap(wasm: BackendWasm, t: tf.TensorInfo): HeapArray {
  return wasm.typedArrayFromHeap(t) as HeapArray;
}

/**
 * Copies the block src[begin .. begin+size) of a row-major array of `shape` into dst, densely.
 * The innermost axes the block spans in full, plus the next one out, are one contiguous run in
 * src; only the axes outside it are looped over.
 */
function copyBlock(src: HeapArray, shape: number[], begin: number[], size: number[], dst: HeapArray): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const strides = [...tf.util.computeStrides(shape), 1];
  let d = rank - 1;
  while (d > 0 && size[d] === shape[d]) d--;
  const run = size[d] * strides[d];
  const runs = tf.util.sizeFromShape(size.slice(0, d));
  const idx = new Array<number>(d).fill(0); // position among the outer axes
  for (let n = 0, out = 0; n < runs; n++, out += run) {
    let from = begin[d] * strides[d];
    for (let k = 0; k < d; k++) from += (begin[k] + idx[k]) * strides[k];
    copyRun(src, from, dst, out, run);
    for (let k = d - 1; k >= 0 && ++idx[k] === size[k]; k--) idx[k] = 0;
  }
}

/** dst[to .. to+n) = src[from .. from+n). set() is a memcpy but costs a call and a subarray. */
function copyRun(src: HeapArray, from: number, dst: HeapArray, to: number, n: number): void {
  if (n >= 32) dst.set(src.subarray(from, from + n), to);
  else for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
}

// ---- Tensors saved for backprop ------------------------------------------------------------------

type CloneGradient = (dy: tf.Tensor) => Record<string, () => tf.Tensor>;

/** The parts of tfjs-core's Engine used here. */
interface EngineInternals {
  clone(x: tf.Tensor): tf.Tensor;
  gradients(...args: unknown[]): unknown;
  makeTensorFromTensorInfo(info: tf.TensorInfo): tf.Tensor;
  addTapeNode(
    kernelName: string,
    inputs: tf.NamedTensorMap,
    outputs: tf.Tensor[],
    gradient: CloneGradient,
    saved: tf.Tensor[],
    attrs: object,
  ): void;
  /** Backends by name, once initialised. */
  readonly registry: Record<string, object | undefined>;
  readonly state: {
    gradientDepth: number;
    activeTape: unknown[] | null;
    activeScope: { name: string };
    tensorInfo: { get(dataId: object): { backend: object } | undefined };
  };
}
const WASM = 'wasm';
/** engine.clone's gradient: dy, as float32. */
const cloneGradient: CloneGradient = (dy) => ({ x: () => tf.cast(dy, 'float32') });

/**
 * tfjs-core saves each tensor an op's gradient needs with engine.clone: an Identity kernel call
 * (data shared here, see above) and a tape node from the tensor to its clone. An LSTM step saves
 * ~20 tensors: ~650 kernel calls and tape nodes a batch, and backprop filters every node of the
 * tape twice. Making them as below saved ~3% of an epoch (scratch 0.938 → 0.907 s, builtin 1.191 →
 * 1.159 s: medians of epochs trained in one process with this switched on and off in turn).
 *
 * The node matters only for a gradient of a gradient: one taken inside a tape's forward pass may
 * walk back through ops the tape recorded earlier, and its own backward pass (recorded too) reads
 * what they saved; the outer gradient follows those saved tensors to their sources through the
 * clone nodes. Here, under a first-level tape, a clone of wasm data is a new tensor on the same
 * data made directly, and its node is only noted; when a gradient starts inside that tape (before
 * anything could read the clones) the noted nodes go into the tape where engine.clone would have
 * put them, and otherwise they are dropped with the tape. Anything else goes the usual way.
 * Returns the function that puts engine.clone and engine.gradients back.
 */
export function cloneSavedTensorsDirectly(): () => void {
  const engine = tf.engine() as unknown as EngineInternals;
  const { clone: originalClone, gradients: originalGradients } = engine;
  /** The tape the notes belong to, and per clone: the tape's last node then, scope name, source, clone. */
  let noted: { tape: unknown[]; nodes: [unknown, string, tf.Tensor, tf.Tensor][] } | undefined;

  const clone = function (this: EngineInternals, x: tf.Tensor): tf.Tensor {
    const wasm = this.registry[WASM] as BackendWasm | undefined;
    const tape = this.state.activeTape;
    if (this.state.gradientDepth !== 1 || !tape || !wasm || this.state.tensorInfo.get(x.dataId)?.backend !== wasm || !onHeap(x)) {
      return originalClone.call(this, x);
    }
    wasm.incRef(x.dataId);
    const y = this.makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype });
    if (noted?.tape !== tape) noted = { tape, nodes: [] };
    noted.nodes.push([tape[tape.length - 1], this.state.activeScope.name, x, y]);
    return y;
  };
  const gradients = function (this: EngineInternals, ...args: unknown[]): unknown {
    const tape = this.state.activeTape;
    if (this.state.gradientDepth > 0 && tape && noted?.tape === tape) {
      // Each where engine.clone would have put it: after the node that was last then. The order
      // decides which paths backprop sees: a clone of an op's output comes before that op's node,
      // so tfjs never follows it, and neither may we. (step-gradients.ts leaves a tape with a
      // gradient inside it as recorded, so nothing else is spliced in here.)
      let previous: { anchor: unknown; node: unknown } | undefined;
      for (const [anchor, scope, x, y] of noted.nodes) {
        this.addTapeNode(scope, { x }, [y], cloneGradient, [], {});
        const node = tape.pop();
        const after = previous && previous.anchor === anchor ? previous.node : anchor;
        tape.splice(after === undefined ? 0 : tape.indexOf(after) + 1, 0, node);
        previous = { anchor, node };
      }
      noted = undefined;
    }
    try {
      return originalGradients.apply(this, args);
    } finally {
      if (this.state.gradientDepth === 0) noted = undefined; // that tape is gone
    }
  };
  engine.gradients = gradients;
  engine.clone = clone;
  return () => {
    engine.gradients = originalGradients;
    engine.clone = originalClone;
  };
}
