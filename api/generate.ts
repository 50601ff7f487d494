/**
 * `sorac generate`: a prompt to a video with a compiled pipeline, offline, one component in memory at a time.
 *
 *   plan    everything that can be known before compute, and every problem at once: the request's sizes
 *           (resolution table, frames), the latent size (the VAE's own encode entry traced at those sizes),
 *           the transformer traced at the latent size (its asserts checked now), every component's weights
 *           resolved offline and validated against its keymap, the tokenizer found, and per stage the
 *           weight bytes and an estimate of the peak memory (compiler/memory.ts over concrete-size traces).
 *   run     stage 1: tokenizer + text encoder -> caption embeddings; released.
 *           stage 2: the transformer in the sampler loop (classifier-free guidance, the release's
 *                    conditioning), one session for every step; released.
 *           stage 3: the VAE decode (micro-batched along the axis the VAE declares); released.
 *           then the video (mp4 through ffmpeg, or PNG frames), a contact sheet PNG, optional latents.
 * Every output is written atomically; Ctrl-C (an aborted signal) stops between steps and leaves nothing.
 */
import { dirname, extname, join, resolve as resolvePath } from 'node:path';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { type CompiledModel, traceEntry } from '../compiler/compile.ts';
import { graphMemory } from '../compiler/memory.ts';
import { compilePipeline, type CompiledPipeline, type PipelineComponent, type PipelineOptions } from '../compiler/pipeline.ts';
import { fsHost } from '../compiler/host.ts';
import { prepareOutputFile, writeFileAtomic } from '../core/atomic.ts';
import { bf16ToF32 } from '../core/convert.ts';
import { hasErrors } from '../core/diagnostics.ts';
import { SoracError } from '../core/errors.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import type { IrGraph } from '../core/ir.ts';
import { planMicroBatch, runMicroBatched } from '../runtime/execution/micro-batch.ts';
import { planTiling, runTiled } from '../runtime/execution/tiling.ts';
import type { Device } from '../runtime/execution/providers.ts';
import { writeTensorsFile } from '../runtime/formats/tensors-io.ts';
import { contactSheet, videoFrames } from '../runtime/media/frames.ts';
import { encodePng } from '../runtime/media/png.ts';
import { findFfmpeg, writeFrames, writeMp4 } from '../runtime/media/video.ts';
import {
  type F32Tensor,
  fileNoise,
  imageSize,
  latentSize as releaseLatentSize,
  modelArgs,
  type NoiseSource,
  numFrames as parseNumFrames,
  imageSizeV2,
  mmditDenoiser,
  promptWithScores,
  type Release,
  rflowV2Sample,
  RELEASE_DEFAULTS,
  RELEASES,
  sample,
  seededNoise,
  ditDenoiser,
} from '../runtime/sampling/index.ts';
import { type ClipTokenizer, openClipTokenizer, openT5Tokenizer, promptV2, type T5Tokenizer, textPreprocessing } from '../runtime/text/index.ts';
import { checkWeights } from '../runtime/weights/load-report.ts';
import { resolveFolder } from '../runtime/weights/resolve.ts';
import { withAliases } from '../runtime/weights/aliases.ts';
import { describeLossy, lossyConversions } from '../runtime/weights/lossy.ts';
import { openWeights } from '../runtime/weights/store.ts';
import { load } from './run.ts';
import { checkSourceFile } from './model.ts';

/** The releases a pipeline follows: 1.0-1.3 (runtime/sampling/conditioning.ts) and 2.0 (MMDiT, rflow_v2, T5 + CLIP). */
export type PipelineRelease = Release | 'v2.0';
export const PIPELINE_RELEASES: readonly PipelineRelease[] = [...RELEASES, 'v2.0'];
/** Open-Sora 2.0's configs/diffusion/inference/256px.py: fps_save 24, seed 42. */
const V2_DEFAULTS = { fps: 24, seed: 42 } as const;

/**
 * Keys a component's released file holds beyond the model (skipped with a warning by transformers): the second text
 * encoder is CLIP's text tower, and openai/clip-vit-large-patch14's model.safetensors is the whole CLIP model.
 */
const UNEXPECTED_OK: Readonly<Record<string, readonly string[]>> = {
  text_encoder_2: ['vision_model.**', 'text_projection.weight', 'visual_projection.weight', 'logit_scale', 'text_model.embeddings.position_ids'],
};
const allowUnexpected = (c: PipelineComponent) => (UNEXPECTED_OK[c.name] ? { allowUnexpected: UNEXPECTED_OK[c.name]! } : {});

/** Prompts longer than this are refused: they are cut to the tokenizer's length anyway. */
export const MAX_PROMPT_CHARS = 20_000;
/** Bytes of a process running sorac before any model is loaded (node + onnxruntime), for estimates. */
const BASE_BYTES = 160 * 2 ** 20;
/** onnxruntime's CPU arena extends in powers of two: live activations cost up to twice their bytes. */
const ARENA_FACTOR = 2;

export interface GenerateRequest {
  readonly prompts: readonly string[];
  /** Replaces the learned null caption of classifier-free guidance with this prompt's embedding (not in the releases). */
  readonly negativePrompt?: string;
  readonly numFrames?: number | string;
  readonly resolution?: string;
  readonly aspectRatio?: string;
  readonly fps?: number;
  readonly steps?: number;
  readonly cfgScale?: number;
  readonly seed?: number;
  /** A recorded noise file (`init`, `step.<i>`), for parity with a recorded upstream run. */
  readonly noise?: string;
  /** Accept narrowing checkpoint dtypes at load (f32 weights into a `--dtype params=bf16` run); checked in the plan. */
  readonly allowLossy?: boolean;
}

export type GenerateEvent =
  | { readonly type: 'stage'; readonly stage: StageName; readonly state: 'start' | 'end'; readonly ms?: number; readonly device?: string }
  | { readonly type: 'step'; readonly done: number; readonly total: number; readonly ms: number }
  | { readonly type: 'note'; readonly message: string }
  | { readonly type: 'output'; readonly kind: 'video' | 'frames' | 'contact-sheet' | 'latents'; readonly path: string };

export type StageName = 'text' | 'denoise' | 'decode';

export interface GenerateOptions extends GenerateRequest {
  readonly device?: Device;
  /** The video path (`.mp4`); with several prompts, `name_0000.mp4`, ... beside it. */
  readonly out: string;
  /** Replace existing outputs. */
  readonly force?: boolean;
  /** Write PNG frames in a directory instead of an mp4 (also the fallback when ffmpeg is missing). */
  readonly frames?: boolean;
  /** Also write the final latents (safetensors). */
  readonly saveLatents?: string;
  readonly contactSheet?: boolean;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: GenerateEvent) => void;
  readonly cwd?: string;
}

export interface WeightsInfo {
  readonly component: string;
  readonly from: string;
  readonly path: string;
  readonly tensors: number;
  readonly bytes: number;
}

