/**
 * `sorac generate` with an Open-Sora 1.3 pipeline (the layout of examples/pipelines/opensora_v1_3.sora at toy size,
 * seeded random weights): the v1.3 DiT (window attention, spatial RoPE) whose i2v/v2v conditioning inputs
 * text-to-video leaves out, the 1.3 VAE, and the v1.3 RFLOW options use_oscillation_guidance / use_flaw_fix
 * reaching the sampler (and refused for another release).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadPipeline, planGeneration } from '../../api/pipeline.ts';
import { SoracError } from '../../core/errors.ts';
import { writeRandomWeights } from '../helpers/random-weights.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';

const REPO = join(import.meta.dirname, '..', '..');
const TOKENIZER = join(REPO, 'tests', 'fixtures', 'tokenizer', 't5like.model');
const ex = (f: string) => JSON.stringify(join(REPO, 'examples', f));
const dir = mkdtempSync(join(tmpdir(), 'sorac-generate-v13-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const soraValue = (v: unknown): string => (v === null ? 'none' : Array.isArray(v) ? `[${v.map(soraValue).join(', ')}]` : typeof v === 'boolean' || typeof v === 'number' ? String(v) : JSON.stringify(v));
const vae = v13Config();
const Z = vae.z_channels as number;

function source(release: string, flawFix: boolean): string {
  return `import { T5Encoder } from ${ex('t5.sora')}
import { STDiT3 } from ${ex('stdit3_v13.sora')}
import { OpenSoraVAE_V1_3 } from ${ex('vae_v13.sora')}

pipeline Small13 version "0.1" {
  config {
    release: str = ${JSON.stringify(release)}
    resolution: str = "32x32"
    num_frames: int = 5
    fps: int = 24
    seed: int = 7
  }
  tokenizer = t5_tokenizer(max_length=8) from ${JSON.stringify(TOKENIZER)}
  text_encoder = T5Encoder(vocab_size=512, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4) from "./te.safetensors"
  transformer = STDiT3(hidden_size=36, depth=1, num_heads=2, caption_channels=16, model_max_length=8, in_channels=${Z}, kernel_size=[8, 8, -1], use_spatial_rope=true) from "./tr.safetensors"
  vae = OpenSoraVAE_V1_3(${Object.entries(vae).map(([k, v]) => `${k}=${soraValue(v)}`).join(', ')}) from "./vae.safetensors"
  scheduler = rflow(num_sampling_steps=3, cfg_scale=4.0, use_timestep_transform=true, use_oscillation_guidance=true, use_flaw_fix=${flawFix})
}
`;
}

const file = (name: string, release: string, flawFix: boolean) => {
  const f = join(dir, `${name}.sora`);
  writeFileSync(f, source(release, flawFix));
  return f;
};

beforeAll(async () => {
  const p = loadPipeline({ file: file('v13', 'v1.3', true), cwd: dir });
  expect(p.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
  await writeRandomWeights(p.components.text_encoder!.model!, join(dir, 'te.safetensors'), 1);
  await writeRandomWeights(p.components.transformer!.model!, join(dir, 'tr.safetensors'), 2);
  await writeRandomWeights(p.components.vae!.model!, join(dir, 'vae.safetensors'), 3);
}, 120_000);

describe('sorac generate, Open-Sora 1.3 layout', () => {
  it('runs text-to-video with the conditioning inputs left out; the flaw fix reaches the sampler; deterministic', async () => {
    const run = async (name: string, flawFix: boolean, out: string) =>
      generate(loadPipeline({ file: file(name, 'v1.3', flawFix), cwd: dir }), { prompts: ['a red ball'], out: join(dir, out, 'a.mp4'), frames: true, contactSheet: false, device: 'cpu' });
    const a = await run('v13', true, 'o1');
    const b = await run('v13', true, 'o2');
    const c = await run('v13-nofix', false, 'o3');
    expect(a.latents.shape[1]).toBe(Z);
    expect(a.video.shape.slice(0, 3)).toEqual([1, 3, 5]);
    expect(a.video.shape.slice(3)).toEqual([32, 32]);
    expect(Buffer.from(a.latents.data.buffer).equals(Buffer.from(b.latents.data.buffer))).toBe(true);
    expect(Buffer.from(a.latents.data.buffer).equals(Buffer.from(c.latents.data.buffer))).toBe(false);
  }, 180_000);

  it('use_oscillation_guidance / use_flaw_fix under another release: SORA8005 before any compute', async () => {
    const p = loadPipeline({ file: file('v12', 'v1.2', true), cwd: dir });
    const err = await planGeneration(p, { prompts: ['a red ball'] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SoracError);
    const problems = ((err as SoracError).data as { problems?: { code: string; message: string }[] } | undefined)?.problems ?? [];
    const all = [err as SoracError, ...problems];
    expect(all.some((e) => e.code === 'SORA8005' && /use_oscillation_guidance=true\) is Open-Sora 1\.3's RFLOW/.test(e.message))).toBe(true);
  }, 60_000);
});
