import { describe, expect, it } from 'vitest';
import { parameterCount } from '../../core/keymap.ts';
import { compileExample, goldenMeta } from '../helpers/parity.ts';
import { PIPELINE, tinyPipelineConfig } from '../helpers/vae-pipeline.ts';

describe('OpenSoraVAE_V1_2 (VideoAutoencoderPipeline) keymap', () => {
  const m = compileExample(PIPELINE, {});
  const keys = m.keymap!.tensors;

  it('released hpcai-tech/OpenSora-VAE-v1.2 model.safetensors: 393,341,015 floats (formats.md §1.3/§1.8)', () => {
    expect(parameterCount(m.keymap!, 'all')).toBe(393_341_015);
    // 248 SD-arch AutoencoderKL tensors + 267 VAE_Temporal_SD tensors + 2 buffers
    expect(Object.keys(keys).length).toBe(248 + 267 + 2);
  });

  it('uses the real key layout: spatial_vae.module.*, temporal_vae.*, scale, shift', () => {
    const top = new Set(Object.keys(keys).map((k) => (k.startsWith('spatial_vae.module.') ? 'spatial_vae.module' : k.startsWith('temporal_vae.') ? 'temporal_vae' : k)));
    expect([...top].sort()).toEqual(['scale', 'shift', 'spatial_vae.module', 'temporal_vae']);
    expect(keys['scale']).toMatchObject({ shape: [1, 4, 1, 1, 1], kind: 'buffer' });
    expect(keys['shift']).toMatchObject({ shape: [1, 4, 1, 1, 1], kind: 'buffer' });
    // formats.md §1.2/§1.3 spot checks
    expect(keys['spatial_vae.module.encoder.conv_in.weight']!.shape).toEqual([128, 3, 3, 3]);
    expect(keys['spatial_vae.module.encoder.conv_out.weight']!.shape).toEqual([8, 512, 3, 3]);
    expect(keys['spatial_vae.module.quant_conv.weight']!.shape).toEqual([8, 8, 1, 1]);
    expect(keys['spatial_vae.module.decoder.up_blocks.3.resnets.0.conv_shortcut.weight']!.shape).toEqual([128, 256, 1, 1]);
    expect(keys['spatial_vae.module.decoder.mid_block.attentions.0.to_out.0.weight']!.shape).toEqual([512, 512]);
    expect(keys['temporal_vae.encoder.conv_in.conv.weight']!.shape).toEqual([128, 4, 3, 3, 3]);
    expect(keys['temporal_vae.encoder.block_res_blocks.3.0.conv3.conv.weight']!.shape).toEqual([512, 256, 1, 1, 1]);
    expect(keys['temporal_vae.decoder.conv_blocks.2.conv.weight']!.shape).toEqual([1024, 512, 3, 3, 3]);
    expect(keys['temporal_vae.post_quant_conv.conv.weight']!.shape).toEqual([4, 4, 1, 1, 1]);
    expect(keys['temporal_vae.decoder.conv_out.conv.bias']!.shape).toEqual([4]);
    expect(keys['temporal_vae.decoder.conv_blocks.0.conv.weight']).toBeUndefined(); // nn.Identity
  });

  it('at the tiny config: exactly the golden sd_vae keys under spatial_vae.module. and vae_temporal keys under temporal_vae.', () => {
    const tiny = compileExample(PIPELINE, tinyPipelineConfig()).keymap!.tensors;
    const want = new Map<string, number[]>([
      ...goldenMeta('sd_vae').state_dict.map((e: { key: string; shape: number[] }) => [`spatial_vae.module.${e.key}`, e.shape] as const),
      ...goldenMeta('vae_temporal').state_dict.map((e: { key: string; shape: number[] }) => [`temporal_vae.${e.key}`, e.shape] as const),
      ['scale', [1, 4, 1, 1, 1]],
      ['shift', [1, 4, 1, 1, 1]],
    ]);
    expect(Object.keys(tiny).sort()).toEqual([...want.keys()].sort());
    for (const [k, s] of want) expect(tiny[k]!.shape, k).toEqual(s);
  });
});
