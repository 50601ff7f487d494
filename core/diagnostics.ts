/**
 * Diagnostics are data. Every user-facing problem found by any stage is a Diagnostic with a
 * stable code from the registry (core/codes.ts); errors that end a stage carry one in a
 * SoracError (core/errors.ts). Renderers (pretty code frame, compact lines, JSON) live in cli/.
 */
import { type Code, CODES, type Severity } from './codes.ts';

export type { Code, Severity };

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
  /** Every place looked at, in search order (resolution failures). */
  readonly looked?: readonly string[];
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

export function diag(
  code: Code,
  message: string,
  span?: Span,
  extra: { related?: RelatedInfo[]; hint?: string; notes?: string[]; severity?: Severity } = {},
): Diagnostic {
  return {
    code,
    severity: extra.severity ?? CODES[code].severity,
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
