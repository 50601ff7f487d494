/**
 * Property-based tests (fast-check) for the front end:
 * - parse never throws, and every diagnostic carries a valid span;
 * - fmt is idempotent and preserves the AST, for generated programs with random spacing,
 *   redundant parentheses and comments;
 * - the keymap contract hash is invariant under formatting and declaration order;
 * - the shared lexer (whose tokens state their start characters and line breaks) tokenizes as one
 *   built from the bare patterns, where chevrotain works both out itself.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { format, stripSpans } from '../grammar/format.ts';
import { parse, validateGrammar } from '../grammar/parser.ts';
import { Lexer, type TokenType } from 'chevrotain';
import { allTokens, soraLexer } from '../grammar/lexer.ts';

const ws = fc.constantFrom(' ', '  ', '\t', '\n  ', ' \n', '');
const ws1 = fc.constantFrom(' ', '  ', '\t', '\n ', ' \n ');

const name = fc.constantFrom('a', 'b', 'x', 'hidden_size', 'T', 'y2');
const num = fc.oneof(fc.integer({ min: 0, max: 999 }).map(String), fc.constantFrom('1.5', '0.25', '1e-6', '2.0e3'));

const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    name,
    num,
    fc.constantFrom('true', 'false', 'none', '"str"'),
    fc.tuple(tie('e'), fc.constantFrom('+', '-', '*', '/', '//', '%', '**', '@', '==', '<', '>=', 'and', 'or'), tie("e"), ws1).map(([l, op, r, s]) => `(${l}${s}${op} ${r})`),
    fc.tuple(fc.constantFrom('-', 'not '), tie('e')).map(([op, e]) => `(${op}(${e}))`),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
    fc.tuple(name, fc.array(tie('e'), { maxLength: 3 }), fc.option(tie('e'))).map(([f, args, kw]) => `${f}(${[...args, ...(kw ? [`k=${kw}`] : [])].join(', ')})`),
    fc.tuple(name, fc.constantFrom('shape', '0', 'fc1')).map(([o, m]) => `${o}.${m}`),
    fc.tuple(name, fc.constantFrom(':', '0', ':, none', '..., 1:', '::2', 'a:b')).map(([o, i]) => `${o}[${i}]`),
    fc.array(tie('e'), { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(${a}, ${b})`),
    fc.tuple(tie('e'), name).map(([e, n]) => `[${e} for ${n} in range(3)]`),
  ),
})).e;

const stmt = fc.oneof(
  fc.tuple(name, expr).map(([n, e]) => `let ${n} = ${e}`),
  fc.tuple(name, expr, fc.constantFrom('=', '+=', '*=')).map(([n, e, op]) => `${n} ${op} ${e}`),
  fc.tuple(expr, expr).map(([c, e]) => `if ${c} { return ${e} } else { let z = ${e} }`),
  fc.tuple(name, expr).map(([n, e]) => `for ${n} in range(2) { ${n} = ${e} }`),
  expr.map((e) => `assert ${e}, "msg"`),
  expr.map((e) => `return ${e}`),
);

const comment = fc.constantFrom('', '  # note', '\n  # leading comment\n');

const program = fc.tuple(fc.array(fc.tuple(stmt, comment, ws1), { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(expr, comment), { maxLength: 3 }), ws1).map(
  ([stmts, lets, s]) =>
    `import { Linear } from "std/nn"\n${lets.map(([e, c], i) => `let g${i} = ${e}${c}\n`).join('')}module M(a: int, b: float = 1.0, c: int[3] = [1, 2, 2], t: f32[B, 4]? = none) {${s}param w: [a, 4] if a > 0\n  sub.0 = Linear(a, a)\n  fn forward(x: [B, ..., a]) -> [B, a] {${s}${stmts.map(([st, c, sp]) => `${st}${c}${sp}`).join('\n')}\n  }\n}\n`,
);

describe('parser', () => {
  it("passes chevrotain's token and grammar validations (the shared lexer and parser skip them at start-up)", () => {
    expect(() => validateGrammar()).not.toThrow();
  });
  it("tokenizes exactly as a lexer that works out the tokens' start characters and line breaks itself", () => {
    // the same token types without start_chars_hint / line_breaks (longer_alt pointing at the copies)
    const copies = new Map<TokenType, TokenType>();
    for (const t of allTokens) {
      const c = { ...t } as TokenType & { START_CHARS_HINT?: unknown; LINE_BREAKS?: unknown };
      expect(t).toHaveProperty(t.PATTERN === Lexer.NA ? 'name' : 'START_CHARS_HINT');
      delete c.START_CHARS_HINT;
      delete c.LINE_BREAKS;
      copies.set(t, c);
    }
    for (const c of copies.values()) if (c.LONGER_ALT) c.LONGER_ALT = copies.get(c.LONGER_ALT as TokenType)!;
    const bare = new Lexer([...copies.values()], { positionTracking: 'full', ensureOptimizations: true });
    const view = (text: string) => {
      const r = (l: Lexer) => l.tokenize(text);
      const tok = (t: { tokenType: TokenType; image: string; startOffset: number; startLine?: number; startColumn?: number; endLine?: number; endColumn?: number }) => [t.tokenType.name, t.image, t.startOffset, t.startLine, t.startColumn, t.endLine, t.endColumn];
      return (l: Lexer) => {
        const x = r(l);
        return { tokens: x.tokens.map(tok), comments: ((x.groups.comments ?? []) as Parameters<typeof tok>[0][]).map(tok), errors: x.errors.map((e) => [e.offset, e.length, e.line, e.column, e.message]) };
      };
    };
    const sources = ['examples', 'std'].flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.sora')).map((f) => readFileSync(`${d}/${f}`, 'utf8')));
    for (const text of sources) expect(view(text)(soraLexer)).toEqual(view(text)(bare));
    const anyChar = fc.oneof(fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)), fc.constantFrom('\uFEFF', 'é', '∂', '😀', '\r\n'));
    fc.assert(
      fc.property(fc.array(fc.oneof(anyChar, fc.constantFrom('module', 'in', 'int', 'none_', '->', '...', '**', '//', '"a\\"b"', '1.5e-3', '12', '# c\n')), { maxLength: 60 }), (parts) => {
        const text = parts.join('');
        expect(view(text)(soraLexer)).toEqual(view(text)(bare));
      }),
      { numRuns: 400 },
    );
  });
  it('never throws, and every diagnostic has a valid span', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 200 }), program.map((p) => p.slice(0, Math.floor(p.length * 0.7)))), (text) => {
        const r = parse(text, 'fuzz.sora');
        for (const d of r.diagnostics) {
          expect(d.span, d.message).toBeDefined();
          const s = d.span!;
          expect(s.start.offset).toBeGreaterThanOrEqual(0);
          expect(s.start.offset).toBeLessThanOrEqual(text.length + 1);
          expect(s.end.offset).toBeGreaterThanOrEqual(s.start.offset);
          expect(s.start.line).toBeGreaterThanOrEqual(1);
          expect(s.start.col).toBeGreaterThanOrEqual(1);
          expect(d.code).toMatch(/^SORA1\d{3}$/);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('refuses pathological nesting with a diagnostic instead of overflowing the stack', () => {
    const text = `let x = ${'('.repeat(5000)}1${')'.repeat(5000)}`;
    const r = parse(text);
    expect(r.diagnostics.map((d) => d.code)).toContain('SORA1004');
  });

  it('refuses oversized sources with a diagnostic', () => {
    const r = parse('#'.repeat(3 * 1024 * 1024));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['SORA1004']);
  });
});

describe('fmt', () => {
  it('is idempotent and preserves the AST of generated programs', () => {
    fc.assert(
      fc.property(program, (src) => {
        const p0 = parse(src);
        expect(p0.diagnostics).toEqual([]);
        const f1 = format(src);
        expect(f1.text).toBeDefined();
        const f2 = format(f1.text!);
        expect(f2.text).toBe(f1.text);
        expect(stripSpans(parse(f1.text!).ast)).toEqual(stripSpans(p0.ast));
        // no comment is lost
        expect(parse(f1.text!).ast.comments.map((c) => c.text.trim())).toEqual(p0.ast.comments.map((c) => c.text.trim()));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves the bundled sources unchanged (they are formatted)', () => {
    const files = [...readdirSync('std').map((f) => `std/${f}`), ...readdirSync('examples', { recursive: true }).map((f) => `examples/${f}`)].filter((f) => f.endsWith('.sora'));
    expect(files.length).toBeGreaterThanOrEqual(11);
    expect(files.some((f) => f.startsWith('examples/pipelines/'))).toBe(true);
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      expect(format(src, f).text).toBe(src);
    }
  });
});

describe('contract hash', () => {
  const members = [
    'param w1: [dim, dim]',
    'param w2: [dim * 2] if use_w2',
    'buffer table: [4, dim]',
    'head = Linear(dim, 3)',
    'blocks = [Linear(dim, dim, bias=false) for i in range(depth)]',
    't_block.1 = Linear(dim, 6 * dim)',
  ];
  const build = (order: number[], spacing: string) =>
    `import { Linear } from "std/nn"\nmodel M version "1" {\n  config {\n    dim: int = 8\n    depth: int = 2\n    use_w2: bool = true\n  }\n${order.map((i) => `${spacing}${members[i]}\n`).join('')}  entry forward(x: f32[B, dim]) -> (y: f32[B, 3]) {\n    return head(x)\n  }\n}\n`;

  it('is invariant under formatting and declaration order', () => {
    const ref = compile({ file: 'm.sora', rootText: build([0, 1, 2, 3, 4, 5], '  '), host: fsHost });
    expect(ref.keymap).toBeDefined();
    fc.assert(
      fc.property(fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }), fc.constantFrom('  ', '    ', '\t', '\n\n  '), (order, sp) => {
        const src = build(order, sp);
        const a = compile({ file: 'm.sora', rootText: src, host: fsHost });
        const b = compile({ file: 'm.sora', rootText: format(src).text!, host: fsHost });
        expect(a.keymap!.contract).toBe(ref.keymap!.contract);
        expect(b.keymap!.contract).toBe(ref.keymap!.contract);
      }),
      { numRuns: 60 },
    );
  });

  it('changes when a shape changes', () => {
    const a = compile({ file: 'm.sora', rootText: build([0, 1, 2, 3, 4, 5], '  '), host: fsHost });
    const b = compile({ file: 'm.sora', rootText: build([0, 1, 2, 3, 4, 5], '  '), host: fsHost, config: { set: [['dim', '16']] } });
    expect(a.keymap!.contract).not.toBe(b.keymap!.contract);
  });
});
