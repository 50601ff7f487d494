import { describe, expect, it } from 'vitest';
import { defaultParams, keymapDiff } from '../helpers/vae-golden.ts';

const FILE = 'examples/vae_temporal.sora';

describe('VAE_Temporal keymap', () => {
  it('equals the golden state_dict (keys and shapes) at the golden config', () => {
    const d = keymapDiff(FILE, 'vae_temporal');
    expect(d.missing).toEqual([]);
    expect(d.unexpected).toEqual([]);
    expect(d.shape).toEqual([]);
    expect(d.params).toBe(d.golden);
  });
  it('released VAE_Temporal_SD has 309,687,144 parameters', () => {
    // formats.md §1.3/§1.8: OpenSora-VAE-v1.2 model.safetensors = 393,341,015 floats =
    // temporal VAE 309,687,144 + SD-arch 2D VAE 83,653,863 + 8 buffer floats (scale, shift)
    expect(defaultParams(FILE)).toBe(309_687_144);
    expect(309_687_144 + 83_653_863 + 8).toBe(393_341_015);
  });
});
