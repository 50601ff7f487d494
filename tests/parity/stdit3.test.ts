import { describe, expect, it } from 'vitest';
import { runGolden } from '../helpers/parity.ts';

describe('STDiT3 (Open-Sora 1.2) parity with the real PyTorch code', () => {
  it('reproduces output within 1e-4 (f32)', async () => {
    const r = await runGolden('examples/stdit3.sora', 'stdit3');
    expect(Object.keys(r.errors)).toContain('output');
    expect(r.errors.output).toBeLessThanOrEqual(1e-4);
  });
});
