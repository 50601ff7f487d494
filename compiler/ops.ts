/**
 * Tensor operations: shape and dtype rules plus ONNX (opset 17) emission. Every function
 * checks its inputs and reports a diagnostic at the caller's span on mismatch.
 */
import type { BinaryOp } from '../grammar/ast.ts';
import type { Span } from '../core/diagnostics.ts';
import { type DType, isFloat, isInt } from '../core/dtype.ts';
import { encodeConstant } from './graph.ts';
import type { IrDim, IrValue } from '../core/ir.ts';
import type { BuiltinCtx } from './context.ts';
import { Sym } from './sym.ts';
import type { Tensor, TensorSlot, Value } from './values.ts';
import { typeName } from './values.ts';

export type Ctx = BuiltinCtx;

export function irShape(shape: readonly Sym[]): IrDim[] {
  return shape.map((s) => s.value() ?? s.toString());
}

export function fmtShape(shape: readonly Sym[]): string {
  return `[${shape.map(String).join(', ')}]`;
}

/**
 * The first opset whose ONNX schema admits a reduced dtype for these ops (Infinity: none up to
 * opset 26, the newest sorac emits). Below it a bf16/f16 node would be an invalid model, so the op
 * is computed in f32 and its result rounded once, on every target. Ops whose schema has the dtype
 * but onnxruntime has no kernel for it (Pad, Resize, ReduceMean in bf16, ...) are the device passes'
 * business (compiler/passes/), not the schema's. (Resize has had bf16 in its schema since opset 13.)
 */
const SCHEMA_SINCE: Readonly<Record<'bf16' | 'f16', Readonly<Record<string, number>>>> = {
  bf16: { Conv: 22, ConvTranspose: 22, Sin: 22, Cos: 22, InstanceNormalization: 22, Round: 22, Einsum: Infinity, Range: Infinity },
  f16: { Range: Infinity },
};

/** Whether the ONNX schema of `op` lacks `dtype` at `opset`. */
export function schemaLacksDtype(op: string, dtype: DType, opset: number): boolean {
  if (dtype !== 'bf16' && dtype !== 'f16') return false;
  const since = SCHEMA_SINCE[dtype][op];
  return since !== undefined && opset < since;
}

export function mk(ctx: Ctx, op: string, inputs: (IrValue | null)[], dtype: DType, shape: readonly Sym[], attrs: Record<string, unknown> = {}): Tensor {
  if (schemaLacksDtype(op, dtype, ctx.g.opset)) {
    // compute in f32 and round the result once: what bf16 kernels with f32 accumulation do
    const since = SCHEMA_SINCE[dtype as 'bf16' | 'f16'][op]!;
    const why = `${op} has no ${dtype} type ${since === Infinity ? 'in its ONNX schema' : `before opset ${since}`} (target opset ${ctx.g.opset})`;
    const ins = inputs.map((v) => {
      if (!v || v.dtype !== dtype) return v;
      const w = ctx.g.op1('Cast', [v], 'f32', v.shape, { to: 1 });
      ctx.g.recordCast(w, dtype, 'f32', why);
      return w;
    });
    const y = ctx.g.op1(op, ins, 'f32', irShape(shape), attrs as never);
    return cast(ctx, { dtype: 'f32', shape, ir: y }, dtype, `${why} (back)`);
  }
  const ir = ctx.g.op1(op, inputs, dtype, irShape(shape), attrs as never);
  return { dtype, shape, ir };
}

export function loadSlot(ctx: Ctx, slot: TensorSlot): Tensor {
  const ir = ctx.g.weight(slot.key, slot.dtype, slot.shape);
  const t: Tensor = { dtype: slot.dtype, shape: slot.shape.map((n) => Sym.const(n)), ir };
  const compute = ctx.compute;
  if (isFloat(slot.dtype) && slot.dtype !== compute) return cast(ctx, t, compute, `${slot.key}: storage ${slot.dtype} -> compute ${compute}`);
  return t;
}

export function constTensor(ctx: Ctx, values: readonly number[], dtype: DType, shape: readonly number[]): Tensor {
  const ir = ctx.g.constant(encodeConstant(values, dtype, shape));
  return { dtype, shape: shape.map((n) => Sym.const(n)), ir };
}

export function scalar(ctx: Ctx, v: number, dtype: DType): Tensor {
  return constTensor(ctx, [v], dtype, []);
}

