/**
 * Every bundled example, at its golden (small) config, builds with `sorac build --weights` (one without a
 * golden case at its defaults, weights as graph inputs) and every emitted graph passes Debian python3-onnx's `check_model(full_check=True)` with its external data,
 * both the plain standard-opset graph and the one `--target ort` writes (standard opset plus com.microsoft
 * contrib nodes, which the checker accepts without a schema).
 */
import { mkdtempSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { memoryIO } from '../../cli/io.ts';
import { checkOnnxFile } from '../helpers/onnx-check.ts';
import { GOLDEN, dirConfig, goldenConfig } from '../helpers/parity.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';

/** golden constructor kwargs as the example's config (vae_v13's nested kwargs need a mapping) */
const configFor = (ex: string) => (ex === 'vae_v13' ? v13Config() : goldenConfig(ex));

const EXTRA = join(import.meta.dirname, '..', 'fixtures', 'golden-extra');

/** The golden case directory of an example: tests/fixtures/golden/<ex>/a, else its first golden-extra case (stdit3_v13, clip_text). */
function caseDir(ex: string): string | undefined {
  if (existsSync(join(GOLDEN, ex, 'a', 'meta.json'))) return join(GOLDEN, ex, 'a');
  const extra = join(EXTRA, ex);
  const first = existsSync(extra) ? readdirSync(extra).sort().find((c) => existsSync(join(extra, c, 'meta.json'))) : undefined;
  return first ? join(extra, first) : undefined;
}

const examples = readdirSync('examples').filter((f) => f.endsWith('.sora')).map((f) => f.replace(/\.sora$/, '')).sort();

describe('ONNX checker on every example', () => {
  it('covers every example that has golden data', () => {
    expect(examples.filter((e) => existsSync(join(GOLDEN, e, 'a'))).length).toBeGreaterThanOrEqual(5);
  });
  for (const ex of examples) {
    // an example without any golden case (the composed v1.2 VAE pipeline) is built at its defaults without
    // weights: they become graph inputs (one per checkpoint key), and the graph goes through the same checker
    const golden = caseDir(ex);
    for (const target of [[], ['--target', 'ort']]) it(`${ex}: build ${target.join(' ')} + onnx.checker(full_check)`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `sorac-check-${ex}-`));
      const io = memoryIO();
      let args: string[] = [];
      if (golden) {
        const cfg = join(dir, 'config.json');
        writeFileSync(cfg, JSON.stringify(golden.startsWith(EXTRA) ? dirConfig(golden) : configFor(ex)));
        args = ['--config', cfg, '--weights', join(golden, 'model.safetensors')];
      }
      const code = await main(['build', `examples/${ex}.sora`, ...args, '-o', join(dir, 'out'), ...target], io);
      expect(code, io.err).toBe(0);
      const onnx = readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.onnx'));
      expect(onnx.length).toBeGreaterThan(0);
      for (const f of onnx) {
        const r = await checkOnnxFile(join(dir, 'out', f));
        expect(r.ok, r.message).toBe(true);
        expect(r.message).toMatch(/^ok 8 17$/);
      }
    });
  }
});
