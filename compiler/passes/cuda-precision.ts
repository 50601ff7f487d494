/**
 * Pass: reduced-precision graphs placed on onnxruntime's CUDA provider.
 *
 * ORT 1.29's CUDA provider has bf16 kernels for the heavy ops (MatMul, Gemm, Softmax,
 * LayerNormalization, the elementwise arithmetic, Conv from opset 22) but none for Pad, Clip,
 * Resize, ReduceMean/Max/Min, Log, Floor/Ceil/Round, Reciprocal, the comparisons and ConvTranspose
 * (cuda-kernels.ts, measured). A bf16 node of such an op has no kernel on *any* provider, and the
 * session cannot be created ("Provider type for Pad node ... is not set"). This pass places each
 * node whose op has no CUDA kernel for its reduced dtype at the graph's opset in f32: its bf16/f16
 * operands are cast up (exact), it computes in f32, and its results are rounded back once, which
 * is what a bf16 kernel with f32 accumulation computes. Every cast is recorded in `graph.casts` with
 * the reason, so `sorac build --target cuda --explain-dtypes` lists them.
 *
 * InstanceNormalization has no CUDA kernel at opset >= 22 in any dtype: ORT silently runs it on the
 * CPU provider with a device -> host -> device copy of the whole activation per node (52 nodes in
 * the SD VAE). At those opsets it is rewritten as ReduceMean-based normalisation in f32 (CUDA kernels
 * for every op involved).
 *
 * The pass is a pure function of the graph and the kernel table; graph inputs, outputs and weights
 * keep their dtypes.
 */
import type { DType } from '../../core/dtype.ts';
import type { IrCast, IrConstant, IrGraph, IrNode, IrValue } from '../../core/ir.ts';
import { CUDA_KERNELS_ORT_VERSION, type CudaKernelSupport, cudaHasKernel, ORT_1_29_CUDA_KERNELS } from './cuda-kernels.ts';

const ONNX_DT: Partial<Record<DType, number>> = { f32: 1, f16: 10, bf16: 16 };
type Reduced = 'bf16' | 'f16';

export interface CudaIsland {
  readonly op: string;
  readonly dtype: Reduced | 'f32';
  readonly count: number;
  readonly why: string;
}

export interface CudaLowering {
  readonly graph: IrGraph;
  /** Ops placed in f32 (or rewritten), with how many nodes and why. */
  readonly islands: readonly CudaIsland[];
}

function reducedDtypeOf(n: IrNode): Reduced | undefined {
  for (const v of [...n.inputs, ...n.outputs]) if (v && (v.dtype === 'bf16' || v.dtype === 'f16')) return v.dtype;
  return undefined;
}

