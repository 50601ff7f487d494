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
