/** Shape and layout ops (reshape, rearrange, split, pad, ...), selection (where, clamp), and tensor creation (arange, full, ...). */
import { isInt } from '../../core/dtype.ts';
import type { BuiltinCtx } from '../context.ts';
import type { GraphBuilder } from '../graph.ts';
import * as ops from '../ops.ts';
import { rearrange } from '../rearrange.ts';
import { Sym } from '../sym.ts';
import { NONE, type Value, dimValue, typeName } from '../values.ts';
import { type Arg, type Builtin, Dt, dims, F, I, ints, listOf, S, sig, T, tv } from './args.ts';

export const SHAPE_BUILTINS: Record<string, Builtin> = {
  shape(ctx, pos, kw) {
    const a = sig(ctx, 'shape', pos, kw);
    const t = T(ctx, a.x);
    if (a.dim) return dimValue(t.shape[ops.normAxis(ctx, I(ctx, a.dim), t.shape.length)]!);
    return { k: 'tuple', items: t.shape.map(dimValue) };
  },
  reshape(ctx, pos, kw) {
    const a = sig(ctx, 'reshape', pos, kw);
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
    const a = sig(ctx, 'flatten', pos, kw);
    const t = T(ctx, a.x);
    const r = t.shape.length;
    const s = ops.normAxis(ctx, I(ctx, a.start, 0), r);
    const e = ops.normAxis(ctx, I(ctx, a.end, -1), r);
    return tv(ops.reshape(ctx, t, [...t.shape.slice(0, s), ops.numel(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)]));
  },
  transpose(ctx, pos, kw) {
    const a = sig(ctx, 'transpose', pos, kw);
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
    const a = sig(ctx, 'permute', pos, kw);
    const t = T(ctx, a.x);
    const p = ints(ctx, a.dims).map((d) => ops.normAxis(ctx, d, t.shape.length));
    if (p.length !== t.shape.length || new Set(p).size !== p.length) ctx.interp.error('SORA3012', `permute([${p.join(', ')}]) is not a permutation of ${t.shape.length} axes`, ctx.span);
    return tv(ops.transpose(ctx, t, p));
  },
  unsqueeze(ctx, pos, kw) {
    const a = sig(ctx, 'unsqueeze', pos, kw);
    return tv(ops.unsqueeze(ctx, T(ctx, a.x), ints(ctx, a.dim)));
  },
  squeeze(ctx, pos, kw) {
    const a = sig(ctx, 'squeeze', pos, kw);
    return tv(ops.squeeze(ctx, T(ctx, a.x), ints(ctx, a.dim)));
  },
  expand(ctx, pos, kw) {
    const a = sig(ctx, 'expand', pos, kw);
    return tv(ops.expand(ctx, T(ctx, a.x), dims(ctx, a.shape!)));
  },
  concat(ctx, pos, kw) {
    const a = sig(ctx, 'concat', pos, kw);
    const ts = listOf(ctx, a.xs).map((v) => ctx.interp.tensorOf(v, a.xs!.span));
    return tv(ops.concat(ctx, ts, I(ctx, a.dim, 0)));
  },
  stack(ctx, pos, kw) {
    const a = sig(ctx, 'stack', pos, kw);
    const d = I(ctx, a.dim, 0);
    const ts = listOf(ctx, a.xs).map((v) => ctx.interp.tensorOf(v, a.xs!.span));
    const r = ts[0]!.shape.length + 1;
    const ax = d < 0 ? d + r : d;
    return tv(ops.concat(ctx, ts.map((t) => ops.unsqueeze(ctx, t, [ax])), ax));
  },
  split(ctx, pos, kw) {
    const a = sig(ctx, 'split', pos, kw);
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
    const a = sig(ctx, 'chunk', pos, kw);
    const t = T(ctx, a.x);
    const n = I(ctx, a.n);
    const ax = ops.normAxis(ctx, I(ctx, a.dim, 0), t.shape.length);
    const dim = t.shape[ax]!;
    if (!dim.divisibleBy(n)) ctx.interp.error('SORA3003', `chunk(${n}) of a dimension of size ${dim}: not divisible by ${n}`, ctx.span, { hint: 'pass sizes to split() for uneven pieces' });
    return { k: 'tuple', items: ops.split(ctx, t, Array.from({ length: n }, () => dim.floorDiv(n)), ax).map(tv) };
  },
  unbind(ctx, pos, kw) {
    const a = sig(ctx, 'unbind', pos, kw);
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
    const a = sig(ctx, 'pad', pos, kw);
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
    const a = sig(ctx, 'narrow', pos, kw);
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
    const a = sig(ctx, 'pad_to_multiple', pos, kw);
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
    const a = sig(ctx, 'ceil_div', pos, kw);
    const b = I(ctx, a.b);
    if (b <= 0) ctx.interp.error('SORA3014', 'ceil_div by a non-positive number', ctx.span);
    const v = a.a!.v;
    if (v.k === 'int') return { k: 'int', v: Math.ceil(v.v / b) };
    if (v.k === 'dim') return dimValue(v.s.ceilDiv(b));
    return ctx.interp.error('SORA3001', `ceil_div() of ${typeName(v)}`, a.a!.span);
  },
  // ---- elementwise / math ----
  cast(ctx, pos, kw) {
    const a = sig(ctx, 'cast', pos, kw);
    return tv(ops.cast(ctx, T(ctx, a.x), Dt(ctx, a.dtype)));
  },
  where(ctx, pos, kw) {
    const a = sig(ctx, 'where', pos, kw);
    const c = T(ctx, a.cond);
    const isT = (v: Value) => v.k === 'tensor' || v.k === 'slot';
    const x = isT(a.a!.v) ? T(ctx, a.a) : undefined;
    const y = isT(a.b!.v) ? T(ctx, a.b) : undefined;
    const like = x?.dtype ?? y?.dtype;
    return tv(ops.where(ctx, c, x ?? ops.asTensor(ctx, a.a!.v, like, a.a!.span), y ?? ops.asTensor(ctx, a.b!.v, like, a.b!.span)));
  },
  clamp(ctx, pos, kw) {
    const a = sig(ctx, 'clamp', pos, kw);
    const t = T(ctx, a.x);
    const lo = a.min && a.min.v.k !== 'none' ? ops.asTensor(ctx, a.min.v, t.dtype, a.min.span).ir : null;
    const hi = a.max && a.max.v.k !== 'none' ? ops.asTensor(ctx, a.max.v, t.dtype, a.max.span).ir : null;
    return tv(ops.mk(ctx, 'Clip', [t.ir, lo, hi], t.dtype, t.shape));
  },
  maximum(ctx, pos, kw) {
    const a = sig(ctx, 'maximum', pos, kw);
    const x = T(ctx, a.a);
    const y = ops.asTensor(ctx, a.b!.v, x.dtype, a.b!.span);
    return tv(ops.mk(ctx, 'Max', [x.ir, y.ir], x.dtype, ops.broadcast(ctx, x.shape, y.shape, 'maximum')));
  },
  minimum(ctx, pos, kw) {
    const a = sig(ctx, 'minimum', pos, kw);
    const x = T(ctx, a.a);
    const y = ops.asTensor(ctx, a.b!.v, x.dtype, a.b!.span);
    return tv(ops.mk(ctx, 'Min', [x.ir, y.ir], x.dtype, ops.broadcast(ctx, x.shape, y.shape, 'minimum')));
  },
};

