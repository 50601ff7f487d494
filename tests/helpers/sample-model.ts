/**
 * A small hand-built graph shaped like a DiT front end, with a float64 JS reference:
 *   x: f32[B,4,T,H,W] -> Conv3d patch embed (k=s=[1,2,2]) -> Reshape [0,8,-1] -> Transpose
 *   -> MatMul with a bf16 weight Cast to f32 -> Add -> LayerNormalization -> tanh-GELU
 *   (decomposed) -> Softmax -> y: f32[B,N,8]; plus y16 = Cast(y, f16).
 */
import type { DType } from '../../core/dtype.ts';
import type { IrGraph } from '../../core/ir.ts';
import { bf16BitsToF32, f32ToBf16, f16ToF32, f32ToF16 } from '../../core/convert.ts';
import { GraphBuilder, float, int, ints } from './ir-build.ts';

export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export type ProjDtype = 'bf16' | 'f16' | 'f32';

/** Checkpoint tensors for the sample graph. `proj.weight` is stored in `projDtype`. */
export function sampleWeights(projDtype: ProjDtype = 'bf16'): Map<string, RawTensor> {
  const m = new Map<string, RawTensor>();
  m.set('patch.weight', { dtype: 'f32', shape: [8, 4, 1, 2, 2], data: bytes(randF32(128, 1, 0.5)) });
  m.set('patch.bias', { dtype: 'f32', shape: [8], data: bytes(randF32(8, 2, 0.1)) });
  const p = randF32(64, 3, 0.6);
  const pd = projDtype === 'bf16' ? bytes(f32ToBf16(p)) : projDtype === 'f16' ? bytes(f32ToF16(p)) : bytes(p);
  m.set('proj.weight', { dtype: projDtype, shape: [8, 8], data: pd });
  m.set('proj.bias', { dtype: 'f32', shape: [8], data: bytes(randF32(8, 4, 0.1)) });
  m.set('norm.weight', { dtype: 'f32', shape: [8], data: bytes(Float32Array.from(randF32(8, 5, 0.2), (v) => 1 + v)) });
  m.set('norm.bias', { dtype: 'f32', shape: [8], data: bytes(randF32(8, 6, 0.1)) });
  return m;
}

/** Float64 values of a raw tensor (f32/f16/bf16). */
export function values(t: RawTensor): Float64Array {
  const d = t.data.byteOffset % 4 === 0 ? t.data : t.data.slice();
  switch (t.dtype) {
    case 'f32':
      return Float64Array.from(new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4));
    case 'f16':
      return Float64Array.from(f16ToF32(new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2)));
    case 'bf16':
      return Float64Array.from(new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2), bf16BitsToF32);
    default:
      throw new Error(`values(): ${t.dtype}`);
  }
}

/**
 * The sample graph. `projDtype` is the dtype the graph expects for `proj.weight`; when it is not
 * f32 the graph casts it to f32 in-graph (the CPU recipe for bf16 storage).
 */
