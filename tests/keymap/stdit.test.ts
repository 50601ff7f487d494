import { describe, expect, it } from 'vitest';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { type Keymap, parameterCount } from '../../core/keymap.ts';
import { goldenConfig, goldenMeta } from '../helpers/parity.ts';
import { buildExample, exampleKeymap, kinds, shapes } from '../helpers/keymap.ts';

const FILE = 'examples/stdit.sora';

const build = (values: Record<string, unknown>) => buildExample(FILE, values);
const keymap = (values: Record<string, unknown> = {}): Keymap => exampleKeymap(FILE, values);

type Entry = { shape: number[]; kind: 'param' | 'buffer' };

/**
 * The STDiT state_dict derived by hand from opensora/models/stdit/stdit.py @ v1.0.0 (module
 * tree: buffers pos_embed, pos_embed_temporal; x_embedder (PatchEmbed3D, Conv3d), t_embedder,
 * t_block (SiLU, Linear C->6C), y_embedder (CaptionEmbedder: y_proj Mlp + y_embedding buffer),
 * blocks[depth] (attn, cross_attn, mlp, scale_shift_table, attn_temp), final_layer).
 */
function expectedStateDict(over: Record<string, unknown> = {}): Record<string, Entry> {
  const c = {
    input_size: [16, 32, 32], in_channels: 4, patch_size: [1, 2, 2], hidden_size: 1152, depth: 28, num_heads: 16,
    mlp_ratio: 4.0, pred_sigma: true, caption_channels: 4096, model_max_length: 120, ...over,
  } as { input_size: number[]; in_channels: number; patch_size: number[]; hidden_size: number; depth: number; mlp_ratio: number; pred_sigma: boolean; caption_channels: number; model_max_length: number };
  const C = c.hidden_size;
  const [pt, ph, pw] = c.patch_size as [number, number, number];
  const cout = c.pred_sigma ? 2 * c.in_channels : c.in_channels;
  const nt = Math.floor(c.input_size[0]! / pt);
  const ns = Math.floor(c.input_size[1]! / ph) * Math.floor(c.input_size[2]! / pw);
  const hid = Math.trunc(C * c.mlp_ratio);
  const sd: Record<string, Entry> = {};
  const p = (k: string, ...shape: number[]) => (sd[k] = { shape, kind: 'param' });
  const lin = (k: string, out: number, inp: number) => (p(`${k}.weight`, out, inp), p(`${k}.bias`, out));
  sd['pos_embed'] = { shape: [1, ns, C], kind: 'buffer' };
  sd['pos_embed_temporal'] = { shape: [1, nt, C], kind: 'buffer' };
  p('x_embedder.proj.weight', C, c.in_channels, pt, ph, pw);
  p('x_embedder.proj.bias', C);
  lin('t_embedder.mlp.0', C, 256);
  lin('t_embedder.mlp.2', C, C);
  lin('t_block.1', 6 * C, C);
  sd['y_embedder.y_embedding'] = { shape: [c.model_max_length, c.caption_channels], kind: 'buffer' };
  lin('y_embedder.y_proj.fc1', C, c.caption_channels);
  lin('y_embedder.y_proj.fc2', C, C);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    lin(`${b}.attn.qkv`, 3 * C, C);
    lin(`${b}.attn.proj`, C, C);
    lin(`${b}.cross_attn.q_linear`, C, C);
    lin(`${b}.cross_attn.kv_linear`, 2 * C, C);
    lin(`${b}.cross_attn.proj`, C, C);
    lin(`${b}.mlp.fc1`, hid, C);
    lin(`${b}.mlp.fc2`, C, hid);
    p(`${b}.scale_shift_table`, 6, C);
    lin(`${b}.attn_temp.qkv`, 3 * C, C);
    lin(`${b}.attn_temp.proj`, C, C);
  }
  p('final_layer.scale_shift_table', 2, C);
  lin('final_layer.linear', pt * ph * pw * cout, C);
  return sd;
}

function expectMatches(km: Keymap, sd: Record<string, Entry>) {
  expect(Object.keys(km.tensors).sort()).toEqual(Object.keys(sd).sort());
  expect(shapes(km)).toEqual(Object.fromEntries(Object.entries(sd).map(([k, e]) => [k, e.shape])));
  expect(kinds(km)).toEqual(Object.fromEntries(Object.entries(sd).map(([k, e]) => [k, e.kind])));
}

const numel = (sd: Record<string, Entry>, kind: 'param' | 'buffer') => Object.values(sd).filter((e) => e.kind === kind).reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);

