/**
 * The layering of sorac's source tree, as data, and a checker for it (docs/adr/006-layers.md).
 *
 *   core  <-  grammar  <-  compiler  <-  api  <-  cli
 *   core, grammar, compiler, api  <-  lsp  <-  cli
 *   core  <-  runtime/formats  <-  runtime/weights  <-  runtime/{execution,training,migrate}  <-  api
 *   core  <-  runtime/devices  <-  runtime/execution, api
 *   core  <-  runtime/{text,sampling,media}  <-  api
 *
 * A file may import only from its own layer and from the layers its rule lists (type-only imports
 * count: a type is a dependency too), npm packages only where `packages` allows them, and no two
 * files may import each other, directly or through others (no cycles, whatever the layers).
 *
 * Run `npx tsx scripts/layers.ts` to list violations (exit 1 when there are any);
 * tests/architecture/layers.test.ts runs the same check in `npm test`.
 *
 * The scanner reads import/export-from statements and `import('...')` calls from the source text
 * (comments and string contents are skipped). There is no maintained dependency checker that parses
 * TypeScript without the TypeScript compiler's JS API, which TypeScript 7 no longer ships
 * (dependency-cruiser needs it for .ts files), so the ~100 lines here are the smaller dependency.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Layer {
  /** Path prefixes (relative to the repo root, '/'-separated) that belong to this layer. */
  readonly paths: readonly string[];
  /** Other layers this layer may import from. */
  readonly mayImport: readonly string[];
  /** npm packages (first path segment or @scope/name) this layer may import; node: builtins are always allowed. */
  readonly packages: readonly string[];
}

/** Layers, most specific path first wins. */
export const LAYERS: Readonly<Record<string, Layer>> = {
  core: { paths: ['core/'], mayImport: [], packages: [] },
  grammar: { paths: ['grammar/'], mayImport: ['core'], packages: ['chevrotain'] },
  compiler: { paths: ['compiler/'], mayImport: ['core', 'grammar'], packages: ['onnx-proto'] },
  'runtime/formats': { paths: ['runtime/formats/'], mayImport: ['core'], packages: [] },
  'runtime/weights': { paths: ['runtime/weights/'], mayImport: ['core', 'runtime/formats'], packages: [] },
  'runtime/devices': { paths: ['runtime/devices/'], mayImport: ['core'], packages: [] },
  'runtime/execution': { paths: ['runtime/execution/'], mayImport: ['core', 'runtime/formats', 'runtime/weights', 'runtime/devices'], packages: ['onnxruntime-node'] },
  'runtime/training': { paths: ['runtime/training/'], mayImport: ['core', 'runtime/formats', 'runtime/weights'], packages: [] },
  'runtime/migrate': { paths: ['runtime/migrate/'], mayImport: ['core', 'runtime/formats', 'runtime/weights'], packages: ['ts-morph', 'esbuild', 're2js'] },
  'runtime/text': { paths: ['runtime/text/'], mayImport: ['core'], packages: ['protobufjs'] },
  'runtime/sampling': { paths: ['runtime/sampling/'], mayImport: ['core', 'runtime/formats'], packages: [] },
  'runtime/media': { paths: ['runtime/media/'], mayImport: ['core'], packages: [] },
  api: {
    paths: ['api/'],
    mayImport: ['core', 'grammar', 'compiler', 'runtime/formats', 'runtime/weights', 'runtime/devices', 'runtime/execution', 'runtime/training', 'runtime/migrate', 'runtime/text', 'runtime/sampling', 'runtime/media'],
    packages: [],
  },
  /** the language server (`sorac lsp`): editor services over the compiler's analysis */
  lsp: { paths: ['lsp/'], mayImport: ['core', 'grammar', 'compiler', 'api'], packages: ['vscode-languageserver', 'vscode-languageserver-textdocument'] },
  cli: { paths: ['cli/'], mayImport: ['core', 'api', 'lsp'], packages: ['commander'] },
  /** the package's public entry point */
  index: { paths: ['index.ts'], mayImport: ['core', 'api'], packages: [] },
};

/** Folders scanned (tests, bench and scripts may import anything and are not scanned). */
export const SOURCE_ROOTS = ['index.ts', 'core', 'grammar', 'compiler', 'runtime', 'api', 'lsp', 'cli'];

export interface ImportRef {
  readonly from: string;
  readonly spec: string;
  readonly line: number;
  readonly typeOnly: boolean;
}

/** Replace comments and the contents of string/template literals with spaces, keeping line breaks and quotes. */
function blank(src: string): string {
  let out = '';
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i]!;
    const d = src[i + 1];
    if (c === '/' && d === '/') {
      while (i < n && src[i] !== '\n') (out += ' '), i++;
    } else if (c === '/' && d === '*') {
      while (i < n && !(src[i] === '*' && src[i + 1] === '/')) (out += src[i] === '\n' ? '\n' : ' '), i++;
      out += '  ';
      i += 2;
    } else if (c === "'" || c === '"' || c === '`') {
      // blank the contents (same length): specifiers are read back from the original text by offset
      const q = c;
      out += c;
      i++;
      while (i < n && src[i] !== q) {
        const step = src[i] === '\\' ? 2 : 1;
        for (let k = 0; k < step && i < n; k++, i++) out += src[i] === '\n' ? '\n' : ' ';
      }
      out += q;
      i++;
    } else (out += c), i++;
  }
  return out;
}