export interface StagePlan {
  readonly name: StageName;
  readonly components: readonly string[];
  readonly weightBytes: number;
  /** Estimated peak resident memory of the process during this stage (weights + activations + runtime). */
  readonly estimatedPeakBytes: number;
  readonly device: Device;
}

export interface GenerationPlan {
  readonly pipeline: { readonly name: string; readonly version: string; readonly file: string; readonly release: PipelineRelease };
  readonly prompts: readonly string[];
  readonly height: number;
  readonly width: number;
  readonly numFrames: number;
  readonly fps: number;
  /** Frame rate of the written video (the pipeline's save_fps, default fps). */
  readonly saveFps: number;
  readonly latentShape: readonly number[];
  readonly scheduler: { readonly kind: 'rflow' | 'iddpm' | 'rflow_v2'; readonly steps: number; readonly cfgScale: number; readonly options: Readonly<Record<string, unknown>> };
  readonly seed: number;
  readonly maxLength: number;
  readonly weights: readonly WeightsInfo[];
  readonly tokenizer: { readonly path: string; readonly kind: string; readonly vocabSize: number };
  /** The second (pooled) text encoder's tokenizer (Open-Sora 2.0: CLIP at 77 tokens). */
  readonly tokenizer2?: { readonly path: string; readonly kind: string; readonly vocabSize: number; readonly maxLength: number };
  readonly stages: readonly StagePlan[];
  /** Where the VAE decode is cut (axis and chunk size), when it declares micro-batching. */
  readonly vaeMicroBatch?: { readonly axis: string; readonly size: number };
  readonly notes: readonly string[];
}

/** Compile a pipeline file (the source checked like a model's). Diagnostics are on the result. */
export function loadPipeline(opts: Omit<PipelineOptions, 'host'> & { readonly host?: PipelineOptions['host'] }): CompiledPipeline {
  if (opts.rootText === undefined) checkSourceFile(opts.file);
  return compilePipeline({ ...opts, host: opts.host ?? fsHost });
}

function pipelineError(p: CompiledPipeline): SoracError {
  const errs = p.diagnostics.filter((d) => d.severity === 'error');
  return new SoracError('SORA7010', `pipeline does not compile (${errs.length} error${errs.length === 1 ? '' : 's'}): ${errs.map((d) => `${d.code} ${d.message}`).join('; ')}`, { data: { diagnostics: errs } });
}

const comp = (p: CompiledPipeline, r: 'tokenizer' | 'text_encoder' | 'tokenizer_2' | 'text_encoder_2' | 'transformer' | 'vae' | 'scheduler'): PipelineComponent => p.components[r]!;

/** The symbol bindings that make a traced entry's input shapes equal `shapes` (by input name). */
function bindFor(model: CompiledModel, entry: string, shapes: Readonly<Record<string, readonly number[]>>, absent: ReadonlySet<string> = new Set()): Record<string, number> {
  const g = traceEntry(model, entry, { absent }).graph;
  const bind: Record<string, number> = {};
  if (!g) return bind;
  for (const v of g.inputs) {
    const s = shapes[v.name];
    if (!s) continue;
    v.shape.forEach((d, i) => {
      if (typeof d === 'string' && /^[A-Za-z_]\w*$/.test(d) && s[i] !== undefined) bind[d] = s[i]!;
    });
  }
  return bind;
}

function concreteTrace(c: PipelineComponent, entry: string, shapes: Readonly<Record<string, readonly number[]>>, what: string, absent: ReadonlySet<string> = new Set()): IrGraph {
  const r = traceEntry(c.model!, entry, { absent, bind: bindFor(c.model!, entry, shapes, absent) });
  if (!r.graph) {
    const errs = r.diagnostics.filter((d) => d.severity === 'error');
    throw new SoracError('SORA8303', `${c.name} ${c.model!.modelName}.${entry} cannot take ${what}: ${errs.map((d) => `${d.code} ${d.message}`).join('; ')}`, {
      ...(errs[0]?.span ? { span: errs[0].span } : {}),
      data: { diagnostics: errs },
      hint: 'pick another size or frame count (the message says which constraint fails)',
    });
  }
  return r.graph;
}

function optionalInputs(m: CompiledModel, entry: string): string[] {
  return m.entries.find((e) => e.name === entry)!.inputs.filter((i) => i.optional).map((i) => i.name);
}

/** The DiT's optional inputs text-to-video leaves out: all but the text mask and (when the release passes one)
 * x_mask, e.g. Open-Sora 1.3's i2v/v2v conditioning (cond, cond_mask, mask_index, y_null). */
function ditAbsent(m: CompiledModel, useXMask: boolean): string[] {
  return optionalInputs(m, 'forward').filter((n) => n !== 'mask' && !(n === 'x_mask' && useXMask));
}

/** The VAE's latent [C, t, h, w] for a video [1, 3, T, H, W], from its encode entry (or the release's formula). */
function vaeLatent(vae: PipelineComponent, release: PipelineRelease, T: number, H: number, W: number): number[] {
  const enc = vae.entries?.encode;
  if (!enc) {
    if (release === 'v2.0') throw new SoracError('SORA8303', `the VAE ${vae.model!.modelName} has no encode entry to size the latent from`, { hint: 'give the VAE an `encode` entry (examples/hunyuan_vae.sora has one)' });
    const [t, h, w] = releaseLatentSize(release, { height: H, width: W, numFrames: T });
    return [RELEASE_DEFAULTS[release].latentChannels, t, h, w];
  }
  const x = vae.model!.entries.find((e) => e.name === enc)!.inputs[0]!.name;
  const g = concreteTrace(vae, enc, { [x]: [1, 3, T, H, W] }, `${T} frames of ${H}x${W}`);
  const s = g.outputs[0]!.shape;
  if (s.some((d) => typeof d !== 'number')) throw new SoracError('SORA8303', `the VAE's latent size for ${T} frames of ${H}x${W} is not static ([${s.join(', ')}])`);
  return (s as number[]).slice(1);
}

/** Frames the VAE decodes from a latent of `t` frames, when its decode entry determines that (no num_frames input). */
function vaeDecodedFrames(vae: PipelineComponent, latent: readonly number[]): number | undefined {
  const dec = vae.entries!.decode!;
  const info = vae.model!.entries.find((e) => e.name === dec)!;
  if (info.inputs.some((i) => i.name === 'num_frames')) return undefined;
  const z = info.inputs[0]!.name;
  const g = concreteTrace(vae, dec, { [z]: [1, ...latent] }, `a latent of ${latent.join('x')}`);
  const t = g.outputs[0]!.shape[2];
  return typeof t === 'number' ? t : undefined;
}

