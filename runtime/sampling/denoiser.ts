/**
 * Bind a compiled DiT session (sorac `load(model, weights)` then `loaded.session('forward', absent)`) into a
 * Denoiser: the text embeddings, text mask and size conditioning are fixed for the whole run and the loop supplies
 * the latents, timesteps and (RFLOW with a latent mask) x_mask. One session serves every step.
 *
 * Batch layout as upstream: y = [y_cond (B rows), y_null (B rows)] where y_null = the DiT's own
 * y_embedder.y_embedding repeated (T5Encoder.null); the text mask stays [B, L] (the DiTs repeat it over the doubled
 * batch, so the null rows get the prompts' masks, as upstream); model_args stay [B] (the DiTs repeat them).
 */
import { SamplingError } from './errors.ts';
import type { Denoiser } from './loop.ts';
import { type F32Tensor, type I64Tensor, f32, fmt, numel } from './tensor.ts';

/** What a sorac session's `run` needs (structurally `SoracSession`). */
export interface RunnableSession {
  run(inputs: Readonly<Record<string, F32Tensor | I64Tensor | { readonly dtype: 'bool'; readonly shape: readonly number[]; readonly data: Uint8Array }>>): Promise<ReadonlyMap<string, { readonly dtype: string; readonly shape: readonly number[]; readonly data: unknown }>>;
}

export interface DitBinding {
  /** caption embeddings of the B prompts [B, 1, L, C] (T5 output) */
  readonly y: F32Tensor;
  /** the null embedding: y_embedder.y_embedding [L, C] as stored, or [1 or B, 1, L, C] */
  readonly yNull: F32Tensor;
  /** text mask [B, L] (i64), if the prompts have one */
  readonly mask?: I64Tensor;
  /** size conditioning by input name (conditioning.ts modelArgs); inputs the graph lacks are dropped */
  readonly modelArgs?: Readonly<Record<string, F32Tensor>>;
  /** the session's input names the graph actually has (session.inputs); default: pass everything */
  readonly inputNames?: readonly string[];
  /** output to read (default "output") */
  readonly output?: string;
}

/** y = cat([y, y_null repeated to B]) -> [2B, 1, L, C]. */
export function cfgText(y: F32Tensor, yNull: F32Tensor): F32Tensor {
  const [B, one, L, C] = y.shape as number[];
  if (y.shape.length !== 4 || one !== 1) throw new SamplingError('SORA8209', `caption embeddings y have shape ${fmt(y.shape)}, not [B, 1, L, C]`, 'pass the T5 output as [prompts, 1, tokens, channels]');
  const row = L! * C!;
  const nullRows = yNull.shape.length === 2 ? 1 : yNull.shape[0]!;
  const okNull = (yNull.shape.length === 2 && yNull.shape[0] === L && yNull.shape[1] === C) || (yNull.shape.length === 4 && (nullRows === 1 || nullRows === B) && yNull.shape[1] === 1 && yNull.shape[2] === L && yNull.shape[3] === C);
  if (!okNull) throw new SamplingError('SORA8209', `null embedding has shape ${fmt(yNull.shape)}; the captions need [${L}, ${C}] or [1 or ${B}, 1, ${L}, ${C}]`, 'pass the DiT checkpoint tensor y_embedder.y_embedding');
  const out = f32([2 * B!, 1, L!, C!]);
  out.data.set(y.data.subarray(0, B! * row), 0);
  for (let b = 0; b < B!; b++) out.data.set(yNull.data.subarray((nullRows === 1 ? 0 : b) * row, ((nullRows === 1 ? 0 : b) + 1) * row), (B! + b) * row);
  return out;
}

