/**
 * RFLOW: the rectified-flow sampler of Open-Sora 1.2 and 1.3 (opensora/schedulers/rf/ at v1.2.0 and v1.3), host-side
 * math on Float32Array.
 *
 * Upstream RFLOW.sample: timesteps (1 − i/n)·1000 for i < n (Python floats, then float32 tensors; with
 * use_discrete_timesteps int(round(t)) and int64), optionally `timestep_transform`ed by resolution and frame count,
 * then per step: z_in = [z, z], pred = model(z_in, [t, t]).chunk(2, dim=1)[0] (the velocity half of the learned-
 * sigma output), v = uncond + s·(cond − uncond), z += v·dt with dt = (t_i − t_{i+1}) / 1000 (t_last / 1000 at the
 * end). Every operation is mirrored in float32 (Math.fround per torch op).
 *
 * Latent masks (`mask` [B, T] of edit ratios; the scripts pass apply_mask_strategy's all-ones mask for plain
 * text-to-video at v1.2): per step, frames with mask·1000 ≥ t are "active" (x_mask for the DiT), frames becoming
 * active for the first time are re-noised to level t with add_noise(x0, noise_i, t), and after the update inactive
 * frames are put back. Supported as upstream writes it.
 *
 * v1.3 additions supported: its timestep_transform (frames (n − 1) div 4, `transform_scale` on videos only,
 * `scale_temporal`), oscillation guidance (guidance 1.0 on odd steps after `force_num`), and the guidance "flaw fix"
 * (v·(0.7·std(cond)/std(v) + 0.3)). Not supported: v1.3's image/video conditioning (z_cond, mask_index: 3-way
 * guidance, a v1.3 DiT input), negative prompts (the caller binds them into the denoiser's unconditional rows), SDEdit.
 */
import { SamplingError } from './errors.ts';
import type { NoiseSource } from './noise.ts';
import { type Denoiser, type StepCallback, checkAbort, checkCfgScale, checkDenoised } from './loop.ts';
import { roundBf16 } from './conditioning.ts';
import { type BoolTensor, type F32Tensor, checkLatentShape, f32, fmt, numel } from './tensor.ts';

const fr = Math.fround;

export type RflowRelease = 'v1.2' | 'v1.3';

export interface TransformInputs {
  /** per prompt, as the script's model_args (float32 values) */
  readonly height: readonly number[];
  readonly width: readonly number[];
  readonly numFrames: readonly number[];
}

export interface TransformOptions {
  readonly release?: RflowRelease;
  /** v1.3 transform_scale (videos only); v1.2's RFLOW.sample always uses 1.0 */
  readonly scale?: number;
  /** v1.3 scale_temporal (default true) */
  readonly scaleTemporal?: boolean;
  readonly numTimesteps?: number;
  readonly baseResolution?: number;
  readonly baseNumFrames?: number;
  /** dtype of the height/width/num_frames tensors the script passes (bf16 in the released configs): the
   * resolution/frame ratio is then computed in that dtype, as torch does, until it meets the float32 t */
  readonly argDtype?: 'f32' | 'bf16';
}

/**
 * `timestep_transform(t, model_kwargs, ...)` for a batch: t [B] (float32 values, or integers) -> new t [B].
 * v1.2: frames = 1 if num_frames[0] == 1 else num_frames div 17 · 5; v1.3: (num_frames − 1) div 4 (or 1 for images /
 * scale_temporal false), and `scale` applies to videos only. ratio = sqrt(h·w / base_res)·sqrt(frames / base_frames)·scale;
 * t' = ratio·t / (1 + (ratio − 1)·t) on t / 1000, times 1000.
 */
