/**
 * Byte kernels for migration ops: every op works on little-endian tensor bytes viewed as
 * [outer, dim, inner] slabs, so one implementation serves every dtype (only `scale`, `cast`,
 * `pad ones` and `init` look at values).
 */
import { type DType, DTYPE_SIZE, isFloat } from '../../core/dtype.ts';
import { bf16BitsToF32, convertBytes, f32ToBf16Bits, f32ToF16Bits, f16BitsToF32 } from '../../core/convert.ts';
import { SoracError } from '../../core/errors.ts';

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function slabs(shape: readonly number[], dim: number, es: number) {
  return { outer: prod(shape.slice(0, dim)), rows: shape[dim]!, inner: prod(shape.slice(dim + 1)) * es };
}

/** Keep rows [start, end) along `dim`. */
export function sliceDim(src: Uint8Array, shape: readonly number[], dim: number, start: number, end: number, es: number): Uint8Array {
  const { outer, rows, inner } = slabs(shape, dim, es);
  const n = end - start;
  if (outer === 1) return src.slice(start * inner, end * inner);
  const out = new Uint8Array(outer * n * inner);
  for (let o = 0; o < outer; o++) out.set(src.subarray((o * rows + start) * inner, (o * rows + end) * inner), o * n * inner);
  return out;
}

export function concatDim(parts: readonly Uint8Array[], shapes: readonly (readonly number[])[], dim: number, es: number): Uint8Array {
  const outer = prod(shapes[0]!.slice(0, dim));
  const inner = prod(shapes[0]!.slice(dim + 1)) * es;
  const rowsOut = shapes.reduce((a, s) => a + s[dim]!, 0);
  const out = new Uint8Array(outer * rowsOut * inner);
  let pos = 0;
  for (let o = 0; o < outer; o++) {
    for (let p = 0; p < parts.length; p++) {
      const len = shapes[p]![dim]! * inner;
      out.set(parts[p]!.subarray(o * len, (o + 1) * len), pos);
      pos += len;
    }
  }
  return out;
}

export function tileDim(src: Uint8Array, shape: readonly number[], dim: number, times: number, es: number): Uint8Array {
  const { outer, rows, inner } = slabs(shape, dim, es);
  const len = rows * inner;
  const out = new Uint8Array(outer * len * times);
  for (let o = 0; o < outer; o++) {
    const s = src.subarray(o * len, (o + 1) * len);
    for (let t = 0; t < times; t++) out.set(s, (o * times + t) * len);
  }
  return out;
}

/** The bytes of the value 1 in `dtype`. */
export function oneBytes(dtype: DType): Uint8Array {
  const b = new Uint8Array(DTYPE_SIZE[dtype]);
  const dv = new DataView(b.buffer);
  switch (dtype) {
    case 'f64':
      dv.setFloat64(0, 1, true);
      break;
    case 'f32':
      dv.setFloat32(0, 1, true);
      break;
    case 'f16':
      dv.setUint16(0, 0x3c00, true);
      break;
    case 'bf16':
      dv.setUint16(0, 0x3f80, true);
      break;
    case 'f8_e4m3':
      b[0] = 0x38;
      break;
    case 'f8_e5m2':
      b[0] = 0x3c;
      break;
    default:
      b[0] = 1; // little-endian integer 1, bool true
  }
  return b;
}

export function padDim(src: Uint8Array, shape: readonly number[], dim: number, before: number, after: number, mode: 'zeros' | 'ones' | 'repeat-last', dtype: DType): Uint8Array {
  const es = DTYPE_SIZE[dtype];
  const { outer, rows, inner } = slabs(shape, dim, es);
  if (mode === 'repeat-last' && rows === 0) throw new SoracError('SORA6002', 'pad repeat-last needs at least one row to repeat');
  const rowsOut = rows + before + after;
  const out = new Uint8Array(outer * rowsOut * inner);
  let fillRow: Uint8Array | undefined;
  if (mode === 'ones') {
    const one = oneBytes(dtype);
    fillRow = new Uint8Array(inner);
    for (let i = 0; i < inner; i += es) fillRow.set(one, i);
  }
  for (let o = 0; o < outer; o++) {
    const base = o * rowsOut * inner;
    const s = src.subarray(o * rows * inner, (o + 1) * rows * inner);
    out.set(s, base + before * inner);
    if (mode === 'zeros') continue;
    const first = mode === 'ones' ? fillRow! : s.subarray(0, inner);
    const last = mode === 'ones' ? fillRow! : s.subarray((rows - 1) * inner, rows * inner);
    for (let r = 0; r < before; r++) out.set(first, base + r * inner);
    for (let r = 0; r < after; r++) out.set(last, base + (before + rows + r) * inner);
  }
  return out;
}

