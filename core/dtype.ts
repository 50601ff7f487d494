/** Element types known to sorac, with their ONNX and safetensors spellings. */
export type DType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool' | 'f8_e4m3' | 'f8_e5m2';

export const DTYPES: readonly DType[] = ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u8', 'bool', 'f8_e4m3', 'f8_e5m2'];

/** Bytes per element. */
export const DTYPE_SIZE: Record<DType, number> = {
  f64: 8, f32: 4, f16: 2, bf16: 2, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1, bool: 1, f8_e4m3: 1, f8_e5m2: 1,
};

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  f32: 1, u8: 2, i8: 3, i16: 5, i32: 6, i64: 7, bool: 9, f16: 10, f64: 11, bf16: 16, f8_e4m3: 17, f8_e5m2: 19,
};

/** safetensors header dtype names. */
export const SAFETENSORS_DTYPE: Record<DType, string> = {
  f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', i64: 'I64', i32: 'I32', i16: 'I16', i8: 'I8', u8: 'U8', bool: 'BOOL',
  f8_e4m3: 'F8_E4M3', f8_e5m2: 'F8_E5M2',
};

export function dtypeFromSafetensors(s: string): DType | undefined {
  for (const [k, v] of Object.entries(SAFETENSORS_DTYPE)) if (v === s) return k as DType;
  return undefined;
}

export function isFloat(d: DType): boolean {
  return d === 'f64' || d === 'f32' || d === 'f16' || d === 'bf16' || d === 'f8_e4m3' || d === 'f8_e5m2';
}

export function isInt(d: DType): boolean {
  return d === 'i64' || d === 'i32' || d === 'i16' || d === 'i8' || d === 'u8';
}

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}
