/**
 * What Open-Sora's inference scripts feed the sampler for a request, per release: the latent size (from the VAE's
 * get_latent_size), the DiT's size conditioning (`model_args`), the text appended to prompts, and the release
 * defaults (sampler, steps, guidance). Sources, per tag: scripts/inference.py, configs/<release>/inference/*.py,
 * opensora/utils/inference_utils.py (prepare_multi_resolution_info, append_score_to_prompts),
 * opensora/models/vae/vae.py (get_latent_size), opensora/models/vae_v1_3/vae.py at v1.3.
 *
 * Values and dtypes: the scripts build model_args as `torch.tensor([v], dtype=dtype).repeat(B)` with the run's
 * dtype (bf16 for the 1.1-1.3 configs; 1.0 passes none): at 480x854 the width becomes 856 and ar = 480/854
 * becomes 0.5625 in bf16 (240x426 keeps 426; its ar 0.56338 becomes 0.5625). `modelArgs(..., { precision: 'script' })` (the default) rounds as the script does and returns
 * f32 tensors holding those values (sorac runs the DiT in f32); `precision: 'f32'` keeps the request's values
 * (what a float32 run of the scripts would pass). The timestep transform of v1.2/v1.3 reads the same tensors, so
 * at bf16 its ratio is computed in bf16 (rflow.ts `argDtype`).
 */
import { SamplingError } from './errors.ts';
import { type F32Tensor, f32 } from './tensor.ts';

export type Release = 'v1.0' | 'v1.1' | 'v1.2' | 'v1.3';
export const RELEASES: readonly Release[] = ['v1.0', 'v1.1', 'v1.2', 'v1.3'];

export interface ReleaseDefaults {
  readonly sampler: 'iddpm' | 'rflow';
  readonly steps: number;
  readonly cfgScale: number;
  /** IDDPM forward_with_cfg: channels guided (v1.0 hard-codes 3; the v1.1 config sets cfg_channel=3) */
  readonly cfgChannel?: number;
  readonly useTimestepTransform?: boolean;
  readonly oscillationGuidance?: boolean;
  readonly flawFix?: boolean;
  /** `dtype` of the inference config */
  readonly scriptDtype: 'fp16' | 'bf16';
  readonly fps: number;
  readonly seed: number;
  /** `aes` of the config (score text appended to prompts), if any */
  readonly aes?: number;
  readonly latentChannels: number;
  /** whether the script passes size conditioning (multi_resolution = "STDiT2") */
  readonly sizeConditioning: boolean;
  /** whether scripts/inference.py passes apply_mask_strategy's all-ones latent mask (x_mask) for plain t2v */
  readonly onesLatentMask: boolean;
  readonly config: string;
}

export const RELEASE_DEFAULTS: Readonly<Record<Release, ReleaseDefaults>> = {
  'v1.0': { sampler: 'iddpm', steps: 100, cfgScale: 7.0, cfgChannel: 3, scriptDtype: 'fp16', fps: 8, seed: 42, latentChannels: 4, sizeConditioning: false, onesLatentMask: false, config: 'configs/opensora/inference/16x256x256.py' },
  'v1.1': { sampler: 'iddpm', steps: 100, cfgScale: 7.0, cfgChannel: 3, scriptDtype: 'bf16', fps: 24, seed: 42, latentChannels: 4, sizeConditioning: true, onesLatentMask: false, config: 'configs/opensora-v1-1/inference/sample.py' },
  'v1.2': { sampler: 'rflow', steps: 30, cfgScale: 7.0, useTimestepTransform: true, scriptDtype: 'bf16', fps: 24, seed: 42, aes: 6.5, latentChannels: 4, sizeConditioning: true, onesLatentMask: true, config: 'configs/opensora-v1-2/inference/sample.py' },
  'v1.3': { sampler: 'rflow', steps: 30, cfgScale: 7.5, useTimestepTransform: true, oscillationGuidance: true, flawFix: true, scriptDtype: 'bf16', fps: 24, seed: 42, latentChannels: 16, sizeConditioning: true, onesLatentMask: true, config: 'configs/opensora-v1-3/inference/t2v.py' },
};

/** opensora/datasets/datasets.py IMG_FPS: the fps passed for single images */
export const IMG_FPS = 120;

