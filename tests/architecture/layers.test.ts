/**
 * The layering is checked, not promised (docs/adr/006-layers.md): no import from a lower layer to a
 * higher one, npm packages only where their layer allows them, no import cycles between files.
 * The second half shows the check fails when the rules are broken, on the real tree with one edit
 * made in memory (nothing on disk changes).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, layerOf, readSources, scanImports } from '../../scripts/layers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const sources = readSources(ROOT);

function withEdit(file: string, append: string): Map<string, string> {
  const m = new Map(sources);
  m.set(file, `${m.get(file)}\n${append}\n`);
  return m;
}

describe('layers', () => {
  it('the tree has no upward import, no disallowed package and no cycle', () => {
    expect(sources.size).toBeGreaterThan(60);
    expect(checkLayers(sources).map((v) => v.message)).toEqual([]);
  });

  it('every source file belongs to a layer', () => {
    expect([...sources.keys()].filter((f) => !layerOf(f))).toEqual([]);
  });

  it('fails on an upward import (grammar importing the compiler), type-only included', () => {
    const v = checkLayers(withEdit('grammar/ast.ts', "import type { Sym } from '../compiler/sym.ts';"));
    expect(v.map((x) => x.kind)).toEqual(['upward']);
    expect(v[0]!.message).toMatch(/^grammar\/ast\.ts:\d+: layer grammar may not import compiler\/sym\.ts \(layer compiler\)/);
    // (importing a compiler file that itself imports grammar is also reported as the cycle it makes)
    const both = checkLayers(withEdit('grammar/ast.ts', "import type { CompiledModel } from '../compiler/model.ts';"));
    expect(both.map((x) => x.kind).sort()).toEqual(['cycle', 'upward']);
  });

  it('fails when the runtime reaches into the compiler, or the CLI around the API', () => {
    expect(checkLayers(withEdit('runtime/execution/session.ts', "import { emitOnnx } from '../../compiler/emit/onnx.ts';")).map((x) => x.kind)).toEqual(['upward']);
    expect(checkLayers(withEdit('cli/commands/run.ts', "const s = await import('../../runtime/weights/store.ts');")).map((x) => x.kind)).toEqual(['upward']);
  });

  it('fails on a package outside its layer (onnxruntime in the compiler)', () => {
    const v = checkLayers(withEdit('compiler/graph.ts', "import * as ort from 'onnxruntime-node';"));
    expect(v.map((x) => x.kind)).toEqual(['package']);
  });

  it('fails on a cycle inside one layer', () => {
    const v = checkLayers(withEdit('compiler/sym.ts', "import type { Value } from './values.ts';"));
    expect(v.map((x) => x.kind)).toEqual(['cycle']);
    expect(v[0]!.message).toMatch(/compiler\/sym\.ts:\d+ -> compiler\/values\.ts/);
  });

  it('reads imports, not comments or strings', () => {
    const src = [
      "// import { x } from '../cli/main.ts'",
      "/* import('../cli/main.ts') */",
      "const s = \"import y from '../cli/main.ts'\";",
      "import type { A } from './a.ts';",
      "import { type B, type C } from './b.ts';",
      "import { D } from './d.ts';",
      "export { E } from './e.ts';",
      "const f = await import('./f.ts');",
    ].join('\n');
    expect(scanImports('x.ts', src).map((i) => [i.spec, i.typeOnly])).toEqual([
      ['./a.ts', true],
      ['./b.ts', true],
      ['./d.ts', false],
      ['./e.ts', false],
      ['./f.ts', false],
    ]);
  });
});
