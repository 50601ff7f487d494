/**
 * Property: for configs the tests have not seen, config inference recovers the generating config.
 * Random valid configs of each bundled model (each golden case's config with some ints moved by +1 or x2 and
 * some booleans flipped; configs the model rejects are skipped) → keymap → a synthetic header (keys and
 * shapes only) → inferConfig → every value it calls determined equals the generating value, and the
 * inferred config's keymap equals the header. Few runs per model (SORAC_PROPERTY_RUNS raises them).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { inferConfig } from '../../compiler/infer.ts';
import { loadProgram } from '../../compiler/program.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RUNS = Number(process.env.SORAC_PROPERTY_RUNS ?? 2);
const GOLDEN = join(ROOT, 'tests/fixtures/golden');
const EXTRA = join(ROOT, 'tests/fixtures/golden-extra');
/** model → the golden case whose config the random configs start from: golden/<model>/a, else the model's first golden-extra case (stdit3_v13, clip_text, flux_ae, dc_ae) */
const starts = new Map<string, string>();
for (const m of readdirSync(GOLDEN).sort()) if (existsSync(join(GOLDEN, m, 'a', 'meta.json')) && existsSync(join(ROOT, 'examples', `${m}.sora`))) starts.set(m, join(GOLDEN, m, 'a'));
for (const m of existsSync(EXTRA) ? readdirSync(EXTRA).sort() : []) {
  if (starts.has(m) || !existsSync(join(ROOT, 'examples', `${m}.sora`))) continue;
  const c = readdirSync(join(EXTRA, m)).sort().find((x) => existsSync(join(EXTRA, m, x, 'meta.json')));
  if (c) starts.set(m, join(EXTRA, m, c));
}
const models = [...starts.keys()].sort();

function valueAt(cfg: Record<string, unknown>, key: string): unknown {
  const len = /^len\((.*)\)$/.exec(key);
  if (len) return (cfg[len[1]!.split(', ')[0]!] as unknown[]).length;
  const set = /^set\((.*)\)$/.exec(key);
  if (set) return cfg[set[1]!] !== null && cfg[set[1]!] !== undefined;
  const el = /^(.*)\[(\d+)\]$/.exec(key);
  return el ? (cfg[el[1]!] as unknown[])[Number(el[2])] : cfg[key];
}

describe('config inference recovers random configs (property)', () => {
  for (const model of models) {
    it(model, () => {
      const file = `examples/${model}.sora`;
      const program = loadProgram(file, fsHost, { cwd: ROOT });
      const kwargs = JSON.parse(readFileSync(join(starts.get(model)!, 'meta.json'), 'utf8')).constructor_kwargs as Record<string, unknown>;
      const base = compile({ file, host: fsHost, cwd: ROOT, program, config: { file: { path: 'meta.json', values: kwargs } } });
      expect(base.keymap, model).toBeTruthy();
      const baseCfg = base.keymap!.config as Record<string, unknown>;
      // what may move: ints (top level and in int lists) and booleans
      const movable: { key: string; index?: number; kind: 'int' | 'bool' }[] = [];
      for (const [k, v] of Object.entries(baseCfg)) {
        if (typeof v === 'boolean') movable.push({ key: k, kind: 'bool' });
        else if (typeof v === 'number' && Number.isInteger(v) && v > 0) movable.push({ key: k, kind: 'int' });
        else if (Array.isArray(v)) v.forEach((x, i) => (typeof x === 'number' && Number.isInteger(x) && x > 0 ? movable.push({ key: k, index: i, kind: 'int' }) : undefined));
      }
      const move = fc.array(fc.tuple(fc.nat(movable.length - 1), fc.constantFrom('+1', 'x2') as fc.Arbitrary<'+1' | 'x2'>), { minLength: 1, maxLength: 3 });
      let checked = 0;
      fc.assert(
        fc.property(move, (moves) => {
          const cfg: Record<string, unknown> = structuredClone(baseCfg);
          for (const [i, how] of moves) {
            const m = movable[i]!;
            const get = (): unknown => (m.index !== undefined ? (cfg[m.key] as unknown[])[m.index] : cfg[m.key]);
            const set = (x: unknown) => (m.index !== undefined ? ((cfg[m.key] as unknown[])[m.index] = x) : (cfg[m.key] = x));
            if (m.kind === 'bool') set(!get());
            else set(how === '+1' ? (get() as number) + 1 : (get() as number) * 2);
          }
          const gen = compile({ file, host: fsHost, cwd: ROOT, program, config: { values: cfg } });
          fc.pre(!!gen.keymap && !gen.diagnostics.some((d) => d.severity === 'error'));
          const header = new Map(Object.entries(gen.keymap!.tensors).filter(([, e]) => !e.alias).map(([k, e]) => [k, e.shape]));
          const r = inferConfig({ file, host: fsHost, cwd: ROOT, program, header });
          if ('error' in r) throw new Error(r.error);
          for (const v of r.values) {
            expect(v.status, `${model} ${v.key}: ${v.evidence}`).not.toBe('contradiction');
            if (v.status === 'determined') expect({ key: v.key, value: v.value }).toEqual({ key: v.key, value: valueAt(gen.keymap!.config as Record<string, unknown>, v.key) });
          }
          const explained = r.values.filter((v) => v.status === 'undetermined').map((v) => v.evidence ?? '').join('\n');
          expect({ missing: r.fit.missing, unexpected: r.fit.unexpected, mismatched: r.fit.mismatched.filter((m) => !explained.includes(`${m.key}[`)) }).toEqual({ missing: [], unexpected: [], mismatched: [] });
          checked++;
        }),
        { numRuns: RUNS, seed: Number(process.env.SORAC_PROPERTY_SEED ?? 17), endOnFailure: true },
      );
      expect(checked).toBeGreaterThan(0);
    }, 300_000);
  }
});
