/**
 * Names in .sora source: which declaration a name refers to (locals, parameters, module members,
 * config fields, file-level and imported declarations, builtins), every reference to a declaration,
 * and the names in scope at a position (completion). Works on the parser's AST alone, so it answers
 * on text with syntax errors too (the parser recovers).
 */
import type * as A from '../grammar/ast.ts';
import type { Span } from '../core/diagnostics.ts';
import type { GlobalDecl, LoadedFile, Program } from '../compiler/program.ts';
import { isBuiltin } from '../compiler/builtins/index.ts';

/** A name occurrence: a reference (`ref`, `assign`), a declaration (`decl`) or an imported name (`import`). */
export interface Occurrence {
  readonly name: string;
  readonly span: Span;
  readonly role: 'ref' | 'assign' | 'decl' | 'import';
  /** enclosing AST nodes, outermost first */
  readonly chain: readonly object[];
}

type Node = { readonly kind?: string; readonly span?: Span } & Record<string, unknown>;

/** Every name occurrence of a file (member names after `.`, keyword-argument names and dtype names are not bindings and are left out). */
export function occurrences(ast: A.SourceFile): Occurrence[] {
  const out: Occurrence[] = [];
  const visit = (n: unknown, chain: object[]): void => {
    if (Array.isArray(n)) {
      for (const x of n) visit(x, chain);
      return;
    }
    if (!n || typeof n !== 'object') return;
    const node = n as Node;
    const kind = node.kind;
    const here = [...chain, node];
    const ident = (i: A.Ident | undefined, role: Occurrence['role']) => {
      if (i && typeof i.name === 'string' && i.span) out.push({ name: i.name, span: i.span, role, chain: here });
    };
    switch (kind) {
      case 'name':
        out.push({ name: (node as unknown as A.NameExpr).name, span: node.span!, role: 'ref', chain });
        return;
      case 'import': {
        const d = node as unknown as A.ImportDecl;
        for (const i of d.names) ident(i, 'import');
        return;
      }
      case 'module': {
        const d = node as unknown as A.ModuleDecl;
        ident(d.name, 'decl');
        for (const p of d.params) param(p, here);
        visit(d.members, here);
        return;
      }
      case 'pipeline':
        ident((node as unknown as A.PipelineDecl).name, 'decl');
        visit((node as unknown as A.PipelineDecl).members, here);
        return;
      case 'component':
        ident((node as unknown as A.ComponentDecl).name, 'decl');
        visit((node as unknown as A.ComponentDecl).value, here);
        return;
      case 'config':
        for (const p of (node as unknown as A.ConfigBlock).fields) param(p, here);
        return;
      case 'dtype':
        for (const r of (node as unknown as A.DtypeBlock).rules) visit(r.value, here);
        return;
      case 'fn': {
        const d = node as unknown as A.FnDecl;
        ident(d.name, 'decl');
        for (const p of d.params) param(p, here);
        for (const r of d.ret ?? []) visit(r.type.dims, here);
        visit(d.body, here);
        return;
      }
      case 'param':
      case 'buffer': {
        const d = node as unknown as A.TensorDecl;
        ident(d.path.segments[0], 'decl');
        visit(d.shape, here);
        visit(d.cond, here);
        return;
      }
      case 'alias': {
        const d = node as unknown as A.AliasDecl;
        ident(d.path.segments[0], 'decl');
        ident(d.target.segments[0], 'ref');
        return;
      }
      case 'sub': {
        const d = node as unknown as A.SubDecl;
        ident(d.path.segments[0], 'decl');
        visit(d.value, here);
        visit(d.cond, here);
        return;
      }
      case 'let': {
        const d = node as unknown as A.LetStmt;
        visit(d.value, here);
        for (const i of d.names) ident(i, 'decl');
        return;
      }
      case 'assign': {
        const d = node as unknown as A.AssignStmt;
        visit(d.value, here);
        ident(d.target, 'assign');
        return;
      }
      case 'for': {
        const d = node as unknown as A.ForStmt;
        visit(d.iter, here);
        ident(d.name, 'decl');
        visit(d.body, here);
        return;
      }
      case 'comp': {
        const d = node as unknown as A.CompExpr;
        visit(d.iter, here);
        ident(d.name, 'decl');
        visit(d.element, here);
        return;
      }
      case 'member':
        visit((node as unknown as A.MemberExpr).object, here);
        return;
      case 'call': {
        const d = node as unknown as A.CallExpr;
        visit(d.callee, here);
        for (const a of d.args) visit(a.value, here);
        return;
      }
      case 'type':
        visit((node as unknown as A.TypeExpr).dims, here);
        return;
      case 'file':
        visit((node as unknown as A.SourceFile).decls, here);
        return;
      default:
        for (const [k, v] of Object.entries(node)) if (k !== 'span' && k !== 'comments' && v && typeof v === 'object') visit(v, here);
    }
  };
  const param = (p: A.Param, chain: object[]) => {
    out.push({ name: p.name.name, span: p.name.span, role: 'decl', chain: [...chain, p] });
    if (p.type) visit(p.type, [...chain, p]);
    if (p.default) visit(p.default, [...chain, p]);
  };
  visit(ast, []);
  return out;
}

