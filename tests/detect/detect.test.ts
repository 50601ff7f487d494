/**
 * `sorac detect`: the released checkpoints (headers only, sparse files: no weight bytes written) are each
 * identified with their released config; the golden checkpoints with theirs; a checkpoint of a model sorac
 * does not know gets SORA5060 with the closest fit and what disagreed. Through the CLI's main (the same
 * code path as bin/sorac.js).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { sparseSafetensors } from '../helpers/sparse-safetensors.ts';

async function sorac(...args: string[]) {
  const io = memoryIO();
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

const dir = mkdtempSync(join(tmpdir(), 'sorac-detect-'));

function releasedHeader(model: string): Record<string, readonly number[]> {
  const m = compile({ file: `examples/${model}.sora`, host: fsHost });
  return Object.fromEntries(Object.entries(m.keymap!.tensors).filter(([, e]) => !e.alias).map(([k, e]) => [k, e.shape]));
}

describe('sorac detect at the released configs (headers only)', () => {
  // the examples' defaults are the released configs (STDiT-XL/2, STDiT2-XL/2, STDiT3-XL/2, MMDiT 11B,
  // T5-v1.1-XXL, the SD/SDXL VAE, the 1.2 temporal VAE and VAE pipeline, the 1.3 VAE, the Hunyuan VAE)
  const released: [string, string][] = [
    ['stdit', 'STDiT'],
    ['stdit2', 'STDiT2'],
    ['stdit3', 'STDiT3'],
    ['mmdit', 'MMDiT'],
    ['t5', 'T5Encoder'],
    ['sd_vae', 'AutoencoderKL'],
    ['vae_temporal', 'VAE_Temporal'],
    ['vae_pipeline_v12', 'OpenSoraVAE_V1_2'],
    ['vae_v13', 'OpenSoraVAE_V1_3'],
    ['hunyuan_vae', 'AutoencoderKLCausal3D'],
  ];
  for (const [file, model] of released)
    it(`${model} (${file}.sora)`, async () => {
      const w = sparseSafetensors(join(dir, `${file}.safetensors`), releasedHeader(file));
      const r = await sorac('detect', w, '--json');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const d = JSON.parse(r.out);
      expect(d.match.model).toBe(model);
      expect(d.match.exact).toBe(true);
      // the released config: nothing differs from the defaults, nothing contradicts
      expect(d.match.sets).toEqual([]);
      expect(d.match.values.filter((v: { status: string }) => v.status === 'contradiction')).toEqual([]);
      expect(d.match.values.filter((v: { status: string }) => v.status === 'determined').length).toBeGreaterThan(3);
    }, 120_000);
});

describe('sorac detect', () => {
  it('names the model, the inferred config, what is undetermined and the commands (text)', async () => {
    const r = await sorac('detect', 'tests/fixtures/golden/stdit2/a/model.safetensors');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/model: +STDiT2 1\.1 \(examples\/stdit2\.sora\): every key and shape fits/);
    expect(r.out).toMatch(/hidden_size += 48 /);
    expect(r.out).toMatch(/not determined by the weights[^\n]*\n(.*\n)*  class_dropout_prob +=/);
    expect(r.out).toMatch(/sorac run examples\/stdit2\.sora --weights tests\/fixtures\/golden\/stdit2\/a\/model\.safetensors --set hidden_size=48 .*--set depth=2/);
    expect(r.out).toMatch(/sorac generate examples\/pipelines\/opensora_v1_1\.sora --weights transformer=/);
  }, 120_000);

  it('the printed command loads the checkpoint strictly', async () => {
    const d = JSON.parse((await sorac('detect', 'tests/fixtures/golden/t5/a/model.safetensors', '--json')).out);
    const check = (d.match.commands as string[]).find((c) => c.startsWith('sorac check '))!;
    const args = check.split(' ').slice(1);
    const r = await sorac(...args);
    expect(r.err).toMatch(/^note: config: inferred from the weights/); // the same config, found again
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
  }, 120_000);

  it('a model sorac does not know: SORA5060, the closest fit and what disagreed; --json one document', async () => {
    const h = releasedHeader('stdit3');
    // an STDiT3 with a different MLP and an extra head: no config of any bundled model gives these
    const odd: Record<string, readonly number[]> = {};
    for (const [k, s] of Object.entries(h)) if (!k.includes('.mlp.fc2.')) odd[k] = s;
    odd['extra_head.weight'] = [7, 1152];
    const w = sparseSafetensors(join(dir, 'unknown.safetensors'), odd);
    const t = await sorac('detect', w);
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/SORA5060: no bundled model fits .*; closest: STDiT3 1\.2 \(examples\/stdit3\.sora\)/);
    expect(t.err).toMatch(/tensors the model has and the checkpoint lacks: spatial_blocks\.0\.mlp\.fc2\.weight/);
    expect(t.err).toMatch(/tensor the checkpoint has and the model lacks: extra_head\.weight/);
    expect(t.err).toContain(`hint: per-key fixes and the migration that applies (an older release): sorac check examples/stdit3.sora --weights ${w}`);
    const j = await sorac('detect', w, '--json');
    expect(j.code).toBe(1);
    const d = JSON.parse(j.out);
    expect(d.ok).toBe(false);
    expect(d.error.code).toBe('SORA5060');
    expect(d.error.data.candidates[0].model).toBe('STDiT3');
  }, 120_000);

  it('nothing in common with any model: SORA5060 without a crash', async () => {
    const w = sparseSafetensors(join(dir, 'alien.safetensors'), { 'alien.w': [3, 3] });
    const r = await sorac('detect', w);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5060: no bundled model fits/);
  });

  it('--model FILE.sora is tried too; a missing one is a clear error', async () => {
    const r = await sorac('detect', 'tests/fixtures/golden/t5/a/model.safetensors', '--model', 'tests/cases/nope.sora');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7001: cannot read --model tests\/cases\/nope\.sora/);
  });
});
