/**
 * Graph passes between tracing and emission: adapting a traced graph to where it will run.
 *
 *   traced graph --(cpu target, bf16 compute)--> emulateBf16 --> wrapBf16Io --> emitOnnx
 *
 * Each pass is a pure function IrGraph -> IrGraph; with SORAC_DEBUG=verify the graph verifier runs
 * after every pass and stops at the first pass that breaks an invariant.
 */
import type { IrGraph } from '../../core/ir.ts';
import { emulateBf16, isCpuEmulated, usesBf16Compute } from './cpu-bf16.ts';
import { wrapBf16Io } from './io-bf16.ts';
import { assertValidGraph, verifyEnabled } from './verify.ts';

export { emulateBf16, isCpuEmulated, usesBf16Compute } from './cpu-bf16.ts';
export { wrapBf16Io, type Bf16IoGraph } from './io-bf16.ts';
export { assertValidGraph, verifyEnabled, verifyGraph, type VerifyProblem } from './verify.ts';

export type Target = 'cpu' | 'cuda';

export interface LoweredGraph {
  /** The graph to emit. */
  readonly graph: IrGraph;
  /** Names of inputs/outputs that are bf16 to the user and cross the JS boundary as f32. */
  readonly bf16Inputs: ReadonlySet<string>;
  readonly bf16Outputs: ReadonlySet<string>;
  /** One-line notes for the user (e.g. that bf16 compute is emulated on CPU). */
  readonly notes: readonly string[];
}

/** bf16 compute is emulated on a CPU target (onnxruntime's CPU provider has no bf16 kernels). */
export function lowerForTarget(g: IrGraph, target: Target): { graph: IrGraph; note?: string } {
  if (target !== 'cpu' || !usesBf16Compute(g) || isCpuEmulated(g)) return { graph: g };
  return { graph: emulateBf16(g), note: 'note: bf16 compute runs on CPU as f32 with bf16 rounding after each op (CPU has no bf16 kernels)' };
}

/** Every pass a graph goes through before it is emitted for a session on `target`. */
export function lowerGraph(g: IrGraph, target: Target, opts: { verify?: boolean } = {}): LoweredGraph {
  const verify = opts.verify ?? verifyEnabled();
  if (verify) assertValidGraph(g, 'tracing');
  const t = lowerForTarget(g, target);
  if (verify && t.graph !== g) assertValidGraph(t.graph, 'emulateBf16');
  const io = wrapBf16Io(t.graph);
  if (verify && io.graph !== t.graph) assertValidGraph(io.graph, 'wrapBf16Io');
  return { graph: io.graph, bf16Inputs: io.bf16Inputs, bf16Outputs: io.bf16Outputs, notes: t.note ? [t.note] : [] };
}
