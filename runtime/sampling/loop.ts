/**
 * What both sampling loops share: the denoiser contract, progress, cancellation, and argument checks.
 *
 * A Denoiser is the DiT with its text and size conditioning already bound by the caller: it takes the doubled
 * classifier-free-guidance batch (rows [0, B) conditional, [B, 2B) unconditional, as Open-Sora concatenates
 * y = [y_cond, y_null]) and the timesteps, and returns the DiT output for all 2B rows.
 */
import { SamplingError } from './errors.ts';
import type { BoolTensor, F32Tensor } from './tensor.ts';
import { fmt } from './tensor.ts';

export interface DenoiserExtras {
  /** RFLOW with a latent mask: which latent frames take the real timestep ([2B, T] bool; upstream x_mask) */
  readonly xMask?: BoolTensor;
}

/** zIn [2B, C, T, H, W], t [2B] (f32) -> DiT output [2B, C_out, T, H, W]. */
export type Denoiser = (zIn: F32Tensor, t: F32Tensor, extras: DenoiserExtras) => Promise<F32Tensor>;

/** Called after each finished step with (steps done, steps in all). */
export type StepCallback = (done: number, total: number) => void;

export function checkAbort(signal: AbortSignal | undefined, step: number, total: number): void {
  if (signal?.aborted) throw new SamplingError('SORA8214', `sampling cancelled before step ${step + 1} of ${total}`, 'nothing to fix: the caller aborted the signal');
}

export function checkCfgScale(s: number): void {
  if (typeof s !== 'number' || !Number.isFinite(s)) throw new SamplingError('SORA8202', `guidance scale ${String(s)} is not a finite number`, 'pass a finite cfg scale (Open-Sora defaults: 7.0; 7.5 at v1.3; 1.0 disables guidance)');
}

export function checkDenoised(out: F32Tensor, want: readonly number[], what: string): void {
  if (out.dtype !== 'f32' || !(out.data instanceof Float32Array))
    throw new SamplingError('SORA8208', `denoiser returned ${out.dtype}, not f32`, 'return the DiT output as f32');
  const okRank = out.shape.length === want.length;
  const ok = okRank && out.shape.every((d, i) => d === want[i]);
  if (!ok) throw new SamplingError('SORA8208', `denoiser returned shape ${fmt(out.shape)}; ${what} needs ${fmt(want)}`, 'check that the denoiser runs the DiT on the doubled batch and returns its full output');
}
