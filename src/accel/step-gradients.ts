/**
 * Backprop through an unrolled recurrent net with each weight's gradient summed over the time
 * steps in one product, as PyTorch's nn.LSTM does, instead of one product and one addition per
 * step. It attaches to tfjs-core's engine from outside: no model calls it, and any model that
 * multiplies the same weight at several steps (every cell, every layer) gets it.
 *
 * Unrolled over T steps, a cell multiplies a weight W T times: y_t = x_t·W. tfjs-core's tape
 * differentiates each product on its own, dW_t = x_tᵀ·dy_t, and adds each into the running sum:
 * T small products and T-1 additions of a whole weight-sized matrix. For tf.layers.lstm's
 * [vocab, 4·hidden] input kernel those additions alone were ~0.15 s of a 1.5 s epoch. Summed in one
 * product it is [x_1; …; x_T]ᵀ·[dy_1; …; dy_T]: the same terms (in step order, where the tape
 * added the last step first, so equal up to float rounding), one kernel call.
 *
 * How: engine.gradients is wrapped so that, once the function being differentiated has recorded
 * its forward pass and before backprop starts, the tape is rewritten. Products are grouped by
 * their right operand's data; in each group of two or more (untransposed, no bias, linear) the
 * products stop differentiating that operand, and one node inserted just before the first of them
 * (so backprop reaches it after every step's dy is known) takes the operand as input and all the
 * products as outputs, and computes the one product. The steps' nodes keep every other input (the
 * state h they carry back).
 *
 * tf.fused.matMul's gradient (a customGrad, which tf.layers' dot() records) computes the gradient
 * of both operands as soon as backprop reaches it; the steps' nodes of fused products get the same
 * gradient computed operand by operand on demand, so nothing is computed for the weight (nor for a
 * one-hot input, which nobody differentiates).
 *
 * A stacked layer's input products get their input gradients the same way. Layer 2 multiplies
 * layer 1's outputs x_t (all computed before its first step) by its input kernel: where every
 * step's x_t was made before the first of the products (not a state the steps carry, as h_{t-1}
 * is for the recurrent kernel), the inserted node also takes the x_t as inputs and computes all of
 * dx_t = dy_t·Wᵀ in one [T·B, n]·[n, k] product, whose rows are the per-step products' (bit for
 * bit: each row of a product is the same dot products whatever the number of rows). Backprop
 * reaches the node after every step and before the node that made the first x_t, so every dx_t
 * arrives in time.
 *
 * Only first-order gradients are rewritten: when a gradient is taken inside the function (a
 * gradient penalty), the tape is left as tfjs records it, because the inner backward pass reads
 * what the steps saved and the outer one must follow it back unchanged.
 *
 * The tape nodes carry no attributes, so whether a product was transposed is recorded as it runs
 * (engine.runKernel, for BatchMatMul and _FusedMatMul while a tape records), keyed by its output's
 * data.
 *
 * It relies on tfjs-core 4.22's tape (engine.state.activeTape, gradientDepth and nextTapeNodeId,
 * TapeNode's inputs/outputs/saved/gradient, 'BatchMatMul' and 'fusedMatMul__op' nodes); see
 * ./versions.ts for the version check, and test/step-gradients.test.ts, which compares the
 * gradients with the untouched tape's on wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { isOneMatrix } from './matmul-operands';

/** The parts of tfjs-core's TapeNode used here. */
interface TapeNode {
  readonly id: number;
  readonly kernelName: string;
  inputs: Record<string, tf.Tensor>;
  readonly outputs: tf.Tensor[];
  readonly saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

/** The parts of tfjs-core's Engine used here. */
interface EngineInternals {
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): unknown;
  runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap): tf.Tensor | tf.Tensor[];
  readonly state: { activeTape: TapeNode[] | null; gradientDepth: number; nextTapeNodeId: number };
}

/** The scope name tfjs-core gives the tape node of tf.fused.matMul (its customGrad). */
const FUSED_MATMUL_NODE = 'fusedMatMul__op';
/** The name of the node inserted here (shown by nothing; for anyone reading a tape). */
const SUMMED_GRADIENT_NODE = 'lstmLyrics.weightGradientOverSteps';

interface ProductAttrs {
  readonly transposeA?: boolean;
  readonly transposeB?: boolean;
  readonly activation?: string;
}

/**
 * Wraps engine.gradients and engine.runKernel (see above). Returns the function that puts both
 * back. Installing twice wraps twice; the caller (./index.ts) installs once.
 */
