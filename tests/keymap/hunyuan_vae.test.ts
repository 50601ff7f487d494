import { describe, expect, it } from 'vitest';
import { defaultParams, keymapDiff } from '../helpers/vae-golden.ts';

const FILE = 'examples/hunyuan_vae.sora';

describe('AutoencoderKLCausal3D (hunyuan_vae) keymap', () => {
  it('equals the golden state_dict (keys and shapes) at the golden config', () => {
    const d = keymapDiff(FILE, 'hunyuan_vae');
    expect(d.missing).toEqual([]);
    expect(d.unexpected).toEqual([]);
    expect(d.shape).toEqual([]);
    expect(d.params).toBe(d.golden);
  });
  it('released hunyuan_vae.safetensors has 246,478,803 parameters', () => {
    // formats.md §1.5 / §1.8: 248 tensors, 246,478,803 params x 2 B (bf16) = 493 MB = the hub file
    expect(defaultParams(FILE)).toBe(246_478_803);
  });
});