/** What a name refers to. */
export type Target =
  | { readonly kind: 'decl'; readonly name: string; readonly file: string; readonly span: Span; readonly decl?: GlobalDecl; readonly param?: A.Param; readonly owner?: A.ModuleDecl | A.FnDecl }
  | { readonly kind: 'builtin'; readonly name: string }
  | { readonly kind: 'symbol'; readonly name: string; readonly file: string; readonly span: Span };

const within = (s: Span, offset: number) => s.start.offset <= offset && offset <= s.end.offset;

/** The occurrence at an offset (the cursor just after a name counts). */
export function occurrenceAt(occ: readonly Occurrence[], offset: number): Occurrence | undefined {
  let best: Occurrence | undefined;
  for (const o of occ) if (within(o.span, offset) && (!best || o.span.end.offset - o.span.start.offset < best.span.end.offset - best.span.start.offset)) best = o;
  return best;
}

/** Names declared directly by a module: header parameters, config fields, members, lets and functions. */
function moduleNames(m: A.ModuleDecl): { name: string; span: Span; param?: A.Param }[] {
  const out: { name: string; span: Span; param?: A.Param }[] = m.params.map((p) => ({ name: p.name.name, span: p.name.span, param: p }));
  for (const mem of m.members) {
    if (mem.kind === 'config') for (const p of mem.fields) out.push({ name: p.name.name, span: p.name.span, param: p });
    else if (mem.kind === 'let') for (const n of mem.names) out.push({ name: n.name, span: n.span });
    else if (mem.kind === 'fn') out.push({ name: mem.name.name, span: mem.name.span });
    else if (mem.kind === 'sub' || mem.kind === 'param' || mem.kind === 'buffer' || mem.kind === 'alias') out.push({ name: mem.path.segments[0]!.name, span: mem.path.segments[0]!.span });
  }
  return out;
}

/** Names bound in a function before `offset`: parameters, then lets, assignments' targets, for-variables (the latest wins). */
function fnNames(f: A.FnDecl, offset: number): { name: string; span: Span; param?: A.Param }[] {
  const out: { name: string; span: Span; param?: A.Param }[] = f.params.map((p) => ({ name: p.name.name, span: p.name.span, param: p }));
  const stmts = (b: A.Block | A.IfStmt | undefined): void => {
    if (!b) return;
    if ('kind' in b && b.kind === 'if') {
      stmts(b.then);
      stmts(b.else);
      return;
    }
    for (const s of (b as A.Block).stmts) {
      if (s.span.start.offset > offset) break;
      // a let's own value cannot see the names it binds: in `let x = x + 1` the x on the right is the earlier one
      if (s.kind === 'let' && !within(s.span, offset)) for (const n of s.names) out.push({ name: n.name, span: n.span });
      else if (s.kind === 'for') {
        if (within(s.span, offset)) out.push({ name: s.name.name, span: s.name.span });
        stmts(s.body);
      } else if (s.kind === 'if') stmts(s);
    }
  };
  stmts(f.body);
  return out;
}

