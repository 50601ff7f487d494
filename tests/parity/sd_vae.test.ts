import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../core/host-tensor.ts';
import { maxAbsDiff, runGolden } from '../helpers/parity.ts';
import { bf16Errors, bf16Tolerance } from '../helpers/vae-golden.ts';

const FILE = 'examples/sd_vae.sora';

describe('diffusers AutoencoderKL (SD VAE) parity with the real PyTorch code', () => {
  for (const [entry, outs] of [['encode', ['posterior_logvar', 'posterior_mean']], ['forward', ['recon']], ['decode', ['decode_z']]] as const) {
    it(`${entry}: ${outs.join(', ')} within 1e-4 (f32)`, async () => {
      const r = await runGolden(FILE, 'sd_vae', { entry });
      expect(Object.keys(r.errors).sort()).toEqual([...outs]);
      console.log(`sd_vae ${entry}`, r.errors);
      for (const e of Object.values(r.errors)) expect(e).toBeLessThanOrEqual(1e-4);
    });
  }
  it('bf16 checkpoint: within 2x the reference own bf16-vs-f32 gap', async () => {
    const errs = { ...(await bf16Errors(FILE, 'sd_vae', 'encode')), ...(await bf16Errors(FILE, 'sd_vae', 'forward')), ...(await bf16Errors(FILE, 'sd_vae', 'decode')) };
    console.log('sd_vae bf16', errs);
    expect(Object.keys(errs).sort()).toEqual(['decode_z', 'posterior_logvar', 'posterior_mean', 'recon']);
    for (const [k, e] of Object.entries(errs)) expect(e).toBeLessThanOrEqual(bf16Tolerance('sd_vae', k));
  });
});

describe('AutoencoderKL per-frame video entries (Open-Sora VideoAutoencoderKL)', () => {
  const asVideo = (t: Map<string, HostTensor>) => new Map([...t].map(([k, v]) => [k, { ...v, shape: [v.shape[0]!, v.shape[1]!, 1, ...v.shape.slice(2)] }] as const));
  const scaled = (t: HostTensor, s: number): HostTensor => ({ ...t, data: (t.data as Float32Array).map((x) => x * s) });
  it('encode_video = 0.18215 * posterior mean per frame', async () => {
    const r = await runGolden(FILE, 'sd_vae', { entry: 'encode_video', inputs: asVideo });
    const z = r.outputs.get('z')!;
    expect(z.shape).toEqual([1, 4, 1, 8, 8]);
    expect(maxAbsDiff(z, scaled(r.reference.get('posterior_mean')!, 0.18215))).toBeLessThanOrEqual(1e-5);
  });
  it('decode_video(0.18215 * z) = decode(z) per frame', async () => {
    const r = await runGolden(FILE, 'sd_vae', { entry: 'decode_video', inputs: (t) => new Map([...asVideo(t)].map(([k, v]) => [k, k === 'z' ? scaled(v, 0.18215) : v])) });
    const x = r.outputs.get('x')!;
    expect(x.shape).toEqual([1, 3, 1, 16, 16]);
    expect(maxAbsDiff(x, r.reference.get('decode_z')!)).toBeLessThanOrEqual(1e-4);
  });
});
