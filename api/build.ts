/**
 * `sorac build` as an API call, and its artefacts: `<stem>.onnx` whose weights are external data in
 * `<stem>.weights.safetensors`, a safetensors file beside it (docs/adr/001-onnx-emission.md).
 *
 * The weights file layout is *planned* from the graph alone (keys, graph dtypes, shapes, and the
 * metadata) using the shared writer's deterministic layout, so:
 *  - `writeModelFiles` with no checkpoint can already write a complete `.onnx` whose external-data
 *    offsets are final; `writeWeightsFile` later produces the matching file from any checkpoint
 *    (converting dtypes to what the graph expects), and the pair runs in any ONNX runtime, e.g.
 *    `python -c "import onnxruntime as o; o.InferenceSession('model.onnx')"`. `sorac build` without
 *    `-w` (buildModel without weights) does not leave such a dangling reference: its graphs take the
 *    weights as inputs named by checkpoint key;
 *  - the weights file is an ordinary safetensors file (sorted header, aligned tensors) that
 *    other tools can read.
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { traceEntry, type CompiledModel } from '../compiler/compile.ts';
import { emitOnnx, type EmitOptions } from '../compiler/emit/onnx.ts';
import { lowerForCuda, lowerForTarget, optimizeForOrt } from '../compiler/passes/index.ts';
import { fsyncDir, tempSibling, writeFileAtomic } from '../core/atomic.ts';
import { checkOutputApart } from '../core/paths.ts';
import { faultPoint } from '../core/fault-hooks.ts';
import { canConvert, convertBytes, ConversionError } from '../core/convert.ts';
import { type Diagnostic, hasErrors } from '../core/diagnostics.ts';
import type { ExternalDataRef, IrGraph, IrWeight } from '../core/ir.ts';
import { canonicalJson } from '../core/keymap.ts';
import { buildHeader, writeSafetensors, type WrittenFile } from '../runtime/formats/safetensors-writer.ts';
import type { WeightSource } from '../runtime/execution/binding.ts';
import { openWeights } from '../runtime/weights/store.ts';
import { InternalError, SoracError } from '../core/errors.ts';
import { fmtShape } from '../core/host-tensor.ts';

export interface WeightsPlan {
  /** File name (relative to the model's directory). */
  readonly location: string;
  /** Total file size in bytes. */
  readonly size: number;
  readonly refs: ReadonlyMap<string, ExternalDataRef>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** `out/model.onnx` -> `model.weights.safetensors` */
export function weightsFileName(onnxPath: string): string {
  return basename(onnxPath).replace(/\.onnx$/i, '') + '.weights.safetensors';
}

function staticDims(w: IrWeight): number[] {
  return w.value.shape.map((d) => {
    if (typeof d !== 'number') throw new SoracError('SORA5504', `weight ${w.key} has a symbolic shape ${fmtShape(w.value.shape)}`);
    return d;
  });
}

/**
 * Plan `<location>`'s layout for the graph's weights (graph dtypes). The metadata defaults to the
 * graph's `sorac.*` metadata (contract hash, model), so the file identifies the model it belongs to.
 */
export function planWeightsFile(graph: IrGraph, location: string, metadata?: Readonly<Record<string, string>>): WeightsPlan {
  const md = metadata ?? Object.fromEntries(Object.entries(graph.metadata).filter(([k]) => k.startsWith('sorac.')));
  const spec = new Map(graph.weights.map((w) => [w.key, { dtype: w.value.dtype, shape: staticDims(w), data: new Uint8Array(0) }] as const));
  const { headerBytes, offsets, dataLength } = buildHeader(spec, md, location);
  const start = 8 + headerBytes.length;
  const refs = new Map<string, ExternalDataRef>();
  for (const [k, [b, e]] of offsets) refs.set(k, { location, offset: start + b, length: e - b });
  return { location, size: start + dataLength, refs, metadata: md };
}

/** Emit the model with external-data references into the planned weights file. */
export function emitWithPlannedWeights(graph: IrGraph, plan: WeightsPlan, opts: Omit<EmitOptions, 'weights' | 'externalData'> = {}): Uint8Array {
  return emitOnnx(graph, { ...opts, weights: 'external', externalData: (w) => plan.refs.get(w.key) });
}

/**
 * Write `<dir of onnxPath>/<plan.location>` from a checkpoint, converting each tensor to the
 * graph's dtype (bf16 -> f32 etc.). Streams one tensor at a time; atomic.
 */
