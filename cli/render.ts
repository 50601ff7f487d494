/**
 * Diagnostic renderers. Stages produce Diagnostic data; this module turns it into text:
 * - pretty: a code frame with carets (colour only when the terminal supports it);
 * - compact: one `file:line:col: severity CODE: message` line plus hint/related lines;
 * - baseline: the stable format used by golden tests (no colour, no absolute paths);
 * - json: the data itself.
 * An error that ends a command (a SoracError) is rendered by renderError: `error: CODE: message`, the
 * places looked at, the hint; with --json it is `{ ok: false, error }` on stdout.
 */
import type { Diagnostic, Span } from '../core/diagnostics.ts';
import type { SoracError } from '../core/errors.ts';
import { printable } from '../core/printable.ts';

export type Sources = ReadonlyMap<string, string>;

const C = {
  red: (s: string) => `\x1b[31m${s}\x1b[39m`,
  yellow: (s: string) => `\x1b[33m${s}\x1b[39m`,
  blue: (s: string) => `\x1b[34m${s}\x1b[39m`,
  cyan: (s: string) => `\x1b[36m${s}\x1b[39m`,
  bold: (s: string) => `\x1b[1m${s}\x1b[22m`,
  dim: (s: string) => `\x1b[2m${s}\x1b[22m`,
};
const NOC = { red: (s: string) => s, yellow: (s: string) => s, blue: (s: string) => s, cyan: (s: string) => s, bold: (s: string) => s, dim: (s: string) => s };

export function loc(span: Span): string {
  // a value given on the command line (`--dtype k=v`) has no line and column
  if (span.file.startsWith('--')) return span.file;
  return `${span.file}:${span.start.line}:${span.start.col}`;
}

function frame(span: Span, sources: Sources, color: typeof C, label?: string): string[] {
  const text = sources.get(span.file);
  if (text === undefined) return [];
  const lines = text.split('\n');
  const out: string[] = [];
  const first = span.start.line;
  const last = Math.min(span.end.line, first + 2);
  const width = String(last).length;
  out.push(`${' '.repeat(width)} ${color.blue('|')}`);
  for (let ln = first; ln <= last; ln++) {
    const src = (lines[ln - 1] ?? '').replace(/\t/g, ' ');
    out.push(`${color.blue(String(ln).padStart(width))} ${color.blue('|')} ${src}`);
    const startCol = ln === first ? span.start.col : 1;
    const endCol = ln === span.end.line ? Math.max(span.end.col, startCol + 1) : src.length + 1;
    const carets = '^'.repeat(Math.max(1, Math.min(endCol, src.length + 1) - startCol));
    out.push(`${' '.repeat(width)} ${color.blue('|')} ${' '.repeat(Math.max(0, startCol - 1))}${color.red(carets)}${ln === last && label ? ' ' + label : ''}`);
  }
  return out;
}

export function renderPretty(d: Diagnostic, sources: Sources, useColor: boolean): string {
  const color = useColor ? C : NOC;
  const sev = d.severity === 'error' ? color.red(color.bold('error')) : d.severity === 'warning' ? color.yellow(color.bold('warning')) : color.cyan('info');
  const out = [`${sev}${color.bold(`[${d.code}]: ${d.message}`)}`];
  if (d.span) {
    out.push(`  ${color.blue('-->')} ${loc(d.span)}`);
    out.push(...frame(d.span, sources, color).map((l) => '  ' + l));
  }
  for (const r of d.related ?? []) {
    out.push(`  ${color.blue('=')} ${color.bold('note')}: ${r.message}`);
    out.push(`    ${color.blue('-->')} ${loc(r.span)}`);
    out.push(...frame(r.span, sources, color).map((l) => '    ' + l));
  }
  for (const n of d.notes ?? []) out.push(`  ${color.blue('=')} note: ${n}`);
  if (d.hint) out.push(`  ${color.blue('=')} ${color.bold('help')}: ${d.hint}`);
  return out.join('\n') + '\n';
}

export function renderCompact(d: Diagnostic): string {
  const out = [`${d.span ? loc(d.span) + ': ' : ''}${d.severity} ${d.code}: ${d.message}`];
  for (const r of d.related ?? []) out.push(`  ${loc(r.span)}: note: ${r.message}`);
  // continuation lines of a multi-line note or hint line up under its first line, as in SoracError.render()
  for (const n of d.notes ?? []) out.push(`  note: ${n.split('\n').join('\n        ')}`);
  if (d.hint) out.push(`  hint: ${d.hint.split('\n').join('\n        ')}`);
  return out.join('\n') + '\n';
}

/** Golden-test baseline: compact lines followed by the code frame, no colour. */
export function renderBaseline(ds: readonly Diagnostic[], sources: Sources): string {
  if (!ds.length) return 'no diagnostics\n';
  return ds.map((d) => renderPretty(d, sources, false)).join('\n');
}

export function renderDiagnostics(ds: readonly Diagnostic[], sources: Sources, opts: { pretty: boolean; color: boolean }): string {
  return ds.map((d) => (opts.pretty ? renderPretty(d, sources, opts.color) : renderCompact(d))).join(opts.pretty ? '\n' : '');
}

/** An error that ends a command, as text: `error: CODE: message`, where it looked, the hint. */
export function renderError(e: SoracError): string {
  // messages quote keys, paths and values from untrusted files: controls are shown escaped
  return `error: ${printable(e.render())}`;
}

/**
 * An error that ends a command, as the one JSON document a `--json` command prints:
 * `{ ok: false, error, diagnostics: [the error as a diagnostic] }` (the shape of a command's own
 * failure documents, `{ ok: false, diagnostics }`, plus the error's full envelope).
 */
export function errorJson(e: SoracError): string {
  // an error that sums up diagnostics (SORA7010 "does not compile") carries them in data.diagnostics
  const inner = (e.data as { diagnostics?: unknown } | undefined)?.diagnostics;
  return JSON.stringify({ ok: false, error: e.toJSON(), diagnostics: [e.toDiagnostic(), ...(Array.isArray(inner) ? inner : [])] }, null, 2) + '\n';
}

/** A bug in sorac under --json: still one document (the stack goes to stderr). */
export function internalErrorJson(message: string): string {
  return JSON.stringify({ ok: false, error: { code: 'internal', message, hint: 'this is a bug in sorac, please report it' }, diagnostics: [{ code: 'internal', severity: 'error', message }] }, null, 2) + '\n';
}
