/**
 * IDDPM: the respaced DDPM sampler of Open-Sora 1.0 / 1.1 (opensora/schedulers/iddpm/ at v1.0.0 and v1.1.0; the
 * same code ships in v1.2.0 and v1.3), host-side math on Float32Array.
 *
 * Upstream: `IDDPM(num_sampling_steps, cfg_scale[, cfg_channel])` = SpacedDiffusion over a 1000-step linear beta
 * schedule, epsilon prediction, learned sigma (LEARNED_RANGE), `p_sample_loop(..., clip_denoised=False)` from the
 * last respaced step down to 0, the model wrapped by `forward_with_cfg`.
 *
 * Numerics follow upstream exactly, because they differ between releases:
 *  - v1.0: betas `np.linspace` (float64); SpacedDiffusion keeps the respaced betas as a float64 numpy array and
 *    every schedule array is float64 numpy; `_extract_into_tensor` rounds the looked-up value to float32.
 *  - v1.1 (and v1.2/v1.3): betas `torch.linspace(float64)` (a different last bit than numpy: torch fills the
 *    second half from the end), the base cumprod in float64, but the respaced betas become
 *    `torch.FloatTensor(new_betas)`, so every respaced schedule array is computed in float32 torch ops.
 *  - every per-element operation of p_mean_variance / p_sample is a float32 tensor op, mirrored here op by op with
 *    Math.fround (products and sums in the order upstream writes them), and torch.exp as torch's CPU kernel
 *    computes it (SLEEF expf, f32math.ts).
 * The cosine schedule ("squaredcos_cap_v2") exists at v1.0 only: v1.1's copy calls `matorch.cos` (a NameError).
 */
import { SamplingError } from './errors.ts';
import { torchExpAt } from './f32math.ts';
import type { NoiseSource } from './noise.ts';
import { type Denoiser, type StepCallback, checkAbort, checkCfgScale, checkDenoised } from './loop.ts';
import { type F32Tensor, checkLatentShape, f32, fmt, numel } from './tensor.ts';

const fr = Math.fround;

export type IddpmNumerics = 'v1.0' | 'v1.1';
export type NoiseSchedule = 'linear' | 'squaredcos_cap_v2';

// ---- beta schedules -----------------------------------------------------------------------------

/** numpy.linspace(start, stop, n): i·step + start, the last element set to stop. */
function npLinspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  if (n > 1) out[n - 1] = stop;
  return out;
}

/** x = m·2^e exactly (m a 53-bit integer, sign included). */
function exactParts(x: number): [bigint, number] {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const hi = dv.getUint32(0);
  const ex = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(dv.getUint32(4));
  let e = -1074;
  if (ex !== 0) {
    m |= 1n << 52n;
    e = ex - 1075;
  }
  return [hi >>> 31 ? -m : m, e];
}

/** fma(a, b, c) = a·b + c rounded once (exact BigInt arithmetic; finite, normal results). */
export function fma(a: number, b: number, c: number): number {
  if (a === 0 || b === 0) return a * b + c;
  const [ma, ea] = exactParts(a);
  const [mb, eb] = exactParts(b);
  const [mc, ec] = exactParts(c);
  const ep = ea + eb;
  const e = Math.min(ep, ec);
  const sum = ((ma * mb) << BigInt(ep - e)) + (mc << BigInt(ec - e));
  return Number(sum) * 2 ** e;
}

/**
 * torch.linspace(start, stop, n, dtype=float64) as torch 1.13's CPU kernel computes it (RangeFactoriesKernel.cpp,
 * AVX2 build): blocks of 4 (Vectorized<double>::arange(base, step) = base + k·step); a block starting before n/2
 * has base start + step·idx, later blocks end − step·(n − idx − 1), and the compiler contracts that base into a
 * fused multiply-add. Bit-identical to the recorded values (units.json) at 1000 and 250 steps.
 */
function torchLinspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = (stop - start) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    const b = i - (i % 4);
    const base = b < half ? fma(step, b, start) : fma(-step, n - 1 - b, stop);
    out[i] = base + (i - b) * step;
  }
  return out;
}

