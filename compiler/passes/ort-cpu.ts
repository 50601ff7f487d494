/**
 * Pass: the graph as onnxruntime runs it fastest (`sorac build --target ort`, and every session
 * `sorac run` / `sorac generate` opens on CPU). Standard-opset ONNX plus, where onnxruntime's CPU
 * provider has a faster fused kernel, nodes of its contrib domain (`com.microsoft`, version 1), which
 * other runtimes do not have (the plain graph of `sorac build` without --target has none):
 *
 * - common subexpressions merged: the tracer rebuilds the same shape vectors (Unsqueeze of a
 *   Shape->Gather, products of dimensions, Concat of those) at every Reshape; equal constants
 *   (same dtype, shape and bytes) count as one value, so the chains that use them merge too;
 * - Identity nodes dropped (their output is renamed to their input's use);
 * - nodes whose outputs nothing uses removed, and the constants nothing uses;
 * - in the tanh GELU (f32), x*x*x written Pow(x, 3): the form onnxruntime's FastGeluFusion
 *   recognises, so the session runs the whole GELU as one FastGelu kernel (nine elementwise passes
 *   over the MLP's widest activation become one);
 * - a residual Add feeding a LayerNormalization (f32, [B, S, H], both addends of that shape, scale
 *   and bias weights or constants) fused into one com.microsoft SkipLayerNormalization, whose fourth
 *   output is the sum for the Add's other users: onnxruntime 1.29's LayerNormalization CPU kernel
 *   is not vectorised, SkipLayerNormalization's is (STDiT3 medium: 34 ms of LayerNorm per forward
 *   become ~8 ms, and one pass over the residual stream per norm is saved).
 *
 * The fused kernels compute the same formulas; the numbers move by float rounding only (the golden
 * cases agree with the plain graph to 1e-5: tests/parity/targets.test.ts), well under the parity
 * tolerances. Graph inputs and outputs keep their names and order; a node that produces a graph
 * output is never merged away. Random ops are never merged (two draws are not one). */
import type { IrAttr, IrConstant, IrGraph, IrNode, IrValue } from '../../core/ir.ts';

/** Ops whose two evaluations on equal inputs may differ. */
const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Multinomial', 'Dropout', 'Bernoulli']);
/** Constants larger than this are not compared byte by byte (weights-sized tables are rare and unique). */
const MAX_CONST_BYTES = 1 << 16;

export interface OrtCpuResult {
  readonly graph: IrGraph;
  readonly removed: { readonly merged: number; readonly identity: number; readonly dead: number };
  /** tanh GELUs rewritten into the form onnxruntime fuses to FastGelu */
  readonly gelus: number;
  /** residual Add + LayerNormalization pairs fused into com.microsoft SkipLayerNormalization */
  readonly skipLayerNorms: number;
}

export function optimizeForOrt(g: IrGraph): OrtCpuResult {
  const r = mergeAndPrune(g);
  const gelu = geluCubeAsPow(r.graph);
  const merged = gelu.count ? mergeAndPrune(gelu.graph).graph : r.graph;
  const sln = skipLayerNorms(merged);
  return { graph: sln.graph, removed: r.removed, gelus: gelu.count, skipLayerNorms: sln.count };
}

