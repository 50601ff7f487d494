/**
 * What the editor asks, answered from an Analysis: hover text (a value's symbolic shape and dtype, a
 * config key's value and where it was set, a layer's or builtin's signature and doc), definitions,
 * references, completion items and document symbols. Protocol-free (offsets and spans); server.ts
 * converts to LSP positions.
 */
import type * as A from '../grammar/ast.ts';
import { formatExpr, formatType } from '../grammar/format.ts';
import { BUILTINS } from '../compiler/builtins/index.ts';
import { BUILTIN_REFERENCE, signatureText } from '../compiler/builtins/reference.ts';
import type { LoadedFile } from '../compiler/program.ts';
import type { Value } from '../compiler/values.ts';
import type { Span } from '../core/diagnostics.ts';
import { type Analysis, mapOffset } from './analysis.ts';
import { configFields, docComment, namesInScope, occurrenceAt, occurrences, type Occurrence, references, resolve, type Target } from './navigate.ts';

/** A value as the hover shows it: `f32[B, T*S, 1152]`, `int = 1152`, `module Linear`. */
export function showValue(v: Value): string {
  switch (v.k) {
    case 'tensor':
      return `${v.t.dtype}[${v.t.shape.map(String).join(', ')}]`;
    case 'slot':
      return `${v.slot.kind} ${v.slot.dtype}[${v.slot.shape.join(', ')}]  (key ${v.slot.key})`;
    case 'int':
      return `int = ${v.v}`;
    case 'float':
      return `float = ${v.v}`;
    case 'bool':
      return `bool = ${v.v}`;
    case 'str':
      return `str = ${JSON.stringify(v.v)}`;
    case 'none':
      return 'none';
    case 'dim':
      return `int = ${v.s.toString()}  (symbolic)`;
    case 'list':
    case 'tuple': {
      const inner = v.items.slice(0, 6).map(showValue);
      const simple = v.items.every((x) => x.k === 'int' || x.k === 'float' || x.k === 'bool' || x.k === 'str');
      if (simple) return `${v.k} = [${v.items.map((x) => ('v' in x ? JSON.stringify(x.v) : '?')).join(', ')}]`;
      return `${v.k} of ${v.items.length}: (${inner.join(', ')}${v.items.length > 6 ? ', ...' : ''})`;
    }
    case 'module':
      return v.inst.decl ? `module ${v.inst.decl.name.name}` : `module namespace ${v.inst.path}`;
    case 'fn':
      return `fn ${v.decl.name.name}`;
    case 'builtin':
      return `builtin ${v.name}`;
    case 'dtype':
      return `dtype ${v.d}`;
    case 'moddef':
      return `module definition ${v.decl.name.name}`;
    case 'ctor':
      return `module ${v.decl.name.name}`;
  }
}

/** Where a config value came from, in words. */
function originText(v: Value, a: Analysis): string | undefined {
  const o = 'origin' in v ? v.origin : undefined;
  if (!o) return undefined;
  if (o.label) return `set by ${o.label}`;
  if (o.span) return `${o.span.file === a.display ? 'default' : 'from'} at ${o.span.file}:${o.span.start.line}:${o.span.start.col}`;
  return undefined;
}

export interface HoverResult {
  readonly markdown: string;
  readonly span: Span;
}

/** The recorded values at a span of a file (display path), from this analysis or, outside an edit, the last good one. */
function recordAt(a: Analysis, good: Analysis | undefined, display: string, offset: number): { span: Span; values: Value[]; count: number; stale: boolean } | undefined {
  const pick = (an: Analysis, off: number) => {
    if (display !== an.display) return undefined;
    const byFile = an.values;
    let best: { span: Span; values: Value[]; count: number } | undefined;
    for (const r of byFile.values()) {
      if (r.span.start.offset <= off && off <= r.span.end.offset && (!best || r.span.end.offset - r.span.start.offset < best.span.end.offset - best.span.start.offset)) best = r;
    }
    return best;
  };
  const now = pick(a, offset);
  if (now) return { ...now, stale: false };
  if (!good || good === a || display !== a.display) return undefined;
  const old = mapOffset(good.text, a.text, offset);
  if (old === undefined) return undefined;
  const r = pick(good, old);
  if (!r) return undefined;
  // only a span that lies wholly outside the edited region still means the same text
  const startNow = mapBack(good.text, a.text, r.span.start.offset);
  const endNow = mapBack(good.text, a.text, r.span.end.offset - 1);
  if (startNow === undefined || endNow === undefined) return undefined;
  const shift = startNow - r.span.start.offset;
  const span: Span = { file: r.span.file, start: { ...r.span.start, offset: startNow }, end: { ...r.span.end, offset: r.span.end.offset + shift } };
  return { span, values: r.values, count: r.count, stale: true };
}