/** `get_named_beta_schedule(name, n)` of the release (float64). */
export function betaSchedule(name: NoiseSchedule, n: number, numerics: IddpmNumerics = 'v1.0'): Float64Array {
  if (!Number.isInteger(n) || n < 2) throw new SamplingError('SORA8201', `diffusion steps ${n} must be an integer >= 2`, 'use 1000 (every Open-Sora release)');
  if (name === 'linear') {
    const scale = 1000 / n;
    return (numerics === 'v1.0' ? npLinspace : torchLinspace)(scale * 0.0001, scale * 0.02, n);
  }
  if (name === 'squaredcos_cap_v2') {
    if (numerics !== 'v1.0') throw new SamplingError('SORA8212', 'the cosine schedule of Open-Sora v1.1+ does not run upstream (it calls matorch.cos, a NameError)', 'use noise schedule "linear", or numerics "v1.0"');
    const ab = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.min(1 - ab((i + 1) / n) / ab(i / n), 0.999);
    return out;
  }
  throw new SamplingError('SORA8212', `unknown noise schedule "${String(name)}"`, 'use "linear" (Open-Sora default) or "squaredcos_cap_v2"');
}

// ---- respacing ----------------------------------------------------------------------------------

/** Python's round(): half to even. */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function parseCount(s: string, whole: string): number {
  if (!/^\s*\+?\d+\s*$/.test(s)) throw new SamplingError('SORA8210', `respacing "${whole}": "${s}" is not a step count`, 'use "N" (e.g. "100"), comma-separated counts ("10,15,20") or "ddimN"');
  return Number.parseInt(s, 10);
}

/**
 * `space_timesteps(num_timesteps, section_counts)` (respace.py): the retained timesteps of the base process, sorted.
 * `sectionCounts`: counts per equal section, or a string "N" / "a,b,c" / "ddimN" (DDIM's fixed stride).
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | readonly number[]): number[] {
  let counts: number[];
  if (typeof sectionCounts === 'string') {
    if (sectionCounts.startsWith('ddim')) {
      const desired = parseCount(sectionCounts.slice(4), sectionCounts);
      for (let i = 1; i < numTimesteps; i++) {
        if (Math.ceil(numTimesteps / i) === desired) return Array.from({ length: desired }, (_, k) => k * i);
      }
      throw new SamplingError('SORA8211', `respacing "${sectionCounts}": cannot create exactly ${desired} steps from ${numTimesteps} with an integer stride`, 'pick a ddim count reachable with an integer stride (e.g. ddim10, ddim50, ddim100, ddim250 for 1000 steps)');
    }
    counts = sectionCounts.split(',').map((c) => parseCount(c, sectionCounts));
  } else counts = [...sectionCounts];
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let start = 0;
  const all = new Set<number>();
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new SamplingError('SORA8211', `cannot divide section of ${size} steps into ${count}`, `ask for at most ${size} steps in that section (at most ${numTimesteps} in all)`);
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      all.add(start + pyRound(cur));
      cur += stride;
    }
    start += size;
  });
  return [...all].sort((a, b) => a - b);
}

// ---- the respaced schedule ----------------------------------------------------------------------

export interface IddpmSchedule {
  readonly numerics: IddpmNumerics;
  /** spaced index -> timestep of the base process (what the model is called with) */
  readonly timestepMap: readonly number[];
  /** arrays indexed by the spaced index, holding the values upstream holds (float64, or float32 values for v1.1) */
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array;
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  readonly logBetas: Float64Array;
}

export interface IddpmScheduleOptions {
  /** num_sampling_steps (IDDPM turns it into the respacing string "N") */
  readonly steps?: number;
  /** timestep_respacing, when steps is not given ("N", "a,b", "ddimN" or counts) */
  readonly respacing?: string | readonly number[];
  readonly diffusionSteps?: number;
  readonly noiseSchedule?: NoiseSchedule;
  readonly numerics?: IddpmNumerics;
}

