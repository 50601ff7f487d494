/**
 * Tracing one entry point of a compiled model into a graph: the entry's tensor inputs become graph
 * inputs with symbolic dimensions, the forward body is evaluated by a fresh interpreter over the
 * model's (read-only) instance tree, and the outputs are cast as the dtype policy says. Each call
 * has its own interpreter, so traces are independent and reentrant.
 */
import type * as A from '../grammar/ast.ts';
import { type Diagnostic, type Span, diag } from '../core/diagnostics.ts';
import { type DType, isDType, isFloat } from '../core/dtype.ts';
import type { IrValue } from '../core/ir.ts';
import { GraphBuilder } from './graph.ts';
import { Abort, Interp } from './interp.ts';
import { type CompiledModel, internalsOf, type TraceOptions, type TraceResult } from './model.ts';
import * as ops from './ops.ts';
import { type LoadedFile, suggest } from './program.ts';
import { Sym } from './sym.ts';
import { type Instance, type Value, NONE, dimValue, typeName } from './values.ts';

/** Trace one entry point into a graph. */
export function traceEntry(model: CompiledModel, entry: string, opts: TraceOptions = {}): TraceResult {
  const internal = internalsOf(model);
  const diagnostics: Diagnostic[] = [];
  if (!internal || !model.keymap || !model.policy) return { diagnostics: [diag('SORA2010', 'model did not compile', undefined)] };
  const root = internal.root;
  const info = model.entries.find((e) => e.name === entry);
  if (!info) return { diagnostics: [diag('SORA2010', `model ${model.modelName} has no entry "${entry}"`, undefined, { hint: suggest(entry, model.entries.map((e) => e.name)) ?? `entries: ${model.entries.map((e) => e.name).join(', ')}` })] };
  const g = new GraphBuilder(entry === 'forward' ? model.modelName! : `${model.modelName}.${entry}`, opts.opset ?? 17);
  // a fresh interpreter per trace: the instance tree is only read, so traces never see each other
  const interp = new Interp(model.program);
  interp.policy = model.policy;
  interp.compute = model.policy.compute;
  interp.graph = g;
  interp.observe = opts.observe;
  interp.memo = opts.memo;
  // repeated module calls replayed, not traced again (not with the check-only memo or an observer)
  if (opts.replay !== false && !opts.memo && !opts.observe) interp.replays = new Map();
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
        if (symbolic && opts.bind?.[symbolic.name] !== undefined) {
          // a symbol the caller fixes: the dimension (and everything computed from it) is concrete
          const n = opts.bind[symbolic.name]!;
          const size = n * symbolic.divisor + symbolic.offset;
          dims.push(Sym.const(size));
          irDims.push(size);
          symSeen.add(symbolic.name);
          g.fixed.add(symbolic.name);
          symVars.set(symbolic.name, { k: 'int', v: n });
          return;
        }
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
      if (model.policy!.inputs === 'cast' && isFloat(declared) && declared !== model.policy!.compute && !model.policy!.uncast.includes(p.name.name)) {
        tensor = ops.cast(interp.bctx(p.span), tensor, model.policy!.compute, `input ${p.name.name}: ${declared} -> compute ${model.policy!.compute} (dtype rule inputs: cast)`);
      }
      pos.push({ v: { k: 'tensor', t: tensor }, span: p.span });
    }
    const entrySymbols = new Map<string, Sym>();
    for (const [k, v] of symVars) if (v.k === 'dim') entrySymbols.set(k, v.s);
    else if (v.k === 'int') entrySymbols.set(k, Sym.const(v.v));
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
