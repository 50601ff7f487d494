/**
 * Builtin functions of the .sora language: compile-time helpers (range, len, min, ...) and
 * the primitive tensor ops the Open-Sora models need. Higher-level layers (Linear, Attention,
 * norms, embedders) are written in .sora in std/, on top of these.
 */
import type { Ident } from '../grammar/ast.ts';
import type { Span } from '../core/diagnostics.ts';
import { type DType, isFloat, isInt } from '../core/dtype.ts';
import type { GraphBuilder } from './graph.ts';
import type { DtypePolicy, Interp } from './interp.ts';
import { dimValue } from './interp.ts';
import * as ops from './ops.ts';
import { rearrange } from './rearrange.ts';
import { Sym } from './sym.ts';
import { type Tensor, type Value, NONE, typeName } from './values.ts';

export interface BuiltinCtx {
  readonly interp: Interp;
  readonly g: GraphBuilder;
  readonly span: Span;
  readonly policy: DtypePolicy;
  /** the compute dtype in effect at this call (policy compute, or an island's) */
  readonly compute: DType;
}

type Arg = { v: Value; span: Span; name?: Ident };
export type Builtin = (ctx: BuiltinCtx, pos: Arg[], kw: Map<string, Arg>) => Value;

/** Bind builtin arguments by a parameter list; names ending in `?` are optional. */
function sig(ctx: BuiltinCtx, name: string, pos: Arg[], kw: Map<string, Arg>, params: string[]): Record<string, Arg | undefined> {
  const names = params.map((p) => p.replace(/\?$/, ''));
  const out: Record<string, Arg | undefined> = {};
  if (pos.length > params.length) ctx.interp.error('SORA2006', `${name}() takes at most ${params.length} arguments (${names.join(', ')}), got ${pos.length}`, pos[params.length]!.span);
  pos.forEach((a, i) => (out[names[i]!] = a));
  for (const [k, a] of kw) {
    if (!names.includes(k)) ctx.interp.error('SORA2007', `${name}() has no parameter "${k}"`, a.name?.span ?? a.span, { hint: `parameters: ${names.join(', ')}` });
    if (out[k]) ctx.interp.error('SORA2002', `${name}(): "${k}" given twice`, a.span);
    out[k] = a;
  }
  params.forEach((p, i) => {
    if (!p.endsWith('?') && (!out[names[i]!] || out[names[i]!]!.v.k === 'none') && out[names[i]!]?.v.k !== 'none')
      ctx.interp.error('SORA2008', `${name}() is missing argument "${names[i]}"`, ctx.span, { hint: `${name}(${names.join(', ')})` });
  });
  return out;
}

const T = (ctx: BuiltinCtx, a: Arg | undefined): Tensor => ctx.interp.tensorOf(a!.v, a!.span);
const Topt = (ctx: BuiltinCtx, a: Arg | undefined): Tensor | undefined => (a && a.v.k !== 'none' ? T(ctx, a) : undefined);
function I(ctx: BuiltinCtx, a: Arg | undefined, d?: number): number {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing integer argument', ctx.span);
    return d;
  }
  if (a.v.k === 'int') return a.v.v;
  if (a.v.k === 'dim' && a.v.s.value() !== undefined) return a.v.s.value()!;
  return ctx.interp.error('SORA3011', `expected an int known at compile time, got ${typeName(a.v)}`, a.span);
}
function F(ctx: BuiltinCtx, a: Arg | undefined, d?: number): number {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing number argument', ctx.span);
    return d;
  }
  if (a.v.k === 'int' || a.v.k === 'float') return a.v.v;
  return ctx.interp.error('SORA3011', `expected a number known at compile time, got ${typeName(a.v)}`, a.span);
}
function Bo(ctx: BuiltinCtx, a: Arg | undefined, d: boolean): boolean {
  if (!a || a.v.k === 'none') return d;
  if (a.v.k === 'bool') return a.v.v;
  return ctx.interp.error('SORA3001', `expected a bool, got ${typeName(a.v)}`, a.span);
}
function S(ctx: BuiltinCtx, a: Arg | undefined, d?: string): string {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing string argument', ctx.span);
    return d;
  }
  if (a.v.k === 'str') return a.v.v;
  return ctx.interp.error('SORA3001', `expected a string, got ${typeName(a.v)}`, a.span);
}
function Dt(ctx: BuiltinCtx, a: Arg | undefined, d?: DType): DType {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing dtype argument', ctx.span);
    return d;
  }
  if (a.v.k === 'dtype') return a.v.d;
  return ctx.interp.error('SORA3001', `expected a dtype (f32, bf16, i64, ...), got ${typeName(a.v)}`, a.span);
}
function listOf(ctx: BuiltinCtx, a: Arg | undefined): Value[] {
  if (!a) return [];
  if (a.v.k === 'list' || a.v.k === 'tuple') return [...a.v.items];
  return [a.v];
}
function ints(ctx: BuiltinCtx, a: Arg | undefined, d?: number[]): number[] {
  if (!a || a.v.k === 'none') {
    if (!d) ctx.interp.error('SORA2008', 'missing list argument', ctx.span);
    return d;
  }
  return listOf(ctx, a).map((v) => I(ctx, { v, span: a.span }));
}
function dims(ctx: BuiltinCtx, a: Arg): Sym[] {
  return listOf(ctx, a).map((v) => {
    if (v.k === 'int') return Sym.const(v.v);
    if (v.k === 'dim') return v.s;
    return ctx.interp.error('SORA3010', `a shape entry must be an int or a dimension, got ${typeName(v)}`, a.span);
  });
}
const tv = (t: Tensor): Value => ({ k: 'tensor', t });

/** Compile-time math on numbers, tensor op otherwise. */
function mathFn(onnx: string, f: (x: number) => number, needFloat = true): Builtin {
  return (ctx, pos, kw) => {
    const a = sig(ctx, onnx.toLowerCase(), pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'float') return { k: 'float', v: f(v.v) };
    const t = T(ctx, a.x);
    if (needFloat) ops.requireFloat(ctx, t, onnx);
    return tv(ops.unary(ctx, onnx, t));
  };
}

/** Compute `body` in f32 and cast back to x's dtype (the reference implementations' f32 islands). */
function f32Island(ctx: BuiltinCtx, x: Tensor, body: (x32: Tensor) => Tensor, why = 'f32 island'): Tensor {
  const x32 = x.dtype === 'f32' || x.dtype === 'f64' ? x : ops.cast(ctx, x, 'f32', why);
  const y = body(x32);
  return y.dtype === x.dtype ? y : ops.cast(ctx, y, x.dtype, `${why} (back)`);
}