export async function writeWeightsFile(onnxPath: string, graph: IrGraph, plan: WeightsPlan, source: WeightSource): Promise<WrittenFile> {
  const problems: string[] = [];
  for (const w of graph.weights) {
    const s = source.tensors.get(w.key);
    if (!s) problems.push(`  ${w.key}: missing from the checkpoint`);
    else if (s.shape.join(',') !== w.value.shape.join(',')) problems.push(`  ${w.key}: checkpoint has ${s.dtype}${fmtShape(s.shape)}, graph expects ${w.value.dtype}${fmtShape(w.value.shape)}`);
    else if (!canConvert(s.dtype, w.value.dtype)) problems.push(`  ${w.key}: cannot convert ${s.dtype} to ${w.value.dtype}`);
  }
  if (problems.length) throw new SoracError('SORA5504', `checkpoint does not match the model:\n${problems.join('\n')}`);
  const tensors = new Map(
    graph.weights.map((w) => {
      const s = source.tensors.get(w.key)!;
      const data = async () => {
        try {
          return convertBytes(await s.read(), s.dtype, w.value.dtype, { key: w.key });
        } catch (e) {
          if (e instanceof ConversionError) throw new SoracError('SORA5507', e.message);
          throw e;
        }
      };
      return [w.key, { dtype: w.value.dtype, shape: staticDims(w), data }] as const;
    }),
  );
  const path = join(dirname(onnxPath), plan.location);
  const written = await writeSafetensors(path, tensors, { metadata: plan.metadata });
  if (written.size !== plan.size) throw new InternalError(`weights file is ${written.size} bytes, plan said ${plan.size}`);
  return written;
}

/**
 * `sorac build` in one call: writes `<onnxPath>` (external data into `<stem>.weights.safetensors`)
 * and, when a checkpoint is given, the weights file too. Returns what was written.
 */
export async function writeModelFiles(
  onnxPath: string,
  graph: IrGraph,
  opts: { weights?: WeightSource; producerVersion?: string; weightsAsInputs?: boolean } = {},
): Promise<{ onnx: string; weights?: string; plan: WeightsPlan }> {
  const plan = planWeightsFile(graph, weightsFileName(onnxPath));
  // weightsAsInputs (without a checkpoint): no external-data reference at all; the weights are graph inputs named by key
  const bytes =
    opts.weightsAsInputs && !opts.weights
      ? emitOnnx(graph, { weights: 'none', ...(opts.producerVersion ? { producerVersion: opts.producerVersion } : {}) })
      : emitWithPlannedWeights(graph, plan, opts.producerVersion ? { producerVersion: opts.producerVersion } : {});
  let weights: string | undefined;
  if (opts.weights) weights = (await writeWeightsFile(onnxPath, graph, plan, opts.weights)).path;
  await writeFileAtomic(onnxPath, bytes);
  return { onnx: onnxPath, ...(weights ? { weights } : {}), plan };
}

export interface BuildOptions {
  /** Output directory (created if missing). */
  readonly out: string;
  readonly opset?: number;
  /** Also write the weights file the graphs reference, converted from this checkpoint. */
  readonly weights?: string;
  /** Files the build reads (the .sora source, the config): no output may be, contain or lie inside one. */
  readonly inputs?: readonly (string | undefined)[];
  /** Write the ONNX graphs (default true); false writes only the keymap. */
  readonly onnx?: boolean;
  readonly cwd?: string;
  /**
   * Lower the graphs for a device before writing them: 'cuda' computes in f32 the ops that
   * onnxruntime's CUDA provider has no bf16/f16 kernel for (compiler/passes/cuda-precision.ts);
   * 'ort' writes the graph a CPU session runs: bf16 compute emulated in f32, common subexpressions
   * merged and dead nodes dropped (compiler/passes/ort-cpu.ts), the same numbers from fewer nodes.
   * Default: the graphs as traced (valid ONNX for any runtime whose kernels cover them).
   */
  readonly target?: 'cuda' | 'ort';
}

export interface BuildResult {
  readonly ok: boolean;
  readonly diagnostics: Diagnostic[];
  /** One graph per entry (empty when onnx is false or the model has errors). */
  readonly graphs: IrGraph[];
  /** Files written, in order (nothing is written when the model has errors). */
  readonly files: string[];
  /**
   * How the graphs hold their weights: 'external' (ONNX external data in `<Model>.weights.safetensors`,
   * written from `weights`) or 'inputs' (no checkpoint given: graph inputs named by checkpoint key, so the
   * graph refers to no file that does not exist).
   */
  readonly weights?: 'external' | 'inputs';
}

/**
 * Trace every entry, then write `<out>/<Model>.keymap.json` and one `.onnx` per entry (`<Model>.onnx`
 * for forward, `<Model>.<entry>.onnx` otherwise), plus the weights file when `weights` is given.
 * The set is published as a whole (staged, then renamed into place); nothing is written when the
 * model has errors or a step fails. No output may be, contain or lie inside an input.
 */