export function sampleGraph(opts: { projDtype?: ProjDtype; opset?: number; withF16Output?: boolean } = {}): IrGraph {
  const projDtype = opts.projDtype ?? 'bf16';
  const g = new GraphBuilder('sample', opts.opset ?? 17);
  g.metadata = { 'sorac.entry': 'forward', 'sorac.contract': 'sha256:0000', 'sorac.model': 'sample' };
  const src = (line: number) => ({ source: { file: 'sample.sora', line, col: 5 } });
  const x = g.input('x', 'f32', ['B', 4, 'T', 'H', 'W']);
  const pw = g.weight('patch.weight', 'f32', [8, 4, 1, 2, 2]);
  const pb = g.weight('patch.bias', 'f32', [8]);
  const qw = g.weight('proj.weight', projDtype, [8, 8]);
  const qb = g.weight('proj.bias', 'f32', [8]);
  const nw = g.weight('norm.weight', 'f32', [8]);
  const nb = g.weight('norm.bias', 'f32', [8]);
  const f32 = (name: string, shape: (number | string)[]) => ({ name, dtype: 'f32' as const, shape });
  const conv = g.op('Conv', [x, pw, pb], f32('h', ['B', 8, 'T', 'H/2', 'W/2']), { kernel_shape: ints([1, 2, 2]), strides: ints([1, 2, 2]) }, { ...src(3), scope: 'patch' });
  const shape = g.constI64('shape', [3], [0, 8, -1]);
  const flat = g.op('Reshape', [conv, shape], f32('h', ['B', 8, 'N']), {}, src(4));
  const tok = g.op('Transpose', [flat], f32('h', ['B', 'N', 8]), { perm: ints([0, 2, 1]) }, src(4));
  let w = qw;
  if (projDtype !== 'f32') w = g.op('Cast', [qw], f32('proj_w_f32', [8, 8]), { to: int(1) }, { ...src(5), scope: 'proj' });
  const mm = g.op('MatMul', [tok, w], f32('h', ['B', 'N', 8]), {}, { ...src(5), scope: 'proj' });
  const add = g.op('Add', [mm, qb], f32('h', ['B', 'N', 8]), {}, { ...src(5), scope: 'proj' });
  const ln = g.op('LayerNormalization', [add, nw, nb], f32('h', ['B', 'N', 8]), { axis: int(-1), epsilon: float(1e-5) }, { ...src(6), scope: 'norm' });
  // tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  const c3 = g.constF32('c_0044715', [], [0.044715]);
  const cs = g.constF32('c_sqrt2pi', [], [Math.sqrt(2 / Math.PI)]);
  const one = g.constF32('c_one', [], [1]);
  const half = g.constF32('c_half', [], [0.5]);
  const s = ['B', 'N', 8];
  const x2 = g.op('Mul', [ln, ln], f32('g', s), {}, src(7));
  const x3 = g.op('Mul', [x2, ln], f32('g', s), {}, src(7));
  const t1 = g.op('Mul', [x3, c3], f32('g', s), {}, src(7));
  const t2 = g.op('Add', [ln, t1], f32('g', s), {}, src(7));
  const t3 = g.op('Mul', [t2, cs], f32('g', s), {}, src(7));
  const t4 = g.op('Tanh', [t3], f32('g', s), {}, src(7));
  const t5 = g.op('Add', [t4, one], f32('g', s), {}, src(7));
  const t6 = g.op('Mul', [ln, t5], f32('g', s), {}, src(7));
  const gelu = g.op('Mul', [t6, half], f32('g', s), {}, src(7));
  const y = g.op('Softmax', [gelu], f32('y', s), { axis: int(-1) }, src(8));
  g.output(y);
  if (opts.withF16Output ?? true) {
    const y16 = g.op('Cast', [y], { name: 'y16', dtype: 'f16', shape: s }, { to: int(10) }, src(9));
    g.output(y16);
  }
  return g.build();
}

/** Float64 reference of the sample graph for x: [B,4,T,H,W] (H, W even). Returns y [B,N,8]. */
export function sampleReference(x: ArrayLike<number>, xs: readonly number[], weights: Map<string, RawTensor>): { data: Float64Array; shape: number[] } {
  const [B, C, T, H, W] = xs as [number, number, number, number, number];
  const Hp = H / 2;
  const Wp = W / 2;
  const N = T * Hp * Wp;
  const pw = values(weights.get('patch.weight')!);
  const pb = values(weights.get('patch.bias')!);
  const qw = values(weights.get('proj.weight')!);
  const qb = values(weights.get('proj.bias')!);
  const nw = values(weights.get('norm.weight')!);
  const nb = values(weights.get('norm.bias')!);
  const out = new Float64Array(B * N * 8);
  const xi = (b: number, c: number, t: number, h: number, w: number) => x[(((b * C + c) * T + t) * H + h) * W + w]!;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++)
      for (let i = 0; i < Hp; i++)
        for (let j = 0; j < Wp; j++) {
          const n = (t * Hp + i) * Wp + j;
          const tokv = new Float64Array(8);
          for (let o = 0; o < 8; o++) {
            let acc = pb[o]!;
            for (let c = 0; c < C; c++) for (let kh = 0; kh < 2; kh++) for (let kw = 0; kw < 2; kw++) acc += pw[((o * 4 + c) * 2 + kh) * 2 + kw]! * xi(b, c, t, 2 * i + kh, 2 * j + kw);
            tokv[o] = acc;
          }
          const h = new Float64Array(8);
          for (let o = 0; o < 8; o++) {
            let acc = qb[o]!;
            for (let k = 0; k < 8; k++) acc += tokv[k]! * qw[k * 8 + o]!;
            h[o] = acc;
          }
          let mean = 0;
          for (const v of h) mean += v / 8;
          let vr = 0;
          for (const v of h) vr += (v - mean) ** 2 / 8;
          const g = h.map((v, o) => {
            const l = ((v - mean) / Math.sqrt(vr + 1e-5)) * nw[o]! + nb[o]!;
            return 0.5 * l * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (l + 0.044715 * l ** 3)));
          });
          const mx = Math.max(...g);
          const e = g.map((v) => Math.exp(v - mx));
          const sum = e.reduce((a, v) => a + v, 0);
          for (let o = 0; o < 8; o++) out[(b * N + n) * 8 + o] = e[o]! / sum;
        }
  }
  return { data: out, shape: [B, N, 8] };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
