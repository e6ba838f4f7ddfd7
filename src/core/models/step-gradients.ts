/**
 * Backprop through an unrolled LSTM with each weight's gradient summed over the time steps in
 * one product, as PyTorch's nn.LSTM does, instead of one product and one addition per step.
 *
 * Unrolled over T steps, an LSTM multiplies a weight W T times: y_t = x_t·W. tfjs-core's tape
 * differentiates each product on its own, dW_t = x_tᵀ·dy_t, and adds each into the running sum:
 * T small products and T-1 additions of a whole weight-sized matrix. For tf.layers.lstm's
 * [vocab, 4·hidden] input kernel those additions alone were ~0.15 s of a 1.5 s epoch. Summed in one
 * product it is [x_1; …; x_T]ᵀ·[dy_1; …; dy_T]: the same terms (in step order, where the tape
 * added the last step first, so equal up to float rounding), one kernel call.
 *
 * How: for the tape nodes recorded since the tape held `from` nodes, each product of `weight`
 * (the second operand, untransposed, no bias) stops differentiating it, and one node inserted
 * before them all (so backprop reaches it after every step's dy is known) takes `weight` as input
 * and all those products as outputs, and computes the one product. The steps' nodes keep every
 * other input (the state h they carry back).
 *
 * tf.fused.matMul's gradient (a customGrad, which tf.layers' dot() records) computes the gradient
 * of both operands as soon as backprop reaches it; the steps' nodes of fused products get the same
 * gradient computed operand by operand on demand, so nothing is computed for the weight (nor for a
 * one-hot input, which nobody differentiates).
 *
 * It relies on tfjs-core 4.22's tape (engine.state.activeTape and nextTapeNodeId, TapeNode's
 * inputs/outputs/saved/gradient, 'BatchMatMul' and 'fusedMatMul__op' nodes); tests compare the
 * gradients with the untouched tape's on wasm and cpu, so a tfjs upgrade that changes these fails
 * a test rather than training.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-core's TapeNode used here. */
interface TapeNode {
  readonly id: number;
  readonly kernelName: string;
  inputs: Record<string, tf.Tensor>;
  readonly outputs: tf.Tensor[];
  readonly saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineState {
  activeTape?: TapeNode[] | null;
  nextTapeNodeId: number;
}

/** The scope name tfjs-core gives the tape node of tf.fused.matMul (its customGrad). */
const FUSED_MATMUL_NODE = 'fusedMatMul__op';
/** The kernel name of tf.matMul's tape node. */
const MATMUL_NODE = 'BatchMatMul';
/** The name of the node inserted here (shown by nothing; for anyone reading a tape). */
const SUMMED_GRADIENT_NODE = 'lstmLyrics.weightGradientOverSteps';

function engineState(): EngineState {
  return tf.engine().state as unknown as EngineState;
}

/** The tape being recorded (inside tf.grad/variableGrads), or undefined. */
export function activeTape(): readonly unknown[] | undefined {
  return engineState().activeTape ?? undefined;
}

/** One time step's product x·W: its left operand as the tape saved it, and its output. */
interface StepProduct {
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
}

/**
 * Rewrites the tape recorded since it held `from` nodes so that each of `weights` gets its
 * gradient from one product over all the steps that multiply it (see above). Returns, per weight,
 * how many products it found. Outside a tape it does nothing.
 */
export function sumWeightGradientsOverSteps(from: number, weights: readonly tf.Tensor[]): number[] {
  const state = engineState();
  const tape = state.activeTape;
  if (!tape) return weights.map(() => 0);
  const nodes: TapeNode[] = [];
  const counts = weights.map((weight) => {
    const steps: StepProduct[] = [];
    for (let i = from; i < tape.length; i++) {
      const step = detachWeight(tape[i], weight);
      if (step) steps.push(step);
    }
    if (steps.length > 0) nodes.push(summedGradientNode(state.nextTapeNodeId++, weight, steps));
    return steps.length;
  });
  // Before the steps: backprop walks the tape backwards, so it reaches these nodes last.
  tape.splice(from, 0, ...nodes);
  return counts;
}

/**
 * If `node` is x·weight (weight untransposed, no bias, linear): removes weight from its inputs,
 * makes a fused product's gradient lazy, and returns the step. Otherwise undefined, node untouched.
 */
function detachWeight(node: TapeNode, weight: tf.Tensor): StepProduct | undefined {
  const saved = node.saved;
  const [k, n] = weight.shape;
  if (weight.rank !== 2 || !node.gradient || !saved) return undefined;
  // saved = [a, b] for BatchMatMul, [a3D, b3D, y3D] for a fused product without bias ([.., bias] with one).
  const isFused = node.kernelName === FUSED_MATMUL_NODE && saved.length === 3;
  if (!isFused && !(node.kernelName === MATMUL_NODE && saved.length === 2)) return undefined;
  const weightKey = isFused ? '1' : 'b';
  const [a, b] = saved;
  const y = node.outputs[0];
  if (node.inputs[weightKey]?.dataId !== weight.dataId || node.outputs.length !== 1) return undefined;
  // Matched by data, not by tensor: a fused product's operand is a reshape of the weight. So a
  // product of any tensor on weight's data (a reshape; on wasm a clone) counts as one of weight,
  // and its gradient goes straight to weight: the same values, as no step writes a tensor's data.
  // Untransposed: b is [.., k, n], a is [.., m, k] and y [.., m, n], with batch axes of 1 only.
  // (A matrix multiplied transposed would show as [n, k]; a square weight is taken as untransposed,
  // which the products this is called on are.)
  const m = a.shape[a.rank - 2];
  const oneMatrix = (t: tf.Tensor) => t.rank >= 2 && t.shape.slice(0, -2).every((d) => d === 1);
  if (!oneMatrix(b) || b.shape[b.rank - 2] !== k || b.shape[b.rank - 1] !== n) return undefined;
  if (!oneMatrix(a) || a.shape[a.rank - 1] !== k || y.size !== m * n || y.shape[y.rank - 1] !== n) return undefined;

  const inputs = { ...node.inputs };
  delete inputs[weightKey];
  node.inputs = inputs;
  if (isFused) {
    const y3D = saved[2];
    node.gradient = (dys) => {
      const dy = () => tf.reshape(dys[0] ?? tf.zerosLike(y), y3D.shape);
      // tfjs-core's own gradient for a linear fused product without transposes, operand by operand.
      return { 0: () => tf.matMul(dy(), b, false, true), 1: () => tf.matMul(a, dy(), true, false) };
    };
  }
  return { x: a, y };
}

/** The node that computes weight's gradient for all `steps` at once. */
function summedGradientNode(id: number, weight: tf.Tensor, steps: StepProduct[]): TapeNode {
  const [k, n] = weight.shape;
  return {
    id,
    kernelName: SUMMED_GRADIENT_NODE,
    inputs: { weight },
    outputs: steps.map((s) => s.y),
    saved: [], // the steps' nodes own the operands (disposed after backprop, as theirs)
    gradient: (dys) => ({
      weight: () => {
        const used = steps.flatMap((s, i) => (dys[i] ? [{ x: s.x.reshape([-1, k]), dy: dys[i]!.reshape([-1, n]) }] : []));
        if (used.length === 0) return tf.zerosLike(weight);
        const xs = used.length === 1 ? used[0].x : tf.concat(used.map((u) => u.x));
        const dy = used.length === 1 ? used[0].dy : tf.concat(used.map((u) => u.dy));
        return tf.matMul(xs, dy, true, false);
      },
    }),
  };
}