export function dimTensor(ctx: Ctx, s: Sym, dtype: DType): Tensor {
  const c = s.value();
  if (c !== undefined) return scalar(ctx, c, dtype);
  const v = ctx.g.dimScalar(s);
  const t: Tensor = { dtype: 'i64', shape: [], ir: v };
  return dtype === 'i64' ? t : cast(ctx, t, dtype);
}

export function cast(ctx: Ctx, t: Tensor, dtype: DType, reason = 'explicit cast()'): Tensor {
  if (t.dtype === dtype) return t;
  const ONNX: Record<string, number> = { f32: 1, u8: 2, i8: 3, i16: 5, i32: 6, i64: 7, bool: 9, f16: 10, f64: 11, bf16: 16 };
  const out = mk(ctx, 'Cast', [t.ir], dtype, t.shape, { to: ONNX[dtype] });
  if (isFloat(t.dtype) && isFloat(dtype)) ctx.g.recordCast(out.ir, t.dtype, dtype, reason);
  return out;
}

/** Turn a Value into a tensor; scalars adopt `like`'s dtype. */
export function asTensor(ctx: Ctx, v: Value, like: DType | undefined, span: Span): Tensor {
  switch (v.k) {
    case 'tensor':
      return v.t;
    case 'slot':
      return loadSlot(ctx, v.slot);
    case 'int':
      return scalar(ctx, v.v, like ?? 'i64');
    case 'float':
      return scalar(ctx, v.v, like && isFloat(like) ? like : ctx.compute);
    case 'bool':
      return scalar(ctx, v.v ? 1 : 0, like ?? 'bool');
    case 'dim':
      return dimTensor(ctx, v.s, like ?? 'i64');
    case 'list':
    case 'tuple': {
      const nums = v.items.map((x) => (x.k === 'int' || x.k === 'float' ? x.v : NaN));
      if (nums.some((n) => Number.isNaN(n))) return ctx.interp.error('SORA3001', `cannot make a tensor from ${typeName(v)}`, span);
      const allInt = v.items.every((x) => x.k === 'int');
      return constTensor(ctx, nums, like ?? (allInt ? 'i64' : ctx.compute), [nums.length]);
    }
    default:
      return ctx.interp.error('SORA3001', `expected a tensor, got ${typeName(v)}`, span);
  }
}

export function broadcast(ctx: Ctx, a: readonly Sym[], b: readonly Sym[], what: string, spanA?: Span, spanB?: Span): Sym[] {
  const n = Math.max(a.length, b.length);
  const out: Sym[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i];
    const y = b[b.length - n + i];
    if (!x) out.push(y!);
    else if (!y) out.push(x);
    else if (x.equals(y)) out.push(x);
    else if (x.value() === 1) out.push(y);
    else if (y.value() === 1) out.push(x);
    else
      ctx.interp.error('SORA3005', `${what}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dimension ${i - n} is ${x} vs ${y})`, ctx.span, {
        related: [...(spanA ? [{ span: spanA, message: `left operand ${fmtShape(a)}` }] : []), ...(spanB ? [{ span: spanB, message: `right operand ${fmtShape(b)}` }] : [])],
        hint: 'reshape or rearrange one side so the dimensions line up (a size-1 dimension broadcasts)',
      });
  }
  return out;
}

const BIN: Partial<Record<BinaryOp, string>> = { '+': 'Add', '-': 'Sub', '*': 'Mul', '/': 'Div', '**': 'Pow', '==': 'Equal', '<': 'Less', '<=': 'LessOrEqual', '>': 'Greater', '>=': 'GreaterOrEqual' };

export function binaryValues(ctx: Ctx, op: BinaryOp, l: Value, r: Value, lspan: Span, rspan: Span): Tensor {
  const isT = (v: Value) => v.k === 'tensor' || v.k === 'slot';
  let a: Tensor;
  let b: Tensor;
  if (isT(l)) {
    a = asTensor(ctx, l, undefined, lspan);
    b = asTensor(ctx, r, a.dtype, rspan);
  } else if (isT(r)) {
    b = asTensor(ctx, r, undefined, rspan);
    a = asTensor(ctx, l, b.dtype, lspan);
  } else {
    // dim with float: runtime scalar arithmetic in the compute dtype
    const dt = ctx.compute;
    a = asTensor(ctx, l, dt, lspan);
    b = asTensor(ctx, r, dt, rspan);
  }
  return binary(ctx, op, a, b, lspan, rspan);
}

