/**
 * CLIPTextModel (examples/clip_text.sora) beyond the extra golden cases (which extra-goldens.test.ts
 * runs): the two pooling rules of transformers 4.57.6 CLIPTextTransformer are both live.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirConfig, runGolden } from '../helpers/parity.ts';

const FILE = 'examples/clip_text.sora';
const dir = (c: string) => join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'clip_text', c);

describe('CLIPTextModel pooling (pooler_output)', () => {
  it('eos_token_id != 2 pools at the first eos: the argmax rule (eos_token_id 2) picks other rows', async () => {
    const r = await runGolden(FILE, 'clip_text', { goldenDir: dir('b_eos_id_mask_gelu'), config: { ...dirConfig(dir('b_eos_id_mask_gelu')), eos_token_id: 2 } });
    expect(r.errors.last_hidden_state).toBeLessThanOrEqual(1e-4);
    expect(r.errors.pooler_output).toBeGreaterThan(1e-2);
  });

  it('on CLIPTokenizer-shaped ids (eos = pad = the largest id) both rules pool the same row', async () => {
    const r = await runGolden(FILE, 'clip_text', { goldenDir: dir('a_released_layout'), config: { ...dirConfig(dir('a_released_layout')), eos_token_id: 39 } });
    expect(r.errors.pooler_output).toBeLessThanOrEqual(1e-4);
  });
});