function mergeAndPrune(g: IrGraph): Omit<OrtCpuResult, 'gelus' | 'skipLayerNorms'> {
  const outputSet = new Set<IrValue>(g.outputs);
  const canon = new Map<IrValue, IrValue>();
  const rep = (v: IrValue | null): IrValue | null => (v === null ? null : canon.get(v) ?? v);

  // equal constants -> one value
  const constByKey = new Map<string, IrValue>();
  for (const [v, c] of g.constants) {
    if (c.data.byteLength > MAX_CONST_BYTES) continue;
    const k = `${c.dtype}|${c.shape.join(',')}|${hex(c.data)}`;
    const first = constByKey.get(k);
    if (first && first.dtype === v.dtype) canon.set(v, first);
    else constByKey.set(k, v);
  }

  let merged = 0;
  let identity = 0;
  const seen = new Map<string, IrNode>();
  const kept: IrNode[] = [];
  for (const n0 of g.nodes) {
    const n: IrNode = n0.inputs.some((i) => i !== null && canon.has(i)) ? { ...n0, inputs: n0.inputs.map(rep) } : n0;
    const producesOutput = n.outputs.some((o) => outputSet.has(o));
    if (n.op === 'Identity' && !producesOutput && n.inputs.length === 1 && n.inputs[0] && n.outputs.length === 1) {
      canon.set(n.outputs[0]!, n.inputs[0]);
      identity++;
      continue;
    }
    if (!NONDETERMINISTIC.has(n.op) && n.outputs.length > 0) {
      const key = `${n.domain ? `${n.domain}.` : ''}${n.op}(${n.inputs.map((i) => (i === null ? '_' : i.id)).join(',')})${attrKey(n.attrs)}`;
      const prev = seen.get(key);
      if (prev && !producesOutput && prev.outputs.length === n.outputs.length && prev.outputs.every((o, i) => o.dtype === n.outputs[i]!.dtype)) {
        n.outputs.forEach((o, i) => canon.set(o, prev.outputs[i]!));
        merged++;
        continue;
      }
      if (!prev) seen.set(key, n);
    }
    kept.push(n);
  }

  // dead nodes: nothing downstream uses any output
  const used = new Set<IrValue>(g.outputs);
  const live: IrNode[] = [];
  for (let i = kept.length - 1; i >= 0; i--) {
    const n = kept[i]!;
    if (!n.outputs.some((o) => used.has(o))) continue;
    live.push(n);
    for (const x of n.inputs) if (x) used.add(x);
  }
  live.reverse();
  const dead = kept.length - live.length;
  const constants = new Map<IrValue, IrConstant>();
  for (const [v, c] of g.constants) if (used.has(v)) constants.set(v, c);
  const graph: IrGraph = {
    ...g,
    nodes: live,
    constants,
    ...(g.casts ? { casts: g.casts.filter((c) => !canon.has(c.value)) } : {}),
  };
  return { graph, removed: { merged, identity, dead } };
}

const GELU_CUBE_COEF = Math.fround(0.044715);

/**
 * Mul(Mul(x, x), x) whose only use is a Mul by 0.044715 (the tanh GELU's cube, f32) becomes
 * Pow(x, 3), one node in place of two. The graph must already be merged and pruned (one x*x).
 */
function geluCubeAsPow(g: IrGraph): { graph: IrGraph; count: number } {
  const producer = new Map<IrValue, IrNode>();
  const uses = new Map<IrValue, IrNode[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) if (i) uses.set(i, [...(uses.get(i) ?? []), n]);
  }
  const scalarValue = (v: IrValue | null): number | undefined => {
    const c = v ? g.constants.get(v) : undefined;
    if (!c || c.dtype !== 'f32' || c.data.byteLength !== 4) return undefined;
    return new DataView(c.data.buffer, c.data.byteOffset, 4).getFloat32(0, true);
  };
  let nextId = firstFreeId(g);
  const replace = new Map<IrNode, IrNode>();
  const constants = new Map(g.constants);
  let three: IrValue | undefined;
  let count = 0;
  for (const n of g.nodes) {
    if (n.op !== 'Mul' || n.inputs.length !== 2 || n.outputs[0]!.dtype !== 'f32') continue;
    const [a, b] = n.inputs;
    const sq = [a, b].map((v) => (v ? producer.get(v) : undefined)).find((p) => p?.op === 'Mul' && p.inputs[0] === p.inputs[1]);
    if (!sq) continue;
    const x = sq.inputs[0]!;
    if ((a === sq.outputs[0] ? b : a) !== x) continue;
    if ((uses.get(sq.outputs[0]!) ?? []).length !== 1) continue;
    const next = uses.get(n.outputs[0]!) ?? [];
    if (next.length !== 1 || next[0]!.op !== 'Mul' || !next[0]!.inputs.some((v) => scalarValue(v) === GELU_CUBE_COEF)) continue;
    if (g.outputs.includes(sq.outputs[0]!)) continue;
    if (!three) {
      three = { id: nextId++, name: `sorac.ort.three`, dtype: 'f32', shape: [] };
      constants.set(three, { dtype: 'f32', shape: [], data: new Uint8Array(new Float32Array([3]).buffer) });
    }
    replace.set(n, { ...n, op: 'Pow', inputs: [x, three], attrs: {} });
    count++;
  }
  if (!count) return { graph: g, count: 0 };
  // the x*x nodes are now unused: mergeAndPrune drops them
  return { graph: { ...g, constants, nodes: g.nodes.map((n) => replace.get(n) ?? n) }, count };
}

/** The smallest value id above every id in `g` (for values a pass adds). */
function firstFreeId(g: IrGraph): number {
  let max = -1;
  for (const v of g.inputs) max = Math.max(max, v.id);
  for (const w of g.weights) max = Math.max(max, w.value.id);
  for (const v of g.constants.keys()) max = Math.max(max, v.id);
  for (const n of g.nodes) for (const o of n.outputs) max = Math.max(max, o.id);
  return max + 1;
}