export function binary(ctx: Ctx, op: BinaryOp, a: Tensor, b: Tensor, lspan?: Span, rspan?: Span): Tensor {
  if (op === '@') return matmul(ctx, a, b, lspan, rspan);
  if (a.dtype !== b.dtype) {
    // no implicit conversion between tensors: scalars adopt the tensor's dtype (asTensor), everything
    // else must be an explicit cast() or a cast placed by the dtype policy
    dtypeConflict(ctx, `"${op}" mixes ${a.dtype} and ${b.dtype}`, a.dtype, b.dtype, lspan, rspan);
  }
  const shape = broadcast(ctx, a.shape, b.shape, `"${op}"`, lspan, rspan);
  switch (op) {
    case '!=': {
      const eq = mk(ctx, 'Equal', [a.ir, b.ir], 'bool', shape);
      return mk(ctx, 'Not', [eq.ir], 'bool', shape);
    }
    case '%':
      return mk(ctx, 'Mod', [a.ir, b.ir], a.dtype, shape, isFloat(a.dtype) ? { fmod: 1 } : {});
    case '//': {
      const d = mk(ctx, 'Div', [a.ir, b.ir], a.dtype, shape);
      return isFloat(a.dtype) ? mk(ctx, 'Floor', [d.ir], a.dtype, shape) : d;
    }
    case 'and':
    case 'or':
      return mk(ctx, op === 'and' ? 'And' : 'Or', [a.ir, b.ir], 'bool', shape);
    default: {
      const onnx = BIN[op];
      if (!onnx) return ctx.interp.error('SORA3001', `operator "${op}" is not defined on tensors`, ctx.span);
      const cmp = op === '==' || op === '<' || op === '<=' || op === '>' || op === '>=';
      if (op === '**' && b.shape.length === 0) {
        // x ** 2 as Mul keeps it exact and fast
        const c = constValue(ctx, b);
        if (c === 2) return mk(ctx, 'Mul', [a.ir, a.ir], a.dtype, a.shape);
        if (c === 3) {
          const sq = mk(ctx, 'Mul', [a.ir, a.ir], a.dtype, a.shape);
          return mk(ctx, 'Mul', [sq.ir, a.ir], a.dtype, a.shape);
        }
      }
      return mk(ctx, onnx, [a.ir, b.ir], cmp ? 'bool' : a.dtype, shape);
    }
  }
}