const VIEW: Record<number, { new (b: ArrayBuffer, o?: number, n?: number): { [i: number]: number | bigint; length: number } }> = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array };

export function permute(src: Uint8Array, shape: readonly number[], perm: readonly number[], es: number): Uint8Array {
  const nd = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = new Array<number>(nd);
  let st = 1;
  for (let d = nd - 1; d >= 0; d--) {
    inStrides[d] = st;
    st *= shape[d]!;
  }
  const n = prod(shape);
  const out = new Uint8Array(n * es);
  // element-typed views (a misaligned source is copied once)
  const V = VIEW[es]!;
  const a = src.byteOffset % es === 0 ? src : src.slice();
  const sv = new V(a.buffer as ArrayBuffer, a.byteOffset, n);
  const ov = new V(out.buffer, 0, n);
  // iterate output indices in order; the source offset follows the permuted strides
  const srcStride = perm.map((p) => inStrides[p]!);
  const idx = new Array<number>(nd).fill(0);
  let srcOff = 0;
  const last = nd - 1;
  const lastStride = srcStride[last] ?? 1;
  const lastExtent = outShape[last] ?? 1;
  for (let i = 0; i < n; ) {
    // innermost dimension as a tight loop
    for (let j = 0; j < lastExtent; j++, i++) ov[i] = sv[srcOff + j * lastStride]!;
    for (let d = last - 1; d >= 0; d--) {
      idx[d]!++;
      srcOff += srcStride[d]!;
      if (idx[d]! < outShape[d]!) break;
      srcOff -= srcStride[d]! * outShape[d]!;
      idx[d] = 0;
    }
    if (nd === 0) break;
  }
  return out;
}

const aligned = (b: Uint8Array, n: number) => (b.byteOffset % n === 0 ? b : b.slice());

/**
 * Multiply float values by `factor`. f16/bf16 go through f32 (exact for powers of two; one
 * rounding otherwise). Returns how many values would not come back exactly when multiplied by
 * 1/factor (underflow to subnormals or overflow), so the caller can warn about reversibility.
 */
export function scaleBytes(src: Uint8Array, dtype: DType, factor: number, key: string): { bytes: Uint8Array; inexact: number } {
  if (!isFloat(dtype) || dtype.startsWith('f8')) throw new SoracError('SORA6002', `scale ${key}: ${dtype} values cannot be scaled`, { hint: 'scale applies to f64/f32/f16/bf16 tensors' });
  const inv = 1 / factor;
  let inexact = 0;
  if (dtype === 'f64') {
    const a = new Float64Array(aligned(src, 8).buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = x * factor;
      if (y * inv !== x && !Number.isNaN(x)) inexact++;
      a[i] = y;
    }
    return { bytes: new Uint8Array(a.buffer), inexact };
  }
  if (dtype === 'f32') {
    const a = new Float32Array(src.slice().buffer);
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = Math.fround(x * factor);
      if (Math.fround(y * inv) !== x && !Number.isNaN(x)) inexact++;
      a[i] = y;
    }
    return { bytes: new Uint8Array(a.buffer), inexact };
  }
  const toF = dtype === 'f16' ? f16BitsToF32 : bf16BitsToF32;
  const fromF = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  const h = new Uint16Array(src.slice().buffer);
  for (let i = 0; i < h.length; i++) {
    const x = toF(h[i]!);
    const y = fromF(x * factor);
    if (!Number.isNaN(x) && toF(fromF(toF(y) * inv)) !== x) inexact++;
    h[i] = y;
  }
  return { bytes: new Uint8Array(h.buffer), inexact };
}