async function tokenizerDir(p: CompiledPipeline, role: 'tokenizer' | 'tokenizer_2'): Promise<string> {
  const t = comp(p, role);
  const r = await resolveFolder(t.from!, { cwd: p.dir }).catch(async (e) => {
    const f = resolvePath(p.dir, t.from!);
    if (existsSync(f) && statSync(f).isFile()) return { dir: f };
    throw e;
  });
  return r.dir;
}

/** The second tokenizer (clip_tokenizer: vocab.json + merges.txt). */
async function resolveTokenizer2(p: CompiledPipeline): Promise<ClipTokenizer> {
  return openClipTokenizer(await tokenizerDir(p, 'tokenizer_2'));
}

async function resolveTokenizer(p: CompiledPipeline): Promise<T5Tokenizer> {
  const t = comp(p, 'tokenizer');
  const r = await resolveFolder(t.from!, { cwd: p.dir }).catch(async (e) => {
    // a tokenizer file named directly
    const f = resolvePath(p.dir, t.from!);
    if (existsSync(f) && statSync(f).isFile()) return { dir: f };
    throw e;
  });
  return openT5Tokenizer(r.dir);
}

/** Everything that can be known before compute; throws one error listing every problem found. */
export async function planGeneration(p: CompiledPipeline, req: GenerateRequest & { readonly device?: Device }): Promise<GenerationPlan> {
  if (hasErrors(p.diagnostics)) throw pipelineError(p);
  const problems: SoracError[] = [];
  const notes: string[] = [];
  const cfg = p.config as Record<string, unknown>;
  const release = (cfg.release ?? 'v1.2') as PipelineRelease;
  if (!(PIPELINE_RELEASES as readonly string[]).includes(release)) throw new SoracError('SORA8005', `pipeline ${p.name}: release "${String(cfg.release)}" is not one of ${PIPELINE_RELEASES.join(', ')}`);
  const v2 = release === 'v2.0';
  const defaults = v2 ? V2_DEFAULTS : RELEASE_DEFAULTS[release];
  if (v2 !== (comp(p, 'scheduler').kind === 'rflow_v2'))
    throw new SoracError('SORA8003', v2 ? `pipeline ${p.name}: release "v2.0" samples with rflow_v2, not ${comp(p, 'scheduler').kind}` : `pipeline ${p.name}: rflow_v2 is Open-Sora 2.0's sampler; the pipeline says release "${release}"`, { hint: v2 ? 'scheduler = rflow_v2(...)' : 'set release: str = "v2.0" in the pipeline config' });
  if (v2 && cfg.cond_type !== undefined && cfg.cond_type !== null && cfg.cond_type !== 't2v')
    throw new SoracError('SORA8007', `pipeline ${p.name}: cond_type "${String(cfg.cond_type)}" is not supported yet: sorac generates Open-Sora 2.0 text-to-video only (no i2v/v2v references, no t2i2v image stage)`, { hint: 'set cond_type: str = "t2v" (or remove it)' });
  // prompts
  if (!req.prompts.length) throw new SoracError('SORA8301', 'no prompt given', { hint: 'pass --prompt "..." or --prompts FILE (one prompt per line)' });
  req.prompts.forEach((pr, i) => {
    const where = req.prompts.length > 1 ? ` (prompt ${i + 1})` : '';
    if (!pr.trim()) problems.push(new SoracError('SORA8301', `empty prompt${where}`, { hint: 'describe the video to generate' }));
    else if (pr.length > MAX_PROMPT_CHARS) problems.push(new SoracError('SORA8301', `prompt${where} is ${pr.length.toLocaleString('en-US')} characters; the limit is ${MAX_PROMPT_CHARS.toLocaleString('en-US')}`, { hint: `only the first ${comp(p, 'tokenizer').options.max_length} tokens reach the model anyway: shorten it` }));
  });
  if (req.negativePrompt !== undefined && req.negativePrompt.length > MAX_PROMPT_CHARS) problems.push(new SoracError('SORA8301', `the negative prompt is over ${MAX_PROMPT_CHARS} characters`));
  // sizes
  let height = Number(cfg.height ?? 0);
  let width = Number(cfg.width ?? 0);
  const resolution = req.resolution ?? (cfg.resolution as string | undefined);
  if (resolution !== undefined || req.aspectRatio !== undefined || !height || !width) {
    try {
      [height, width] = v2 ? imageSizeV2(resolution ?? '256px', req.aspectRatio ?? (cfg.aspect_ratio as string | undefined) ?? '16:9') : imageSize(resolution ?? '240p', req.aspectRatio ?? (cfg.aspect_ratio as string | undefined) ?? '9:16');
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      throw e;
    }
  }
  const numFrames = parseNumFrames(req.numFrames ?? (cfg.num_frames as number | undefined) ?? 1);
  const fps = req.fps ?? (cfg.fps as number | undefined) ?? defaults.fps;
  const sched = comp(p, 'scheduler');
  const kind = sched.kind as 'rflow' | 'iddpm' | 'rflow_v2';
  const steps = req.steps ?? (sched.options.num_sampling_steps as number);
  const cfgScale = req.cfgScale ?? (sched.options.cfg_scale as number);
  for (const k of ['use_oscillation_guidance', 'use_flaw_fix'])
    if (kind === 'rflow' && sched.options[k] === true && release !== 'v1.3') problems.push(new SoracError('SORA8005', `rflow(${k}=true) is Open-Sora 1.3's RFLOW; this pipeline follows release "${release}"`, { hint: `set release: str = "v1.3" in the pipeline config, or remove ${k}` }));
  if (!Number.isSafeInteger(steps) || steps < 1) problems.push(new SoracError('SORA8201', `--steps ${steps}: expected a positive integer`));
  if (!Number.isFinite(cfgScale)) problems.push(new SoracError('SORA8202', `--cfg-scale ${cfgScale} is not a finite number`));
  const seed = req.seed ?? (cfg.seed as number | undefined) ?? defaults.seed;
  const maxLength = comp(p, 'tokenizer').options.max_length as number;
  const B = req.prompts.length;

  // latent size from the VAE, and the frame count it gives back
  const vae = comp(p, 'vae');
  const tr = comp(p, 'transformer');
  const te = comp(p, 'text_encoder');
  let latent: number[] = [];
  try {
    latent = vaeLatent(vae, release, numFrames, height, width);
    const back = vaeDecodedFrames(vae, latent);
    if (back !== undefined && back !== numFrames) {
      const near: number[] = [];
      for (let d = 1; d <= 32 && near.length < 2; d++)
        for (const f of [numFrames - d, numFrames + d]) {
          if (f < 1 || near.length >= 2) continue;
          try {
            if (vaeDecodedFrames(vae, vaeLatent(vae, release, f, height, width)) === f) near.push(f);
          } catch {
            // not a valid count either
          }
        }
      problems.push(new SoracError('SORA8303', `the VAE cannot give ${numFrames} frames: ${numFrames} frames encode to ${latent[1]} latent frames, which decode to ${back}`, { hint: near.length ? `use ${near.sort((a, b) => a - b).join(' or ')} frames` : 'use a frame count the VAE takes' }));
    }
  } catch (e) {
    if (!(e instanceof SoracError)) throw e;
    problems.push(e);
  }
  const latentShape = [B, ...latent];
  if (v2 && latent.length === 4) {
    // HunyuanVideo's VAE: the released 2.0 configs set use_spatial_tiling=True, and PyTorch then decodes latents above
    // the tile size in blended tiles; the VAE reproduces that only when its config says so (tile() in the decode entry)
    const vc = vae.model!.config ?? {};
    const boc = vc.block_out_channels;
    const tile = typeof vc.sample_size === 'number' && Array.isArray(boc) ? Math.trunc(vc.sample_size / 2 ** (boc.length - 1)) : undefined;
    if (tile !== undefined && (latent[2]! > tile || latent[3]! > tile) && vc.use_spatial_tiling === false)
      notes.push(`note: the latent ${latent[2]}x${latent[3]} is above the VAE's tile size ${tile} and the VAE's use_spatial_tiling is false: it is decoded whole (Open-Sora 2.0's released config tiles it: set use_spatial_tiling=true to match)`);
  }

  // the transformer at the latent size (patch divisibility, its own asserts)
  const stagesMem: Partial<Record<StageName, { weights: number; consts: number; act: number }>> = {};
  const te2 = p.components.text_encoder_2;
  const maxLength2 = p.components.tokenizer_2?.options.max_length as number | undefined;
  if (latent.length === 4 && v2) {
    try {
      const pz = Number(tr.model!.config?.patch_size ?? 2);
      const [C, t, h, w] = latent as [number, number, number, number];
      if (h % pz || w % pz) throw new SoracError('SORA8303', `the latent ${h}x${w} (${height}x${width}) is not divisible by the transformer's patch size ${pz}`, { hint: `ask for a height and width that give a latent divisible by ${pz}` });
      const Li = t * (h / pz) * (w / pz);
      const g = concreteTrace(tr, 'forward', { img: [2 * B, Li, C * pz * pz], img_ids: [2 * B, Li, 3], txt: [2 * B, maxLength], txt_ids: [2 * B, maxLength], timesteps: [2 * B], y_vec: [2 * B], cond: [2 * B, Li], guidance: [2 * B] }, `a latent of ${latent.join('x')} (${numFrames} frames of ${height}x${width}) for ${B} prompt(s)`);
      const mem = graphMemory(g);
      stagesMem.denoise = { weights: mem.weightBytes, consts: mem.constantBytes, act: mem.peakActivationBytes };
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      problems.push(e);
    }
  } else if (latent.length === 4) {
    try {
      const absent = new Set(ditAbsent(tr.model!, (defaults as { onesLatentMask?: boolean }).onesLatentMask === true));
      const g = concreteTrace(tr, 'forward', { x: [2 * B, ...latent], timestep: [2 * B], y: [2 * B, 1, maxLength, -1].filter((d) => d !== -1), mask: [B, maxLength], x_mask: [2 * B, latent[1]!], fps: [B], height: [B], width: [B], num_frames: [B], ar: [B] }, `a latent of ${latent.join('x')} (${numFrames} frames of ${height}x${width}) for ${B} prompt(s)`, absent);
      const mem = graphMemory(g);
      stagesMem.denoise = { weights: mem.weightBytes, consts: mem.constantBytes, act: mem.peakActivationBytes };
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      problems.push(e);
    }
  }
  // the text encoder at (prompts [+ negative], max_length)
  try {
    const n = B + (req.negativePrompt !== undefined ? 1 : 0);
    // Open-Sora 2.0 runs T5 and CLIP without a mask (HFEmbedder: attention_mask=None); the negative prompt "" is always encoded
    const nn = v2 ? B + 1 : n;
    const g = concreteTrace(te, 'forward', { input_ids: [nn, maxLength], attention_mask: [nn, maxLength] }, `${nn} prompt(s) of ${maxLength} tokens`, v2 ? new Set(['attention_mask']) : new Set());
    const mem = graphMemory(g);
    stagesMem.text = { weights: mem.weightBytes, consts: mem.constantBytes, act: mem.peakActivationBytes };
    if (te2 && maxLength2 !== undefined) {
      const g2 = concreteTrace(te2, 'forward', { input_ids: [nn, maxLength2], attention_mask: [nn, maxLength2] }, `${nn} prompt(s) of ${maxLength2} tokens`, new Set(['attention_mask']));
      const m2 = graphMemory(g2);
      // the two encoders run one after the other: the stage's peak is the larger one
      if (m2.weightBytes + m2.constantBytes + ARENA_FACTOR * m2.peakActivationBytes > mem.weightBytes + mem.constantBytes + ARENA_FACTOR * mem.peakActivationBytes) stagesMem.text = { weights: m2.weightBytes, consts: m2.constantBytes, act: m2.peakActivationBytes };
    }
  } catch (e) {
    if (!(e instanceof SoracError)) throw e;
    problems.push(e);
  }
  // the VAE decode, one chunk as it will run
  let vaeMicroBatch: { axis: string; size: number } | undefined;
  if (latent.length === 4) {
    try {
      const dec = vae.entries!.decode!;
      const info = vae.model!.entries.find((e) => e.name === dec)!;
      const sym = traceEntry(vae.model!, dec).graph!;
      const decls = JSON.parse(sym.metadata['sorac.micro_batch'] ?? '[]') as { axis: string; step: number }[];
      const along = decls.filter((d) => d.axis !== decls[0]?.axis || decls.length === 1).pop();
      const want = Number(cfg.vae_micro_batch ?? 4);
      let chunkLatent = [1, ...latent];
      if (along && Number.isFinite(want) && want > 0) {
        const size = Math.max(along.step, Math.floor(want / along.step) * along.step);
        vaeMicroBatch = { axis: along.axis, size };
        const axisIdx = sym.inputs[0]!.shape.indexOf(along.axis);
        if (axisIdx >= 0) chunkLatent = chunkLatent.map((d, i) => (i === axisIdx ? Math.min(d, size) : d));
      }
      const g = concreteTrace(vae, dec, { [info.inputs[0]!.name]: chunkLatent }, `a latent chunk of ${chunkLatent.join('x')}`);
      const mem = graphMemory(g);
      stagesMem.decode = { weights: mem.weightBytes, consts: mem.constantBytes, act: mem.peakActivationBytes };
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      problems.push(e);
    }
  }

  // every component's weights, offline, against its keymap (all problems at once)
  const weights: WeightsInfo[] = [];
  for (const c of [te, ...(te2 ? [te2] : []), tr, vae]) {
    try {
      const r = await checkWeights(c.model!.keymap!, c.from!, { cwd: p.dir, weights: c.from!, ...allowUnexpected(c) });
      if (r.error) throw r.error;
      if (!r.ok) throw new SoracError('SORA5010', `${c.name}: ${c.from} does not fit ${c.model!.modelName} v${c.model!.version}\n${r.text}`, { hint: `fix the checkpoint or the ${c.name}(...) config in the pipeline; \`sorac check MODEL --weights ${c.from}\` shows the full report` });
      const store = await openWeights(c.from!, { cwd: p.dir });
      try {
        let bytes = 0;
        for (const t of store.tensors.values()) bytes += t.byteLength;
        weights.push({ component: c.name, from: c.from!, path: store.resolved?.path ?? c.from!, tensors: store.tensors.size, bytes });
        // narrowing at load (f32 checkpoint, bf16 params) is refused now, not after the earlier stages ran
        const entry = c === vae ? vae.entries!.decode! : 'forward';
        const g = traceEntry(c.model!, entry).graph;
        const lossy = g ? lossyConversions(g, withAliases(c.model!.keymap!, store)) : [];
        if (lossy.length && !req.allowLossy)
          problems.push(new SoracError('SORA5510', `${c.name}: loading ${c.from} would narrow ${lossy.length} tensor${lossy.length > 1 ? 's' : ''} to the model's dtypes\n${describeLossy(lossy)}`, { hint: 'pass --allow-lossy (allowLossy: true) to accept the rounding, or a --dtype params=... that matches the checkpoint' }));
      } finally {
        await store.close();
      }
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      problems.push(e.code === 'SORA5010' ? e : new SoracError(e.code, `${c.name}: ${e.message}`, { ...(e.hint ? { hint: e.hint } : {}), looked: e.looked }));
    }
  }
  let tokenizer2: ClipTokenizer | undefined;
  if (te2) {
    try {
      tokenizer2 = await resolveTokenizer2(p);
      const rows = te2.model!.keymap!.tensors['text_model.embeddings.token_embedding.weight']?.shape[0] ?? te2.model!.config?.vocab_size;
      if (typeof rows === 'number' && tokenizer2.info.vocabSize > rows)
        problems.push(new SoracError('SORA8305', `tokenizer_2 can produce ids up to ${tokenizer2.info.vocabSize - 1} but text_encoder_2's embedding has ${rows} rows`, { hint: 'use the tokenizer of this text encoder (its vocab_size must cover the tokenizer)' }));
    } catch (e) {
      if (!(e instanceof SoracError)) throw e;
      problems.push(new SoracError(e.code, `tokenizer_2: ${e.message}`, { ...(e.hint ? { hint: e.hint } : {}), looked: e.looked }));
    }
  }
  let tokenizer: T5Tokenizer | undefined;
  try {
    tokenizer = await resolveTokenizer(p);
    const rows = te.model!.keymap!.tensors['shared.weight']?.shape[0] ?? te.model!.config?.vocab_size;
    if (typeof rows === 'number' && tokenizer.info.vocabSize > rows)
      problems.push(new SoracError('SORA8305', `the tokenizer can produce ids up to ${tokenizer.info.vocabSize - 1} but the text encoder's embedding has ${rows} rows`, { hint: 'use the tokenizer of this text encoder (its vocab_size must cover the tokenizer)' }));
  } catch (e) {
    if (!(e instanceof SoracError)) throw e;
    problems.push(new SoracError(e.code, `tokenizer: ${e.message}`, { ...(e.hint ? { hint: e.hint } : {}), looked: e.looked }));
  }

  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1)
    throw new SoracError(problems[0]!.code, `${problems.length} problems, nothing was run:\n${problems.map((e, i) => `  ${i + 1}. ${e.code}: ${e.message.split('\n').join('\n     ')}${e.hint ? `\n     hint: ${e.hint.split('\n').join('\n           ')}` : ''}`).join('\n')}`, {
      looked: problems.flatMap((e) => e.looked),
      data: { problems: problems.map((e) => e.toJSON()) },
    });

  const device = req.device ?? 'auto';
  const stage = (name: StageName, components: string[]): StagePlan => {
    const m = stagesMem[name] ?? { weights: 0, consts: 0, act: 0 };
    // onnxruntime holds the weights (mmapped where zero-copy) and the constants. The activations are the peak of
    // the live values in node order; onnxruntime's CPU arena grows in powers of two, so its footprint for them is
    // up to twice that. Calibrated by bench/generate.ts (docs/cli/generate.md has the numbers).
    return { name, components, weightBytes: m.weights, estimatedPeakBytes: Math.round(BASE_BYTES + m.weights + m.consts + ARENA_FACTOR * m.act), device };
  };
  return {
    pipeline: { name: p.name!, version: p.version!, file: p.program.root.display, release },
    prompts: req.prompts,
    height,
    width,
    numFrames,
    fps,
    saveFps: Number(cfg.save_fps ?? fps),
    latentShape,
    scheduler: { kind, steps, cfgScale, options: sched.options },
    seed,
    maxLength,
    weights,
    tokenizer: { path: tokenizer!.info.path, kind: tokenizer!.info.kind, vocabSize: tokenizer!.info.vocabSize },
    ...(tokenizer2 ? { tokenizer2: { path: tokenizer2.info.path, kind: tokenizer2.info.kind, vocabSize: tokenizer2.info.vocabSize, maxLength: maxLength2! } } : {}),
    stages: [stage('text', ['tokenizer', 'text_encoder', ...(te2 ? ['tokenizer_2', 'text_encoder_2'] : [])]), stage('denoise', ['transformer', 'scheduler']), stage('decode', ['vae'])],
    ...(vaeMicroBatch ? { vaeMicroBatch } : {}),
    notes,
  };
}

