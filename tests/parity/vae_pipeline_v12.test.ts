/**
 * Open-Sora 1.2 VideoAutoencoderPipeline (examples/vae_pipeline_v12.sora) as a composition of the two
 * golden-tested components: a pipeline checkpoint built from the sd_vae and vae_temporal golden weights
 * (keys prefixed spatial_vae.module. / temporal_vae., plus scale/shift buffers) at a config where both golden
 * configs fit, and pipeline.encode/decode = the component graphs run in sequence the way vae.py@v1.2.0 does
 * (per-frame 2-D VAE x 0.18215; temporal VAE per micro-frame chunk; (z - shift) / scale and back).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostTensor } from '../../core/host-tensor.ts';
import { GOLDEN, goldenConfig, maxAbsDiff } from '../helpers/parity.ts';
import { PIPELINE, SCALE, SHIFT, buildPipelineCheckpoint, channelAffine, concatT, i64, randomTensor, runEntry, sliceT, tinyPipelineConfig } from '../helpers/vae-pipeline.ts';

const SD = join(GOLDEN, 'sd_vae', 'a', 'model.safetensors');
const TV = join(GOLDEN, 'vae_temporal', 'a', 'model.safetensors');
const MF = 17;

let ckpt: string;
beforeAll(async () => {
  ckpt = await buildPipelineCheckpoint();
});

/** The reference pipeline from the component graphs: VideoAutoencoderPipeline.encode with micro_frame_size. */
async function referenceEncode(x: HostTensor, mf: number | null): Promise<HostTensor> {
  const xz = (await runEntry('examples/sd_vae.sora', goldenConfig('sd_vae'), 'encode_video', SD, new Map([['x', x]]))).get('z')!;
  const T = xz.shape[2]!;
  const parts: HostTensor[] = [];
  for (let i = 0; i < T; i += mf ?? T) {
    const chunk = sliceT(xz, i, Math.min(T, i + (mf ?? T)));
    parts.push((await runEntry('examples/vae_temporal.sora', goldenConfig('vae_temporal'), 'encode', TV, new Map([['x', chunk]]))).get('posterior_mean')!);
  }
  // (z - shift) / scale
  const z = concatT(parts);
  const [B, C, ...rest] = z.shape as number[];
  const inner = rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(z.data.length);
  for (let b = 0; b < B!; b++)
    for (let c = 0; c < C!; c++)
      for (let i = 0; i < inner; i++) {
        const o = (b * C! + c) * inner + i;
        out[o] = Math.fround(Math.fround((z.data as Float32Array)[o]! - Math.fround(SHIFT[c]!)) / Math.fround(SCALE[c]!));
      }
  return { dtype: 'f32', shape: z.shape, data: out };
}

/** VideoAutoencoderPipeline.decode(z, num_frames) from the component graphs. */
async function referenceDecode(z: HostTensor, numFrames: number, mf: number | null): Promise<HostTensor> {
  const zz = channelAffine(z, SCALE, SHIFT);
  const Tz = zz.shape[2]!;
  const mz = mf === null ? Tz : Math.ceil(mf / 4);
  const parts: HostTensor[] = [];
  let remaining = numFrames;
  for (let i = 0; i < Tz; i += mz) {
    const nf = mf === null ? numFrames : Math.min(mf, remaining);
    parts.push((await runEntry('examples/vae_temporal.sora', goldenConfig('vae_temporal'), 'decode', TV, new Map([['z', sliceT(zz, i, Math.min(Tz, i + mz))], ['num_frames', i64(nf)]]))).get('decode_z')!);
    if (mf !== null) remaining -= mf;
  }
  return (await runEntry('examples/sd_vae.sora', goldenConfig('sd_vae'), 'decode_video', SD, new Map([['z', concatT(parts)]]))).get('x')!;
}

const encode = (x: HostTensor, cfg: Record<string, unknown> = {}) => runEntry(PIPELINE, tinyPipelineConfig(cfg), 'encode', ckpt, new Map([['x', x]])).then((o) => o.get('z')!);
const decode = (z: HostTensor, nf: number, cfg: Record<string, unknown> = {}) =>
  runEntry(PIPELINE, tinyPipelineConfig(cfg), 'decode', ckpt, new Map([['z', z], ['num_frames', i64(nf)]])).then((o) => o.get('x')!);

