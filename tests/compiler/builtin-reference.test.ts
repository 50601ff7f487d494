/**
 * The builtin reference (compiler/builtins/reference.ts): one entry per builtin, the table sig() binds
 * arguments by, the generated section of docs/language.md equal to it, and errors that name the expected
 * signature.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUILTINS } from '../../compiler/builtins/index.ts';
import { BUILTIN_REFERENCE, signatureText } from '../../compiler/builtins/reference.ts';
import { checkEntries } from '../../compiler/check.ts';
import { compile } from '../../compiler/compile.ts';
import type { Host } from '../../compiler/program.ts';
import { builtinReference, DOC, withReference } from '../../scripts/builtin-docs.ts';

function check(body: string) {
  const src = `model M {\n  config { dim: int = 8 }\n  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n${body}\n  }\n}\n`;
  const host: Host = { readFile: (p: string) => (p.endsWith('m.sora') ? src : undefined) };
  const m = compile({ file: 'm.sora', host, rootText: src });
  expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return checkEntries(m).filter((d) => d.severity === 'error');
}

describe('builtin reference', () => {
  it('has exactly one entry per builtin the checker knows', () => {
    expect(Object.keys(BUILTIN_REFERENCE).sort()).toEqual(Object.keys(BUILTINS).sort());
    for (const r of Object.values(BUILTIN_REFERENCE)) expect(r.doc.length).toBeGreaterThan(3);
  });

  it('docs/language.md carries the generated section, unchanged', () => {
    const doc = readFileSync(DOC, 'utf8');
    expect(doc).toContain(builtinReference());
    expect(withReference(doc)).toBe(doc);
    expect(builtinReference()).toContain('| `layer_norm(x, weight?, bias?, eps?)` | tensor |');
  });

  it('the checker binds arguments by the table: a parameter it does not list is refused, naming the signature', () => {
    const [d] = check('    return layer_norm(x, epsilon=1e-6)');
    expect(d!.code).toBe('SORA2007');
    expect(d!.message).toBe('layer_norm() has no parameter "epsilon"');
    expect(d!.hint).toBe('parameters: x, weight, bias, eps; layer_norm(x, weight?, bias?, eps?)');
  });

  it('layer_norm(x, [dim]): expected a tensor, got list, with the signature', () => {
    const [d] = check('    return layer_norm(x, [dim])');
    expect(d!.code).toBe('SORA3001');
    expect(d!.message).toBe('layer_norm(): "weight" expected a tensor, got list');
    expect(d!.hint).toMatch(/^layer_norm\(x, weight\?, bias\?, eps\?\): Layer normalization/);
    expect(d!.span!.start.col).toBe(26);
  });

  it('x.transpose(0, 1): tensors have no methods; write transpose(x, ...)', () => {
    const [d] = check('    return x.transpose(0, 1)');
    expect(d!.code).toBe('SORA2009');
    expect(d!.message).toBe('tensors have no methods; write transpose(x, ...)');
    expect(d!.hint).toContain(signatureText('transpose'));
    expect(check('    return x.T.T')).toEqual([]);
    // a member that is not a builtin keeps the plain message
    expect(check('    return x.foo')[0]!.message).toBe('tensor f32[B, 8] has no member "foo"');
  });
});
