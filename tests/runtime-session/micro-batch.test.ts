/**
 * Micro-batched runs (runtime/execution/micro-batch.ts) equal one pass: sd_vae decode_video/encode_video along T and B
 * on the golden weights, and the Open-Sora 1.2 pipeline decode/encode along chunk-aligned (latent) frames;
 * outputs streamed into a safetensors file equal the in-memory result; declarations are enforced.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { SoracError } from '../../core/errors.ts';
import { declaredMicroBatch, planMicroBatch, runMicroBatched } from '../../runtime/execution/micro-batch.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { createSession } from '../../api/session.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, compileExample, goldenConfig, maxAbsDiff } from '../helpers/parity.ts';
import { PIPELINE, buildPipelineCheckpoint, i64, randomTensor, tinyPipelineConfig } from '../helpers/vae-pipeline.ts';

const SD = join(GOLDEN, 'sd_vae', 'a', 'model.safetensors');
let pipelineCkpt: string;
beforeAll(async () => {
  pipelineCkpt = await buildPipelineCheckpoint();
});

async function withSession<T>(file: string, config: Record<string, unknown>, entry: string, weights: string, body: (s: Awaited<ReturnType<typeof createSession>>, g: NonNullable<ReturnType<typeof traceEntry>['graph']>) => Promise<T>): Promise<T> {
  const tr = traceEntry(compileExample(file, config), entry);
  if (!tr.graph) throw new Error(tr.diagnostics.map((d) => d.message).join('\n'));
  const w = await safetensorsWeightSource([weights]);
  const s = await createSession(tr.graph, w, { device: 'cpu' });
  try {
    return await body(s, tr.graph);
  } finally {
    await s.release();
    await w.close();
  }
}

/** one pass vs micro-batched with each size; returns the max abs differences */
async function compare(file: string, config: Record<string, unknown>, entry: string, weights: string, inputs: Map<string, HostTensor>, axis: string, sizes: number[]) {
  return withSession(file, config, entry, weights, async (s, g) => {
    const one = await s.run(inputs);
    const plan = planMicroBatch(g, { axis });
    const errs: number[] = [];
    for (const size of sizes) {
      const r = await runMicroBatched(s, plan, inputs, { size });
      for (const [k, v] of one) {
        expect(r.outputs!.get(k)!.shape, `${k} size ${size}`).toEqual(v.shape);
        errs.push(maxAbsDiff(r.outputs!.get(k)!, v));
      }
    }
    return { errs, one, plan };
  });
}

describe('micro-batching sd_vae (per-frame AutoencoderKL, golden weights)', () => {
  it('declares B and T on the video entries, B on the image entries', () => {
    const m = compileExample('examples/sd_vae.sora', goldenConfig('sd_vae'));
    expect(declaredMicroBatch(traceEntry(m, 'decode_video').graph!).map((d) => d.axis)).toEqual(['B', 'T']);
    expect(declaredMicroBatch(traceEntry(m, 'decode').graph!).map((d) => d.axis)).toEqual(['B']);
  });
  it('decode_video of a 24-frame latent along T (chunks of 1, 5, 8, 24) = one pass', async () => {
    const z = randomTensor([1, 4, 24, 8, 8], 3);
    const { errs } = await compare('examples/sd_vae.sora', goldenConfig('sd_vae'), 'decode_video', SD, new Map([['z', z]]), 'T', [1, 5, 8, 24]);
    console.log('sd_vae decode_video micro-batched along T, max abs diff', errs);
    for (const e of errs) expect(e).toBeLessThanOrEqual(1e-6);
  });
  it('encode_video along T and decode_video along B = one pass', async () => {
    const x = randomTensor([2, 3, 7, 16, 16], 4);
    const a = await compare('examples/sd_vae.sora', goldenConfig('sd_vae'), 'encode_video', SD, new Map([['x', x]]), 'T', [2, 3]);
    const z = randomTensor([3, 4, 2, 8, 8], 5);
    const b = await compare('examples/sd_vae.sora', goldenConfig('sd_vae'), 'decode_video', SD, new Map([['z', z]]), 'B', [1, 2]);
    console.log('sd_vae encode_video along T / decode_video along B', a.errs, b.errs);
    for (const e of [...a.errs, ...b.errs]) expect(e).toBeLessThanOrEqual(1e-6);
  });
});

