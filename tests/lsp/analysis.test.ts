/**
 * The editor's analysis reports what `sorac check` reports: on every bundled example and std file, and
 * on configs that fail, the diagnostics of lsp/analysis.ts (which traces each distinct module call
 * once) equal those of api/model.ts checkModel (which traces every call), code, message, span and
 * related locations included.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkModel, isPipelineSource, loadModel } from '../../api/model.ts';
import { loadPipeline } from '../../api/pipeline.ts';
import { analyze } from '../../lsp/analysis.ts';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { ROOT } from './client.ts';

function soraFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? soraFiles(join(dir, e.name)) : e.name.endsWith('.sora') ? [join(dir, e.name)] : []));
}

const MODELS = soraFiles(join(ROOT, 'examples'));

async function cliDiagnostics(file: string, set: [string, string][] = []) {
  if (isPipelineSource(file)) return loadPipeline({ file, cwd: ROOT, set }).diagnostics;
  return (await checkModel(loadModel({ file, cwd: ROOT, set }))).diagnostics;
}

describe('lsp analysis = sorac check', () => {
  it.each(MODELS.map((f) => relative(ROOT, f)))('%s', async (rel) => {
    const file = join(ROOT, rel);
    const a = analyze({ file, text: readFileSync(file, 'utf8'), version: 1, cwd: ROOT });
    expect(a.diagnostics).toEqual(await cliDiagnostics(file));
  }, 120_000);

  it('configs and edits that fail inside the repeated blocks', async () => {
    const stdit3 = join(ROOT, 'examples/stdit3.sora');
    const text = readFileSync(stdit3, 'utf8');
    const cases: { set: [string, string][]; text: string }[] = [
      { set: [['num_heads', '5'], ['hidden_size', '64']], text },
      { set: [['hidden_size', '66'], ['num_heads', '6'], ['depth', '2']], text },
      // only the temporal blocks fail (the 2nd instance kind of STDiT3Block), at trace time
      { set: [['depth', '3']], text: text.replace('    let x_m_s = gate_msa * x_m', '    if temporal {\n      let bad = x @ reshape(t, [B, 6, hidden_size])\n    }\n    let x_m_s = gate_msa * x_m') },
      // a shape error in every block, with the absent-input path different from the present one
      { set: [], text: text.replace('    let h = x + x_m_s', '    let h = x + x_m_s[:, :, :7]') },
    ];
    for (const c of cases) {
      const a = analyze({ file: stdit3, text: c.text, version: 1, cwd: ROOT, config: { set: c.set } });
      const want = (await checkModel(compile({ file: stdit3, host: fsHost, rootText: c.text, cwd: ROOT, config: { set: c.set } }))).diagnostics;
      expect(want.some((d) => d.severity === 'error')).toBe(true);
      expect(a.diagnostics).toEqual(want);
    }
  }, 120_000);

  it('a file of layers only (std/nn.sora) has no model to check: no SORA2010', () => {
    const nn = join(ROOT, 'std/nn.sora');
    expect(analyze({ file: nn, text: readFileSync(nn, 'utf8'), version: 1, cwd: ROOT }).diagnostics).toEqual([]);
  });
});
