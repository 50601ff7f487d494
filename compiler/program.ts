/**
 * Program loading: parse the root file and everything it imports (std/ and relative paths),
 * and build the global scope of modules and functions. File access goes through a Host so the
 * compiler itself does no I/O.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as A from '../grammar/ast.ts';
import { parse } from '../grammar/parser.ts';
import { STD_PARSES } from './std-parses.ts';
import { type Diagnostic, diag } from '../core/diagnostics.ts';

export interface Host {
  /** Read a source file; undefined when it does not exist or cannot be read. */
  readFile(file: string): string | undefined;
  /**
   * The directories imports of `rootFile` may read from (the project, std, SORAC_PATH), resolved;
   * with `realpath`, every import must resolve inside one of them (SORA2030). Hosts without it
   * (in-memory sources) do not restrict imports.
   */
  importRoots?(rootFile: string): readonly string[];
  /** The real path of an existing file (symlinks resolved); undefined when it does not exist. */
  realpath?(file: string): string | undefined;
}

/** Directory holding the standard library (`import { Linear } from "std/nn"`). */
export const STD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'std');

export interface LoadedFile {
  readonly path: string;
  /** Path used in diagnostics and keymap sources (relative to the cwd when possible). */
  readonly display: string;
  readonly text: string;
  readonly ast: A.SourceFile;
}

export interface Program {
  readonly root: LoadedFile;
  readonly files: ReadonlyMap<string, LoadedFile>;
  /** Name -> declaration visible in each file (own decls + imports). */
  readonly scopes: ReadonlyMap<string, ReadonlyMap<string, GlobalDecl>>;
  readonly diagnostics: Diagnostic[];
}

export type GlobalDecl = { readonly kind: 'module'; readonly decl: A.ModuleDecl; readonly file: LoadedFile } | { readonly kind: 'fn'; readonly decl: A.FnDecl; readonly file: LoadedFile } | { readonly kind: 'let'; readonly decl: A.LetStmt; readonly file: LoadedFile };

