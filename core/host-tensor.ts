/**
 * Host tensors: the in-memory form of graph inputs and outputs on the JS side.
 *
 * `data` is a typed array matching the dtype: f32 Float32Array, f64 Float64Array, i64
 * BigInt64Array, i32 Int32Array, i16 Int16Array, i8 Int8Array, u8/bool/f8 Uint8Array, and for
 * f16 and bf16 a Uint16Array of raw bit patterns (Node 20 has no Float16Array; use
 * runtime/convert.ts to get f32 values).
 */
import { type DType, DTYPE_SIZE } from './dtype.ts';

export type TypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

type Ctor = { new (buf: ArrayBufferLike, off: number, len: number): TypedArray; new (len: number): TypedArray; name: string };

const CTOR: Record<DType, Ctor> = {
  f32: Float32Array,
  f64: Float64Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i16: Int16Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
  f8_e4m3: Uint8Array,
  f8_e5m2: Uint8Array,
} as unknown as Record<DType, Ctor>;

/** The typed array class expected for a dtype's `data`. */
export function typedArrayName(dtype: DType): string {
  return CTOR[dtype].name;
}

export function isTypedArrayFor(dtype: DType, data: unknown): boolean {
  return data instanceof (CTOR[dtype] as unknown as Function);
}

export function shapeNumel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** View (or copy, when misaligned) little-endian bytes as a host tensor. */
export function hostFromBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array): HostTensor {
  const size = DTYPE_SIZE[dtype];
  const n = shapeNumel(shape);
  if (bytes.byteLength !== n * size) throw new RangeError(`${dtype}[${shape.join(',')}] needs ${n * size} bytes, got ${bytes.byteLength}`);
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return { dtype, shape: [...shape], data: new CTOR[dtype](b.buffer, b.byteOffset, n) };
}

/** The little-endian bytes of a host tensor (a view, no copy). */
export function hostBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

export function fmtShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}
