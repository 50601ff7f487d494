/**
 * The upstream-parameter audit (docs/guides/upstream-parameters.md): the table is generated from the examples'
 * declarations and the upstream parameter lists, so it cannot drift; a key naming an upstream parameter the model
 * fixes or refuses is an error (SORA7011) unless it has the modelled value; unknown keys stay SORA7004 warnings.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { DOC, docTable, rows, table } from '../helpers/upstream-table.ts';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

const codes = (m: { diagnostics: readonly { code: string; severity: string; message: string }[] }, sev: string) => m.diagnostics.filter((d) => d.severity === sev);

describe('upstream parameters', () => {
  const rs = rows(); // throws when an upstream parameter is neither a config key nor declared

  it('the doc table is the one generated from the examples (npx tsx tests/helpers/upstream-table.ts --write)', () => {
    expect(docTable(readFileSync(DOC, 'utf8'))).toBe(table());
    // the tiling keys of the Hunyuan VAE are honoured with parity cases above the tile size
    expect(rs.find((r) => r.model === 'hunyuan_vae' && r.param === 'use_spatial_tiling')!.cases).toContain('golden-extra/hunyuan_vae/tiled_spatial');
  });

  it('audits every example model: each examples/*.sora is in params.json (a new example without its audit fails here)', () => {
    // examples/pipelines/ and examples/tiny-pipeline/ hold pipelines (they compose the example models, whose
    // parameters are audited here) and a tiny trained pipeline's files, not model descriptions of an upstream class
    const entries = readdirSync(EXAMPLES).filter((f) => !f.endsWith('.md'));
    const dirs = entries.filter((f) => statSync(join(EXAMPLES, f)).isDirectory()).sort();
    expect(dirs).toEqual(['pipelines', 'tiny-pipeline']);
    const models = entries.filter((f) => !dirs.includes(f));
    expect(models.every((f) => f.endsWith('.sora')), models.join(', ')).toBe(true);
    expect([...new Set(rs.map((r) => r.model))].sort()).toEqual(models.map((f) => f.slice(0, -'.sora'.length)).sort());
    expect(models.length).toBeGreaterThanOrEqual(14);
  });

  it('refuses what the examples only assert or do not express (sequence parallelism, DC-AE tiling and training mode)', () => {
    const rule = (model: string, param: string) => rs.find((r) => r.model === model && r.param === param);
    for (const model of ['stdit', 'stdit3', 'stdit3_v13']) expect(rule(model, 'enable_sequence_parallelism'), model).toMatchObject({ verdict: 'refuses', value: false });
    for (const param of ['use_spatial_tiling', 'use_temporal_tiling', 'is_training']) expect(rule('dc_ae', param), param).toMatchObject({ verdict: 'refuses', value: false });
    // the released DC-AE inference config (configs/diffusion/inference/high_compression.py) switches tiling on: an error, not a warning
    const released = compile({ file: 'examples/dc_ae.sora', host: fsHost, config: { file: { path: 'high_compression.json', values: { model_name: 'dc-ae-f32t4c128', from_scratch: true, use_spatial_tiling: true, use_temporal_tiling: true, spatial_tile_size: 256, temporal_tile_size: 32, tile_overlap_factor: 0.25 } } } });
    expect(codes(released, 'error').map((d) => d.code)).toEqual(['SORA7011', 'SORA7011']);
    expect(codes(released, 'error').map((d) => d.message).join('\n')).toMatch(/use_spatial_tiling[\s\S]*use_temporal_tiling/);
  });

  const valued = rs.filter((r) => r.verdict !== 'config key' && r.value !== undefined);
  const free = rs.filter((r) => r.verdict === 'fixes' && r.value === undefined);
  it('has both kinds of rules', () => {
    expect(valued.length).toBeGreaterThanOrEqual(5);
    expect(free.length).toBeGreaterThanOrEqual(20);
  });

  for (const r of valued) {
    it(`${r.model}: ${r.param} other than ${JSON.stringify(r.value)} is an error naming it and the reason; ${JSON.stringify(r.value)} is accepted`, () => {
      const other = typeof r.value === 'boolean' ? !r.value : r.value === null ? 0.5 : typeof r.value === 'number' ? r.value + 1 : 'other';
      for (const config of [{ values: { [r.param]: other } }, { set: [[r.param, JSON.stringify(other)]] as [string, string][] }, { file: { path: 'cfg.json', values: { [r.param]: other } } }]) {
        const bad = compile({ file: `examples/${r.model}.sora`, host: fsHost, config });
        const errs = codes(bad, 'error');
        expect(errs.map((d) => d.code)).toEqual(['SORA7011']);
        expect(errs[0]!.message).toContain(r.param);
        expect(errs[0]!.message).toContain(r.reason!);
      }
      const ok = compile({ file: `examples/${r.model}.sora`, host: fsHost, config: { file: { path: 'cfg.json', values: { [r.param]: r.value } } } });
      expect(codes(ok, 'error')).toEqual([]);
      expect(ok.diagnostics.filter((d) => d.code === 'SORA7004')).toEqual([]);
    });
  }

  it('result-neutral parameters (fixes k "why") are accepted with an info line, in files and --set', () => {
    for (const r of free) {
      const m = compile({ file: `examples/${r.model}.sora`, host: fsHost, config: { file: { path: 'cfg.json', values: { [r.param]: 'x', architectures: ['Foo'] } } } });
      expect(codes(m, 'error'), `${r.model}.${r.param}`).toEqual([]);
      expect(codes(m, 'info').some((d) => d.code === 'SORA7011' && d.message.includes(r.param))).toBe(true);
      // a key that is no upstream parameter stays a warning
      expect(codes(m, 'warning').map((d) => d.message).join('\n')).toMatch(/ignoring 1 key that .* does not declare: architectures/);
    }
  });

  it('an upstream rule naming a config key, or with a non-literal value, is an error', () => {
    const src = (rule: string) => `model M version "1" {\n  config { k: int = 2 }\n  upstream {\n    ${rule}\n  }\n  entry forward(x: f32[B]) -> (y: f32[B]) {\n    return x * 2.0\n  }\n}\n`;
    const both = compile({ file: 'm.sora', host: fsHost, rootText: src('fixes k "why"') });
    expect(codes(both, 'error').map((d) => d.message).join('\n')).toMatch(/upstream parameter k is a config key too/);
    const expr = compile({ file: 'm.sora', host: fsHost, rootText: src('refuses q = k + 1 "why"') });
    expect(codes(expr, 'error').map((d) => d.message).join('\n')).toMatch(/must be a literal/);
    const fine = compile({ file: 'm.sora', host: fsHost, rootText: src('refuses q = [1, -2.5, "a", none, true] "why"') });
    expect(codes(fine, 'error')).toEqual([]);
  });
});