/** Shape symbols a function's parameter types introduce (`x: [B, N, C]` binds B, N, C). */
function fnSymbols(f: A.FnDecl): { name: string; span: Span }[] {
  const out: { name: string; span: Span }[] = [];
  const seen = new Set<string>();
  for (const p of f.params)
    for (const d of p.type?.dims ?? []) {
      if (d.kind === 'name' && !seen.has(d.name)) {
        seen.add(d.name);
        out.push({ name: d.name, span: d.span });
      }
      // `8*h`, `4*t+1`: the introduced symbol is a bare name inside
      if (d.kind === 'binary')
        for (const x of [d.left, d.right, ...(d.left.kind === 'binary' ? [d.left.left, d.left.right] : [])])
          if (x.kind === 'name' && !seen.has(x.name)) {
            seen.add(x.name);
            out.push({ name: x.name, span: x.span });
          }
    }
  return out;
}

/** Resolve the occurrence `o` of `file` (a file of `program`, or the document when the program is absent). */
export function resolve(o: Occurrence, file: { path: string; display: string }, program: Program | undefined): Target | undefined {
  const offset = o.span.start.offset;
  if (o.role === 'decl') {
    const owner = [...o.chain].reverse().find((n) => (n as Node).kind === 'module' || (n as Node).kind === 'fn') as A.ModuleDecl | A.FnDecl | undefined;
    const param = o.chain[o.chain.length - 1] && 'name' in (o.chain[o.chain.length - 1] as object) && (o.chain[o.chain.length - 1] as A.Param).name?.span === o.span ? (o.chain[o.chain.length - 1] as A.Param) : undefined;
    const g = program?.scopes.get(file.path)?.get(o.name);
    const isGlobal = g && g.file.path === file.path && (g.kind === 'let' ? g.decl.names.some((n) => n.span.start.offset === offset) : g.decl.name.span.start.offset === offset);
    return { kind: 'decl', name: o.name, file: file.path, span: o.span, ...(isGlobal ? { decl: g } : {}), ...(param ? { param } : {}), ...(owner ? { owner } : {}) };
  }
  if (o.role === 'import') {
    const g = program?.scopes.get(file.path)?.get(o.name);
    return g ? globalTarget(o.name, g) : undefined;
  }
  // references: innermost scope first
  for (let i = o.chain.length - 1; i >= 0; i--) {
    const n = o.chain[i] as Node;
    if (n.kind === 'comp' && (n as unknown as A.CompExpr).name.name === o.name) return { kind: 'decl', name: o.name, file: file.path, span: (n as unknown as A.CompExpr).name.span };
    if (n.kind === 'fn') {
      const f = n as unknown as A.FnDecl;
      const hit = fnNames(f, offset).filter((x) => x.name === o.name && x.span.start.offset <= offset);
      if (hit.length) {
        // the latest binding before the use; parameters come first in the list
        const t = hit.filter((x) => !x.param).pop() ?? hit[0]!;
        return { kind: 'decl', name: o.name, file: file.path, span: t.span, ...(t.param ? { param: t.param } : {}), owner: f };
      }
      const sym = fnSymbols(f).find((x) => x.name === o.name);
      if (sym) return { kind: 'symbol', name: o.name, file: file.path, span: sym.span };
    }
    if (n.kind === 'module') {
      const m = n as unknown as A.ModuleDecl;
      const hit = moduleNames(m).find((x) => x.name === o.name);
      if (hit) return { kind: 'decl', name: o.name, file: file.path, span: hit.span, ...(hit.param ? { param: hit.param } : {}), owner: m };
    }
  }
  const g = program?.scopes.get(file.path)?.get(o.name);
  if (g) return globalTarget(o.name, g);
  if (isBuiltin(o.name)) return { kind: 'builtin', name: o.name };
  return undefined;
}