export async function buildModel(m: CompiledModel, opts: BuildOptions): Promise<BuildResult> {
  const ds: Diagnostic[] = [...m.diagnostics];
  const graphs: IrGraph[] = [];
  if (!hasErrors(ds) && opts.onnx !== false) {
    for (const e of m.entries) {
      const r = traceEntry(m, e.name, { opset: opts.opset ?? 17 });
      ds.push(...r.diagnostics);
      // --target cuda: ops without a CUDA kernel for their reduced dtype are placed in f32 (recorded in casts);
      // --target ort: the graph a CPU session runs (bf16 compute emulated, shared subexpressions merged)
      if (r.graph) graphs.push(opts.target === 'cuda' ? lowerForCuda(r.graph).graph : opts.target === 'ort' ? optimizeForOrt(lowerForTarget(r.graph, 'cpu').graph).graph : r.graph);
    }
  }
  if (hasErrors(ds) || !m.keymap) return { ok: false, diagnostics: ds, graphs: [], files: [] };
  const stem = m.modelName!;
  const keymapName = `${stem}.keymap.json`;
  const onnxNames = graphs.map((g) => (g.metadata['sorac.entry'] === 'forward' ? `${stem}.onnx` : `${stem}.${g.metadata['sorac.entry']}.onnx`));
  const outputs = [keymapName, ...onnxNames, ...(opts.weights ? onnxNames.map(weightsFileName) : [])].map((f) => join(opts.out, f));
  const inputs = [...(opts.inputs ?? []), opts.weights !== undefined ? resolvePath(opts.cwd ?? '.', opts.weights) : undefined];
  for (const o of outputs) checkOutputApart(o, inputs, { flag: '-o' });
  try {
    mkdirSync(opts.out, { recursive: true });
  } catch (e) {
    throw writeError(e, opts.out, 'create the output directory');
  }
  const store = opts.weights && graphs.length ? await openWeights(opts.weights, { ...(opts.cwd ? { cwd: opts.cwd } : {}) }) : undefined;
  // The set is published as a whole: every file is written into a hidden staging directory inside
  // OUT, and only when all of them are complete are they renamed into place (weights, then graphs,
  // the keymap last). A failing build (bad weights, a trace or write error) leaves the old set as it was.
  let stage: string | undefined;
  const files: string[] = [];
  try {
    if (store) for (const o of outputs) checkOutputApart(o, store.files, { flag: '-o' });
    stage = tempSibling(join(opts.out, stem));
    try {
      mkdirSync(stage);
    } catch (e) {
      throw writeError(e, opts.out, 'write into the output directory');
    }
    const staged: string[] = [];
    try {
      await writeFileAtomic(join(stage, keymapName), new TextEncoder().encode(canonicalJson(m.keymap)));
      staged.push(keymapName);
      await faultPoint(staged.length);
      for (const [i, g] of graphs.entries()) {
        const r = await writeModelFiles(join(stage, onnxNames[i]!), g, store ? { weights: store } : { weightsAsInputs: true });
        staged.push(onnxNames[i]!, ...(r.weights ? [basename(r.weights)] : []));
        await faultPoint(staged.length);
      }
    } catch (e) {
      throw (e as NodeJS.ErrnoException)?.code ? writeError(e, opts.out, 'write the build') : e;
    }
    const order = [...staged.filter((f) => f.endsWith('.safetensors')), ...staged.filter((f) => f.endsWith('.onnx')), keymapName];
    for (const f of order) renameSync(join(stage, f), join(opts.out, f));
    await fsyncDir(opts.out);
    // report in the build's natural order: keymap, then each graph and its weights
    files.push(join(opts.out, keymapName));
    for (const n of onnxNames) files.push(join(opts.out, n), ...(staged.includes(weightsFileName(n)) ? [join(opts.out, weightsFileName(n))] : []));
  } finally {
    if (stage) rmSync(stage, { recursive: true, force: true });
    await store?.close();
  }
  return { ok: true, diagnostics: ds, graphs, files, ...(graphs.length ? { weights: store ? ('external' as const) : ('inputs' as const) } : {}) };
}

/** A file-system error while writing a build, as a clear SORA7008 (not a bare ENOENT). */
function writeError(e: unknown, out: string, what: string): SoracError {
  let code = (e as NodeJS.ErrnoException)?.code ?? '';
  const why: Record<string, string> = {
    EROFS: 'it is on a read-only file system',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    ENOTDIR: 'a part of the path is a file, not a directory',
    EEXIST: 'a part of the path is a file, not a directory',
  };
  let reason = why[code];
  if (!reason && code === 'ENOENT') {
    // mkdir -p on a read-only or unwritable tree reports ENOENT for the missing part: name the real cause
    let p = resolvePath(out);
    while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
    try {
      accessSync(p, fsConstants.W_OK);
      reason = `${p} changed while writing`;
    } catch (e2) {
      code = (e2 as NodeJS.ErrnoException).code ?? code;
      reason = `${p} is not writable (${code === 'EROFS' ? 'read-only file system' : 'permission denied'})`;
    }
  }
  return new SoracError('SORA7008', `cannot ${what} ${out}: ${reason ?? (e as Error).message}${code ? ` (${code})` : ''}; the previous files in ${out}, if any, are unchanged`, { hint: 'choose a writable location with -o', path: out });
}


export { emitOnnx, type EmitOptions } from '../compiler/emit/onnx.ts';