/** Whether a constant holds only `value` (1 or 0) in its float dtype. */
function constantAll(c: IrConstant | undefined, value: 0 | 1): boolean {
  if (!c) return false;
  const dv = new DataView(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  const bits = { f32: value ? 0x3f800000 : 0, bf16: value ? 0x3f80 : 0, f16: value ? 0x3c00 : 0 } as const;
  if (c.dtype === 'f32') {
    for (let i = 0; i < c.data.byteLength; i += 4) if (dv.getUint32(i, true) !== bits.f32) return false;
    return true;
  }
  if (c.dtype === 'bf16' || c.dtype === 'f16') {
    for (let i = 0; i < c.data.byteLength; i += 2) if (dv.getUint16(i, true) !== bits[c.dtype]) return false;
    return true;
  }
  return false;
}

export function lowerForCuda(g: IrGraph, table: Readonly<Record<string, CudaKernelSupport>> = ORT_1_29_CUDA_KERNELS): CudaLowering {
  const all = [...g.inputs, ...g.weights.map((w) => w.value), ...g.constants.keys(), ...g.nodes.flatMap((n) => n.outputs)];
  let nextId = 1 + Math.max(0, ...all.map((v) => v.id));
  const names = new Set(all.map((v) => v.name));
  const fresh = (base: string, dtype: DType, shape: IrValue['shape']): IrValue => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return { id: nextId++, name, dtype, shape };
  };
  const nodes: IrNode[] = [];
  const constants = new Map(g.constants);
  const casts: IrCast[] = [...(g.casts ?? [])];
  const counts = new Map<string, CudaIsland>();
  const count = (op: string, dtype: CudaIsland['dtype'], why: string) => {
    const k = `${op}/${dtype}`;
    const c = counts.get(k);
    counts.set(k, { op, dtype, why, count: (c?.count ?? 0) + 1 });
  };
  const like = (n: IrNode) => ({ ...(n.source ? { source: n.source } : {}), ...(n.scope ? { scope: n.scope } : {}) });
  const castNode = (x: IrValue, y: IrValue, n: IrNode, reason: string): void => {
    nodes.push({ op: 'Cast', inputs: [x], outputs: [y], attrs: { to: { kind: 'int', value: ONNX_DT[y.dtype]! } }, ...like(n) });
    casts.push({ value: y, from: x.dtype, to: y.dtype, reason, ...(n.source ? { source: n.source } : {}), scope: n.scope ?? '' });
  };
  // one f32 copy per reduced value, shared by every island that reads it
  const up = new Map<IrValue, IrValue>();
  const toF32 = (v: IrValue, n: IrNode, reason: string): IrValue => {
    if (v.dtype === 'f32') return v;
    let w = up.get(v);
    if (!w) {
      w = fresh(`${v.name}__f32`, 'f32', v.shape);
      castNode(v, w, n, reason);
      up.set(v, w);
    }
    return w;
  };
  const i64 = (name: string, values: number[]): IrValue => {
    const v = fresh(name, 'i64', [values.length]);
    const data = new Uint8Array(values.length * 8);
    const dv = new DataView(data.buffer);
    values.forEach((x, i) => dv.setBigInt64(i * 8, BigInt(x), true));
    constants.set(v, { dtype: 'i64', shape: [values.length], data });
    return v;
  };

  for (const n of g.nodes) {
    const dt = reducedDtypeOf(n);
    if (n.op === 'InstanceNormalization' && !cudaHasKernel(n.op, dt ?? 'f32', g.opset, table)) {
      instanceNormF32(n, dt);
      continue;
    }
    if (!dt || n.op === 'Cast' || cudaHasKernel(n.op, dt, g.opset, table)) {
      nodes.push(n);
      continue;
    }
    const why = `${n.op} has no ${dt} CUDA kernel at opset ${g.opset} (onnxruntime ${CUDA_KERNELS_ORT_VERSION}): computed in f32`;
    count(n.op, dt, why);
    const inputs = n.inputs.map((v) => (v && v.dtype === dt ? toF32(v, n, why) : v));
    const back: [IrValue, IrValue][] = [];
    const outputs = n.outputs.map((o) => {
      if (o.dtype !== dt) return o;
      const f = fresh(`${o.name}__f32`, 'f32', o.shape);
      back.push([f, o]);
      return f;
    });
    nodes.push({ ...n, inputs, outputs });
    for (const [f, o] of back) castNode(f, o, n, `${why} (rounded back to ${dt})`);
  }

  /** InstanceNormalization(x, scale, bias) as ReduceMean-based normalisation in f32 (opset >= 18 forms). */
  function instanceNormF32(n: IrNode, dt: Reduced | undefined): void {
    const why = `InstanceNormalization has no CUDA kernel at opset ${g.opset} (onnxruntime ${CUDA_KERNELS_ORT_VERSION}: it would run on the CPU provider): decomposed in f32`;
    count(n.op, dt ?? 'f32', why);
    const [x0, s0, b0] = n.inputs;
    const y0 = n.outputs[0]!;
    const x = toF32(x0!, n, why);
    const rank = x.shape.length;
    const eps = n.attrs.epsilon?.kind === 'float' ? n.attrs.epsilon.value : 1e-5;
    const spatial = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    const statShape = x.shape.map((d, i) => (i >= 2 ? 1 : d));
    const axes = i64(`${y0.name}__axes`, spatial);
    const op = (opName: string, ins: IrValue[], out: IrValue, attrs: IrNode['attrs'] = {}) => nodes.push({ op: opName, inputs: ins, outputs: [out], attrs, ...like(n) });
    const mean = fresh(`${y0.name}__mean`, 'f32', statShape);
    op('ReduceMean', [x, axes], mean, { keepdims: { kind: 'int', value: 1 } });
    const d = fresh(`${y0.name}__centered`, 'f32', x.shape);
    op('Sub', [x, mean], d);
    const sq = fresh(`${y0.name}__sq`, 'f32', x.shape);
    op('Mul', [d, d], sq);
    const variance = fresh(`${y0.name}__var`, 'f32', statShape);
    op('ReduceMean', [sq, axes], variance, { keepdims: { kind: 'int', value: 1 } });
    const epsV = fresh(`${y0.name}__eps`, 'f32', []);
    constants.set(epsV, { dtype: 'f32', shape: [], data: new Uint8Array(Float32Array.of(eps).buffer) });
    const ve = fresh(`${y0.name}__var_eps`, 'f32', statShape);
    op('Add', [variance, epsV], ve);
    const sd = fresh(`${y0.name}__std`, 'f32', statShape);
    op('Sqrt', [ve], sd);
    let y = fresh(`${y0.name}__norm`, 'f32', x.shape);
    op('Div', [d, sd], y);
    // per-channel affine ([C] -> [C, 1, ...]), skipped for the identity scale/bias sorac's group_norm passes
    const affine = (p: IrValue | null | undefined, kind: 'Mul' | 'Add', identity: 0 | 1) => {
      if (!p || constantAll(g.constants.get(p), identity)) return;
      const pc = toF32(p, n, why);
      const ax = i64(`${y0.name}__${kind === 'Mul' ? 'scale' : 'bias'}_axes`, Array.from({ length: rank - 2 }, (_, i) => i + 1));
      const pr = fresh(`${pc.name}__bcast`, 'f32', [pc.shape[0]!, ...spatial.map(() => 1)]);
      op('Unsqueeze', [pc, ax], pr);
      const next = fresh(`${y0.name}__${kind === 'Mul' ? 'scaled' : 'shifted'}`, 'f32', x.shape);
      op(kind, [y, pr], next);
      y = next;
    };
    affine(s0, 'Mul', 1);
    affine(b0, 'Add', 0);
    if (y0.dtype === 'f32') op('Identity', [y], y0);
    else castNode(y, y0, n, `${why} (rounded back to ${y0.dtype})`);
  }

  const islands = [...counts.values()].sort((a, b) => a.op.localeCompare(b.op) || a.dtype.localeCompare(b.dtype));
  if (!islands.length) return { graph: g, islands };
  return {
    graph: { ...g, nodes, constants, casts, metadata: { ...g.metadata, 'sorac.cuda_lowering': `onnxruntime ${CUDA_KERNELS_ORT_VERSION} CUDA kernels: ${islands.map((i) => `${i.op}(${i.dtype})x${i.count}`).join(', ')}` } },
    islands,
  };
}

/** Whether a graph already went through lowerForCuda. */
export function isCudaLowered(g: IrGraph): boolean {
  return g.metadata['sorac.cuda_lowering'] !== undefined;
}

/** The nodes of `g` that have no CUDA kernel for their float dtype at the graph's opset (empty after lowerForCuda). */
export function cudaPlacementGaps(g: IrGraph, table: Readonly<Record<string, CudaKernelSupport>> = ORT_1_29_CUDA_KERNELS): { op: string; dtype: 'f32' | Reduced; node: number }[] {
  const out: { op: string; dtype: 'f32' | Reduced; node: number }[] = [];
  g.nodes.forEach((n, i) => {
    if (n.op === 'Cast') return;
    const floats = [...n.inputs, ...n.outputs].filter((v): v is IrValue => !!v && (v.dtype === 'f32' || v.dtype === 'f16' || v.dtype === 'bf16'));
    if (!floats.length) return;
    const dt = reducedDtypeOf(n) ?? 'f32';
    if (!cudaHasKernel(n.op, dt, g.opset, table)) out.push({ op: n.op, dtype: dt, node: i });
  });
  return out;
}
