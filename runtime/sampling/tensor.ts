/**
 * The tensors the sampler exchanges with its caller: plain objects structurally compatible with sorac's host
 * tensors (`{ dtype, shape, data }`, what `session.run` takes and returns), so a DiT session's inputs and outputs
 * pass through without copies. Only the three dtypes the sampling loop needs are modelled.
 */
import { SamplingError } from './errors.ts';

export interface F32Tensor {
  readonly dtype: 'f32';
  readonly shape: readonly number[];
  readonly data: Float32Array;
}
export interface BoolTensor {
  readonly dtype: 'bool';
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}
export interface I64Tensor {
  readonly dtype: 'i64';
  readonly shape: readonly number[];
  readonly data: BigInt64Array;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function f32(shape: readonly number[], data?: Float32Array): F32Tensor {
  return { dtype: 'f32', shape: [...shape], data: data ?? new Float32Array(numel(shape)) };
}

export const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** Check a latent shape [B, C, T, H, W]: five positive integers. */
export function checkLatentShape(shape: readonly number[], what: string): void {
  if (shape.length !== 5 || !shape.every((d) => Number.isInteger(d) && d > 0))
    throw new SamplingError('SORA8207', `${what}: latent shape ${fmt(shape)} is not [B, C, T, H, W] with positive sizes`, 'pass the latent as [batch, channels, frames, height, width] (conditioning.ts latentShape computes it)');
}

/** Rows [0, n) of a batch-major tensor's data (a view). */
export function rows(data: Float32Array, n: number, rowSize: number): Float32Array {
  return data.subarray(0, n * rowSize);
}
