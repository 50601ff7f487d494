/**
 * Open-Sora 2.0's flow sampler (opensora/utils/sampling.py at HEAD), text-to-video, host-side math on Float32Array.
 *
 * Schedule (get_schedule): t = torch.linspace(1, 0, n + 1) in float32, then, with `shift`, t' = α·t / (1 + (α − 1)·t)
 * (time_shift, float32 tensor ops with Python-float scalars) where α = flow_shift if given, else
 * (m·image_seq_len + b)·sqrt(latent frames) with the line through (256, base_shift) and (4096, max_shift) and
 * image_seq_len = h·w / patch² of the latent. The n + 1 values end at 0.
 *
 * Loop (I2VDenoiser.denoise): per step i, the model runs on the batch [z; z; z] with the texts [prompt; neg; neg]
 * and the i2v condition [cond; cond; 0] (t2v: cond = 0), timesteps t_i (float32) and the guidance vector; then
 * pred = uncond_2 + image_gs·(uncond − uncond_2) + text_gs·(cond − uncond) and z += (t_{i+1} − t_i)·pred, with
 * text_gs = get_oscillation_gs(guidance, i) when text_osci (the full scale for i < 10 and on even steps, else 1.0).
 * In text-to-video rows 2 and 3 have identical inputs, so uncond_2 = uncond and the image term is image_gs·0 = 0:
 * this loop runs the doubled batch [z; z] (prompt, negative) and computes uncond + 0 + text_gs·(cond − uncond) in
 * the same float32 order, which equals upstream's result. i2v/v2v conditioning (references, image guidance with
 * scale_temporal_osci) and the distilled denoiser are not supported.
 *
 * Latents stay in the VAE's layout [B, C, T, h, w] here (the update is elementwise, so it commutes with
 * upstream's pack/unpack); the Denoiser packs them into tokens for the transformer (denoiser.ts mmditDenoiser).
 */
import { SamplingError } from './errors.ts';
import type { NoiseSource } from './noise.ts';
import { type Denoiser, type StepCallback, checkAbort, checkCfgScale, checkDenoised } from './loop.ts';
import { oscillationScale } from './rflow.ts';
import { type F32Tensor, checkLatentShape, f32, fmt } from './tensor.ts';

const fr = Math.fround;

/**
 * torch.linspace(start, end, steps) in float32 as torch 1.13 computes it on the CPU (RangeFactoriesKernel.cpp,
 * AVX2 dispatch): step = (end − start) / (steps − 1) in float32; values start + step·i below steps / 2 and
 * end − step·(steps − 1 − i) from there, but in blocks of two 8-lane vectors each lane is base + k·step from the
 * block's first value (the scalar tail uses the formula). Matches torch bit for bit on AVX2 machines.
 */
