/**
 * One analysis of an editor document: the same compile + entry-path check as `sorac check` (so the
 * same codes, spans and related locations), with every value the elaboration and the traces see
 * recorded by span (the hovers), over the editor's unsaved text. Pure data out; the protocol is in
 * server.ts.
 */
import * as path from 'node:path';
import { checkEntries } from '../compiler/check.ts';
import { compile, type CompiledModel, type ConfigInput } from '../compiler/compile.ts';
import { compilePipeline } from '../compiler/pipeline.ts';
import { fsHost } from '../compiler/host.ts';
import { displayPath, type Host, type ParseCache, type Program } from '../compiler/program.ts';
import type { Value } from '../compiler/values.ts';
import { type Diagnostic, type Span, hasErrors } from '../core/diagnostics.ts';
import { parse, type ParseResult } from '../grammar/parser.ts';

/** The values one source range took, in evaluation order (up to MAX_SAMPLES distinct renderings). */
export interface ValueRecord {
  readonly span: Span;
  readonly values: Value[];
  /** how many times it was evaluated (a block instantiated 28 times: 28) */
  count: number;
}

export interface Analysis {
  /** the document's absolute path */
  readonly file: string;
  readonly text: string;
  readonly version: number;
  /** the document's own parse (with the parser's recovery: an AST even when the text has errors) */
  readonly parsed: ParseResult;
  /** the compiled model, when the document is a model file that compiled */
  readonly model?: CompiledModel;
  readonly program?: Program;
  /** what `sorac check` reports for this file under the same config */
  readonly diagnostics: Diagnostic[];
  /** the document's recorded values, by `start * 2^22 + end` offsets (sources are at most 2 MiB) */
  readonly values: ReadonlyMap<number, ValueRecord>;
  /** the display path of the document (its spans' `file`) */
  readonly display: string;
  /** milliseconds the analysis took */
  readonly ms: number;
}

/** How many evaluations of one span keep their value (hovers show up to this many different shapes). */
const MAX_SAMPLES = 4;
const KEY = 2 ** 22;

export interface AnalyzeOptions {
  readonly file: string;
  readonly text: string;
  readonly version: number;
  /** the workspace root: display paths are relative to it */
  readonly cwd: string;
  readonly config?: ConfigInput;
  readonly model?: string;
  /** other open documents' unsaved text, by absolute path (imports read these before the disk) */
  readonly overlay?: ReadonlyMap<string, string>;
  /** parses kept between analyses (the server keeps one: std/ and unchanged imports are parsed once) */
  readonly parseCache?: ParseCache;
}

export function analyze(o: AnalyzeOptions): Analysis {
  const t0 = performance.now();
  const values = new Map<number, ValueRecord>();
  // only the document's own values are hovered (an imported file is analysed as its own document)
  const own = displayPath(path.resolve(o.cwd, o.file), o.cwd);
  const observe = (span: Span, v: Value): void => {
    if (span.file !== own) return;
    const key = span.start.offset * KEY + span.end.offset;
    const r = values.get(key);
    if (!r) values.set(key, { span, values: [v], count: 1 });
    else {
      r.count++;
      if (r.values.length < MAX_SAMPLES) r.values.push(v);
    }
  };
  const host: Host = o.overlay?.size ? { readFile: (p) => o.overlay!.get(p) ?? fsHost.readFile(p) } : fsHost;
  // which check `sorac check` would run (a pipeline's or a model's), or none for a file of layers only;
  // read from the declarations' keywords at line starts, so that the text is parsed once, by the compiler
  const kind = /^[ \t]*pipeline[ \t]+[A-Za-z_]/m.test(o.text) ? 'pipeline' : /^[ \t]*model[ \t]+[A-Za-z_]/m.test(o.text) ? 'model' : 'library';
  let model: CompiledModel | undefined;
  let program: Program;
  let diagnostics: Diagnostic[];
  if (kind === 'pipeline') {
    // as `sorac check PIPELINE.sora`: the components and their fit
    const p = compilePipeline({ file: o.file, host, rootText: o.text, cwd: o.cwd, ...(o.config?.set ? { set: o.config.set } : {}) });
    program = p.program;
    diagnostics = [...p.diagnostics];
  } else {
    model = compile({ file: o.file, host, rootText: o.text, cwd: o.cwd, ...(o.parseCache ? { parseCache: o.parseCache } : {}), ...(o.config ? { config: o.config } : {}), ...(o.model ? { model: o.model } : {}), observe });
    program = model.program;
    // a file of layers only (std/nn.sora) has no model to check: its own and its imports' problems
    diagnostics = kind === 'library' ? [...program.diagnostics] : [...model.diagnostics];
    // the same rule as api/model.ts checkModel: entry paths are checked once the model compiles
    if (kind === 'model' && !hasErrors(diagnostics)) diagnostics.push(...checkEntries(model, { observe, checkOnly: true }));
  }
  const display = program.root.display;
  const parsed = program.root.text === o.text ? { ast: program.root.ast, diagnostics: program.diagnostics.filter((d) => d.span?.file === display) } : parse(o.text, display);
  return { file: o.file, text: o.text, version: o.version, parsed, ...(model ? { model } : {}), program, diagnostics, values, display, ms: performance.now() - t0 };
}

/** Whether the analysis traced anything (a compiled model): the hovers it can answer. */
export function hasValues(a: Analysis): boolean {
  return a.values.size > 0;
}

/**
 * Map an offset in `now` to the same character in `before`, when it lies outside the edited region
 * (the longest common prefix and suffix of the two texts); undefined inside it.
 */
export function mapOffset(before: string, now: string, offset: number): number | undefined {
  let p = 0;
  const n = Math.min(before.length, now.length);
  while (p < n && before.charCodeAt(p) === now.charCodeAt(p)) p++;
  let s = 0;
  while (s < n - p && before.charCodeAt(before.length - 1 - s) === now.charCodeAt(now.length - 1 - s)) s++;
  if (offset < p) return offset;
  if (offset >= now.length - s) return offset - (now.length - before.length);
  return undefined;
}

/** The edited region of `before` (offsets [start, end)) that differs from `now`. */
export function editedRange(before: string, now: string): { start: number; end: number } {
  let p = 0;
  const n = Math.min(before.length, now.length);
  while (p < n && before.charCodeAt(p) === now.charCodeAt(p)) p++;
  let s = 0;
  while (s < n - p && before.charCodeAt(before.length - 1 - s) === now.charCodeAt(now.length - 1 - s)) s++;
  return { start: p, end: before.length - s };
}

/** The absolute path of a display path of this analysis' program. */
export function absPath(a: Analysis, display: string, cwd: string): string {
  for (const f of a.program?.files.values() ?? []) if (f.display === display) return f.path;
  return path.resolve(cwd, display);
}