/** GaussianDiffusion's arrays from `betas`, in float64 (v1.0) or float32 torch ops (v1.1). */
function diffusionArrays(betas: Float64Array, numerics: IddpmNumerics) {
  const n = betas.length;
  const r = numerics === 'v1.0' ? (x: number) => x : fr;
  const A = () => new Float64Array(n);
  const alphas = A(), acp = A(), prev = A(), sra = A(), srm1 = A(), pv = A(), plv = A(), c1 = A(), c2 = A(), lb = A();
  let acc = 1;
  for (let i = 0; i < n; i++) {
    alphas[i] = r(1 - betas[i]!);
    // torch.cumprod on CPU accumulates in double and rounds each output; numpy multiplies in float64
    acc *= alphas[i]!;
    acp[i] = r(acc);
  }
  for (let i = 0; i < n; i++) {
    prev[i] = i === 0 ? 1 : acp[i - 1]!;
    sra[i] = r(Math.sqrt(r(1 / acp[i]!)));
    srm1[i] = r(Math.sqrt(r(r(1 / acp[i]!) - 1)));
    pv[i] = r(r(betas[i]! * r(1 - prev[i]!)) / r(1 - acp[i]!));
    c1[i] = r(r(betas[i]! * r(Math.sqrt(prev[i]!))) / r(1 - acp[i]!));
    c2[i] = r(r(r(1 - prev[i]!) * r(Math.sqrt(alphas[i]!))) / r(1 - acp[i]!));
    lb[i] = r(Math.log(betas[i]!));
  }
  for (let i = 0; i < n; i++) plv[i] = n > 1 ? r(Math.log(i === 0 ? pv[1]! : pv[i]!)) : Number.NaN;
  return { acp, prev, sra, srm1, pv, plv, c1, c2, lb };
}

/** IDDPM's respaced schedule (SpacedDiffusion over the base schedule). */
export function iddpmSchedule(opts: IddpmScheduleOptions = {}): IddpmSchedule {
  const numerics = opts.numerics ?? 'v1.1';
  const T = opts.diffusionSteps ?? 1000;
  const base = betaSchedule(opts.noiseSchedule ?? 'linear', T, numerics);
  let respacing: string | readonly number[];
  if (opts.steps !== undefined) {
    if (!Number.isInteger(opts.steps) || opts.steps <= 0 || opts.steps > T)
      throw new SamplingError('SORA8201', `IDDPM steps ${opts.steps} out of range: must be an integer in 1..${T} (the diffusion steps)`, `pass num_sampling_steps between 1 and ${T} (Open-Sora 1.0/1.1 use 100)`);
    respacing = String(opts.steps);
  } else respacing = opts.respacing === undefined || opts.respacing === '' ? [T] : opts.respacing;
  const use = new Set(spaceTimesteps(T, respacing));
  // base cumprod (float64 in both numerics: numpy / torch float64)
  const timestepMap: number[] = [];
  const newBetas: number[] = [];
  let acc = 1;
  let last = 1;
  for (let i = 0; i < T; i++) {
    acc *= 1 - base[i]!;
    if (use.has(i)) {
      newBetas.push(numerics === 'v1.0' ? 1 - acc / last : fr(1 - acc / last));
      last = acc;
      timestepMap.push(i);
    }
  }
  const betas = Float64Array.from(newBetas);
  const a = diffusionArrays(betas, numerics);
  return {
    numerics,
    timestepMap,
    betas,
    alphasCumprod: a.acp,
    alphasCumprodPrev: a.prev,
    sqrtRecipAlphasCumprod: a.sra,
    sqrtRecipm1AlphasCumprod: a.srm1,
    posteriorVariance: a.pv,
    posteriorLogVarianceClipped: a.plv,
    posteriorMeanCoef1: a.c1,
    posteriorMeanCoef2: a.c2,
    logBetas: a.lb,
  };
}

// ---- one step -----------------------------------------------------------------------------------

/**
 * `forward_with_cfg` on the model output of the doubled batch [2B, Cout, ...] (rows [0, B) conditional, [B, 2B)
 * unconditional): returns rows [0, B) as upstream hands them to p_mean_variance: channels [0, cfgChannel) guided
 * (uncond + s·(cond − uncond)), the rest the conditional rows' values.
 */
export function cfgCombine(out: F32Tensor, B: number, cfgScale: number, cfgChannel: number): Float32Array {
  const [B2, Cout, ...rest] = out.shape as number[];
  if (B2 !== 2 * B) throw new SamplingError('SORA8208', `denoiser output batch ${B2} is not 2 x ${B}`, 'return the doubled (conditional, unconditional) batch');
  const inner = numel(rest);
  const s = fr(cfgScale);
  const res = new Float32Array(B * Cout! * inner);
  const d = out.data;
  for (let b = 0; b < B; b++)
    for (let c = 0; c < Cout!; c++) {
      const o = (b * Cout! + c) * inner;
      const ou = ((b + B) * Cout! + c) * inner;
      if (c < cfgChannel) for (let i = 0; i < inner; i++) res[o + i] = fr(d[ou + i]! + fr(s * fr(d[o + i]! - d[ou + i]!)));
      else res.set(d.subarray(o, o + inner), o);
    }
  return res;
}

