import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import { type Keymap, parameterCount } from '../../core/keymap.ts';
import { dirConfig } from '../helpers/parity.ts';
import { buildExample, exampleKeymap, kinds, shapes } from '../helpers/keymap.ts';

const FILE = 'examples/stdit3_v13.sora';
const EXTRA = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'stdit3_v13');

const build = (values: Record<string, unknown>) => buildExample(FILE, values);
const keymap = (values: Record<string, unknown> = {}): Keymap => exampleKeymap(FILE, values);

/** The released OpenSora-STDiT-v4 model kwargs (configs/opensora-v1-3/inference/t2v.py @ v1.3, STDiT3-XL/2). */
const RELEASED = { kernel_size: [8, 8, -1], use_spatial_rope: true, qk_norm: true };

type Entry = { shape: number[]; kind: 'param' | 'buffer' };

/**
 * The STDiT3 state_dict derived by hand from opensora/models/stdit/stdit3.py @ v1.3: v1.2's tree
 * (rope, x_embedder, t_embedder, fps_embedder, t_block, y_embedder, spatial_blocks, temporal_blocks,
 * final_layer) plus x_embedder_cond / x_embedder_cond_mask (PatchEmbed3D, always created); rope dim
 * Dh // 3 with kernel_size; no temporal_blocks with skip_temporal.
 */
