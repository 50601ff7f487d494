/**
 * std/'s parses stored in the bundle (compiler/std-parses.ts, made by scripts/bundle.mjs): each is what
 * parsing the file gives, a compile uses one only for the exact text it was made from, and a bundled
 * compile does use them.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from '../../grammar/parser.ts';
import { prebuiltParse } from '../../compiler/program.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const { bundle, stdParses } = (await import(pathToFileURL(join(ROOT, 'scripts', 'bundle.mjs')).href)) as { bundle: (dir: string) => Promise<void>; stdParses: () => Promise<string> };

describe('the stored std/ parses', () => {
  it('hold every std file, its text, and what parsing that text gives', async () => {
    const table = JSON.parse(await stdParses()) as Record<string, { text: string; result: ReturnType<typeof parse> }>;
    const files = readdirSync(join(ROOT, 'std'), { recursive: true }).map(String).filter((f) => f.endsWith('.sora'));
    expect(files.length).toBeGreaterThan(0);
    expect(Object.keys(table).sort()).toEqual(files.map((f) => `std/${f.split('\\').join('/')}`).sort());
    for (const [display, e] of Object.entries(table)) {
      expect(e.text).toBe(readFileSync(join(ROOT, display), 'utf8'));
      expect(e.result).toEqual(JSON.parse(JSON.stringify(parse(e.text, display))));
      expect(e.result).toEqual(parse(e.text, display));
      expect(e.result.ast.decls.length).toBeGreaterThan(0);
    }
  });

  it('are used only for the exact text they were made from', () => {
    const text = 'fn f(x) {\n  return x\n}\n';
    const table = new Map([['std/a.sora', { text, result: parse(text, 'std/a.sora') }]]);
    expect(prebuiltParse(table, 'std/a.sora', text)).toBe(table.get('std/a.sora')!.result);
    expect(prebuiltParse(table, 'std/a.sora', text + ' ')).toBeUndefined();
    expect(prebuiltParse(table, 'std/b.sora', text)).toBeUndefined();
  });

  it('serve a bundled compile: the same AST as parsing, one decoded tree shared by the compiles of a process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sorac-std-bundle-'));
    try {
      // the bundle finds std/ beside its folder, as an installed package does
      symlinkSync(join(ROOT, 'std'), join(dir, 'std'));
      await bundle(join(dir, 'dist'));
      const api = (await import(pathToFileURL(join(dir, 'dist', 'index.mjs')).href)) as typeof import('../../index.ts');
      const opts = { file: join(ROOT, 'examples', 'stdit3.sora'), host: api.fsHost, cwd: ROOT };
      const a = api.compile(opts);
      const b = api.compile(opts);
      expect(a.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const stdFile = (m: typeof a) => [...m.program.files.values()].find((f) => f.display === 'std/nn.sora')!;
      expect(stdFile(a).ast).toEqual(parse(readFileSync(join(ROOT, 'std', 'nn.sora'), 'utf8'), 'std/nn.sora').ast);
      // parsed twice, the two trees would be distinct objects
      expect(stdFile(a).ast).toBe(stdFile(b).ast);
      expect(stdFile(a).ast).not.toBe(parse(stdFile(a).text, 'std/nn.sora').ast);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
