import { describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { type Keymap, parameterCount } from '../../core/keymap.ts';
import { goldenConfig, goldenMeta } from '../helpers/parity.ts';
import { buildExample, exampleKeymap, shapes } from '../helpers/keymap.ts';

const FILE = 'examples/mmdit.sora';

const build = (values: Record<string, unknown>) => buildExample(FILE, values);
const keymap = (values: Record<string, unknown> = {}): Keymap => exampleKeymap(FILE, values);

describe('MMDiT (Open-Sora 2.0) keymap', () => {
  it('equals the golden MMDiTModel state_dict exactly (keys, shapes) at the golden config', () => {
    const km = keymap(goldenConfig('mmdit'));
    const golden = goldenMeta('mmdit').state_dict as { key: string; shape: number[]; kind: string }[];
    const want = Object.fromEntries(golden.map((e) => [e.key, e.shape]));
    expect(Object.keys(km.tensors).sort()).toEqual(Object.keys(want).sort());
    expect(shapes(km)).toEqual(want);
    for (const e of Object.values(km.tensors)) {
      expect(e.kind).toBe('param');
      expect(e.dtype).toBe('f32');
    }
    expect(parameterCount(km)).toBe(goldenMeta('mmdit').num_parameters);
    expect(km.model).toBe('MMDiT');
    expect(km.version).toBe('2.0');
  });

  it('has 1082 keys and 11,891,390,528 parameters at the released Open-Sora 2.0 defaults (256px.py)', () => {
    const km = keymap();
    expect(Object.keys(km.tensors).length).toBe(1082);
    expect(parameterCount(km)).toBe(11_891_390_528);
    const s = shapes(km);
    expect(s['img_in.weight']).toEqual([3072, 64]);
    expect(s['cond_in.weight']).toEqual([3072, 68]);
    expect(s['txt_in.weight']).toEqual([3072, 4096]);
    expect(s['vector_in.in_layer.weight']).toEqual([3072, 768]);
    expect(s['double_blocks.18.img_mod.lin.weight']).toEqual([18432, 3072]);
    expect(s['double_blocks.0.txt_attn.q_proj.bias']).toEqual([3072]);
    expect(s['double_blocks.0.img_attn.norm.query_norm.scale']).toEqual([128]);
    expect(s['single_blocks.37.v_mlp.weight']).toEqual([15360, 3072]);
    expect(s['single_blocks.0.linear2.weight']).toEqual([3072, 15360]);
    expect(s['single_blocks.0.modulation.lin.weight']).toEqual([9216, 3072]);
    expect(s['final_layer.linear.weight']).toEqual([64, 3072]);
    expect(s['final_layer.adaLN_modulation.1.weight']).toEqual([6144, 3072]);
    expect(s['guidance_in.in_layer.weight']).toBeUndefined();
    expect(s['single_blocks.0.linear1.weight']).toBeUndefined();
    expect(s['double_blocks.0.img_attn.qkv.weight']).toBeUndefined();
    // the config echoes MMDiTConfig's field names
    expect(km.config).toMatchObject({ in_channels: 64, axes_dim: [16, 56, 56], use_liger_rope: true, fused_qkv: false, cond_embed: true, guidance_embed: false });
  });

  it('Flux-dev layout (fused qkv, guidance, no cond): 780 keys, 11,901,408,320 parameters', () => {
    const km = keymap({ fused_qkv: true, guidance_embed: true, cond_embed: false, use_liger_rope: false });
    expect(Object.keys(km.tensors).length).toBe(780);
    expect(parameterCount(km)).toBe(11_901_408_320);
    const s = shapes(km);
    expect(s['double_blocks.0.img_attn.qkv.weight']).toEqual([9216, 3072]);
    expect(s['double_blocks.0.img_attn.qkv.bias']).toEqual([9216]);
    expect(s['single_blocks.0.linear1.weight']).toEqual([21504, 3072]);
    expect(s['guidance_in.out_layer.weight']).toEqual([3072, 3072]);
    expect(s['cond_in.weight']).toBeUndefined();
    expect(s['double_blocks.0.img_attn.q_proj.weight']).toBeUndefined();
    expect(s['single_blocks.0.v_mlp.weight']).toBeUndefined();
  });

  it('high_compression (in_channels 128, patch_size 1): 1082 keys, 11,891,971,200 parameters', () => {
    const km = keymap({ in_channels: 128, patch_size: 1 });
    expect(Object.keys(km.tensors).length).toBe(1082);
    expect(parameterCount(km)).toBe(11_891_971_200);
    expect(shapes(km)['cond_in.weight']).toEqual([3072, 129]);
    expect(shapes(km)['final_layer.linear.weight']).toEqual([128, 3072]);
  });

  it('qkv_bias=false drops only the double-block q/k/v biases', () => {
    const a = keymap();
    const b = keymap({ qkv_bias: false });
    const gone = Object.keys(a.tensors).filter((k) => !(k in b.tensors));
    expect(gone.length).toBe(19 * 2 * 3);
    expect(gone.every((k) => /^double_blocks\.\d+\.(img|txt)_attn\.[qkv]_proj\.bias$/.test(k))).toBe(true);
  });

  it('accepts the full constructor kwargs (from_pretrained, cache_dir, grad_ckpt_settings) as config', () => {
    const km = keymap({ ...goldenConfig('mmdit'), from_pretrained: './ckpts/Open_Sora_v2.safetensors', grad_ckpt_settings: [100, 100] });
    expect(Object.keys(km.tensors).length).toBe(106);
  });

  it('rejects inconsistent configs with a located diagnostic', () => {
    const badHeads = build({ num_heads: 7 });
    expect(badHeads.diagnostics.some((d) => d.severity === 'error' && /divisible by num_heads/.test(d.message))).toBe(true);
    const badAxes = build({ axes_dim: [16, 56, 48] });
    expect(badAxes.diagnostics.some((d) => d.severity === 'error' && /sum\(axes_dim\)/.test(d.message))).toBe(true);
  });
});
