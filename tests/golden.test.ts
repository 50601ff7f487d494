/**
 * Golden tests as case directories: tests/cases/<name>/
 *   input.sora            the model (required)
 *   args.json             optional: { "set": {"k": v}, "model": "Name", "trace": true }
 *   expected/diagnostics.txt   baseline of all diagnostics (check: compile + trace every entry)
 *   expected/keymap.json       canonical keymap, when the case compiles
 *   expected/format.sora       output of `sorac fmt`, when the case parses
 * Run `npm run accept` (SORAC_ACCEPT=1) to (re)write expectations after reviewing a change.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { canonicalJson } from '../core/keymap.ts';
import { format } from '../grammar/format.ts';
import { checkEntries, modelSources } from '../compiler/check.ts';
import { renderBaseline } from '../cli/render.ts';

const CASES = join(import.meta.dirname, 'cases');
const ACCEPT = process.env.SORAC_ACCEPT === '1';

function expectGolden(path: string, actual: string) {
  if (ACCEPT) {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) throw new Error(`missing golden ${path}; run \`npm run accept\` after reviewing the output:\n${actual}`);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

const names = readdirSync(CASES).filter((n) => existsSync(join(CASES, n, 'input.sora'))).sort();

describe('golden cases', () => {
  it('has a meaningful number of cases', () => {
    expect(names.length).toBeGreaterThanOrEqual(12);
  });
  for (const name of names) {
    it(name, () => {
      const dir = join(CASES, name);
      const file = join(dir, 'input.sora');
      const args = existsSync(join(dir, 'args.json')) ? JSON.parse(readFileSync(join(dir, 'args.json'), 'utf8')) : {};
      const rel = `tests/cases/${name}/input.sora`;
      const m = compile({ file: rel, host: fsHost, cwd: join(import.meta.dirname, '..'), ...(args.model ? { model: args.model } : {}), config: { set: Object.entries(args.set ?? {}).map(([k, v]) => [k, JSON.stringify(v)] as [string, string]) } });
      const ds = [...m.diagnostics];
      if (!ds.some((d) => d.severity === 'error')) ds.push(...checkEntries(m));
      expectGolden(join(dir, 'expected', 'diagnostics.txt'), renderBaseline(ds, modelSources(m)));
      // `sorac check` traces each distinct module call once (checkOnly): the same diagnostics
      if (!m.diagnostics.some((d) => d.severity === 'error')) expect(renderBaseline([...m.diagnostics, ...checkEntries(m, { checkOnly: true })], modelSources(m))).toBe(renderBaseline(ds, modelSources(m)));
      if (m.keymap && !ds.some((d) => d.severity === 'error')) expectGolden(join(dir, 'expected', 'keymap.json'), canonicalJson(m.keymap));
      const f = format(readFileSync(file, 'utf8'), rel);
      if (f.text !== undefined) expectGolden(join(dir, 'expected', 'format.sora'), f.text);
    });
  }
});