export function timestepTransform(t: readonly number[], inp: TransformInputs, o: TransformOptions = {}): number[] {
  const release = o.release ?? 'v1.2';
  const N = o.numTimesteps ?? 1000;
  const baseRes = o.baseResolution ?? 512 * 512;
  const baseFrames = o.baseNumFrames ?? 1;
  const scale = o.scale ?? 1.0;
  const scaleTemporal = o.scaleTemporal ?? true;
  const B = t.length;
  for (const [k, v] of [['height', inp.height], ['width', inp.width], ['numFrames', inp.numFrames]] as const)
    if (v.length !== B || v.some((x) => !Number.isFinite(x) || x <= 0))
      throw new SamplingError('SORA8209', `timestep transform: ${k} must hold ${B} positive values, got [${v.join(', ')}]`, 'pass height, width and num_frames per prompt (conditioning.ts modelArgs)');
  const isImage = inp.numFrames[0] === 1 || (release === 'v1.3' && !scaleTemporal);
  const ra = o.argDtype === 'bf16' ? roundBf16 : fr;
  return t.map((tb, b) => {
    const tt = fr(tb / N);
    const res = ra(ra(inp.height[b]!) * ra(inp.width[b]!));
    const rs = ra(Math.sqrt(ra(res / baseRes)));
    let nf: number;
    if (isImage) nf = 1;
    else if (release === 'v1.2') nf = ra(Math.floor(ra(inp.numFrames[b]!) / 17) * 5);
    else nf = ra(Math.floor((ra(inp.numFrames[b]!) - 1) / 4));
    const rt = ra(Math.sqrt(ra(nf / baseFrames)));
    let ratio = ra(rs * rt);
    if (release === 'v1.2' || !isImage) ratio = ra(ratio * ra(scale));
    const nt = fr(fr(ratio * tt) / fr(1 + fr(ra(ratio - 1) * tt)));
    return fr(nt * N);
  });
}

/** Python's round(): half to even. */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface RflowScheduleOptions extends TransformOptions {
  readonly steps: number;
  readonly useDiscreteTimesteps?: boolean;
  readonly useTimestepTransform?: boolean;
  /** needed with useTimestepTransform */
  readonly transformInputs?: TransformInputs;
  readonly batch: number;
}

/** The per-step timesteps [steps][B] as RFLOW.sample computes them (float32 values). */
export function rflowTimesteps(o: RflowScheduleOptions): number[][] {
  const N = o.numTimesteps ?? 1000;
  if (!Number.isInteger(o.steps) || o.steps <= 0 || o.steps > N)
    throw new SamplingError('SORA8201', `RFLOW steps ${o.steps} out of range: must be an integer in 1..${N}`, `pass num_sampling_steps between 1 and ${N} (Open-Sora 1.2/1.3 use 30)`);
  const out: number[][] = [];
  for (let i = 0; i < o.steps; i++) {
    const t = (1.0 - i / o.steps) * N;
    const v = o.useDiscreteTimesteps ? pyRound(t) : fr(t);
    let ts = new Array<number>(o.batch).fill(v);
    if (o.useTimestepTransform) {
      if (!o.transformInputs) throw new SamplingError('SORA8209', 'the timestep transform needs height, width and num_frames', 'pass transformInputs (conditioning.ts modelArgs gives them)');
      ts = timestepTransform(ts, o.transformInputs, o);
      if (ts.some((x) => !Number.isFinite(x)))
        throw new SamplingError('SORA8209', `the ${o.release ?? 'v1.2'} timestep transform gives timestep ${ts.find((x) => !Number.isFinite(x))} at step ${i} (num_frames [${o.transformInputs.numFrames.join(', ')}]: ${o.release === 'v1.3' ? '(n - 1) div 4' : 'n div 17 · 5'} = 0 latent-frame units, so the ratio is 0 and t = 1000 becomes 0/0, as upstream)`, o.release === 'v1.3' ? 'ask for 1 frame or at least 5' : 'ask for 1 frame or at least 17 frames, or sample without the timestep transform');
    }
    out.push(ts);
  }
  return out;
}

/** v1.3 get_oscillation_gs: the full scale for the first `forceNum` steps and on even steps, 1.0 otherwise. */
export function oscillationScale(scale: number, i: number, forceNum = 10): number {
  return i < forceNum || i % 2 === 0 ? scale : 1.0;
}

