import { describe, expect, it } from 'vitest';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { type Keymap, parameterCount } from '../../core/keymap.ts';
import { goldenConfig, goldenMeta } from '../helpers/parity.ts';
import { buildExample, exampleKeymap, kinds, shapes } from '../helpers/keymap.ts';

const FILE = 'examples/stdit2.sora';

const build = (values: Record<string, unknown>) => buildExample(FILE, values);
const keymap = (values: Record<string, unknown> = {}): Keymap => exampleKeymap(FILE, values);

type Entry = { shape: number[]; kind: 'param' | 'buffer' };

/**
 * The STDiT2 state_dict derived by hand from opensora/models/stdit/stdit2.py @ v1.1.0 (module
 * tree: pos_embed (PositionEmbedding2D, non-persistent inv_freq only), x_embedder, t_embedder,
 * t_block (C->6C), t_block_temp (C->3C), y_embedder, rope (RotaryEmbedding(C/heads): freqs
 * parameter [Dh/2]), blocks[depth] (attn, scale_shift_table, cross_attn, mlp, attn_temp,
 * scale_shift_table_temporal; q_norm/k_norm LlamaRMSNorm(Dh) when qk_norm), final_layer,
 * csize_embedder and ar_embedder (SizeEmbedder(C/3)), fl_embedder and fps_embedder (SizeEmbedder(C))).
 */
function expectedStateDict(over: Record<string, unknown> = {}): Record<string, Entry> {
  const c = {
    in_channels: 4, patch_size: [1, 2, 2], hidden_size: 1152, depth: 28, num_heads: 16, mlp_ratio: 4.0, pred_sigma: true,
    caption_channels: 4096, model_max_length: 200, qk_norm: true, ...over,
  } as { in_channels: number; patch_size: number[]; hidden_size: number; depth: number; num_heads: number; mlp_ratio: number; pred_sigma: boolean; caption_channels: number; model_max_length: number; qk_norm: boolean };
  const C = c.hidden_size;
  const dh = Math.floor(C / c.num_heads);
  const [pt, ph, pw] = c.patch_size as [number, number, number];
  const cout = c.pred_sigma ? 2 * c.in_channels : c.in_channels;
  const hid = Math.trunc(C * c.mlp_ratio);
  const sd: Record<string, Entry> = {};
  const p = (k: string, ...shape: number[]) => (sd[k] = { shape, kind: 'param' });
  const lin = (k: string, out: number, inp: number) => (p(`${k}.weight`, out, inp), p(`${k}.bias`, out));
  const attention = (k: string) => {
    lin(`${k}.qkv`, 3 * C, C);
    if (c.qk_norm) (p(`${k}.q_norm.weight`, dh), p(`${k}.k_norm.weight`, dh));
    lin(`${k}.proj`, C, C);
  };
  const sizeEmbedder = (k: string, d: number) => (lin(`${k}.mlp.0`, d, 256), lin(`${k}.mlp.2`, d, d));
  p('x_embedder.proj.weight', C, c.in_channels, pt, ph, pw);
  p('x_embedder.proj.bias', C);
  lin('t_embedder.mlp.0', C, 256);
  lin('t_embedder.mlp.2', C, C);
  lin('t_block.1', 6 * C, C);
  lin('t_block_temp.1', 3 * C, C);
  sd['y_embedder.y_embedding'] = { shape: [c.model_max_length, c.caption_channels], kind: 'buffer' };
  lin('y_embedder.y_proj.fc1', C, c.caption_channels);
  lin('y_embedder.y_proj.fc2', C, C);
  p('rope.freqs', Math.floor(dh / 2));
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    attention(`${b}.attn`);
    p(`${b}.scale_shift_table`, 6, C);
    lin(`${b}.cross_attn.q_linear`, C, C);
    lin(`${b}.cross_attn.kv_linear`, 2 * C, C);
    lin(`${b}.cross_attn.proj`, C, C);
    lin(`${b}.mlp.fc1`, hid, C);
    lin(`${b}.mlp.fc2`, C, hid);
    attention(`${b}.attn_temp`);
    p(`${b}.scale_shift_table_temporal`, 3, C);
  }
  p('final_layer.scale_shift_table', 2, C);
  lin('final_layer.linear', pt * ph * pw * cout, C);
  sizeEmbedder('csize_embedder', Math.floor(C / 3));
  sizeEmbedder('ar_embedder', Math.floor(C / 3));
  sizeEmbedder('fl_embedder', C);
  sizeEmbedder('fps_embedder', C);
  return sd;
}

function expectMatches(km: Keymap, sd: Record<string, Entry>) {
  expect(Object.keys(km.tensors).sort()).toEqual(Object.keys(sd).sort());
  expect(shapes(km)).toEqual(Object.fromEntries(Object.entries(sd).map(([k, e]) => [k, e.shape])));
  expect(kinds(km)).toEqual(Object.fromEntries(Object.entries(sd).map(([k, e]) => [k, e.kind])));
}

const numel = (sd: Record<string, Entry>, kind: 'param' | 'buffer') => Object.values(sd).filter((e) => e.kind === kind).reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);