/** Op-kind islands from the policy's `f32:` list (e.g. `f32: [softmax, layer_norm]`). */
function maybeIsland(ctx: BuiltinCtx, op: string, x: Tensor, body: (x: Tensor) => Tensor): Tensor {
  if (ctx.policy.f32Ops.has(op) && x.dtype !== 'f32' && isFloat(x.dtype)) return f32Island(ctx, x, body, `dtype rule f32: [${op}]`);
  return body(x);
}

function geluTanh(ctx: BuiltinCtx, x: Tensor): Tensor {
  const c = (v: number) => ops.scalar(ctx, v, x.dtype);
  const x3 = ops.binary(ctx, '*', ops.binary(ctx, '*', x, x), x);
  const inner = ops.binary(ctx, '*', c(Math.sqrt(2 / Math.PI)), ops.binary(ctx, '+', x, ops.binary(ctx, '*', c(0.044715), x3)));
  const th = ops.unary(ctx, 'Tanh', inner);
  return ops.binary(ctx, '*', ops.binary(ctx, '*', c(0.5), x), ops.binary(ctx, '+', c(1), th));
}

function geluErf(ctx: BuiltinCtx, x: Tensor): Tensor {
  const c = (v: number) => ops.scalar(ctx, v, x.dtype);
  const e = ops.unary(ctx, 'Erf', ops.binary(ctx, '*', x, c(Math.SQRT1_2)));
  return ops.binary(ctx, '*', ops.binary(ctx, '*', c(0.5), x), ops.binary(ctx, '+', c(1), e));
}

function lastDimCheck(ctx: BuiltinCtx, x: Tensor, w: Tensor | undefined, what: string) {
  if (!w) return;
  const d = x.shape[x.shape.length - 1]!;
  if (!w.shape[0]!.equals(d)) ctx.interp.error('SORA3002', `${what}: input's last dimension is ${d} but the weight has ${w.shape[0]}`, ctx.span);
}

