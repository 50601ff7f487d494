import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { traceEntry } from '../../compiler/compile.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, compileExample, maxAbsDiff, runGolden } from '../helpers/parity.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';
import { bf16Errors, bf16Tolerance } from '../helpers/vae-golden.ts';

const FILE = 'examples/vae_v13.sora';
const config = v13Config();

describe('OpenSoraVAE_V1_3 parity with the real PyTorch code (micro-frame chunks with overlap, video normalization)', () => {
  for (const [entry, outs] of [['encode', ['posterior_logvar', 'posterior_mean', 'z_mode']], ['forward', ['recon', 'z_mode']], ['decode', ['decode_z']]] as const) {
    it(`${entry}: ${outs.join(', ')} within 1e-4 (f32)`, async () => {
      const r = await runGolden(FILE, 'vae_v13', { entry, config });
      expect(Object.keys(r.errors).sort()).toEqual([...outs]);
      console.log(`vae_v13 ${entry}`, r.errors);
      for (const e of Object.values(r.errors)) expect(e).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('OpenSoraVAE_V1_3 with bf16 weights', () => {
  it('bf16 checkpoint: within 2x the reference own bf16-vs-f32 gap', async () => {
    const errs = { ...(await bf16Errors(FILE, 'vae_v13', 'encode', undefined, config)), ...(await bf16Errors(FILE, 'vae_v13', 'forward', undefined, config)), ...(await bf16Errors(FILE, 'vae_v13', 'decode', undefined, config)) };
    console.log('vae_v13 bf16', errs);
    expect(Object.keys(errs).sort()).toEqual(['decode_z', 'posterior_logvar', 'posterior_mean', 'recon', 'z_mode']);
    for (const [k, e] of Object.entries(errs)) expect(e).toBeLessThanOrEqual(bf16Tolerance('vae_v13', k));
  });
});

async function run(cfg: Record<string, unknown>, entry: string, feed: Map<string, HostTensor>) {
  const m = compileExample(FILE, { ...config, ...cfg });
  const tr = traceEntry(m, entry);
  if (!tr.graph) throw new Error(tr.diagnostics.map((d) => d.message).join('\n'));
  const w = await safetensorsWeightSource([join(GOLDEN, 'vae_v13', 'a', 'model.safetensors')]);
  try {
    return (await runGraph(tr.graph, w, feed, { device: 'cpu' })).outputs;
  } finally {
    await w.close();
  }
}

describe('OpenSoraVAE_V1_3 micro-frame branches agree with whole-clip encoding', () => {
  /** frames [t0, t1) of a [B, C, T, H, W] tensor */
  function frames(x: HostTensor, t0: number, t1: number): HostTensor {
    const [B, C, T, H, W] = x.shape as number[];
    const n = t1 - t0;
    const hw = H! * W!;
    const out = new Float32Array(B! * C! * n * hw);
    for (let b = 0; b < B! * C!; b++) out.set((x.data as Float32Array).subarray((b * T! + t0) * hw, (b * T! + t1) * hw), b * n * hw);
    return { dtype: 'f32', shape: [B!, C!, n, H!, W!], data: out };
  }
  function cat(a: HostTensor, b: HostTensor): HostTensor {
    const [B, C, Ta, H, W] = a.shape as number[];
    const Tb = b.shape[2]!;
    const hw = H! * W!;
    const out = new Float32Array(B! * C! * (Ta! + Tb) * hw);
    for (let i = 0; i < B! * C!; i++) {
      out.set((a.data as Float32Array).subarray(i * Ta! * hw, (i + 1) * Ta! * hw), i * (Ta! + Tb) * hw);
      out.set((b.data as Float32Array).subarray(i * Tb * hw, (i + 1) * Tb * hw), (i * (Ta! + Tb) + Ta!) * hw);
    }
    return { dtype: 'f32', shape: [B!, C!, Ta! + Tb, H!, W!], data: out };
  }
  /** a frames-long clip cycling through the golden x's 9 frames */
  function clip(x: HostTensor, T: number): HostTensor {
    let out = frames(x, 0, Math.min(T, 9));
    while (out.shape[2]! < T) out = cat(out, frames(x, 0, Math.min(T - out.shape[2]!, 9)));
    return out;
  }
  const avg = (a: HostTensor, b: HostTensor): HostTensor => ({ ...a, data: (a.data as Float32Array).map((v, i) => 0.5 * (v + (b.data as Float32Array)[i]!)) });
  /** PyTorch's encode_micro_frame / decode_micro_frame loops, over whole-clip (micro_frame_size=none) runs */
  async function reference(x: HostTensor, overlap: boolean) {
    const T = x.shape[2]!;
    const mf = 5;
    const starts: number[] = [];
    if (T === 1) starts.push(0);
    else for (let i = 0; i < (overlap ? T - 1 : T); i += overlap ? mf - 1 : mf) starts.push(i);
    let mean: HostTensor | undefined;
    for (const s0 of starts) {
      const m = (await run({ micro_frame_size: null }, 'encode', new Map([['x', frames(x, s0, Math.min(s0 + mf, T))]]))).get('z_mode')!;
      mean = mean ? cat(mean, m) : m;
    }
    const Tz = mean!.shape[2]!;
    let dec: HostTensor | undefined;
    for (let i = 0; i < Tz; i += 2) {
      let xb = (await run({ micro_frame_size: null }, 'decode', new Map([['z', frames(mean!, i, Math.min(i + 2, Tz))]]))).get('decode_z')!;
      if (overlap && dec) {
        const n = dec.shape[2]!;
        dec = cat(cat(frames(dec, 0, n - 1), avg(frames(dec, n - 1, n), frames(xb, 0, 1))), frames(xb, 1, xb.shape[2]!));
        continue;
      }
      dec = dec ? cat(dec, xb) : xb;
    }
    return { z: mean!, dec: dec! };
  }
  for (const overlap of [true, false]) {
    it(`every frame count, incl. a short last chunk and T = 1 (temporal_overlap=${overlap})`, async () => {
      const { tensors } = await readTensorsFile(join(GOLDEN, 'vae_v13', 'a', 'inputs.safetensors'));
      for (const T of overlap ? [1, 2, 4, 5, 6, 8, 9, 10, 12, 14] : [1, 3, 5, 6, 9, 10, 12]) {
        const x = clip(tensors.get('x')!, T);
        const ref = await reference(x, overlap);
        const enc = await run({ temporal_overlap: overlap }, 'encode', new Map([['x', x]]));
        expect(enc.get('z_mode')!.shape, `T=${T}`).toEqual(ref.z.shape);
        expect(maxAbsDiff(enc.get('z_mode')!, ref.z), `T=${T}`).toBeLessThanOrEqual(1e-5);
        const dec = await run({ temporal_overlap: overlap }, 'decode', new Map([['z', ref.z]]));
        expect(dec.get('decode_z')!.shape, `T=${T}`).toEqual(ref.dec.shape);
        expect(maxAbsDiff(dec.get('decode_z')!, ref.dec), `T=${T}`).toBeLessThanOrEqual(1e-5);
      }
    }, 120_000);
  }
  it('micro_frame_size=none encodes any T, incl. a single frame', async () => {
    const { tensors } = await readTensorsFile(join(GOLDEN, 'vae_v13', 'a', 'inputs.safetensors'));
    for (const T of [1, 2, 5, 9]) {
      const r = await run({ micro_frame_size: null }, 'forward', new Map([['x', frames(tensors.get('x')!, 0, T)]]));
      const tz = Math.floor((Math.floor((T - 1) / 2) + 1 - 1) / 2) + 1;
      expect(r.get('z_mode')!.shape).toEqual([1, 16, tz, 2, 4]);
      expect(r.get('recon')!.shape).toEqual([1, 3, 4 * tz - 3, 16, 32]);
    }
  });
});

describe('OpenSoraVAE_V1_3 normalization="video_5frames"', () => {
  it('z = (mean - m5[c, t % 5]) / s5[c, t % 5], and decode undoes it', async () => {
    const r5 = await runGolden(FILE, 'vae_v13', { entry: 'encode', config: { ...config, normalization: 'video_5frames' } });
    const z = r5.outputs.get('z_mode')!.data as Float32Array;
    const mean = r5.reference.get('posterior_mean')!.data as Float32Array;
    // [1, 16, 4, 2, 4]: channel c, latent frame t, 8 positions each; constants.py VAE_STAT_DICT["video_5frames"]
    const at = (c: number, t: number) => (c * 4 + t) * 8;
    const spot: [number, number, number, number][] = [[0, 0, -0.31038138270378113, 0.9969105124473572], [0, 3, -0.11228419095277786, 0.9288502335548401], [3, 1, -0.10902953892946243, 0.9105200171470642]];
    for (const [c, t, m, s] of spot) for (let i = 0; i < 8; i++) expect(Math.abs(z[at(c, t) + i]! - (mean[at(c, t) + i]! - m) / s)).toBeLessThanOrEqual(1e-5);
    const f5 = await runGolden(FILE, 'vae_v13', { entry: 'forward', config: { ...config, normalization: 'video_5frames' } });
    expect(f5.errors.recon).toBeLessThanOrEqual(1e-4);
    const n = await runGolden(FILE, 'vae_v13', { entry: 'forward', config: { ...config, normalization: null } });
    expect(n.errors.recon).toBeLessThanOrEqual(1e-4);
  });
  it('micro_batch_size=none: PyTorch runs the whole clip at once even with micro_frame_size set', async () => {
    const { tensors } = await readTensorsFile(join(GOLDEN, 'vae_v13', 'a', 'inputs.safetensors'));
    const feed = new Map([['x', tensors.get('x')!]]);
    const a = await run({ micro_batch_size: null }, 'encode', feed);
    const b = await run({ micro_frame_size: null }, 'encode', feed);
    expect(a.get('z_mode')!.shape).toEqual([1, 16, 3, 2, 4]);
    expect(maxAbsDiff(a.get('z_mode')!, b.get('z_mode')!)).toBe(0);
  });
});
