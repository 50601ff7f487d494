/**
 * Running a compiled model: compile -> resolve -> validate -> run, in one place. `sorac run` and the
 * programmatic `load()`/`run()` both come through here, so every check happens in the same order
 * and before any compute:
 *
 *   entry exists -> input names -> trace the path the inputs take -> micro-batch plan
 *   -> open the checkpoint -> load report (strict) -> lossy dtype narrowing -> session -> run
 *   -> outputs (in memory, or written atomically; micro-batched runs stream into the file)
 */
import { absentInputs } from '../compiler/check.ts';
import { type CompiledModel, type EntryInfo, traceEntry } from '../compiler/compile.ts';
import { prepareOutputFile } from '../core/atomic.ts';
import type { Code } from '../core/codes.ts';
import { type ErrorDetails, SoracError } from '../core/errors.ts';
import { convertBytes } from '../core/convert.ts';
import type { DType } from '../core/dtype.ts';
import { type HostTensor, hostBytes, hostFromBytes } from '../core/host-tensor.ts';
import { checkOutputApart } from '../core/paths.ts';
import type { IrGraph } from '../core/ir.ts';
import { type MicroBatchPlan, planMicroBatch, runMicroBatched } from '../runtime/execution/micro-batch.ts';
import { planTiling, runTiled } from '../runtime/execution/tiling.ts';

export { declaredMicroBatch, planMicroBatch, runMicroBatched } from '../runtime/execution/micro-batch.ts';
export type { MicroBatchDecl, MicroBatchPlan, MicroBatchResult, MicroBatchRunOptions } from '../runtime/execution/micro-batch.ts';
import { readTensorsFile, writeTensorsFile } from '../runtime/formats/tensors-io.ts';
import { withAliases } from '../runtime/weights/aliases.ts';
import { type LoadReport, loadReport, renderLoadReport } from '../runtime/weights/load-report.ts';
import { describeLossy, lossyConversions } from '../runtime/weights/lossy.ts';
import { openWeights, type OpenWeightsOptions, type TensorStore } from '../runtime/weights/store.ts';
import { type CreateSessionOptions, createSession, type SoracSession } from './session.ts';

/** A model and a checkpoint or inputs that do not go together (the report, when there is one, is on `report`). */
export class ModelError extends SoracError {
  readonly report?: LoadReport;
  constructor(code: Code, message: string, details: ErrorDetails & { report?: LoadReport } = {}) {
    super(code, message, details);
    this.name = 'ModelError';
    if (details.report) this.report = details.report;
  }
}

export interface LoadedModel {
  readonly model: CompiledModel;
  readonly store: TensorStore;
  readonly report: LoadReport;
  /** Create (and cache) a session for an entry and a pattern of absent optional inputs. */
  session(entry?: string, absent?: Iterable<string>): Promise<SoracSession>;
  close(): Promise<void>;
}

export interface LoadOptions extends OpenWeightsOptions, CreateSessionOptions {
  /** Glob patterns of keys that may be missing (deliberate partial loads). */
  readonly allowMissing?: readonly string[];
  /** Glob patterns of checkpoint keys the model may leave unused (e.g. the vision tower of a full CLIP file). */
  readonly allowUnexpected?: readonly string[];
  /** Accept narrowing checkpoint dtypes at load (e.g. f32 weights into a bf16 model). */
  readonly allowLossy?: boolean;
}

function entryOf(model: CompiledModel, name: string): EntryInfo {
  const e = model.entries.find((x) => x.name === name);
  if (!e) throw new ModelError('SORA2010', `${model.modelName} has no entry point "${name}"`, { hint: `entries: ${model.entries.map((x) => x.name).join(', ')}` });
  return e;
}