export const BUILTINS: Record<string, Builtin> = {
  // ---- compile-time helpers ----
  range(ctx, pos, kw) {
    const a = sig(ctx, 'range', pos, kw, ['a', 'b?', 'step?']);
    const x = I(ctx, a.a);
    const [lo, hi] = a.b ? [x, I(ctx, a.b)] : [0, x];
    const st = I(ctx, a.step, 1);
    if (st === 0) ctx.interp.error('SORA3012', 'range() step must not be 0', ctx.span);
    const items: Value[] = [];
    for (let i = lo; st > 0 ? i < hi : i > hi; i += st) {
      items.push({ k: 'int', v: i });
      if (items.length > 1_000_000) ctx.interp.error('SORA3012', 'range() is too long', ctx.span);
    }
    return { k: 'list', items };
  },
  len(ctx, pos, kw) {
    const a = sig(ctx, 'len', pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'list' || v.k === 'tuple') return { k: 'int', v: v.items.length };
    if (v.k === 'str') return { k: 'int', v: v.v.length };
    if (v.k === 'tensor' || v.k === 'slot') return dimValue(T(ctx, a.x).shape[0]!);
    return ctx.interp.error('SORA3001', `len() of ${typeName(v)}`, a.x!.span);
  },
  int(ctx, pos, kw) {
    const a = sig(ctx, 'int', pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'dim') return v;
    if (v.k === 'float') return { k: 'int', v: Math.trunc(v.v) };
    if (v.k === 'bool') return { k: 'int', v: v.v ? 1 : 0 };
    if (v.k === 'tensor' || v.k === 'slot') return tv(ops.cast(ctx, T(ctx, a.x), 'i64'));
    return ctx.interp.error('SORA3001', `int() of ${typeName(v)}`, a.x!.span);
  },
  float(ctx, pos, kw) {
    const a = sig(ctx, 'float', pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'float') return { k: 'float', v: v.v };
    if (v.k === 'dim') return tv(ops.dimTensor(ctx, v.s, 'f32'));
    if (v.k === 'tensor' || v.k === 'slot') return tv(ops.cast(ctx, T(ctx, a.x), 'f32'));
    return ctx.interp.error('SORA3001', `float() of ${typeName(v)}`, a.x!.span);
  },
  min(ctx, pos, kw) {
    return minmax(ctx, pos, kw, 'min');
  },
  max(ctx, pos, kw) {
    return minmax(ctx, pos, kw, 'max');
  },
  prod(ctx, pos, kw) {
    const a = sig(ctx, 'prod', pos, kw, ['xs']);
    let acc: Sym = Sym.const(1);
    for (const v of listOf(ctx, a.xs)) {
      if (v.k === 'int') acc = acc.mul(v.v);
      else if (v.k === 'dim') acc = acc.mul(v.s);
      else ctx.interp.error('SORA3001', `prod() of ${typeName(v)}`, a.xs!.span);
    }
    return dimValue(acc);
  },
  round(ctx, pos, kw) {
    const a = sig(ctx, 'round', pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'int') return v;
    if (v.k === 'float') return { k: 'int', v: roundHalfEven(v.v) };
    return tv(ops.unary(ctx, 'Round', T(ctx, a.x)));
  },
  ceil: mathFn('Ceil', Math.ceil),
  floor: mathFn('Floor', Math.floor),
  sqrt: mathFn('Sqrt', Math.sqrt),
  exp: mathFn('Exp', Math.exp),
  log: mathFn('Log', Math.log),
  sin: mathFn('Sin', Math.sin),
  cos: mathFn('Cos', Math.cos),
  tanh: mathFn('Tanh', Math.tanh),
  erf: mathFn('Erf', (x) => x, true),
  sigmoid: mathFn('Sigmoid', (x) => 1 / (1 + Math.exp(-x))),
  relu: mathFn('Relu', (x) => Math.max(0, x)),
  abs: mathFn('Abs', Math.abs, false),
  neg: mathFn('Neg', (x) => -x, false),
  rsqrt(ctx, pos, kw) {
    const a = sig(ctx, 'rsqrt', pos, kw, ['x']);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'float') return { k: 'float', v: 1 / Math.sqrt(v.v) };
    const t = T(ctx, a.x);
    return tv(ops.unary(ctx, 'Reciprocal', ops.unary(ctx, 'Sqrt', t)));
  },
  dtype_min(ctx, pos, kw) {
    // torch.finfo(dtype).min: the large negative used for additive attention masks
    const a = sig(ctx, 'dtype_min', pos, kw, ['dtype']);
    const d = Dt(ctx, a.dtype);
    const MIN: Partial<Record<DType, number>> = { f32: -3.4028234663852886e38, f64: -Number.MAX_VALUE, bf16: -3.3895313892515355e38, f16: -65504 };
    if (MIN[d] === undefined) ctx.interp.error('SORA3012', `dtype_min needs a floating dtype, got ${d}`, a.dtype!.span);
    return { k: 'float', v: MIN[d]! };
  },
  compute_dtype(ctx, pos, kw) {
    // the compute dtype in effect here (the policy's, or the enclosing island's)
    sig(ctx, 'compute_dtype', pos, kw, []);
    return { k: 'dtype', d: ctx.compute };
  },
  // ---- shapes ----
  shape(ctx, pos, kw) {
    const a = sig(ctx, 'shape', pos, kw, ['x', 'dim?']);
    const t = T(ctx, a.x);
    if (a.dim) return dimValue(t.shape[ops.normAxis(ctx, I(ctx, a.dim), t.shape.length)]!);
    return { k: 'tuple', items: t.shape.map(dimValue) };
  },
  reshape(ctx, pos, kw) {
    const a = sig(ctx, 'reshape', pos, kw, ['x', 'shape']);
    const t = T(ctx, a.x);
    let ds = dims(ctx, a.shape!);
    const neg = ds.findIndex((d) => d.value() === -1);
    if (neg >= 0) {
      const known = ds.filter((_, i) => i !== neg).reduce((p, d) => p.mul(d), Sym.const(1));
      const q = ops.numel(t.shape).divExact(known);
      if (!q) ctx.interp.error('SORA3002', `cannot infer -1 in reshape of ${ops.fmtShape(t.shape)} to [${ds.join(', ')}]`, ctx.span);
      ds = ds.map((d, i) => (i === neg ? q! : d));
    }
    return tv(ops.reshape(ctx, t, ds));
  },
  flatten(ctx, pos, kw) {
    const a = sig(ctx, 'flatten', pos, kw, ['x', 'start?', 'end?']);
    const t = T(ctx, a.x);
    const r = t.shape.length;
    const s = ops.normAxis(ctx, I(ctx, a.start, 0), r);
    const e = ops.normAxis(ctx, I(ctx, a.end, -1), r);
    return tv(ops.reshape(ctx, t, [...t.shape.slice(0, s), ops.numel(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)]));
  },
  transpose(ctx, pos, kw) {
    const a = sig(ctx, 'transpose', pos, kw, ['x', 'a', 'b']);
    const t = T(ctx, a.x);
    const r = t.shape.length;
    const i = ops.normAxis(ctx, I(ctx, a.a), r);
    const j = ops.normAxis(ctx, I(ctx, a.b), r);
    const perm = [...Array(r).keys()];
    perm[i] = j;
    perm[j] = i;
    return tv(ops.transpose(ctx, t, perm));
  },
  permute(ctx, pos, kw) {
    const a = sig(ctx, 'permute', pos, kw, ['x', 'dims']);
    const t = T(ctx, a.x);
    const p = ints(ctx, a.dims).map((d) => ops.normAxis(ctx, d, t.shape.length));
    if (p.length !== t.shape.length || new Set(p).size !== p.length) ctx.interp.error('SORA3012', `permute([${p.join(', ')}]) is not a permutation of ${t.shape.length} axes`, ctx.span);
    return tv(ops.transpose(ctx, t, p));
  },
  unsqueeze(ctx, pos, kw) {
    const a = sig(ctx, 'unsqueeze', pos, kw, ['x', 'dim']);
    return tv(ops.unsqueeze(ctx, T(ctx, a.x), ints(ctx, a.dim)));
  },
  squeeze(ctx, pos, kw) {
    const a = sig(ctx, 'squeeze', pos, kw, ['x', 'dim']);
    return tv(ops.squeeze(ctx, T(ctx, a.x), ints(ctx, a.dim)));
  },
  expand(ctx, pos, kw) {
    const a = sig(ctx, 'expand', pos, kw, ['x', 'shape']);
    return tv(ops.expand(ctx, T(ctx, a.x), dims(ctx, a.shape!)));
  },
  concat(ctx, pos, kw) {
    const a = sig(ctx, 'concat', pos, kw, ['xs', 'dim?']);
    const ts = listOf(ctx, a.xs).map((v) => ctx.interp.tensorOf(v, a.xs!.span));
    return tv(ops.concat(ctx, ts, I(ctx, a.dim, 0)));
  },
  stack(ctx, pos, kw) {
    const a = sig(ctx, 'stack', pos, kw, ['xs', 'dim?']);
    const d = I(ctx, a.dim, 0);
    const ts = listOf(ctx, a.xs).map((v) => ctx.interp.tensorOf(v, a.xs!.span));
    const r = ts[0]!.shape.length + 1;
    const ax = d < 0 ? d + r : d;
    return tv(ops.concat(ctx, ts.map((t) => ops.unsqueeze(ctx, t, [ax])), ax));
  },
  split(ctx, pos, kw) {
    const a = sig(ctx, 'split', pos, kw, ['x', 'sizes', 'dim?']);
    const t = T(ctx, a.x);
    const ax = ops.normAxis(ctx, I(ctx, a.dim, 0), t.shape.length);
    let sizes: Sym[];
    if (a.sizes!.v.k === 'list' || a.sizes!.v.k === 'tuple') sizes = dims(ctx, a.sizes!);
    else {
      const each = I(ctx, a.sizes);
      const total = t.shape[ax]!;
      const n = total.divExact(Sym.const(each));
      const nv = n?.value();
      if (nv === undefined) ctx.interp.error('SORA3003', `split into pieces of ${each} needs a dimension that is a known multiple of ${each}, got ${total}`, ctx.span);
      sizes = Array.from({ length: nv! }, () => Sym.const(each));
    }
    return { k: 'tuple', items: ops.split(ctx, t, sizes, ax).map(tv) };
  },
  chunk(ctx, pos, kw) {
    const a = sig(ctx, 'chunk', pos, kw, ['x', 'n', 'dim?']);
    const t = T(ctx, a.x);
    const n = I(ctx, a.n);
    const ax = ops.normAxis(ctx, I(ctx, a.dim, 0), t.shape.length);
    const dim = t.shape[ax]!;
    if (!dim.divisibleBy(n)) ctx.interp.error('SORA3003', `chunk(${n}) of a dimension of size ${dim}: not divisible by ${n}`, ctx.span, { hint: 'pass sizes to split() for uneven pieces' });
    return { k: 'tuple', items: ops.split(ctx, t, Array.from({ length: n }, () => dim.floorDiv(n)), ax).map(tv) };
  },
  unbind(ctx, pos, kw) {
    const a = sig(ctx, 'unbind', pos, kw, ['x', 'dim?']);
    const t = T(ctx, a.x);
    const ax = ops.normAxis(ctx, I(ctx, a.dim, 0), t.shape.length);
    const n = t.shape[ax]!.value();
    if (n === undefined) ctx.interp.error('SORA3011', `unbind needs a dimension of known size, got ${t.shape[ax]}`, ctx.span);
    return { k: 'tuple', items: ops.split(ctx, t, Array.from({ length: n! }, () => Sym.const(1)), ax).map((p) => tv(ops.squeeze(ctx, p, [ax]))) };
  },
  rearrange(ctx, pos, kw) {
    const [x, pat, ...rest] = pos;
    if (!x || !pat || rest.length) ctx.interp.error('SORA2006', 'rearrange(x, "pattern", axis=size, ...) takes a tensor and a pattern', ctx.span);
    return tv(rearrange(ctx, T(ctx, x), S(ctx, pat), sizeArgs(ctx, kw)));
  },
  repeat(ctx, pos, kw) {
    const [x, pat, ...rest] = pos;
    if (!x || !pat || rest.length) ctx.interp.error('SORA2006', 'repeat(x, "pattern", axis=size, ...) takes a tensor and a pattern', ctx.span);
    return tv(rearrange(ctx, T(ctx, x), S(ctx, pat), sizeArgs(ctx, kw), 'repeat'));
  },
  pad(ctx, pos, kw) {
    // pad(x, [(before, after) per axis from the LAST axis backwards, like torch F.pad], mode, value)
    const a = sig(ctx, 'pad', pos, kw, ['x', 'pads', 'mode?', 'value?']);
    const t = T(ctx, a.x);
    const flat = listOf(ctx, a.pads).map((v) => (v.k === 'int' ? Sym.const(v.v) : v.k === 'dim' ? v.s : ctx.interp.error('SORA3010', `pad amounts must be ints or dimensions, got ${typeName(v)}`, a.pads!.span)));
    if (flat.length % 2 || flat.length / 2 > t.shape.length) ctx.interp.error('SORA3012', `pad() takes (before, after) pairs starting from the last axis, got ${flat.length} numbers for a rank-${t.shape.length} tensor`, ctx.span);
    const pairs: [Sym, Sym][] = t.shape.map(() => [Sym.const(0), Sym.const(0)]);
    for (let i = 0; i < flat.length / 2; i++) pairs[t.shape.length - 1 - i] = [flat[2 * i]!, flat[2 * i + 1]!];
    const mode = S(ctx, a.mode, 'constant');
    const m = mode === 'replicate' ? 'edge' : mode;
    if (m !== 'constant' && m !== 'reflect' && m !== 'edge') ctx.interp.error('SORA3012', `pad mode "${mode}" is not supported (constant, reflect, replicate)`, a.mode!.span);
    return tv(ops.pad(ctx, t, pairs, m as 'constant' | 'reflect' | 'edge', F(ctx, a.value, 0)));
  },
  narrow(ctx, pos, kw) {
    // torch.narrow: x[..., start : start + length, ...] along `dim`. start may be an int, a
    // dimension or a runtime integer scalar tensor (then, without a length, the result's size
    // along `dim` is a new symbol `name`, read back from the result's shape where needed).
    const a = sig(ctx, 'narrow', pos, kw, ['x', 'dim', 'start', 'length?', 'name?']);
    const t = T(ctx, a.x);
    const ax = ops.normAxis(ctx, I(ctx, a.dim), t.shape.length);
    const sv = a.start!.v;
    const lenSym = (x: Arg | undefined): Sym | undefined => (!x || x.v.k === 'none' ? undefined : x.v.k === 'int' ? Sym.const(x.v.v) : x.v.k === 'dim' ? x.v.s : ctx.interp.error('SORA3011', `narrow length must be an int or a dimension, got ${typeName(x.v)}`, x.span));
    const len = lenSym(a.length);
    if (sv.k === 'int' || sv.k === 'dim') {
      const st = sv.k === 'int' ? Sym.const(sv.v) : sv.s;
      return tv(ops.slice(ctx, t, ax, st, len ? st.add(len) : undefined, 1));
    }
    const s = T(ctx, a.start);
    if (!isInt(s.dtype) || s.shape.length !== 0) ctx.interp.error('SORA3008', `narrow start must be an int, a dimension or an integer scalar tensor, got ${s.dtype}${ops.fmtShape(s.shape)}`, a.start!.span);
    const s64 = s.dtype === 'i64' ? s : ops.cast(ctx, s, 'i64');
    const startV = ops.reshape(ctx, s64, [Sym.const(1)]);
    const endV = len ? ops.binary(ctx, '+', startV, ops.reshape(ctx, ops.dimTensor(ctx, len, 'i64'), [Sym.const(1)])).ir : ctx.g.constI64([Number.MAX_SAFE_INTEGER]);
    const out = len ?? Sym.sym(S(ctx, a.name, `narrow${ctx.g.symbols.size}`));
    const shape = [...t.shape];
    shape[ax] = out;
    const r = ops.mk(ctx, 'Slice', [t.ir, startV.ir, endV, ctx.g.constI64([ax]), ctx.g.constI64([1])], t.dtype, shape);
    if (!len) {
      const name = out.toString();
      if (ctx.g.symbols.has(name)) ctx.interp.error('SORA3010', `narrow: the dimension name "${name}" is already in use`, ctx.span, { hint: 'pass name="..." with a fresh name' });
      ctx.g.bindSymbol(name, { input: r.ir, axis: ax, divisor: 1, offset: 0 });
    }
    return tv(r);
  },
  pad_to_multiple(ctx, pos, kw) {
    // zero-pad the trailing axes at the end so each becomes a multiple of the given factor
    const a = sig(ctx, 'pad_to_multiple', pos, kw, ['x', 'multiples', 'mode?']);
    const t = T(ctx, a.x);
    const ms = ints(ctx, a.multiples);
    if (ms.length > t.shape.length) ctx.interp.error('SORA3012', `pad_to_multiple got ${ms.length} factors for a rank-${t.shape.length} tensor`, ctx.span);
    const pairs: [Sym, Sym][] = t.shape.map(() => [Sym.const(0), Sym.const(0)]);
    ms.forEach((m, i) => {
      if (m <= 0) ctx.interp.error('SORA3012', `pad_to_multiple factor must be positive, got ${m}`, ctx.span);
      const ax = t.shape.length - ms.length + i;
      const d = t.shape[ax]!;
      pairs[ax] = [Sym.const(0), d.ceilDiv(m).scale(m).sub(d)];
    });
    const mode = S(ctx, a.mode, 'constant');
    const padded = ops.pad(ctx, t, pairs, mode === 'replicate' ? 'edge' : (mode as 'constant'), 0);
    // the padded size is exactly multiple * ceil(d / multiple)
    const shape = t.shape.map((d, i) => (i >= t.shape.length - ms.length ? d.ceilDiv(ms[i - t.shape.length + ms.length]!).scale(ms[i - t.shape.length + ms.length]!) : d));
    return tv({ ...padded, shape });
  },
  ceil_div(ctx, pos, kw) {
    const a = sig(ctx, 'ceil_div', pos, kw, ['a', 'b']);
    const b = I(ctx, a.b);
    if (b <= 0) ctx.interp.error('SORA3014', 'ceil_div by a non-positive number', ctx.span);
    const v = a.a!.v;
    if (v.k === 'int') return { k: 'int', v: Math.ceil(v.v / b) };
    if (v.k === 'dim') return dimValue(v.s.ceilDiv(b));
    return ctx.interp.error('SORA3001', `ceil_div() of ${typeName(v)}`, a.a!.span);
  },
  // ---- elementwise / math ----
  cast(ctx, pos, kw) {
    const a = sig(ctx, 'cast', pos, kw, ['x', 'dtype']);
    return tv(ops.cast(ctx, T(ctx, a.x), Dt(ctx, a.dtype)));
  },
  where(ctx, pos, kw) {
    const a = sig(ctx, 'where', pos, kw, ['cond', 'a', 'b']);
    const c = T(ctx, a.cond);
    const isT = (v: Value) => v.k === 'tensor' || v.k === 'slot';
    const x = isT(a.a!.v) ? T(ctx, a.a) : undefined;
    const y = isT(a.b!.v) ? T(ctx, a.b) : undefined;
    const like = x?.dtype ?? y?.dtype;
    return tv(ops.where(ctx, c, x ?? ops.asTensor(ctx, a.a!.v, like, a.a!.span), y ?? ops.asTensor(ctx, a.b!.v, like, a.b!.span)));
  },
  clamp(ctx, pos, kw) {
    const a = sig(ctx, 'clamp', pos, kw, ['x', 'min?', 'max?']);
    const t = T(ctx, a.x);
    const lo = a.min && a.min.v.k !== 'none' ? ops.asTensor(ctx, a.min.v, t.dtype, a.min.span).ir : null;
    const hi = a.max && a.max.v.k !== 'none' ? ops.asTensor(ctx, a.max.v, t.dtype, a.max.span).ir : null;
    return tv(ops.mk(ctx, 'Clip', [t.ir, lo, hi], t.dtype, t.shape));
  },
  maximum(ctx, pos, kw) {
    const a = sig(ctx, 'maximum', pos, kw, ['a', 'b']);
    const x = T(ctx, a.a);
    const y = ops.asTensor(ctx, a.b!.v, x.dtype, a.b!.span);
    return tv(ops.mk(ctx, 'Max', [x.ir, y.ir], x.dtype, ops.broadcast(ctx, x.shape, y.shape, 'maximum')));
  },
  minimum(ctx, pos, kw) {
    const a = sig(ctx, 'minimum', pos, kw, ['a', 'b']);
    const x = T(ctx, a.a);
    const y = ops.asTensor(ctx, a.b!.v, x.dtype, a.b!.span);
    return tv(ops.mk(ctx, 'Min', [x.ir, y.ir], x.dtype, ops.broadcast(ctx, x.shape, y.shape, 'minimum')));
  },
  silu(ctx, pos, kw) {
    const a = sig(ctx, 'silu', pos, kw, ['x']);
    const t = T(ctx, a.x);
    ops.requireFloat(ctx, t, 'silu');
    // one kernel upstream: computed in f32 inside, rounded once in reduced precision
    return tv(f32Island(ctx, t, (x) => ops.binary(ctx, '*', x, ops.unary(ctx, 'Sigmoid', x)), 'silu kernel'));
  },
  gelu(ctx, pos, kw) {
    const a = sig(ctx, 'gelu', pos, kw, ['x', 'approximate?']);
    const t = T(ctx, a.x);
    ops.requireFloat(ctx, t, 'gelu');
    const mode = S(ctx, a.approximate, 'none');
    if (mode !== 'none' && mode !== 'tanh') ctx.interp.error('SORA3012', `gelu approximate must be "none" or "tanh", got "${mode}"`, a.approximate!.span);
    // one kernel upstream: computed in f32 inside, rounded once in reduced precision
    return tv(f32Island(ctx, t, (x) => (mode === 'tanh' ? geluTanh(ctx, x) : geluErf(ctx, x)), 'gelu kernel'));
  },
  softmax(ctx, pos, kw) {
    const a = sig(ctx, 'softmax', pos, kw, ['x', 'dim?']);
    const dim = I(ctx, a.dim, -1);
    return tv(maybeIsland(ctx, 'softmax', T(ctx, a.x), (x) => ops.softmax(ctx, x, dim)));
  },
  mean(ctx, pos, kw) {
    return reduceFn(ctx, pos, kw, 'mean', 'ReduceMean');
  },
  sum(ctx, pos, kw) {
    const a0 = pos[0]?.v;
    if (a0 && (a0.k === 'list' || a0.k === 'tuple')) {
      let acc: Value = { k: 'int', v: 0 };
      for (const v of a0.items) acc = ctx.interp.binary('+', acc, v, ctx.span);
      return acc;
    }
    return reduceFn(ctx, pos, kw, 'sum', 'ReduceSum');
  },
  amax(ctx, pos, kw) {
    return reduceFn(ctx, pos, kw, 'amax', 'ReduceMax');
  },
  matmul(ctx, pos, kw) {
    const a = sig(ctx, 'matmul', pos, kw, ['a', 'b']);
    return tv(ops.matmul(ctx, T(ctx, a.a), T(ctx, a.b), a.a!.span, a.b!.span));
  },
  // ---- creation ----
  arange(ctx, pos, kw) {
    // arange(n) / arange(start, end, step?), dtype=i64 by default
    const a = sig(ctx, 'arange', pos, kw, ['a', 'b?', 'step?', 'dtype?']);
    const dt = Dt(ctx, a.dtype, 'i64');
    const sym = (x: Arg | undefined, d: number): Sym => {
      if (!x || x.v.k === 'none') return Sym.const(d);
      if (x.v.k === 'int') return Sym.const(x.v.v);
      if (x.v.k === 'dim') return x.v.s;
      return ctx.interp.error('SORA3011', `arange bounds must be ints or dimensions, got ${typeName(x.v)}`, x.span);
    };
    const [lo, hi] = a.b ? [sym(a.a, 0), sym(a.b, 0)] : [Sym.const(0), sym(a.a, 0)];
    const step = I(ctx, a.step, 1);
    if (step <= 0) ctx.interp.error('SORA3012', 'arange step must be positive', ctx.span);
    const len = hi.sub(lo).add(step - 1).floorDiv(step);
    if (lo.isConst() && hi.isConst()) {
      const vals: number[] = [];
      for (let i = lo.value()!; i < hi.value()!; i += step) vals.push(i);
      return tv(ops.constTensor(ctx, vals, dt, [vals.length]));
    }
    return tv(ops.range(ctx, ops.dimTensor(ctx, lo, 'i64'), ops.dimTensor(ctx, hi, 'i64'), ops.scalar(ctx, step, 'i64'), dt, len));
  },
  full(ctx, pos, kw) {
    const a = sig(ctx, 'full', pos, kw, ['shape', 'value', 'dtype?']);
    const dt = Dt(ctx, a.dtype, ctx.compute);
    const v = F(ctx, a.value);
    const ds = dims(ctx, a.shape!);
    if (ds.every((d) => d.isConst())) {
      const n = ds.reduce((p, d) => p * d.value()!, 1);
      if (n <= 4096) return tv(ops.constTensor(ctx, Array(n).fill(v), dt, ds.map((d) => d.value()!)));
    }
    return tv(ops.expand(ctx, ops.scalar(ctx, v, dt), ds));
  },
  zeros(ctx, pos, kw) {
    const a = sig(ctx, 'zeros', pos, kw, ['shape', 'dtype?']);
    return BUILTINS.full!(ctx, [a.shape!, { v: { k: 'int', v: 0 }, span: ctx.span }], new Map(a.dtype ? [['dtype', a.dtype]] : []));
  },
  tensor(ctx, pos, kw) {
    // a constant 1-D tensor from a list of numbers known at compile time (dtype: i64 for ints, else compute)
    const a = sig(ctx, 'tensor', pos, kw, ['values', 'dtype?']);
    const v = a.values!.v;
    if (v.k !== 'list' && v.k !== 'tuple') ctx.interp.error('SORA3001', `tensor() takes a list of numbers, got ${typeName(v)}`, a.values!.span);
    return tv(ops.asTensor(ctx, v, a.dtype ? Dt(ctx, a.dtype) : undefined, a.values!.span));
  },
  micro_batch(ctx, pos, kw) {
    // A declaration, no graph nodes: the entry's computation is independent across consecutive groups of
    // `step` elements of the input dimension named `axis`, each group giving `out_step` elements of every
    // output along `out_dim` (default: the output dimension named `axis`). `length` names a scalar integer
    // input that is the total output extent along that dimension (the runtime gives each chunk its share).
    // Recorded as graph metadata `sorac.micro_batch` for the runtime (runtime/micro-batch.ts, docs/adr/005).
    const a = sig(ctx, 'micro_batch', pos, kw, ['axis', 'step?', 'out_step?', 'out_dim?', 'length?']);
    const axis = S(ctx, a.axis);
    const g = ctx.g as GraphBuilder | undefined;
    if (!g) return ctx.interp.error('SORA3012', 'micro_batch() declares how an entry can be micro-batched: call it in an entry body', ctx.span);
    if (!g.symbols.has(axis))
      ctx.interp.error('SORA3010', `micro_batch(): "${axis}" is not a dimension named by the entry's inputs`, a.axis!.span, { hint: `dimensions: ${[...g.symbols.keys()].join(', ') || 'none'}` });
    const step = I(ctx, a.step, 1);
    const outStep = I(ctx, a.out_step, step);
    if (step < 1 || outStep < 1) ctx.interp.error('SORA3012', `micro_batch(): step and out_step must be positive, got ${step} and ${outStep}`, ctx.span);
    const outDim = a.out_dim && a.out_dim.v.k !== 'none' ? I(ctx, a.out_dim) : undefined;
    const length = a.length && a.length.v.k !== 'none' ? S(ctx, a.length) : undefined;
    if (length !== undefined) {
      const inp = g.inputs.find((v) => v.name === length);
      if (!inp || inp.shape.length !== 0 || !isInt(inp.dtype)) ctx.interp.error('SORA3012', `micro_batch(): length "${length}" must name a scalar integer input of the entry`, a.length!.span);
    }
    const prev = JSON.parse(g.annotations['sorac.micro_batch'] ?? '[]') as { axis: string }[];
    if (prev.some((p) => p.axis === axis)) ctx.interp.error('SORA2002', `micro_batch(): axis "${axis}" is declared twice`, ctx.span);
    prev.push({ axis, step, out_step: outStep, ...(outDim !== undefined ? { out_dim: outDim } : {}), ...(length !== undefined ? { length } : {}) } as never);
    g.annotations['sorac.micro_batch'] = JSON.stringify(prev);
    return NONE;
  },
  ones(ctx, pos, kw) {
    const a = sig(ctx, 'ones', pos, kw, ['shape', 'dtype?']);
    return BUILTINS.full!(ctx, [a.shape!, { v: { k: 'int', v: 1 }, span: ctx.span }], new Map(a.dtype ? [['dtype', a.dtype]] : []));
  },
  // ---- neural network primitives ----
  linear(ctx, pos, kw) {
    const a = sig(ctx, 'linear', pos, kw, ['x', 'weight', 'bias?']);
    const x = T(ctx, a.x);
    const w = T(ctx, a.weight);
    const b = Topt(ctx, a.bias);
    if (w.shape.length !== 2) ctx.interp.error('SORA3004', `linear weight must be 2-D [out, in], got ${ops.fmtShape(w.shape)}`, a.weight!.span);
    const inF = w.shape[1]!;
    const outF = w.shape[0]!;
    const last = x.shape[x.shape.length - 1];
    if (!last || !last.equals(inF))
      ctx.interp.error('SORA3006', `linear: input ${ops.fmtShape(x.shape)} has ${last ?? 'no'} features but the weight ${ops.fmtShape(w.shape)} expects ${inF}`, ctx.span, {
        related: [{ span: a.x!.span, message: `input is ${ops.fmtShape(x.shape)}` }, { span: a.weight!.span, message: `weight is ${ops.fmtShape(w.shape)}` }],
        hint: 'check the in_features the layer was declared with',
      });
    if (x.dtype !== w.dtype) ctx.interp.error('SORA3008', `linear: input is ${x.dtype} but the weight is ${w.dtype}`, ctx.span, { hint: 'cast the input, or set `inputs: cast` in the dtype block' });
    if (b && !b.shape[0]!.equals(outF)) ctx.interp.error('SORA3002', `linear: bias has ${b.shape[0]} elements but the weight has ${outF} outputs`, a.bias!.span);
    const lead = x.shape.slice(0, -1);
    if (x.shape.length === 2) return tv(ops.mk(ctx, 'Gemm', [x.ir, w.ir, b?.ir ?? null], x.dtype, [x.shape[0]!, outF], { transB: 1 }));
    const flat = ops.reshape(ctx, x, [ops.numel(lead), inF]);
    const y = ops.mk(ctx, 'Gemm', [flat.ir, w.ir, b?.ir ?? null], x.dtype, [ops.numel(lead), outF], { transB: 1 });
    return tv(ops.reshape(ctx, y, [...lead, outF]));
  },
  conv(ctx, pos, kw) {
    const a = sig(ctx, 'conv', pos, kw, ['x', 'weight', 'bias?', 'stride?', 'padding?', 'dilation?', 'groups?']);
    const x = T(ctx, a.x);
    const w = T(ctx, a.weight);
    const b = Topt(ctx, a.bias);
    const n = w.shape.length - 2;
    if (n < 1 || n > 3) ctx.interp.error('SORA3004', `conv weight must be 3-D to 5-D, got ${ops.fmtShape(w.shape)}`, a.weight!.span);
    const rep = (arg: Arg | undefined, d: number) => {
      const l = ints(ctx, arg, [d]);
      return l.length === 1 ? Array(n).fill(l[0]) : l;
    };
    const strides = rep(a.stride, 1);
    const pads = rep(a.padding, 0);
    const dil = rep(a.dilation, 1);
    const allPads = pads.length === n ? [...pads, ...pads] : pads;
    return tv(ops.conv(ctx, x, w, b, strides, allPads, dil, I(ctx, a.groups, 1)));
  },
  layer_norm(ctx, pos, kw) {
    const a = sig(ctx, 'layer_norm', pos, kw, ['x', 'weight?', 'bias?', 'eps?']);
    const x = T(ctx, a.x);
    ops.requireFloat(ctx, x, 'layer_norm');
    const w = Topt(ctx, a.weight);
    const b = Topt(ctx, a.bias);
    lastDimCheck(ctx, x, w, 'layer_norm');
    const C = x.shape[x.shape.length - 1]!;
    const cv = C.value();
    if (cv === undefined && !w) ctx.interp.error('SORA3011', 'layer_norm without a weight needs a last dimension of known size', ctx.span);
    const scale = w ?? ops.constTensor(ctx, Array(cv!).fill(1), x.dtype, [cv!]);
    // always pass a bias (below): onnxruntime's SkipLayerNormFusion crashes on a LayerNormalization without one
    const eps = F(ctx, a.eps, 1e-5);
    return tv(
      maybeIsland(ctx, 'layer_norm', x, (xx) => {
        const sc = scale.dtype === xx.dtype ? scale : ops.cast(ctx, scale, xx.dtype, 'layer_norm weight to the input dtype');
        const bias = b ? (b.dtype === xx.dtype ? b : ops.cast(ctx, b, xx.dtype, 'layer_norm bias to the input dtype')) : cv !== undefined ? ops.constTensor(ctx, Array(cv).fill(0), xx.dtype, [cv]) : ops.binary(ctx, '*', sc, ops.scalar(ctx, 0, xx.dtype));
        return ops.mk(ctx, 'LayerNormalization', [xx.ir, sc.ir, bias.ir], xx.dtype, xx.shape, { axis: -1, epsilon: { float: eps } });
      }),
    );
  },
  rms_norm(ctx, pos, kw) {
    // y = weight * cast_back(x32 * rsqrt(mean(x32^2) + eps)) as LlamaRMSNorm / Flux RMSNorm
    const a = sig(ctx, 'rms_norm', pos, kw, ['x', 'weight?', 'eps?']);
    const x = T(ctx, a.x);
    ops.requireFloat(ctx, x, 'rms_norm');
    const w = Topt(ctx, a.weight);
    lastDimCheck(ctx, x, w, 'rms_norm');
    const eps = F(ctx, a.eps, 1e-6);
    const y = f32Island(ctx, x, (x32) => {
      const ms = ops.reduce(ctx, 'ReduceMean', ops.binary(ctx, '*', x32, x32), [-1], true);
      const r = ops.unary(ctx, 'Reciprocal', ops.unary(ctx, 'Sqrt', ops.binary(ctx, '+', ms, ops.scalar(ctx, eps, x32.dtype))));
      return ops.binary(ctx, '*', x32, r);
    });
    return tv(w ? ops.binary(ctx, '*', w.dtype === y.dtype ? w : ops.cast(ctx, w, y.dtype), y) : y);
  },
  group_norm(ctx, pos, kw) {
    const a = sig(ctx, 'group_norm', pos, kw, ['x', 'groups', 'weight?', 'bias?', 'eps?']);
    const x = T(ctx, a.x);
    ops.requireFloat(ctx, x, 'group_norm');
    const G = I(ctx, a.groups);
    const w = Topt(ctx, a.weight);
    const b = Topt(ctx, a.bias);
    const eps = F(ctx, a.eps, 1e-5);
    const N = x.shape[0]!;
    const C = x.shape[1]!;
    if (!C.divisibleBy(G)) ctx.interp.error('SORA3003', `group_norm: ${C} channels are not divisible into ${G} groups`, ctx.span);
    // InstanceNormalization over [N, G, rest] computes per-group statistics; one kernel upstream
    // (f32 inside, rounded once in reduced precision), so it is an f32 island here
    const rest = ops.numel(x.shape.slice(1)).divExact(Sym.const(G))!;
    return tv(
      f32Island(ctx, x, (xx) => {
        const r = ops.reshape(ctx, xx, [N, Sym.const(G), rest]);
        const ones = ops.constTensor(ctx, Array(G).fill(1), xx.dtype, [G]);
        const zeros = ops.constTensor(ctx, Array(G).fill(0), xx.dtype, [G]);
        const nrm = ops.mk(ctx, 'InstanceNormalization', [r.ir, ones.ir, zeros.ir], xx.dtype, r.shape, { epsilon: { float: eps } });
        let y = ops.reshape(ctx, nrm, xx.shape);
        const bshape = [C, ...xx.shape.slice(2).map(() => Sym.const(1))];
        const as = (t: Tensor) => (t.dtype === xx.dtype ? t : ops.cast(ctx, t, xx.dtype, 'group_norm affine in f32'));
        if (w) y = ops.binary(ctx, '*', y, ops.reshape(ctx, as(w), bshape));
        if (b) y = ops.binary(ctx, '+', y, ops.reshape(ctx, as(b), bshape));
        return y;
      }, 'group_norm kernel'),
    );
  },
  embedding(ctx, pos, kw) {
    const a = sig(ctx, 'embedding', pos, kw, ['ids', 'table']);
    const ids = T(ctx, a.ids);
    if (!isInt(ids.dtype)) ctx.interp.error('SORA3008', `embedding ids must be integers, got ${ids.dtype}`, a.ids!.span);
    return tv(ops.gatherScalar(ctx, T(ctx, a.table), 0, ids));
  },
  gather(ctx, pos, kw) {
    const a = sig(ctx, 'gather', pos, kw, ['x', 'dim', 'index']);
    return tv(ops.gatherScalar(ctx, T(ctx, a.x), I(ctx, a.dim), ops.asTensor(ctx, a.index!.v, 'i64', a.index!.span)));
  },
  attention(ctx, pos, kw) {
    // softmax(q k^T * scale + bias) v, with the softmax in f32 as the reference implementations do
    const a = sig(ctx, 'attention', pos, kw, ['q', 'k', 'v', 'bias?', 'scale?']);
    const q = T(ctx, a.q);
    const k = T(ctx, a.k);
    const v = T(ctx, a.v);
    const bias = Topt(ctx, a.bias);
    const d = q.shape[q.shape.length - 1]!;
    const dv = d.value();
    if (!k.shape[k.shape.length - 1]!.equals(d)) ctx.interp.error('SORA3006', `attention: q has head dim ${d} but k has ${k.shape[k.shape.length - 1]}`, ctx.span);
    const scale = a.scale && a.scale.v.k !== 'none' ? F(ctx, a.scale) : dv !== undefined ? 1 / Math.sqrt(dv) : ctx.interp.error('SORA3011', 'attention needs a known head dim or an explicit scale', ctx.span);
    const qs = ops.binary(ctx, '*', q, ops.scalar(ctx, scale, q.dtype));
    let s = ops.matmul(ctx, qs, ops.transposeLast(ctx, k));
    if (bias) s = ops.binary(ctx, '+', s, bias.dtype === s.dtype ? bias : ops.cast(ctx, bias, s.dtype));
    const p = f32Island(ctx, s, (s32) => ops.softmax(ctx, s32, -1));
    return tv(ops.matmul(ctx, p, v));
  },
  interpolate(ctx, pos, kw) {
    // nearest-neighbour upsampling by integer factors over the trailing spatial axes
    const a = sig(ctx, 'interpolate', pos, kw, ['x', 'scale_factor', 'mode?']);
    const x = T(ctx, a.x);
    const mode = S(ctx, a.mode, 'nearest');
    if (mode !== 'nearest') ctx.interp.error('SORA3012', `interpolate mode "${mode}" is not supported (nearest)`, ctx.span);
    const n = x.shape.length - 2;
    const f = ints(ctx, a.scale_factor);
    const factors = f.length === 1 ? Array(n).fill(f[0]) : f;
    const scales = ops.constTensor(ctx, [1, 1, ...factors], 'f32', [n + 2]);
    const shape = [x.shape[0]!, x.shape[1]!, ...x.shape.slice(2).map((d, i) => d.mul(factors[i]!))];
    return tv(ops.mk(ctx, 'Resize', [x.ir, null, scales.ir], x.dtype, shape, { mode: 'nearest', nearest_mode: 'floor', coordinate_transformation_mode: 'asymmetric' }));
  },
};