describe('STDiT (Open-Sora 1.0) keymap', () => {
  it('equals the golden STDiT state_dict exactly (keys, shapes, param/buffer) at the golden config', () => {
    const km = keymap(goldenConfig('stdit'));
    const meta = goldenMeta('stdit');
    const golden = meta.state_dict as { key: string; shape: number[]; kind: string }[];
    expect(Object.keys(km.tensors).sort()).toEqual(golden.map((e) => e.key).sort());
    expect(shapes(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.shape])));
    expect(kinds(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.kind === 'buffer' ? 'buffer' : 'param'])));
    expect(Object.entries(km.tensors).filter(([, e]) => e.kind === 'buffer').map(([k]) => k).sort()).toEqual([...meta.persistent_buffers].sort());
    expect(parameterCount(km)).toBe(meta.num_parameters);
    expect(km.model).toBe('STDiT');
    expect(km.version).toBe('1.0');
  });

  it('has 547 parameter keys and 759,620,768 parameters at the STDiT-XL/2 defaults (stdit.md §6)', () => {
    const km = keymap();
    const params = Object.values(km.tensors).filter((e) => e.kind === 'param');
    expect(params.length).toBe(547);
    expect(parameterCount(km)).toBe(759_620_768);
    // buffers: y_embedding 120 x 4096, pos_embed 256 x 1152 (16x256x256: 32/2 squared), pos_embed_temporal 16 x 1152
    const s = shapes(km);
    expect(s['y_embedder.y_embedding']).toEqual([120, 4096]);
    expect(s['pos_embed']).toEqual([1, 256, 1152]);
    expect(s['pos_embed_temporal']).toEqual([1, 16, 1152]);
    expect(parameterCount(km, 'buffer')).toBe(120 * 4096 + 256 * 1152 + 16 * 1152);
    expect(s['x_embedder.proj.weight']).toEqual([1152, 4, 1, 2, 2]);
    expect(s['blocks.27.attn_temp.qkv.weight']).toEqual([3456, 1152]);
    expect(s['final_layer.linear.weight']).toEqual([32, 1152]);
    expectMatches(km, expectedStateDict());
    // 15 + 19 per block parameter tensors; per-block 26,568,576 parameters (stdit.md §6)
    const blk = Object.entries(km.tensors).filter(([k]) => k.startsWith('blocks.0.')).reduce((n, [, e]) => n + e.shape.reduce((a, b) => a * b, 1), 0);
    expect(blk).toBe(26_568_576);
    // the config echoes the constructor kwargs
    expect(km.config).toMatchObject({ input_size: [16, 32, 32], space_scale: 1.0, time_scale: 1.0, model_max_length: 120, enable_flashattn: false, freeze: null });
  });

  const variants: [string, Record<string, unknown>][] = [
    ['depth 3', { depth: 3 }],
    ['8 heads, hidden 256', { num_heads: 8, hidden_size: 256 }],
    ['hidden 96, 3 heads, mlp_ratio 2.5', { hidden_size: 96, num_heads: 3, mlp_ratio: 2.5 }],
    ['patch (2,4,4), 64x512x512 latent', { patch_size: [2, 4, 4], input_size: [64, 64, 64] }],
    ['patch (1,1,1), no pred_sigma, 16 channels', { patch_size: [1, 1, 1], pred_sigma: false, in_channels: 16, input_size: [4, 8, 6] }],
    ['non-divisible input_size (floor), CLIP captions', { input_size: [5, 33, 30], patch_size: [2, 2, 2], caption_channels: 512, model_max_length: 77 }],
  ];
  for (const [name, over] of variants) {
    it(`matches the hand-derived state_dict: ${name}`, () => {
      const km = keymap(over);
      const sd = expectedStateDict(over);
      expectMatches(km, sd);
      const depth = (over.depth as number | undefined) ?? 28;
      expect(Object.values(km.tensors).filter((e) => e.kind === 'param').length).toBe(15 + 19 * depth);
      expect(parameterCount(km)).toBe(numel(sd, 'param'));
      expect(parameterCount(km, 'buffer')).toBe(numel(sd, 'buffer'));
    });
  }

  it('traces the forward at every variant, with and without the optional inputs', () => {
    for (const [name, over] of variants) {
      const m = build({ ...over, depth: 1 });
      const optional = m.entries.find((e) => e.name === 'forward')!.inputs.filter((i) => i.optional).map((i) => i.name);
      for (const absent of [optional, []]) {
        const tr = traceEntry(m, 'forward', { absent: new Set(absent) });
        expect(tr.diagnostics.filter((d) => d.severity === 'error').map((d) => `${name}: ${d.code} ${d.message}`)).toEqual([]);
        expect(tr.graph).toBeDefined();
      }
    }
  });

  it('closed-form parameter count: 4C^2+... per block', () => {
    // per block: attn 4C^2+4C, cross_attn 4C^2+4C, mlp 2*C*h+h+C, scale_shift 6C, attn_temp 4C^2+4C
    for (const [C, heads, depth] of [[64, 4, 2], [384, 6, 5], [1152, 16, 28]] as const) {
      const km = keymap({ hidden_size: C, num_heads: heads, depth });
      const h = 4 * C;
      const block = 3 * (4 * C * C + 4 * C) + (2 * C * h + h + C) + 6 * C;
      const rest = C * 4 * 4 + C + (256 * C + C + C * C + C) + (6 * C * C + 6 * C) + (4096 * C + C + C * C + C) + 2 * C + (32 * C + 32);
      expect(parameterCount(km)).toBe(depth * block + rest);
    }
  });

  it('accepts a constructor-kwargs JSON file with result-neutral upstream parameters (info lines)', () => {
    const m = compile({ file: FILE, host: fsHost, config: { file: { path: 'stdit.json', values: { ...goldenConfig('stdit'), dtype: 'bf16', from_pretrained: 'OpenSora-v1-HQ-16x256x256.pth' } } } });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    // dtype and from_pretrained are upstream parameters the model fixes (any value): info, not a warning
    expect(m.diagnostics.filter((d) => d.code === 'SORA7011' && d.severity === 'info').map((d) => d.message.match(/ignoring (\w+)=/)?.[1])).toEqual(['dtype', 'from_pretrained']);
    expect(m.diagnostics.filter((d) => d.code === 'SORA7004')).toEqual([]);
    expect(Object.keys(m.keymap!.tensors).length).toBe(56);
  });

  it('rejects configs PyTorch rejects', () => {
    const bad = (values: Record<string, unknown>) => build(values).diagnostics.filter((d) => d.severity === 'error');
    expect(bad({ hidden_size: 100, num_heads: 16 }).length).toBeGreaterThan(0);
    expect(bad({ freeze: 'everything' }).length).toBeGreaterThan(0);
    expect(bad({ enable_sequence_parallelism: true }).length).toBeGreaterThan(0);
  });
});