export function installStepGradients(): () => void {
  const engine = tf.engine() as unknown as EngineInternals;
  const { gradients: originalGradients, runKernel: originalRunKernel } = engine;
  /** Each product's attributes by its output's data, recorded while a tape records. */
  const productAttrs = new WeakMap<object, ProductAttrs>();
  let nestedGradient = false;

  const runKernel = function (this: EngineInternals, kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap) {
    const out = originalRunKernel.call(this, kernelName, inputs, attrs);
    if (this.state.gradientDepth > 0 && (kernelName === tf.BatchMatMul || kernelName === tf._FusedMatMul) && !Array.isArray(out)) {
      productAttrs.set(out.dataId, (attrs ?? {}) as ProductAttrs);
    }
    return out;
  };
  const gradients = function (this: EngineInternals, f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) {
    if (this.state.gradientDepth > 0) {
      nestedGradient = true; // a gradient inside a gradient: the outer tape stays as recorded
      return originalGradients.call(this, f, xs, dy, allowNoGradients);
    }
    /** Batched input gradients, kept across the backward pass's per-input scopes; freed after it. */
    const afterBackprop: tf.Tensor[] = [];
    const recordAndRewrite = () => {
      nestedGradient = false;
      const y = f();
      const tape = this.state.activeTape;
      if (tape && !nestedGradient) sumWeightGradientsOverSteps(tape, () => this.state.nextTapeNodeId++, productAttrs, afterBackprop);
      return y;
    };
    try {
      return originalGradients.call(this, recordAndRewrite, xs, dy, allowNoGradients);
    } finally {
      tf.dispose(afterBackprop);
    }
  };
  engine.runKernel = runKernel;
  engine.gradients = gradients;
  return () => {
    engine.runKernel = originalRunKernel;
    engine.gradients = originalGradients;
  };
}

/** One time step's product x·W: its left operand as the tape saved it, and its output. */
interface StepProduct {
  readonly node: TapeNode;
  /** The key of W in node.inputs. */
  readonly weightKey: string;
  readonly x: tf.Tensor;
  /** W as the tape saved it (the input itself may be a reshape disposed since). */
  readonly w: tf.Tensor;
  readonly y: tf.Tensor;
  /** The key of x in node.inputs. */
  readonly inputKey: string;
}

/**
 * Rewrites `tape` so that each operand multiplied at two or more steps gets its gradient from one
 * product over all of them, and so do the steps' left operands where all were made before the
 * first step (a stacked layer's input). Tensors to keep until backprop ends are pushed onto
 * `afterBackprop` (the caller disposes them). Returns, per operand rewritten, how many products it
 * found (for tests).
 */
export function sumWeightGradientsOverSteps(
  tape: TapeNode[],
  nextNodeId: () => number,
  productAttrs: WeakMap<object, ProductAttrs>,
  afterBackprop: tf.Tensor[] = [],
): number[] {
  /** By the weight's data: its products in tape order. */
  const groups = new Map<object, StepProduct[]>();
  for (const node of tape) {
    const step = stepProduct(node, productAttrs);
    if (!step) continue;
    const weight = node.inputs[step.weightKey];
    const group = groups.get(weight.dataId);
    if (group) group.push(step);
    else groups.set(weight.dataId, [step]);
  }
  const inserts: { at: number; node: TapeNode }[] = [];
  const counts: number[] = [];
  /** Each tensor a node on the tape made, by id: the position of that node. */
  let madeAt: Map<number, number> | undefined;
  for (const steps of groups.values()) {
    if (steps.length < 2) continue;
    // The first step's operand is the input (its producer, a reshape or the variable itself, comes
    // before it on the tape); every step's operand holds the same data.
    const weight = steps[0].node.inputs[steps[0].weightKey];
    const at = tape.indexOf(steps[0].node);
    madeAt ??= tensorsMadeAt(tape);
    const inputs = inputsMadeBefore(tape, madeAt, steps, at);
    for (const step of steps) detachWeight(step, inputs !== undefined);
    inserts.push({ at, node: summedGradientNode(nextNodeId(), weight, steps, inputs, afterBackprop) });
    counts.push(steps.length);
  }
  // Last position first, so earlier positions stay valid. Before the steps: backprop walks the
  // tape backwards, so it reaches each inserted node after all the products it stands for.
  inserts.sort((a, b) => b.at - a.at);
  for (const { at, node } of inserts) tape.splice(at, 0, node);
  return counts;
}

/** `node` as x·W (W untransposed, no bias, linear, one matrix each), or undefined. */
function stepProduct(node: TapeNode, productAttrs: WeakMap<object, ProductAttrs>): StepProduct | undefined {
  const saved = node.saved;
  if (!node.gradient || !saved || node.outputs.length !== 1) return undefined;
  // saved = [a, b] for BatchMatMul, [a3D, b3D, y3D] for a fused product without bias ([.., bias] with one).
  const isFused = node.kernelName === FUSED_MATMUL_NODE && saved.length === 3;
  if (!isFused && !(node.kernelName === tf.BatchMatMul && saved.length === 2)) return undefined;
  // By the output's data: a fused product's output is a reshape of its kernel's (the same data),
  // where what it saved may be a copy.
  const attrs = productAttrs.get(node.outputs[0].dataId);
  if (!attrs || attrs.transposeA || attrs.transposeB || (attrs.activation ?? 'linear') !== 'linear') return undefined;
  const weightKey = isFused ? '1' : 'b';
  const weight = node.inputs[weightKey];
  const [a, b] = saved;
  const y = node.outputs[0];
  if (!weight) return undefined;
  if (!isOneMatrix(a.shape) || !isOneMatrix(b.shape)) return undefined;
  return { node, weightKey, x: a, w: b, y, inputKey: isFused ? '0' : 'a' };
}