function sizeArgs(ctx: BuiltinCtx, kw: Map<string, Arg>): Map<string, Sym> {
  const m = new Map<string, Sym>();
  for (const [k, a] of kw) {
    if (a.v.k === 'int') m.set(k, Sym.const(a.v.v));
    else if (a.v.k === 'dim') m.set(k, a.v.s);
    else ctx.interp.error('SORA3010', `axis size ${k} must be an int or a dimension, got ${typeName(a.v)}`, a.span);
  }
  return m;
}

function reduceFn(ctx: BuiltinCtx, pos: Arg[], kw: Map<string, Arg>, name: string, op: 'ReduceMean' | 'ReduceSum' | 'ReduceMax'): Value {
  const a = sig(ctx, name, pos, kw, ['x', 'dim?', 'keepdim?']);
  const t = T(ctx, a.x);
  const axes = a.dim ? ints(ctx, a.dim) : [...t.shape.keys()];
  return tv(ops.reduce(ctx, op, t, axes, Bo(ctx, a.keepdim, false)));
}

function minmax(ctx: BuiltinCtx, pos: Arg[], kw: Map<string, Arg>, which: 'min' | 'max'): Value {
  if (kw.size) ctx.interp.error('SORA2007', `${which}() takes positional arguments`, ctx.span);
  const items = pos.length === 1 && (pos[0]!.v.k === 'list' || pos[0]!.v.k === 'tuple') ? (pos[0]!.v as { items: readonly Value[] }).items : pos.map((p) => p.v);
  if (!items.length) ctx.interp.error('SORA3012', `${which}() of nothing`, ctx.span);
  let best: Value | undefined;
  for (const v of items) {
    if (v.k !== 'int' && v.k !== 'float') ctx.interp.error('SORA3011', `${which}() needs numbers known at compile time, got ${typeName(v)}`, ctx.span);
    if (!best || (which === 'min' ? v.v < (best as { v: number }).v : v.v > (best as { v: number }).v)) best = v;
  }
  return best!;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export { NONE, isFloat };
