/**
 * Compiler entry points: load a .sora program, apply a config, elaborate the model into a
 * module tree + keymap, and trace entry points into graphs. Pure: all I/O goes through Host.
 */
import type * as A from '../grammar/ast.ts';
import { type Diagnostic, type Span, dedupeDiagnostics, diag, hasErrors } from '../core/diagnostics.ts';
import { type DType, isDType, isFloat } from '../core/dtype.ts';
import { GraphBuilder } from './graph.ts';
import type { IrGraph, IrValue } from '../core/ir.ts';
import { Abort, DEFAULT_POLICY, type DtypePolicy, Interp, dimValue, paramsOf, pathGlob } from './interp.ts';
import * as ops from './ops.ts';
import { type Keymap, type KeymapEntry, contractHash } from '../core/keymap.ts';
import { type Host, type LoadedFile, type Program, loadProgram, suggest } from './program.ts';
import { Sym } from './sym.ts';
import { type Instance, type Value, NONE, toJson, typeName } from './values.ts';

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
  /** internal: for tracing */
  readonly _interp?: Interp;
  readonly _root?: Instance;
  readonly _decl?: A.ModuleDecl;
}

export function compile(opts: CompileOptions): CompiledModel {
  const program = loadProgram(opts.file, opts.host, { ...(opts.rootText !== undefined ? { rootText: opts.rootText } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const diagnostics = [...program.diagnostics];
  const fail = (): CompiledModel => ({ diagnostics, program, entries: [] });
  if (hasErrors(diagnostics)) return fail();
  const models = program.root.ast.decls.filter((d): d is A.ModuleDecl => d.kind === 'module' && d.isModel);
  let decl: A.ModuleDecl | undefined;
  if (opts.model) {
    decl = models.find((m) => m.name.name === opts.model);
    if (!decl) {
      diagnostics.push(diag('SORA2003', `no model named "${opts.model}" in ${program.root.display}`, undefined, { hint: suggest(opts.model, models.map((m) => m.name.name)) ?? `models: ${models.map((m) => m.name.name).join(', ') || 'none'}` }));
      return fail();
    }
  } else if (models.length === 1) decl = models[0];
  else {
    diagnostics.push(
      diag('SORA2010', models.length ? `${program.root.display} declares ${models.length} models (${models.map((m) => m.name.name).join(', ')}); choose one with --model` : `${program.root.display} declares no model`, models.length ? models[1]!.name.span : program.root.ast.span, {
        hint: models.length ? undefined : 'declare one with `model Name version "1.0" { config { ... } ... }`',
      }),
    );
    return fail();
  }
  const interp = new Interp(program);
  const rootFile = program.root;
  // dtype policy
  const policy = readPolicy(decl, diagnostics, opts.dtype);
  interp.policy = policy;
  interp.compute = policy.compute;
  // config
  const args = applyConfig(decl, opts.config, diagnostics);
  if (hasErrors(diagnostics)) return fail();
  let root: Instance;
  try {
    root = interp.instantiate(decl, rootFile, args, '');
  } catch (e) {
    if (!(e instanceof Abort)) throw e;
    diagnostics.push(...dedupeDiagnostics(interp.diags));
    return fail();
  }
  diagnostics.push(...dedupeDiagnostics(interp.diags));
  interp.diags.length = 0;
  diagnostics.push(...policyConflicts(policy, interp.instancePaths));
  const config: Record<string, unknown> = {};
  for (const p of paramsOf(decl)) config[p.name.name] = toJson(root.env.get(p.name.name) ?? NONE);
  // keymap
  const tensors: Record<string, KeymapEntry> = {};
  const firstSpan = new Map<string, Span>();
  for (const s of interp.slots) {
    if (tensors[s.key]) {
      diagnostics.push(diag('SORA2002', `two declarations produce the checkpoint key "${s.key}"`, s.span, { related: [{ span: firstSpan.get(s.key)!, message: 'first declared here' }] }));
      continue;
    }
    firstSpan.set(s.key, s.span);
    tensors[s.key] = {
      shape: s.shape,
      dtype: s.dtype,
      kind: s.kind,
      source: `${s.span.file}:${s.span.start.line}:${s.span.start.col}`,
      ...(s.via ? { via: `${s.via.file}:${s.via.start.line}:${s.via.start.col}` } : {}),
      ...(s.aliasOf ? { alias: s.aliasOf } : {}),
    };
  }
  const entries = decl.members
    .filter((m): m is A.FnDecl => m.kind === 'fn' && m.entry)
    .map((f) => ({
      name: f.name.name,
      decl: f,
      inputs: f.params.map((p) => ({ name: p.name.name, optional: !!p.type?.optional || (p.default?.kind === 'none'), ...(p.type ? { type: p.type } : {}) })),
      outputs: outputNames(f),
    }));
  if (!entries.length) diagnostics.push(diag('SORA2010', `model ${decl.name.name} has no entry point`, decl.name.span, { hint: 'declare one with `entry forward(x: f32[B, C]) -> (out: f32[B, C]) { ... }`' }));
  const keymap: Keymap = {
    format: 'sorac.keymap/1',
    model: decl.name.name,
    version: decl.version?.value ?? '0',
    config,
    contract: contractHash(tensors),
    tensors,
  };
  return { diagnostics, program, modelName: decl.name.name, version: decl.version?.value ?? '0', config, policy, keymap, entries, _interp: interp, _root: root, _decl: decl };
}

function outputNames(f: A.FnDecl): string[] {
  if (!f.ret) return ['output'];
  if (f.ret.length === 1) return [f.ret[0]!.name?.name ?? 'output'];
  return f.ret.map((r, i) => r.name?.name ?? `output_${i}`);
}

/** Op kinds that a `f32:` entry can name; any other entry is a module path glob. */
export const F32_OP_KINDS = ['softmax', 'layer_norm', 'group_norm'] as const;

/** A module that the policy both forces to a non-f32 dtype and requires in f32 (e.g. a norm forced to f16). */
function policyConflicts(p: DtypePolicy, paths: readonly string[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of p.modules) {
    if (m.dtype === 'f32') continue;
    const re = pathGlob(m.glob);
    for (const g of p.f32Modules) {
      const rf = pathGlob(g);
      const hit = paths.find((x) => x && re.test(x) && rf.test(x));
      if (hit)
        out.push(
          diag('SORA3008', `dtype policy conflict: module ${hit} is forced to ${m.dtype} by modules "${m.glob}" but the f32 rule "${g}" requires it in f32`, m.span, {
            related: p.spans.f32 ? [{ span: p.spans.f32, message: `f32 rule "${g}" is here` }] : [],
            hint: `narrow the modules glob "${m.glob}" so it does not cover ${hit}, or remove "${g}" from the f32 list`,
          }),
        );
    }
  }
  return out;
}

function readPolicy(decl: A.ModuleDecl, diagnostics: Diagnostic[], overrides?: Readonly<Record<string, string>>): DtypePolicy {
  const block = decl.members.find((m): m is A.DtypeBlock => m.kind === 'dtype');
  const p: DtypePolicy = { ...DEFAULT_POLICY, f32: [], f32Ops: new Set(), f32Modules: [], modules: [], spans: {} };
  const rules: { key: A.Ident; value: A.Expr; span: Span }[] = [...(block?.rules ?? [])];
  for (const [k, v] of Object.entries(overrides ?? {})) {
    const span: Span = { file: `--dtype ${k}=${v}`, start: { offset: 0, line: 1, col: 1 }, end: { offset: 0, line: 1, col: 1 } };
    const idx = rules.findIndex((r) => r.key.name === k);
    const rule = { key: { name: k, span }, value: { kind: 'name', name: v, span } as A.Expr, span };
    if (idx >= 0) rules[idx] = rule;
    else rules.push(rule);
  }
  for (const r of rules) {
    const key = r.key.name;
    p.spans[key] = r.span;
    const dt = (e: A.Expr): DType | undefined => (e.kind === 'name' && isDType(e.name) ? e.name : undefined);
    switch (key) {
      case 'params':
      case 'compute':
      case 'outputs': {
        const d = dt(r.value);
        if (!d || !isFloat(d)) {
          diagnostics.push(diag('SORA3001', `dtype rule "${key}" needs a floating dtype (f32, bf16, f16)`, r.value.span));
          break;
        }
        if (key === 'params') p.params = d;
        else if (key === 'compute') p.compute = d;
        else p.outputs = d;
        break;
      }
      case 'inputs':
        if (r.value.kind === 'name' && (r.value.name === 'cast' || r.value.name === 'exact')) p.inputs = r.value.name;
        else diagnostics.push(diag('SORA3001', 'dtype rule "inputs" must be `cast` or `exact`', r.value.span));
        break;
      case 'f32':
        if (r.value.kind === 'list') {
          p.f32 = r.value.items.map((x) => (x.kind === 'name' ? x.name : x.kind === 'str' ? x.value : ''));
          for (const e of p.f32) {
            if ((F32_OP_KINDS as readonly string[]).includes(e)) p.f32Ops.add(e);
            else if (e) p.f32Modules.push(e);
          }
        } else diagnostics.push(diag('SORA3001', 'dtype rule "f32" takes a list of op kinds (softmax, layer_norm, group_norm) and module path globs ("t_embedder", "*.rope")', r.value.span));
        break;
      case 'modules': {
        const bad = () => diagnostics.push(diag('SORA3001', 'dtype rule "modules" takes a list of ("module path glob", dtype) pairs, e.g. [("final_layer", f32)]', r.value.span));
        if (r.value.kind !== 'list') {
          bad();
          break;
        }
        for (const it of r.value.items) {
          if (it.kind !== 'tuple' || it.items.length !== 2 || it.items[0]!.kind !== 'str' || it.items[1]!.kind !== 'name' || !isDType((it.items[1] as A.NameExpr).name) || !isFloat((it.items[1] as A.NameExpr).name as DType)) {
            bad();
            continue;
          }
          p.modules.push({ glob: (it.items[0] as A.StrLit).value, dtype: (it.items[1] as A.NameExpr).name as DType, span: it.span });
        }
        break;
      }
      default:
        diagnostics.push(diag('SORA2005', `unknown dtype rule "${key}"`, r.key.span, { hint: suggest(key, ['params', 'compute', 'inputs', 'outputs', 'f32', 'modules']) ?? 'rules: params, compute, inputs, outputs, f32, modules' }));
    }
  }
  return p;
}

function jsonToValue(v: unknown, origin: { span?: Span; label?: string }): Value | undefined {
  if (v === null) return NONE;
  if (typeof v === 'boolean') return { k: 'bool', v, origin };
  if (typeof v === 'number') return Number.isInteger(v) ? { k: 'int', v, origin } : { k: 'float', v, origin };
  if (typeof v === 'string') return { k: 'str', v, origin };
  if (Array.isArray(v)) {
    const items = v.map((x) => jsonToValue(x, origin));
    if (items.some((x) => !x)) return undefined;
    return { k: 'list', items: items as Value[], origin };
  }
  return undefined;
}

function applyConfig(decl: A.ModuleDecl, cfg: ConfigInput | undefined, diagnostics: Diagnostic[]): Map<string, Value> {
  const params = paramsOf(decl);
  const names = params.map((p) => p.name.name);
  const out = new Map<string, Value>();
  const coerce = (p: A.Param, v: Value): Value => {
    const t = p.type?.name?.name;
    if (t === 'float' && v.k === 'int' && !p.type?.dims) return { k: 'float', v: v.v, ...(v.origin ? { origin: v.origin } : {}) };
    if (t === 'int' && v.k === 'float' && Number.isInteger(v.v)) return { k: 'int', v: v.v, ...(v.origin ? { origin: v.origin } : {}) };
    return v;
  };
  const typeOk = (p: A.Param, v: Value): boolean => {
    const t = p.type;
    if (!t?.name) return true;
    if (v.k === 'none') return t.optional;
    if (t.dims) return v.k === 'list';
    switch (t.name.name) {
      case 'int': return v.k === 'int';
      case 'float': return v.k === 'float' || v.k === 'int';
      case 'bool': return v.k === 'bool';
      case 'str': return v.k === 'str';
      default: return true;
    }
  };
  if (cfg?.file) {
    const unknown: string[] = [];
    for (const [k, raw] of flattenConfig(cfg.file.values, new Set(names), diagnostics, cfg.file.path)) {
      const p = params.find((x) => x.name.name === k);
      if (!p) {
        unknown.push(k);
        continue;
      }
      const v = jsonToValue(raw, { label: `config file ${cfg.file.path}` });
      if (!v || !typeOk(p, v)) {
        diagnostics.push(diag('SORA7005', `config file ${cfg.file.path}: "${k}" must be ${p.type ? typeText(p.type) : 'a value'}, got ${JSON.stringify(raw)}`, undefined, { related: [{ span: p.span, message: 'declared here' }] }));
        continue;
      }
      out.set(k, coerce(p, v));
    }
    if (unknown.length)
      diagnostics.push(diag('SORA7004', `config file ${cfg.file.path}: ignoring ${unknown.length} key${unknown.length > 1 ? 's' : ''} that ${decl.name.name} does not declare: ${unknown.sort().join(', ')}`, undefined, { severity: 'warning', hint: 'HF config.json files carry extra fields; this is only a problem if one of them was meant for the model' }));
  }
  for (const src of [cfg?.values ? Object.entries(cfg.values) : [], cfg?.set ?? []]) {
    const isSet = src === cfg?.set;
    for (const [k, rawIn] of src as [string, unknown][]) {
      const p = params.find((x) => x.name.name === k);
      if (!p) {
        diagnostics.push(diag(isSet ? 'SORA2005' : 'SORA2005', `${decl.name.name} has no config key "${k}"`, undefined, { hint: suggest(k, names) ?? `config keys: ${names.join(', ')}` }));
        continue;
      }
      let raw = rawIn;
      if (isSet && typeof rawIn === 'string') {
        try {
          raw = JSON.parse(rawIn);
        } catch {
          raw = rawIn === 'True' ? true : rawIn === 'False' ? false : rawIn === 'None' ? null : rawIn;
        }
      }
      const v = jsonToValue(raw, { label: isSet ? `--set ${k}=${rawIn}` : 'API' });
      if (!v || !typeOk(p, v)) {
        diagnostics.push(diag(isSet ? 'SORA7003' : 'SORA7005', `${isSet ? '--set' : 'config'} ${k}=${String(rawIn)}: expected ${p.type ? typeText(p.type) : 'a value'}`, undefined, { related: [{ span: p.span, message: 'declared here' }] }));
        continue;
      }
      out.set(k, coerce(p, v));
    }
  }
  return out;
}

/**
 * Config files as users have them: flat (`{"depth": 28}`, an HF config.json) or nested the way
 * constructors take them (`{"STDiT3Config": {...}}`, `{"encoder": {...}, "decoder": {...}}`). Nested
 * objects under keys that are not config fields are unwrapped; a top-level value wins over a nested one,
 * and nested values that disagree are reported.
 */
function flattenConfig(values: Readonly<Record<string, unknown>>, fields: ReadonlySet<string>, diagnostics: Diagnostic[], path: string): [string, unknown][] {
  const out = new Map<string, { v: unknown; from: string }>();
  const unwrapped: string[] = [];
  const conflicts: string[] = [];
  const visit = (obj: Readonly<Record<string, unknown>>, prefix: string, depth: number) => {
    const nested: [string, Record<string, unknown>][] = [];
    for (const [k, v] of Object.entries(obj)) {
      const isObj = v !== null && typeof v === 'object' && !Array.isArray(v);
      if (isObj && !fields.has(k) && depth < 3) {
        nested.push([k, v as Record<string, unknown>]);
        continue;
      }
      const from = prefix ? `${prefix}.${k}` : k;
      const prev = out.get(k);
      if (!prev) out.set(k, { v, from });
      else if (prefix && fields.has(k) && JSON.stringify(prev.v) !== JSON.stringify(v)) conflicts.push(`${k} (${prev.from} = ${JSON.stringify(prev.v)}, ${from} = ${JSON.stringify(v)})`);
    }
    for (const [k, v] of nested) {
      unwrapped.push(prefix ? `${prefix}.${k}` : k);
      visit(v, prefix ? `${prefix}.${k}` : k, depth + 1);
    }
  };
  visit(values, '', 0);
  if (unwrapped.length)
    diagnostics.push(diag('SORA7006', `config file ${path}: read nested objects ${unwrapped.join(', ')} as config values`, undefined, { severity: 'info', hint: 'a flat JSON object of config keys avoids any ambiguity' }));
  if (conflicts.length)
    diagnostics.push(diag('SORA7006', `config file ${path}: nested objects disagree on ${conflicts.join('; ')}; using the first`, undefined, { severity: 'warning', hint: 'give the value at the top level of the file to choose' }));
  return [...out].map(([k, e]) => [k, e.v]);
}

function typeText(t: A.TypeExpr): string {
  const base = t.name?.name ?? 'tensor';
  const dims = t.dims ? `[${t.dims.length === 1 && t.dims[0]!.kind === 'num' ? (t.dims[0] as A.NumLit).value : ''}]` : '';
  const article = /^[aeiou]/.test(base) ? 'an' : 'a';
  return `${t.dims ? 'a list' : `${article} ${base}`}${dims ? ` ${base}${dims}` : ''}${t.optional ? ' or null' : ''}`;
}

export interface TraceOptions {
  /** Optional inputs to treat as absent (the forward's None path). */
  readonly absent?: ReadonlySet<string>;
  readonly opset?: number;
}

export interface TraceResult {
  readonly graph?: IrGraph;
  readonly diagnostics: Diagnostic[];
}

/** Trace one entry point into a graph. */
export function traceEntry(model: CompiledModel, entry: string, opts: TraceOptions = {}): TraceResult {
  const interp = model._interp;
  const root = model._root;
  const diagnostics: Diagnostic[] = [];
  if (!interp || !root || !model.keymap) return { diagnostics: [diag('SORA2010', 'model did not compile', undefined)] };
  const info = model.entries.find((e) => e.name === entry);
  if (!info) return { diagnostics: [diag('SORA2010', `model ${model.modelName} has no entry "${entry}"`, undefined, { hint: suggest(entry, model.entries.map((e) => e.name)) ?? `entries: ${model.entries.map((e) => e.name).join(', ')}` })] };
  const g = new GraphBuilder(entry === 'forward' ? model.modelName! : `${model.modelName}.${entry}`, opts.opset ?? 17);
  interp.graph = g;
  interp.compute = model.policy!.compute;
  interp.diags.length = 0;
  const file = (root.file ?? model.program.root) as LoadedFile;
  try {
    const pos: { v: Value; span: Span }[] = [];
    const symSeen = new Set<string>();
    const symVars = new Map<string, Value>();
    for (const p of info.decl.params) {
      const t = p.type;
      const isTensor = !!t && !!t.dims && (!t.name || isDType(t.name.name) || t.name.name === 'Tensor');
      if (!isTensor) {
        pos.push({ v: p.default ? interp.evalExpr(p.default, { vars: new Map(), self: root, file } as never) : NONE, span: p.span });
        continue;
      }
      if ((t!.optional || p.default?.kind === 'none') && opts.absent?.has(p.name.name)) {
        pos.push({ v: NONE, span: p.span });
        continue;
      }
      // an input without a dtype is f32 at the graph boundary when the policy casts inputs, and
      // must already be in the compute dtype when it does not (`inputs: exact`)
      const declared = t!.name && isDType(t!.name.name) ? (t!.name.name as DType) : model.policy!.inputs === 'cast' ? 'f32' : model.policy!.compute;
      const dims: Sym[] = [];
      const irDims: (number | string)[] = [];
      const pending: { axis: number; name: string; divisor: number; offset: number }[] = [];
      t!.dims!.forEach((d, axis) => {
        if (d.kind === 'ellipsis' || d.kind === 'wildcard') {
          interp.error('SORA3010', 'entry inputs need a fully specified shape (no ... or _)', d.span, { hint: 'name every dimension, e.g. x: f32[B, C, T, H, W]' });
        }
        const e = d as A.Expr;
        const constInt = (x: A.Expr): number | undefined => {
          if (x.kind === 'num') return x.isInt ? x.value : undefined;
          if (x.kind === 'name' && !isBoundName(interp, root, file, x.name)) return undefined;
          try {
            const v = interp.evalExpr(x, { vars: new Map(symVars), self: root, file } as never);
            return v.k === 'int' ? v.v : undefined;
          } catch (err) {
            if (err instanceof Abort) {
              interp.diags.pop();
              return undefined;
            }
            throw err;
          }
        };
        const symbolic = parseSymDim(e, (n) => isBoundName(interp, root, file, n), symSeen, constInt);
        if (symbolic) {
          dims.push(Sym.sym(symbolic.name).scale(symbolic.divisor).add(symbolic.offset));
          irDims.push(symbolic.divisor === 1 && symbolic.offset === 0 ? symbolic.name : `${symbolic.divisor === 1 ? '' : symbolic.divisor + '*'}${symbolic.name}${symbolic.offset ? '+' + symbolic.offset : ''}`);
          if (!symSeen.has(symbolic.name)) pending.push({ axis, ...symbolic });
          symSeen.add(symbolic.name);
          symVars.set(symbolic.name, dimValue(Sym.sym(symbolic.name)));
          return;
        }
        const v = interp.evalExpr(e, { vars: new Map(symVars), self: root, file } as never);
        if (v.k === 'dim') {
          dims.push(v.s);
          irDims.push(v.s.toString());
          return;
        }
        if (v.k !== 'int') return interp.error('SORA3010', `input dimension must be a name, an int from the config, or an expression of earlier dimensions, got ${typeName(v)}`, e.span);
        dims.push(Sym.const(v.v));
        irDims.push(v.v);
      });
      const input = g.input(p.name.name, declared, irDims);
      for (const s of pending) g.bindSymbol(s.name, { input, axis: s.axis, divisor: s.divisor, offset: s.offset });
      let tensor: { dtype: DType; shape: readonly Sym[]; ir: IrValue } = { dtype: declared, shape: dims, ir: input as IrValue };
      g.source = { file: p.span.file, line: p.span.start.line, col: p.span.start.col };
      if (model.policy!.inputs === 'cast' && isFloat(declared) && declared !== model.policy!.compute) {
        tensor = ops.cast(interp.bctx(p.span), tensor, model.policy!.compute, `input ${p.name.name}: ${declared} -> compute ${model.policy!.compute} (dtype rule inputs: cast)`);
      }
      pos.push({ v: { k: 'tensor', t: tensor }, span: p.span });
    }
    const entrySymbols = new Map<string, Sym>();
    for (const [k, v] of symVars) if (v.k === 'dim') entrySymbols.set(k, v.s);
    const result = interp.callFn(info.decl, file, root, pos, new Map(), info.decl.name.span, { entryInputs: true, entrySymbols });
    const vals = info.outputs.length > 1 ? (result.k === 'tuple' ? result.items : [result]) : [result];
    if (vals.length !== info.outputs.length) interp.error('SORA3013', `entry ${entry} returns ${vals.length} values but declares ${info.outputs.length} outputs`, info.decl.name.span);
    const outputs: IrValue[] = [];
    vals.forEach((v, i) => {
      const name = info.outputs[i]!;
      let t = interp.tensorOf(v, info.decl.name.span);
      const declaredName = info.decl.ret?.[i]?.type.name?.name;
      const declared = declaredName && isDType(declaredName) ? declaredName : undefined;
      if (declared && t.dtype !== declared) {
        if (!(isFloat(declared) && isFloat(t.dtype)))
          interp.error('SORA3013', `${entry}: output ${name} is ${t.dtype} but declared ${declared}`, info.decl.ret![i]!.span, { hint: `cast it before returning: cast(x, ${declared})` });
        t = ops.cast(interp.bctx(info.decl.ret![i]!.span), t, declared, `output ${name}: ${t.dtype} -> declared ${declared}`);
      } else if (!declared && model.policy!.outputs && isFloat(t.dtype) && t.dtype !== model.policy!.outputs)
        t = ops.cast(interp.bctx(info.decl.name.span), t, model.policy!.outputs, `output ${name}: ${t.dtype} -> ${model.policy!.outputs} (dtype rule outputs)`);
      const out = g.value(t.dtype, t.shape.map((s) => s.value() ?? s.toString()), name);
      g.node('Identity', [t.ir], [out]);
      outputs.push(out);
    });
    const graph = g.finish(outputs, {
      'sorac.contract': model.keymap.contract,
      'sorac.model': model.modelName!,
      'sorac.version': model.version!,
      'sorac.entry': entry,
      'sorac.config': JSON.stringify(model.config),
    });
    diagnostics.push(...interp.diags);
    return { graph, diagnostics };
  } catch (e) {
    if (!(e instanceof Abort)) throw e;
    diagnostics.push(...interp.diags);
    return { diagnostics };
  } finally {
    interp.graph = undefined;
  }
}

function isBoundName(interp: Interp, root: Instance, file: LoadedFile, n: string): boolean {
  return root.env.has(n) || root.members.has(n) || !!interp.global(file, n);
}

/** `B`, `8*h`, `h*8`, `4*t+1`: an input dimension that introduces a symbol. */
/**
 * `B`, `8*h`, `h*factor` (factor an int from the config), `4*t+1`: an input dimension that introduces a
 * symbol. `constInt` evaluates config-level expressions (undefined when not a known int).
 */
function parseSymDim(e: A.Expr, bound: (n: string) => boolean, seen: ReadonlySet<string> = new Set(), constInt: (e: A.Expr) => number | undefined = () => undefined): { name: string; divisor: number; offset: number } | undefined {
  const fresh = (x: A.Expr): x is A.NameExpr => x.kind === 'name' && !bound(x.name) && !seen.has(x.name);
  if (e.kind === 'name') return fresh(e) ? { name: e.name, divisor: 1, offset: 0 } : undefined;
  if (e.kind === 'binary' && e.op === '+') {
    const off = constInt(e.right);
    if (off === undefined) return undefined;
    const inner = parseSymDim(e.left, bound, seen, constInt);
    return inner && inner.offset === 0 ? { ...inner, offset: off } : undefined;
  }
  if (e.kind === 'binary' && e.op === '*') {
    for (const [k, sym] of [[e.left, e.right], [e.right, e.left]] as const) {
      if (!fresh(sym)) continue;
      const c = constInt(k);
      if (c !== undefined && c > 0) return { name: sym.name, divisor: c, offset: 0 };
    }
  }
  return undefined;
}

export { dimValue };
