import { describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import { checkOnnx } from '../helpers/onnx-check.ts';
import { compileExample, goldenConfig } from '../helpers/parity.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';

// every entry of the VAE examples emits a model that the reference ONNX checker accepts (full_check:
// shape inference over the symbolic dims, incl. decode's runtime-length output axis)
const CASES: [string, string, () => Record<string, unknown>, string[]][] = [
  ['examples/vae_temporal.sora', 'vae_temporal', () => goldenConfig('vae_temporal'), ['encode', 'decode', 'forward']],
  ['examples/sd_vae.sora', 'sd_vae', () => goldenConfig('sd_vae'), ['encode', 'decode', 'forward', 'encode_video', 'decode_video']],
  ['examples/vae_v13.sora', 'vae_v13', () => v13Config(), ['encode', 'decode', 'forward']],
  ['examples/hunyuan_vae.sora', 'hunyuan_vae', () => goldenConfig('hunyuan_vae'), ['encode', 'decode', 'forward']],
];

describe('VAE examples emit valid ONNX', () => {
  for (const [file, name, cfg, entries] of CASES) {
    it(`${name}: ${entries.join(', ')}`, async () => {
      const m = compileExample(file, cfg());
      expect(m.entries.map((e) => e.name).sort()).toEqual([...entries].sort());
      for (const entry of entries) {
        const tr = traceEntry(m, entry);
        expect(tr.graph, tr.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
        const r = await checkOnnx(emitOnnx(tr.graph!, { weights: 'none' }));
        expect(r.message, `${name}.${entry}`).toMatch(/^ok/);
      }
    });
  }
});

describe('VAE examples trace at the released defaults', () => {
  for (const [file, name, , entries] of CASES) {
    it(`${name}: ${entries.join(', ')}`, () => {
      const m = compileExample(file, {});
      for (const entry of entries) {
        const tr = traceEntry(m, entry);
        expect(tr.graph, `${name}.${entry}: ${tr.diagnostics.map((d) => d.message).join('\n')}`).toBeDefined();
      }
    });
  }
});