describe('OpenSoraVAE_V1_2 = sd_vae + vae_temporal composed (golden weights)', () => {
  // T = 17 + 17 + 5: two whole micro-frame chunks and a short tail (5 frames -> padded 8 -> 2 latent frames)
  for (const T of [39, 34, 1]) {
    it(`encode, T = ${T}: equals the component graphs in sequence within 1e-5`, async () => {
      const x = randomTensor([1, 3, T, 16, 16], 7 + T);
      const mine = await encode(x);
      const ref = await referenceEncode(x, MF);
      const Tz = 5 * Math.floor(T / MF) + Math.ceil((T % MF) / 4);
      expect(mine.shape).toEqual([1, 4, Tz, 8, 8]);
      const e = maxAbsDiff(mine, ref);
      console.log(`vae_pipeline_v12 encode T=${T}`, e);
      expect(e).toBeLessThanOrEqual(1e-5);
    });
    it(`decode(z, num_frames = ${T}): equals the component graphs in sequence within 1e-5`, async () => {
      const Tz = 5 * Math.floor(T / MF) + Math.ceil((T % MF) / 4);
      const z = randomTensor([1, 4, Tz, 8, 8], 11 + T);
      const mine = await decode(z, T);
      const ref = await referenceDecode(z, T, MF);
      expect(mine.shape).toEqual([1, 3, T, 16, 16]);
      const e = maxAbsDiff(mine, ref);
      console.log(`vae_pipeline_v12 decode T=${T}`, e);
      expect(e).toBeLessThanOrEqual(1e-5);
    });
  }

  it('decode with num_frames not matching the last chunk (min(17, remaining) as the loop computes it)', async () => {
    for (const [Tz, nf] of [[15, 37], [12, 60], [12, 35]] as const) {
      const z = randomTensor([1, 4, Tz, 8, 8], 31 + nf);
      const mine = await decode(z, nf);
      const ref = await referenceDecode(z, nf, MF);
      expect(mine.shape).toEqual(ref.shape);
      expect(maxAbsDiff(mine, ref)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('micro_frame_size none: encode/decode run the temporal VAE on the whole clip', async () => {
    const x = randomTensor([1, 3, 22, 16, 16], 3);
    const e1 = maxAbsDiff(await encode(x, { micro_frame_size: null }), await referenceEncode(x, null));
    const z = randomTensor([1, 4, 6, 8, 8], 5);
    const e2 = maxAbsDiff(await decode(z, 22, { micro_frame_size: null }), await referenceDecode(z, 22, null));
    console.log('vae_pipeline_v12 micro_frame_size=none', e1, e2);
    expect(e1).toBeLessThanOrEqual(1e-5);
    expect(e2).toBeLessThanOrEqual(1e-5);
  });

  it('micro_frame_size none vs 17 on whole chunks: one chunk is identical; two chunks = none run per chunk', async () => {
    const x17 = randomTensor([1, 3, 17, 16, 16], 21);
    expect(maxAbsDiff(await encode(x17), await encode(x17, { micro_frame_size: null }))).toBe(0);
    const z5 = randomTensor([1, 4, 5, 8, 8], 22);
    expect(maxAbsDiff(await decode(z5, 17), await decode(z5, 17, { micro_frame_size: null }))).toBe(0);

    const x34 = randomTensor([1, 3, 34, 16, 16], 23);
    const chunked = await encode(x34);
    const perChunk = concatT([await encode(sliceT(x34, 0, 17), { micro_frame_size: null }), await encode(sliceT(x34, 17, 34), { micro_frame_size: null })]);
    expect(chunked.shape).toEqual([1, 4, 10, 8, 8]);
    expect(maxAbsDiff(chunked, perChunk)).toBeLessThanOrEqual(1e-6);
    // ...and differs from one whole-clip temporal pass (causal convs and GroupNorm statistics span the clip)
    expect(maxAbsDiff(chunked, await encode(x34, { micro_frame_size: null }))).toBeGreaterThan(1e-3);

    const z10 = randomTensor([1, 4, 10, 8, 8], 24);
    const dec = await decode(z10, 34);
    const decPerChunk = concatT([await decode(sliceT(z10, 0, 5), 17, { micro_frame_size: null }), await decode(sliceT(z10, 5, 10), 17, { micro_frame_size: null })]);
    expect(maxAbsDiff(dec, decPerChunk)).toBeLessThanOrEqual(1e-6);
  });
});