function graphFor(model: CompiledModel, entry: string, absent: ReadonlySet<string>): IrGraph {
  const r = traceEntry(model, entry, { absent });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  const first = errors[0];
  if (!r.graph) {
    if (!first) throw new ModelError('SORA2010', `${model.modelName}.${entry} did not trace`);
    // the first error keeps its place, trail (related, notes) and hint; any others follow as notes
    const more = errors.slice(1).map((d) => `also ${d.code}${d.span ? ` at ${d.span.file}:${d.span.start.line}:${d.span.start.col}` : ''}: ${d.message}`);
    throw new ModelError(first.code as Code, first.message, {
      ...(first.span ? { span: first.span } : {}),
      ...(first.related ? { related: first.related } : {}),
      notes: [...(first.notes ?? []), ...more],
      ...(first.hint ? { hint: first.hint } : {}),
      data: { diagnostics: r.diagnostics },
    });
  }
  return r.graph;
}

/** Resolve a checkpoint and validate it strictly against the model's keymap. */
export async function load(model: CompiledModel, weights: string | TensorStore, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!model.keymap) throw new ModelError('SORA7010', `model did not compile:\n${model.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n')}`);
  const keymap = model.keymap;
  const opened = typeof weights === 'string' ? await openWeights(weights, opts) : weights;
  const store = withAliases(keymap, opened);
  const report = loadReport(keymap, store, { allowMissing: opts.allowMissing ?? [], ...(opts.allowUnexpected ? { allowUnexpected: opts.allowUnexpected } : {}), ...(typeof weights === 'string' ? { weights } : {}) });
  if (!report.ok) {
    if (typeof weights === 'string') await opened.close();
    const label = typeof weights === 'string' ? weights : 'the checkpoint';
    throw new ModelError('SORA5010', `${label} does not fit ${model.modelName} v${model.version}; nothing was run\n${renderLoadReport(report)}`, {
      hint: 'see the fixes above, or `sorac check MODEL --weights W` for the full report',
      report,
      data: { missing: report.missing.length, unexpected: report.unexpected.length, shapeMismatch: report.shapeMismatch.length },
    });
  }
  const sessions = new Map<string, Promise<SoracSession>>();
  return {
    model,
    store,
    report,
    session(entry = 'forward', absent: Iterable<string> = []) {
      const a = new Set(absent);
      const key = `${entry}|${[...a].sort().join(',')}`;
      let s = sessions.get(key);
      if (!s) {
        const g = graphFor(model, entry, a);
        const lossy = lossyConversions(g, store);
        if (lossy.length && !opts.allowLossy)
          return Promise.reject(
            new ModelError('SORA5510', `loading ${typeof weights === 'string' ? weights : 'the checkpoint'} would narrow ${lossy.length} tensor${lossy.length > 1 ? 's' : ''} to the model's dtypes; nothing was run\n${describeLossy(lossy)}`, {
              hint: 'pass --allow-lossy (allowLossy: true) to accept the rounding, or change the dtype policy (params:) to the checkpoint dtype',
            }),
          );
        s = createSession(g, store, opts);
        sessions.set(key, s);
      }
      return s;
    },
    async close() {
      for (const s of sessions.values()) await (await s.catch(() => undefined))?.release();
      if (typeof weights === 'string') await opened.close();
    },
  };
}

export interface RunOptions extends LoadOptions {
  readonly weights: string | TensorStore;
  /** Named input tensors, or the path of a safetensors file holding them. */
  readonly inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>> | string;
  readonly entry?: string;
  /**
   * Run the entry chunk by chunk along an axis it declares with micro_batch() (default: its first declared
   * axis), `size` elements of the axis per run, in one session (docs/adr/005-micro-batching.md).
   */
  readonly microBatch?: { readonly size: number; readonly axis?: string };
  /** Write the outputs to this safetensors file, atomically (micro-batched runs stream into it). */
  readonly out?: { readonly path: string; readonly metadata?: Readonly<Record<string, string>> };
}

export interface RunResult {
  /** The outputs (not kept in memory when a micro-batched run streams them to `out`). */
  readonly outputs?: Map<string, HostTensor>;
  /** Name, dtype and shape of every output. */
  readonly shapes: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly number[] }[];
  readonly device: 'cpu' | 'cuda';
  readonly createMs: number;
  readonly runMs: number;
  readonly microBatch?: { readonly axis: string; readonly size: number; readonly chunks: number };
}