export function displayPath(p: string, cwd = process.cwd()): string {
  if (p.startsWith(STD_DIR + path.sep)) return 'std/' + path.relative(STD_DIR, p).split(path.sep).join('/');
  const rel = path.relative(cwd, p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : p;
}

/** The stored parses of std/ (compiler/std-parses.ts), decoded once per process; empty without a bundle. */
let stdTable: ReadonlyMap<string, { readonly text: string; readonly result: ReturnType<typeof parse> }> | undefined;
function stdParses(): ReadonlyMap<string, { readonly text: string; readonly result: ReturnType<typeof parse> }> {
  return (stdTable ??= new Map(STD_PARSES ? Object.entries(JSON.parse(STD_PARSES) as Record<string, { text: string; result: ReturnType<typeof parse> }>) : []));
}

/**
 * The stored parse of a std/ file when its text is exactly the text that was parsed, else undefined
 * and the file is parsed. The result is shared by the compiles of a process, as ParseCache's are:
 * nothing changes an AST once parsed.
 */
export function prebuiltParse(table: ReadonlyMap<string, { readonly text: string; readonly result: ReturnType<typeof parse> }>, display: string, text: string): ReturnType<typeof parse> | undefined {
  const e = table.get(display);
  return e && e.text === text ? e.result : undefined;
}

/** Parses kept between compiles by file path (the editor's re-checks: std/ is parsed once). */
export type ParseCache = Map<string, { readonly text: string; readonly display: string; readonly result: ReturnType<typeof parse> }>;

export function loadProgram(rootPath: string, host: Host, opts: { rootText?: string; cwd?: string; parseCache?: ParseCache } = {}): Program {
  const diagnostics: Diagnostic[] = [];
  const files = new Map<string, LoadedFile>();
  const scopes = new Map<string, Map<string, GlobalDecl>>();
  const abs = path.resolve(opts.cwd ?? process.cwd(), rootPath);

  const load = (p: string, text?: string): LoadedFile | undefined => {
    const have = files.get(p);
    if (have) return have;
    const t = text ?? host.readFile(p);
    if (t === undefined) return undefined;
    const display = displayPath(p, opts.cwd);
    const cached = opts.parseCache?.get(p);
    const r = cached && cached.text === t && cached.display === display ? cached.result : (display.startsWith('std/') ? prebuiltParse(stdParses(), display, t) : undefined) ?? parse(t, display);
    if (opts.parseCache && r !== cached?.result) opts.parseCache.set(p, { text: t, display, result: r });
    diagnostics.push(...r.diagnostics);
    const f: LoadedFile = { path: p, display, text: t, ast: r.ast };
    files.set(p, f);
    return f;
  };

  const roots = host.importRoots?.(abs);
  /** An import target outside every allowed root: the diagnostic says which roots and how to widen them. */
  const outsideRoots = (target: string): string | undefined => {
    if (!roots) return undefined;
    const lexical = path.resolve(target);
    // symlinks resolved; a file that does not exist yet is judged by its folder
    const real = host.realpath?.(lexical) ?? path.join(host.realpath?.(path.dirname(lexical)) ?? path.dirname(lexical), path.basename(lexical));
    const within = (r: string, p: string) => {
      const rel = path.relative(r, p);
      return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
    };
    return roots.some((r) => within(r, real)) ? undefined : real;
  };

  const root = load(abs, opts.rootText);
  if (!root) {
    diagnostics.push(diag('SORA7001', `cannot read ${rootPath}`, undefined, { hint: 'check the path; sorac check takes a .sora file' }));
    const empty: LoadedFile = { path: abs, display: rootPath, text: '', ast: { kind: 'file', file: rootPath, decls: [], comments: [], span: { file: rootPath, start: { offset: 0, line: 1, col: 1 }, end: { offset: 0, line: 1, col: 1 } } } };
    return { root: empty, files, scopes, diagnostics };
  }

  /** The file's own top-level declarations (imports are added below). */
  const ownScope = (f: LoadedFile): Map<string, GlobalDecl> => {
    let scope = scopes.get(f.path);
    if (scope) return scope;
    scope = new Map<string, GlobalDecl>();
    scopes.set(f.path, scope);
    for (const d of f.ast.decls) {
      if (d.kind === 'module' || d.kind === 'fn') {
        const prev = scope.get(d.name.name);
        if (prev) {
          diagnostics.push(diag('SORA2002', `"${d.name.name}" is declared twice`, d.name.span, { related: [{ span: declSpan(prev), message: 'first declared here' }], hint: 'rename one of them' }));
          continue;
        }
        scope.set(d.name.name, d.kind === 'module' ? { kind: 'module', decl: d, file: f } : { kind: 'fn', decl: d, file: f });
      } else if (d.kind === 'let') {
        for (const n of d.names) scope.set(n.name, { kind: 'let', decl: d, file: f });
      }
    }
    return scope;
  };

  // imports (second pass so that cycles resolve)
  const importQueue: LoadedFile[] = [root];
  const importsDone = new Set<string>();
  while (importQueue.length) {
    const f = importQueue.shift()!;
    if (importsDone.has(f.path)) continue;
    importsDone.add(f.path);
    const scope = ownScope(f);
    for (const d of f.ast.decls) {
      if (d.kind !== 'import') continue;
      const spec = d.from.value;
      const target = spec.startsWith('std/') ? path.join(STD_DIR, spec.slice(4)) : path.resolve(path.dirname(f.path), spec);
      const candidates = target.endsWith('.sora') ? [target] : [target + '.sora', target];
      let imported: LoadedFile | undefined;
      let refused: string | undefined;
      for (const c of candidates) {
        // never read outside the project, std and SORAC_PATH: `/dev/zero`, `../../../etc/passwd`
        const out = outsideRoots(c);
        if (out !== undefined) {
          refused = out;
          break;
        }
        imported = load(c);
        if (imported) break;
      }
      if (refused !== undefined) {
        diagnostics.push(
          diag('SORA2030', `import "${spec}" leaves the project: ${displayPath(refused, opts.cwd)} is outside ${roots!.map((r) => displayPath(r, opts.cwd)).join(', ')}; it was not read`, d.from.span, {
            hint: 'import files inside the project (the nearest folder with .git or package.json above the model file, or the model file\'s folder) or std/; to allow another folder, add it to SORAC_PATH (separated by ' + JSON.stringify(path.delimiter) + ')',
          }),
        );
        continue;
      }
      if (!imported) {
        diagnostics.push(diag('SORA2004', `cannot find module file "${spec}"`, d.from.span, { notes: [`looked for ${candidates.map((c) => displayPath(c, opts.cwd)).join(', ')}`], hint: 'std modules are imported as "std/nn"; other files by a path relative to this file' }));
        continue;
      }
      importQueue.push(imported);
      const theirs = ownScope(imported);
      for (const n of d.names) {
        const g = theirs.get(n.name);
        if (!g) {
          const avail = [...theirs.keys()].sort();
          diagnostics.push(diag('SORA2004', `"${spec}" has no declaration named "${n.name}"`, n.span, { hint: suggest(n.name, avail) ?? `it declares: ${avail.join(', ')}` }));
          continue;
        }
        if (scope.has(n.name) && scope.get(n.name) !== g) {
          diagnostics.push(diag('SORA2002', `"${n.name}" is imported but also declared in this file`, n.span, { related: [{ span: declSpan(scope.get(n.name)!), message: 'declared here' }] }));
          continue;
        }
        scope.set(n.name, g);
      }
    }
  }
  return { root, files, scopes, diagnostics };
}

function declSpan(g: GlobalDecl) {
  return g.kind === 'let' ? g.decl.span : g.decl.name.span;
}

/** did-you-mean: the closest candidate by edit distance, as a hint sentence. */
export function suggest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  // short names need a close match: "foo" is not a typo of "f32"
  const limit = name.length <= 4 ? 1 : Math.max(2, Math.floor(name.length / 3));
  return bestD <= limit ? `did you mean "${best}"?` : undefined;
}

export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[n]!;
}