function expectedStateDict(over: Record<string, unknown> = {}): Record<string, Entry> {
  const c = {
    in_channels: 16, patch_size: [1, 2, 2], hidden_size: 1152, depth: 28, num_heads: 16, mlp_ratio: 4.0, pred_sigma: true,
    caption_channels: 4096, model_max_length: 300, qk_norm: true, kernel_size: null, skip_temporal: false, ...over,
  } as { in_channels: number; patch_size: number[]; hidden_size: number; depth: number; num_heads: number; mlp_ratio: number; pred_sigma: boolean; caption_channels: number; model_max_length: number; qk_norm: boolean; kernel_size: number[] | null; skip_temporal: boolean };
  const C = c.hidden_size;
  const dh = Math.floor(C / c.num_heads);
  const [pt, ph, pw] = c.patch_size as [number, number, number];
  const cout = c.pred_sigma ? 2 * c.in_channels : c.in_channels;
  const hid = Math.trunc(C * c.mlp_ratio);
  const sd: Record<string, Entry> = {};
  const p = (k: string, ...shape: number[]) => (sd[k] = { shape, kind: 'param' });
  const lin = (k: string, out: number, inp: number) => (p(`${k}.weight`, out, inp), p(`${k}.bias`, out));
  const block = (b: string) => {
    lin(`${b}.attn.qkv`, 3 * C, C);
    if (c.qk_norm) (p(`${b}.attn.q_norm.weight`, dh), p(`${b}.attn.k_norm.weight`, dh));
    lin(`${b}.attn.proj`, C, C);
    lin(`${b}.cross_attn.q_linear`, C, C);
    lin(`${b}.cross_attn.kv_linear`, 2 * C, C);
    lin(`${b}.cross_attn.proj`, C, C);
    lin(`${b}.mlp.fc1`, hid, C);
    lin(`${b}.mlp.fc2`, C, hid);
    p(`${b}.scale_shift_table`, 6, C);
  };
  const rotDim = c.kernel_size ? Math.floor(dh / 3) : dh;
  p('rope.freqs', Math.floor(rotDim / 2));
  for (const k of ['x_embedder', 'x_embedder_cond', 'x_embedder_cond_mask']) (p(`${k}.proj.weight`, C, c.in_channels, pt, ph, pw), p(`${k}.proj.bias`, C));
  lin('t_embedder.mlp.0', C, 256);
  lin('t_embedder.mlp.2', C, C);
  lin('fps_embedder.mlp.0', C, 256);
  lin('fps_embedder.mlp.2', C, C);
  lin('t_block.1', 6 * C, C);
  sd['y_embedder.y_embedding'] = { shape: [c.model_max_length, c.caption_channels], kind: 'buffer' };
  lin('y_embedder.y_proj.fc1', C, c.caption_channels);
  lin('y_embedder.y_proj.fc2', C, C);
  for (let i = 0; i < c.depth; i++) block(`spatial_blocks.${i}`);
  if (!c.skip_temporal) for (let i = 0; i < c.depth; i++) block(`temporal_blocks.${i}`);
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
const errors = (m: { diagnostics: readonly { severity: string; code: string; message: string }[] }) => m.diagnostics.filter((d) => d.severity === 'error');

describe('STDiT3 v1.3 (Open-Sora 1.3, OpenSora-STDiT-v4) keymap', () => {
  const cases = readdirSync(EXTRA).sort();
  it('has golden cases from the upstream code at tag v1.3', () => expect(cases.length).toBeGreaterThanOrEqual(2));

  for (const name of cases) {
    it(`equals the upstream v1.3 state_dict exactly (keys, shapes, param/buffer, count) at ${name}`, () => {
      const meta = JSON.parse(readFileSync(join(EXTRA, name, 'meta.json'), 'utf8'));
      expect(meta.tag).toBe('v1.3');
      const km = keymap(dirConfig(join(EXTRA, name)));
      const golden = meta.state_dict as { key: string; shape: number[]; kind: string }[];
      expect(Object.keys(km.tensors).sort()).toEqual(golden.map((e) => e.key).sort());
      expect(shapes(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.shape])));
      expect(kinds(km)).toEqual(Object.fromEntries(golden.map((e) => [e.key, e.kind === 'buffer' ? 'buffer' : 'param'])));
      expect(parameterCount(km)).toBe(meta.num_parameters);
      expect(km.model).toBe('STDiT3');
      expect(km.version).toBe('1.3');
    });
  }

  it('has 976 parameter keys and 1,207,959,692 parameters at the released config (t2v.py: kernel_size (8,8,-1), use_spatial_rope)', () => {
    // upstream STDiT3-XL/2 at v1.3 with these kwargs: 1,207,959,692 parameters, 976 parameters + 1 buffer
    // (counted from the upstream module at depth 1 and 2, extrapolated to 28; stdit.md §6)
    const km = keymap(RELEASED);
    expect(Object.values(km.tensors).filter((e) => e.kind === 'param').length).toBe(976);
    expect(parameterCount(km)).toBe(1_207_959_692);
    expect(parameterCount(km, 'buffer')).toBe(300 * 4096);
    const s = shapes(km);
    expect(s['rope.freqs']).toEqual([12]);
    expect(s['x_embedder.proj.weight']).toEqual([1152, 16, 1, 2, 2]);
    expect(s['x_embedder_cond_mask.proj.weight']).toEqual([1152, 16, 1, 2, 2]);
    expect(s['final_layer.linear.weight']).toEqual([128, 1152]);
    expect(s['temporal_blocks.27.attn.k_norm.weight']).toEqual([72]);
    expectMatches(km, expectedStateDict(RELEASED));
    expect(km.config).toMatchObject({ kernel_size: [8, 8, -1], use_spatial_rope: true, skip_temporal: false, in_channels: 16, input_sq_size: 512 });
  });

  const variants: [string, Record<string, unknown>][] = [
    ['class defaults (no kernel: rope dim Dh = 72)', {}],
    ['skip_temporal (train/adapt.py): no temporal_blocks', { ...RELEASED, skip_temporal: true }],
    ['depth 3, 8 heads, hidden 384, kernel (4,4,2)', { depth: 3, num_heads: 8, hidden_size: 384, kernel_size: [4, 4, 2] }],
    ['hidden 120, 4 heads (Dh 30, rope dim 10), qk_norm off, mlp_ratio 2.5', { hidden_size: 120, num_heads: 4, qk_norm: false, mlp_ratio: 2.5, kernel_size: [8, 8, -1] }],
    ['patch (2,4,4), no pred_sigma, 4 channels', { patch_size: [2, 4, 4], pred_sigma: false, in_channels: 4 }],
  ];
  for (const [name, over] of variants) {
    it(`matches the hand-derived state_dict: ${name}`, () => {
      const km = keymap(over);
      const sd = expectedStateDict(over);
      expectMatches(km, sd);
      expect(parameterCount(km)).toBe(numel(sd, 'param'));
      expect(parameterCount(km, 'buffer')).toBe(numel(sd, 'buffer'));
    });
  }

  it('skip_temporal at the released width: 612,800,204 parameters in 500 keys (upstream count)', () => {
    const km = keymap({ ...RELEASED, skip_temporal: true });
    expect(parameterCount(km)).toBe(612_800_204);
    expect(Object.values(km.tensors).filter((e) => e.kind === 'param').length).toBe(500);
    expect(Object.keys(km.tensors).some((k) => k.startsWith('temporal_blocks.'))).toBe(false);
  });

  it('traces the forward at every variant, with and without the optional inputs', () => {
    for (const [name, over] of variants) {
      const m = build({ ...over, depth: 1 });
      const optional = m.entries.find((e) => e.name === 'forward')!.inputs.filter((i) => i.optional).map((i) => i.name);
      expect(optional.sort()).toEqual(['cond', 'cond_mask', 'mask', 'mask_index', 'x_mask', 'y_null']);
      for (const absent of [optional, []]) {
        const tr = traceEntry(m, 'forward', { absent: new Set(absent) });
        expect(tr.diagnostics.filter((d) => d.severity === 'error').map((d) => `${name}: ${d.code} ${d.message}`)).toEqual([]);
        expect(tr.graph).toBeDefined();
      }
    }
  });

  it('refuses mask_index without cond, cond_mask and y_null (upstream fails on None there)', () => {
    const m = build({ ...RELEASED, depth: 1 });
    const tr = traceEntry(m, 'forward', { absent: new Set(['y_null']) });
    const e = tr.diagnostics.filter((d) => d.severity === 'error');
    expect(e.map((d) => d.code)).toContain('SORA3009');
    expect(e.map((d) => d.message).join('\n')).toMatch(/mask_index .* needs cond, cond_mask and y_null/);
  });

  it('rejects configs the upstream constructor rejects', () => {
    const bad = (values: Record<string, unknown>) => errors(build(values)).map((d) => `${d.code} ${d.message}`).join('\n');
    expect(bad({ use_spatial_rope: true })).toMatch(/SORA3009 .*Spatial rope requires kernel_size/);
    expect(bad({ kernel_size: [8, -1, -1] })).toMatch(/SORA3009 .*kernel_size\[0\] and kernel_size\[1\] must be positive/);
    expect(bad({ kernel_size: [8, 8, 0] })).toMatch(/SORA3009 .*positive or -1/);
    expect(bad({ kernel_size: [8, 8] })).toMatch(/SORA3009 .*one entry per axis/);
    // Dh 6 with a kernel: RotaryEmbedding(dim=2) divides by zero in its constructor
    expect(bad({ hidden_size: 24, num_heads: 4, kernel_size: [8, 8, -1] })).toMatch(/SORA3009 .*RotaryEmbedding\(dim=2\)/);
    // Dh 4: torch.chunk(3) gives 2 pieces, rotate_3d cannot unpack 3
    expect(bad({ hidden_size: 32, num_heads: 8, kernel_size: [8, 8, -1] })).toMatch(/SORA3009 .*3 chunks/);
    expect(bad({ skip_y_embedder: true })).toMatch(/SORA7011 .*skip_y_embedder.*pre-projected/);
  });
});