/** Validate the inputs' names against the entry (before the checkpoint is even opened). */
function checkInputNames(model: CompiledModel, entry: EntryInfo, given: readonly string[], label: string): void {
  const listed = `inputs are: ${entry.inputs.map((i) => `${i.name}${i.optional ? '?' : ''}`).join(', ')}`;
  const known = new Set(entry.inputs.map((i) => i.name));
  const unknown = given.filter((k) => !known.has(k));
  if (unknown.length) throw new ModelError('SORA5501', `${label} has tensors that are not inputs of ${model.modelName}.${entry.name}: ${unknown.join(', ')}`, { hint: listed });
  const have = new Set(given);
  const missing = entry.inputs.filter((i) => !i.optional && !have.has(i.name)).map((i) => i.name);
  if (missing.length) throw new ModelError('SORA5501', `${label} lacks required input${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${model.modelName}.${entry.name}`, { hint: listed });
}

function planFor(graph: IrGraph, mb: NonNullable<RunOptions['microBatch']>): MicroBatchPlan {
  let plan: MicroBatchPlan;
  try {
    plan = planMicroBatch(graph, mb.axis !== undefined ? { axis: mb.axis } : {});
  } catch (e) {
    if (e instanceof SoracError) throw new ModelError(e.code, e.message, { ...(e.hint ? { hint: e.hint } : {}) });
    throw e;
  }
  if (mb.size % plan.step !== 0)
    throw new ModelError('SORA5509', `${plan.graph} splits ${plan.axis} in whole groups of ${plan.step}: ${mb.size} is not a multiple of ${plan.step}`, { hint: `use a multiple of ${plan.step}` });
  return plan;
}

function asModelError(e: unknown): never {
  if (e instanceof SoracError && !(e instanceof ModelError)) throw new ModelError(e.code, e.message, { ...(e.hint ? { hint: e.hint } : {}) });
  throw e;
}

/** The entry's tile() declarations resolved against its graph (docs/guides/vae-pipeline.md, tiled decode). */
function tilingFor(graph: IrGraph): ReturnType<typeof planTiling> {
  try {
    return planTiling(graph);
  } catch (e) {
    return asModelError(e);
  }
}

/** Float dtypes each float dtype widens into exactly (every value representable). */
const WIDENS_TO: Partial<Record<DType, readonly DType[]>> = { bf16: ['f32', 'f64'], f16: ['f32', 'f64'], f32: ['f64'] };

/** Where a dtype policy rule was set: its source line, `--dtype k=v`, or the default. */
function ruleAt(model: CompiledModel, rule: string): string {
  const sp = model.policy?.spans[rule];
  if (!sp) return 'the default';
  return sp.file.startsWith('--dtype ') ? sp.file : `${sp.file}:${sp.start.line}:${sp.start.col}`;
}

/**
 * Input dtypes against the graph, with the dtype policy: under `inputs: cast` an input in a float dtype
 * that widens exactly into the graph input's (bf16/f16 -> f32, as Open-Sora's samplers pass bf16
 * tensors) is widened on the host, with one note; anything else is one SORA5502 naming every input and
 * the policy rule, before any compute.
 */
function widenInputs(model: CompiledModel, graph: IrGraph, inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>, info?: (m: string) => void): ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>> {
  const given = new Map<string, HostTensor>(inputs instanceof Map ? inputs : Object.entries(inputs));
  const cast = (model.policy?.inputs ?? 'cast') === 'cast';
  const widened: string[] = [];
  const problems: string[] = [];
  for (const spec of graph.inputs) {
    const t = given.get(spec.name);
    if (!t || t.dtype === spec.dtype) continue;
    if (cast && WIDENS_TO[t.dtype]?.includes(spec.dtype)) {
      given.set(spec.name, hostFromBytes(spec.dtype, t.shape, convertBytes(hostBytes(t), t.dtype, spec.dtype, { key: spec.name })));
      widened.push(`${spec.name} ${t.dtype} -> ${spec.dtype}`);
    } else problems.push(`  ${spec.name}: dtype ${t.dtype}, expected ${spec.dtype}`);
  }
  if (problems.length) {
    const policy = `the model's dtype policy has inputs: ${cast ? 'cast' : 'exact'} (${ruleAt(model, 'inputs')})`;
    throw new ModelError('SORA5502', `input dtype${problems.length > 1 ? 's do' : ' does'} not match ${model.modelName}:\n${problems.join('\n')}`, {
      hint: cast
        ? `${policy}, which widens inputs exactly (bf16/f16 -> f32 -> f64) but never narrows or changes an int to a float: save the inputs in the dtype shown`
        : `${policy}: pass the inputs in the dtype shown, or run with --dtype inputs=cast to have them cast in the graph`,
    });
  }
  if (widened.length) info?.(`note: widened ${widened.join(', ')} exactly (dtype rule inputs: cast, ${ruleAt(model, 'inputs')})`);
  return widened.length ? given : inputs;
}

