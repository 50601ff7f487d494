/**
 * The .sora interpreter. Config-level code (module parameters, lets, asserts, declarations) is
 * evaluated concretely at elaboration time; forward bodies are evaluated by tracing: tensor
 * values are symbolic (dtype + symbolic shape) and every tensor operation is checked and
 * recorded into a GraphBuilder. Checking and lowering are therefore one pass.
 *
 * Why one file of ~850 lines: the evaluator is one recursive class over shared state (diagnostics,
 * the graph being built, the dtype in effect, the call depth); expressions, statements, calls and
 * type matching call each other at every level. The parts that stand alone live beside it: the
 * builtins (builtins/), op helpers (ops.ts), the policy (policy.ts), configs (config.ts), tracing
 * entry points (trace.ts).
 */
import type * as A from '../grammar/ast.ts';
import { type Diagnostic, type RelatedInfo, type Span, diag, type Code } from '../core/diagnostics.ts';
import { type DType, isDType, isFloat } from '../core/dtype.ts';
import type { GraphBuilder, Tape } from './graph.ts';
import type { IrValue } from '../core/ir.ts';
import type { GlobalDecl, LoadedFile, Program } from './program.ts';
import { suggest } from './program.ts';
import { Sym } from './sym.ts';
import { limit, LIMITS } from '../core/limits.ts';
import { type Instance, NONE, type Origin, type Tensor, type TensorSlot, type Value, dimValue, typeName } from './values.ts';
import { BUILTINS, isBuiltin } from './builtins/index.ts';
import { BUILTIN_REFERENCE, signatureText } from './builtins/reference.ts';
import { formatExpr } from '../grammar/format.ts';
import type { BuiltinCtx, Tracer } from './context.ts';
import { DEFAULT_POLICY, type DtypePolicy, pathGlob } from './policy.ts';
import * as ops from './ops.ts';

/** Unwinds evaluation after a diagnostic has been recorded. */
export class Abort extends Error {
  constructor() {
    super('abort');
  }
}

interface Frame {
  readonly vars: Map<string, Value>;
  readonly self?: Instance;
  readonly file: LoadedFile;
}

const MAX_CALL_DEPTH = 200;

export class Interp implements Tracer {
  readonly diags: Diagnostic[] = [];
  graph: GraphBuilder | undefined;
  policy: DtypePolicy = DEFAULT_POLICY;
  /** the compute dtype in effect (policy compute, or an island's dtype inside it) */
  compute: DType = 'f32';
  /** config inference probes only: a failed config-level assert does not stop elaboration */
  lenientAsserts = false;
  /** every module instance path, for policy checks */
  readonly instancePaths: string[] = [];
  /** the root model's member being elaborated (recorded as `via` on the tensors it brings in) */
  private rootMember: Span | undefined;
  private depth = 0;
  /** check-time size limits (core/limits.ts): module instances, parameter elements */
  private readonly maxInstances = limit('instances');
  private readonly maxParameters = limit('parameters');
  private parameterCount = 0;
  /** set once a size limit is hit: every later instantiation aborts without another diagnostic */
  private overLimit = false;
  /** collects tensor slots during elaboration */
  readonly slots: TensorSlot[] = [];
  /**
   * Called with the span and value of every expression evaluated and every name bound (let, params,
   * for, members), when set: the editor's hovers (lsp/). Unset, it costs one branch per expression.
   */
  observe: ((span: Span, v: Value) => void) | undefined;
  /**
   * When set, a call of a module instance whose module, parameters, argument dtypes/shapes and compute
   * dtype equal an earlier call's returns that call's result without re-tracing it (the 28 identical
   * blocks of a DiT are traced once). Only for checking (lsp/): the graph it leaves reuses the first
   * call's nodes. Tracing is deterministic in these inputs and a failing call aborts the trace, so the
   * diagnostics are the same; with path-based dtype rules (islands) it is not used.
   */
  memo: Map<A.ModuleDecl, Map<string, Value>> | undefined;
  /**
   * When set (tracing for a graph to emit or run), repeated module calls are replayed instead of
   * traced: a call whose module, parameters, argument kinds/dtypes/shapes (and module/slot arguments'
   * paths), compute dtype, caller scope and source position equal an earlier call's is traced once
   * more while GraphBuilder records what it does, and every later one redoes that recording with its
   * own weights, inputs, ids and names (GraphBuilder.replay). The graph is the same, byte for byte, as
   * tracing every call (tests/compiler/replay.test.ts); the 28 blocks of a DiT cost two traces.
   */
  replays: Map<A.ModuleDecl, Map<string, ReplayEntry>> | undefined;

  constructor(readonly prog: Program) {}

  // ---- diagnostics --------------------------------------------------------------------------
  error(code: Code, message: string, span: Span | undefined, extra: { related?: RelatedInfo[]; hint?: string; notes?: string[] } = {}): never {
    this.diags.push(diag(code, message, span, extra));
    throw new Abort();
  }
  warn(code: Code, message: string, span: Span | undefined, extra: { hint?: string } = {}): void {
    this.diags.push(diag(code, message, span, { ...extra, severity: 'warning' }));
  }

  // ---- global lookup --------------------------------------------------------------------------
  global(file: LoadedFile, name: string): GlobalDecl | undefined {
    return this.prog.scopes.get(file.path)?.get(name);
  }

  // ---- instantiation (elaboration) -------------------------------------------------------------
  /**
   * Instantiate a module with bound arguments at a key path. Members are evaluated in order;
   * tensor declarations become slots with concrete shapes.
   */
  instantiate(decl: A.ModuleDecl, file: LoadedFile, args: ReadonlyMap<string, Value>, path: string, callSpan?: Span): Instance {
    if (this.overLimit) throw new Abort();
    if (this.instancePaths.length >= this.maxInstances) {
      this.overLimit = true;
      this.error('SORA3030', `the model creates more than ${this.maxInstances} module instances (the limit instances); stopped at ${decl.name.name}`, callSpan ?? decl.name.span, {
        hint: `check config values such as depth (e.g. --set depth=…) and nested repeats; if the model is really this large, raise the limit: ${LIMITS.instances.env}=${this.maxInstances * 10}`,
      });
    }
    if (++this.depth > MAX_CALL_DEPTH) this.error('SORA2011', `module ${decl.name.name} instantiates itself (nesting deeper than ${MAX_CALL_DEPTH})`, callSpan ?? decl.name.span);
    try {
      const inst: Instance = { decl, file, path, env: new Map(), members: new Map(), ...(callSpan ? { callSpan } : {}) };
      this.instancePaths.push(path);
      const frame: Frame = { vars: inst.env, self: undefined, file };
      // parameters: module header params or the model's config fields
      const params = paramsOf(decl);
      for (const p of params) {
        let v = args.get(p.name.name);
        if (v === undefined) {
          if (!p.default) this.error('SORA2008', `missing argument "${p.name.name}" for ${decl.name.name}`, callSpan ?? p.span, { related: [{ span: p.span, message: 'parameter declared here' }] });
          v = withOrigin(this.evalExpr(p.default, frame), { span: p.default.span });
        }
        if (p.type) v = this.checkParamType(v, p, decl.name.name, callSpan);
        inst.env.set(p.name.name, v);
        this.observe?.(p.name.span, v);
      }
      for (const m of decl.members) {
        const isRoot = path === '' && (m.kind === 'sub' || m.kind === 'param' || m.kind === 'buffer' || m.kind === 'alias');
        if (isRoot) this.rootMember = m.span;
        try {
          this.elaborateMember(inst, m, frame);
        } catch (e) {
          if (!(e instanceof Abort)) throw e;
        } finally {
          if (isRoot) this.rootMember = undefined;
        }
      }
      return inst;
    } finally {
      this.depth--;
    }
  }

