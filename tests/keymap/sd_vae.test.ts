import { describe, expect, it } from 'vitest';
import { defaultParams, keymapDiff } from '../helpers/vae-golden.ts';

const FILE = 'examples/sd_vae.sora';

describe('AutoencoderKL (sd-vae) keymap', () => {
  it('equals the golden state_dict (keys and shapes) at the golden config', () => {
    const d = keymapDiff(FILE, 'sd_vae');
    expect(d.missing).toEqual([]);
    expect(d.unexpected).toEqual([]);
    expect(d.shape).toEqual([]);
    expect(d.params).toBe(d.golden);
  });
  it('released sd-vae-ft-ema has 83,653,863 parameters', () => {
    // formats.md §1.2 (derived, matches the known SD-VAE size) and §1.3: the v1.2 file's 393,341,015 floats include it
    expect(defaultParams(FILE)).toBe(83_653_863);
  });
});