const STATIC = /(?:^|[;\s}])(import|export)\s+(type\s+)?((?:[\w*${},\s]|\btype\b)*?)\s*from\s*(['"])([^'"\n]+)\4/dg;
const BARE = /(?:^|[;\s}])import\s*(['"])([^'"\n]+)\1/dg;
const DYNAMIC = /\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*\)/dg;

/** The literal's text in the original source, given the blanked match and the group's index. */
function literal(src: string, m: RegExpMatchArray, group: number): string {
  const [start, end] = m.indices![group]!;
  return src.slice(start, end);
}

/** The imports of one source file. */
export function scanImports(file: string, src: string): ImportRef[] {
  const text = blank(src);
  const lineOf = (idx: number) => text.slice(0, idx).split('\n').length;
  const out: ImportRef[] = [];
  for (const m of text.matchAll(STATIC)) {
    const names = m[3] ?? '';
    const typeOnly = !!m[2] || (/^\{[^}]*\}$/.test(names.trim()) && names.replace(/[{}\s]/g, '').split(',').filter(Boolean).every((x) => x.startsWith('type')));
    out.push({ from: file, spec: literal(src, m, 5), line: lineOf(m.index!), typeOnly });
  }
  for (const m of text.matchAll(BARE)) out.push({ from: file, spec: literal(src, m, 2), line: lineOf(m.index!), typeOnly: false });
  for (const m of text.matchAll(DYNAMIC)) out.push({ from: file, spec: literal(src, m, 2), line: lineOf(m.index!), typeOnly: false });
  return out;
}

export function layerOf(file: string): string | undefined {
  let best: { name: string; len: number } | undefined;
  for (const [name, l] of Object.entries(LAYERS))
    for (const p of l.paths) if ((file === p || file.startsWith(p)) && (!best || p.length > best.len)) best = { name, len: p.length };
  return best?.name;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

export interface Violation {
  readonly kind: 'upward' | 'package' | 'cycle' | 'unresolved';
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** Check a set of sources (repo-relative '/'-separated path -> text). */
export function checkLayers(sources: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  const edges = new Map<string, { to: string; line: number }[]>();
  for (const [file, src] of sources) {
    const layer = layerOf(file);
    const list: { to: string; line: number }[] = [];
    edges.set(file, list);
    for (const imp of scanImports(file, src)) {
      if (imp.spec.startsWith('node:')) continue;
      if (!imp.spec.startsWith('.')) {
        const pkg = packageName(imp.spec);
        if (layer && !LAYERS[layer]!.packages.includes(pkg))
          violations.push({ kind: 'package', file, line: imp.line, message: `${file}:${imp.line}: layer ${layer} may not import the package "${pkg}" (allowed: ${LAYERS[layer]!.packages.join(', ') || 'none'})` });
        continue;
      }
      const to = posix.normalize(posix.join(posix.dirname(file), imp.spec));
      // JSON data beside a module (tables, entity lists) imports nothing: only its layer matters
      if (to.endsWith('.json') && !sources.has(to)) {
        const target = layerOf(to);
        if (layer && target && target !== layer && !LAYERS[layer]!.mayImport.includes(target))
          violations.push({ kind: 'upward', file, line: imp.line, message: `${file}:${imp.line}: layer ${layer} may not read ${to} (layer ${target})` });
        continue;
      }
      if (!sources.has(to)) {
        violations.push({ kind: 'unresolved', file, line: imp.line, message: `${file}:${imp.line}: "${imp.spec}" does not resolve to a scanned source file` });
        continue;
      }
      list.push({ to, line: imp.line });
      const target = layerOf(to);
      if (layer && target && target !== layer && !LAYERS[layer]!.mayImport.includes(target))
        violations.push({ kind: 'upward', file, line: imp.line, message: `${file}:${imp.line}: layer ${layer} may not import ${to} (layer ${target}); ${layer} may import ${[layer, ...LAYERS[layer]!.mayImport].join(', ')}` });
    }
  }
  // cycles: Tarjan's strongly connected components
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const { to } of edges.get(v) ?? []) {
      if (!idx.has(to)) {
        strong(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (on.has(to)) low.set(v, Math.min(low.get(v)!, idx.get(to)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      const self = edges.get(v)?.some((e) => e.to === v);
      if (comp.length > 1 || self) {
        const members = new Set(comp);
        const ties = comp.flatMap((f) => (edges.get(f) ?? []).filter((e) => members.has(e.to)).map((e) => `${f}:${e.line} -> ${e.to}`));
        violations.push({ kind: 'cycle', file: comp.sort()[0]!, line: 0, message: `import cycle between ${comp.length} files: ${ties.join('; ')}` });
      }
    }
  };
  for (const f of [...sources.keys()].sort()) if (!idx.has(f)) strong(f);
  return violations;
}

/** Read every source file under SOURCE_ROOTS. */
export function readSources(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const add = (abs: string) => out.set(relative(root, abs).split(sep).join('/'), readFileSync(abs, 'utf8'));
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) add(p);
    }
  };
  for (const r of SOURCE_ROOTS) {
    const abs = join(root, r);
    if (r.endsWith('.ts')) add(abs);
    else walk(abs);
  }
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const v = checkLayers(readSources(root));
  for (const x of v) console.log(`${x.kind}: ${x.message}`);
  console.log(v.length ? `${v.length} layering violation(s)` : 'layers ok: no upward imports, no disallowed packages, no cycles');
  process.exitCode = v.length ? 1 : 0;
}
