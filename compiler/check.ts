/**
 * Entry-path semantics: which forward paths an entry has (its optional inputs present or absent),
 * checking every path of every entry, and choosing the path a given set of inputs takes.
 */
import { type Diagnostic, dedupeDiagnostics } from '../core/diagnostics.ts';
import { type CompiledModel, type EntryInfo, type Observer, traceEntry } from './compile.ts';

/** The optional inputs of `entry` that are not among `given`: the None path they take. */
export function absentInputs(entry: EntryInfo, given: Iterable<string>): string[] {
  const g = new Set(given);
  return entry.inputs.filter((i) => i.optional && !g.has(i.name)).map((i) => i.name);
}

/** Trace every entry with optional inputs present and absent; returns de-duplicated diagnostics. */
export function checkEntries(m: CompiledModel, opts: { readonly observe?: Observer; readonly checkOnly?: boolean } = {}): Diagnostic[] {
  const out: Diagnostic[] = [];
  // check only (`sorac check`, the editor): each distinct module call is traced once, across the entry
  // paths; the traces build no usable graph (a repeated call returns the first call's values)
  const memo = opts.checkOnly ? new Map() : undefined;
  for (const e of m.entries) {
    const optional = e.inputs.filter((i) => i.optional).map((i) => i.name);
    const variants: Set<string>[] = [new Set()];
    if (optional.length) variants.push(new Set(optional));
    for (const absent of variants) {
      const r = traceEntry(m, e.name, { absent, ...(opts.observe ? { observe: opts.observe } : {}), ...(memo ? { memo } : {}) });
      if (absent.size && !r.graph && r.diagnostics.every((d) => d.severity !== 'error' || d.code === 'SORA3009')) {
        // the model itself requires some "optional" inputs under this config (an assert in the
        // forward, as upstream raises): that is by design, not a defect of the absent path
        for (const d of r.diagnostics)
          out.push({ ...d, severity: 'info', message: `${e.name} with ${[...absent].join(', ')} absent stops at an assert: ${d.message}`, hint: 'pass these inputs when running this config' });
        continue;
      }
      out.push(...r.diagnostics);
    }
  }
  return dedupeDiagnostics(out).map((d) => (d.notes?.some((n) => n.startsWith('reported once')) ? { ...d, notes: d.notes.filter((n) => !n.startsWith('reported once')) } : d));
}

/** The source text of every file of the model's program, by display path (for code frames). */
export function modelSources(m: CompiledModel): Map<string, string> {
  return new Map([...m.program.files.values()].map((f) => [f.display, f.text]));
}