describe('STDiT2 (Open-Sora 1.1) keymap', () => {
  it('equals the golden STDiT2 state_dict exactly (keys, shapes, param/buffer) at the golden config', () => {
    const km = keymap(goldenConfig('stdit2'));
    const meta = goldenMeta('stdit2');
    const golden = meta.state_dict as { key: string; shape: number[]; kind: string }[];
    expect(Object.keys(km.tensors).sort()).toEqual(golden.map((e) => e.key).sort());
    expect(shapes(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.shape])));
    expect(kinds(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.kind === 'buffer' ? 'buffer' : 'param'])));
    expect(parameterCount(km)).toBe(meta.num_parameters);
    expect(km.model).toBe('STDiT2');
    expect(km.version).toBe('1.1');
  });

  it('has 706 parameter keys and 767,452,100 parameters at the released STDiT2-XL/2 config (stdit.md §6)', () => {
    const km = keymap();
    expect(Object.values(km.tensors).filter((e) => e.kind === 'param').length).toBe(706);
    expect(parameterCount(km)).toBe(767_452_100);
    const s = shapes(km);
    expect(s['y_embedder.y_embedding']).toEqual([200, 4096]);
    expect(parameterCount(km, 'buffer')).toBe(819_200);
    expect(s['rope.freqs']).toEqual([36]);
    expect(s['t_block_temp.1.weight']).toEqual([3456, 1152]);
    expect(s['csize_embedder.mlp.0.weight']).toEqual([384, 256]);
    expect(s['fl_embedder.mlp.2.weight']).toEqual([1152, 1152]);
    expect(s['blocks.27.attn_temp.k_norm.weight']).toEqual([72]);
    expect(s['blocks.0.scale_shift_table_temporal']).toEqual([3, 1152]);
    expectMatches(km, expectedStateDict());
    // per-block 26,572,320 parameters with qk_norm (stdit.md §6)
    const blk = Object.entries(km.tensors).filter(([k]) => k.startsWith('blocks.0.')).reduce((n, [, e]) => n + e.shape.reduce((a, b) => a * b, 1), 0);
    expect(blk).toBe(26_572_320);
    expect(km.config).toMatchObject({ input_sq_size: 512, qk_norm: true, qk_norm_legacy: true, model_max_length: 200, input_size: [null, null, null] });
  });

  const variants: [string, Record<string, unknown>][] = [
    ['depth 3', { depth: 3 }],
    ['qk_norm off (class default)', { qk_norm: false }],
    ['qk_norm_legacy off: no key change', { qk_norm_legacy: false }],
    ['8 heads, hidden 384', { num_heads: 8, hidden_size: 384 }],
    ['hidden 120, 5 heads (head dim 24 -> 12 freqs), mlp_ratio 2.5', { hidden_size: 120, num_heads: 5, mlp_ratio: 2.5 }],
    ['hidden 84, 4 heads (odd head dim 21 -> 10 freqs)', { hidden_size: 84, num_heads: 4 }],
    ['patch (2,4,4), no pred_sigma, 16 channels', { patch_size: [2, 4, 4], pred_sigma: false, in_channels: 16 }],
    ['class-default text length 120', { model_max_length: 120 }],
  ];
  for (const [name, over] of variants) {
    it(`matches the hand-derived state_dict: ${name}`, () => {
      const km = keymap(over);
      const sd = expectedStateDict(over);
      expectMatches(km, sd);
      const depth = (over.depth as number | undefined) ?? 28;
      const qk = (over.qk_norm as boolean | undefined) ?? true;
      expect(Object.values(km.tensors).filter((e) => e.kind === 'param').length).toBe(34 + (20 + (qk ? 4 : 0)) * depth);
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

  it('accepts an HF config.json (STDiT2Config) with extra keys as warnings only', () => {
    const hf = { ...goldenConfig('stdit2'), architectures: ['STDiT2'], model_type: 'STDiT2', torch_dtype: 'float32', transformers_version: '4.36.2', enable_flashattn: true, input_size: [null, null, null] };
    const m = compile({ file: FILE, host: fsHost, config: { file: { path: 'config.json', values: hf } } });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const w = m.diagnostics.find((d) => d.code === 'SORA7004');
    expect(w?.severity).toBe('warning');
    expect(w?.message).toMatch(/ignoring 3 keys .*: architectures, model_type, transformers_version$/);
    // upstream parameters the model fixes (result-neutral) are info lines, not warnings
    expect(m.diagnostics.filter((d) => d.code === 'SORA7011').map((d) => [d.severity, d.message.match(/ignoring (\w+)=/)?.[1]]).sort()).toEqual([['info', 'enable_flashattn'], ['info', 'torch_dtype']]);
    expect(Object.keys(m.keymap!.tensors).length).toBe(83);
  });

  it('rejects configs PyTorch rejects', () => {
    const bad = (values: Record<string, unknown>) => build(values).diagnostics.filter((d) => d.severity === 'error');
    expect(bad({ hidden_size: 1000, num_heads: 8 }).length).toBeGreaterThan(0); // not divisible by 3
    expect(bad({ hidden_size: 1152, num_heads: 10 }).length).toBeGreaterThan(0);
    expect(bad({ freeze: 'everything' }).length).toBeGreaterThan(0);
  });
});