/** An offset of `before` mapped to `now`, when outside the edited region. */
function mapBack(before: string, now: string, offset: number): number | undefined {
  return mapOffset(now, before, offset);
}

function valueLines(rec: { values: Value[]; count: number }): string[] {
  const shown = [...new Set(rec.values.map(showValue))];
  if (shown.length === 1) return [shown[0]!];
  // instances of a module (or entry paths) where this expression has different shapes: each shape
  return shown.map((s, i) => `${s}  (shape ${i + 1} of ${shown.length}, by instance)`);
}

function signatureOfModule(d: A.ModuleDecl): string {
  const params = d.isModel ? configFields(d) : d.params;
  return `${d.isModel ? 'model' : 'module'} ${d.name.name}(${params.map(paramText).join(', ')})`;
}

function signatureOfFn(d: A.FnDecl): string {
  const ret = d.ret?.length ? ` -> ${d.ret.length === 1 && !d.ret[0]!.name ? formatType(d.ret[0]!.type) : `(${d.ret.map((r) => `${r.name ? r.name.name + ': ' : ''}${formatType(r.type)}`).join(', ')})`}` : '';
  return `${d.entry ? 'entry' : 'fn'} ${d.name.name}(${d.params.map(paramText).join(', ')})${ret}`;
}

function paramText(p: A.Param): string {
  return `${p.name.name}${p.type ? `: ${formatType(p.type)}` : ''}${p.default ? ` = ${formatExpr(p.default)}` : ''}`;
}

function fileOf(a: Analysis, absPath: string): LoadedFile | undefined {
  return a.program?.files.get(absPath);
}

/** Hover at an offset of the analysed document. */
export function hover(a: Analysis, good: Analysis | undefined, offset: number): HoverResult | undefined {
  const occ = occurrences(a.parsed.ast);
  const o = occurrenceAt(occ, offset);
  const doc = { path: a.file, display: a.display };
  const target = o ? resolve(o, doc, a.program) : undefined;
  const parts: string[] = [];
  let span: Span | undefined = o?.span;
  // a layer, function or builtin: its signature and doc
  if (target?.kind === 'builtin') {
    const ref = BUILTIN_REFERENCE[target.name];
    parts.push('```sora\n' + signatureText(target.name) + (ref ? ` -> ${ref.returns}` : '') + '\n```', `${ref?.doc ?? ''} (builtin; docs/language.md#builtin-reference)`.trim());
  } else if (target?.kind === 'decl' && target.decl && target.decl.kind !== 'let') {
    const d = target.decl.decl;
    const sig = d.kind === 'module' ? signatureOfModule(d) : signatureOfFn(d);
    parts.push('```sora\n' + sig + '\n```');
    const f = target.decl.file;
    const docText = docComment(f.ast, d.span, f.text);
    if (docText) parts.push(docText);
    parts.push(`defined in ${f.display}:${target.span.start.line}`);
  }
  // the value this expression or binding took under the current config
  const rec = recordAt(a, good, a.display, offset);
  const valueSpan = rec && (!o || (rec.span.start.offset <= o.span.start.offset && rec.span.end.offset >= o.span.end.offset) || rec.span.end.offset - rec.span.start.offset <= o.span.end.offset - o.span.start.offset) ? rec : undefined;
  const callable = (v: Value | undefined) => !!v && (v.k === 'builtin' || v.k === 'moddef' || v.k === 'fn');
  if (valueSpan && !callable(valueSpan.values[0]) && !(target?.kind === 'decl' && target.decl && target.decl.kind !== 'let' && o?.span === valueSpan.span)) {
    const label = o && o.span.start.offset === valueSpan.span.start.offset && o.span.end.offset === valueSpan.span.end.offset ? o.name : a.text.slice(valueSpan.span.start.offset, valueSpan.span.end.offset).replace(/\s+/g, ' ');
    const short = label.length > 60 ? label.slice(0, 57) + '...' : label;
    const lines = valueLines(valueSpan);
    parts.unshift('```sora\n' + lines.map((l) => `${short}: ${l}`).join('\n') + '\n```');
    const origin = valueSpan.values[0] ? originText(valueSpan.values[0], a) : undefined;
    if (origin && ((target?.kind === 'decl' && target.param) || o?.role === 'decl')) parts.push(origin);
    if (valueSpan.stale) parts.push('_(from the last analysis without errors)_');
    span = valueSpan.span;
  } else if (target?.kind === 'decl' && target.param && target.owner?.kind === 'module' && target.owner.isModel) {
    // a config key with no recorded value (the model did not compile): its declaration
    parts.push('```sora\nconfig ' + paramText(target.param) + '\n```');
  } else if (target?.kind === 'symbol') {
    parts.push('```sora\n' + target.name + ': int  (shape symbol of the inputs)\n```');
  }
  if (target?.kind === 'decl' && target.param && target.owner?.kind === 'module' && target.owner.isModel && a.model?.config && target.name in a.model.config) {
    parts.push(`config key \`${target.name}\`: declared \`${paramText(target.param)}\``);
  }
  if (!parts.length || !span) return undefined;
  return { markdown: parts.join('\n\n'), span };
}