const INT_ARRAY: Partial<Record<DType, { new (b: ArrayBuffer): ArrayLike<number | bigint> & { [i: number]: number | bigint }; big?: boolean }>> = {
  i8: Int8Array,
  i16: Int16Array,
  i32: Int32Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

/** Cast between float dtypes (runtime/convert.ts rounding), or between integer dtypes (range-checked). */
export function castBytes(src: Uint8Array, from: DType, to: DType, key: string): Uint8Array {
  if (from === to) return src;
  if (isFloat(from) && isFloat(to) && !from.startsWith('f8') && !to.startsWith('f8')) return convertBytes(src, from, to, { key });
  const ints = (d: DType) => d === 'i64' || d in INT_ARRAY;
  if (ints(from) && ints(to) && from !== 'bool' && to !== 'bool') {
    const n = src.byteLength / DTYPE_SIZE[from];
    const buf = src.slice().buffer;
    const read: (i: number) => bigint = from === 'i64' ? ((a) => (i: number) => a[i]!)(new BigInt64Array(buf)) : ((a) => (i: number) => BigInt(a[i] as number))(new INT_ARRAY[from]!(buf));
    const out = new ArrayBuffer(n * DTYPE_SIZE[to]);
    const bits = DTYPE_SIZE[to] * 8;
    const lo = to === 'u8' ? 0n : -(1n << BigInt(bits - 1));
    const hi = to === 'u8' ? 255n : (1n << BigInt(bits - 1)) - 1n;
    const w = to === 'i64' ? new BigInt64Array(out) : new INT_ARRAY[to]!(out);
    for (let i = 0; i < n; i++) {
      const v = read(i);
      if (v < lo || v > hi) throw new SoracError('SORA6002', `cast ${key} ${from} → ${to}: element ${i} (${v}) is out of range`);
      (w as { [i: number]: number | bigint })[i] = to === 'i64' ? v : Number(v);
    }
    return new Uint8Array(out);
  }
  throw new SoracError('SORA6002', `cast ${key}: ${from} → ${to} is not supported`, { hint: 'casts are float↔float (f64/f32/f16/bf16) or int↔int' });
}

/** Deterministic fills. `normal` uses a seeded mulberry32 / Box–Muller stream in f64, rounded to the dtype (not torch's generator). */
export function initBytes(shape: readonly number[], dtype: DType, fill: { kind: 'zeros' } | { kind: 'ones' } | { kind: 'normal'; mean: number; std: number; seed: number }, key: string): Uint8Array {
  const n = prod(shape);
  const es = DTYPE_SIZE[dtype];
  if (fill.kind === 'zeros') return new Uint8Array(n * es);
  if (fill.kind === 'ones') {
    const one = oneBytes(dtype);
    const out = new Uint8Array(n * es);
    for (let i = 0; i < n; i++) out.set(one, i * es);
    return out;
  }
  if (!isFloat(dtype) || dtype.startsWith('f8')) throw new SoracError('SORA6002', `init ${key}: normal fill needs a float dtype (f64/f32/f16/bf16), not ${dtype}`);
  const v = new Float64Array(n);
  // mulberry32 stream; two 32-bit draws make one 53-bit uniform in [0, 1)
  let st = fill.seed >>> 0;
  const u32 = () => {
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992;
  for (let i = 0; i < n; i += 2) {
    const u1 = Math.max(next(), 2 ** -53);
    const u2 = next();
    const r = Math.sqrt(-2 * Math.log(u1));
    v[i] = fill.mean + fill.std * r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) v[i + 1] = fill.mean + fill.std * r * Math.sin(2 * Math.PI * u2);
  }
  const b = new Uint8Array(v.buffer);
  return dtype === 'f64' ? b : convertBytes(b, 'f64', dtype, { key, overflow: 'inf' });
}