/** The numeric value of a scalar constant tensor, if it is one. */
export function constValue(ctx: Ctx, t: Tensor): number | undefined {
  const c = ctx.g.constants.get(t.ir);
  if (!c || c.shape.length !== 0) return undefined;
  const dv = new DataView(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  switch (c.dtype) {
    case 'f32': return dv.getFloat32(0, true);
    case 'f64': return dv.getFloat64(0, true);
    case 'i64': return Number(dv.getBigInt64(0, true));
    case 'i32': return dv.getInt32(0, true);
    case 'bf16': {
      const f = new DataView(new ArrayBuffer(4));
      f.setUint32(0, dv.getUint16(0, true) << 16);
      return f.getFloat32(0);
    }
    default: return undefined;
  }
}

export function unary(ctx: Ctx, op: string, t: Tensor, attrs: Record<string, unknown> = {}): Tensor {
  return mk(ctx, op, [t.ir], t.dtype, t.shape, attrs);
}

export function requireFloat(ctx: Ctx, t: Tensor, what: string): void {
  if (!isFloat(t.dtype)) ctx.interp.error('SORA3008', `${what} needs a floating-point tensor, got ${t.dtype}`, ctx.span, { hint: `cast it first: cast(x, f32)` });
}

/**
 * A dtype conflict, with related locations for both operands and the policy lines that decide dtypes
 * (rules given with `--dtype` have no source line: they are notes), and the module path it happened in.
 */
export function dtypeConflict(ctx: Ctx, message: string, da: DType, db: DType, lspan?: Span, rspan?: Span, opts: { rules?: readonly string[]; hint?: string } = {}): never {
  const related = [...(lspan ? [{ span: lspan, message: `this is ${da}` }] : []), ...(rspan ? [{ span: rspan, message: `this is ${db}` }] : [])];
  const notes: string[] = [];
  if (ctx.g.scope) notes.push(`in module ${ctx.g.scope}`);
  for (const k of opts.rules ?? ['compute', 'params', 'f32', 'modules']) {
    const sp = ctx.policy.spans[k];
    if (!sp) continue;
    if (sp.file.startsWith('--dtype ')) notes.push(`dtype policy rule "${k}" from ${sp.file}`);
    else related.push({ span: sp, message: `dtype policy rule "${k}"` });
  }
  return ctx.interp.error('SORA3008', message, ctx.span, {
    related,
    notes,
    hint: opts.hint ?? `cast one side explicitly (cast(x, ${da}) or cast(y, ${db})), or change the dtype policy so both sides agree (compute dtype is ${ctx.compute})`,
  });
}

export function matmul(ctx: Ctx, a: Tensor, b: Tensor, lspan?: Span, rspan?: Span): Tensor {
  if (a.dtype !== b.dtype) dtypeConflict(ctx, `matmul of ${a.dtype} and ${b.dtype}`, a.dtype, b.dtype, lspan, rspan);
  if (a.shape.length < 2 || b.shape.length < 2) ctx.interp.error('SORA3004', `matmul needs tensors of rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`, ctx.span);
  const k1 = a.shape[a.shape.length - 1]!;
  const k2 = b.shape[b.shape.length - 2]!;
  if (!k1.equals(k2))
    ctx.interp.error('SORA3006', `matmul inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${k1} vs ${k2})`, ctx.span, {
      related: [...(lspan ? [{ span: lspan, message: `left is ${fmtShape(a.shape)}` }] : []), ...(rspan ? [{ span: rspan, message: `right is ${fmtShape(b.shape)}` }] : [])],
      hint: 'the last dimension of the left operand must equal the second-to-last of the right one; transpose one side?',
    });
  const batch = broadcast(ctx, a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul batch dimensions');
  return mk(ctx, 'MatMul', [a.ir, b.ir], a.dtype, [...batch, a.shape[a.shape.length - 2]!, b.shape[b.shape.length - 1]!]);
}

export function normAxis(ctx: Ctx, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.interp.error('SORA3012', `axis ${axis} is out of range for a tensor of rank ${rank}`, ctx.span);
  return a;
}

export function numel(shape: readonly Sym[]): Sym {
  return shape.reduce((a, b) => a.mul(b), Sym.const(1));
}

export function reshape(ctx: Ctx, t: Tensor, dims: readonly Sym[]): Tensor {
  if (dims.length === t.shape.length && dims.every((d, i) => d.equals(t.shape[i]!))) return t;
  const a = numel(t.shape);
  const b = numel(dims);
  if (!a.equals(b) && a.isConst() && b.isConst())
    ctx.interp.error('SORA3002', `cannot reshape ${fmtShape(t.shape)} (${a} elements) to ${fmtShape(dims)} (${b} elements)`, ctx.span);
  // use -1 for a single symbolic dimension to keep the shape vector constant
  const sym = dims.filter((d) => !d.isConst());
  if (sym.length === 1) return mk(ctx, 'Reshape', [t.ir, ctx.g.constI64(dims.map((d) => d.value() ?? -1))], t.dtype, dims);
  // a runtime size of 0 means 0 (not "copy the input dimension"): allowzero, from opset 14
  return mk(ctx, 'Reshape', [t.ir, ctx.g.shapeVector(dims)], t.dtype, dims, sym.length ? { allowzero: 1 } : {});
}

export function transpose(ctx: Ctx, t: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i)) return t;
  return mk(ctx, 'Transpose', [t.ir], t.dtype, perm.map((p) => t.shape[p]!), { perm: [...perm] });
}

export function transposeLast(ctx: Ctx, t: Tensor): Tensor {
  const r = t.shape.length;
  if (r < 2) return t;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return transpose(ctx, t, perm);
}

export function unsqueeze(ctx: Ctx, t: Tensor, axes: readonly number[]): Tensor {
  const rank = t.shape.length + axes.length;
  const norm = axes.map((a) => (a < 0 ? a + rank : a)).sort((x, y) => x - y);
  const shape = [...t.shape];
  for (const a of norm) shape.splice(a, 0, Sym.const(1));
  return mk(ctx, 'Unsqueeze', [t.ir, ctx.g.constI64(norm)], t.dtype, shape);
}