/** Go to definition: the declaration a name at `offset` refers to. */
export function definition(a: Analysis, offset: number): { file: string; span: Span } | undefined {
  const o = occurrenceAt(occurrences(a.parsed.ast), offset);
  if (!o) return undefined;
  const t = resolve(o, { path: a.file, display: a.display }, a.program);
  if (!t || t.kind === 'builtin') return undefined;
  return { file: t.file, span: t.span };
}

/** Find references: every use of the declaration at `offset`, across the program's files. */
export function findReferences(a: Analysis, offset: number, includeDeclaration: boolean): { file: string; span: Span }[] {
  const occ = occurrences(a.parsed.ast);
  const o = occurrenceAt(occ, offset);
  if (!o) return [];
  const t = resolve(o, { path: a.file, display: a.display }, a.program);
  if (!t || t.kind === 'builtin') return [];
  const root = fileOf(a, a.file);
  const all = a.program
    ? references(t, a.program, root ? { file: root, occ } : undefined)
    : occ.filter((x) => x.name === t.name && resolve(x, { path: a.file, display: a.display }, undefined)?.kind === 'decl').map((x) => ({ file: a.file, span: x.span }));
  return includeDeclaration ? all : all.filter((r) => !(r.file === t.file && r.span.start.offset === t.span.start.offset));
}

export interface Completion {
  readonly label: string;
  readonly kind: 'builtin' | 'module' | 'fn' | 'config' | 'local' | 'member' | 'axis';
  readonly detail?: string;
  readonly doc?: string;
}

/** Completion at an offset: rearrange axis names inside a pattern string, else the names in scope and the builtins. */
export function complete(a: Analysis, offset: number): Completion[] {
  const ast = a.parsed.ast;
  const out: Completion[] = [];
  const axes = rearrangeAxes(a, offset);
  if (axes) return axes.map((x) => ({ label: x, kind: 'axis', detail: 'axis of a rearrange pattern in this function' }));
  for (const n of namesInScope(ast, offset, { path: a.file }, a.program)) {
    if (n.decl?.kind === 'module') out.push({ label: n.name, kind: 'module', detail: signatureOfModule(n.decl.decl) });
    else if (n.decl?.kind === 'fn') out.push({ label: n.name, kind: 'fn', detail: signatureOfFn(n.decl.decl) });
    else if (n.kind === 'config') out.push({ label: n.name, kind: 'config', detail: a.model?.config && n.name in a.model.config ? `config = ${JSON.stringify(a.model.config[n.name])}` : 'config key' });
    else out.push({ label: n.name, kind: n.kind === 'global' ? 'fn' : n.kind === 'member' ? 'member' : 'local' });
  }
  for (const b of Object.keys(BUILTINS).sort()) if (!out.some((c) => c.label === b)) out.push({ label: b, kind: 'builtin', detail: signatureText(b), ...(BUILTIN_REFERENCE[b] ? { doc: BUILTIN_REFERENCE[b]!.doc } : {}) });
  return out;
}

