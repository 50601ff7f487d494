/**
 * Tiled execution: an entry whose upstream result is defined by running the network on overlapping tiles and
 * blending them (HunyuanVideo's spatial / temporal tiled encode and decode in Open-Sora 2.0) declares it in the
 * entry body with `tile(axes, size, stride, blend, keep, threshold=size, first_keep=keep, drop=0)`. The tracer
 * records the declarations as graph metadata `sorac.tiling` (a JSON list, outermost first); this module reads
 * them and runs the entry's session on the tiles, reproducing the upstream loops exactly
 * (opensora/models/hunyuan_vae/autoencoder_kl_causal_3d.py @ HEAD, docs/guides/vae-pipeline.md):
 *
 *   - a declaration applies when the input's extent along any of its axes is above `threshold`; otherwise the
 *     next declaration is tried on the whole input (upstream: `if temporal ... elif spatial ...`);
 *   - tiles start every `stride` elements along each axis (`range(0, n, stride)`, row-major over the axes) and
 *     hold `size` elements (fewer at the end); each tile is run through the inner declarations, then the entry;
 *   - along an axis, tiles after the first drop their first `drop` output elements (the temporal tiles' extra
 *     leading frame);
 *   - in row-major order each tile is blended in place with its predecessor along every axis, in axis order
 *     (blend_v then blend_h), the predecessor being already blended: over e = min(len_a, len_b, blend) output
 *     elements, b[y] = a[len_a - e + y] * (1 - y/e) + b[y] * (y/e), in the output's precision;
 *   - the first `first_keep` (first tile along the axis) or `keep` elements of every tile are kept, and the tiles
 *     are concatenated.
 * Every output of the entry is tiled along the output dimension at the position the axis has in the inputs.
 */
import type { IrGraph } from '../../core/ir.ts';
import { type HostTensor, fmtShape, hostFromBytes, hostBytes, shapeNumel } from '../../core/host-tensor.ts';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { sliceAlong } from './micro-batch.ts';

/** One `tile(...)` declaration as recorded in the graph metadata. */
export interface TileDecl {
  readonly axes: readonly string[];
  readonly size: number;
  readonly stride: number;
  readonly blend: number;
  readonly keep: number;
  readonly threshold: number;
  readonly first_keep: number;
  readonly drop: number;
  /** when set, an input above the threshold is refused with this reason (the entry cannot be tiled faithfully) */
  readonly unsupported?: string;
}

export const TILING_KEY = 'sorac.tiling';

/** A declaration resolved against a graph: the dim of each axis in the inputs (and outputs). */
export interface TilingLevel {
  readonly decl: TileDecl;
  /** per axis: input name -> dim */
  readonly inputDims: readonly ReadonlyMap<string, number>[];
  /** per axis: the output dim (the axis' position in the inputs) */
  readonly outDims: readonly number[];
}

export interface TilingPlan {
  readonly graph: string;
  readonly levels: readonly TilingLevel[];
}

/** The tiling declarations of an entry's graph (empty when none). */
export function declaredTiling(graph: Pick<IrGraph, 'metadata'>): TileDecl[] {
  const raw = graph.metadata[TILING_KEY];
  if (!raw) return [];
  const v = JSON.parse(raw) as TileDecl[];
  if (!Array.isArray(v)) throw new SoracError('SORA5517', `graph metadata ${TILING_KEY} is not a list`);
  return v;
}

/** Resolve the graph's tiling declarations against its inputs and outputs (undefined when it declares none). */
export function planTiling(graph: Pick<IrGraph, 'name' | 'metadata' | 'inputs' | 'outputs'>): TilingPlan | undefined {
  const decls = declaredTiling(graph);
  if (!decls.length) return undefined;
  const levels = decls.map((decl) => {
    const inputDims: Map<string, number>[] = [];
    const outDims: number[] = [];
    for (const axis of decl.axes) {
      const m = new Map<string, number>();
      let pos: number | undefined;
      for (const v of graph.inputs) {
        const dims = v.shape.flatMap((x, i) => (x === axis ? [i] : []));
        if (dims.length > 1) throw new SoracError('SORA5517', `${graph.name}: input ${v.name}${fmtShape(v.shape)} has the tiled axis ${axis} more than once`);
        if (dims.length) {
          m.set(v.name, dims[0]!);
          if (pos !== undefined && pos !== dims[0]) throw new SoracError('SORA5517', `${graph.name}: the tiled axis ${axis} sits at different positions in the inputs`);
          pos = dims[0]!;
        }
      }
      if (pos === undefined) throw new SoracError('SORA5517', `${graph.name}: no input has a dimension named ${axis} (declared by tile())`);
      for (const o of graph.outputs)
        if (o.shape.length <= pos) throw new SoracError('SORA5517', `${graph.name}: output ${o.name}${fmtShape(o.shape)} has no dimension ${pos} to tile along ${axis}`);
      inputDims.push(m);
      outDims.push(pos);
    }
    return { decl, inputDims, outDims };
  });
  return { graph: graph.name, levels };
}

