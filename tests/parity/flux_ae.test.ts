/**
 * The Flux AE (examples/flux_ae.sora, Open-Sora 2.0 autoencoder_2d @ HEAD) beyond the golden
 * parity of tests/parity/extra-goldens.test.ts: the per-frame entries declare B and T as
 * micro-batch axes, and chunked runs (the optional `noise` sliced with x) give the golden outputs.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run as apiRun } from '../../api/run.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { compileExample, dirConfig, maxAbsDiff } from '../helpers/parity.ts';

const FILE = 'examples/flux_ae.sora';
const DIR = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'flux_ae', 'a_released_layout');

describe('Flux AE micro-batching (per frame)', () => {
  it('encode (with noise) and decode one frame per run equal one pass and the upstream outputs', async () => {
    const m = compileExample(FILE, dirConfig(DIR));
    const { tensors: inputs } = await readTensorsFile(join(DIR, 'inputs.safetensors'));
    const { tensors: ref } = await readTensorsFile(join(DIR, 'outputs.safetensors'));
    const weights = join(DIR, 'model.safetensors');
    const enc = new Map([['x', inputs.get('x')!], ['noise', inputs.get('noise')!]]);
    expect(inputs.get('x')!.shape[2]).toBe(2);
    const one = await apiRun(m, { weights, inputs: enc, entry: 'encode', device: 'cpu' });
    const mb = await apiRun(m, { weights, inputs: enc, entry: 'encode', device: 'cpu', microBatch: { size: 1, axis: 'T' } });
    for (const k of ['z', 'posterior_mean', 'posterior_logvar']) {
      expect(maxAbsDiff(one.get(k)!, mb.get(k)!), k).toBe(0);
      expect(maxAbsDiff(mb.get(k)!, ref.get(k)!), k).toBeLessThanOrEqual(1e-4);
    }
    const dec = new Map([['z', inputs.get('z')!]]);
    const d = await apiRun(m, { weights, inputs: dec, entry: 'decode', device: 'cpu', microBatch: { size: 1, axis: 'T' } });
    expect(maxAbsDiff(d.get('decoded')!, ref.get('decoded')!)).toBeLessThanOrEqual(1e-4);
  });
});