export interface VideoRequest {
  readonly height: number;
  readonly width: number;
  readonly numFrames: number;
  /** default: the release's fps */
  readonly fps?: number;
  /** prompts per batch (default 1) */
  readonly batch?: number;
}

export function checkRelease(r: string): asserts r is Release {
  if (!(RELEASES as readonly string[]).includes(r)) throw new SamplingError('SORA8219', `unknown release "${r}"`, `use one of ${RELEASES.join(', ')}`);
}

function checkRequest(req: VideoRequest): void {
  for (const [k, v] of [['height', req.height], ['width', req.width], ['numFrames', req.numFrames]] as const)
    if (!Number.isInteger(v) || v <= 0) throw new SamplingError('SORA8216', `video request: ${k} = ${v} is not a positive integer`, 'ask for positive integer height, width and frame count');
  if (req.batch !== undefined && (!Number.isInteger(req.batch) || req.batch <= 0)) throw new SamplingError('SORA8216', `video request: batch = ${req.batch} is not a positive integer`, 'ask for at least one prompt');
  if (req.fps !== undefined && !(req.fps > 0 && Number.isFinite(req.fps))) throw new SamplingError('SORA8216', `video request: fps = ${req.fps} is not a positive number`, 'pass a positive fps');
}

/**
 * The latent [T, h, w] for a request: `vae.get_latent_size((num_frames, height, width))`.
 * v1.0/v1.1 VideoAutoencoderKL: [T, H div 8, W div 8]. v1.2 pipeline (micro_frame_size 17):
 * [5·(T div 17) + ceil((T mod 17)/4), H div 8, W div 8]. v1.3 (OpenSoraVAE_V1_3, micro_frame_size 17, temporal_overlap):
 * [T == 1 ? 1 : (T − 1) div 16 · 5, ceil(H/8), ceil(W/8)].
 */
export function latentSize(release: Release, req: VideoRequest): [number, number, number] {
  checkRelease(release);
  checkRequest(req);
  const { height: H, width: W, numFrames: T } = req;
  switch (release) {
    case 'v1.0':
      if (H % 8 || W % 8) throw new SamplingError('SORA8216', `Open-Sora 1.0 needs height and width divisible by 8 (got ${H}x${W})`, 'VideoAutoencoderKL.get_latent_size asserts divisibility by the patch (1, 8, 8) at v1.0');
      return [T, H / 8, W / 8];
    case 'v1.1':
      return [T, Math.floor(H / 8), Math.floor(W / 8)];
    case 'v1.2':
      return [5 * Math.floor(T / 17) + Math.ceil((T % 17) / 4), Math.floor(H / 8), Math.floor(W / 8)];
    case 'v1.3': {
      const t = T === 1 ? 1 : Math.floor((T - 1) / 16) * 5;
      if (t === 0) throw new SamplingError('SORA8216', `Open-Sora 1.3's VAE gives no latent frame for ${T} frames`, 'ask for 1 frame or at least 17');
      return [t, Math.floor((H - 1) / 8) + 1, Math.floor((W - 1) / 8) + 1];
    }
  }
}

/** The latent shape [B, C, T, h, w] the script draws its initial noise for. */
export function latentShape(release: Release, req: VideoRequest): [number, number, number, number, number] {
  const [t, h, w] = latentSize(release, req);
  return [req.batch ?? 1, RELEASE_DEFAULTS[release].latentChannels, t, h, w];
}

// ---- float formats ------------------------------------------------------------------------------

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Round to bfloat16 (round to nearest even, from the float32 value), returned as a number. */
export function roundBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7f800000) === 0x7f800000) return f32buf[0]!;
  u32buf[0] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f32buf[0]!;
}

/** Round to IEEE half (round to nearest even), returned as a number (normal range; the sizes here are small integers and ratios). */
export function roundF16(x: number): number {
  const v = Math.fround(x);
  if (v === 0 || !Number.isFinite(v)) return v;
  const e = Math.floor(Math.log2(Math.abs(v)));
  const q = 2 ** (Math.max(e, -14) - 10);
  const r = v / q;
  const f = Math.floor(r);
  const d = r - f;
  const n = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
  return n * q;
}

export type ArgPrecision = 'script' | 'f32';