describe('micro-batching the Open-Sora 1.2 pipeline along micro-frame chunks', () => {
  it('decode(z, num_frames) of 12 latent frames (2 whole chunks + a 2-frame tail, 39 frames) along Tz = one pass', async () => {
    const z = randomTensor([1, 4, 12, 8, 8], 6);
    const { errs, one, plan } = await compare(PIPELINE, tinyPipelineConfig(), 'decode', pipelineCkpt, new Map([['z', z], ['num_frames', i64(39)]]), 'Tz', [5, 10, 15]);
    expect(plan).toMatchObject({ axis: 'Tz', step: 5, outStep: 17, length: 'num_frames' });
    expect(one.get('x')!.shape).toEqual([1, 3, 39, 16, 16]);
    console.log('pipeline decode micro-batched along Tz, max abs diff', errs);
    for (const e of errs) expect(e).toBeLessThanOrEqual(1e-6);
  });
  it('decode of whole chunks only (Tz = 15, num_frames = 51) and a num_frames short of the last chunk (37, as in PyTorch: 17 + 17 + 19)', async () => {
    const z = randomTensor([1, 4, 15, 8, 8], 7);
    const a = await compare(PIPELINE, tinyPipelineConfig(), 'decode', pipelineCkpt, new Map([['z', z], ['num_frames', i64(51)]]), 'Tz', [5]);
    const b = await compare(PIPELINE, tinyPipelineConfig(), 'decode', pipelineCkpt, new Map([['z', z], ['num_frames', i64(37)]]), 'Tz', [5, 10]);
    // the last chunk decodes with num_frames = 3: 20 frames, of which (4 - 3 % 4) % 4 = 1 is dropped (VAE_Temporal.decode)
    expect(b.one.get('x')!.shape[2]).toBe(17 + 17 + 19);
    for (const e of [...a.errs, ...b.errs]) expect(e).toBeLessThanOrEqual(1e-6);
  });
  it('encode of 39 frames along T in whole micro-frame chunks (17, 34) = one pass', async () => {
    const x = randomTensor([1, 3, 39, 16, 16], 8);
    const { errs, one } = await compare(PIPELINE, tinyPipelineConfig(), 'encode', pipelineCkpt, new Map([['x', x]]), 'T', [17, 34]);
    expect(one.get('z')!.shape).toEqual([1, 4, 12, 8, 8]);
    for (const e of errs) expect(e).toBeLessThanOrEqual(1e-6);
  });
  it('streams the outputs into a safetensors file: the same values as in memory', async () => {
    const z = randomTensor([1, 4, 12, 8, 8], 9);
    const inputs = new Map([['z', z], ['num_frames', i64(39)]]);
    const path = join(mkdtempSync(join(tmpdir(), 'sorac-mb-')), 'out.safetensors');
    await withSession(PIPELINE, tinyPipelineConfig(), 'decode', pipelineCkpt, async (s, g) => {
      const plan = planMicroBatch(g);
      expect(plan.axis).toBe('B');
      const tz = planMicroBatch(g, { axis: 'Tz' });
      const mem = await runMicroBatched(s, tz, inputs, { size: 5 });
      const chunks: number[] = [];
      const r = await runMicroBatched(s, tz, inputs, { size: 5, out: { path, metadata: { k: 'v' } }, onChunk: (d) => chunks.push(d) });
      expect(r.outputs).toBeUndefined();
      expect(chunks).toEqual([1, 2, 3]);
      const back = await readTensorsFile(path);
      expect(back.metadata.k).toBe('v');
      expect(maxAbsDiff(back.tensors.get('x')!, mem.outputs!.get('x')!)).toBe(0);
    });
  });
  it('refuses undeclared axes and sizes that cut a micro-frame chunk', async () => {
    const m = compileExample('examples/vae_temporal.sora', goldenConfig('vae_temporal'));
    // VAE_Temporal.decode mixes all latent frames (causal convs, GroupNorm over T): only B is declared
    expect(() => planMicroBatch(traceEntry(m, 'decode').graph!, { axis: 'Tz' })).toThrow(/cannot be micro-batched along "Tz"/);
    const none = compileExample(PIPELINE, tinyPipelineConfig({ micro_frame_size: null }));
    expect(declaredMicroBatch(traceEntry(none, 'decode').graph!).map((d) => d.axis)).toEqual(['B']);
    await withSession(PIPELINE, tinyPipelineConfig(), 'decode', pipelineCkpt, async (s, g) => {
      const plan = planMicroBatch(g, { axis: 'Tz' });
      const inputs = new Map([['z', randomTensor([1, 4, 10, 8, 8])], ['num_frames', i64(34)]]);
      await expect(runMicroBatched(s, plan, inputs, { size: 4 })).rejects.toThrow(SoracError);
      await expect(runMicroBatched(s, plan, inputs, { size: 4 })).rejects.toThrow(/not a multiple of 5/);
    });
  });
});
