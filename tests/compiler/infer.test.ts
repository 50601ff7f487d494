/**
 * Config inference from a checkpoint header alone (compiler/infer.ts): on every golden case (the real
 * upstream state_dicts at small configs, tests/fixtures/golden/<model>/a and golden-extra), the inferred
 * config re-traces to exactly the checkpoint's keys and shapes, and every value the shapes determine equals
 * the constructor kwargs in meta.json; the rest are named undetermined, with a reason.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsHost } from '../../compiler/host.ts';
import { type InferResult, inferConfig, keyTemplate } from '../../compiler/infer.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export function headerOf(path: string): Map<string, number[]> {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const j = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  const m = new Map<string, number[]>();
  for (const [k, v] of Object.entries(j)) if (k !== '__metadata__') m.set(k, v.shape);
  return m;
}

/** constructor kwargs flattened: nested objects (`{"STDiT3Config": {...}}`, encoder/decoder) unwrapped, first value wins */
function flatKwargs(v: unknown, out = new Map<string, unknown>()): Map<string, unknown> {
  if (v && typeof v === 'object' && !Array.isArray(v))
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x && typeof x === 'object' && !Array.isArray(x)) flatKwargs(x, out);
      else if (!out.has(k)) out.set(k, x);
    }
  return out;
}

function kwargValue(kw: Map<string, unknown>, key: string): { has: boolean; value?: unknown } {
  const len = /^len\((.*)\)$/.exec(key);
  if (len) {
    for (const n of len[1]!.split(', ')) if (Array.isArray(kw.get(n))) return { has: true, value: (kw.get(n) as unknown[]).length };
    return { has: false };
  }
  const set = /^set\((.*)\)$/.exec(key); // a nullable list: set or none
  if (set) return kw.has(set[1]!) ? { has: true, value: kw.get(set[1]!) !== null } : { has: false };
  const el = /^(.*)\[(\d+)\]$/.exec(key);
  if (el) {
    const a = kw.get(el[1]!);
    return Array.isArray(a) ? { has: true, value: a[Number(el[2])] } : { has: false };
  }
  return kw.has(key) ? { has: true, value: kw.get(key) } : { has: false };
}

interface Case {
  name: string;
  model: string;
  dir: string;
}
const cases: Case[] = [];
for (const root of [join(ROOT, 'tests/fixtures/golden'), '/work/shared/golden']) {
  if (!existsSync(root)) continue;
  for (const model of readdirSync(root).sort()) {
    const dir = join(root, model, 'a');
    if (!existsSync(join(dir, 'model.safetensors')) || !existsSync(join(ROOT, 'examples', `${model}.sora`))) continue;
    if (cases.some((c) => c.model === model && c.name.endsWith('/a'))) continue; // the same case in both places
    cases.push({ name: `${model}/a`, model, dir });
  }
}
const EXTRA = join(ROOT, 'tests/fixtures/golden-extra');
for (const model of existsSync(EXTRA) ? readdirSync(EXTRA).sort() : [])
  for (const c of existsSync(join(EXTRA, model)) && existsSync(join(ROOT, 'examples', `${model}.sora`)) ? readdirSync(join(EXTRA, model)).sort() : [])
    if (existsSync(join(EXTRA, model, c, 'model.safetensors'))) cases.push({ name: `${model}/${c}`, model, dir: join(EXTRA, model, c) });

function check(c: Case): InferResult {
  const meta = JSON.parse(readFileSync(join(c.dir, 'meta.json'), 'utf8')) as { constructor_kwargs: unknown };
  const kw = flatKwargs(meta.constructor_kwargs);
  const r = inferConfig({ file: `examples/${c.model}.sora`, host: fsHost, cwd: ROOT, header: headerOf(join(c.dir, 'model.safetensors')) });
  if ('error' in r) throw new Error(r.error);
  // a tensor may disagree only where its shape is a product of values no other shape separates (STDiT's
  // pos_embed: (H / p) * (W / p) = 15); such values are named undetermined, with the tensor
  const explained = r.values.filter((v) => v.status === 'undetermined').map((v) => v.evidence ?? '').join('\n');
  const unexplained = r.fit.mismatched.filter((m) => !explained.includes(`${m.key}[`));
  // the inferred config may break an assert only through a value the weights cannot show (MMDiT's
  // axes_dim must sum to the head dim; the split is in no shape): the message names that value
  const undetermined = r.values.filter((v) => v.status === 'undetermined').map((v) => v.key.replace(/\[\d+\]$/, ''));
  const invalid = (r.invalid ?? []).filter((e) => !undetermined.some((k) => e.includes(k)));
  expect({ missing: r.fit.missing, unexpected: r.fit.unexpected, mismatched: unexplained, invalid }).toEqual({ missing: [], unexpected: [], mismatched: [], invalid: [] });
  expect(r.compiles).toBeLessThan(400);
  if (!r.fit.mismatched.length) expect(r.exact).toBe(true);
  const determined = r.values.filter((v) => v.status === 'determined');
  expect(determined.length).toBeGreaterThan(2);
  for (const v of r.values) {
    expect(v.status, v.key).not.toBe('contradiction');
    if (v.status === 'undetermined') expect(v.evidence, v.key).toBeTruthy();
    if (v.status !== 'determined') continue;
    const want = kwargValue(kw, v.key);
    if (want.has) expect({ key: v.key, value: v.value }).toEqual({ key: v.key, value: want.value });
  }
  return r;
}

describe('config inference from a checkpoint header (golden cases)', () => {
  it('finds the golden cases', () => {
    expect(cases.filter((c) => c.name.endsWith('/a')).length).toBeGreaterThanOrEqual(9);
  });
  for (const c of cases) it(c.name, () => void check(c), 120_000);
});

describe('inference details', () => {
  it('key templates replace every index segment', () => {
    expect(keyTemplate('spatial_blocks.12.attn.qkv.weight')).toBe('spatial_blocks.#.attn.qkv.weight');
    expect(keyTemplate('t_block.1.weight')).toBe('t_block.#.weight');
    expect(keyTemplate('a1.b2')).toBe('a1.b2');
  });
  it('names the values no shape determines, and a product it cannot split', () => {
    const r = check(cases.find((c) => c.name === 'stdit/a')!);
    const by = new Map(r.values.map((v) => [v.key, v]));
    expect(by.get('num_heads')?.status).toBe('undetermined');
    expect(by.get('hidden_size')).toMatchObject({ status: 'determined', value: 64 });
    expect(by.get('input_size[2]')?.evidence).toMatch(/only together with input_size\[1\]/);
  }, 120_000);
  it('reports a shape no value can produce as a contradiction, with the tensor', () => {
    const h = headerOf(join(ROOT, 'tests/fixtures/golden/stdit3/a/model.safetensors'));
    const w = h.get('x_embedder.proj.weight')!;
    h.set('x_embedder.proj.weight', [w[0]!, w[1]!, w[2]!, w[3]!, 7]); // patch width 7 here, 2 in the final layer
    const r = inferConfig({ file: 'examples/stdit3.sora', host: fsHost, cwd: ROOT, header: h });
    if ('error' in r) throw new Error(r.error);
    expect(r.exact).toBe(false);
    expect(r.values.some((v) => v.status === 'contradiction' || (v.key === 'patch_size[2]' && v.value !== 2)) || r.fit.mismatched.length > 0).toBe(true);
  }, 120_000);
});
