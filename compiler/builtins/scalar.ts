/**
 * Compile-time helpers (range, len, int, float, min, max, prod, round) and elementwise math that
 * folds on numbers known at compile time and is a graph op on tensors (sqrt, exp, erf, sigmoid, ...).
 */
import type { DType } from '../../core/dtype.ts';
import type { BuiltinCtx } from '../context.ts';
import * as ops from '../ops.ts';
import { Sym } from '../sym.ts';
import { type Value, dimValue, typeName } from '../values.ts';
import { type Arg, type Builtin, Dt, I, listOf, sig, T, tv } from './args.ts';

/** Compile-time math on numbers, tensor op otherwise. */
export function mathFn(onnx: string, f: (x: number) => number, needFloat = true): Builtin {
  return (ctx, pos, kw) => {
    const a = sig(ctx, onnx.toLowerCase(), pos, kw);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'float') return { k: 'float', v: f(v.v) };
    const t = T(ctx, a.x);
    if (needFloat) ops.requireFloat(ctx, t, onnx);
    return tv(ops.unary(ctx, onnx, t));
  };
}

/**
 * erf(x) in double precision (max abs error ~5e-16 against C's erf): the Maclaurin series below
 * |x| = 2.5, the continued fraction of erfc (modified Lentz) above it, +-1 beyond |x| = 6.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  if (ax < 2.5) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
  const tiny = 1e-300;
  let f = ax;
  let c = ax;
  let d = 0;
  for (let k = 1; k < 300; k++) {
    const a = k / 2;
    d = ax + a * d;
    d = d === 0 ? tiny : 1 / d;
    c = ax + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
}

export const SCALAR_BUILTINS: Record<string, Builtin> = {
  // ---- compile-time helpers ----
  range(ctx, pos, kw) {
    const a = sig(ctx, 'range', pos, kw);
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
    const a = sig(ctx, 'len', pos, kw);
    const v = a.x!.v;
    if (v.k === 'list' || v.k === 'tuple') return { k: 'int', v: v.items.length };
    if (v.k === 'str') return { k: 'int', v: v.v.length };
    if (v.k === 'tensor' || v.k === 'slot') return dimValue(T(ctx, a.x).shape[0]!);
    return ctx.interp.error('SORA3001', `len() of ${typeName(v)}`, a.x!.span);
  },
  int(ctx, pos, kw) {
    const a = sig(ctx, 'int', pos, kw);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'dim') return v;
    if (v.k === 'float') return { k: 'int', v: Math.trunc(v.v) };
    if (v.k === 'bool') return { k: 'int', v: v.v ? 1 : 0 };
    if (v.k === 'tensor' || v.k === 'slot') return tv(ops.cast(ctx, T(ctx, a.x), 'i64'));
    return ctx.interp.error('SORA3001', `int() of ${typeName(v)}`, a.x!.span);
  },
  float(ctx, pos, kw) {
    const a = sig(ctx, 'float', pos, kw);
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
    const a = sig(ctx, 'prod', pos, kw);
    let acc: Sym = Sym.const(1);
    for (const v of listOf(ctx, a.xs)) {
      if (v.k === 'int') acc = acc.mul(v.v);
      else if (v.k === 'dim') acc = acc.mul(v.s);
      else ctx.interp.error('SORA3001', `prod() of ${typeName(v)}`, a.xs!.span);
    }
    return dimValue(acc);
  },
  round(ctx, pos, kw) {
    const a = sig(ctx, 'round', pos, kw);
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
  erf: mathFn('Erf', erf, true),
  sigmoid: mathFn('Sigmoid', (x) => 1 / (1 + Math.exp(-x))),
  relu: mathFn('Relu', (x) => Math.max(0, x)),
  abs: mathFn('Abs', Math.abs, false),
  neg: mathFn('Neg', (x) => -x, false),
  rsqrt(ctx, pos, kw) {
    const a = sig(ctx, 'rsqrt', pos, kw);
    const v = a.x!.v;
    if (v.k === 'int' || v.k === 'float') return { k: 'float', v: 1 / Math.sqrt(v.v) };
    const t = T(ctx, a.x);
    return tv(ops.unary(ctx, 'Reciprocal', ops.unary(ctx, 'Sqrt', t)));
  },
  dtype_min(ctx, pos, kw) {
    // torch.finfo(dtype).min: the large negative used for additive attention masks
    const a = sig(ctx, 'dtype_min', pos, kw);
    const d = Dt(ctx, a.dtype);
    const MIN: Partial<Record<DType, number>> = { f32: -3.4028234663852886e38, f64: -Number.MAX_VALUE, bf16: -3.3895313892515355e38, f16: -65504 };
    if (MIN[d] === undefined) ctx.interp.error('SORA3012', `dtype_min needs a floating dtype, got ${d}`, a.dtype!.span);
    return { k: 'float', v: MIN[d]! };
  },
  compute_dtype(ctx, pos, kw) {
    // the compute dtype in effect here (the policy's, or the enclosing island's)
    sig(ctx, 'compute_dtype', pos, kw);
    return { k: 'dtype', d: ctx.compute };
  },
  // ---- shapes ----
};

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