  private checkParamType(v: Value, p: A.Param, owner: string, callSpan?: Span): Value {
    const t = p.type!;
    if (v.k === 'none') {
      if (t.optional) return v;
      this.error('SORA3001', `${owner}: parameter "${p.name.name}" is none but its type is not optional`, callSpan ?? p.span, { hint: `declare it as ${p.name.name}: ${t.name?.name ?? ''}?`, related: [{ span: p.span, message: 'declared here' }] });
    }
    const name = t.name?.name;
    if (!name || isDType(name) || name === 'Tensor' || name === 'any' || name === 'module') return v;
    const scalar = (want: string, ok: boolean) => {
      if (!ok) this.error('SORA3001', `${owner}: "${p.name.name}" must be ${want}, got ${typeName(v)}`, originSpan(v) ?? callSpan ?? p.span, { related: [{ span: p.span, message: 'declared here' }] });
    };
    if (t.dims) {
      // int[3], float[]
      scalar(`a list of ${name}`, v.k === 'list' || v.k === 'tuple');
      const items = (v as { items: readonly Value[] }).items;
      if (t.dims.length === 1 && t.dims[0]!.kind === 'num') {
        const n = (t.dims[0] as A.NumLit).value;
        if (items.length !== n) this.error('SORA3001', `${owner}: "${p.name.name}" must have ${n} elements, got ${items.length}`, originSpan(v) ?? callSpan ?? p.span);
      }
      return v;
    }
    switch (name) {
      case 'int':
        scalar('an int', v.k === 'int' || v.k === 'dim');
        return v;
      case 'float':
        scalar('a number', v.k === 'float' || v.k === 'int');
        return v.k === 'int' ? { k: 'float', v: v.v, ...(v.origin ? { origin: v.origin } : {}) } : v;
      case 'bool':
        scalar('a bool', v.k === 'bool');
        return v;
      case 'str':
        scalar('a string', v.k === 'str');
        return v;
      default:
        return v;
    }
  }