function globalTarget(name: string, g: GlobalDecl): Target {
  const span = g.kind === 'let' ? (g.decl.names.find((n) => n.name === name)?.span ?? g.decl.span) : g.decl.name.span;
  return { kind: 'decl', name, file: g.file.path, span, decl: g };
}

/** Every occurrence, in every file of the program, that resolves to the same declaration as `t`. */
export function references(t: Target, program: Program, extra?: { file: LoadedFile; occ: readonly Occurrence[] }): { file: string; span: Span }[] {
  if (t.kind === 'builtin') return [];
  const out: { file: string; span: Span }[] = [];
  const files = [...program.files.values()];
  for (const f of files) {
    const occ = extra && extra.file.path === f.path ? extra.occ : occurrences(f.ast);
    for (const o of occ) {
      if (o.name !== t.name) continue;
      const r = resolve(o, f, program);
      if (r && r.kind !== 'builtin' && r.file === t.file && r.span.start.offset === t.span.start.offset) out.push({ file: f.path, span: o.span });
    }
  }
  return out;
}

/** The names visible at an offset of a file: locals and parameters, module members, file-level and imported declarations. */
export function namesInScope(ast: A.SourceFile, offset: number, file: { path: string }, program: Program | undefined): { name: string; kind: 'local' | 'member' | 'config' | 'global'; decl?: GlobalDecl }[] {
  const out: { name: string; kind: 'local' | 'member' | 'config' | 'global'; decl?: GlobalDecl }[] = [];
  const seen = new Set<string>();
  const add = (name: string, kind: 'local' | 'member' | 'config' | 'global', decl?: GlobalDecl) => {
    if (seen.has(name)) return;
    seen.add(name);
    out.push({ name, kind, ...(decl ? { decl } : {}) });
  };
  for (const d of ast.decls) {
    if (!within(d.span, offset)) continue;
    if (d.kind === 'module') {
      for (const mem of d.members) if (mem.kind === 'fn' && within(mem.span, offset)) for (const x of fnNames(mem, offset)) add(x.name, 'local');
      for (const mem of d.members) if (mem.kind === 'fn' && within(mem.span, offset)) for (const x of fnSymbols(mem)) add(x.name, 'local');
      const configs = new Set(d.members.flatMap((m) => (m.kind === 'config' ? m.fields.map((f) => f.name.name) : [])));
      for (const x of moduleNames(d)) add(x.name, configs.has(x.name) ? 'config' : 'member');
    } else if (d.kind === 'fn') for (const x of fnNames(d, offset)) add(x.name, 'local');
  }
  for (const [name, g] of program?.scopes.get(file.path) ?? []) add(name, 'global', g);
  return out;
}

/** The model's config block fields (for completion and document symbols). */
export function configFields(m: A.ModuleDecl): A.Param[] {
  return m.members.flatMap((x) => (x.kind === 'config' ? [...x.fields] : []));
}

/** The comment lines directly above a declaration (its documentation), without the leading `#`. */
export function docComment(ast: A.SourceFile, span: Span, text: string): string | undefined {
  const lines: string[] = [];
  let line = span.start.line - 1;
  const byLine = new Map(ast.comments.map((c) => [c.span.start.line, c]));
  for (;;) {
    const c = byLine.get(line);
    if (!c) break;
    // only whole-line comments count
    const lineStart = text.lastIndexOf('\n', c.span.start.offset - 1) + 1;
    if (text.slice(lineStart, c.span.start.offset).trim()) break;
    lines.unshift(c.text.replace(/^#\s?/, ''));
    line--;
  }
  return lines.length ? lines.join('\n') : undefined;
}