export function roundTo(dtype: 'fp16' | 'bf16' | 'f32', x: number): number {
  return dtype === 'bf16' ? roundBf16(x) : dtype === 'fp16' ? roundF16(x) : Math.fround(x);
}

/**
 * The DiT size conditioning scripts/inference.py passes (`prepare_multi_resolution_info("STDiT2", ...)` at v1.2/v1.3,
 * its inline copy at v1.1): height, width, num_frames, ar = height / width, fps (IMG_FPS = 120 for one frame), each
 * [B]. v1.0 passes none ({}). STDiT2 reads all five; STDiT3 reads fps/height/width (num_frames feeds the timestep
 * transform). Keys are the DiT entries' input names.
 */
export function modelArgs(release: Release, req: VideoRequest, opts: { precision?: ArgPrecision } = {}): Record<string, F32Tensor> {
  checkRelease(release);
  checkRequest(req);
  const d = RELEASE_DEFAULTS[release];
  if (!d.sizeConditioning) return {};
  const B = req.batch ?? 1;
  const dt = (opts.precision ?? 'script') === 'script' ? d.scriptDtype : 'f32';
  const fps = req.numFrames > 1 ? (req.fps ?? d.fps) : IMG_FPS;
  const t = (v: number) => f32([B], new Float32Array(B).fill(roundTo(dt, v)));
  return { height: t(req.height), width: t(req.width), num_frames: t(req.numFrames), ar: t(req.height / req.width), fps: t(fps) };
}

/**
 * Python's f"{x:.1f}". JS toFixed also rounds the exact binary value, but picks the larger neighbour on an exact
 * tie, where Python picks the even one; exact ties at one decimal are odd multiples of 1/4 (0.25, 6.75).
 */
export function pyFixed1(x: number): string {
  if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) {
    const lo = Math.floor(x * 10);
    return ((lo % 2 === 0 ? lo : lo + 1) / 10).toFixed(1);
  }
  return x.toFixed(1);
}

const AES_WORDS: ReadonlyArray<[number, string]> = [[4, 'terrible'], [4.5, 'very poor'], [5, 'poor'], [5.5, 'fair'], [6, 'good'], [6.5, 'very good']];
const MOTION_WORDS: ReadonlyArray<[number, string]> = [[0.5, 'very low'], [2, 'low'], [5, 'fair'], [10, 'high'], [20, 'very high']];

/**
 * append_score_to_prompts(prompts, aes, flow, camera_motion) of the release: v1.2 appends
 * " aesthetic score: 6.5." / " motion score: X.X." (one decimal) unless the prompt already has one; v1.3 appends
 * " The aesthetic score is <word>." / " The motion strength is <word>." (transform_aes / transform_motion). Both append
 * " camera motion: <text>." when given. v1.0/v1.1 append nothing.
 */
export function promptWithScores(release: Release, prompt: string, s: { aes?: number | string; flow?: number | string; cameraMotion?: string } = {}): string {
  checkRelease(release);
  let p = prompt;
  const word = (table: ReadonlyArray<[number, string]>, top: string, v: number | string) => {
    const n = typeof v === 'number' ? v : Number(v);
    if (typeof v === 'string' && (v.trim() === '' || Number.isNaN(n))) return v;
    for (const [lim, w] of table) if (n < lim) return w;
    return top;
  };
  if (release === 'v1.2') {
    if (s.aes !== undefined && !prompt.includes('aesthetic score:')) p = `${p} aesthetic score: ${pyFixed1(Number(s.aes))}.`;
    if (s.flow !== undefined && !prompt.includes('motion score:')) p = `${p} motion score: ${pyFixed1(Number(s.flow))}.`;
  } else if (release === 'v1.3') {
    if (s.aes !== undefined && !prompt.includes('aesthetic score is')) p = `${p} The aesthetic score is ${word(AES_WORDS, 'excellent', s.aes)}.`;
    if (s.flow !== undefined && !prompt.includes('motion strength is')) p = `${p} The motion strength is ${word(MOTION_WORDS, 'extremely high', s.flow)}.`;
  } else return p;
  if (s.cameraMotion !== undefined && !prompt.includes('camera motion:')) p = `${p} camera motion: ${s.cameraMotion}.`;
  return p;
}