export interface GenerationResult {
  readonly plan: GenerationPlan;
  /** Files written (videos or frame directories, contact sheets, latents). */
  readonly outputs: readonly { readonly kind: string; readonly path: string }[];
  readonly stages: readonly { readonly name: StageName; readonly ms: number; readonly device: string }[];
  /** The decoded videos [B, 3, T, H, W] in [-1, 1]. */
  readonly video: F32Tensor;
  readonly latents: F32Tensor;
}

function outputPaths(out: string, n: number, frames: boolean): string[] {
  const ext = extname(out);
  const stem = ext ? out.slice(0, -ext.length) : out;
  const names = n === 1 ? [stem] : Array.from({ length: n }, (_, i) => `${stem}_${String(i).padStart(4, '0')}`);
  return names.map((s) => (frames ? `${s}_frames` : `${s}${ext || '.mp4'}`));
}

/**
 * Stage 1: prompts (scores appended as the release does, cleaned if the tokenizer says so) to caption embeddings [N, L, C]
 * and masks [N, L]. Open-Sora 2.0 (`noMask`): T5 runs without an attention mask, as HFEmbedder does (attention_mask=None);
 * with a second text encoder (CLIP) its pooled embeddings [N, D] come back as `vec`.
 */
export async function encodeText(
  p: CompiledPipeline,
  texts: readonly string[],
  opts: { readonly maxLength: number; readonly maxLength2?: number; readonly noMask?: boolean; readonly device?: Device; readonly allowLossy?: boolean; readonly note?: (m: string) => void },
): Promise<{ y: F32Tensor; mask: { dtype: 'i64'; shape: number[]; data: BigInt64Array }; vec?: F32Tensor; device: string; truncated: boolean[] }> {
  const te = comp(p, 'text_encoder');
  const tokenizer = await resolveTokenizer(p);
  const enc = tokenizer.encode(texts, { maxLength: opts.maxLength, ...(comp(p, 'tokenizer').options.clean ? { preprocess: textPreprocessing } : {}) });
  const run = async (c: PipelineComponent, ids: HostTensor, mask: HostTensor | undefined, output: (outs: readonly string[]) => string) => {
    const loaded = await load(c.model!, c.from!, { cwd: p.dir, device: opts.device ?? 'auto', ...allowUnexpected(c), ...(opts.allowLossy ? { allowLossy: true } : {}), ...(opts.note ? { onInfo: opts.note } : {}) });
    try {
      const s = await loaded.session('forward', mask ? [] : ['attention_mask']);
      const r = await s.run(mask ? { input_ids: ids, attention_mask: mask } : { input_ids: ids });
      return { t: r.get(output(c.model!.entries.find((e) => e.name === 'forward')!.outputs))! as F32Tensor, device: s.device };
    } finally {
      await loaded.close();
    }
  };
  const first = await run(te, enc.inputIds as HostTensor, opts.noMask ? undefined : (enc.attentionMask as HostTensor), (o) => o[0]!);
  let vec: F32Tensor | undefined;
  const truncated = [...enc.truncated];
  const te2 = p.components.text_encoder_2;
  if (te2) {
    const tok2 = await resolveTokenizer2(p);
    const maxLength2 = opts.maxLength2 ?? (comp(p, 'tokenizer_2').options.max_length as number);
    const enc2 = tok2.encode(texts, { maxLength: maxLength2 });
    enc2.truncated.forEach((t, i) => (truncated[i] = truncated[i] || t));
    vec = (await run(te2, enc2.inputIds as HostTensor, undefined, (o) => (o.includes('pooler_output') ? 'pooler_output' : o[o.length - 1]!))).t;
  }
  return { y: first.t, mask: { dtype: 'i64', shape: [...enc.attentionMask.shape], data: enc.attentionMask.data }, ...(vec ? { vec } : {}), device: first.device, truncated };
}

