/**
 * The Open-Sora 1.2 VAE pipeline (examples/vae_pipeline_v12.sora) at a tiny config where the sd_vae and
 * vae_temporal golden cases fit together, its checkpoint built from their golden weights, and helpers to
 * run entries of the pipeline and of the two component examples on it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { traceEntry } from '../../compiler/compile.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile, writeTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, compileExample, goldenConfig } from './parity.ts';

export const PIPELINE = 'examples/vae_pipeline_v12.sora';
/** released shift / scale (VideoAutoencoderPipeline buffers) */
export const SHIFT = [-0.1, 0.34, 0.27, 0.98];
export const SCALE = [3.85, 2.32, 2.33, 3.06];

/** Pipeline config whose components equal the golden sd_vae / vae_temporal configs. */
export function tinyPipelineConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const s = goldenConfig('sd_vae');
  const t = goldenConfig('vae_temporal');
  return {
    vae_2d_block_out_channels: s.block_out_channels,
    vae_2d_layers_per_block: s.layers_per_block,
    vae_2d_norm_num_groups: s.norm_num_groups,
    vae_temporal_filters: t.filters,
    vae_temporal_num_res_blocks: t.num_res_blocks,
    vae_temporal_num_groups: t.num_groups,
    ...extra,
  };
}

/** Pipeline checkpoint: spatial_vae.module.<sd_vae golden>, temporal_vae.<vae_temporal golden>, scale, shift. */
export async function buildPipelineCheckpoint(dir = mkdtempSync(join(tmpdir(), 'sorac-vae12-'))): Promise<string> {
  const out = new Map<string, HostTensor>();
  for (const [model, prefix] of [['sd_vae', 'spatial_vae.module.'], ['vae_temporal', 'temporal_vae.']] as const) {
    const { tensors } = await readTensorsFile(join(GOLDEN, model, 'a', 'model.safetensors'));
    for (const [k, v] of tensors) out.set(prefix + k, v);
  }
  out.set('scale', { dtype: 'f32', shape: [1, 4, 1, 1, 1], data: Float32Array.from(SCALE) });
  out.set('shift', { dtype: 'f32', shape: [1, 4, 1, 1, 1], data: Float32Array.from(SHIFT) });
  const path = join(dir, 'vae_pipeline_v12.tiny.safetensors');
  await writeTensorsFile(path, out, {});
  return path;
}

/** Run one entry of an example on a weights file (CPU). */
export async function runEntry(file: string, config: Record<string, unknown>, entry: string, weights: string, inputs: Map<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const m = compileExample(file, config);
  const tr = traceEntry(m, entry);
  if (!tr.graph) throw new Error(tr.diagnostics.map((d) => `${d.code} ${d.span?.file}:${d.span?.start.line}:${d.span?.start.col}: ${d.message}`).join('\n'));
  const w = await safetensorsWeightSource([weights]);
  try {
    return (await runGraph(tr.graph, w, inputs, { device: 'cpu' })).outputs;
  } finally {
    await w.close();
  }
}

/** Deterministic pseudo-random f32 tensor (xorshift, roughly uniform in [-1, 1)). */
export function randomTensor(shape: number[], seed = 1): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = (s / 2 ** 32) * 2 - 1;
  }
  return { dtype: 'f32', shape, data };
}

export const i64 = (v: number): HostTensor => ({ dtype: 'i64', shape: [], data: new BigInt64Array([BigInt(v)]) });

/** x[:, :, t0:t1] of a [B, C, T, ...] f32 tensor. */
export function sliceT(x: HostTensor, t0: number, t1: number): HostTensor {
  const [B, C, T, ...rest] = x.shape as number[];
  const inner = rest.reduce((a, b) => a * b, 1);
  const n = t1 - t0;
  const out = new Float32Array(B! * C! * n * inner);
  const src = x.data as Float32Array;
  for (let bc = 0; bc < B! * C!; bc++) out.set(src.subarray((bc * T! + t0) * inner, (bc * T! + t1) * inner), bc * n * inner);
  return { dtype: 'f32', shape: [B!, C!, n, ...rest], data: out };
}

/** concat along dim 2 of [B, C, T, ...] f32 tensors. */
export function concatT(xs: HostTensor[]): HostTensor {
  const [B, C, , ...rest] = xs[0]!.shape as number[];
  const inner = rest.reduce((a, b) => a * b, 1);
  const T = xs.reduce((a, x) => a + x.shape[2]!, 0);
  const out = new Float32Array(B! * C! * T * inner);
  for (let bc = 0; bc < B! * C!; bc++) {
    let t = 0;
    for (const x of xs) {
      const n = x.shape[2]!;
      out.set((x.data as Float32Array).subarray(bc * n * inner, (bc + 1) * n * inner), (bc * T + t) * inner);
      t += n;
    }
  }
  return { dtype: 'f32', shape: [B!, C!, T, ...rest], data: out };
}

/** Per-channel affine on [B, 4, T, h, w]: x * a[c] + b[c]. */
export function channelAffine(x: HostTensor, a: number[], b: number[]): HostTensor {
  const [B, C, ...rest] = x.shape as number[];
  const inner = rest.reduce((p, q) => p * q, 1);
  const src = x.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let bi = 0; bi < B!; bi++)
    for (let c = 0; c < C!; c++) {
      const o = (bi * C! + c) * inner;
      const fa = Math.fround(a[c]!);
      const fb = Math.fround(b[c]!);
      for (let i = 0; i < inner; i++) out[o + i] = Math.fround(Math.fround(src[o + i]! * fa) + fb);
    }
  return { dtype: 'f32', shape: x.shape, data: out };
}