export function ditDenoiser(session: RunnableSession, bind: DitBinding): Denoiser {
  const y2 = cfgText(bind.y, bind.yNull);
  const want = bind.inputNames ? new Set(bind.inputNames) : null;
  const fixed: Record<string, F32Tensor | I64Tensor> = { y: y2 };
  if (bind.mask) fixed.mask = bind.mask;
  for (const [k, v] of Object.entries(bind.modelArgs ?? {})) fixed[k] = v;
  const outName = bind.output ?? 'output';
  return async (zIn, t, extras) => {
    const feed: Record<string, F32Tensor | I64Tensor | { dtype: 'bool'; shape: readonly number[]; data: Uint8Array }> = { x: zIn, timestep: t, ...fixed };
    if (extras.xMask) feed.x_mask = extras.xMask;
    if (want) for (const k of Object.keys(feed)) if (!want.has(k)) delete feed[k];
    const res = await session.run(feed);
    const o = res.get(outName);
    if (!o || o.dtype !== 'f32' || !(o.data instanceof Float32Array) || numel(o.shape) !== o.data.length)
      throw new SamplingError('SORA8208', `the DiT session returned no f32 "${outName}" output`, 'bind the session of the DiT entry `forward` (its output is named "output")');
    return { dtype: 'f32', shape: o.shape, data: o.data };
  };
}

// ---- Open-Sora 2.0: MMDiT on packed tokens ---------------------------------------------------------

/**
 * Every element of sampling.py's pack, as (index in [N, C, T, h, w], index in [N, T·(h/p)·(w/p), C·p·p])
 * pairs ("b c t (h ph) (w pw) -> b (t h w) (c ph pw)"); packLatents and unpackLatents copy along it.
 */
function forEachPacked(shape: readonly number[], p: number, f: (grid: number, packed: number) => void): void {
  const [N, C, T, H, W] = shape as number[];
  const hp = H! / p;
  const wp = W! / p;
  const D = C! * p * p;
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let t = 0; t < T!; t++)
        for (let y = 0; y < H!; y++)
          for (let xx = 0; xx < W!; xx++) {
            const tok = (t * hp + Math.floor(y / p)) * wp + Math.floor(xx / p);
            const d = (c * p + (y % p)) * p + (xx % p);
            f((((n * C! + c) * T! + t) * H! + y) * W! + xx, (n * T! * hp * wp + tok) * D + d);
          }
}

/** sampling.py pack: [N, C, T, h, w] -> [N, T·(h/p)·(w/p), C·p·p] ("b c t (h ph) (w pw) -> b (t h w) (c ph pw)"). */
export function packLatents(x: F32Tensor, p: number): F32Tensor {
  const [N, C, T, H, W] = x.shape as number[];
  const out = f32([N!, T! * (H! / p) * (W! / p), C! * p * p]);
  const s = x.data;
  const o = out.data;
  forEachPacked(x.shape, p, (grid, packed) => (o[packed] = s[grid]!));
  return out;
}

/** sampling.py unpack: the inverse of packLatents, to [N, C, T, h, w]. */
export function unpackLatents(x: F32Tensor, shape: readonly number[], p: number): F32Tensor {
  const out = f32(shape);
  const s = x.data;
  const o = out.data;
  forEachPacked(shape, p, (grid, packed) => (o[grid] = s[packed]!));
  return out;
}

/** sampling.py prepare: img_ids [N, T·hp·wp, 3] = (t, row, column) of each token, as floats. */
export function imageIds(N: number, T: number, hp: number, wp: number): F32Tensor {
  const L = T * hp * wp;
  const out = f32([N, L, 3]);
  for (let n = 0; n < N; n++)
    for (let t = 0; t < T; t++)
      for (let y = 0; y < hp; y++)
        for (let x = 0; x < wp; x++) {
          const o = (n * L + (t * hp + y) * wp + x) * 3;
          out.data[o] = t;
          out.data[o + 1] = y;
          out.data[o + 2] = x;
        }
  return out;
}

