import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirConfig } from '../helpers/parity.ts';
import { exampleKeymap, shapes } from '../helpers/keymap.ts';
import { parameterCount } from '../../core/keymap.ts';

const FILE = 'examples/clip_text.sora';
const ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden-extra', 'clip_text');
const cases = readdirSync(ROOT).sort();

describe('CLIPTextModel keymap', () => {
  it('has the golden cases', () => expect(cases.length).toBeGreaterThanOrEqual(2));

  for (const c of cases) {
    it(`equals transformers' state_dict (keys, shapes, count) at ${c}`, () => {
      const meta = JSON.parse(readFileSync(join(ROOT, c, 'meta.json'), 'utf8'));
      const km = exampleKeymap(FILE, dirConfig(join(ROOT, c)));
      const upstream = Object.fromEntries((meta.state_dict as { key: string; shape: number[] }[]).map((e) => [e.key, e.shape]));
      expect(shapes(km)).toEqual(upstream);
      const count = parameterCount(km);
      expect(count).toBe(meta.num_parameters);
    });
  }

  it('released openai/clip-vit-large-patch14 text model: 123,060,480 parameters in 196 tensors at the defaults', () => {
    const km = exampleKeymap(FILE);
    expect(Object.keys(km.tensors).length).toBe(196);
    const count = parameterCount(km);
    expect(count).toBe(123_060_480);
    expect(km.tensors['text_model.embeddings.token_embedding.weight']!.shape).toEqual([49408, 768]);
    expect(km.tensors['text_model.embeddings.position_embedding.weight']!.shape).toEqual([77, 768]);
  });
});