export const CREATION_BUILTINS: Record<string, Builtin> = {
  arange(ctx, pos, kw) {
    // arange(n) / arange(start, end, step?), dtype=i64 by default
    const a = sig(ctx, 'arange', pos, kw);
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
    const a = sig(ctx, 'full', pos, kw);
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
    const a = sig(ctx, 'zeros', pos, kw);
    return CREATION_BUILTINS.full!(ctx, [a.shape!, { v: { k: 'int', v: 0 }, span: ctx.span }], new Map(a.dtype ? [['dtype', a.dtype]] : []));
  },
  tensor(ctx, pos, kw) {
    // a constant 1-D tensor from a list of numbers known at compile time (dtype: i64 for ints, else compute)
    const a = sig(ctx, 'tensor', pos, kw);
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
    const a = sig(ctx, 'micro_batch', pos, kw);
    const axis = S(ctx, a.axis);
    const g = ctx.g as GraphBuilder | undefined;
    if (!g) return ctx.interp.error('SORA3012', 'micro_batch() declares how an entry can be micro-batched: call it in an entry body', ctx.span);
    // an axis the caller fixed to a size (a concrete trace for checking a request): nothing to declare
    if (g.fixed.has(axis)) return NONE;
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
  tile(ctx, pos, kw) {
    // A declaration, no graph nodes: above `threshold` elements along any of `axes` (input dimensions), the
    // entry's result is defined as the upstream tiled computation: the entry runs on overlapping tiles of `size`
    // elements starting every `stride` elements (row-major over the axes), tiles after the first drop their
    // first `drop` output elements, each tile's output is linearly blended in place with its already blended
    // predecessor along every axis over `blend` output elements, and the first `first_keep` (first tile) or
    // `keep` (others) output elements are kept and concatenated. Several declarations nest, first outermost.
    // Recorded as graph metadata `sorac.tiling` for the runtime (runtime/execution/tiling.ts).
    const a = sig(ctx, 'tile', pos, kw);
    const g = ctx.g as GraphBuilder | undefined;
    if (!g) return ctx.interp.error('SORA3012', 'tile() declares how an entry is tiled: call it in an entry body', ctx.span);
    const axes = listOf(ctx, a.axes).map((v) => S(ctx, { v, span: a.axes!.span }));
    if (axes.length === 0) ctx.interp.error('SORA3012', 'tile(): name at least one axis', a.axes!.span);
    for (const axis of axes)
      if (!g.symbols.has(axis) && !g.fixed.has(axis))
        ctx.interp.error('SORA3010', `tile(): "${axis}" is not a dimension named by the entry's inputs`, a.axes!.span, { hint: `dimensions: ${[...g.symbols.keys()].join(', ') || 'none'}` });
    const size = I(ctx, a.size);
    const stride = I(ctx, a.stride);
    const blend = I(ctx, a.blend);
    const keep = I(ctx, a.keep);
    const threshold = I(ctx, a.threshold, size);
    const firstKeep = I(ctx, a.first_keep, keep);
    const drop = I(ctx, a.drop, 0);
    if (size < 1 || stride < 1 || keep < 1 || firstKeep < 1 || blend < 0 || drop < 0 || threshold < 0)
      ctx.interp.error('SORA3012', `tile(): size, stride, keep and first_keep must be positive and blend, drop, threshold not negative, got size ${size}, stride ${stride}, blend ${blend}, keep ${keep}, first_keep ${firstKeep}, drop ${drop}, threshold ${threshold}`, ctx.span);
    const unsupported = a.unsupported && a.unsupported.v.k !== 'none' ? S(ctx, a.unsupported) : undefined;
    const prev = JSON.parse(g.annotations['sorac.tiling'] ?? '[]') as { axes: string[] }[];
    if (prev.some((p) => p.axes.some((x) => axes.includes(x)))) ctx.interp.error('SORA2002', `tile(): an axis of ${axes.join(', ')} is tiled twice`, ctx.span);
    prev.push({ axes, size, stride, blend, keep, threshold, first_keep: firstKeep, drop, ...(unsupported !== undefined ? { unsupported } : {}) } as never);
    g.annotations['sorac.tiling'] = JSON.stringify(prev);
    return NONE;
  },
  ones(ctx, pos, kw) {
    const a = sig(ctx, 'ones', pos, kw);
    return CREATION_BUILTINS.full!(ctx, [a.shape!, { v: { k: 'int', v: 1 }, span: ctx.span }], new Map(a.dtype ? [['dtype', a.dtype]] : []));
  },
  // ---- neural network primitives ----
};

export function sizeArgs(ctx: BuiltinCtx, kw: Map<string, Arg>): Map<string, Sym> {
  const m = new Map<string, Sym>();
  for (const [k, a] of kw) {
    if (a.v.k === 'int') m.set(k, Sym.const(a.v.v));
    else if (a.v.k === 'dim') m.set(k, a.v.s);
    else ctx.interp.error('SORA3010', `axis size ${k} must be an int or a dimension, got ${typeName(a.v)}`, a.span);
  }
  return m;
}
