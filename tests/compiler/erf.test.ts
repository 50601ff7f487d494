/**
 * erf on numbers known at compile time. It was once folded as erf(x) = x (a table entry with the
 * identity function): config-level code such as a GELU constant or an init scale silently got x.
 * Reference values are Python's math.erf (C's erf).
 */
import { describe, expect, it } from 'vitest';
import { erf } from '../../compiler/builtins/index.ts';
import { compile } from '../../compiler/compile.ts';
import type { Host } from '../../compiler/program.ts';

const PY_ERF: [number, number][] = [
  [0.5, 0.5204998778130465],
  [1, 0.8427007929497149],
  [2, 0.9953222650189527],
  [2.5, 0.999593047982555],
  [3, 0.9999779095030014],
  [4.2, 0.9999999971445058],
  [-0.3, -0.3286267594591274],
  [1e-9, 1.1283791670955127e-9],
  [-6.5, -1],
];

describe('erf', () => {
  it('matches C erf to 1e-15 across the series / continued-fraction switch', () => {
    for (const [x, want] of PY_ERF) expect(Math.abs(erf(x) - want), `erf(${x})`).toBeLessThan(1e-15);
    expect(erf(0)).toBe(0);
    expect(Number.isNaN(erf(NaN))).toBe(true);
  });

  it('is folded by the compiler on compile-time numbers (a model whose shape depends on it)', () => {
    // round(erf(0.5) * 100) = 52; with the old identity fold it was round(0.5 * 100) = 50
    const src = `model M {
  config { dim: int = 8 }
  let n = round(erf(0.5) * 100)
  param w: [n, dim]
  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {
    return x
  }
}
`;
    const host: Host = { readFile: (p: string) => (p.endsWith('m.sora') ? src : undefined) };
    const m = compile({ file: 'm.sora', host, rootText: src });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(m.keymap!.tensors['w']!.shape).toEqual([52, 8]);
  });
});