export interface PMeanVariance {
  readonly mean: Float32Array;
  readonly logVariance: Float32Array;
  readonly predXstart: Float32Array;
}

/**
 * p_mean_variance with LEARNED_RANGE and epsilon prediction, clip_denoised=False, for rows of x [B, C, ...] at
 * spaced index t (the same for every row, as p_sample_loop uses it). `modelOut` [B, 2C, ...].
 */
export function pMeanVariance(s: IddpmSchedule, x: Float32Array, modelOut: Float32Array, t: number, B: number, C: number, inner: number): PMeanVariance {
  const n = B * C * inner;
  const mean = new Float32Array(n);
  const logVariance = new Float32Array(n);
  const predXstart = new Float32Array(n);
  const minLog = fr(s.posteriorLogVarianceClipped[t]!);
  const maxLog = fr(s.logBetas[t]!);
  const ka = fr(s.sqrtRecipAlphasCumprod[t]!);
  const kb = fr(s.sqrtRecipm1AlphasCumprod[t]!);
  const c1 = fr(s.posteriorMeanCoef1[t]!);
  const c2 = fr(s.posteriorMeanCoef2[t]!);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      const o = (b * C + c) * inner;
      const oe = (b * 2 * C + c) * inner;
      const ov = (b * 2 * C + C + c) * inner;
      for (let i = 0; i < inner; i++) {
        const frac = fr(fr(modelOut[ov + i]! + 1) / 2);
        logVariance[o + i] = fr(fr(frac * maxLog) + fr(fr(1 - frac) * minLog));
        const xi = x[o + i]!;
        const px = fr(fr(ka * xi) - fr(kb * modelOut[oe + i]!));
        predXstart[o + i] = px;
        mean[o + i] = fr(fr(c1 * px) + fr(c2 * xi));
      }
    }
  return { mean, logVariance, predXstart };
}

/**
 * p_sample's update: mean + [t != 0]·exp(0.5·log_variance)·noise (noise unused, may be null, at t = 0).
 * Upstream evaluates torch.exp over the doubled CFG batch (2·n elements, these rows first), hence `torchExpAt(.., 2n)`.
 */
export function pSampleUpdate(p: PMeanVariance, t: number, noise: Float32Array | null): Float32Array {
  if (t === 0) return p.mean.slice();
  if (!noise) throw new Error('internal: IDDPM step needs noise when t != 0');
  const n = p.mean.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = fr(p.mean[i]! + fr(torchExpAt(fr(0.5 * p.logVariance[i]!), i, 2 * n) * noise[i]!));
  return out;
}

/**
 * One whole IDDPM step in a single pass (what iddpmSample runs): forward_with_cfg on the doubled-batch DiT output
 * `out` [2B, 2C, ...], p_mean_variance and p_sample's update, for rows x [B, C, ...] at spaced index t. Equal, to
 * the bit, to pSampleUpdate(pMeanVariance(cfgCombine(...))), without the intermediate arrays.
 */
export function iddpmStep(s: IddpmSchedule, x: Float32Array, out: Float32Array, t: number, cfgScale: number, cfgChannel: number, noise: Float32Array | null, B: number, C: number, inner: number): Float32Array {
  const n = B * C * inner;
  const res = new Float32Array(n);
  const minLog = fr(s.posteriorLogVarianceClipped[t]!);
  const maxLog = fr(s.logBetas[t]!);
  const ka = fr(s.sqrtRecipAlphasCumprod[t]!);
  const kb = fr(s.sqrtRecipm1AlphasCumprod[t]!);
  const c1 = fr(s.posteriorMeanCoef1[t]!);
  const c2 = fr(s.posteriorMeanCoef2[t]!);
  const g = fr(cfgScale);
  const C2 = 2 * C;
  const guided = (b: number, ch: number, i: number): number => {
    const vc = out[(b * C2 + ch) * inner + i]!;
    if (ch >= cfgChannel) return vc;
    const vu = out[((b + B) * C2 + ch) * inner + i]!;
    return fr(vu + fr(g * fr(vc - vu)));
  };
  if (t !== 0 && !noise) throw new Error('internal: IDDPM step needs noise when t != 0');
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      const o = (b * C + c) * inner;
      for (let i = 0; i < inner; i++) {
        const xi = x[o + i]!;
        const px = fr(fr(ka * xi) - fr(kb * guided(b, c, i)));
        const mean = fr(fr(c1 * px) + fr(c2 * xi));
        if (t === 0) {
          res[o + i] = mean;
          continue;
        }
        const frac = fr(fr(guided(b, C + c, i) + 1) / 2);
        const lv = fr(fr(frac * maxLog) + fr(fr(1 - frac) * minLog));
        res[o + i] = fr(mean + fr(torchExpAt(fr(0.5 * lv), o + i, 2 * n) * noise![o + i]!));
      }
    }
  return res;
}

