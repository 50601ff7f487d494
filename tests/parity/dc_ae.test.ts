/**
 * DC-AE (examples/dc_ae.sora, Open-Sora 2.0 dc_ae @ HEAD) beyond the golden parity of
 * tests/parity/extra-goldens.test.ts: frame counts the video entries cannot take are refused before
 * any compute, and the one-frame entries are a different function from the video ones (upstream
 * switches each temporal stage on T != 1), so the image path is not the video path at T = 1.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run as apiRun } from '../../api/run.ts';
import { SoracError } from '../../core/errors.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { compileExample, dirConfig, maxAbsDiff } from '../helpers/parity.ts';

const FILE = 'examples/dc_ae.sora';
const DIR = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'dc_ae', 'b_mixed_blocks_scaled');
const zeros = (shape: number[]): HostTensor => ({ dtype: 'f32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

describe('DC-AE frame counts', () => {
  it('encode refuses T or H that is not a multiple of the compression, naming the declared shape (SORA5503)', async () => {
    const m = compileExample(FILE, dirConfig(DIR));
    for (const [shape, re] of [
      [[1, 3, 6, 16, 24], /x: dim 2 is 6, not a multiple of 4/],
      [[1, 3, 1, 16, 24], /x: dim 2 is 1, not a multiple of 4/],
      [[1, 3, 8, 12, 24], /x: dim 3 is 12, not a multiple of 8/],
    ] as const) {
      const p = apiRun(m, { weights: join(DIR, 'model.safetensors'), inputs: new Map([['x', zeros([...shape])]]), entry: 'encode', device: 'cpu' });
      await expect(p).rejects.toThrow(SoracError);
      await expect(p).rejects.toMatchObject({ code: 'SORA5503', message: expect.stringMatching(re) });
    }
  });

  it('one frame: encode_image is not encode_video at T = 1; the video latent of 4 frames is 1 frame', async () => {
    const m = compileExample(FILE, dirConfig(DIR));
    const { tensors: inputs } = await readTensorsFile(join(DIR, 'inputs.safetensors'));
    const { tensors: ref } = await readTensorsFile(join(DIR, 'outputs.safetensors'));
    const weights = join(DIR, 'model.safetensors');
    const frame = inputs.get('frame')!;
    const img = await apiRun(m, { weights, inputs: new Map([['frame', frame]]), entry: 'encode_image', device: 'cpu' });
    expect(maxAbsDiff(img.get('z_image')!, ref.get('z_image')!)).toBeLessThanOrEqual(1e-4);
    // the same frame repeated 4 times through the video path: 1 latent frame, and a different one
    const [B, C, , H, W] = frame.shape as number[];
    const rep = new Float32Array(B! * C! * 4 * H! * W!);
    const hw = H! * W!;
    for (let b = 0; b < B! * C!; b++) for (let t = 0; t < 4; t++) rep.set((frame.data as Float32Array).subarray(b * hw, (b + 1) * hw), (b * 4 + t) * hw);
    const vid = await apiRun(m, { weights, inputs: new Map([['x', { dtype: 'f32', shape: [B!, C!, 4, H!, W!], data: rep } as HostTensor]]), entry: 'encode', device: 'cpu' });
    expect(vid.get('z')!.shape).toEqual(img.get('z_image')!.shape);
    expect(maxAbsDiff(vid.get('z')!, img.get('z_image')!)).toBeGreaterThan(1e-3);
  });
});
