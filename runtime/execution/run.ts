/**
 * One-shot running of a graph: what `sorac run` calls.
 *
 *   const weights = await safetensorsWeightSource(['ckpt.safetensors'])   // or a TensorStore
 *   const r = await runGraph(graph, weights, inputs, { device: 'auto', onInfo: (m) => io.stderr(m + '\n') })
 *   await weights.close()
 *
 * or, file to file (inputs/outputs as .safetensors, outputs written atomically):
 *
 *   await runFiles(graph, weights, 'inputs.safetensors', 'outputs.safetensors', opts)
 */
import type { IrGraph } from '../../core/ir.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { openSafetensors, type SafetensorsFile } from '../formats/safetensors.ts';
import { createSession, type BindingReport, type SessionOptions, type StoredWeight, type WeightSource } from './session.ts';
import { readTensorsFile, writeTensorsFile } from '../formats/tensors-io.ts';

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
  opts: SessionOptions = {},
): Promise<RunResult> {
  const s = await createSession(graph, weights, opts);
  try {
    const t0 = performance.now();
    const outputs = await s.run(inputs);
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
  opts: SessionOptions & {
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
  await writeTensorsFile(outputsPath, r.outputs, { 'sorac.graph': graph.name, 'sorac.device': r.device, ...pick(graph.metadata, 'sorac.contract') });
  return r;
}

function pick(m: Readonly<Record<string, string>>, key: string): Record<string, string> {
  return m[key] !== undefined ? { [key]: m[key]! } : {};
}

/**
 * A WeightSource over one or more safetensors files (a stand-in until runtime/store.ts's
 * TensorStore is used; both have the same shape). A key present in two files is an error.
 */
export async function safetensorsWeightSource(paths: readonly string[]): Promise<WeightSource & { close(): Promise<void> }> {
  const files: SafetensorsFile[] = [];
  const tensors = new Map<string, StoredWeight>();
  try {
    for (const p of paths) {
      const f = await openSafetensors(p);
      files.push(f);
      for (const [key, t] of f.tensors) {
        if (tensors.has(key)) throw new Error(`tensor "${key}" is defined in more than one weights file (${p})`);
        tensors.set(key, { dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, file: p, offset: t.offset, read: () => f.read(key) });
      }
    }
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
  return { tensors, close: async () => void (await Promise.all(files.map((f) => f.close()))) };
}