// ---- the loop -----------------------------------------------------------------------------------

export interface IddpmSampleOptions extends IddpmScheduleOptions {
  /** [B, C, T, H, W] of the latent (B prompts; the denoiser sees 2B rows) */
  readonly latentShape: readonly number[];
  readonly cfgScale: number;
  /** channels guided by forward_with_cfg: v1.0 hard-codes 3; v1.1+ default is (model output channels) / 2 */
  readonly cfgChannel?: number;
  readonly noise: NoiseSource;
  readonly denoiser: Denoiser;
  /** a given initial latent (e.g. from a reference); default: noise.initial(latentShape) */
  readonly z0?: F32Tensor;
  readonly onStep?: StepCallback;
  readonly signal?: AbortSignal;
  /** a latent mask (v1.1 p_sample mask path) is not supported */
  readonly latentMask?: unknown;
}

/** IDDPM.sample: p_sample_loop over the respaced steps with classifier-free guidance. Returns [B, C, T, H, W]. */
export async function iddpmSample(opts: IddpmSampleOptions): Promise<F32Tensor> {
  if (opts.latentMask !== undefined && opts.latentMask !== null)
    throw new SamplingError('SORA8215', 'IDDPM with a latent mask (the v1.1 p_sample mask path of scripts/inference-long.py) is not supported', 'sample without a mask, or use the rflow sampler, which supports latent masks');
  checkLatentShape(opts.latentShape, 'IDDPM');
  checkCfgScale(opts.cfgScale);
  const sched = iddpmSchedule(opts);
  const [B, C, ...rest] = opts.latentShape as number[];
  const inner = numel(rest);
  const shape = opts.latentShape;
  let x = opts.z0 ?? (await opts.noise.initial(shape));
  if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i]))
    throw new SamplingError('SORA8204', `initial latent has shape ${fmt(x.shape)} but the latent is ${fmt(shape)}`, 'pass z0 (or initial noise) of the latent shape');
  const n = sched.timestepMap.length;
  const zIn = f32([2 * B!, C!, ...rest]);
  for (let k = 0; k < n; k++) {
    checkAbort(opts.signal, k, n);
    const t = n - 1 - k;
    // forward_with_cfg: the first half, twice
    zIn.data.set(x.data, 0);
    zIn.data.set(x.data, B! * C! * inner);
    const ts = f32([2 * B!], new Float32Array(2 * B!).fill(sched.timestepMap[t]!));
    const out = await opts.denoiser(zIn, ts, {});
    checkDenoised(out, [2 * B!, 2 * C!, ...rest], 'IDDPM (learned sigma: 2 x latent channels)');
    const cfgChannel = opts.cfgChannel ?? Math.floor(out.shape[1]! / 2);
    if (!Number.isInteger(cfgChannel) || cfgChannel < 1 || cfgChannel > out.shape[1]!)
      throw new SamplingError('SORA8218', `cfg channel ${cfgChannel} is outside 1..${out.shape[1]}`, 'use 3 (Open-Sora 1.0/1.1 configs) or leave it unset for half the output channels');
    const noise = t !== 0 ? await opts.noise.step(k, shape) : null;
    if (noise && (noise.shape.length !== shape.length || noise.shape.some((d, i) => d !== shape[i])))
      throw new SamplingError('SORA8204', `noise of step ${k} has shape ${fmt(noise.shape)} but the latent is ${fmt(shape)}`, 'give noise of the latent shape');
    x = f32(shape, iddpmStep(sched, x.data, out.data, t, opts.cfgScale, cfgChannel, noise ? noise.data : null, B!, C!, inner));
    opts.onStep?.(k + 1, n);
  }
  return x;
}