/** Inside a string argument of `rearrange(...)`: the axis names used by the patterns of the enclosing function. */
function rearrangeAxes(a: Analysis, offset: number): string[] | undefined {
  let inPattern = false;
  const names = new Set<string>();
  let fnSpan: Span | undefined;
  const visit = (n: unknown, fn: Span | undefined): void => {
    if (Array.isArray(n)) return n.forEach((x) => visit(x, fn));
    if (!n || typeof n !== 'object') return;
    const node = n as { kind?: string; span?: Span } & Record<string, unknown>;
    const here = node.kind === 'fn' && node.span ? node.span : fn;
    if (node.kind === 'call') {
      const c = node as unknown as A.CallExpr;
      if (c.callee.kind === 'name' && c.callee.name === 'rearrange') {
        const pat = c.args[1]?.value;
        if (pat?.kind === 'str') {
          if (pat.span.start.offset < offset && offset < pat.span.end.offset) {
            inPattern = true;
            fnSpan = here;
          }
          for (const m of pat.value.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) names.add(`${here?.start.offset ?? -1}|${m[0]}`);
        }
      }
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'span' && v && typeof v === 'object') visit(v, here);
  };
  visit(a.parsed.ast.decls, undefined);
  if (!inPattern) return undefined;
  const key = `${fnSpan?.start.offset ?? -1}|`;
  return [...names].filter((n) => n.startsWith(key)).map((n) => n.slice(key.length)).sort();
}

export interface DocSymbol {
  readonly name: string;
  readonly kind: 'model' | 'module' | 'entry' | 'fn' | 'config' | 'member' | 'pipeline';
  readonly detail?: string;
  readonly span: Span;
  readonly selection: Span;
  readonly children: DocSymbol[];
}

/** Document outline: models and modules, their config keys, members and functions (entries marked). */
export function documentSymbols(a: Analysis): DocSymbol[] {
  const out: DocSymbol[] = [];
  for (const d of a.parsed.ast.decls) {
    if (d.kind === 'module') {
      const children: DocSymbol[] = [];
      for (const m of d.members) {
        if (m.kind === 'config') {
          children.push({ name: 'config', kind: 'config', span: m.span, selection: m.span, children: m.fields.map((f) => ({ name: f.name.name, kind: 'config', ...(f.type ? { detail: formatType(f.type) } : {}), span: f.span, selection: f.name.span, children: [] })) });
        } else if (m.kind === 'fn') children.push({ name: m.name.name, kind: m.entry ? 'entry' : 'fn', detail: signatureOfFn(m), span: m.span, selection: m.name.span, children: [] });
        else if (m.kind === 'sub' || m.kind === 'param' || m.kind === 'buffer' || m.kind === 'alias') children.push({ name: m.path.segments.map((s) => s.name).join('.'), kind: 'member', detail: m.kind, span: m.span, selection: m.path.span, children: [] });
      }
      out.push({ name: d.name.name, kind: d.isModel ? 'model' : 'module', detail: signatureOfModule(d), span: d.span, selection: d.name.span, children });
    } else if (d.kind === 'fn') out.push({ name: d.name.name, kind: 'fn', detail: signatureOfFn(d), span: d.span, selection: d.name.span, children: [] });
    else if (d.kind === 'pipeline') out.push({ name: d.name.name, kind: 'pipeline', span: d.span, selection: d.name.span, children: [] });
  }
  return out;
}

export type { Occurrence, Target };