export interface MmditBinding {
  /** T5 embeddings of the B prompts [B, Lt, C] (Open-Sora 2.0: 512 tokens, no mask) */
  readonly txt: F32Tensor;
  /** of the negative prompt ("" by default) [1 or B, Lt, C] */
  readonly txtNull: F32Tensor;
  /** CLIP pooled embeddings of the prompts [B, D] */
  readonly vec: F32Tensor;
  /** of the negative prompt [1 or B, D] */
  readonly vecNull: F32Tensor;
  readonly patchSize: number;
  /** the guidance vector (SamplingOption.guidance; read only by a guidance-embedding model) */
  readonly guidance: number;
  /** the session's input names (session.inputs): cond and guidance are fed only when the graph takes them */
  readonly inputNames: readonly string[];
  readonly output?: string;
}

/** [B rows; null rows repeated to B] along the first axis. */
function cfgRows(x: F32Tensor, nul: F32Tensor, what: string): F32Tensor {
  const B = x.shape[0]!;
  const rowShape = x.shape.slice(1);
  const row = numel(rowShape);
  const nullRows = nul.shape[0]!;
  if (nul.shape.length !== x.shape.length || (nullRows !== 1 && nullRows !== B) || nul.shape.slice(1).some((d, i) => d !== rowShape[i]))
    throw new SamplingError('SORA8209', `the negative ${what} has shape ${fmt(nul.shape)}; the prompts' is ${fmt(x.shape)}`, 'encode the negative prompt with the same tokenizer length and text encoder');
  const out = f32([2 * B, ...rowShape]);
  out.data.set(x.data.subarray(0, B * row), 0);
  for (let b = 0; b < B; b++) out.data.set(nul.data.subarray((nullRows === 1 ? 0 : b) * row, ((nullRows === 1 ? 0 : b) + 1) * row), (B + b) * row);
  return out;
}

/**
 * Bind an MMDiT session (Open-Sora 2.0) into a Denoiser over latents [2B, C, T, h, w]: pack to tokens, the texts as
 * upstream's prepare() builds them (txt_ids zeros, img_ids (t, h, w)), the t2v condition cond = 0 (masks and masked
 * reference all zero), then unpack the velocity.
 */
export function mmditDenoiser(session: RunnableSession, bind: MmditBinding): Denoiser {
  const txt = cfgRows(bind.txt, bind.txtNull, 'text embedding');
  const vec = cfgRows(bind.vec, bind.vecNull, 'pooled text embedding');
  const N = txt.shape[0]!;
  const Lt = txt.shape[1]!;
  const want = new Set(bind.inputNames);
  const p = bind.patchSize;
  const outName = bind.output ?? 'output';
  const txtIds = f32([N, Lt, 3]);
  return async (zIn, t) => {
    const [n, C, T, H, W] = zIn.shape as number[];
    if (n !== N) throw new SamplingError('SORA8209', `the MMDiT batch has ${n} rows but the texts ${N}`, 'pass one text embedding per prompt');
    const img = packLatents(zIn, p);
    const Li = img.shape[1]!;
    const feed: Record<string, F32Tensor> = { img, img_ids: imageIds(N, T!, H! / p, W! / p), txt, txt_ids: txtIds, timesteps: t, y_vec: vec };
    if (want.has('cond')) feed.cond = f32([N, Li, C! * p * p + p * p]);
    if (want.has('guidance')) feed.guidance = f32([N], new Float32Array(N).fill(bind.guidance));
    for (const k of Object.keys(feed)) if (!want.has(k)) delete feed[k];
    const res = await session.run(feed);
    const o = res.get(outName);
    if (!o || o.dtype !== 'f32' || !(o.data instanceof Float32Array) || o.shape.length !== 3 || o.shape[1] !== Li || o.shape[2] !== C! * p * p)
      throw new SamplingError('SORA8208', `the MMDiT session returned no f32 "${outName}" of [${N}, ${Li}, ${C! * p * p}]`, 'bind the session of the MMDiT entry `forward`');
    return unpackLatents({ dtype: 'f32', shape: o.shape, data: o.data }, zIn.shape, p);
  };
}