/**
 * Add(a, b) -> LayerNormalization(sum, gamma, beta) over the last axis, f32 [B, S, H] with a and b of
 * that same shape and gamma/beta [H] weights or constants, becomes one com.microsoft
 * SkipLayerNormalization(a, b, gamma, beta) at the Add's place, whose fourth output is the sum (the
 * residual stream the Add fed to its other users). onnxruntime's CPU kernel for it is vectorised
 * where its LayerNormalization kernel is not (1.29: ~1 ms against ~2.3 ms on [1, 2048, 384], 2
 * threads), and the sum is no longer written and read back. The graph must be merged and pruned
 * (one LayerNormalization per sum and epsilon).
 */
function skipLayerNorms(g: IrGraph): { graph: IrGraph; count: number } {
  const producer = new Map<IrValue, IrNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const fixed = new Set<IrValue>([...g.weights.map((w) => w.value), ...g.constants.keys()]);
  const sameShape = (x: IrValue, y: IrValue) => x.shape.length === y.shape.length && x.shape.every((d, i) => d === y.shape[i]);
  let nextId = firstFreeId(g);
  const replace = new Map<IrNode, IrNode>();
  const drop = new Set<IrNode>();
  for (const ln of g.nodes) {
    if (ln.op !== 'LayerNormalization' || ln.domain || ln.inputs.length !== 3 || ln.outputs.length !== 1) continue;
    const [s, gamma, beta] = ln.inputs;
    if (!s || !gamma || !beta || s.dtype !== 'f32' || s.shape.length !== 3 || ln.outputs[0]!.dtype !== 'f32') continue;
    const axis = ln.attrs.axis?.kind === 'int' ? ln.attrs.axis.value : -1;
    if (axis !== -1 && axis !== 2) continue;
    if (ln.attrs.stash_type && !(ln.attrs.stash_type.kind === 'int' && ln.attrs.stash_type.value === 1)) continue;
    const h = s.shape[2]!;
    if (![gamma, beta].every((p) => fixed.has(p) && p.dtype === 'f32' && p.shape.length === 1 && p.shape[0] === h)) continue;
    const add = producer.get(s);
    if (!add || add.op !== 'Add' || add.domain || replace.has(add) || add.outputs.length !== 1) continue;
    const [a, b] = add.inputs;
    if (!a || !b || a.dtype !== 'f32' || b.dtype !== 'f32' || !sameShape(a, s) || !sameShape(b, s)) continue;
    const eps = ln.attrs.epsilon?.kind === 'float' ? ln.attrs.epsilon.value : 1e-5;
    const k = replace.size;
    // mean and 1/std: outputs the kernel writes anyway ([B, S, 1]); nothing reads them
    const stat = (what: string): IrValue => ({ id: nextId++, name: `sorac.ort.skip_layer_norm${k}.${what}`, dtype: 'f32', shape: [s.shape[0]!, s.shape[1]!, 1] });
    replace.set(add, {
      op: 'SkipLayerNormalization',
      domain: 'com.microsoft',
      inputs: [a, b, gamma, beta],
      outputs: [ln.outputs[0]!, stat('mean'), stat('inv_std_var'), s],
      attrs: { epsilon: { kind: 'float', value: eps } },
      ...(ln.source ? { source: ln.source } : {}),
      ...(ln.scope !== undefined ? { scope: ln.scope } : {}),
    });
    drop.add(ln);
  }
  if (!replace.size) return { graph: g, count: 0 };
  return { graph: { ...g, nodes: g.nodes.filter((n) => !drop.has(n)).map((n) => replace.get(n) ?? n) }, count: replace.size };
}

function attrKey(attrs: Readonly<Record<string, IrAttr>>): string {
  const names = Object.keys(attrs).sort();
  if (!names.length) return '';
  return `{${names
    .map((k) => {
      const a = attrs[k]!;
      const v =
        a.kind === 'tensor'
          ? `${a.value.dtype}|${a.value.shape.join(',')}|${hex(a.value.data)}`
          : a.kind === 'float' || a.kind === 'floats'
            ? [a.value].flat().map(num).join(',') // -0 and NaN kept apart from 0 / null
            : JSON.stringify(a.value);
      return `${k}:${a.kind}=${v}`;
    })
    .join(';')}}`;
}

function num(x: number): string {
  return Object.is(x, -0) ? '-0' : String(x);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}
