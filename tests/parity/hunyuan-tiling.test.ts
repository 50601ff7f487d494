/**
 * Hunyuan VAE (Open-Sora 2.0) tiled encode / decode: parity with the REAL upstream code above the tile size
 * (tests/fixtures/golden-extra/hunyuan_vae/<case>/, made by harness/make_hunyuan_tiling_goldens.py at small
 * sample_size / sample_tsize). The entries declare upstream's tiles with tile(); runGraph and the API's run()
 * execute them tile by tile (runtime/execution/tiling.ts). Every output within 1e-4 (f32); the untiled result
 * differs from the tiled one by far more, so the tiling is what is being checked.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../core/host-tensor.ts';
import { ModelError, run as apiRun } from '../../api/run.ts';
import { createSession } from '../../api/session.ts';
import { planTiling, runTiled } from '../../runtime/execution/tiling.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { compileExample, dirConfig, maxAbsDiff, runGolden } from '../helpers/parity.ts';
import { traceOk } from '../helpers/model.ts';

const FILE = 'examples/hunyuan_vae.sora';
const ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'hunyuan_vae');
const CASES = readdirSync(ROOT).sort();

describe('Hunyuan VAE tiling: parity with the upstream tiled encode / decode', () => {
  it('finds the cases', () => expect(CASES).toEqual(['tiled_overlap_half', 'tiled_spatial', 'tiled_temporal_spatial', 'tiled_temporal_tail']));

  for (const c of CASES) {
    const dir = join(ROOT, c);
    for (const [entry, outs] of [['encode', ['posterior_logvar', 'posterior_mean', 'z_mode']], ['decode', ['decode_z']]] as const) {
      it(`${c}: ${entry} (${outs.join(', ')}) within 1e-4, and the untiled graph is not`, async () => {
        const r = await runGolden(FILE, 'hunyuan_vae', { goldenDir: dir, entry });
        expect(Object.keys(r.errors).sort()).toEqual([...outs]);
        for (const k of outs) expect(r.outputs.get(k)!.shape, k).toEqual(r.reference.get(k)!.shape);
        console.log(`hunyuan_vae ${c} ${entry}`, r.errors);
        for (const [k, e] of Object.entries(r.errors)) expect(e, k).toBeLessThanOrEqual(1e-4);
        const untiled = await runGolden(FILE, 'hunyuan_vae', { goldenDir: dir, entry, config: { ...dirConfig(dir), use_spatial_tiling: false, use_temporal_tiling: false } });
        expect(Math.max(...Object.values(untiled.errors))).toBeGreaterThan(1e-2);
      });
    }
  }

  it('upstream forward (tiled encode, then tiled decode) = encode then decode through the API; forward itself is refused above the tile size', async () => {
    const dir = join(ROOT, 'tiled_temporal_spatial');
    const m = compileExample(FILE, dirConfig(dir));
    const { tensors } = await readTensorsFile(join(dir, 'inputs.safetensors'));
    const { tensors: ref } = await readTensorsFile(join(dir, 'outputs.safetensors'));
    const weights = join(dir, 'model.safetensors');
    const enc = await apiRun(m, { weights, inputs: { x: tensors.get('x')! }, entry: 'encode', device: 'cpu' });
    const dec = await apiRun(m, { weights, inputs: { z: enc.get('z_mode')! }, entry: 'decode', device: 'cpu' });
    expect(maxAbsDiff(dec.get('decode_z')!, ref.get('recon')!)).toBeLessThanOrEqual(1e-4);
    const err = await apiRun(m, { weights, inputs: { x: tensors.get('x')! }, entry: 'forward', device: 'cpu' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe('SORA5517');
    expect((err as ModelError).message).toMatch(/run encode, then decode/);
  });

  it('at or below the tile size the tiled config computes the untiled graph (one run, equal to the golden a case)', async () => {
    const a = join(import.meta.dirname, '..', 'fixtures', 'golden', 'hunyuan_vae', 'a');
    // golden a: x 16x16 px, 5 frames; tiles of 16 px / 4 latent frames hold it whole
    const r = await runGolden(FILE, 'hunyuan_vae', { entry: 'forward', config: { ...dirConfig(a), use_spatial_tiling: true, use_temporal_tiling: true, sample_size: 16, sample_tsize: 16 } });
    for (const [k, e] of Object.entries(r.errors)) expect(e, k).toBeLessThanOrEqual(1e-4);
  });

  it('counts the tiles as upstream loops over them (2x2 spatial; 3 temporal x 2 spatial)', async () => {
    for (const [c, runs] of [['tiled_spatial', 4], ['tiled_temporal_spatial', 6]] as const) {
      const dir = join(ROOT, c);
      const g = traceOk(compileExample(FILE, dirConfig(dir)), 'decode', new Set());
      const { tensors } = await readTensorsFile(join(dir, 'inputs.safetensors'));
      const w = await safetensorsWeightSource([join(dir, 'model.safetensors')]);
      const s = await createSession(g, w, { device: 'cpu' });
      try {
        const r = await runTiled((x) => s.run(x), planTiling(g)!, new Map([['z', tensors.get('z')! as HostTensor]]));
        expect(r.runs, c).toBe(runs);
      } finally {
        await s.release();
        await w.close();
      }
    }
  });
});
