import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DType } from '../../core/dtype.ts';
import { contractHash, type Keymap, type KeymapEntry } from '../../core/keymap.ts';
import { collapseKeys } from '../../runtime/weights/key-tree.ts';
import { checkWeights, globToRegExp, loadReport, renderLoadReport } from '../../runtime/weights/load-report.ts';
import { writeSafetensors, type WriterTensor } from '../../runtime/formats/safetensors-writer.ts';
import { openWeights } from '../../runtime/weights/store.ts';

const FIX = join(import.meta.dirname, '../fixtures/ckpt');
const tmp = mkdtempSync(join(tmpdir(), 'sorac-lr-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function keymap(tensors: Record<string, [number[], DType?]>): Keymap {
  const t: Record<string, KeymapEntry> = {};
  let line = 1;
  for (const [k, [shape, dtype]] of Object.entries(tensors)) t[k] = { shape, dtype: dtype ?? 'f32', kind: 'param', source: `model.sora:${line++}:3` };
  return { format: 'sorac.keymap/1', model: 'Test', version: '1', config: {}, contract: contractHash(t), tensors: t };
}

/** The keymap that exactly matches tests/fixtures/ckpt sd (small_sd in make_fixtures.py). */
const SD: Record<string, [number[], DType?]> = {
  'x_embedder.proj.weight': [[8, 4, 1, 2, 2]],
  'x_embedder.proj.bias': [[8]],
  'blocks.0.attn.qkv.weight': [[24, 8]],
  'blocks.0.attn.qkv.bias': [[24]],
  'blocks.1.attn.qkv.weight': [[24, 8]],
  'blocks.1.attn.qkv.bias': [[24]],
  'y_embedder.y_embedding': [[5, 8]],
  't_embedder.freq': [[4], 'i64'],
  'half.weight': [[3, 2], 'f16'],
  'bf16.weight': [[2, 3], 'bf16'],
  mask: [[3], 'bool'],
  scalar: [[]],
  empty: [[0, 4]],
};

async function store(tensors: Record<string, [number[], DType?]>) {
  const p = join(tmp, `s${Math.random().toString(36).slice(2)}.safetensors`);
  const w: Record<string, WriterTensor> = {};
  for (const [k, [shape, dtype]] of Object.entries(tensors)) {
    const dt = dtype ?? 'f32';
    const n = shape.reduce((a, b) => a * b, 1) * ({ f32: 4, f16: 2, bf16: 2, i64: 8, bool: 1 } as Record<string, number>)[dt]!;
    w[k] = { dtype: dt, shape, data: new Uint8Array(n) };
  }
  await writeSafetensors(p, w);
  return openWeights(p);
}

describe('load report', () => {
  it('an exact match is ok, for safetensors and torch fixtures alike', async () => {
    for (const f of ['safetensors/model.safetensors', 'torch/sd_zip.pt', 'hf_sharded', 'train/epoch1-global_step200']) {
      const s = await openWeights(join(FIX, f));
      const r = loadReport(keymap(SD), s);
      expect(r.ok, f).toBe(true);
      expect(r.counts).toEqual({ expected: 13, found: 13, matched: 13 });
      expect(renderLoadReport(r)).toMatch(/result: OK/);
      await s.close();
    }
  });

  it('is strict by default; allowMissing globs permit deliberate partial loads', async () => {
    const km = keymap({ ...SD, 'final_layer.linear.weight': [[8, 8]], 'final_layer.linear.bias': [[8]] });
    const s = await openWeights(join(FIX, 'torch/sd_zip.pt'));
    const r = loadReport(km, s);
    expect(r.ok).toBe(false);
    expect(r.missing.map((m) => m.key)).toEqual(['final_layer.linear.weight', 'final_layer.linear.bias']);
    expect(r.missing[0]!.source).toBe('model.sora:14:3');
    expect(r.missing[0]!.expected).toEqual({ shape: [8, 8], dtype: 'f32' });
    const r2 = loadReport(km, s, { allowMissing: ['final_layer.*.*'] });
    expect(r2.ok).toBe(true);
    expect(r2.allowedMissing).toHaveLength(2);
    expect(globToRegExp('final_layer.*').test('final_layer.linear.weight')).toBe(false);
    expect(globToRegExp('final_layer.**').test('final_layer.linear.weight')).toBe(true);
    await s.close();
  });

  it('Conv2d patch embed [1152,4,2,2] vs Conv3d [1152,4,1,2,2] → unsqueeze(2), patch-embed-2d-to-3d', async () => {
    const s = await store({ 'x_embedder.proj.weight': [[1152, 4, 2, 2]] });
    const r = loadReport(keymap({ 'x_embedder.proj.weight': [[1152, 4, 1, 2, 2]] }), s);
    expect(r.ok).toBe(false);
    const m = r.shapeMismatch[0]!;
    expect(m).toMatchObject({ key: 'x_embedder.proj.weight', expected: { shape: [1152, 4, 1, 2, 2] }, found: { shape: [1152, 4, 2, 2] }, source: 'model.sora:1:3', migration: 'patch-embed-2d-to-3d' });
    expect(m.fix).toMatch(/unsqueeze\(2\)/);
    const text = renderLoadReport(r);
    expect(text).toMatch(/model \[1152,4,1,2,2\] vs checkpoint \[1152,4,2,2\]/);
    expect(text).toMatch(/patch-embed-2d-to-3d/);
    expect(text).not.toMatch(/\x1b\[/);
    await s.close();
  });

  it('caption table 120 → 200 rows → pad by repeating the last row (caption-table-resize)', async () => {
    const s = await store({ 'y_embedder.y_embedding': [[120, 4096]] });
    const r = loadReport(keymap({ 'y_embedder.y_embedding': [[200, 4096]] }), s);
    expect(r.shapeMismatch[0]!.fix).toMatch(/pad 120→200 rows by repeating the last row/);
    expect(r.shapeMismatch[0]!.migration).toBe('caption-table-resize');
    const s2 = await store({ 'y_embedder.y_embedding': [[300, 4096]] });
    const r2 = loadReport(keymap({ 'y_embedder.y_embedding': [[120, 4096]] }), s2);
    expect(r2.shapeMismatch[0]!.fix).toMatch(/truncate 300→120/);
    await s.close();
    await s2.close();
  });

  it('4 → 16 latent channels → vae-4ch-to-16ch', async () => {
    const s = await store({ 'x_embedder.proj.weight': [[1152, 4, 1, 2, 2]], 'final_layer.linear.weight': [[32, 1152]] });
    const r = loadReport(keymap({ 'x_embedder.proj.weight': [[1152, 16, 1, 2, 2]], 'final_layer.linear.weight': [[128, 1152]] }), s);
    expect(r.shapeMismatch.map((m) => m.migration)).toEqual(['vae-4ch-to-16ch', 'vae-4ch-to-16ch']);
    await s.close();
  });

  it('blocks. → spatial_blocks. across many keys → pixart-sigma-to-stdit3', async () => {
    const ck: Record<string, [number[]]> = {};
    const model: Record<string, [number[]]> = {};
    for (let i = 0; i < 28; i++)
      for (const p of ['attn.qkv.weight', 'attn.proj.weight', 'mlp.fc1.weight']) {
        ck[`blocks.${i}.${p}`] = [[4, 4]];
        model[`spatial_blocks.${i}.${p}`] = [[4, 4]];
      }
    const s = await store(ck);
    const r = loadReport(keymap(model), s);
    expect(r.ok).toBe(false);
    expect(r.suggestions).toEqual([expect.objectContaining({ migration: 'pixart-sigma-to-stdit3', keys: 84 })]);
    expect(r.missing.every((m) => m.migration === 'pixart-sigma-to-stdit3')).toBe(true);
    const text = renderLoadReport(r);
    // layer indices collapsed: one line per parameter kind
    expect(text).toMatch(/spatial_blocks\.\{0\.\.27\}\.attn\.qkv\.weight/);
    expect(text.split('\n').filter((l) => l.includes('spatial_blocks.{0..27}')).length).toBe(3);
    await s.close();
  });

  it('a module. prefix and keys nested under ema. are detected when the store is opened raw', async () => {
    const a = await openWeights(join(FIX, 'torch/module_prefix.bin'), { unwrap: false });
    const r = loadReport(keymap(SD), a);
    expect(r.suggestions[0]!.title).toMatch(/strip prefix "module\."/);
    expect(r.suggestions[0]!.keys).toBe(13);
    const b = await openWeights(join(FIX, 'torch/nested_ema.pt'), { unwrap: false });
    const r2 = loadReport(keymap(SD), b);
    expect(r2.suggestions[0]!.title).toMatch(/strip prefix "ema\."/);
    expect(r2.suggestions[0]!.how).toMatch(/--container ema/);
    // …and unwrapped by default, with a note
    const c = await openWeights(join(FIX, 'torch/nested_ema.pt'));
    const r3 = loadReport(keymap(SD), c);
    expect(r3.ok).toBe(true);
    expect(r3.notes).toContain("unwrapped ['ema']");
    for (const s of [a, b, c]) await s.close();
  });

  it('fused qkv vs q_proj/k_proj/v_proj in both directions', async () => {
    const s = await store({ 'blk.attn.q_proj.weight': [[8, 8]], 'blk.attn.k_proj.weight': [[8, 8]], 'blk.attn.v_proj.weight': [[8, 8]] });
    const r = loadReport(keymap({ 'blk.attn.qkv.weight': [[24, 8]] }), s);
    expect(r.missing[0]!.migration).toBe('mmdit-fuse-qkv');
    expect(r.suggestions.map((x) => x.migration)).toContain('mmdit-fuse-qkv');
    const s2 = await store({ 'blk.attn.qkv.weight': [[24, 8]] });
    const r2 = loadReport(keymap({ 'blk.attn.q_proj.weight': [[8, 8]], 'blk.attn.k_proj.weight': [[8, 8]], 'blk.attn.v_proj.weight': [[8, 8]] }), s2);
    expect(r2.unexpected[0]!.migration).toBe('mmdit-unfuse-qkv');
    await s.close();
    await s2.close();
  });

  it('dtype: float casts are reported but not fatal unless strictDtype; float vs int fails', async () => {
    const s = await store({ a: [[2], 'bf16'], b: [[2], 'f32'] });
    const r = loadReport(keymap({ a: [[2], 'f32'], b: [[2], 'i64'] }), s);
    expect(r.dtypeMismatch.map((d) => d.fix)).toEqual([expect.stringMatching(/cast bf16 → f32 at load \(lossless\)/), expect.stringMatching(/cannot stand in/)]);
    expect(r.ok).toBe(false);
    const r2 = loadReport(keymap({ a: [[2], 'f32'], b: [[2], 'f32'] }), s);
    expect(r2.ok).toBe(true);
    expect(loadReport(keymap({ a: [[2], 'f32'], b: [[2], 'f32'] }), s, { strictDtype: true }).ok).toBe(false);
    await s.close();
  });
});

describe('checkWeights (the one call for sorac check)', () => {
  it('ok / failed report / weights error', async () => {
    const ok = await checkWeights(keymap(SD), join(FIX, 'hf_sharded'));
    expect(ok.ok).toBe(true);
    expect(ok.text).toMatch(/result: OK/);
    const bad = await checkWeights(keymap({ ...SD, extra: [[1]] }), join(FIX, 'hf_sharded'));
    expect(bad).toMatchObject({ ok: false, code: 'SORA5010' });
    expect(bad.text).toMatch(/missing from the checkpoint \(1\)/);
    const err = await checkWeights(keymap(SD), join(FIX, 'torch/malicious.pt'));
    expect(err.error?.code).toBe('SORA5003');
    expect(err.text).toMatch(/SORA5003/);
  });
});

describe('key collapsing', () => {
  it('collapses numeric segments, keeps differing shapes apart', () => {
    const lines = [0, 1, 2, 3].map((i) => ({ key: `blocks.${i}.w`, detail: i === 2 ? '[9]' : '[4]' }));
    const c = collapseKeys(lines);
    expect(c.map((l) => `${l.pattern} ${l.detail}`)).toEqual(['blocks.{0,1,3}.w [4]', 'blocks.2.w [9]']);
    expect(collapseKeys([{ key: 'a.5.b', detail: '' }])[0]!.pattern).toBe('a.5.b');
  });
});
