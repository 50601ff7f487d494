import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { traceEntry } from '../../compiler/compile.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, compileExample, goldenConfig, maxAbsDiff, runGolden } from '../helpers/parity.ts';
import { bf16Errors, bf16Tolerance } from '../helpers/vae-golden.ts';

const FILE = 'examples/hunyuan_vae.sora';

describe('AutoencoderKLCausal3D (Open-Sora 2.0 hunyuan_vae) parity with the real PyTorch code', () => {
  for (const [entry, outs] of [['encode', ['posterior_logvar', 'posterior_mean', 'z_mode']], ['forward', ['recon', 'z_mode']], ['decode', ['decode_z']]] as const) {
    it(`${entry}: ${outs.join(', ')} within 1e-4 (f32)`, async () => {
      const r = await runGolden(FILE, 'hunyuan_vae', { entry });
      expect(Object.keys(r.errors).sort()).toEqual([...outs]);
      console.log(`hunyuan_vae ${entry}`, r.errors);
      for (const e of Object.values(r.errors)) expect(e).toBeLessThanOrEqual(1e-4);
    });
  }
  it('bf16 checkpoint: within 2x the reference own bf16-vs-f32 gap', async () => {
    const errs = { ...(await bf16Errors(FILE, 'hunyuan_vae', 'encode')), ...(await bf16Errors(FILE, 'hunyuan_vae', 'forward')), ...(await bf16Errors(FILE, 'hunyuan_vae', 'decode')) };
    console.log('hunyuan_vae bf16', errs);
    expect(Object.keys(errs).sort()).toEqual(['decode_z', 'posterior_logvar', 'posterior_mean', 'recon', 'z_mode']);
    for (const [k, e] of Object.entries(errs)) expect(e).toBeLessThanOrEqual(bf16Tolerance('hunyuan_vae', k));
  });
});

describe('AutoencoderKLCausal3D frame counts', () => {
  it('T = 1 (image: the upsampler has no frames after the first), 5 and 9 frames', async () => {
    const m = compileExample(FILE, goldenConfig('hunyuan_vae'));
    const tr = traceEntry(m, 'forward');
    if (!tr.graph) throw new Error(tr.diagnostics.map((d) => d.message).join('\n'));
    const { tensors } = await readTensorsFile(join(GOLDEN, 'hunyuan_vae', 'a', 'inputs.safetensors'));
    const x = tensors.get('x')!;
    const w = await safetensorsWeightSource([join(GOLDEN, 'hunyuan_vae', 'a', 'model.safetensors')]);
    try {
      for (const T of [1, 5, 9]) {
        // frames 0..T-1 of x, repeating x's 5 frames
        const hw = 16 * 16;
        const data = new Float32Array(3 * T * hw);
        for (let c = 0; c < 3; c++) for (let t = 0; t < T; t++) data.set((x.data as Float32Array).subarray((c * 5 + (t % 5)) * hw, (c * 5 + (t % 5) + 1) * hw), (c * T + t) * hw);
        const r = await runGraph(tr.graph, w, new Map([['x', { dtype: 'f32', shape: [1, 3, T, 16, 16], data } as HostTensor]]), { device: 'cpu' });
        const tz = (T - 1) / 4 + 1;
        expect(r.outputs.get('z_mode')!.shape).toEqual([1, 4, tz, 4, 4]);
        expect(r.outputs.get('recon')!.shape).toEqual([1, 3, T, 16, 16]);
        if (T === 5) expect(maxAbsDiff(r.outputs.get('recon')!, (await readTensorsFile(join(GOLDEN, 'hunyuan_vae', 'a', 'outputs.safetensors'))).tensors.get('recon')!)).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      await w.close();
    }
  });
});
