/**
 * Makes tf.layers.lstm's input matmul differentiate only what training asks for.
 *
 * The layer's cell computes X·kernel with tf.fused.matMul, whose gradient (a customGrad) computes
 * the gradient of both operands as soon as backprop reaches it: dX = dy·kernelᵀ as well as
 * dKernel = Xᵀ·dy. X is the one-hot characters, which nobody differentiates: tfjs-core's tape
 * drops that input before asking for its gradient, but the customGrad has already computed it,
 * a [batch, vocab] product per time step that cost ~0.7 s an epoch (a quarter of builtin's time).
 *
 * Here the tape nodes of exactly those matmuls (X·kernel without bias, as the cell calls it) get
 * the same gradient with each operand's product deferred until the tape asks for it: the tape
 * computes dKernel with the very same ops as before (bit-identical), and never dX. Nothing else
 * on the tape is touched.
 *
 * It relies on tfjs-core 4.22's tape (engine.state.activeTape, TapeNode.gradient/saved, the
 * node named after the op's scope, 'fusedMatMul__op'); tests compare the gradients with the
 * untouched tape's, so a tfjs upgrade that changes these fails a test rather than training.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-core's TapeNode used here. */
interface TapeNode {
  readonly kernelName: string;
  readonly inputs: Record<string, tf.Tensor>;
  readonly outputs: tf.Tensor[];
  readonly saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

/** The scope name tfjs-core gives the tape node of tf.fused.matMul (its customGrad). */
const FUSED_MATMUL_NODE = 'fusedMatMul__op';

/** The tape being recorded (inside tf.grad/variableGrads), or undefined. */
export function activeTape(): readonly unknown[] | undefined {
  return (tf.engine().state as unknown as { activeTape?: unknown[] | null }).activeTape ?? undefined;
}

/**
 * For the tape nodes recorded since the tape had `from` nodes: each tf.fused.matMul(X, weight)
 * (no transposes, no bias, linear; what tf.layers' dot() records for a cell's input kernel) gets
 * a lazy gradient. Returns how many nodes it changed.
 */
export function deferMatMulGradients(from: number, weight: tf.Tensor): number {
  const tape = activeTape() as TapeNode[] | undefined;
  if (!tape) return 0;
  let changed = 0;
  for (let i = from; i < tape.length; i++) {
    const node = tape[i];
    const saved = node.saved;
    // saved = [a3D, b3D, y] for a fused matmul without bias; [.., bias] with one.
    if (node.kernelName !== FUSED_MATMUL_NODE || !node.gradient || saved?.length !== 3) continue;
    // The saved tensors are the tape's clones of the inputs (same shapes; data shared or copied).
    const [a3D, b3D, y] = saved;
    if (node.inputs[1]?.dataId !== weight.dataId || b3D.rank !== 3 || b3D.shape[0] !== 1 || a3D.rank !== 3 || a3D.shape[0] !== 1) continue;
    // b3D is the weight seen as [1, k, n]: untransposed; so a3D·b3D, as the shapes confirm.
    if (a3D.shape[2] !== b3D.shape[1] || y.shape[1] !== a3D.shape[1] || y.shape[2] !== b3D.shape[2]) continue;
    node.gradient = (dys) => {
      const dy = dys[0] ?? tf.zerosLike(y);
      // tfjs-core's own gradient for a linear fused matmul without transposes, operand by operand.
      const dyActivation = () => tf.reshape(dy, y.shape);
      return {
        0: () => tf.matMul(dyActivation(), b3D, false, true),
        1: () => tf.matMul(a3D, dyActivation(), true, false),
      };
    };
    changed++;
  }
  return changed;
}