/**
 * The steps' left operands, each followed back through the Reshapes made at or after `at`
 * (tf.fused.matMul reshapes its operands to 3D just before each product), if every one was made
 * before `at` (by a node there, or off the tape); otherwise undefined.
 */
function inputsMadeBefore(tape: TapeNode[], madeAt: Map<number, number>, steps: StepProduct[], at: number): tf.Tensor[] | undefined {
  const inputs: tf.Tensor[] = [];
  for (const { node, inputKey } of steps) {
    let x: tf.Tensor | undefined = node.inputs[inputKey];
    let i = x && madeAt.get(x.id);
    while (x && i !== undefined && i >= at && tape[i].kernelName === tf.Reshape) {
      x = tape[i].inputs.x;
      i = x && madeAt.get(x.id);
    }
    if (x?.dtype !== 'float32' || (i !== undefined && i >= at)) return undefined;
    inputs.push(x);
  }
  return inputs;
}

function tensorsMadeAt(tape: TapeNode[]): Map<number, number> {
  const madeAt = new Map<number, number>();
  tape.forEach((node, i) => {
    for (const t of node.outputs) if (t) madeAt.set(t.id, i);
  });
  return madeAt;
}

/**
 * Removes the weight (and, with `input`, the left operand) from the step's inputs; a fused
 * product's gradient becomes lazy, operand by operand.
 */
function detachWeight({ node, weightKey, inputKey }: StepProduct, input: boolean): void {
  const inputs = { ...node.inputs };
  delete inputs[weightKey];
  if (input) delete inputs[inputKey];
  node.inputs = inputs;
  if (weightKey === '1') {
    const [a, b, y3D] = node.saved!;
    const y = node.outputs[0];
    node.gradient = (dys) => {
      const dy = () => tf.reshape(dys[0] ?? tf.zerosLike(y), y3D.shape);
      // tfjs-core's own gradient for a linear fused product without transposes, operand by operand.
      return { 0: () => tf.matMul(dy(), b, false, true), 1: () => tf.matMul(a, dy(), true, false) };
    };
  }
}

/**
 * The node that computes weight's gradient for all `steps` at once, and with `stepInputs` (see
 * inputsMadeBefore) their gradients too (inputs x0, x1, …), from one product.
 */
function summedGradientNode(
  id: number,
  weight: tf.Tensor,
  steps: StepProduct[],
  stepInputs: tf.Tensor[] | undefined,
  afterBackprop: tf.Tensor[],
): TapeNode {
  const [k, n] = weight.shape.slice(-2);
  const inputs: Record<string, tf.Tensor> = { weight };
  stepInputs?.forEach((x, i) => (inputs[`x${i}`] = x));
  return {
    id,
    kernelName: SUMMED_GRADIENT_NODE,
    inputs,
    outputs: steps.map((s) => s.y),
    saved: [], // the steps' nodes own the operands (disposed after backprop, as theirs)
    gradient: (dys) => {
      const gradients: Record<string, () => tf.Tensor> = {
        weight: () => {
          const used = steps.flatMap((s, i) => (dys[i] ? [{ x: s.x.reshape([-1, k]), dy: dys[i]!.reshape([-1, n]) }] : []));
          if (used.length === 0) return tf.zerosLike(weight);
          const xs = used.length === 1 ? used[0].x : tf.concat(used.map((u) => u.x));
          const dy = used.length === 1 ? used[0].dy : tf.concat(used.map((u) => u.dy));
          return tf.matMul(xs, dy, true, false).reshape(weight.shape);
        },
      };
      if (!stepInputs) return gradients;
      // [dy_1; …; dy_T]·Wᵀ once, on the first input asked for; each dx_t is its rows.
      let dxs: tf.Tensor | undefined;
      const allDxs = () => {
        if (!dxs) {
          dxs = tf.keep(
            tf.tidy(() => {
              const dy = tf.concat(steps.map((s, i) => (dys[i] ?? tf.zerosLike(s.y)).reshape([-1, n])));
              return tf.matMul(dy, steps[0].w.reshape([k, n]), false, true);
            }),
          );
          afterBackprop.push(dxs);
        }
        return dxs;
      };
      let row = 0;
      stepInputs.forEach((x, i) => {
        const start = row;
        const rows = x.size / k;
        row += rows;
        gradients[`x${i}`] = () => tf.slice(allDxs(), [start, 0], [rows, k]).reshape(x.shape);
      });
      return gradients;
    },
  };
}
