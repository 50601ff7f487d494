/**
 * The sampler entry point used by `sorac generate`: `sample(kind, options)` runs IDDPM or RFLOW with a Denoiser
 * (the DiT, conditioning bound), a NoiseSource, progress via onStep(done, total) and cancellation through an
 * AbortSignal checked between steps; `releaseSampler(release)` gives the release's defaults as options.
 */
import { SamplingError } from './errors.ts';
import { type IddpmSampleOptions, iddpmSample } from './iddpm.ts';
import { type RflowSampleOptions, rflowSample } from './rflow.ts';
import { type Release, RELEASE_DEFAULTS, checkRelease } from './conditioning.ts';
import type { F32Tensor } from './tensor.ts';

export type SamplerKind = 'iddpm' | 'rflow';

export function sample(kind: 'iddpm', opts: IddpmSampleOptions): Promise<F32Tensor>;
export function sample(kind: 'rflow', opts: RflowSampleOptions): Promise<F32Tensor>;
/** kind chosen at run time: options valid for both */
export function sample(kind: SamplerKind, opts: IddpmSampleOptions & RflowSampleOptions): Promise<F32Tensor>;
export function sample(kind: SamplerKind, opts: IddpmSampleOptions | RflowSampleOptions): Promise<F32Tensor> {
  if (kind === 'iddpm') return iddpmSample(opts as IddpmSampleOptions);
  if (kind === 'rflow') return rflowSample(opts as RflowSampleOptions);
  return Promise.reject(new SamplingError('SORA8219', `unknown sampler kind "${String(kind)}"`, 'use "iddpm" (Open-Sora 1.0/1.1) or "rflow" (1.2/1.3)'));
}

/** Release defaults as sampler options (steps, guidance, numerics, transform and v1.3 guidance tweaks). */
export function releaseSampler(release: Release): { kind: 'iddpm'; options: Pick<IddpmSampleOptions, 'steps' | 'cfgScale' | 'cfgChannel' | 'numerics'> } | { kind: 'rflow'; options: Pick<RflowSampleOptions, 'steps' | 'cfgScale' | 'useTimestepTransform' | 'release' | 'oscillationGuidance' | 'flawFix' | 'argDtype'> } {
  checkRelease(release);
  const d = RELEASE_DEFAULTS[release];
  if (d.sampler === 'iddpm') return { kind: 'iddpm', options: { steps: d.steps, cfgScale: d.cfgScale, cfgChannel: d.cfgChannel!, numerics: release === 'v1.0' ? 'v1.0' : 'v1.1' } };
  return {
    kind: 'rflow',
    options: { steps: d.steps, cfgScale: d.cfgScale, useTimestepTransform: !!d.useTimestepTransform, release: release === 'v1.3' ? 'v1.3' : 'v1.2', oscillationGuidance: !!d.oscillationGuidance, flawFix: !!d.flawFix, argDtype: d.scriptDtype === 'bf16' ? 'bf16' : 'f32' },
  };
}
