/**
 * The high-level programmatic API: compile → load (resolve + validate a checkpoint) → run.
 * Like cli/, this layer sits above both the compiler and the runtime; neither imports it.
 */
import { type CompiledModel, traceEntry } from '../compiler/compile.ts';
import type { IrGraph } from '../core/ir.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import { type LoadReport, loadReport } from '../runtime/weights/load-report.ts';
import { createSession, type SessionOptions, type SoracSession } from '../runtime/execution/session.ts';
import { openWeights, type OpenWeightsOptions, type TensorStore } from '../runtime/weights/store.ts';
import { withAliases } from '../runtime/weights/aliases.ts';
import { graphForDevice } from '../compiler/passes/cpu-bf16.ts';
import { describeLossy, lossyConversions } from '../runtime/weights/lossy.ts';
import { MicroBatchError, planMicroBatch, runMicroBatched } from '../runtime/execution/micro-batch.ts';

export class ModelError extends Error {
  constructor(
    message: string,
    public readonly report?: LoadReport,
  ) {
    super(message);
    this.name = 'ModelError';
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

export interface LoadOptions extends OpenWeightsOptions, SessionOptions {
  /** Glob patterns of keys that may be missing (deliberate partial loads). */
  readonly allowMissing?: readonly string[];
  /** Accept narrowing checkpoint dtypes at load (e.g. f32 weights into a bf16 model). */
  readonly allowLossy?: boolean;
}

function graphFor(model: CompiledModel, entry: string, absent: ReadonlySet<string>): IrGraph {
  const r = traceEntry(model, entry, { absent });
  if (!r.graph) throw new ModelError(r.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return r.graph;
}

/** Resolve a checkpoint and validate it strictly against the model's keymap. */
export async function load(model: CompiledModel, weights: string | TensorStore, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!model.keymap) throw new ModelError(`model did not compile:\n${model.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n')}`);
  const opened = typeof weights === 'string' ? await openWeights(weights, opts) : weights;
  const store = withAliases(model.keymap, opened);
  const report = loadReport(model.keymap, store, { allowMissing: opts.allowMissing ?? [], ...(typeof weights === 'string' ? { weights } : {}) });
  if (!report.ok) {
    if (typeof weights === 'string') await opened.close();
    throw new ModelError(`checkpoint does not fit ${model.modelName}: ${report.missing.length} missing, ${report.unexpected.length} unexpected, ${report.shapeMismatch.length} shape mismatches`, report);
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
        if (lossy.length && !opts.allowLossy) return Promise.reject(new ModelError(`loading would narrow ${lossy.length} tensor(s) to the model's dtypes (pass allowLossy):\n${describeLossy(lossy)}`));
        const prepared = graphForDevice(g, opts.device ?? 'auto');
        if (prepared.note) opts.onInfo?.(prepared.note);
        s = createSession(prepared.graph, store, opts);
        sessions.set(key, s);
      }
      return s;
    },
    async close() {
      for (const s of sessions.values()) await (await s).release();
      if (typeof weights === 'string') await opened.close();
    },
  };
}

export interface RunOptions extends LoadOptions {
  readonly weights: string | TensorStore;
  readonly inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>;
  readonly entry?: string;
  /**
   * Run the entry chunk by chunk along an axis it declares with micro_batch() (default: its first declared
   * axis), `size` elements of the axis per run, in one session (docs/adr/005-micro-batching.md).
   */
  readonly microBatch?: { readonly size: number; readonly axis?: string };
}

/** One-shot: load, run the entry with the given inputs (absent optional inputs take the none path), close. */
export async function run(model: CompiledModel, opts: RunOptions): Promise<Map<string, HostTensor>> {
  const loaded = await load(model, opts.weights, opts);
  try {
    const entry = model.entries.find((e) => e.name === (opts.entry ?? 'forward'));
    if (!entry) throw new ModelError(`${model.modelName} has no entry "${opts.entry}"`);
    const given = new Set(opts.inputs instanceof Map ? opts.inputs.keys() : Object.keys(opts.inputs));
    const absent = entry.inputs.filter((i) => i.optional && !given.has(i.name)).map((i) => i.name);
    if (opts.microBatch) {
      let plan;
      try {
        plan = planMicroBatch(graphFor(model, entry.name, new Set(absent)), opts.microBatch.axis !== undefined ? { axis: opts.microBatch.axis } : {});
      } catch (e) {
        if (e instanceof MicroBatchError) throw new ModelError(e.hint ? `${e.message}\nhint: ${e.hint}` : e.message);
        throw e;
      }
      const s = await loaded.session(entry.name, absent);
      return (await runMicroBatched(s, plan, opts.inputs, { size: opts.microBatch.size })).outputs!;
    }
    const s = await loaded.session(entry.name, absent);
    return await s.run(opts.inputs);
  } finally {
    await loaded.close();
  }
}
