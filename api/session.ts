/**
 * A runnable session for a traced graph and a checkpoint: the one composition of the stages
 *
 *   device choice (runtime) -> passes for that target (compiler) -> weight binding (runtime)
 *   -> ONNX bytes (compiler/emit) -> onnxruntime session (runtime)
 *
 * When the target is CUDA and the session cannot be created under --device auto, the graph is
 * lowered again for the CPU (bf16 compute emulated) and emitted for the same binding: the CUDA
 * lowering keeps bf16 ops the CPU provider has no kernels for.
 *
 * Everything that runs a graph (load()/run(), `sorac run`, micro-batching, tests, benchmarks) comes
 * through createSession, so the order of these steps and their notes exist once.
 */
import { emitOnnx } from '../compiler/emit/onnx.ts';
import { isCpuEmulated, type LoweredGraph, lowerGraph, type Target } from '../compiler/passes/index.ts';
import { InternalError } from '../core/errors.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import type { IrGraph } from '../core/ir.ts';
import { bindWeights, type BindingReport, type WeightSource } from '../runtime/execution/binding.ts';
import { chooseDevice } from '../runtime/execution/providers.ts';
import { checkBoundaryDtypes, type CpuFallback, openSession, type SessionOptions, type SoracSession } from '../runtime/execution/session.ts';
import { readTensorsFile, writeTensorsFile } from '../runtime/formats/tensors-io.ts';
import { planTiling, runTiled } from '../runtime/execution/tiling.ts';

export type { SessionOptions, SoracSession };

export interface CreateSessionOptions extends SessionOptions {
  /**
   * Apply the device passes (default true): on a CPU target, bf16 compute is emulated in f32 with
   * bf16 rounding. false hands the traced graph to onnxruntime as it is (to see what a provider lacks).
   */
  readonly lower?: boolean;
  /**
   * On CPU, run the graph as `sorac build --target ort` writes it (default true): shared
   * subexpressions merged, dead nodes dropped, fused onnxruntime kernels (compiler/passes/ort-cpu.ts);
   * the same numbers up to float rounding from fewer nodes. false runs the plain standard-opset graph (to compare the two).
   */
  readonly optimize?: boolean;
}

/** Create an onnxruntime session for `graph` with weights from `weights`. */
export async function createSession(graph: IrGraph, weights: WeightSource, opts: CreateSessionOptions = {}): Promise<SoracSession> {
  checkBoundaryDtypes(graph.inputs, graph.outputs);
  // decide the device before binding so that errors about CUDA come first and cheaply
  const choice = chooseDevice(opts.device ?? 'auto', opts);
  // (lower: false emits the traced graph as it is: only the bf16 I/O wrapping, which every target needs)
  const target: Target = opts.lower === false ? 'none' : choice.tryCuda ? 'cuda' : 'cpu';
  const lowered = lowerGraph(graph, target, { optimize: opts.optimize !== false });
  const bound = await bindWeights(lowered.graph.weights, weights, opts);
  const emit = (l: LoweredGraph) =>
    emitOnnx(l.graph, {
      weights: opts.binding === 'inline' ? 'inline' : 'external',
      externalData: (w) => bound.refs.get(w.key),
      inlineData: (w) => bound.inline.get(w.key)!,
      valueInfo: false,
    });
  const io = (l: LoweredGraph) => ({ inputs: l.graph.inputs, outputs: l.graph.outputs, bf16Inputs: l.bf16Inputs, bf16Outputs: l.bf16Outputs });
  // --device auto and CUDA fails: the CPU gets its own lowering (bf16 compute emulated), not the CUDA one
  const cpuFallback: (() => CpuFallback) | undefined =
    target === 'cuda'
      ? () => {
          const cpu = lowerGraph(graph, 'cpu', { optimize: opts.optimize !== false });
          // the device passes never change the weights, so the binding made for the CUDA graph serves the CPU graph
          if (cpu.graph.weights.map((w) => `${w.key}:${w.value.dtype}`).join() !== lowered.graph.weights.map((w) => `${w.key}:${w.value.dtype}`).join()) throw new InternalError('the CPU and CUDA lowerings bind different weights');
          return { model: emit(cpu), io: io(cpu), cpuEmulated: isCpuEmulated(cpu.graph), notes: cpu.notes };
        }
      : undefined;
  try {
    return await openSession(emit(lowered), bound.dir, io(lowered), bound.report, choice, {
      ...opts,
      cpuEmulated: isCpuEmulated(lowered.graph),
      bf16Weights: lowered.graph.weights.some((w) => w.value.dtype === 'bf16'),
      loweringNotes: lowered.notes,
      ...(cpuFallback ? { cpuFallback } : {}),
    });
  } finally {
    await bound.release(opts.keepTempDir);
  }
}

export interface RunResult {
  readonly outputs: Map<string, HostTensor>;
  readonly device: 'cpu' | 'cuda';
  readonly binding: BindingReport;
  readonly createMs: number;
  readonly runMs: number;
}

/** Create a session, run it once, release it. */
export async function runGraph(
  graph: IrGraph,
  weights: WeightSource,
  inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  opts: CreateSessionOptions = {},
): Promise<RunResult> {
  const s = await createSession(graph, weights, opts);
  try {
    const t0 = performance.now();
    // an entry that declares tile() is defined by its tiled run (runtime/execution/tiling.ts)
    const tiling = planTiling(graph);
    const outputs = tiling ? (await runTiled((x) => s.run(x), tiling, inputs)).outputs : await s.run(inputs);
    return { outputs, device: s.device, binding: s.binding, createMs: s.createMs, runMs: performance.now() - t0 };
  } finally {
    await s.release();
  }
}

/**
 * Read inputs from a safetensors file, run, and write the outputs to `outputsPath` atomically
 * (nothing is written if anything fails). Metadata records the graph name and device.
 */
export async function runFiles(
  graph: IrGraph,
  weights: WeightSource,
  inputsPath: string,
  outputsPath: string,
  opts: CreateSessionOptions & {
    /**
     * Tensors in the inputs file that are not inputs of this graph: an error (default) or
     * ignored with one info line (one inputs file shared by several entry points, e.g. a VAE's
     * `x` for encode and `z` for decode).
     */
    readonly extraInputs?: 'error' | 'ignore';
  } = {},
): Promise<RunResult> {
  const { tensors } = await readTensorsFile(inputsPath);
  if (opts.extraInputs === 'ignore') {
    const wanted = new Set(graph.inputs.map((v) => v.name));
    const extra = [...tensors.keys()].filter((k) => !wanted.has(k));
    for (const k of extra) tensors.delete(k);
    if (extra.length) opts.onInfo?.(`note: ignoring ${extra.length} tensor(s) in ${inputsPath} that ${graph.name} does not take: ${extra.join(', ')}`);
  }
  const r = await runGraph(graph, weights, tensors, opts);
  const contract = graph.metadata['sorac.contract'];
  await writeTensorsFile(outputsPath, r.outputs, { 'sorac.graph': graph.name, 'sorac.device': r.device, ...(contract !== undefined ? { 'sorac.contract': contract } : {}) });
  return r;
}
