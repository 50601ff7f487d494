/**
 * Graph passes between tracing and emission: adapting a traced graph to where it will run.
 *
 *   traced graph --(cpu target, bf16 compute)--> emulateBf16 --> optimizeForOrt --\
 *                --(cuda target)--> lowerForCuda (f32 where ORT has no     --> wrapBf16Io --> emitOnnx
 *                                   bf16/f16 CUDA kernel) ---------------------/
 *
 * optimizeForOrt (common subexpressions merged, dead nodes dropped, patterns onnxruntime has fused
 * CPU kernels for rewritten into them: the same numbers up to float rounding from fewer nodes) runs
 * on the CPU session path and for `sorac build --target ort`; `sorac build` without a target writes
 * the graph as traced (standard opset only).
 *
 * Each pass is a pure function IrGraph -> IrGraph; with SORAC_DEBUG=verify the graph verifier runs
 * after every pass and stops at the first pass that breaks an invariant.
 */
import type { IrGraph } from '../../core/ir.ts';
import { emulateBf16, isCpuEmulated, usesBf16Compute } from './cpu-bf16.ts';
import { type CudaIsland, lowerForCuda } from './cuda-precision.ts';
import { wrapBf16Io } from './io-bf16.ts';
import { optimizeForOrt } from './ort-cpu.ts';
import { assertValidGraph, verifyEnabled } from './verify.ts';

export { emulateBf16, isCpuEmulated, usesBf16Compute } from './cpu-bf16.ts';
export { wrapBf16Io, type Bf16IoGraph } from './io-bf16.ts';
export { cudaPlacementGaps, isCudaLowered, lowerForCuda, type CudaIsland, type CudaLowering } from './cuda-precision.ts';
export { CUDA_KERNELS_ORT_VERSION, cudaHasKernel, ORT_1_29_CUDA_KERNELS, type CudaKernelSupport } from './cuda-kernels.ts';
export { optimizeForOrt, type OrtCpuResult } from './ort-cpu.ts';
export { assertValidGraph, verifyEnabled, verifyGraph, type VerifyProblem } from './verify.ts';

/** Where the graph will run: 'none' leaves it as traced (only the bf16 I/O wrapping every target needs). */
export type Target = 'cpu' | 'cuda' | 'none';

export interface LoweredGraph {
  /** The graph to emit. */
  readonly graph: IrGraph;
  /** Names of inputs/outputs that are bf16 to the user and cross the JS boundary as f32. */
  readonly bf16Inputs: ReadonlySet<string>;
  readonly bf16Outputs: ReadonlySet<string>;
  /** One-line notes for the user (e.g. that bf16 compute is emulated on CPU). */
  readonly notes: readonly string[];
}

/**
 * The device pass for `target`: on CPU, bf16 compute is emulated in f32 (onnxruntime's CPU provider
 * has no bf16 kernels); on CUDA, ops without a CUDA kernel for their reduced dtype run in f32.
 */
export function lowerForTarget(g: IrGraph, target: Target): { graph: IrGraph; note?: string; pass?: string } {
  if (target === 'cuda') {
    const r = lowerForCuda(g);
    if (!r.islands.length) return { graph: g };
    return { graph: r.graph, pass: 'lowerForCuda', note: cudaNote(r.islands) };
  }
  if (target !== 'cpu' || !usesBf16Compute(g) || isCpuEmulated(g)) return { graph: g };
  return { graph: emulateBf16(g), pass: 'emulateBf16', note: 'note: bf16 compute runs on CPU as f32 with bf16 rounding after each op (CPU has no bf16 kernels)' };
}

/** Every pass a graph goes through before it is emitted for a session on `target` (`optimize: false` skips optimizeForOrt). */
export function lowerGraph(g: IrGraph, target: Target, opts: { verify?: boolean; optimize?: boolean } = {}): LoweredGraph {
  const verify = opts.verify ?? verifyEnabled();
  if (verify) assertValidGraph(g, 'tracing');
  const t = lowerForTarget(g, target);
  if (verify && t.graph !== g) assertValidGraph(t.graph, t.pass ?? target);
  const opt = target === 'cpu' && opts.optimize !== false ? optimizeForOrt(t.graph).graph : t.graph;
  if (verify && opt !== t.graph) assertValidGraph(opt, 'optimizeForOrt');
  const io = wrapBf16Io(opt);
  if (verify && io.graph !== opt) assertValidGraph(io.graph, 'wrapBf16Io');
  return { graph: io.graph, bf16Inputs: io.bf16Inputs, bf16Outputs: io.bf16Outputs, notes: t.note ? [t.note] : [] };
}

/** One line saying which ops the CUDA lowering moved to f32, e.g. "Pad, Clip x2 run in f32 (...)". */
function cudaNote(islands: readonly CudaIsland[]): string {
  const list = (xs: readonly CudaIsland[]) => xs.map((i) => `${i.op}${i.count > 1 ? ` x${i.count}` : ''}`).join(', ');
  const f32 = islands.filter((i) => i.op !== 'InstanceNormalization');
  const inorm = islands.filter((i) => i.op === 'InstanceNormalization');
  const parts = [
    ...(f32.length ? [`${list(f32)} computed in f32 (onnxruntime has no ${[...new Set(f32.map((i) => i.dtype))].join('/')} CUDA kernel for them)`] : []),
    ...(inorm.length ? [`${list(inorm)} decomposed into CUDA ops (no CUDA kernel at this opset)`] : []),
  ];
  return `note: on CUDA, ${parts.join('; ')}; \`sorac build --target cuda --explain-dtypes\` lists the casts`;
}
