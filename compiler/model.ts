/**
 * What compiling a model produces (CompiledModel, frozen: nothing downstream can change it) and the
 * options of compile and traceEntry. The instance tree that tracing needs stays private to the
 * compiler, in a registry keyed by the model object.
 */
import type * as A from '../grammar/ast.ts';
import type { Diagnostic, Span } from '../core/diagnostics.ts';
import type { IrGraph } from '../core/ir.ts';
import type { Keymap } from '../core/keymap.ts';
import type { DtypePolicy } from './policy.ts';
import type { Host, ParseCache, Program } from './program.ts';
import type { Instance, Value } from './values.ts';

/** Sees the span and value of every expression evaluated and every name bound (editor hovers). */
export type Observer = (span: Span, v: Value) => void;

export interface ConfigInput {
  /** Values from a --config JSON file (flat; extra keys are warned about). */
  readonly file?: { readonly path: string; readonly values: Readonly<Record<string, unknown>> };
  /** --set k=v overrides, applied after the file. Values are JSON (or bare strings). */
  readonly set?: readonly (readonly [string, string])[];
  /** Programmatic overrides (already typed). */
  readonly values?: Readonly<Record<string, unknown>>;
}

export interface CompileOptions {
  readonly file: string;
  readonly host: Host;
  readonly cwd?: string;
  readonly rootText?: string;
  readonly model?: string;
  readonly config?: ConfigInput;
  /** Override dtype policy rules (`--dtype compute=bf16`): rule -> dtype name / cast|exact. */
  readonly dtype?: Readonly<Record<string, string>>;
  /** Sees every value of the elaboration (config, members, module-level lets): the editor's hovers. */
  readonly observe?: Observer;
  /** Parses kept between compiles (the editor: unchanged files are not parsed again). ASTs are read-only. */
  readonly parseCache?: ParseCache;
  /** A program already loaded from `file` (read-only; reused by config inference across probe compiles). */
  readonly program?: Program;
  /** Config inference probes only: failed `assert`s do not stop elaboration (the keymap is still a function of the config). */
  readonly lenientAsserts?: boolean;
}

export interface EntryInfo {
  readonly name: string;
  readonly decl: A.FnDecl;
  readonly inputs: readonly { name: string; optional: boolean; type?: A.TypeExpr }[];
  readonly outputs: readonly string[];
}

export interface CompiledModel {
  readonly diagnostics: Diagnostic[];
  readonly program: Program;
  readonly modelName?: string;
  readonly version?: string;
  readonly config?: Record<string, unknown>;
  readonly policy?: DtypePolicy;
  readonly keymap?: Keymap;
  readonly entries: readonly EntryInfo[];
}

export interface TraceOptions {
  /** Optional inputs to treat as absent (the forward's None path). */
  readonly absent?: ReadonlySet<string>;
  readonly opset?: number;
  /**
   * Fix input symbols to sizes (`{ B: 2, Tx: 15, Hx: 30, Wx: 54 }`): the graph's shapes are then concrete
   * where they follow from these, and asserts over them are checked now (a request checked before compute).
   */
  readonly bind?: Readonly<Record<string, number>>;
  /** Sees every value of the trace: the editor's hovers. */
  readonly observe?: Observer;
  /**
   * Check only: trace each distinct module call once (Interp.memo), sharing the results through this map
   * (one map may serve several traces of the same compiled model: the entry paths of a check). The
   * diagnostics are the same; the graph is not fit to run or emit. For the editor's check as you type (lsp/).
   */
  readonly memo?: CallMemo;
  /**
   * Replay repeated module calls instead of tracing each (Interp.replays; the default). The graph is
   * byte-identical either way; false traces every call (for tests that compare the two).
   */
  readonly replay?: boolean;
}

/** Results of module calls by module and call key (Interp.memo). */
export type CallMemo = Map<A.ModuleDecl, Map<string, Value>>;

export interface TraceResult {
  readonly graph?: IrGraph;
  readonly diagnostics: Diagnostic[];
}

/** The compiler's private view of a compiled model: the elaborated root instance (read-only for tracing). */
export interface ModelInternals {
  readonly root: Instance;
  readonly decl: A.ModuleDecl;
}

const internals = new WeakMap<CompiledModel, ModelInternals>();

export function registerInternals(m: CompiledModel, i: ModelInternals): void {
  internals.set(m, i);
}

export function internalsOf(m: CompiledModel): ModelInternals | undefined {
  return internals.get(m);
}
