/**
 * Float format conversions between f64, f32, f16 and bf16 (raw little-endian bytes or typed
 * arrays of bit patterns). Used by the runtime to bind checkpoint tensors whose dtype differs
 * from the graph's, and by anyone else who converts checkpoints.
 *
 * Rounding: every narrowing conversion is a single round-to-nearest-even step (f64 -> f16/bf16
 * goes through a round-to-odd f32, which makes the second rounding exact). NaN stays NaN (quiet,
 * sign kept), infinities stay infinite, subnormals are produced and read correctly.
 * A finite value that overflows f16 is an error naming the tensor key (ConversionError,
 * rule 'f16-overflow') unless `overflow: 'inf'` is asked for. bf16 has f32's exponent range, so
 * only values within half an ulp of f32's maximum overflow it; those round to inf as IEEE says.
 *
 * Bit patterns of f16/bf16 are carried in Uint16Array (JS has no Float16Array on Node 20).
 * The host is assumed little-endian (x86-64, arm64), as onnxruntime-node is.
 */
import { type DType, DTYPE_SIZE } from './dtype.ts';
import { SoracError } from './errors.ts';

export class ConversionError extends SoracError {
  constructor(
    /** 'f16-overflow' | 'unsupported' | 'size' */
    public readonly rule: string,
    message: string,
    public readonly key?: string,
    public readonly index?: number,
  ) {
    super('SORA5507', message);
    this.name = 'ConversionError';
  }
}

export interface ConvertOptions {
  /** Tensor key, used in error messages. */
  readonly key?: string;
  /** What to do when a finite value overflows f16: throw (default) or produce +-inf. */
  readonly overflow?: 'error' | 'inf';
  /** Flat index of the first element (when converting a tensor in chunks), for error messages. */
  readonly indexOffset?: number;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

// ---- scalar bit conversions -----------------------------------------------------------------

export function f32Bits(x: number): number {
  f32buf[0] = x;
  return u32buf[0]!;
}

export function bitsToF32(b: number): number {
  u32buf[0] = b >>> 0;
  return f32buf[0]!;
}

export function bf16BitsToF32(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

/** f32 bit pattern -> bf16 bit pattern, round to nearest even. */
export function f32BitsToBf16(b: number): number {
  b >>>= 0;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) return ((b >>> 16) | 0x0040) & 0xffff; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToBf16Bits(x: number): number {
  return f32BitsToBf16(f32Bits(x));
}

export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    let e = 113;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
  }
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

export function f16BitsToF32(h: number): number {
  return bitsToF32(f16BitsToF32Bits(h));
}

/**
 * f32 bit pattern -> f16 bit pattern, round to nearest even. Returns -1 when a finite input
 * overflows to infinity (the caller decides whether that is an error).
 */
export function f32BitsToF16(b: number): number {
  b >>>= 0;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return -1;
  if (e <= 0) {
    if (exp === 0) return sign; // f32 zero/subnormal: far below f16's smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    if (shift > 24) return sign;
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  if (r >= 0x7c00) return -1;
  return sign | r;
}

/** f32 value -> f16 bits; overflow gives +-inf. */
export function f32ToF16Bits(x: number): number {
  const b = f32Bits(x);
  const r = f32BitsToF16(b);
  return r < 0 ? ((b >>> 16) & 0x8000) | 0x7c00 : r;
}

/** Round a double to f32 with round-to-odd (so that a later narrower RNE rounding is exact). */
function f64ToF32BitsRoundToOdd(x: number): number {
  const r = Math.fround(x);
  let b = f32Bits(r);
  if (r === x || Number.isNaN(x)) return b;
  if (Math.abs(r) > Math.abs(x)) b = (b - 1) >>> 0; // truncate toward zero (same sign => magnitude - 1 ulp)
  return (b | 1) >>> 0;
}

// ---- array conversions ----------------------------------------------------------------------

export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}

export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16(bits[i]!);
  return out;
}

export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32Bits(src[i]!);
  return new Float32Array(out.buffer);
}

export function f32ToF16(src: Float32Array, opts: ConvertOptions = {}): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const r = f32BitsToF16(bits[i]!);
    if (r < 0) {
      if (opts.overflow !== 'inf') throw overflowError(opts.key, i + (opts.indexOffset ?? 0), src[i]!);
      out[i] = ((bits[i]! >>> 16) & 0x8000) | 0x7c00;
    } else out[i] = r;
  }
  return out;
}

function overflowError(key: string | undefined, index: number, value: number): ConversionError {
  return new ConversionError(
    'f16-overflow',
    `${key ? `tensor "${key}"` : 'tensor'}: value ${value} at flat index ${index} overflows float16 (max 65504); ` +
      'keep this tensor in f32/bf16 or rescale it',
    key,
    index,
  );
}

/** Decode little-endian f32/f16/bf16 bytes into f32 values (exact widening). */
function toF32(bytes: Uint8Array, from: DType): Float32Array {
  const a = aligned(bytes, DTYPE_SIZE[from]);
  const n = a.byteLength / DTYPE_SIZE[from];
  switch (from) {
    case 'f32':
      return new Float32Array(a.buffer, a.byteOffset, n);
    case 'f16':
      return f16ToF32(new Uint16Array(a.buffer, a.byteOffset, n));
    case 'bf16':
      return bf16ToF32(new Uint16Array(a.buffer, a.byteOffset, n));
    default:
      throw new ConversionError('unsupported', `cannot convert ${from} through f32`);
  }
}

/** Copy when the view is not aligned for its element size (JS typed arrays need alignment). */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

const FLOATS: readonly DType[] = ['f64', 'f32', 'f16', 'bf16'];

export function canConvert(from: DType, to: DType): boolean {
  return from === to || (FLOATS.includes(from) && FLOATS.includes(to));
}

/**
 * Convert little-endian tensor bytes between float dtypes. Returns the input unchanged when
 * `from === to`. Throws ConversionError for non-float pairs and for f16 overflow.
 */
export function convertBytes(bytes: Uint8Array, from: DType, to: DType, opts: ConvertOptions = {}): Uint8Array {
  if (from === to) return bytes;
  if (!canConvert(from, to)) {
    throw new ConversionError('unsupported', `${opts.key ? `tensor "${opts.key}": ` : ''}cannot convert ${from} to ${to}`, opts.key);
  }
  if (bytes.byteLength % DTYPE_SIZE[from] !== 0) {
    throw new ConversionError('size', `${opts.key ? `tensor "${opts.key}": ` : ''}${bytes.byteLength} bytes is not a whole number of ${from} elements`, opts.key);
  }
  const u8 = (t: ArrayBufferView) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
  if (from === 'f64') {
    const a = aligned(bytes, 8);
    const src = new Float64Array(a.buffer, a.byteOffset, a.byteLength / 8);
    if (to === 'f32') return u8(Float32Array.from(src));
    const odd = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) odd[i] = f64ToF32BitsRoundToOdd(src[i]!);
    const f = new Float32Array(odd.buffer);
    if (to === 'bf16') return u8(f32ToBf16(f));
    // finite doubles above f32 range became f32 max (round-to-odd), which still overflows f16
    return u8(f32ToF16(f, opts));
  }
  const f = toF32(bytes, from);
  switch (to) {
    case 'f64':
      return u8(Float64Array.from(f));
    case 'f32':
      return u8(f);
    case 'f16':
      return u8(f32ToF16(f, opts));
    case 'bf16':
      return u8(f32ToBf16(f));
    default:
      throw new ConversionError('unsupported', `cannot convert ${from} to ${to}`, opts.key);
  }
}
