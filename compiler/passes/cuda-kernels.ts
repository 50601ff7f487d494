/**
 * Which ops onnxruntime 1.29.0's CUDA execution provider has kernels for, per dtype and opset: the
 * data the CUDA lowering (cuda-precision.ts) places ops by. One row per ONNX op sorac emits (plus
 * a few it may emit at newer opsets); `[from, to]` = the opsets within 17..26 (sorac's --opset
 * range) at which a node of that op and dtype is placed on CUDAExecutionProvider; null = never
 * (no kernel: the session cannot be created, or the node silently runs on the CPU provider).
 *
 * Measured, not read from documentation: for every (op, dtype, opset) a one-node model was given to
 * onnxruntime-node 1.29.0 with the pinned CUDA provider (executionProviders ['cuda'],
 * graphOptimizationLevel 'disabled') against stand-in CUDA libraries, and ORT's verbose
 * node-placement log said where the node went (GPU research spike for issue 12; the probe needs
 * only the provider file and gcc, no GPU: bench/gpu/README.md says how to regenerate this table
 * when the pinned onnxruntime changes). Cross-checked against ORT's docs/OperatorKernels.md.
 */
export type OpsetRange = readonly [from: number, to: number];
export interface CudaKernelSupport {
  readonly f32: OpsetRange | null;
  readonly f16: OpsetRange | null;
  readonly bf16: OpsetRange | null;
  readonly note?: string;
}

/** The onnxruntime release the table describes (the pinned onnxruntime-node). */
export const CUDA_KERNELS_ORT_VERSION = '1.29.0';

export const ORT_1_29_CUDA_KERNELS: Readonly<Record<string, CudaKernelSupport>> = {
  Abs: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Add: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  And: { f32: null, f16: null, bf16: null, note: 'bool only: CUDA at [17, 26]' },
  Cast: { f32: [17, 26], f16: [17, 26], bf16: [17, 26], note: 'f32<->bf16/f16, i64/bool->bf16/f16, bf16<->f16 all on CUDA' },
  Ceil: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Clip: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Concat: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Conv: { f32: [17, 26], f16: [17, 26], bf16: [22, 26], note: 'bf16: not in the ONNX schema at opset 17-21; Conv 3-D (Conv3d probe) identical' },
  ConvTranspose: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: not in the ONNX schema at opset 17-21; bf16: no kernel on any EP at opset 22-26 (session creation fails)' },
  Cos: { f32: [17, 26], f16: [17, 26], bf16: [22, 26], note: 'bf16: not in the ONNX schema at opset 17-21' },
  Div: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Einsum: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: not in the ONNX schema at opset 17-26' },
  Equal: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Erf: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Exp: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Expand: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Flatten: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Floor: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Gather: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Gemm: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Greater: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  GreaterOrEqual: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Identity: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  InstanceNormalization: { f32: [17, 21], f16: [17, 21], bf16: null, note: 'f32: CPU kernel only at opset 22-26 (host round trip); f16: CPU kernel only at opset 22-26 (host round trip); bf16: not in the ONNX schema at opset 17-21; bf16: no kernel on any EP at opset 22-26 (session creation fails)' },
  LayerNormalization: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Less: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  LessOrEqual: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Log: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  MatMul: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Max: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Min: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Mod: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Mul: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Neg: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Not: { f32: null, f16: null, bf16: null, note: 'bool only: CUDA at [17, 26]' },
  Or: { f32: null, f16: null, bf16: null, note: 'bool only: CUDA at [17, 26]' },
  Pad: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails); reflect/edge modes identical; i64/i32 Pad runs on CPU' },
  Pow: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Range: { f32: [17, 26], f16: null, bf16: null, note: 'f16: not in the ONNX schema at opset 17-26; bf16: not in the ONNX schema at opset 17-26' },
  Reciprocal: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  ReduceMax: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  ReduceMean: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  ReduceMin: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  ReduceSum: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Relu: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Reshape: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Resize: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: no kernel on any EP at opset 17-26 (session creation fails)' },
  Round: { f32: [17, 26], f16: [17, 26], bf16: null, note: 'bf16: not in the ONNX schema at opset 17-21; bf16: no kernel on any EP at opset 22-26 (session creation fails)' },
  Shape: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Sigmoid: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Sin: { f32: [17, 26], f16: [17, 26], bf16: [22, 26], note: 'bf16: not in the ONNX schema at opset 17-21' },
  Slice: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Softmax: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Split: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Sqrt: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Squeeze: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Sub: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Tanh: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Tile: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Transpose: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Unsqueeze: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
  Where: { f32: [17, 26], f16: [17, 26], bf16: [17, 26] },
};

/** Whether `op` has a CUDA kernel for `dtype` at `opset` (unknown ops: no). */
export function cudaHasKernel(op: string, dtype: 'f32' | 'f16' | 'bf16', opset: number, table: Readonly<Record<string, CudaKernelSupport>> = ORT_1_29_CUDA_KERNELS): boolean {
  const r = table[op]?.[dtype];
  return !!r && opset >= r[0] && opset <= r[1];
}
