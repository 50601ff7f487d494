import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirConfig } from '../helpers/parity.ts';
import { exampleKeymap, shapes } from '../helpers/keymap.ts';
import { parameterCount } from '../../core/keymap.ts';

const FILE = 'examples/dc_ae.sora';
const ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'dc_ae');
const cases = readdirSync(ROOT).sort();

describe('DC-AE (Open-Sora 2.0 dc_ae, dc-ae-f32t4c128) keymap', () => {
  it('has the golden cases', () => expect(cases.length).toBeGreaterThanOrEqual(2));

  for (const c of cases) {
    it(`equals the upstream DCAE state_dict (keys, shapes, count) at ${c}`, () => {
      const meta = JSON.parse(readFileSync(join(ROOT, c, 'meta.json'), 'utf8'));
      const km = exampleKeymap(FILE, dirConfig(join(ROOT, c)));
      const upstream = Object.fromEntries((meta.state_dict as { key: string; shape: number[] }[]).map((e) => [e.key, e.shape]));
      expect(shapes(km)).toEqual(upstream);
      expect(parameterCount(km)).toBe(meta.num_parameters);
    });
  }

  // the count printed by `make_ae_goldens.py --released` (upstream DCAE as dc_ae_f32("dc-ae-f32t4c128") configures it);
  // formats.md §1.6 derives the same 339 tensors / 459,462,147 parameters (the published file was not available)
  it('released dc-ae-f32t4c128: 459,462,147 parameters in 339 tensors at the defaults', () => {
    const km = exampleKeymap(FILE);
    expect(Object.keys(km.tensors).length).toBe(339);
    expect(parameterCount(km)).toBe(459_462_147);
    expect(km.tensors['encoder.project_in.conv.weight']!.shape).toEqual([128, 3, 3, 3, 3]);
    expect(km.tensors['encoder.stages.3.op_list.0.context_module.main.aggreg.0.0.weight']!.shape).toEqual([1536, 1, 5, 5, 5]);
    expect(km.tensors['encoder.stages.3.op_list.0.context_module.main.aggreg.0.1.weight']!.shape).toEqual([1536, 32, 1, 1, 1]);
    expect(km.tensors['encoder.stages.3.op_list.3.main.conv.weight']!.shape).toEqual([1024, 512, 3, 3, 3]);
    expect(km.tensors['encoder.project_out.main.op_list.0.conv.weight']!.shape).toEqual([128, 1024, 3, 3, 3]);
    expect(km.tensors['decoder.project_in.main.conv.weight']!.shape).toEqual([1024, 128, 3, 3, 3]);
    expect(km.tensors['decoder.stages.0.op_list.0.main.conv.conv.weight']!.shape).toEqual([128, 256, 3, 3, 3]);
    expect(km.tensors['decoder.stages.0.op_list.1.main.conv2.norm.bias']!.shape).toEqual([128]);
    expect(km.tensors['decoder.project_out.op_list.0.weight']!.shape).toEqual([128]);
    expect(km.tensors['decoder.project_out.op_list.2.conv.weight']!.shape).toEqual([3, 128, 3, 3, 3]);
  });
});
