/**
 * Diagnostics are data. Every user-facing problem found by any stage is a Diagnostic with a
 * stable code from the registry below; renderers (pretty code frame, JSON) live in cli/.
 *
 * Code ranges: SORA1xxx syntax, 2xxx names/binding, 3xxx shapes/types/dtypes, 4xxx emission,
 * 5xxx checkpoints/runtime, 6xxx migrations, 7xxx configuration/CLI input.
 * A code is never reused for a different meaning once released.
 */

export interface Position {
  /** 0-based UTF-16 offset */
  readonly offset: number;
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly col: number;
}

export interface Span {
  readonly file: string;
  readonly start: Position;
  readonly end: Position;
}

export type Severity = 'error' | 'warning' | 'info';

export interface RelatedInfo {
  readonly span: Span;
  readonly message: string;
}

export interface Diagnostic {
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly span?: Span;
  readonly related?: readonly RelatedInfo[];
  /** How to fix it, one line. */
  readonly hint?: string;
  readonly notes?: readonly string[];
}

/** Thrown for broken internal invariants only (distinct exit code 70). User errors are Diagnostics. */
export class InternalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InternalError';
  }
}

/** Thrown to abort a stage that has already recorded its diagnostics. */
export class DiagnosticError extends Error {
  constructor(public readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
    this.name = 'DiagnosticError';
  }
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** Registry: code -> short title (documented in docs/diagnostics.md). */
export const CODES = {
  // 1xxx syntax
  SORA1001: 'unexpected character',
  SORA1002: 'syntax error',
  SORA1003: 'unterminated string',
  SORA1004: 'source too large or too deeply nested',
  SORA1005: 'invalid source encoding',
  // 2xxx names
  SORA2001: 'unknown name',
  SORA2002: 'duplicate declaration',
  SORA2003: 'unknown module',
  SORA2004: 'import not found',
  SORA2005: 'unknown config key',
  SORA2006: 'wrong number of arguments',
  SORA2007: 'unknown keyword argument',
  SORA2008: 'missing argument',
  SORA2009: 'unknown member',
  SORA2010: 'no entry point',
  SORA2011: 'recursion',
  // 3xxx types, shapes, dtypes
  SORA3001: 'type mismatch',
  SORA3002: 'shape mismatch',
  SORA3003: 'not divisible',
  SORA3004: 'rank mismatch',
  SORA3005: 'broadcast mismatch',
  SORA3006: 'matmul inner dimensions differ',
  SORA3007: 'rearrange pattern does not fit',
  SORA3008: 'dtype conflict',
  SORA3009: 'assertion failed',
  SORA3010: 'invalid shape',
  SORA3011: 'value is not known at compile time',
  SORA3012: 'bad argument value',
  SORA3013: 'output mismatch',
  SORA3014: 'division by zero',
  // 4xxx emission
  SORA4001: 'unsupported op for target opset',
  // 7xxx configuration and CLI input
  SORA7001: 'cannot read file',
  SORA7002: 'invalid config file',
  SORA7003: 'invalid --set value',
  SORA7004: 'unknown config key (ignored)',
  SORA7005: 'config value has wrong type',
  SORA7006: 'nested config objects unwrapped',
} as const;

export type Code = keyof typeof CODES;

export function diag(
  code: Code,
  message: string,
  span?: Span,
  extra: { related?: RelatedInfo[]; hint?: string; notes?: string[]; severity?: Severity } = {},
): Diagnostic {
  return {
    code,
    severity: extra.severity ?? (code === 'SORA7004' ? 'warning' : 'error'),
    message,
    ...(span ? { span } : {}),
    ...(extra.related && extra.related.length ? { related: extra.related } : {}),
    ...(extra.hint ? { hint: extra.hint } : {}),
    ...(extra.notes && extra.notes.length ? { notes: extra.notes } : {}),
  };
}

/**
 * Collapse repeats of the same diagnostic (same code, location and message), e.g. one failing
 * assert in a block instantiated 28 times, into one entry with a note giving the count.
 */
export function dedupeDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const counts = new Map<string, { index: number; n: number }>();
  for (const d of ds) {
    const key = `${d.code}|${d.span?.file}:${d.span?.start.offset}|${d.message}`;
    const c = counts.get(key);
    if (c) {
      c.n++;
      continue;
    }
    counts.set(key, { index: out.length, n: 1 });
    out.push(d);
  }
  for (const { index, n } of counts.values()) {
    if (n > 1) out[index] = { ...out[index]!, notes: [...(out[index]!.notes ?? []), `reported once for ${n} instances`] };
  }
  return out;
}
