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

function releasedHeader(model: string, values?: Record<string, unknown>): Record<string, readonly number[]> {
  const m = compile({ file: `examples/${model}.sora`, host: fsHost, ...(values ? { config: { values } } : {}) });
  expect(m.keymap, model).toBeTruthy();
  return Object.fromEntries(Object.entries(m.keymap!.tensors).filter(([, e]) => !e.alias).map(([k, e]) => [k, e.shape]));
}

describe('sorac detect at the released configs (headers only)', () => {
  // the examples' defaults are the released configs (STDiT-XL/2, STDiT2-XL/2, STDiT3-XL/2, MMDiT 11B,
  // T5-v1.1-XXL, the SD/SDXL VAE, the 1.2 temporal VAE and VAE pipeline, the 1.3 VAE, the Hunyuan VAE,
  // CLIP ViT-L/14's text model, the Flux AE, DC-AE f32t4c128)
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
    ['clip_text', 'CLIPTextModel'],
    ['flux_ae', 'AutoEncoderFlux'],
    ['dc_ae', 'DCAE'],
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

  // Open-Sora 1.3's released STDiT3 ("OpenSora-STDiT-v4", configs/opensora-v1-3/inference/t2v.py): STDiT3-XL/2
  // with qk_norm, kernel_size [8, 8, -1] and use_spatial_rope; the defaults are STDiT3Config's
  const v13 = { qk_norm: true, kernel_size: [8, 8, -1], use_spatial_rope: true };
  it('STDiT3 1.3 (stdit3_v13.sora) at its released config; kernel_size set, its values named undetermined', async () => {
    const w = sparseSafetensors(join(dir, 'stdit3_v13.safetensors'), releasedHeader('stdit3_v13', v13));
    const r = await sorac('detect', w, '--json');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out);
    expect([d.match.model, d.match.version, d.match.exact]).toEqual(['STDiT3', '1.3', true]);
    const by = new Map((d.match.values as { key: string; value: unknown; status: string }[]).map((v) => [v.key, v]));
    expect(by.get('set(kernel_size)')).toMatchObject({ status: 'determined', value: true });
    expect(by.get('qk_norm')).toMatchObject({ status: 'determined', value: true });
    expect(by.get('num_heads')).toMatchObject({ status: 'determined', value: 16 });
    expect(by.get('hidden_size')).toMatchObject({ status: 'determined', value: 1152 });
    expect(by.get('depth')).toMatchObject({ status: 'determined', value: 28 });
    for (const i of [0, 1, 2]) expect(by.get(`kernel_size[${i}]`)?.status).toBe('undetermined');
    expect(by.get('use_spatial_rope')?.status).toBe('undetermined'); // no tensor shows it
    // what the commands set beyond the defaults is only kernel_size, whose values the weights do not give
    expect((d.match.sets as string[]).map((x) => x.split('=')[0])).toEqual(['kernel_size']);
    // 1.2 is ranked below: its keymap lacks the 1.3 conditioning embedders
    const v12 = (d.candidates as { version: string; model: string; exact: boolean }[]).find((c) => c.model === 'STDiT3' && c.version === '1.2');
    expect(v12?.exact).toBe(false);
  }, 120_000);

  it('a 1.2 STDiT3 checkpoint is not taken for 1.3, nor a 1.3 one for 1.2 (ranked by exact fit)', async () => {
    const w = sparseSafetensors(join(dir, 'stdit3_v12.safetensors'), releasedHeader('stdit3'));
    const d = JSON.parse((await sorac('detect', w, '--json')).out);
    expect([d.match.model, d.match.version]).toEqual(['STDiT3', '1.2']);
    const other = (d.candidates as { version: string; model: string; exact: boolean }[]).find((c) => c.model === 'STDiT3' && c.version === '1.3');
    expect(other?.exact ?? false).toBe(false);
    // the pipeline commands name the pipeline of that version only
    expect((d.match.commands as string[]).filter((c) => c.startsWith('sorac generate')).map((c) => c.split(' ')[2])).toEqual(['examples/pipelines/opensora_v1_2.sora']);
    for (const c of ['a_released_layout_i2v', 'c_skip_temporal_v2v']) {
      const g = JSON.parse((await sorac('detect', `tests/fixtures/golden-extra/stdit3_v13/${c}/model.safetensors`, '--json')).out);
      expect([g.match.model, g.match.version], c).toEqual(['STDiT3', '1.3']);
      expect((g.match.commands as string[]).filter((x) => x.startsWith('sorac generate')).map((x) => x.split(' ')[2])).toEqual(['examples/pipelines/opensora_v1_3.sora']);
    }
  }, 240_000);
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
