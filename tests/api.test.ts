import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { compile, fsHost, load, run, ModelError } from '../index.ts';
import { readTensorsFile } from '../runtime/formats/tensors-io.ts';
import { GOLDEN, goldenConfig, maxAbsDiff } from './helpers/parity.ts';

describe('programmatic API', () => {
  const dir = join(GOLDEN, 'stdit3', 'a');
  it('compile → run reproduces the golden STDiT3 output', async () => {
    const model = compile({ file: 'examples/stdit3.sora', host: fsHost, config: { values: goldenConfig('stdit3') } });
    const { tensors: inputs } = await readTensorsFile(join(dir, 'inputs.safetensors'));
    const out = await run(model, { weights: join(dir, 'model.safetensors'), inputs, device: 'cpu' });
    const { tensors: ref } = await readTensorsFile(join(dir, 'outputs.safetensors'));
    expect(maxAbsDiff(out.get('output')!, ref.get('output')!)).toBeLessThan(1e-4);
  });
  it('load refuses a checkpoint for another config, with the report attached', async () => {
    const model = compile({ file: 'examples/stdit3.sora', host: fsHost, config: { values: { ...goldenConfig('stdit3'), depth: 3 } } });
    const err = await load(model, join(dir, 'model.safetensors')).catch((e) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect(err.report.missing.length).toBeGreaterThan(0);
    expect(err.report.missing.some((m: { key: string }) => m.key.startsWith('spatial_blocks.2.'))).toBe(true);
  });
});

describe('isPipelineSource then loadModel (sorac check)', () => {
  it('reuses the probe parse only while the file is unchanged', async () => {
    const { mkdtempSync, writeFileSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { isPipelineSource, loadModel } = await import('../api/model.ts');
    const dir = mkdtempSync(join(tmpdir(), 'sorac-probe-'));
    try {
      const file = join(dir, 'm.sora');
      const src = readFileSync(join(import.meta.dirname, '..', 'examples', 'stdit3.sora'), 'utf8');
      writeFileSync(file, src);
      expect(isPipelineSource(file)).toBe(false);
      const a = loadModel({ file, values: { depth: 2 } });
      expect(a.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      // changed after the probe: the edit must be seen (a syntax error), not the probed parse
      expect(isPipelineSource(file)).toBe(false);
      writeFileSync(file, src + '\nmodel Broken(\n');
      const b = loadModel({ file, values: { depth: 2 } });
      expect(b.diagnostics.some((d) => d.severity === 'error' && d.code.startsWith('SORA1'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
