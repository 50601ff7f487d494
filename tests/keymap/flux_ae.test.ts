import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirConfig } from '../helpers/parity.ts';
import { exampleKeymap, shapes } from '../helpers/keymap.ts';
import { parameterCount } from '../../core/keymap.ts';

const FILE = 'examples/flux_ae.sora';
const ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'flux_ae');
const cases = readdirSync(ROOT).sort();

describe('Flux AE (Open-Sora 2.0 autoencoder_2d) keymap', () => {
  it('has the golden cases', () => expect(cases.length).toBeGreaterThanOrEqual(2));

  for (const c of cases) {
    it(`equals the upstream AutoEncoder state_dict (keys, shapes, count) at ${c}`, () => {
      const meta = JSON.parse(readFileSync(join(ROOT, c, 'meta.json'), 'utf8'));
      const km = exampleKeymap(FILE, dirConfig(join(ROOT, c)));
      const upstream = Object.fromEntries((meta.state_dict as { key: string; shape: number[] }[]).map((e) => [e.key, e.shape]));
      expect(shapes(km)).toEqual(upstream);
      expect(parameterCount(km)).toBe(meta.num_parameters);
    });
  }

  // the count printed by `make_ae_goldens.py --released` (upstream AutoEncoder at AutoEncoderFlux's defaults);
  // flux1-dev-ae.safetensors is 335 MB of f32 (formats.md §1.8)
  it('released flux1-dev-ae: 83,819,683 parameters in 244 tensors at the defaults', () => {
    const km = exampleKeymap(FILE);
    expect(Object.keys(km.tensors).length).toBe(244);
    expect(parameterCount(km)).toBe(83_819_683);
    expect(km.tensors['encoder.mid.attn_1.q.weight']!.shape).toEqual([512, 512, 1, 1]);
    expect(km.tensors['encoder.conv_out.weight']!.shape).toEqual([32, 512, 3, 3]);
    expect(km.tensors['decoder.conv_in.weight']!.shape).toEqual([512, 16, 3, 3]);
    expect(km.tensors['decoder.up.3.upsample.conv.weight']!.shape).toEqual([512, 512, 3, 3]);
    expect(km.tensors['decoder.up.0.upsample.conv.weight']).toBeUndefined();
  });
});
