/** Name resolution on the AST (lsp/navigate.ts), on small sources: scopes, shadowing, symbols. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../lsp/analysis.ts';
import { definition, findReferences } from '../../lsp/features.ts';
import { ROOT } from './client.ts';

const SRC = `module Block(dim: int) {
  param w: [dim, dim]
  fn forward(x: [B, N, dim]) {
    let y = x
    let y = y + x
    for i in range(2) {
      y = y * 2
    }
    return [v * 2 for v in [y, w]]
  }
}
`;
const a = analyze({ file: join(ROOT, 'nav.sora'), text: SRC, version: 1, cwd: ROOT });
const at = (needle: string, delta = 0, n = 0) => {
  let i = -1;
  for (let k = 0; k <= n; k++) i = SRC.indexOf(needle, i + 1);
  return i + delta;
};
const defAt = (needle: string, delta = 0, n = 0) => definition(a, at(needle, delta, n))?.span.start.offset;

describe('lsp name resolution', () => {
  it('a let reads the binding before it, not itself', () => {
    expect(defAt('y + x')).toBe(at('let y = x', 4));
    expect(defAt('y * 2')).toBe(at('let y = y', 4));
  });
  it('parameters, module members and module parameters', () => {
    expect(defAt('y + x', 4)).toBe(at('x: [B', 0));
    expect(defAt('[dim, dim]', 1)).toBe(at('dim: int'));
    expect(defAt('w]]')).toBe(at('w: [dim'));
  });
  it('comprehension and for variables', () => {
    expect(defAt('v * 2')).toBe(at('v in'));
  });
  it('references of a parameter: its declaration and every use in its scope', () => {
    const refs = findReferences(a, at('x: [B'), true).map((r) => r.span.start.offset);
    expect(refs.sort((p, q) => p - q)).toEqual([at('x: [B'), at('= x', 2), at('+ x', 2)]);
  });
  it('a file without a model has no diagnostics of its own here', () => {
    expect(a.diagnostics).toEqual([]);
  });
});
