/**
 * Pass: reduced-precision graphs run on CPU.
 *
 * onnxruntime's CPU provider has no bf16 kernels for MatMul, Conv, Add, ... (reference/toolchain.md §2),
 * so a graph compiled with `compute: bf16` cannot run there as is. `emulateBf16` rewrites it to compute
 * in f32 while rounding every value-producing op's result to bf16 (Cast f32->bf16->f32, which onnxruntime
 * keeps), so the numbers follow a real bf16 run closely (matmuls accumulate in f32 and round once, as
 * PyTorch's bf16 kernels do). Shape-only ops (reshape, transpose, slice, ...) need no rounding. bf16
 * weights stay bf16 in the checkpoint and are widened once (constant-folded at session creation).
 * Graph inputs and outputs keep their dtypes.
 */
import type { DType } from '../../core/dtype.ts';
import type { IrAttr, IrConstant, IrGraph, IrNode, IrValue } from '../../core/ir.ts';
import { bf16ToF32 } from '../../core/convert.ts';

const SHAPE_ONLY = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'Expand', 'Identity', 'Flatten', 'Pad', 'Where', 'Tile']);
const ONNX_F32 = 1;
const ONNX_BF16 = 16;

export function usesBf16Compute(g: IrGraph): boolean {
  return g.nodes.some((n) => n.outputs.some((o) => o.dtype === 'bf16'));
}

export function emulateBf16(g: IrGraph): IrGraph {
  let nextId = 1 + Math.max(0, ...g.inputs.map((v) => v.id), ...g.weights.map((w) => w.value.id), ...[...g.constants.keys()].map((v) => v.id), ...g.nodes.flatMap((n) => n.outputs.map((o) => o.id)));
  const names = new Set<string>([...g.inputs, ...g.weights.map((w) => w.value), ...g.constants.keys(), ...g.nodes.flatMap((n) => n.outputs)].map((v) => v.name));
  const fresh = (base: string, dtype: DType, shape: IrValue['shape']): IrValue => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return { id: nextId++, name, dtype, shape };
  };
  const nodes: IrNode[] = [];
  const map = new Map<IrValue, IrValue>();
  const castNode = (x: IrValue, y: IrValue, to: number, like?: IrNode): IrNode => ({ op: 'Cast', inputs: [x], outputs: [y], attrs: { to: { kind: 'int', value: to } }, ...(like?.source ? { source: like.source } : {}), ...(like?.scope ? { scope: like.scope } : {}) });
  /** y32 := round_bf16(x32) */
  const round = (x: IrValue, base: string, like?: IrNode): IrValue => {
    const b = fresh(`${base}__bf16`, 'bf16', x.shape);
    const y = fresh(`${base}__r`, 'f32', x.shape);
    nodes.push(castNode(x, b, ONNX_BF16, like), castNode(b, y, ONNX_F32, like));
    return y;
  };

  for (const v of g.inputs) {
    if (v.dtype !== 'bf16') continue;
    const f = fresh(`${v.name}__f32`, 'f32', v.shape);
    nodes.push(castNode(v, f, ONNX_F32));
    map.set(v, f);
  }
  for (const w of g.weights) {
    if (w.value.dtype !== 'bf16') continue;
    const f = fresh(`${w.value.name}__f32`, 'f32', w.value.shape);
    nodes.push(castNode(w.value, f, ONNX_F32));
    map.set(w.value, f);
  }
  const constants = new Map<IrValue, IrConstant>();
  for (const [v, c] of g.constants) {
    if (c.dtype !== 'bf16') {
      constants.set(v, c);
      continue;
    }
    const f32 = bf16ToF32(new Uint16Array(c.data.buffer.slice(c.data.byteOffset, c.data.byteOffset + c.data.byteLength)));
    const nv = fresh(`${v.name}__f32`, 'f32', v.shape);
    constants.set(nv, { dtype: 'f32', shape: c.shape, data: new Uint8Array(f32.buffer) });
    map.set(v, nv);
  }

  for (const n of g.nodes) {
    const inputs = n.inputs.map((v) => (v ? (map.get(v) ?? v) : null));
    if (n.op === 'Cast') {
      const to = (n.attrs.to as Extract<IrAttr, { kind: 'int' }>).value;
      const src = inputs[0]!;
      const out = n.outputs[0]!;
      if (to === ONNX_BF16) {
        // a cast down to bf16 becomes a rounding in f32
        const srcF = src.dtype === 'f32' ? src : (() => {
          const t = fresh(`${out.name}__in`, 'f32', src.shape);
          nodes.push(castNode(src, t, ONNX_F32, n));
          return t;
        })();
        map.set(out, round(srcF, out.name, n));
        continue;
      }
      if (src.dtype === 'f32' && out.dtype === 'f32') {
        nodes.push({ ...n, op: 'Identity', inputs: [src], attrs: {} });
        continue;
      }
      nodes.push({ ...n, inputs });
      continue;
    }
    const outputs = n.outputs.map((o) => {
      if (o.dtype !== 'bf16') return o;
      const f = fresh(`${o.name}__f32`, 'f32', o.shape);
      map.set(o, f);
      return f;
    });
    nodes.push({ ...n, inputs, outputs });
    if (!SHAPE_ONLY.has(n.op)) for (const o of n.outputs) if (o.dtype === 'bf16') map.set(o, round(map.get(o)!, o.name, n));
  }
  // graph outputs keep their declared dtype
  for (const o of g.outputs) {
    const m = map.get(o);
    if (!m) continue;
    nodes.push(castNode(m, o, o.dtype === 'bf16' ? ONNX_BF16 : ONNX_F32));
  }
  return { ...g, nodes, constants, metadata: { ...g.metadata, 'sorac.cpu_emulation': 'bf16 compute emulated in f32 with per-op bf16 rounding' } };
}

/** Whether a graph was already rewritten by emulateBf16. */
export function isCpuEmulated(g: IrGraph): boolean {
  return g.metadata['sorac.cpu_emulation'] !== undefined;
}
