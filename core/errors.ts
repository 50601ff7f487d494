/**
 * The error envelope. Every user-facing problem that ends a stage is thrown as a SoracError: a
 * stable code from the registry (core/codes.ts), a message that says what and where, and
 * optionally a hint (how to fix it), the places looked at, the path concerned, source spans and
 * notes. The CLI renders any SoracError by its code (text or `--json`) and exits with the code's
 * exit status; nothing maps errors by class name.
 *
 * A few subclasses add data a caller needs to branch on (the violated safetensors rule, the kind
 * of refused pickle content, ...); they keep the envelope's shape and all have a code.
 *
 * InternalError is the other kind: a broken invariant inside sorac (exit code 70, "please report").
 */
import { type Code, CODES, docsAnchor } from './codes.ts';
import type { Diagnostic, RelatedInfo, Span } from './diagnostics.ts';

export interface ErrorDetails {
  /** How to fix it (may span lines). */
  readonly hint?: string;
  /** Every place looked at, in search order (resolution failures). */
  readonly looked?: readonly string[];
  /** The file or directory the problem is about. */
  readonly path?: string;
  readonly span?: Span;
  readonly related?: readonly RelatedInfo[];
  readonly notes?: readonly string[];
  /** Structured data for machines (e.g. a load report); rendered into JSON output as `data`. */
  readonly data?: unknown;
  readonly cause?: unknown;
}

export class SoracError extends Error {
  readonly code: Code;
  readonly hint?: string;
  readonly looked: readonly string[];
  readonly path?: string;
  readonly span?: Span;
  readonly related?: readonly RelatedInfo[];
  readonly notes?: readonly string[];
  readonly data?: unknown;

  constructor(code: Code, message: string, details: ErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'SoracError';
    this.code = code;
    this.looked = details.looked ?? [];
    if (details.hint !== undefined) this.hint = details.hint;
    if (details.path !== undefined) this.path = details.path;
    if (details.span) this.span = details.span;
    if (details.related?.length) this.related = details.related;
    if (details.notes?.length) this.notes = details.notes;
    if (details.data !== undefined) this.data = details.data;
  }

  /** The CLI exit status for this error (the registry's, 1 by default). */
  get exitCode(): number {
    return CODES[this.code].exit ?? 1;
  }

  get docs(): string {
    return docsAnchor(this.code);
  }

  toDiagnostic(): Diagnostic {
    return {
      code: this.code,
      severity: 'error',
      message: this.message,
      ...(this.span ? { span: this.span } : {}),
      ...(this.related ? { related: this.related } : {}),
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.notes ? { notes: this.notes } : {}),
      ...(this.looked.length ? { looked: this.looked } : {}),
    };
  }

  /** Plain-text rendering: `CODE: message`, the places looked at, the hint. */
  render(): string {
    let s = `${this.code}: ${this.message}\n`;
    const at = (sp: Span) => `${sp.file}:${sp.start.line}:${sp.start.col}`;
    if (this.span) s += `  at ${at(this.span)}\n`;
    for (const r of this.related ?? []) s += `  ${at(r.span)}: note: ${r.message}\n`;
    for (const n of this.notes ?? []) s += `  note: ${n}\n`;
    if (this.looked.length) {
      s += '  looked in:\n';
      for (const l of this.looked) s += `    - ${l}\n`;
    }
    if (this.hint) s += `  hint: ${this.hint.split('\n').join('\n        ')}\n`;
    return s;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint !== undefined ? { hint: this.hint } : {}),
      looked: this.looked,
      ...(this.path !== undefined ? { path: this.path } : {}),
      ...(this.span ? { span: this.span } : {}),
      ...(this.related ? { related: this.related } : {}),
      ...(this.notes ? { notes: this.notes } : {}),
      ...(this.data !== undefined ? { data: this.data } : {}),
      docs: this.docs,
    };
  }
}

export function isSoracError(e: unknown): e is SoracError {
  return e instanceof SoracError;
}

/** Thrown for broken internal invariants only (distinct exit code 70). User errors are SoracErrors. */
export class InternalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InternalError';
  }
}
