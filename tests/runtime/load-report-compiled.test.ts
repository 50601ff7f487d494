/**
 * The load report against a real compiled keymap (examples/stdit3.sora at the golden config) and
 * the golden Open-Sora weights — plus a PixArt-style variant of them (`blocks.` instead of
 * `spatial_blocks.`, Conv2d patch embed, 120-row caption table) that should be explained by the
 * migrations that fix it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileExample, goldenConfig } from '../helpers/parity.ts';
import { checkWeights, loadReport } from '../../runtime/weights/load-report.ts';
import { writeSafetensors, type WriterTensor } from '../../runtime/formats/safetensors-writer.ts';
import { openWeights } from '../../runtime/weights/store.ts';

const GOLD = 'tests/fixtures/golden/stdit3/a';
const tmp = mkdtempSync(join(tmpdir(), 'sorac-lrc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('load report with a compiled STDiT3 keymap', () => {
  const km = compileExample('examples/stdit3.sora', goldenConfig('stdit3', 'a')).keymap!;

  it('the golden f32 checkpoint matches exactly; the bf16 one differs only by a lossless cast', async () => {
    const f32 = await checkWeights(km, join(GOLD, 'model.safetensors'));
    expect(f32.ok).toBe(true);
    expect(f32.report!.dtypeMismatch).toEqual([]);
    const bf16 = await checkWeights(km, join(GOLD, 'model.bf16.safetensors'));
    expect(bf16.ok).toBe(true);
    expect(bf16.text).toMatch(/all \d+ tensors: model f32 vs checkpoint bf16 {2}fix: cast bf16 → f32 at load \(lossless\)/);
  });

  it('a PixArt-style checkpoint is explained key by key, with the migrations that fix it', async () => {
    const src = await openWeights(join(GOLD, 'model.safetensors'));
    const out = new Map<string, WriterTensor>();
    for (const t of src.tensors.values()) {
      let key = t.key.replace(/^spatial_blocks\./, 'blocks.');
      let shape = [...t.shape];
      if (key === 'x_embedder.proj.weight') shape = shape.filter((_, i) => i !== 2); // Conv2d [C,4,2,2]
      if (key === 'y_embedder.y_embedding') {
        shape = [shape[0]! - 3, shape[1]!];
        key = 'y_embedder.y_embedding';
      }
      const bytes = await t.read();
      const n = shape.reduce((a, b) => a * b, 1) * (t.byteLength / Math.max(1, t.shape.reduce((a, b) => a * b, 1)));
      out.set(key, { dtype: t.dtype, shape, data: bytes.subarray(0, n) });
    }
    await src.close();
    const p = join(tmp, 'pixart-style.safetensors');
    await writeSafetensors(p, out);
    const store = await openWeights(p);
    const r = loadReport(km, store);
    await store.close();
    expect(r.ok).toBe(false);
    const migrations = new Set(r.suggestions.map((s) => s.migration));
    expect(migrations).toContain('pixart-sigma-to-stdit3');
    expect(migrations).toContain('patch-embed-2d-to-3d');
    expect(migrations).toContain('caption-table-resize');
    // every missing spatial_blocks key is paired with its blocks.* counterpart and points at the .sora source
    const spatial = r.missing.filter((m) => m.key.startsWith('spatial_blocks.'));
    expect(spatial.length).toBeGreaterThan(0);
    for (const m of spatial) {
      expect(m.counterpart).toBe(m.key.replace(/^spatial_blocks\./, 'blocks.'));
      expect(m.source).toMatch(/\.sora:\d+:\d+$/);
    }
    expect(r.missing.length).toBe(spatial.length);
  });
});
