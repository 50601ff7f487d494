import { describe, expect, it } from 'vitest';
import { v13Config } from '../helpers/vae-v13-config.ts';
import { defaultParams, keymapDiff } from '../helpers/vae-golden.ts';

const FILE = 'examples/vae_v13.sora';

describe('OpenSoraVAE_V1_3 keymap', () => {
  it('equals the golden state_dict (keys and shapes) at the golden config', () => {
    const d = keymapDiff(FILE, 'vae_v13', v13Config());
    expect(d.missing).toEqual([]);
    expect(d.unexpected).toEqual([]);
    expect(d.shape).toEqual([]);
    expect(d.params).toBe(d.golden);
  });
  it('released OpenSora-VAE-v1.3 has 259,163,811 parameters', () => {
    // formats.md §1.4 / §1.8: 256 tensors, 259,163,811 params x 2 B (bf16) = 518.3 MB = the hub file
    expect(defaultParams(FILE)).toBe(259_163_811);
  });
});
