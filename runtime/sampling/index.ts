/**
 * Open-Sora's samplers (IDDPM, RFLOW) as host-side TypeScript, numerically equal to the upstream code
 * (docs/guides/sampling.md). Model calls go through a Denoiser callback; noise comes from a NoiseSource.
 */
export { SamplingError } from './errors.ts';
export type { SamplingCode } from './errors.ts';
export type { BoolTensor, F32Tensor, I64Tensor } from './tensor.ts';
export type { Denoiser, DenoiserExtras, StepCallback } from './loop.ts';
export { fileNoise, philox4x32, philoxNormals, seededNoise } from './noise.ts';
export type { NoiseSource } from './noise.ts';
export { betaSchedule, cfgCombine, iddpmSample, iddpmSchedule, iddpmStep, pMeanVariance, pSampleUpdate, spaceTimesteps } from './iddpm.ts';
export type { IddpmNumerics, IddpmSampleOptions, IddpmSchedule, IddpmScheduleOptions, NoiseSchedule } from './iddpm.ts';
export { fixGuidanceFlaw, oscillationScale, rflowSample, rflowTimesteps, timestepTransform } from './rflow.ts';
export type { RflowRelease, RflowSampleOptions, RflowScheduleOptions, TransformInputs, TransformOptions } from './rflow.ts';
export { IMG_FPS, RELEASES, RELEASE_DEFAULTS, latentShape, latentSize, modelArgs, promptWithScores, pyFixed1, roundBf16, roundF16, roundTo } from './conditioning.ts';
export type { ArgPrecision, Release, ReleaseDefaults, VideoRequest } from './conditioning.ts';
export { cfgText, ditDenoiser, imageIds, mmditDenoiser, packLatents, unpackLatents } from './denoiser.ts';
export type { DitBinding, MmditBinding, RunnableSession } from './denoiser.ts';
export { linspaceF32, rflowV2Sample, rflowV2Timesteps, shiftAlpha } from './rflow_v2.ts';
export type { RflowV2SampleOptions, ShiftOptions } from './rflow_v2.ts';
export { releaseSampler, sample } from './sample.ts';
export type { SamplerKind } from './sample.ts';
export { ASPECT_RATIO_MAP, ASPECT_RATIOS, aspectRatiosV2, imageSize, imageSizeV2, NUM_FRAMES_MAP, numFrames } from './resolutions.ts';