export function squeeze(ctx: Ctx, t: Tensor, axes: readonly number[]): Tensor {
  const norm = axes.map((a) => normAxis(ctx, a, t.shape.length));
  for (const a of norm) if (t.shape[a]!.value() !== 1) ctx.interp.error('SORA3002', `cannot squeeze axis ${a} of ${fmtShape(t.shape)}: its size is ${t.shape[a]}, not 1`, ctx.span);
  return mk(ctx, 'Squeeze', [t.ir, ctx.g.constI64(norm)], t.dtype, t.shape.filter((_, i) => !norm.includes(i)));
}

export function concat(ctx: Ctx, ts: readonly Tensor[], axis: number): Tensor {
  if (!ts.length) ctx.interp.error('SORA3012', 'concat of an empty list', ctx.span);
  if (ts.length === 1) return ts[0]!;
  const rank = ts[0]!.shape.length;
  const ax = normAxis(ctx, axis, rank);
  const dtype = ts[0]!.dtype;
  let total = Sym.const(0);
  for (const t of ts) {
    if (t.dtype !== dtype) ctx.interp.error('SORA3008', `concat mixes ${dtype} and ${t.dtype}`, ctx.span);
    if (t.shape.length !== rank) ctx.interp.error('SORA3004', `concat of tensors with ranks ${rank} and ${t.shape.length}`, ctx.span);
    t.shape.forEach((d, i) => {
      if (i !== ax && !d.equals(ts[0]!.shape[i]!)) ctx.interp.error('SORA3002', `concat along axis ${ax}: shapes ${fmtShape(ts[0]!.shape)} and ${fmtShape(t.shape)} differ at axis ${i}`, ctx.span);
    });
    total = total.add(t.shape[ax]!);
  }
  const shape = [...ts[0]!.shape];
  shape[ax] = total;
  return mk(ctx, 'Concat', ts.map((t) => t.ir), dtype, shape, { axis: ax });
}

export function split(ctx: Ctx, t: Tensor, sizes: readonly Sym[], axis: number): Tensor[] {
  const ax = normAxis(ctx, axis, t.shape.length);
  const total = sizes.reduce((a, b) => a.add(b), Sym.const(0));
  if (!total.equals(t.shape[ax]!)) ctx.interp.error('SORA3002', `split sizes [${sizes.join(', ')}] add up to ${total}, but axis ${ax} of ${fmtShape(t.shape)} is ${t.shape[ax]}`, ctx.span);
  if (sizes.length === 1) return [t];
  const outs = sizes.map((s) => {
    const shape = [...t.shape];
    shape[ax] = s;
    return { dtype: t.dtype, shape, ir: ctx.g.value(t.dtype, irShape(shape)) } as Tensor;
  });
  ctx.g.node('Split', [t.ir, ctx.g.shapeVector(sizes)], outs.map((o) => o.ir), { axis: ax });
  return outs;
}

export function slice(ctx: Ctx, t: Tensor, axis: number, start: Sym, stop: Sym | undefined, step: number): Tensor {
  const ax = normAxis(ctx, axis, t.shape.length);
  const dim = t.shape[ax]!;
  if (step <= 0) ctx.interp.error('SORA3012', 'slice steps must be positive', ctx.span);
  const clamp = (s: Sym): Sym => {
    const v = s.value();
    const d = dim.value();
    if (v !== undefined && v < 0) return d !== undefined ? Sym.const(Math.max(0, d + v)) : dim.add(v);
    if (v !== undefined && d !== undefined) return Sym.const(Math.min(v, d));
    return s;
  };
  const st = clamp(start);
  const en = stop ? clamp(stop) : dim;
  if (st.value() === 0 && en.equals(dim) && step === 1) return t;
  const len = en.sub(st).add(step - 1).floorDiv(step);
  const shape = [...t.shape];
  shape[ax] = len;
  const startV = ctx.g.shapeVector([st]);
  const endV = stop ? ctx.g.shapeVector([en]) : ctx.g.constI64([Number.MAX_SAFE_INTEGER]);
  return mk(ctx, 'Slice', [t.ir, startV, endV, ctx.g.constI64([ax]), ctx.g.constI64([step])], t.dtype, shape);
}

export function gatherScalar(ctx: Ctx, t: Tensor, axis: number, index: Tensor): Tensor {
  const ax = normAxis(ctx, axis, t.shape.length);
  if (!isInt(index.dtype)) ctx.interp.error('SORA3008', `an index must be an integer tensor, got ${index.dtype}`, ctx.span);
  const shape = [...t.shape.slice(0, ax), ...index.shape, ...t.shape.slice(ax + 1)];
  return mk(ctx, 'Gather', [t.ir, index.ir], t.dtype, shape, { axis: ax });
}