/** Run one entry of a model on a checkpoint, with every check before compute (see the file header). */
export async function runModel(model: CompiledModel, opts: RunOptions): Promise<RunResult> {
  const entry = entryOf(model, opts.entry ?? 'forward');
  // the output may not be (or lie inside) anything this run reads, checked before anything is read
  if (opts.out) checkOutputApart(opts.out.path, [typeof opts.inputs === 'string' ? opts.inputs : undefined, typeof opts.weights === 'string' ? opts.weights : undefined], { flag: '-o' });
  // the output path is checked (and its directories made) before anything is read or computed
  if (opts.out) prepareOutputFile(opts.out.path);
  const read = typeof opts.inputs === 'string' ? (await readTensorsFile(opts.inputs)).tensors : opts.inputs;
  const names = read instanceof Map ? [...read.keys()] : Object.keys(read);
  checkInputNames(model, entry, names, typeof opts.inputs === 'string' ? opts.inputs : 'the inputs');
  const absent = absentInputs(entry, names);
  const graph = graphFor(model, entry.name, new Set(absent));
  const inputs = widenInputs(model, graph, read, opts.onInfo);
  const plan = opts.microBatch ? planFor(graph, opts.microBatch) : undefined;
  const tiling = tilingFor(graph);
  if (tiling && plan) throw new ModelError('SORA5517', `${model.modelName}.${entry.name} is tiled (tile() declarations): it cannot also be micro-batched`, { hint: 'drop --micro-batch, or switch the tiling off in the config' });
  const loaded = await load(model, opts.weights, opts);
  try {
    if (opts.out) checkOutputApart(opts.out.path, loaded.store.files, { flag: '-o' }); // the files the weights resolved to
    const s = await loaded.session(entry.name, absent);
    const meta = { 'sorac.model': model.modelName!, 'sorac.entry': entry.name, 'sorac.contract': model.keymap!.contract, 'sorac.device': s.device, ...(opts.out?.metadata ?? {}) };
    if (plan) {
      const mr = await runMicroBatched(s, plan, inputs, { size: opts.microBatch!.size, ...(opts.out ? { out: { path: opts.out.path, metadata: { ...meta, 'sorac.micro_batch': `${plan.axis}:${opts.microBatch!.size}` } } } : {}) });
      return {
        ...(mr.outputs ? { outputs: mr.outputs } : {}),
        shapes: [...mr.shapes].map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape })),
        device: s.device,
        createMs: s.createMs,
        runMs: mr.runMs,
        microBatch: { axis: plan.axis, size: opts.microBatch!.size, chunks: mr.chunks },
      };
    }
    const t0 = performance.now();
    const outputs = tiling ? (await runTiled((x) => s.run(x), tiling, inputs).catch(asModelError)).outputs : await s.run(inputs);
    const runMs = performance.now() - t0;
    if (opts.out) await writeTensorsFile(opts.out.path, outputs, meta);
    return { outputs, shapes: [...outputs].map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape })), device: s.device, createMs: s.createMs, runMs };
  } finally {
    await loaded.close();
  }
}

/** One-shot: load, run the entry with the given inputs (absent optional inputs take the none path), close. */
export async function run(model: CompiledModel, opts: RunOptions): Promise<Map<string, HostTensor>> {
  const { out: _out, ...rest } = opts;
  return (await runModel(model, rest)).outputs!;
}