  private elaborateMember(inst: Instance, m: A.Member, frame: Frame): void {
    switch (m.kind) {
      case 'config':
      case 'dtype':
      case 'upstream':
        return;
      case 'let': {
        const v = this.evalExpr(m.value, frame);
        this.bindLet(inst.env, m, v);
        return;
      }
      case 'assert': {
        this.runAssert(m, frame, inst);
        return;
      }
      case 'fn': {
        if (this.lookupMember(inst, m.name.name)) this.error('SORA2002', `"${m.name.name}" is already a member of ${inst.decl!.name.name}`, m.name.span);
        inst.members.set(m.name.name, { k: 'fn', decl: m, file: frame.file, self: inst });
        return;
      }
      case 'param':
      case 'buffer': {
        if (m.cond && !this.truthy(this.evalExpr(m.cond, frame), m.cond.span)) {
          this.setMember(inst, m.path, NONE);
          return;
        }
        const shape = m.shape.map((e) => {
          const v = this.evalExpr(e, frame);
          const n = v.k === 'int' ? v.v : v.k === 'dim' ? v.s.value() : undefined;
          if (n === undefined || !Number.isInteger(n)) this.error('SORA3010', `a ${m.kind} shape must be integers known from the config, got ${typeName(v)}`, e.span);
          if (n < 0) this.error('SORA3010', `negative dimension ${n} in the shape of ${m.path.segments.map((s) => s.name).join('.')}`, e.span, { related: relatedFor(e, frame) });
          return n;
        });
        let dtype: DType = this.policy.params;
        if (m.dtype) {
          if (!isDType(m.dtype.name)) this.error('SORA3001', `unknown dtype "${m.dtype.name}"`, m.dtype.span, { hint: suggest(m.dtype.name, ['f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'bool']) });
          dtype = m.dtype.name;
        }
        if (m.kind === 'param') {
          this.parameterCount += shape.reduce((a, b) => a * b, 1);
          if (this.parameterCount > this.maxParameters) {
            this.overLimit = true;
            this.error('SORA3030', `the model has more than ${this.maxParameters} parameters (the limit parameters) at ${joinPath(inst.path, m.path.segments.map((s) => s.name).join('.'))} [${shape.join(', ')}]`, m.span, {
              hint: `check the config values that size it (hidden sizes, depth); if the model is really this large, raise the limit: ${LIMITS.parameters.env}=${this.maxParameters * 10}`,
            });
          }
        }
        const key = joinPath(inst.path, m.path.segments.map((s) => s.name).join('.'));
        const slot: TensorSlot = { key, shape, dtype, kind: m.kind, span: m.span, file: frame.file, ...(this.rootMember && this.rootMember !== m.span ? { via: this.rootMember } : {}) };
        this.slots.push(slot);
        this.setMember(inst, m.path, { k: 'slot', slot });
        this.observe?.(m.path.span, { k: 'slot', slot });
        return;
      }
      case 'alias': {
        let target: Value | undefined = { k: 'module', inst };
        for (const seg of m.target.segments) target = target?.k === 'module' ? target.inst.members.get(seg.name) : undefined;
        if (!target || target.k !== 'slot')
          this.error('SORA2009', `alias target "${m.target.segments.map((x) => x.name).join('.')}" is not a param or buffer declared earlier in this module`, m.target.span, { hint: 'declare the tensor first, then `alias other.name = tensor.name`' });
        const key = joinPath(inst.path, m.path.segments.map((x) => x.name).join('.'));
        const t = target.slot;
        this.slots.push({ key, shape: t.shape, dtype: t.dtype, kind: t.kind, span: m.span, file: frame.file, aliasOf: t.key });
        this.setMember(inst, m.path, target);
        return;
      }
      case 'sub': {
        const rel = m.path.segments.map((s) => s.name).join('.');
        if (m.cond && !this.truthy(this.evalExpr(m.cond, frame), m.cond.span)) {
          this.setMember(inst, m.path, NONE);
          return;
        }
        const v = this.evalExpr(m.value, frame);
        const built = this.build(v, joinPath(inst.path, rel), m.value.span);
        this.setMember(inst, m.path, built);
        this.observe?.(m.path.span, built);
        return;
      }
    }
  }

  /** Turn constructor values (possibly in lists) into instances at a key path. */
  private build(v: Value, path: string, span: Span): Value {
    if (v.k === 'ctor') return { k: 'module', inst: this.instantiate(v.decl, v.file, v.args, path, v.span) };
    if (v.k === 'list' || v.k === 'tuple') return { k: 'list', items: v.items.map((it, i) => this.build(it, `${path}.${i}`, span)) };
    if (v.k === 'moddef') {
      return { k: 'module', inst: this.instantiate(v.decl, v.file, new Map(), path, span) };
    }
    return v;
  }

  private setMember(inst: Instance, path: A.Path, v: Value): void {
    let target = inst;
    const segs = path.segments;
    for (let i = 0; i < segs.length - 1; i++) {
      const s = segs[i]!.name;
      let next = target.members.get(s);
      if (!next) {
        const ns: Instance = { path: joinPath(target.path, s), env: new Map(), members: new Map() };
        next = { k: 'module', inst: ns };
        target.members.set(s, next);
      }
      if (next.k !== 'module') this.error('SORA2002', `"${segs.slice(0, i + 1).map((x) => x.name).join('.')}" is not a module namespace`, segs[i]!.span);
      target = next.inst;
    }
    const last = segs[segs.length - 1]!;
    if (target.members.has(last.name)) this.error('SORA2002', `member "${path.segments.map((s) => s.name).join('.')}" is declared twice`, path.span);
    target.members.set(last.name, v);
  }

  lookupMember(inst: Instance, name: string): Value | undefined {
    return inst.members.get(name);
  }

  private bindLet(vars: Map<string, Value>, s: A.LetStmt, v: Value): void {
    if (s.destructure) {
      if (v.k !== 'tuple' && v.k !== 'list') this.error('SORA3001', `cannot destructure ${typeName(v)} into ${s.names.length} names`, s.value.span);
      const items = (v as { items: readonly Value[] }).items;
      if (items.length !== s.names.length) this.error('SORA3001', `destructuring expects ${s.names.length} values, got ${items.length}`, s.value.span, { hint: `write let (${items.map((_, i) => `v${i}`).join(', ')}) = ...` });
      s.names.forEach((n, i) => {
        vars.set(n.name, items[i]!);
        this.observe?.(n.span, items[i]!);
      });
    } else {
      vars.set(s.names[0]!.name, v);
      this.observe?.(s.names[0]!.span, v);
    }
  }

  private runAssert(s: A.AssertStmt, frame: Frame, inst?: Instance): void {
    const v = this.evalExpr(s.cond, frame);
    if (v.k !== 'bool') this.error('SORA3011', `assert needs a condition known at compile time, got ${typeName(v)}`, s.cond.span);
    if (!v.v) {
      if (this.lenientAsserts) return;
      const related = relatedFor(s.cond, frame);
      if (inst?.callSpan) related.push({ span: inst.callSpan, message: `${inst.decl?.name.name ?? 'module'} instantiated here` });
      const nd = s.cond.kind === 'binary' && s.cond.op === '==' && s.cond.left.kind === 'binary' && s.cond.left.op === '%';
      this.error(nd ? 'SORA3003' : 'SORA3009', s.message?.value ?? `assertion failed: ${exprText(s.cond, frame.file)}`, s.cond.span, {
        related,
        hint: nd ? 'choose values that divide evenly (see the related locations for where they are set)' : 'change the config values shown in the related locations',
      });
    }
  }

  truthy(v: Value, span: Span): boolean {
    if (v.k === 'bool') return v.v;
    if (v.k === 'none') return false;
    if (v.k === 'int' || v.k === 'float') return v.v !== 0;
    if (v.k === 'tensor') this.error('SORA3011', 'a tensor cannot be used as a condition: its value is only known at run time', span, { hint: 'use where(cond, a, b) to select between tensors' });
    return true;
  }

  // ---- expressions -------------------------------------------------------------------------
  evalExpr(e: A.Expr, f: Frame): Value {
    const v = this.evalExpr0(e, f);
    if (this.observe) this.observe(e.span, v);
    return v;
  }

  private evalExpr0(e: A.Expr, f: Frame): Value {
    switch (e.kind) {
      case 'num':
        return e.isInt ? { k: 'int', v: e.value, origin: { span: e.span } } : { k: 'float', v: e.value, origin: { span: e.span } };
      case 'str':
        return { k: 'str', v: e.value };
      case 'bool':
        return { k: 'bool', v: e.value };
      case 'none':
        return NONE;
      case 'name':
        return this.lookup(e.name, e.span, f);
      case 'list':
        return { k: 'list', items: e.items.map((x) => this.evalExpr(x, f)) };
      case 'tuple':
        return { k: 'tuple', items: e.items.map((x) => this.evalExpr(x, f)) };
      case 'comp': {
        const iter = this.evalExpr(e.iter, f);
        const items = this.iterate(iter, e.iter.span);
        const out: Value[] = [];
        for (const it of items) {
          const vars = new Map(f.vars);
          vars.set(e.name.name, it);
          this.observe?.(e.name.span, it);
          out.push(this.evalExpr(e.element, { ...f, vars }));
        }
        return { k: 'list', items: out };
      }
      case 'ternary': {
        const c = this.evalExpr(e.cond, f);
        return this.truthy(c, e.cond.span) ? this.evalExpr(e.then, f) : this.evalExpr(e.else, f);
      }
      case 'unary': {
        const v = this.evalExpr(e.operand, f);
        if (e.op === 'not') return { k: 'bool', v: !this.truthy(v, e.span) };
        if (e.op === '+') return v;
        return this.binary('*', v, { k: 'int', v: -1 }, e.span);
      }
      case 'binary': {
        if (e.op === 'and' || e.op === 'or') {
          const l = this.evalExpr(e.left, f);
          const lt = this.truthy(l, e.left.span);
          if (e.op === 'and' && !lt) return { k: 'bool', v: false };
          if (e.op === 'or' && lt) return { k: 'bool', v: true };
          return { k: 'bool', v: this.truthy(this.evalExpr(e.right, f), e.right.span) };
        }
        const l = this.evalExpr(e.left, f);
        const r = this.evalExpr(e.right, f);
        this.setSource(e.span);
        return this.binary(e.op, l, r, e.span, e.left.span, e.right.span);
      }
      case 'member':
        return this.member(this.evalExpr(e.object, f), e.name, e.span, e.object);
      case 'index':
        return this.index(this.evalExpr(e.object, f), e.items, f, e.span);
      case 'call':
        return this.call(e, f);
    }
  }

  private setSource(span: Span): void {
    if (this.graph) this.graph.source = { file: span.file, line: span.start.line, col: span.start.col };
  }

  lookup(name: string, span: Span, f: Frame): Value {
    const local = f.vars.get(name);
    if (local !== undefined) return local;
    if (f.self) {
      const m = f.self.members.get(name);
      if (m !== undefined) return m;
      const p = f.self.env.get(name);
      if (p !== undefined) return p;
    }
    const g = this.global(f.file, name);
    if (g) {
      if (g.kind === 'module') return { k: 'moddef', decl: g.decl, file: g.file };
      if (g.kind === 'fn') return { k: 'fn', decl: g.decl, file: g.file };
      const v = this.evalExpr(g.decl.value, { vars: new Map(), file: g.file });
      return v;
    }
    if (isDType(name)) return { k: 'dtype', d: name };
    if (isBuiltin(name)) return { k: 'builtin', name };
    if (name === 'pi') return { k: 'float', v: Math.PI };
    if (name === 'inf') return { k: 'float', v: Infinity };
    const candidates = new Set<string>([...f.vars.keys(), ...(f.self ? [...f.self.members.keys(), ...f.self.env.keys()] : []), ...(this.prog.scopes.get(f.file.path)?.keys() ?? []), ...Object.keys(BUILTINS)]);
    this.error('SORA2001', `unknown name "${name}"`, span, { hint: suggest(name, candidates) ?? 'declare it with let, as a parameter, or import it' });
  }

  private member(obj: Value, name: A.Ident, span: Span, objExpr?: A.Expr): Value {
    if (obj.k === 'module') {
      const m = obj.inst.members.get(name.name);
      if (m !== undefined) return m;
      const p = obj.inst.env.get(name.name);
      if (p !== undefined) return p;
      const cands = [...obj.inst.members.keys(), ...obj.inst.env.keys()];
      this.error('SORA2009', `${obj.inst.decl ? `module ${obj.inst.decl.name.name}` : `"${obj.inst.path}"`} has no member "${name.name}"`, name.span, { hint: suggest(name.name, cands) ?? `members: ${cands.join(', ')}` });
    }
    if (obj.k === 'list' && /^\d+$/.test(name.name)) return this.indexList(obj.items, Number(name.name), name.span);
    if (obj.k === 'tensor' || obj.k === 'slot') {
      const t = this.tensorOf(obj, span);
      if (name.name === 'shape') return { k: 'tuple', items: t.shape.map((s) => dimValue(s)) };
      if (name.name === 'ndim') return { k: 'int', v: t.shape.length };
      if (name.name === 'dtype') return { k: 'dtype', d: t.dtype };
      if (name.name === 'T') return { k: 'tensor', t: ops.transposeLast(this.bctx(span), t) };
      if (isBuiltin(name.name)) {
        // x.transpose(1, 2), x.reshape(...): the PyTorch spelling of a builtin
        const x = objExpr ? formatExpr(objExpr) : 'x';
        this.error('SORA2009', `tensors have no methods; write ${name.name}(${x}, ...)`, name.span, { hint: `${signatureText(name.name)}: ${BUILTIN_REFERENCE[name.name]!.doc} (a tensor's members are shape, ndim, dtype and T)` });
      }
    }
    this.error('SORA2009', `${typeName(obj)} has no member "${name.name}"`, name.span);
  }

  private indexList(items: readonly Value[], i: number, span: Span): Value {
    const j = i < 0 ? items.length + i : i;
    if (j < 0 || j >= items.length) this.error('SORA3012', `index ${i} is out of range for a list of ${items.length}`, span);
    return items[j]!;
  }

  private index(obj: Value, items: readonly A.IndexItem[], f: Frame, span: Span): Value {
    if (obj.k === 'list' || obj.k === 'tuple') {
      if (items.length !== 1) this.error('SORA3012', 'lists take one index', span);
      const it = items[0]!;
      if (it.kind === 'at') {
        const iv = this.evalExpr(it.index, f);
        if (iv.k !== 'int') this.error('SORA3011', `list index must be an int known at compile time, got ${typeName(iv)}`, it.span);
        return this.indexList(obj.items, iv.v, it.span);
      }
      if (it.kind === 'slice') {
        const n = obj.items.length;
        const get = (e: A.Expr | undefined, d: number) => {
          if (!e) return d;
          const v = this.evalExpr(e, f);
          if (v.k !== 'int') this.error('SORA3011', 'list slice bounds must be ints', e.span);
          return v.v < 0 ? n + v.v : v.v;
        };
        return { k: obj.k, items: obj.items.slice(get(it.start, 0), get(it.stop, n)) } as Value;
      }
      this.error('SORA3012', 'unsupported list index', span);
    }
    const t = this.tensorOf(obj, span);
    const resolved = items.map((it) => {
      if (it.kind === 'at') return { kind: 'at' as const, index: this.evalExpr(it.index, f), span: it.span };
      if (it.kind === 'slice')
        return {
          kind: 'slice' as const,
          ...(it.start ? { start: this.evalExpr(it.start, f) } : {}),
          ...(it.stop ? { stop: this.evalExpr(it.stop, f) } : {}),
          ...(it.step ? { step: this.evalExpr(it.step, f) } : {}),
          span: it.span,
        };
      return { kind: it.kind, span: it.span };
    });
    this.setSource(span);
    return { k: 'tensor', t: ops.index(this.bctx(span), t, resolved) };
  }

  iterate(v: Value, span: Span): readonly Value[] {
    if (v.k === 'list' || v.k === 'tuple') return v.items;
    if (v.k === 'int') return Array.from({ length: v.v }, (_, i) => ({ k: 'int', v: i }) as Value);
    this.error('SORA3001', `cannot iterate over ${typeName(v)}`, span, { hint: 'use range(n) or a list' });
  }

  // ---- calls ------------------------------------------------------------------------------------
  private call(e: A.CallExpr, f: Frame): Value {
    const callee = this.evalExpr(e.callee, f);
    const pos: { v: Value; span: Span }[] = [];
    const kw = new Map<string, { v: Value; span: Span; name: A.Ident }>();
    for (const a of e.args) {
      const v = this.evalExpr(a.value, f);
      if (a.name) {
        if (kw.has(a.name.name)) this.error('SORA2002', `keyword argument "${a.name.name}" given twice`, a.span);
        kw.set(a.name.name, { v, span: a.value.span, name: a.name });
      } else {
        if (kw.size) this.error('SORA2006', 'positional argument after keyword arguments', a.span);
        pos.push({ v, span: a.value.span });
      }
    }
    this.setSource(e.span);
    return this.apply(callee, pos, kw, e.span, e.callee.span);
  }

  apply(callee: Value, pos: { v: Value; span: Span }[], kw: Map<string, { v: Value; span: Span; name?: A.Ident }>, span: Span, calleeSpan: Span): Value {
    switch (callee.k) {
      case 'builtin': {
        const b = BUILTINS[callee.name]!;
        return b(this.bctx(span), pos, kw);
      }
      case 'moddef': {
        const args = this.bindArgs(paramsOf(callee.decl), callee.decl.name.name, pos, kw, span);
        for (const [k, v] of [...args]) args.set(k, v);
        return { k: 'ctor', decl: callee.decl, file: callee.file, args, span };
      }
      case 'module': {
        const fwd = callee.inst.members.get('forward');
        if (!fwd || fwd.k !== 'fn') this.error('SORA2009', `${callee.inst.decl ? `module ${callee.inst.decl.name.name}` : `"${callee.inst.path}"`} has no forward method to call`, calleeSpan);
        const decl = callee.inst.decl;
        if (this.replays && decl && this.graph && callee.inst.path !== '' && !this.policy.modules.length && !this.policy.f32Modules.length) return this.callReplayed(callee.inst, decl, fwd, pos, kw, span, calleeSpan);
        if (this.memo && decl && !this.policy.modules.length && !this.policy.f32Modules.length) {
          const key = callKey(callee.inst, pos, kw, this.compute);
          if (key !== undefined) {
            let byDecl = this.memo.get(decl);
            if (!byDecl) this.memo.set(decl, (byDecl = new Map()));
            const hit = byDecl.get(key);
            if (hit) return hit;
            const r = this.apply(fwd, pos, kw, span, calleeSpan);
            byDecl.set(key, r);
            return r;
          }
        }
        return this.apply(fwd, pos, kw, span, calleeSpan);
      }
      case 'fn':
        return this.callFn(callee.decl, callee.file, callee.self, pos, kw, span);
      case 'none':
        // calling an absent optional module (nn.Identity)
        if (pos.length === 1 && kw.size === 0) return pos[0]!.v;
        this.error('SORA3001', 'cannot call none', calleeSpan);
      default:
        this.error('SORA3001', `${typeName(callee)} is not callable`, calleeSpan);
    }
  }

  /** A module call under Interp.replays: trace it (first two calls of its kind) or replay the second one. */
  private callReplayed(inst: Instance, decl: A.ModuleDecl, fwd: Value, pos: { v: Value; span: Span }[], kw: Map<string, { v: Value; span: Span; name?: A.Ident }>, span: Span, calleeSpan: Span): Value {
    const g = this.graph!;
    const k = callKey(inst, pos, kw, this.compute, true);
    if (k === undefined) return this.apply(fwd, pos, kw, span, calleeSpan);
    const src = g.source;
    const key = `${g.scope}|${src ? `${src.file}:${src.line}:${src.col}` : ''}|${k}`;
    let byDecl = this.replays!.get(decl);
    if (!byDecl) this.replays!.set(decl, (byDecl = new Map()));
    const entry = byDecl.get(key);
    if (!entry) {
      // the first call: caches (constants, dimension scalars) fill here, so it is not the one to record
      byDecl.set(key, {});
      return this.apply(fwd, pos, kw, span, calleeSpan);
    }
    if (!entry.recorded) {
      const mark = g.beginRecording();
      const diags = this.diags.length;
      const annotations = JSON.stringify(g.annotations);
      let r: Value | undefined;
      try {
        r = this.apply(fwd, pos, kw, span, calleeSpan);
        return r;
      } finally {
        const uses: IrValue[] = [];
        const why = r === undefined ? 'the call failed' : this.diags.length !== diags ? 'the call reported diagnostics' : JSON.stringify(g.annotations) !== annotations ? 'the call annotated the graph' : !collectTensors(r, uses) ? 'the call returns values other than tensors and scalars' : undefined;
        entry.recorded = { tape: g.endRecording(mark, inst.path, uses, why), args: argValues(pos, kw), result: r ?? NONE };
      }
    }
    const rec = entry.recorded;
    if (rec.tape.unreplayable === undefined) {
      const inputs = new Map<IrValue, IrValue>();
      if (pairTensors(rec.args, argValues(pos, kw), inputs)) {
        const m = g.replay(rec.tape, inputs, inst.path);
        if (m) return mapTensors(rec.result, m);
      }
    }
    return this.apply(fwd, pos, kw, span, calleeSpan);
  }

  bindArgs(params: readonly A.Param[], owner: string, pos: { v: Value; span: Span }[], kw: Map<string, { v: Value; span: Span; name?: A.Ident }>, span: Span): Map<string, Value> {
    const out = new Map<string, Value>();
    if (pos.length > params.length)
      this.error('SORA2006', `${owner} takes ${params.length} argument${params.length === 1 ? '' : 's'} but ${pos.length} were given`, pos[params.length]!.span, { hint: `parameters: ${params.map((p) => p.name.name).join(', ')}` });
    pos.forEach((a, i) => out.set(params[i]!.name.name, withOrigin(a.v, { span: a.span })));
    for (const [k, a] of kw) {
      const p = params.find((x) => x.name.name === k);
      if (!p) this.error('SORA2007', `${owner} has no parameter "${k}"`, a.name?.span ?? a.span, { hint: suggest(k, params.map((x) => x.name.name)) ?? `parameters: ${params.map((p) => p.name.name).join(', ')}` });
      if (out.has(k)) this.error('SORA2002', `argument "${k}" given both by position and by keyword`, a.span);
      out.set(k, withOrigin(a.v, { span: a.span }));
    }
    return out;
  }

  callFn(decl: A.FnDecl, file: LoadedFile, self: Instance | undefined, pos: { v: Value; span: Span }[], kw: Map<string, { v: Value; span: Span; name?: A.Ident }>, span: Span, opts: { entryInputs?: boolean; entrySymbols?: ReadonlyMap<string, Sym> } = {}): Value {
    if (++this.depth > MAX_CALL_DEPTH) this.error('SORA2011', `${decl.name.name} calls itself too deeply`, span);
    const savedScope = this.graph?.scope;
    try {
      const owner = self?.decl ? `${self.decl.name.name}.${decl.name.name}` : decl.name.name;
      const args = this.bindArgs(decl.params, owner, pos, kw, span);
      const vars = new Map<string, Value>();
      const frame: Frame = { vars, ...(self ? { self } : {}), file };
      const symEnv = new Map<string, Sym>();
      for (const p of decl.params) {
        let v = args.get(p.name.name);
        if (v === undefined) {
          if (!p.default) {
            if (p.type?.optional) v = NONE;
            else this.error('SORA2008', `missing argument "${p.name.name}" for ${owner}`, span, { related: [{ span: p.span, message: 'parameter declared here' }] });
          } else v = this.evalExpr(p.default, frame);
        }
        // entry inputs were built from their declared types by traceEntry (symbols in entrySymbols)
        if (p.type && v.k !== 'none' && !opts.entrySymbols) v = this.matchType(v, p, owner, symEnv, frame, span, opts.entryInputs === true);
        vars.set(p.name.name, v);
        this.observe?.(p.name.span, v);
      }
      for (const [k, s] of opts.entrySymbols ?? []) symEnv.set(k, s);
      for (const [k, s] of symEnv) if (!vars.has(k)) vars.set(k, dimValue(s));
      if (this.graph && self) this.graph.scope = self.path;
      // dtype islands: a module whose path the policy computes in another dtype
      const outer = this.compute;
      const island = self && this.graph ? this.islandDtype(self.path) : undefined;
      if (island && island.dtype !== outer) {
        for (const [k, v] of vars) if (v.k === 'tensor' && isFloat(v.t.dtype) && v.t.dtype !== island.dtype) vars.set(k, { k: 'tensor', t: ops.cast(this.bctx(span), v.t, island.dtype, `${island.why}: ${self!.path} computes in ${island.dtype}`) });
        this.compute = island.dtype;
      }
      let r: Value | undefined;
      try {
        r = this.execBlock(decl.body.stmts, frame);
      } finally {
        this.compute = outer;
      }
      if (island && island.dtype !== outer && r) {
        const back = (v: Value): Value => (v.k === 'tensor' && isFloat(v.t.dtype) && v.t.dtype === island.dtype ? { k: 'tensor', t: ops.cast(this.bctx(span), v.t, outer, `leaving ${island.why} ${self!.path}`) } : v);
        r = r.k === 'tuple' ? { k: 'tuple', items: r.items.map(back) } : back(r);
      }
      const result = r ?? NONE;
      if (decl.ret && result.k !== 'none') this.checkReturn(decl, result, symEnv, frame, opts.entryInputs === true);
      return result;
    } finally {
      this.depth--;
      if (this.graph && savedScope !== undefined) this.graph.scope = savedScope;
    }
  }

  /** Match an argument against a declared parameter type, binding shape symbols. */
  matchType(v: Value, p: A.Param, owner: string, symEnv: Map<string, Sym>, frame: Frame, callSpan: Span, skipDtype = false): Value {
    const t = p.type!;
    const name = t.name?.name;
    if (!t.dims || (name && !isDType(name) && name !== 'Tensor')) {
      // scalar / list types use the same checks as module parameters
      return this.checkParamType(v, p, owner, callSpan);
    }
    if (v.k !== 'tensor' && v.k !== 'slot') this.error('SORA3001', `${owner}: "${p.name.name}" must be a tensor, got ${typeName(v)}`, originSpan(v) ?? callSpan, { related: [{ span: p.span, message: 'declared here' }] });
    const tensor = this.tensorOf(v, callSpan);
    // entry inputs were already typed (and possibly cast by the dtype policy) by traceEntry
    if (!skipDtype && name && isDType(name) && tensor.dtype !== name)
      this.error('SORA3008', `${owner}: "${p.name.name}" must be ${name}, got ${tensor.dtype}`, callSpan, { related: [{ span: t.span, message: 'declared here' }], hint: `cast it with cast(x, ${name})` });
    this.matchDims(tensor.shape, t.dims, symEnv, frame, `${owner}: "${p.name.name}"`, callSpan, t.span);
    return { k: 'tensor', t: tensor };
  }

  matchDims(shape: readonly Sym[], dims: readonly A.DimSpec[], symEnv: Map<string, Sym>, frame: Frame, what: string, callSpan: Span, declSpan: Span): void {
    const ell = dims.findIndex((d) => d.kind === 'ellipsis');
    const fixed = dims.filter((d) => d.kind !== 'ellipsis').length;
    const fmt = () => `[${shape.map(String).join(', ')}]`;
    if (ell < 0 ? shape.length !== fixed : shape.length < fixed)
      this.error('SORA3004', `${what} expects rank ${ell < 0 ? fixed : `>= ${fixed}`}, got a tensor of shape ${fmt()}`, callSpan, { related: [{ span: declSpan, message: 'declared here' }] });
    const pairs: [A.DimSpec, Sym][] = [];
    dims.forEach((d, i) => {
      if (d.kind === 'ellipsis') return;
      const axis = ell >= 0 && i > ell ? shape.length - (dims.length - i) : i;
      pairs.push([d, shape[axis]!]);
    });
    for (const [d, actual] of pairs) {
      if (d.kind === 'wildcard') continue;
      const e = d as A.Expr;
      if (e.kind === 'name' && !this.isBound(e.name, frame) && !symEnv.has(e.name)) {
        symEnv.set(e.name, actual);
        continue;
      }
      if (e.kind === 'name' && symEnv.has(e.name)) {
        if (!symEnv.get(e.name)!.equals(actual)) this.error('SORA3002', `${what}: dimension ${e.name} is ${actual} here but ${symEnv.get(e.name)} earlier`, callSpan, { related: [{ span: e.span, message: 'declared here' }] });
        continue;
      }
      const want = this.evalExpr(e, { ...frame, vars: new Map([...frame.vars, ...[...symEnv].map(([k, s]) => [k, dimValue(s)] as [string, Value])]) });
      const ws = want.k === 'int' ? Sym.const(want.v) : want.k === 'dim' ? want.s : undefined;
      if (!ws) this.error('SORA3010', `dimension must be an int, got ${typeName(want)}`, e.span);
      if (!ws.equals(actual))
        this.error('SORA3002', `${what} has shape ${fmt()}: expected ${exprText(e, frame.file)} = ${ws} but got ${actual}`, callSpan, { related: [{ span: e.span, message: 'expected here' }, ...relatedFor(e, frame)] });
    }
  }

  private isBound(name: string, f: Frame): boolean {
    if (f.vars.has(name)) return true;
    if (f.self && (f.self.env.has(name) || f.self.members.has(name))) return true;
    return !!this.global(f.file, name);
  }

  private checkReturn(decl: A.FnDecl, result: Value, symEnv: Map<string, Sym>, frame: Frame, entry = false): void {
    const specs = decl.ret!;
    const vals = specs.length > 1 ? (result.k === 'tuple' ? result.items : [result]) : [result];
    if (vals.length !== specs.length) this.error('SORA3013', `${decl.name.name} declares ${specs.length} outputs but returns ${vals.length}`, decl.name.span);
    specs.forEach((s, i) => {
      const v = vals[i]!;
      if (!s.type.dims) return;
      if (v.k !== 'tensor') this.error('SORA3013', `${decl.name.name}: output ${s.name?.name ?? i} must be a tensor, got ${typeName(v)}`, s.span);
      const name = s.type.name?.name;
      // entry outputs are cast to their declared dtype by traceEntry (a declared conversion)
      if (!entry && name && isDType(name) && v.t.dtype !== name) this.error('SORA3013', `${decl.name.name}: output ${s.name?.name ?? i} is ${v.t.dtype} but declared ${name}`, s.span, { hint: `cast it before returning: cast(x, ${name})` });
      this.matchDims(v.t.shape, s.type.dims, symEnv, frame, `${decl.name.name}: output ${s.name?.name ?? i}`, s.span, s.span);
    });
  }

  /** Execute statements; returns the value of the first `return` reached. */
  execBlock(stmts: readonly A.Stmt[], f: Frame): Value | undefined {
    for (const s of stmts) {
      this.setSource(s.span);
      switch (s.kind) {
        case 'let':
          this.bindLet(f.vars, s, this.evalExpr(s.value, f));
          break;
        case 'assign': {
          if (!f.vars.has(s.target.name)) this.error('SORA2001', `"${s.target.name}" is not a local variable`, s.target.span, { hint: `declare it first with let ${s.target.name} = ...` });
          let v = this.evalExpr(s.value, f);
          if (s.op !== '=') v = this.binary(s.op[0] as A.BinaryOp, f.vars.get(s.target.name)!, v, s.span);
          f.vars.set(s.target.name, v);
          this.observe?.(s.target.span, v);
          break;
        }
        case 'if': {
          let branch: A.Block | A.IfStmt | undefined = s;
          while (branch && 'kind' in branch && branch.kind === 'if') {
            const b: A.IfStmt = branch;
            if (this.truthy(this.evalExpr(b.cond, f), b.cond.span)) {
              branch = b.then;
              break;
            }
            branch = b.else;
          }
          if (branch) {
            const r = this.execBlock((branch as A.Block).stmts, f);
            if (r !== undefined) return r;
          }
          break;
        }
        case 'for': {
          for (const it of this.iterate(this.evalExpr(s.iter, f), s.iter.span)) {
            f.vars.set(s.name.name, it);
            this.observe?.(s.name.span, it);
            const r = this.execBlock(s.body.stmts, f);
            if (r !== undefined) return r;
          }
          break;
        }
        case 'return':
          return s.values.length === 1 ? this.evalExpr(s.values[0]!, f) : { k: 'tuple', items: s.values.map((x) => this.evalExpr(x, f)) };
        case 'assert':
          this.runAssert(s, f, f.self);
          break;
        case 'expr':
          this.evalExpr(s.expr, f);
          break;
      }
    }
    return undefined;
  }

  // ---- arithmetic -----------------------------------------------------------------------------
  binary(op: A.BinaryOp, l: Value, r: Value, span: Span, lspan?: Span, rspan?: Span): Value {
    if (op === 'is' || op === 'is not') {
      const same = (l.k === 'none') === (r.k === 'none') && (l.k === 'none' || sameScalar(l, r));
      return { k: 'bool', v: op === 'is' ? same : !same };
    }
    if (op === 'in') {
      if (r.k !== 'list' && r.k !== 'tuple') this.error('SORA3001', `"in" needs a list on the right, got ${typeName(r)}`, span);
      return { k: 'bool', v: r.items.some((x) => sameScalar(x, l)) };
    }
    const isT = (v: Value) => v.k === 'tensor' || v.k === 'slot';
    if (isT(l) || isT(r)) return { k: 'tensor', t: ops.binaryValues(this.bctx(span), op, l, r, lspan ?? span, rspan ?? span) };
    // symbolic dims
    if (l.k === 'dim' || r.k === 'dim') return this.dimArith(op, l, r, span);
    if (l.k === 'str' && r.k === 'str') {
      if (op === '+') return { k: 'str', v: l.v + r.v };
      if (op === '==' || op === '!=') return { k: 'bool', v: (l.v === r.v) === (op === '==') };
    }
    if ((l.k === 'list' || l.k === 'tuple') && (r.k === 'list' || r.k === 'tuple')) {
      if (op === '+') return { k: 'list', items: [...l.items, ...r.items] };
      if (op === '==' || op === '!=') return { k: 'bool', v: (JSON.stringify(l.items.map(scalarOf)) === JSON.stringify(r.items.map(scalarOf))) === (op === '==') };
    }
    if ((l.k === 'list' || l.k === 'tuple') && r.k === 'int' && op === '*') return { k: 'list', items: Array.from({ length: r.v }, () => l.items).flat() };
    if (l.k === 'bool' && r.k === 'bool' && (op === '==' || op === '!=')) return { k: 'bool', v: (l.v === r.v) === (op === '==') };
    if ((l.k === 'int' || l.k === 'float' || l.k === 'bool') && (r.k === 'int' || r.k === 'float' || r.k === 'bool')) {
      const a = Number(l.v);
      const b = Number(r.v);
      const bothInt = l.k !== 'float' && r.k !== 'float';
      const origin = (l as { origin?: Origin }).origin ?? (r as { origin?: Origin }).origin;
      const num = (v: number, int: boolean): Value => (int ? { k: 'int', v, ...(origin ? { origin } : {}) } : { k: 'float', v, ...(origin ? { origin } : {}) });
      switch (op) {
        case '+': return num(a + b, bothInt);
        case '-': return num(a - b, bothInt);
        case '*': return num(a * b, bothInt);
        case '/':
          if (b === 0) this.error('SORA3014', 'division by zero', span, { related: rspan ? [{ span: rspan, message: 'this is 0' }] : [] });
          return num(a / b, false);
        case '//':
          if (b === 0) this.error('SORA3014', 'division by zero', span);
          return num(Math.floor(a / b), bothInt);
        case '%':
          if (b === 0) this.error('SORA3014', 'modulo by zero', span);
          return num(((a % b) + b) % b, bothInt);
        case '**': return num(a ** b, bothInt && b >= 0);
        case '==': return { k: 'bool', v: a === b };
        case '!=': return { k: 'bool', v: a !== b };
        case '<': return { k: 'bool', v: a < b };
        case '<=': return { k: 'bool', v: a <= b };
        case '>': return { k: 'bool', v: a > b };
        case '>=': return { k: 'bool', v: a >= b };
        default: break;
      }
    }
    if (op === '==' || op === '!=') return { k: 'bool', v: (sameScalar(l, r)) === (op === '==') };
    this.error('SORA3001', `cannot apply "${op}" to ${typeName(l)} and ${typeName(r)}`, span);
  }

  private dimArith(op: A.BinaryOp, l: Value, r: Value, span: Span): Value {
    const toSym = (v: Value): Sym | undefined => (v.k === 'dim' ? v.s : v.k === 'int' ? Sym.const(v.v) : undefined);
    const a = toSym(l);
    const b = toSym(r);
    if (!a || !b) {
      // dim with float: becomes a runtime scalar tensor
      const fl = l.k === 'float' || r.k === 'float';
      if (fl) return { k: 'tensor', t: ops.binaryValues(this.bctx(span), op, l, r, span, span) };
      this.error('SORA3001', `cannot apply "${op}" to ${typeName(l)} and ${typeName(r)}`, span);
    }
    const bv = b.value();
    switch (op) {
      case '+': return dimValue(a.add(b));
      case '-': return dimValue(a.sub(b));
      case '*': return dimValue(a.mul(b));
      case '//':
        if (bv === undefined) this.error('SORA3011', 'can only floor-divide a dimension by a constant', span);
        if (bv <= 0) this.error('SORA3014', 'division by zero or a negative number', span);
        return dimValue(a.floorDiv(bv));
      case '%':
        if (bv === undefined || bv <= 0) this.error('SORA3011', 'can only take a dimension modulo a positive constant', span);
        return dimValue(a.mod(bv));
      case '/': {
        const q = a.divExact(b);
        if (q) return dimValue(q);
        return { k: 'tensor', t: ops.binaryValues(this.bctx(span), op, l, r, span, span) };
      }
      case '==': case '!=': {
        if (a.equals(b)) return { k: 'bool', v: op === '==' };
        if (a.isConst() && b.isConst()) return { k: 'bool', v: op === '!=' };
        this.error('SORA3011', `cannot decide ${a} ${op} ${b} at compile time`, span, { hint: 'compare shapes that are known, or use where() on tensors' });
      }
      default:
        this.error('SORA3011', `cannot apply "${op}" to symbolic dimensions at compile time`, span);
    }
  }

  /** The compute dtype a module instance runs in, when the policy makes it an island. */
  islandDtype(path: string): { dtype: DType; why: string } | undefined {
    if (!path) return undefined;
    for (const m of this.policy.modules) if (pathGlob(m.glob).test(path)) return { dtype: m.dtype, why: `dtype rule modules "${m.glob}"` };
    for (const g of this.policy.f32Modules) if (pathGlob(g).test(path)) return { dtype: 'f32', why: `f32 island "${g}"` };
    return undefined;
  }

  tensorOf(v: Value, span: Span): Tensor {
    if (v.k === 'tensor') return v.t;
    if (v.k === 'slot') return ops.loadSlot(this.bctx(span), v.slot);
    this.error('SORA3001', `expected a tensor, got ${typeName(v)}`, span);
  }

  bctx(span: Span): BuiltinCtx {
    const self = this;
    return {
      interp: this,
      span,
      policy: this.policy,
      get compute() {
        return self.compute;
      },
      get g() {
        if (!self.graph) return self.error('SORA3011', 'tensor operations are only allowed inside fn/entry bodies', span, { hint: 'config-level code (lets, shapes, asserts) works on ints, floats and bools only' });
        return self.graph;
      },
    };
  }
}

// ---- helpers ------------------------------------------------------------------------------------

export function paramsOf(decl: A.ModuleDecl): readonly A.Param[] {
  if (decl.params.length) return decl.params;
  const cfg = decl.members.find((m) => m.kind === 'config') as A.ConfigBlock | undefined;
  return cfg?.fields ?? [];
}

export function joinPath(a: string, b: string): string {
  return a ? `${a}.${b}` : b;
}

function withOrigin(v: Value, o: Origin): Value {
  if ((v.k === 'int' || v.k === 'float' || v.k === 'bool' || v.k === 'str' || v.k === 'list') && !v.origin) return { ...v, origin: o };
  return v;
}

function originSpan(v: Value): Span | undefined {
  return 'origin' in v ? v.origin?.span : undefined;
}

function scalarOf(v: Value): unknown {
  return v.k === 'int' || v.k === 'float' || v.k === 'bool' || v.k === 'str' ? v.v : v.k === 'none' ? null : v.k === 'dtype' ? v.d : v.k === 'list' || v.k === 'tuple' ? v.items.map(scalarOf) : v.k;
}

function sameScalar(a: Value, b: Value): boolean {
  if (a.k === 'dim' || b.k === 'dim') return a.k === b.k && (a as { s: Sym }).s.equals((b as { s: Sym }).s);
  return JSON.stringify(scalarOf(a)) === JSON.stringify(scalarOf(b));
}

export function exprText(e: A.Expr | A.DimSpec, file: LoadedFile): string {
  return file.text.slice(e.span.start.offset, e.span.end.offset);
}

/** Related locations for every name used in an expression: where each value was set. */
function relatedFor(e: A.Expr, f: Frame): RelatedInfo[] {
  const out: RelatedInfo[] = [];
  const seen = new Set<string>();
  const walk = (x: A.Expr) => {
    if (x.kind === 'name' && !seen.has(x.name)) {
      seen.add(x.name);
      let v: Value | undefined;
      try {
        v = f.vars.get(x.name) ?? f.self?.env.get(x.name);
      } catch {
        v = undefined;
      }
      if (v && 'origin' in v && v.origin) {
        const shown = v.k === 'int' || v.k === 'float' || v.k === 'bool' ? String(v.v) : typeName(v);
        if (v.origin.span) out.push({ span: v.origin.span, message: `${x.name} = ${shown}${v.origin.label ? ` (${v.origin.label})` : ''} comes from here` });
        else if (v.origin.label) out.push({ span: x.span, message: `${x.name} = ${shown} from ${v.origin.label}` });
      }
    }
    for (const k of Object.keys(x) as (keyof typeof x)[]) {
      const c = x[k] as unknown;
      if (c && typeof c === 'object' && 'kind' in (c as object) && k !== 'span') walk(c as A.Expr);
      if (Array.isArray(c)) for (const it of c) if (it && typeof it === 'object' && 'kind' in it) walk(it as A.Expr);
    }
  };
  walk(e);
  return out;
}

export { isFloat };

/**
 * What a module call's result depends on, as a string (Interp.memo): the instance's parameters (which
 * decide its members), the arguments' kinds, dtypes and symbolic shapes, and the compute dtype.
 * undefined when a value cannot be keyed (then the call is traced).
 */
function callKey(inst: Instance, pos: readonly { v: Value }[], kw: ReadonlyMap<string, { v: Value }>, compute: DType, strict = false): string | undefined {
  const parts: string[] = [compute];
  let ok = true;
  // strict (Interp.replays): modules and slots other than the callee are keyed by where they are too,
  // since a replay reuses their weights
  const key = (v: Value, depth: number, callee = false): string => {
    if (depth > 8) {
      ok = false;
      return '';
    }
    switch (v.k) {
      case 'int':
      case 'float':
      case 'bool':
      case 'str':
        return `${v.k}:${JSON.stringify(v.v)}`;
      case 'none':
        return 'none';
      case 'dim':
        return `dim:${v.s.toString()}`;
      case 'dtype':
        return `dtype:${v.d}`;
      case 'tensor':
        return `t:${v.t.dtype}[${v.t.shape.map(String).join(',')}]`;
      case 'slot':
        return `s:${v.slot.dtype}[${v.slot.shape.join(',')}]${strict ? `@${v.slot.key}` : ''}`;
      case 'list':
      case 'tuple':
        return `${v.k}(${v.items.map((x) => key(x, depth + 1)).join(';')})`;
      case 'module':
        if (!v.inst.decl) {
          ok = false;
          return '';
        }
        return `m:${v.inst.decl.name.name}@${v.inst.decl.span.file}:${v.inst.decl.span.start.offset}${strict && !callee ? `@${v.inst.path}` : ''}{${[...v.inst.env].map(([k, x]) => `${k}=${key(x, depth + 1)}`).join(',')}}`;
      default:
        ok = false;
        return '';
    }
  };
  parts.push(key({ k: 'module', inst }, 0, true));
  for (const a of pos) parts.push(key(a.v, 0));
  for (const [k, a] of kw) parts.push(`${k}=${key(a.v, 0)}`);
  return ok ? parts.join('|') : undefined;
}
/** A module call kind under Interp.replays: seen once, or traced a second time and recorded. */
interface ReplayEntry {
  recorded?: { readonly tape: Tape; readonly args: readonly Value[]; readonly result: Value };
}

function argValues(pos: readonly { v: Value }[], kw: ReadonlyMap<string, { v: Value }>): Value[] {
  const out = pos.map((a) => a.v);
  for (const [, a] of kw) out.push(a.v);
  return out;
}

/** The IR values of the tensors in v (tuples, lists); false if v holds anything but tensors and plain values. */
function collectTensors(v: Value, out: IrValue[]): boolean {
  switch (v.k) {
    case 'tensor':
      out.push(v.t.ir);
      return true;
    case 'list':
    case 'tuple':
      return v.items.every((x) => collectTensors(x, out));
    case 'int':
    case 'float':
    case 'bool':
    case 'str':
    case 'none':
    case 'dim':
    case 'dtype':
      return true;
    default:
      return false;
  }
}

/** Pair the tensors of a recorded call's arguments with this call's (same structure: the call keys are equal). */
function pairTensors(rec: readonly Value[], cur: readonly Value[], out: Map<IrValue, IrValue>): boolean {
  if (rec.length !== cur.length) return false;
  for (let i = 0; i < rec.length; i++) {
    const a = rec[i]!;
    const b = cur[i]!;
    if (a.k !== b.k) return false;
    if (a.k === 'tensor') {
      const prev = out.get(a.t.ir);
      const bt = (b as { t: Tensor }).t.ir;
      if (prev !== undefined && prev !== bt) return false;
      out.set(a.t.ir, bt);
    } else if (a.k === 'list' || a.k === 'tuple') {
      if (!pairTensors(a.items, (b as { items: readonly Value[] }).items, out)) return false;
    }
  }
  return true;
}

function mapTensors(v: Value, m: (x: IrValue) => IrValue): Value {
  if (v.k === 'tensor') return { k: 'tensor', t: { ...v.t, ir: m(v.t.ir) } };
  if (v.k === 'list') return { ...v, items: v.items.map((x) => mapTensors(x, m)) };
  if (v.k === 'tuple') return { k: 'tuple', items: v.items.map((x) => mapTensors(x, m)) };
  return v;
}