type Feed = ReadonlyMap<string, HostTensor>;
type Runner = (inputs: Feed) => Promise<Map<string, HostTensor>>;

export interface TiledResult {
  readonly outputs: Map<string, HostTensor>;
  /** how many times the entry ran */
  readonly runs: number;
}

/** Run `run` (one session of the entry) on the tiles the plan defines for these inputs, blended as upstream does. */
export async function runTiled(run: Runner, plan: TilingPlan, inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>): Promise<TiledResult> {
  const feed: Feed = inputs instanceof Map ? inputs : new Map(Object.entries(inputs));
  let runs = 0;
  const counted: Runner = async (x) => {
    runs++;
    return run(x);
  };
  const outputs = await level(plan, 0, feed, counted);
  return { outputs, runs };
}

function extentOf(l: TilingLevel, a: number, feed: Feed, graph: string): number {
  for (const [name, dim] of l.inputDims[a]!) {
    const t = feed.get(name);
    if (t) return t.shape[dim]!;
  }
  throw new SoracError('SORA5517', `${graph}: no input given carries the tiled axis ${l.decl.axes[a]}`);
}

async function level(plan: TilingPlan, k: number, feed: Feed, run: Runner): Promise<Map<string, HostTensor>> {
  if (k === plan.levels.length) return run(feed);
  const l = plan.levels[k]!;
  const d = l.decl;
  const extents = d.axes.map((_, a) => extentOf(l, a, feed, plan.graph));
  if (!extents.some((n) => n > d.threshold)) return level(plan, k + 1, feed, run);
  if (d.unsupported !== undefined)
    throw new SoracError('SORA5517', `${plan.graph} is tiled above ${d.threshold} along ${d.axes.join(', ')} (sizes ${extents.join(', ')}): ${d.unsupported}`, { hint: 'use inputs within the tile size, or switch the tiling off in the config' });
  const starts = extents.map((n) => {
    const s: number[] = [];
    for (let i = 0; i < n; i += d.stride) s.push(i);
    return s;
  });
  // every tile in row-major order over the axes, keyed by its index tuple
  const tiles = new Map<string, Map<string, HostTensor>>();
  const indices: number[][] = [];
  const walk = (a: number, idx: number[]): void => {
    if (a === starts.length) {
      indices.push(idx);
      return;
    }
    for (let i = 0; i < starts[a]!.length; i++) walk(a + 1, [...idx, i]);
  };
  walk(0, []);
  for (const idx of indices) {
    const sub = new Map<string, HostTensor>();
    for (const [name, t] of feed) {
      let x = t;
      for (let a = 0; a < idx.length; a++) {
        const dim = l.inputDims[a]!.get(name);
        if (dim === undefined) continue;
        const s = starts[a]![idx[a]!]!;
        x = sliceAlong(x, dim, s, Math.min(s + d.size, x.shape[dim]!));
      }
      sub.set(name, x);
    }
    let out = await level(plan, k + 1, sub, run);
    if (d.drop > 0)
      for (let a = 0; a < idx.length; a++)
        if (idx[a]! > 0) out = new Map([...out].map(([n, t]) => [n, dropFirst(t, l.outDims[a]!, d.drop, plan.graph, n)]));
    tiles.set(idx.join(','), out);
  }
  // blend in place, row-major, with the (already blended) predecessor along each axis in axis order
  for (const idx of indices) {
    const cur = tiles.get(idx.join(','))!;
    for (let a = 0; a < idx.length; a++) {
      if (idx[a] === 0) continue;
      const p = [...idx];
      p[a]!--;
      const prev = tiles.get(p.join(','))!;
      for (const [name, b] of cur) blendInPlace(prev.get(name)!, b, l.outDims[a]!, d.blend, plan.graph, name);
    }
  }
  // keep the head of each tile and concatenate, last axis first
  const outNames = [...tiles.get(indices[0]!.join(','))!.keys()];
  const result = new Map<string, HostTensor>();
  for (const name of outNames) {
    const cut = (idx: number[]): HostTensor => {
      let t = tiles.get(idx.join(','))!.get(name)!;
      for (let a = 0; a < idx.length; a++) {
        const dim = l.outDims[a]!;
        t = sliceAlong(t, dim, 0, Math.min(idx[a] === 0 ? d.first_keep : d.keep, t.shape[dim]!));
      }
      return t;
    };
    const join = (a: number, idx: number[]): HostTensor => {
      if (a === starts.length) return cut(idx);
      const parts = starts[a]!.map((_, i) => join(a + 1, [...idx, i]));
      return concatAlong(parts, l.outDims[a]!);
    };
    result.set(name, join(0, []));
  }
  return result;
}