/** std over all elements of one row (unbiased, as torch.std), accumulated in float64. */
function rowStd(d: Float32Array, o: number, n: number): number {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += d[o + i]!;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (d[o + i]! - mean) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/** v1.3 fix_guidance_flaw, in place on v [B, ...]: v·(0.7·std(cond)/std(v) + 0.3) per row. */
export function fixGuidanceFlaw(v: Float32Array, cond: Float32Array, B: number): void {
  const n = v.length / B;
  for (let b = 0; b < B; b++) {
    const f = fr(fr(fr(0.7) * fr(fr(rowStd(cond, b * n, n)) / fr(rowStd(v, b * n, n)))) + fr(1 - 0.7));
    for (let i = 0; i < n; i++) v[b * n + i] = fr(v[b * n + i]! * f);
  }
}

export interface RflowSampleOptions extends TransformOptions {
  readonly latentShape: readonly number[];
  readonly steps: number;
  readonly cfgScale: number;
  readonly useDiscreteTimesteps?: boolean;
  readonly useTimestepTransform?: boolean;
  readonly transformInputs?: TransformInputs;
  /** latent mask [B, T] of edit ratios in [0, 1] (upstream `mask`); absent = no mask path */
  readonly latentMask?: F32Tensor;
  /** v1.3 use_oscillation_guidance / force_num */
  readonly oscillationGuidance?: boolean;
  readonly forceNum?: number;
  /** v1.3 use_flaw_fix */
  readonly flawFix?: boolean;
  readonly noise: NoiseSource;
  readonly denoiser: Denoiser;
  /** the initial latent (e.g. with reference frames written in); default: noise.initial(latentShape) */
  readonly z0?: F32Tensor;
  readonly onStep?: StepCallback;
  readonly signal?: AbortSignal;
}

/** RFLOW.sample with classifier-free guidance. Returns the latents [B, C, T, H, W]. */
export async function rflowSample(o: RflowSampleOptions): Promise<F32Tensor> {
  checkLatentShape(o.latentShape, 'RFLOW');
  checkCfgScale(o.cfgScale);
  const shape = o.latentShape;
  const [B, C, T, ...hw] = shape as number[];
  const N = o.numTimesteps ?? 1000;
  const frameSize = numel(hw);
  const inner = T! * frameSize;
  const ts = rflowTimesteps({ ...o, batch: B! });
  let z = o.z0 ?? (await o.noise.initial(shape));
  if (z.shape.length !== shape.length || z.shape.some((d, i) => d !== shape[i]))
    throw new SamplingError('SORA8204', `initial latent has shape ${fmt(z.shape)} but the latent is ${fmt(shape)}`, 'pass z0 (or initial noise) of the latent shape');
  z = f32(shape, z.data.slice());
  const mask = o.latentMask;
  let noiseAdded: Uint8Array | null = null;
  if (mask) {
    if (mask.shape.length !== 2 || mask.shape[0] !== B || mask.shape[1] !== T)
      throw new SamplingError('SORA8213', `latent mask has shape ${fmt(mask.shape)}; the latent needs [${B}, ${T}]`, 'pass one edit ratio per prompt and latent frame');
    if ([...mask.data].some((m) => !(m >= 0 && m <= 1)))
      throw new SamplingError('SORA8213', 'latent mask values must lie in [0, 1] (0 = keep the frame, 1 = generate it)', 'use edit ratios between 0 and 1');
    noiseAdded = Uint8Array.from(mask.data, (m) => (m === 1 ? 1 : 0));
  }
  const n = ts.length;
  const zIn = f32([2 * B!, C!, T!, ...hw]);
  const s0 = fr(o.cfgScale);
  for (let i = 0; i < n; i++) {
    checkAbort(o.signal, i, n);
    const t = ts[i]!;
    let x0: Float32Array | null = null;
    let upper: Uint8Array | null = null;
    let xMask: BoolTensor | undefined;
    if (mask && noiseAdded) {
      x0 = z.data.slice();
      upper = new Uint8Array(B! * T!);
      for (let b = 0; b < B!; b++) for (let f = 0; f < T!; f++) upper[b * T! + f] = fr(mask.data[b * T! + f]! * N) >= t[b]! ? 1 : 0;
      const add = upper.map((u, k) => (u && !noiseAdded![k] ? 1 : 0));
      if (add.some((a) => a)) {
        const noise = await o.noise.step(i, shape);
        if (noise.shape.length !== shape.length || noise.shape.some((d, k) => d !== shape[k]))
          throw new SamplingError('SORA8204', `noise of step ${i} has shape ${fmt(noise.shape)} but the latent is ${fmt(shape)}`, 'give noise of the latent shape');
        for (let b = 0; b < B!; b++) {
          const tp = fr(1 - fr(fr(t[b]!) / N));
          const tq = fr(1 - tp);
          for (let c = 0; c < C!; c++)
            for (let f = 0; f < T!; f++) {
              if (!add[b * T! + f]) continue;
              const o0 = ((b * C! + c) * T! + f) * frameSize;
              for (let k = 0; k < frameSize; k++) z.data[o0 + k] = fr(fr(tp * x0[o0 + k]!) + fr(tq * noise.data[o0 + k]!));
            }
        }
      }
      noiseAdded = upper;
      const xm = new Uint8Array(2 * B! * T!);
      xm.set(upper, 0);
      xm.set(upper, B! * T!);
      xMask = { dtype: 'bool', shape: [2 * B!, T!], data: xm };
    }
    zIn.data.set(z.data, 0);
    zIn.data.set(z.data, B! * C! * inner);
    const tIn = f32([2 * B!], Float32Array.from([...t, ...t]));
    const out = await o.denoiser(zIn, tIn, xMask ? { xMask } : {});
    checkDenoised(out, [2 * B!, 2 * C!, T!, ...hw], 'RFLOW (learned-sigma DiT: 2 x latent channels)');
    // pred = out.chunk(2, dim=1)[0]; cond rows [0, B), uncond rows [B, 2B)
    const gs = o.oscillationGuidance ? fr(oscillationScale(o.cfgScale, i, o.forceNum ?? 10)) : s0;
    const v = new Float32Array(B! * C! * inner);
    const cond = o.flawFix ? new Float32Array(v.length) : null;
    for (let b = 0; b < B!; b++)
      for (let c = 0; c < C!; c++) {
        const oc = (b * 2 * C! + c) * inner;
        const ou = ((b + B!) * 2 * C! + c) * inner;
        const ov = (b * C! + c) * inner;
        for (let k = 0; k < inner; k++) {
          const pc = out.data[oc + k]!;
          const pu = out.data[ou + k]!;
          v[ov + k] = fr(pu + fr(gs * fr(pc - pu)));
          if (cond) cond[ov + k] = pc;
        }
      }
    if (cond) fixGuidanceFlaw(v, cond, B!);
    for (let b = 0; b < B!; b++) {
      const dt = fr((i < n - 1 ? fr(t[b]! - ts[i + 1]![b]!) : t[b]!) / N);
      const o0 = b * C! * inner;
      for (let k = 0; k < C! * inner; k++) z.data[o0 + k] = fr(z.data[o0 + k]! + fr(v[o0 + k]! * dt));
    }
    if (upper && x0) {
      for (let b = 0; b < B!; b++)
        for (let f = 0; f < T!; f++) {
          if (upper[b * T! + f]) continue;
          for (let c = 0; c < C!; c++) {
            const o0 = ((b * C! + c) * T! + f) * frameSize;
            z.data.set(x0.subarray(o0, o0 + frameSize), o0);
          }
        }
    }
    o.onStep?.(i + 1, n);
  }
  return z;
}