export interface DenoiseArgs {
  readonly release: PipelineRelease;
  readonly latentShape: readonly number[];
  readonly height: number;
  readonly width: number;
  readonly numFrames: number;
  readonly fps: number;
  readonly steps: number;
  readonly cfgScale: number;
  /** caption embeddings of the B prompts [B, 1, L, C] and their masks [B, L] */
  readonly y: F32Tensor;
  readonly mask: { readonly dtype: 'i64'; readonly shape: readonly number[]; readonly data: BigInt64Array };
  /** the unconditional caption [1, 1, L, C] (a negative prompt); default: the transformer's learned null caption.
   * Open-Sora 2.0: y is [B, L, C] and yNull [1, L, C] is required (the encoded negative prompt, "" by default) */
  readonly yNull?: F32Tensor;
  /** Open-Sora 2.0: the pooled (CLIP) embeddings of the prompts [B, D] and of the negative prompt [1, D] */
  readonly vec?: F32Tensor;
  readonly vecNull?: F32Tensor;
  readonly noise: NoiseSource;
  /**
   * How the size conditioning is rounded: 'script' (default) as the release's inference script passes it
   * (bf16 tensors for 1.1-1.3, e.g. ar 0.6667 -> 0.66796875), 'f32' unrounded (a float32 run of the script).
   */
  readonly argPrecision?: 'script' | 'f32';
  readonly device?: Device;
  readonly allowLossy?: boolean;
  readonly signal?: AbortSignal;
  readonly onStep?: (done: number, total: number) => void;
  readonly note?: (m: string) => void;
}