function dropFirst(t: HostTensor, dim: number, n: number, graph: string, name: string): HostTensor {
  const len = t.shape[dim]!;
  // a tile of one frame drops to nothing, as upstream's decoded[:, :, 1:] does (it then adds no frame)
  if (len < n) throw new SoracError('SORA5517', `${graph}: tile output ${name}${fmtShape(t.shape)} is too short to drop its first ${n} along dim ${dim}`);
  return sliceAlong(t, dim, n, len);
}

function blendInPlace(a: HostTensor, b: HostTensor, dim: number, blend: number, graph: string, name: string): void {
  if (!(a.data instanceof Float32Array || a.data instanceof Float64Array) || !(b.data instanceof Float32Array || b.data instanceof Float64Array))
    throw new SoracError('SORA5517', `${graph}: tiled output ${name} is ${b.dtype}; tiles are blended only in f32 or f64`);
  if (a.shape.length !== b.shape.length || a.shape.some((n, i) => i !== dim && n !== b.shape[i]))
    throw new SoracError('SORA5517', `${graph}: neighbouring tiles of ${name} disagree in shape (${fmtShape(a.shape)} and ${fmtShape(b.shape)} along dim ${dim})`);
  const la = a.shape[dim]!;
  const lb = b.shape[dim]!;
  const e = Math.min(la, lb, blend);
  if (e <= 0) return;
  const post = shapeNumel(b.shape.slice(dim + 1));
  const pre = shapeNumel(b.shape.slice(0, dim));
  const f32 = b.data instanceof Float32Array;
  const r = f32 ? Math.fround : (x: number) => x;
  const A = a.data;
  const B = b.data;
  for (let y = 0; y < e; y++) {
    // torch: tensor * python float is computed in the tensor's precision with the scalar rounded to it
    const wa = r(1 - y / e);
    const wb = r(y / e);
    for (let p = 0; p < pre; p++) {
      const ao = (p * la + la - e + y) * post;
      const bo = (p * lb + y) * post;
      for (let q = 0; q < post; q++) B[bo + q] = r(r(A[ao + q]! * wa) + r(B[bo + q]! * wb));
    }
  }
}

/** Concatenate tensors along dim (shapes equal elsewhere). */
export function concatAlong(parts: readonly HostTensor[], dim: number): HostTensor {
  if (parts.length === 1) return parts[0]!;
  const first = parts[0]!;
  const size = DTYPE_SIZE[first.dtype];
  const post = shapeNumel(first.shape.slice(dim + 1)) * size;
  const pre = shapeNumel(first.shape.slice(0, dim));
  const total = parts.reduce((s, t) => s + t.shape[dim]!, 0);
  const out = new Uint8Array(pre * total * post);
  let off = 0;
  for (const t of parts) {
    const len = t.shape[dim]!;
    const src = hostBytes(t);
    for (let p = 0; p < pre; p++) out.set(src.subarray(p * len * post, (p + 1) * len * post), (p * total + off) * post);
    off += len;
  }
  const shape = [...first.shape];
  shape[dim] = total;
  return hostFromBytes(first.dtype, shape, out);
}