type IndexArg = { kind: 'at'; index: Value; span: Span } | { kind: 'slice'; start?: Value; stop?: Value; step?: Value; span: Span } | { kind: 'ellipsis' | 'newaxis'; span: Span };

export function index(ctx: Ctx, t: Tensor, items: readonly IndexArg[]): Tensor {
  const consumes = items.filter((i) => i.kind === 'at' || i.kind === 'slice').length;
  const ellIdx = items.findIndex((i) => i.kind === 'ellipsis');
  if (consumes > t.shape.length) ctx.interp.error('SORA3004', `too many indices (${consumes}) for a tensor of rank ${t.shape.length}`, ctx.span);
  // expand the ellipsis into full slices
  const expanded: IndexArg[] = [];
  for (const it of items) {
    if (it.kind === 'ellipsis') {
      for (let j = 0; j < t.shape.length - consumes; j++) expanded.push({ kind: 'slice', span: it.span });
    } else expanded.push(it);
  }
  if (ellIdx < 0) while (expanded.filter((i) => i.kind !== 'newaxis').length < t.shape.length) expanded.push({ kind: 'slice', span: ctx.span });
  const toSym = (v: Value | undefined, span: Span): Sym | undefined => {
    if (!v || v.k === 'none') return undefined;
    if (v.k === 'int') return Sym.const(v.v);
    if (v.k === 'dim') return v.s;
    return ctx.interp.error('SORA3011', `slice bounds must be ints or dimensions, got ${typeName(v)}`, span);
  };
  let cur = t;
  let axis = 0;
  const newAxes: number[] = [];
  const dropAxes: number[] = [];
  for (const it of expanded) {
    if (it.kind === 'newaxis') {
      newAxes.push(axis);
      continue;
    }
    if (it.kind === 'slice') {
      const st = toSym(it.start, it.span) ?? Sym.const(0);
      const en = toSym(it.stop, it.span);
      const stepV = it.step ? toSym(it.step, it.span)?.value() : 1;
      if (stepV === undefined) ctx.interp.error('SORA3011', 'slice step must be a constant', it.span);
      cur = slice(ctx, cur, axis, st, en, stepV);
      axis++;
      continue;
    }
    if (it.kind === 'at') {
      const v = it.index;
      if (v.k === 'int' || v.k === 'dim') {
        const s = v.k === 'int' ? Sym.const(v.v) : v.s;
        const c = s.value();
        const d = cur.shape[axis]!.value();
        const start = c !== undefined && c < 0 && d !== undefined ? Sym.const(d + c) : s;
        cur = slice(ctx, cur, axis, start, start.add(1), 1);
        dropAxes.push(axis);
        axis++;
        continue;
      }
      const idx = asTensor(ctx, v, 'i64', it.span);
      // tensor index: gather (removes the axis, inserts the index's dims)
      const before = cur.shape.length;
      cur = gatherScalar(ctx, cur, axis, idx);
      axis += cur.shape.length - before + 1;
      continue;
    }
  }
  if (dropAxes.length) cur = squeeze(ctx, cur, dropAxes);
  if (newAxes.length) {
    // positions refer to the original item order; recompute against the output rank
    const adjusted = newAxes.map((a, i) => a - dropAxes.filter((d) => d < a).length + i);
    cur = unsqueeze(ctx, cur, adjusted);
  }
  return cur;
}

export function expand(ctx: Ctx, t: Tensor, shape: readonly Sym[]): Tensor {
  const out = broadcast(ctx, t.shape, shape, 'expand');
  if (out.length === t.shape.length && out.every((d, i) => d.equals(t.shape[i]!))) return t;
  return mk(ctx, 'Expand', [t.ir, ctx.g.shapeVector(shape)], t.dtype, out);
}

export function where(ctx: Ctx, c: Tensor, a: Tensor, b: Tensor): Tensor {
  if (c.dtype !== 'bool') c = cast(ctx, c, 'bool');
  if (a.dtype !== b.dtype) ctx.interp.error('SORA3008', `where() branches have dtypes ${a.dtype} and ${b.dtype}`, ctx.span);
  const s1 = broadcast(ctx, c.shape, a.shape, 'where');
  const shape = broadcast(ctx, s1, b.shape, 'where');
  return mk(ctx, 'Where', [c.ir, a.ir, b.ir], a.dtype, shape);
}