/** Stage 2: the sampler loop over the transformer, with the release's conditioning. Returns the latents and the device used. */
export async function denoise(p: CompiledPipeline, a: DenoiseArgs): Promise<{ latents: F32Tensor; device: string }> {
  const tr = comp(p, 'transformer');
  const sched = comp(p, 'scheduler');
  const B = a.latentShape[0]!;
  if (a.release === 'v2.0') return denoiseV2(p, a);
  const defaults = RELEASE_DEFAULTS[a.release];
  const loaded = await load(tr.model!, tr.from!, { cwd: p.dir, device: a.device ?? 'auto', ...(a.allowLossy ? { allowLossy: true } : {}), ...(a.note ? { onInfo: a.note } : {}) });
  try {
    let yNull = a.yNull;
    if (!yNull) {
      const t = loaded.store.tensors.get('y_embedder.y_embedding');
      if (!t) throw new SoracError('SORA8003', `${tr.model!.modelName} has no y_embedder.y_embedding (the null caption for classifier-free guidance)`, { hint: 'pass --negative-prompt "" to guide against an empty prompt instead' });
      if (t.dtype !== 'f32' && t.dtype !== 'bf16') throw new SoracError('SORA5009', `y_embedder.y_embedding is ${t.dtype}; the null caption must be f32 or bf16`);
      const bytes = (await t.read()).slice();
      yNull = { dtype: 'f32', shape: [...t.shape], data: t.dtype === 'f32' ? new Float32Array(bytes.buffer) : bf16ToF32(new Uint16Array(bytes.buffer)) };
    }
    const hasXMask = optionalInputs(tr.model!, 'forward').includes('x_mask');
    const useMask = defaults.onesLatentMask && hasXMask;
    const session = await loaded.session('forward', ditAbsent(tr.model!, useMask));
    const names = session.inputs.map((i) => i.name);
    const args = modelArgs(a.release, { height: a.height, width: a.width, numFrames: a.numFrames, fps: a.fps, batch: B }, { precision: a.argPrecision ?? 'script' });
    const denoiser = ditDenoiser(session as never, { y: a.y, yNull, mask: a.mask as never, modelArgs: args, inputNames: names });
    const common = { latentShape: a.latentShape, steps: a.steps, cfgScale: a.cfgScale, noise: a.noise, denoiser, ...(a.onStep ? { onStep: a.onStep } : {}), ...(a.signal ? { signal: a.signal } : {}) };
    let latents: F32Tensor;
    if (sched.kind === 'rflow') {
      const T = a.latentShape[2]!;
      latents = await sample('rflow', {
        ...common,
        useTimestepTransform: sched.options.use_timestep_transform as boolean,
        useDiscreteTimesteps: sched.options.use_discrete_timesteps as boolean,
        numTimesteps: sched.options.num_timesteps as number,
        release: a.release === 'v1.3' ? 'v1.3' : 'v1.2',
        oscillationGuidance: sched.options.use_oscillation_guidance === true,
        flawFix: sched.options.use_flaw_fix === true,
        argDtype: (a.argPrecision ?? 'script') === 'script' && defaults.scriptDtype === 'bf16' ? 'bf16' : 'f32',
        transformInputs: { height: [...args.height!.data], width: [...args.width!.data], numFrames: [...args.num_frames!.data] },
        ...(useMask ? { latentMask: { dtype: 'f32' as const, shape: [B, T], data: new Float32Array(B * T).fill(1) } } : {}),
      });
    } else {
      latents = await sample('iddpm', { ...common, cfgChannel: sched.options.cfg_channel as number, numerics: a.release === 'v1.0' ? 'v1.0' : 'v1.1' });
    }
    return { latents, device: session.device };
  } finally {
    await loaded.close();
  }
}