export function linspaceF32(start: number, end: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new SamplingError('SORA8201', `linspace: ${steps} points`, 'ask for at least one step');
  if (steps === 1) return [fr(start)];
  const s = fr(start);
  const e = fr(end);
  const step = fr(fr(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const V = 8;
  const at = (idx: number) => (idx < half ? fr(s + fr(step * idx)) : fr(e - fr(step * (steps - idx - 1))));
  const out: number[] = [];
  let idx = 0;
  while (idx < steps) {
    if (steps - idx >= 2 * V) {
      for (let v = 0; v < 2; v++) {
        const base = at(idx);
        for (let k = 0; k < V; k++) out.push(fr(base + fr(k * step)));
        idx += V;
      }
    } else out.push(at(idx++));
  }
  return out;
}

export interface ShiftOptions {
  /** SamplingOption.shift (default true) */
  readonly shift?: boolean;
  /** SamplingOption.flow_shift: a fixed α */
  readonly flowShift?: number | null;
  readonly baseShift?: number;
  readonly maxShift?: number;
}

/** get_schedule's α: flow_shift, or the resolution line times sqrt(latent frames) (Python floats). */
export function shiftAlpha(imageSeqLen: number, numFrames: number, o: ShiftOptions = {}): number {
  if (o.flowShift !== undefined && o.flowShift !== null) return o.flowShift;
  const x1 = 256;
  const y1 = o.baseShift ?? 1;
  const x2 = 4096;
  const y2 = o.maxShift ?? 3;
  const m = (y2 - y1) / (x2 - x1);
  const b = y1 - m * x1;
  return (m * imageSeqLen + b) * Math.sqrt(numFrames);
}

/** get_schedule(num_steps, image_seq_len, num_frames, ...): the n + 1 timesteps (float32 values) from 1 to 0. */
export function rflowV2Timesteps(steps: number, imageSeqLen: number, numFrames: number, o: ShiftOptions = {}): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new SamplingError('SORA8201', `rflow_v2 steps ${steps}: expected a positive integer`, 'pass num_sampling_steps >= 1 (Open-Sora 2.0 uses 50)');
  const t = linspaceF32(1, 0, steps + 1);
  if (o.shift === false) return t;
  const alpha = shiftAlpha(imageSeqLen, numFrames, o);
  if (!Number.isFinite(alpha) || alpha <= 0)
    throw new SamplingError('SORA8209', `rflow_v2: the schedule's shift α = ${alpha} is not a positive number`, 'pass flow_shift > 0, or shift=false');
  const a = fr(alpha);
  const am1 = fr(alpha - 1);
  return t.map((x) => fr(fr(a * x) / fr(1 + fr(am1 * x))));
}

export interface RflowV2SampleOptions extends ShiftOptions {
  /** [B, C, T, h, w] in the VAE's layout */
  readonly latentShape: readonly number[];
  readonly steps: number;
  /** SamplingOption.guidance (text) */
  readonly cfgScale: number;
  /** SamplingOption.text_osci */
  readonly textOsci?: boolean;
  /** SamplingOption.guidance_img (inert in text-to-video: it multiplies uncond − uncond_2 = 0) */
  readonly guidanceImg?: number;
  readonly imageOsci?: boolean;
  /** patch size of the transformer's tokens (image_seq_len = h·w / patch²) */
  readonly patchSize?: number;
  readonly noise: NoiseSource;
  /** the transformer with its text bound: zIn [2B, C, T, h, w] (rows [0, B) prompts, [B, 2B) negative), t [2B] in [0, 1] */
  readonly denoiser: Denoiser;
  readonly onStep?: StepCallback;
  readonly signal?: AbortSignal;
}

/** I2VDenoiser.denoise for text-to-video. Returns the latents [B, C, T, h, w]. */
export async function rflowV2Sample(o: RflowV2SampleOptions): Promise<F32Tensor> {
  checkLatentShape(o.latentShape, 'rflow_v2');
  checkCfgScale(o.cfgScale);
  const shape = o.latentShape;
  const [B, C, T, h, w] = shape as [number, number, number, number, number];
  const p = o.patchSize ?? 2;
  if (h % p || w % p) throw new SamplingError('SORA8207', `rflow_v2: the latent ${h}x${w} is not divisible by the patch size ${p}`, `ask for a height and width whose latent is a multiple of ${p} (Open-Sora 2.0 rounds them up to multiples of 16)`);
  const ts = rflowV2Timesteps(o.steps, (h * w) / (p * p), T, o);
  let z = await o.noise.initial(shape);
  if (z.shape.length !== shape.length || z.shape.some((d, i) => d !== shape[i]))
    throw new SamplingError('SORA8204', `initial latent has shape ${fmt(z.shape)} but the latent is ${fmt(shape)}`, 'pass initial noise of the latent shape');
  z = f32(shape, z.data.slice());
  const n = o.steps;
  const row = C * T * h * w;
  const zIn = f32([2 * B, C, T, h, w]);
  const imageGs = fr(o.guidanceImg ?? 3.0);
  for (let i = 0; i < n; i++) {
    checkAbort(o.signal, i, n);
    const tCurr = ts[i]!;
    const tPrev = ts[i + 1]!;
    zIn.data.set(z.data, 0);
    zIn.data.set(z.data, B * row);
    const tIn = f32([2 * B], new Float32Array(2 * B).fill(tCurr));
    const out = await o.denoiser(zIn, tIn, {});
    checkDenoised(out, [2 * B, C, T, h, w], 'rflow_v2 (the velocity: latent channels)');
    const textGs = fr(o.textOsci ? oscillationScale(o.cfgScale, i) : o.cfgScale);
    // the image term of t2v: image_gs·(uncond − uncond_2) with uncond_2 = uncond (get_oscillation_gs when image_osci)
    const imgGs = o.imageOsci ? fr(oscillationScale(imageGs, i)) : imageGs;
    const dt = fr(tPrev - tCurr);
    for (let b = 0; b < B; b++) {
      const oc = b * row;
      const ou = (B + b) * row;
      for (let k = 0; k < row; k++) {
        const c = out.data[oc + k]!;
        const u = out.data[ou + k]!;
        const pred = fr(fr(u + fr(imgGs * fr(u - u))) + fr(textGs * fr(c - u)));
        z.data[oc + k] = fr(z.data[oc + k]! + fr(dt * pred));
      }
    }
    o.onStep?.(i + 1, n);
  }
  return z;
}
