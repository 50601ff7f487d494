/** .sora tokens (chevrotain). `#` starts a line comment; `//` is floor division. */
import { createToken, Lexer, type TokenType } from 'chevrotain';

/** Any name-like token: identifiers and keywords (key segments after a dot may be keywords, e.g. `spatial_vae.module`). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA });

/*
 * Every token states the characters it can start with (`start_chars_hint`) and whether it can span
 * a line break (`line_breaks`), which chevrotain would otherwise work out at each start by parsing
 * every pattern with its regexp-to-ast library (a few ms of each CLI start). tests/properties.test.ts
 * checks that this lexer tokenizes exactly as one built from the bare patterns.
 */
const chars = (ranges: string): string[] => {
  const out: string[] = [];
  for (const r of ranges.split(' ')) for (let c = r.charCodeAt(0); c <= r.charCodeAt(r.length - 1); c++) out.push(String.fromCharCode(c));
  return out;
};
const LETTER_ = chars('A-Z a-z _');
const DIGIT = chars('0-9');

export const Ident = createToken({ name: 'Ident', pattern: /[A-Za-z_][A-Za-z0-9_]*/, categories: [Name], start_chars_hint: LETTER_, line_breaks: false });

const kw = (word: string) => createToken({ name: 'Kw_' + word, pattern: new RegExp(word + '(?![A-Za-z0-9_])'), longer_alt: Ident, categories: [Name], start_chars_hint: [word[0]!], line_breaks: false });

export const KEYWORDS = ['module', 'model', 'fn', 'entry', 'let', 'param', 'buffer', 'return', 'if', 'else', 'for', 'in', 'assert', 'import', 'from', 'true', 'false', 'none', 'and', 'or', 'not', 'is'] as const;
export const Kw = Object.fromEntries(KEYWORDS.map((w) => [w, kw(w)])) as Record<(typeof KEYWORDS)[number], TokenType>;

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\uFEFF]+/, group: Lexer.SKIPPED, start_chars_hint: [' ', '\t', '\r', '\n', '\uFEFF'], line_breaks: true });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: 'comments', start_chars_hint: ['#'], line_breaks: false });
export const Float = createToken({ name: 'Float', pattern: /(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)/, start_chars_hint: DIGIT, line_breaks: false });
export const Int = createToken({ name: 'Int', pattern: /\d+/, start_chars_hint: DIGIT, line_breaks: false });
export const Str = createToken({ name: 'Str', pattern: /"(?:[^"\\\n\r]|\\.)*"/, start_chars_hint: ['"'], line_breaks: false });
export const UnterminatedStr = createToken({ name: 'UnterminatedStr', pattern: /"(?:[^"\\\n\r]|\\.)*/, start_chars_hint: ['"'], line_breaks: false });

const p = (name: string, pattern: string) => createToken({ name, pattern: new RegExp(pattern.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), start_chars_hint: [pattern[0]!], line_breaks: false });
export const Ellipsis = p('Ellipsis', '...');
export const Arrow = p('Arrow', '->');
export const PowOp = p('Pow', '**');
export const FloorDiv = p('FloorDiv', '//');
export const EqEq = p('EqEq', '==');
export const NotEq = p('NotEq', '!=');
export const LtEq = p('LtEq', '<=');
export const GtEq = p('GtEq', '>=');
export const PlusEq = p('PlusEq', '+=');
export const MinusEq = p('MinusEq', '-=');
export const StarEq = p('StarEq', '*=');
export const SlashEq = p('SlashEq', '/=');
export const Lt = p('Lt', '<');
export const Gt = p('Gt', '>');
export const Eq = p('Eq', '=');
export const Plus = p('Plus', '+');
export const Minus = p('Minus', '-');
export const Star = p('Star', '*');
export const Slash = p('Slash', '/');
export const Percent = p('Percent', '%');
export const At = p('At', '@');
export const Question = p('Question', '?');
export const LParen = p('LParen', '(');
export const RParen = p('RParen', ')');
export const LBrack = p('LBrack', '[');
export const RBrack = p('RBrack', ']');
export const LBrace = p('LBrace', '{');
export const RBrace = p('RBrace', '}');
export const Comma = p('Comma', ',');
export const Colon = p('Colon', ':');
export const Semi = p('Semi', ';');
export const Dot = p('Dot', '.');

export const allTokens: TokenType[] = [
  Name,
  WhiteSpace,
  Comment,
  Float,
  Int,
  Str,
  UnterminatedStr,
  ...Object.values(Kw),
  Ident,
  Ellipsis,
  Arrow,
  PowOp,
  FloorDiv,
  EqEq,
  NotEq,
  LtEq,
  GtEq,
  PlusEq,
  MinusEq,
  StarEq,
  SlashEq,
  Lt,
  Gt,
  Eq,
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  At,
  Question,
  LParen,
  RParen,
  LBrack,
  RBrack,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Semi,
  Dot,
];

/**
 * The shared lexer skips chevrotain's token-definition validations (unreachable or empty-matching
 * patterns, anchors...): they depend only on the token set, not the input, and cost a few ms at each
 * CLI start. validateLexer() runs them, with the first-character optimisation required, in
 * tests/properties.test.ts.
 */
export const soraLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false, skipValidations: true });

/** Build the lexer with chevrotain's validations on and its optimisations required; throws on a definition error. */
export function validateLexer(): void {
  new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: true });
}