/** Stage 2 of Open-Sora 2.0: rflow_v2 over the MMDiT (packed tokens, T5 + CLIP texts, t2v condition 0). */
async function denoiseV2(p: CompiledPipeline, a: DenoiseArgs): Promise<{ latents: F32Tensor; device: string }> {
  const tr = comp(p, 'transformer');
  const o = comp(p, 'scheduler').options;
  if (!a.yNull || !a.vec || !a.vecNull)
    throw new SoracError('SORA8209', 'Open-Sora 2.0 sampling needs the negative prompt\'s embeddings (yNull, vecNull) and the prompts\' pooled embeddings (vec)', { hint: 'encode the prompts and the negative prompt ("" by default) with both text encoders (encodeText)' });
  const patchSize = Number(tr.model!.config?.patch_size ?? 2);
  const loaded = await load(tr.model!, tr.from!, { cwd: p.dir, device: a.device ?? 'auto', ...(a.allowLossy ? { allowLossy: true } : {}), ...(a.note ? { onInfo: a.note } : {}) });
  try {
    const info = tr.model!.entries.find((e) => e.name === 'forward')!;
    const takes = (n: string) => !!tr.model!.config?.[n === 'cond' ? 'cond_embed' : 'guidance_embed'];
    const absent = info.inputs.filter((i) => i.optional && !takes(i.name)).map((i) => i.name);
    const session = await loaded.session('forward', absent);
    const denoiser = mmditDenoiser(session as never, { txt: a.y, txtNull: a.yNull, vec: a.vec, vecNull: a.vecNull, patchSize, guidance: a.cfgScale, inputNames: session.inputs.map((i) => i.name) });
    const latents = await rflowV2Sample({
      latentShape: a.latentShape,
      steps: a.steps,
      cfgScale: a.cfgScale,
      textOsci: o.text_osci as boolean,
      guidanceImg: o.guidance_img as number,
      imageOsci: o.image_osci as boolean,
      shift: o.shift as boolean,
      flowShift: o.flow_shift as number | null,
      baseShift: o.base_shift as number,
      maxShift: o.max_shift as number,
      patchSize,
      noise: a.noise,
      denoiser,
      ...(a.onStep ? { onStep: a.onStep } : {}),
      ...(a.signal ? { signal: a.signal } : {}),
    });
    return { latents, device: session.device };
  } finally {
    await loaded.close();
  }
}

/** Stage 3: the VAE decode of the latents (micro-batched along `microBatch` when given). Returns [B, 3, T, H, W]. */
export async function decode(p: CompiledPipeline, latents: F32Tensor, a: { readonly numFrames: number; readonly microBatch?: { readonly axis: string; readonly size: number }; readonly device?: Device; readonly allowLossy?: boolean; readonly note?: (m: string) => void }): Promise<{ video: F32Tensor; device: string }> {
  const vae = comp(p, 'vae');
  const dec = vae.entries!.decode!;
  const info = vae.model!.entries.find((e) => e.name === dec)!;
  const loaded = await load(vae.model!, vae.from!, { cwd: p.dir, device: a.device ?? 'auto', ...(a.allowLossy ? { allowLossy: true } : {}), ...(a.note ? { onInfo: a.note } : {}) });
  try {
    const feed = new Map<string, HostTensor>([[info.inputs[0]!.name, latents as HostTensor]]);
    if (info.inputs.some((i) => i.name === 'num_frames')) feed.set('num_frames', { dtype: 'i64', shape: [], data: new BigInt64Array([BigInt(a.numFrames)]) });
    const s = await loaded.session(dec, []);
    let out: Map<string, HostTensor>;
    if (a.microBatch) {
      const mbPlan = planMicroBatch(traceEntry(vae.model!, dec).graph!, { axis: a.microBatch.axis });
      out = (await runMicroBatched(s, mbPlan, feed, { size: a.microBatch.size })).outputs!;
    } else {
      // a VAE that declares tile() (Open-Sora 2.0's Hunyuan VAE with use_spatial_tiling) decodes tile by tile
      const tiling = planTiling(traceEntry(vae.model!, dec).graph!);
      out = tiling ? (await runTiled((x) => s.run(x), tiling, feed)).outputs : await s.run(feed);
    }
    return { video: out.get(info.outputs[0]!)! as F32Tensor, device: s.device };
  } finally {
    await loaded.close();
  }
}

