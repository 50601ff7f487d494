/**
 * What a consumer installs runs without a TypeScript loader: the programmatic API bundle
 * (dist/index.mjs, what `import 'sorac'` resolves to) compiles and traces a bundled model under plain
 * `node`, with the same keymap contract as the sources. The bundle is rebuilt into a temp dir next to
 * dist/ (std/ is found relative to it, as in an install).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
// @ts-expect-error: a plain .mjs build script without type declarations
import { bundle } from '../../scripts/bundle.mjs';

const ROOT = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(ROOT, '.tmp-bundle-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('package', () => {
  it('the API bundle runs under plain node: compile + trace stdit3 with the source contract', async () => {
    await (bundle as (d: string) => Promise<void>)(out);
    const script = `const { compile, fsHost, traceEntry } = await import(${JSON.stringify(join(out, 'index.mjs'))});
const m = compile({ file: 'examples/stdit3.sora', host: fsHost, config: { values: { depth: 2, hidden_size: 64, num_heads: 4 } } });
const g = traceEntry(m, 'forward').graph;
console.log(JSON.stringify({ contract: m.keymap.contract, nodes: g.nodes.length }));`;
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
    const src = compile({ file: 'examples/stdit3.sora', host: fsHost, config: { values: { depth: 2, hidden_size: 64, num_heads: 4 } } });
    expect(r.contract).toBe(src.keymap!.contract);
    expect(r.nodes).toBeGreaterThan(100);
  });

  it('package.json points consumers at the bundle and keeps build-only tools out of dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.exports['.'].default).toBe('./dist/index.mjs');
    for (const dev of ['typescript', 'vitest', 'fast-check', '@types/node']) expect(pkg.dependencies[dev]).toBeUndefined();
    expect(pkg.scripts.test).toMatch(/^tsc -p tsconfig\.json --noEmit && vitest run/);
  });
});
