/** Activations, reductions and the neural-network primitives (linear, conv, norms, attention, interpolate), with the dtype policy's f32 islands. */
import { isFloat, isInt } from '../../core/dtype.ts';
import type { BuiltinCtx } from '../context.ts';
import * as ops from '../ops.ts';
import { Sym } from '../sym.ts';
import type { Tensor, Value } from '../values.ts';
import { type Arg, type Builtin, Bo, F, I, ints, S, sig, T, Topt, tv } from './args.ts';

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

export const ACTIVATION_BUILTINS: Record<string, Builtin> = {
  silu(ctx, pos, kw) {
    const a = sig(ctx, 'silu', pos, kw);
    const t = T(ctx, a.x);
    ops.requireFloat(ctx, t, 'silu');
    // one kernel upstream: computed in f32 inside, rounded once in reduced precision
    return tv(f32Island(ctx, t, (x) => ops.binary(ctx, '*', x, ops.unary(ctx, 'Sigmoid', x)), 'silu kernel'));
  },
  gelu(ctx, pos, kw) {
    const a = sig(ctx, 'gelu', pos, kw);
    const t = T(ctx, a.x);
    ops.requireFloat(ctx, t, 'gelu');
    const mode = S(ctx, a.approximate, 'none');
    if (mode !== 'none' && mode !== 'tanh') ctx.interp.error('SORA3012', `gelu approximate must be "none" or "tanh", got "${mode}"`, a.approximate!.span);
    // one kernel upstream: computed in f32 inside, rounded once in reduced precision
    return tv(f32Island(ctx, t, (x) => (mode === 'tanh' ? geluTanh(ctx, x) : geluErf(ctx, x)), 'gelu kernel'));
  },
  softmax(ctx, pos, kw) {
    const a = sig(ctx, 'softmax', pos, kw);
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
    const a = sig(ctx, 'matmul', pos, kw);
    return tv(ops.matmul(ctx, T(ctx, a.a), T(ctx, a.b), a.a!.span, a.b!.span));
  },
  // ---- creation ----
};

export const LAYER_BUILTINS: Record<string, Builtin> = {
  linear(ctx, pos, kw) {
    const a = sig(ctx, 'linear', pos, kw);
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
    if (x.dtype !== w.dtype)
      ops.dtypeConflict(ctx, `linear: input is ${x.dtype} but the weight is ${w.dtype}`, x.dtype, w.dtype, a.x!.span, a.weight!.span, {
        rules: ['inputs', 'compute', 'params', 'f32', 'modules'],
        hint: `cast the input, or set \`inputs: cast\` in the dtype block (or --dtype inputs=cast)${ctx.policy.inputs === 'cast' ? '; the input is already cast to the compute dtype at the entry, so a value computed in f32 reaches this layer: list its module in \`f32:\` or cast it' : ''}`,
      });
    if (b && !b.shape[0]!.equals(outF)) ctx.interp.error('SORA3002', `linear: bias has ${b.shape[0]} elements but the weight has ${outF} outputs`, a.bias!.span);
    const lead = x.shape.slice(0, -1);
    if (x.shape.length === 2) return tv(ops.mk(ctx, 'Gemm', [x.ir, w.ir, b?.ir ?? null], x.dtype, [x.shape[0]!, outF], { transB: 1 }));
    const flat = ops.reshape(ctx, x, [ops.numel(lead), inF]);
    const y = ops.mk(ctx, 'Gemm', [flat.ir, w.ir, b?.ir ?? null], x.dtype, [ops.numel(lead), outF], { transB: 1 });
    return tv(ops.reshape(ctx, y, [...lead, outF]));
  },
  conv(ctx, pos, kw) {
    const a = sig(ctx, 'conv', pos, kw);
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
    const a = sig(ctx, 'layer_norm', pos, kw);
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
    const a = sig(ctx, 'rms_norm', pos, kw);
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
    const a = sig(ctx, 'group_norm', pos, kw);
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
    const a = sig(ctx, 'embedding', pos, kw);
    const ids = T(ctx, a.ids);
    if (!isInt(ids.dtype)) ctx.interp.error('SORA3008', `embedding ids must be integers, got ${ids.dtype}`, a.ids!.span);
    return tv(ops.gatherScalar(ctx, T(ctx, a.table), 0, ids));
  },
  gather(ctx, pos, kw) {
    const a = sig(ctx, 'gather', pos, kw);
    return tv(ops.gatherScalar(ctx, T(ctx, a.x), I(ctx, a.dim), ops.asTensor(ctx, a.index!.v, 'i64', a.index!.span)));
  },
  attention(ctx, pos, kw) {
    // softmax(q k^T * scale + bias) v, with the softmax in f32 as the reference implementations do
    const a = sig(ctx, 'attention', pos, kw);
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
    const a = sig(ctx, 'interpolate', pos, kw);
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

function reduceFn(ctx: BuiltinCtx, pos: Arg[], kw: Map<string, Arg>, name: string, op: 'ReduceMean' | 'ReduceSum' | 'ReduceMax'): Value {
  const a = sig(ctx, name, pos, kw);
  const t = T(ctx, a.x);
  const axes = a.dim ? ints(ctx, a.dim) : [...t.shape.keys()];
  return tv(ops.reduce(ctx, op, t, axes, Bo(ctx, a.keepdim, false)));
}