/** Run a plan: the three stages one after the other (each releases its session), then the outputs. */
export async function generate(p: CompiledPipeline, opts: GenerateOptions): Promise<GenerationResult> {
  const emit = opts.onEvent ?? (() => {});
  const plan = await planGeneration(p, opts);
  const release = plan.pipeline.release;
  const B = plan.prompts.length;
  const device = opts.device ?? 'auto';
  const note = (message: string) => emit({ type: 'note', message });
  const abortCheck = () => {
    if (opts.signal?.aborted) throw new SoracError('SORA7009', 'interrupted: nothing was written');
  };
  // outputs: refuse to overwrite before any compute
  const ffmpeg = opts.frames ? undefined : findFfmpeg();
  const asFrames = opts.frames || !ffmpeg;
  if (!opts.frames && !ffmpeg) note('note: ffmpeg is not on PATH (or $SORAC_FFMPEG): writing PNG frames instead of an mp4');
  const out = resolvePath(opts.cwd ?? process.cwd(), opts.out);
  const videos = outputPaths(out, B, asFrames);
  const sheets = opts.contactSheet === false ? [] : [`${outputPaths(out, 1, false)[0]!.replace(/\.[^./]+$/, '')}.png`];
  const latentsPath = opts.saveLatents ? resolvePath(opts.cwd ?? process.cwd(), opts.saveLatents) : undefined;
  for (const f of [...videos, ...sheets, ...(latentsPath ? [latentsPath] : [])]) {
    if (existsSync(f) && statSync(f).isDirectory() && !(asFrames && videos.includes(f)))
      throw f === latentsPath
        ? new SoracError('SORA8304', `--save-latents ${f} is a directory; it names the safetensors file to write`, { hint: `name a file, e.g. --save-latents ${join(f, 'latents.safetensors')}` })
        : new SoracError('SORA8304', `${f} is a directory; -o names the video file to write`, { hint: `name a file, e.g. -o ${join(f, 'sample.mp4')}` });
    if (existsSync(f) && !opts.force) throw new SoracError('SORA8304', `${f} already exists`, { hint: 'pass --force to replace it (atomically), or choose another -o' });
  }
  try {
    mkdirSync(dirname(out), { recursive: true });
  } catch (e) {
    throw new SoracError('SORA8304', `cannot create the output directory ${dirname(out)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'choose a writable location with -o' });
  }
  // --save-latents is checked now too, not after the whole run
  if (latentsPath) prepareOutputFile(latentsPath, { flag: '--save-latents', example: 'latents.safetensors' });
  const stages: { name: StageName; ms: number; device: string }[] = [];
  const timed = async <T extends { device: string }>(name: StageName, run: () => Promise<T>): Promise<T> => {
    abortCheck();
    const t0 = performance.now();
    emit({ type: 'stage', stage: name, state: 'start' });
    const r = await run();
    const ms = performance.now() - t0;
    stages.push({ name, ms, device: r.device });
    emit({ type: 'stage', stage: name, state: 'end', ms, device: r.device });
    return r;
  };

  // stage 1: text (the prompts with the release's score text; the negative prompt last)
  const cfg = p.config as Record<string, unknown>;
  const given = (k: string) => cfg[k] !== undefined && cfg[k] !== null;
  const v2 = release === 'v2.0';
  // Open-Sora 2.0: " {fps_save} FPS." and " {motion_score} motion score." appended; the negative prompt ("" unless given) always encoded
  const texts = v2
    ? [...plan.prompts.map((pr) => promptV2(pr, { fps: plan.saveFps, ...(given('motion_score') ? { motionScore: cfg.motion_score as string } : {}) })), opts.negativePrompt ?? '']
    : [
        ...plan.prompts.map((pr) => promptWithScores(release, pr, { ...(given('aes') ? { aes: cfg.aes as number } : {}), ...(given('flow') ? { flow: cfg.flow as number } : {}), ...(given('camera_motion') ? { cameraMotion: cfg.camera_motion as string } : {}) })),
        ...(opts.negativePrompt !== undefined ? [opts.negativePrompt] : []),
      ];
  const text = await timed('text', () => encodeText(p, texts, { maxLength: plan.maxLength, ...(v2 ? { noMask: true } : {}), device, ...(opts.allowLossy ? { allowLossy: true } : {}), note }));
  text.truncated.forEach((t, i) => t && note(`note: ${i < B ? `prompt ${i + 1}` : 'the negative prompt'} was cut to ${plan.maxLength} tokens${plan.tokenizer2 ? ` (or ${plan.tokenizer2.maxLength} for tokenizer_2)` : ''}`));
  const [, L, C] = text.y.shape as number[];
  const row = L! * C!;
  const D = text.vec?.shape[1] ?? 0;
  const v2Text = v2
    ? {
        y: { dtype: 'f32' as const, shape: [B, L!, C!], data: text.y.data.subarray(0, B * row) },
        yNull: { dtype: 'f32' as const, shape: [1, L!, C!], data: text.y.data.subarray(B * row, (B + 1) * row) },
        vec: { dtype: 'f32' as const, shape: [B, D], data: text.vec!.data.subarray(0, B * D) },
        vecNull: { dtype: 'f32' as const, shape: [1, D], data: text.vec!.data.subarray(B * D, (B + 1) * D) },
      }
    : undefined;

  // stage 2: denoise
  const noise: NoiseSource = opts.noise ? await fileNoise(resolvePath(opts.cwd ?? process.cwd(), opts.noise)) : seededNoise(plan.seed);
  let latents: F32Tensor;
  try {
    latents = (
      await timed('denoise', () =>
        denoise(p, {
          release,
          latentShape: plan.latentShape,
          height: plan.height,
          width: plan.width,
          numFrames: plan.numFrames,
          fps: plan.fps,
          steps: plan.scheduler.steps,
          cfgScale: plan.scheduler.cfgScale,
          y: { dtype: 'f32', shape: [B, 1, L!, C!], data: text.y.data.subarray(0, B * row) },
          mask: { dtype: 'i64', shape: [B, L!], data: text.mask.data.subarray(0, B * L!) },
          ...(opts.negativePrompt !== undefined ? { yNull: { dtype: 'f32' as const, shape: [1, 1, L!, C!], data: text.y.data.subarray(B * row, (B + 1) * row) } } : {}),
          ...(v2Text ?? {}),
          noise,
          device,
          ...(opts.allowLossy ? { allowLossy: true } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
          onStep: ((t0) => (done: number, total: number) => emit({ type: 'step', done, total, ms: performance.now() - t0 }))(performance.now()),
          note,
        }),
      )
    ).latents;
  } finally {
    await noise.close?.();
  }

  // stage 3: decode
  const video = (await timed('decode', () => decode(p, latents, { numFrames: plan.numFrames, ...(plan.vaeMicroBatch ? { microBatch: plan.vaeMicroBatch } : {}), device, ...(opts.allowLossy ? { allowLossy: true } : {}), note }))).video;

  // outputs
  abortCheck();
  const outputs: { kind: string; path: string }[] = [];
  const wrote = (kind: 'video' | 'frames' | 'contact-sheet' | 'latents', path: string) => {
    outputs.push({ kind, path });
    emit({ type: 'output', kind, path });
  };
  const perSample = Array.from({ length: B }, (_, b) => videoFrames(video, b));
  for (let b = 0; b < B; b++) {
    if (asFrames) await writeFrames(videos[b]!, perSample[b]!);
    else await writeMp4(videos[b]!, perSample[b]!, plan.saveFps, { ffmpeg: ffmpeg!, ...(opts.signal ? { signal: opts.signal } : {}) });
    wrote(asFrames ? 'frames' : 'video', videos[b]!);
  }
  for (const sheet of sheets) {
    await writeFileAtomic(sheet, encodePng(contactSheet(perSample)));
    wrote('contact-sheet', sheet);
  }
  if (latentsPath) {
    await writeTensorsFile(latentsPath, new Map([['latents', latents as HostTensor]]), { 'sorac.pipeline': plan.pipeline.name, 'sorac.seed': String(plan.seed), 'sorac.prompts': JSON.stringify(plan.prompts) });
    wrote('latents', latentsPath);
  }
  return { plan, outputs, stages, video, latents };
}