export function reduce(ctx: Ctx, op: 'ReduceMean' | 'ReduceSum' | 'ReduceMax' | 'ReduceMin', t: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  const norm = axes.map((a) => normAxis(ctx, a, t.shape.length)).sort((x, y) => x - y);
  const shape = keepdims ? t.shape.map((d, i) => (norm.includes(i) ? Sym.const(1) : d)) : t.shape.filter((_, i) => !norm.includes(i));
  // ReduceSum takes axes as an input from opset 13, the other reductions from opset 18
  if (op === 'ReduceSum' || ctx.g.opset >= 18) return mk(ctx, op, [t.ir, ctx.g.constI64(norm)], t.dtype, shape, { keepdims: keepdims ? 1 : 0 });
  return mk(ctx, op, [t.ir], t.dtype, shape, { axes: norm, keepdims: keepdims ? 1 : 0 });
}

export function softmax(ctx: Ctx, t: Tensor, axis: number): Tensor {
  requireFloat(ctx, t, 'softmax');
  return mk(ctx, 'Softmax', [t.ir], t.dtype, t.shape, { axis: normAxis(ctx, axis, t.shape.length) });
}

export function pad(ctx: Ctx, t: Tensor, pads: readonly [Sym, Sym][], mode: 'constant' | 'reflect' | 'edge', value: number): Tensor {
  // pads: per axis (begin, end) for every axis
  if (pads.every(([a, b]) => a.value() === 0 && b.value() === 0)) return t;
  const vec = ctx.g.shapeVector([...pads.map((p) => p[0]), ...pads.map((p) => p[1])]);
  const shape = t.shape.map((d, i) => d.add(pads[i]![0]).add(pads[i]![1]));
  const inputs: (IrValue | null)[] = [t.ir, vec];
  if (mode === 'constant' && value !== 0) inputs.push(scalar(ctx, value, t.dtype).ir);
  return mk(ctx, 'Pad', inputs, t.dtype, shape, { mode });
}

export function convOut(inp: Sym, k: number, stride: number, padBegin: number, padEnd: number, dil: number): Sym {
  return inp.add(padBegin + padEnd - dil * (k - 1) - 1).floorDiv(stride).add(1);
}

export function conv(ctx: Ctx, x: Tensor, w: Tensor, b: Tensor | undefined, strides: number[], pads: number[], dilations: number[], groups: number): Tensor {
  const nsp = w.shape.length - 2;
  if (x.shape.length !== nsp + 2) ctx.interp.error('SORA3004', `conv with a ${nsp}-D kernel ${fmtShape(w.shape)} needs an input of rank ${nsp + 2}, got ${fmtShape(x.shape)}`, ctx.span);
  if (x.dtype !== w.dtype)
    dtypeConflict(ctx, `conv input is ${x.dtype} but the weight is ${w.dtype}`, x.dtype, w.dtype, undefined, undefined, {
      rules: ['inputs', 'compute', 'params', 'f32', 'modules'],
      hint: 'this is the classic "Input type and weight type should be the same" error: cast the input or set `inputs: cast` in the dtype block',
    });
  const cin = x.shape[1]!;
  const wc = w.shape[1]!.mul(groups);
  if (!cin.equals(wc)) ctx.interp.error('SORA3002', `conv input has ${cin} channels but the weight ${fmtShape(w.shape)} expects ${wc} (groups=${groups})`, ctx.span);
  const ks = w.shape.slice(2).map((d) => d.value()!);
  const out = [x.shape[0]!, w.shape[0]!, ...x.shape.slice(2).map((d, i) => convOut(d, ks[i]!, strides[i]!, pads[i]!, pads[i + nsp]!, dilations[i]!))];
  const inputs = [x.ir, w.ir, ...(b ? [b.ir] : [])];
  return mk(ctx, 'Conv', inputs, x.dtype, out, { kernel_shape: ks, strides, pads, dilations, group: groups });
}

export function range(ctx: Ctx, start: Tensor, limit: Tensor, delta: Tensor, dtype: DType, len: Sym): Tensor {
  return mk(ctx, 'Range', [cast(ctx, start, dtype).ir, cast(ctx, limit, dtype).ir, cast(ctx, delta, dtype).ir], dtype, [len]);
}
