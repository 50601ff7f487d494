/**
 * Open-Sora 2.0 in `sorac generate`: the pipeline format with a second (pooled) text encoder and the rflow_v2
 * sampler, checked against the REAL upstream text-to-video path (tests/fixtures/golden-sampler/rflow_v200: upstream
 * sampling.py's api_fn with an MMDiT in the released layout at small width and the golden Hunyuan VAE, made by
 * harness/make_v2_sampler_golden.py). With upstream's initial noise and the text embeddings upstream fed the MMDiT,
 * sorac's denoise + decode stages (the code generate() runs) give the final latents and the decoded frames within
 * 1e-4 after 12 steps with text guidance 7.5 and its oscillation. The schedule is compared bit for bit, the prompt
 * text exactly. Then what the compiler and the plan refuse, with the code and where.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decode, denoise, loadPipeline, planGeneration } from '../../api/pipeline.ts';
import { SoracError } from '../../core/errors.ts';
import { fileNoise, type F32Tensor, imageSizeV2, linspaceF32, packLatents, rflowV2Timesteps, unpackLatents } from '../../runtime/sampling/index.ts';
import { promptV2 } from '../../runtime/text/index.ts';
import { asF32, GOLDEN, maxAbs, maxAbsValue, meta, readTensors, ROOT as SAMPLER } from '../sampling/golden.ts';
import { goldenConfig } from '../helpers/parity.ts';
import { writeRandomWeights } from '../helpers/random-weights.ts';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';

const REPO = join(import.meta.dirname, '..', '..');
const CASE = join(SAMPLER, 'rflow_v200');
const TOL = 1e-4;
const tmp = mkdtempSync(join(tmpdir(), 'sorac-generate-v2-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ex = (f: string) => JSON.stringify(join(REPO, 'examples', f));

function sora(v: unknown): string {
  if (v === null) return 'none';
  if (Array.isArray(v)) return `[${v.map(sora).join(', ')}]`;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  return JSON.stringify(v);
}
const kwargs = (o: Record<string, unknown>) => Object.entries(o).map(([k, v]) => `${k}=${sora(v)}`).join(', ');

/** A 2.0 pipeline around the golden case's MMDiT and VAE; the text encoders are tiny stand-ins (not run here). */
function source(over: { transformer?: string; scheduler?: string; te2?: string | null; config?: string } = {}): string {
  const m = meta('rflow_v200');
  const kw = { ...m.mmdit_kwargs };
  delete kw.from_pretrained;
  delete kw.cache_dir;
  return `import { T5Encoder } from ${ex('t5.sora')}
import { CLIPTextModel } from ${ex('clip_text.sora')}
import { MMDiT } from ${ex('mmdit.sora')}
import { STDiT3 } from ${ex('stdit3.sora')}
import { AutoencoderKLCausal3D } from ${ex('hunyuan_vae.sora')}

pipeline Golden2 version "2.0" {
  config {
    release: str = "v2.0"
    resolution: str = "32x48"
    num_frames: int = 9
    fps: int = 24
    motion_score: str? = "4"
${over.config ?? ''}
  }
  tokenizer = t5_tokenizer(max_length=6) from "unused"
  text_encoder = T5Encoder(vocab_size=64, d_model=${kw.context_in_dim}, d_kv=8, d_ff=32, num_layers=1, num_heads=2) from "unused"
${over.te2 === null ? '' : `  tokenizer_2 = clip_tokenizer(max_length=8) from "unused"\n  text_encoder_2 = ${over.te2 ?? `CLIPTextModel(vocab_size=64, hidden_size=${kw.vec_in_dim}, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8)`} from "unused"`}
  transformer = ${over.transformer ?? `MMDiT(${kwargs(kw)})`} from ${JSON.stringify(join(CASE, 'model.safetensors'))}
  vae = AutoencoderKLCausal3D(${kwargs(goldenConfig('hunyuan_vae'))}) from ${JSON.stringify(join(GOLDEN, 'hunyuan_vae', 'a', 'model.safetensors'))}
  scheduler = ${over.scheduler ?? 'rflow_v2(num_sampling_steps=12, cfg_scale=7.5, guidance_img=3.0)'}
}
`;
}

const compileSrc = (name: string, src: string) => loadPipeline({ file: join(tmp, `${name}.sora`), rootText: src });
const errors = (p: ReturnType<typeof compileSrc>) => p.diagnostics.filter((d) => d.severity === 'error');

describe('Open-Sora 2.0 sampler pieces vs upstream', () => {
  it('get_schedule: linspace + the resolution/frame shift, bit for bit', () => {
    const m = meta('rflow_v200');
    const [, , T] = m.latent_shape;
    expect(rflowV2Timesteps(m.sampling_option.num_steps, m.image_seq_len, T)).toEqual(m.timesteps);
    // torch.linspace's vectorised blocks (AVX2: two 8-lane vectors) differ from the plain formula from 16 points on
    // (values printed by torch 1.13: torch.linspace(1, 0, 51).tolist()[14:20], torch.linspace(1, 0, 4).tolist())
    expect(linspaceF32(1, 0, 51).slice(14, 20)).toEqual([0.7200000286102295, 0.7000000476837158, 0.6800000071525574, 0.6600000262260437, 0.6399999856948853, 0.6200000047683716]);
    expect(rflowV2Timesteps(3, 24, 3, { shift: false })).toEqual([1.0, 0.6666666269302368, 0.3333333432674408, 0.0]);
    // flow_shift = 3 on linspace(1, 0, 3): 3·0.5 / (1 + 2·0.5)
    expect(rflowV2Timesteps(2, 1, 1, { flowShift: 3 })).toEqual([1.0, 0.75, 0.0]);
  });
  it('the prompt text (add_fps_info_to_text, add_motion_score_to_text) and the 2.0 size table', () => {
    const m = meta('rflow_v200');
    expect(m.request.prompts.map((p: string) => promptV2(p, { fps: m.request.fps_save, motionScore: m.request.motion_score }))).toEqual(m.texts);
    expect(() => promptV2('x', { fps: 24, motionScore: 'dynamic' })).toThrow(/SORA8007|dynamic/);
    expect(imageSizeV2('256px', '16:9')).toEqual([192, 336]);
    expect(imageSizeV2('256px', '9:16')).toEqual([336, 192]);
    expect(imageSizeV2('768px', '16:9')).toEqual([576, 1024]);
    expect(imageSizeV2('250x250', '16:9')).toEqual([256, 256]);
    expect(() => imageSizeV2('256px', '7:5')).toThrow(/not in Open-Sora 2.0's table/);
  });
  it('pack/unpack are inverse and follow "b c t (h ph) (w pw) -> b (t h w) (c ph pw)"', () => {
    const x: F32Tensor = { dtype: 'f32', shape: [1, 2, 1, 2, 4], data: Float32Array.from({ length: 16 }, (_, i) => i) };
    const p = packLatents(x, 2);
    expect(p.shape).toEqual([1, 2, 8]);
    // token 0 = rows 0-1, cols 0-1 of channel 0 then channel 1
    expect([...p.data.subarray(0, 8)]).toEqual([0, 1, 4, 5, 8, 9, 12, 13]);
    expect([...unpackLatents(p, x.shape, 2).data]).toEqual([...x.data]);
  });
});

describe('generate stages vs upstream Open-Sora 2.0 (real code)', () => {
  it('rflow_v200/t2v: latents and decoded frames within 1e-4 after 12 guided steps', async () => {
    const m = meta('rflow_v200');
    const p = compileSrc('golden2', source());
    expect(errors(p).map((d) => `${d.code} ${d.message}`)).toEqual([]);
    const inputs = await readTensors(join(CASE, 't2v.inputs.safetensors'));
    const ref = await readTensors(join(CASE, 't2v.outputs.safetensors'));
    const noise = await fileNoise(join(CASE, 't2v.noise.safetensors'));
    const txt = asF32(inputs.get('txt'), 'txt');
    let steps = 0;
    const { latents } = await denoise(p, {
      release: 'v2.0',
      latentShape: m.latent_shape,
      height: m.request.height,
      width: m.request.width,
      numFrames: m.request.num_frames,
      fps: 24,
      steps: m.sampling_option.num_steps,
      cfgScale: m.sampling_option.guidance,
      y: txt,
      mask: { dtype: 'i64', shape: [txt.shape[0]!, txt.shape[1]!], data: new BigInt64Array(txt.shape[0]! * txt.shape[1]!).fill(1n) },
      yNull: asF32(inputs.get('txt_null'), 'txt_null'),
      vec: asF32(inputs.get('y_vec'), 'y_vec'),
      vecNull: asF32(inputs.get('y_vec_null'), 'y_vec_null'),
      noise,
      device: 'cpu',
      onStep: (d) => (steps = d),
    });
    await noise.close?.();
    expect(steps).toBe(12);
    const refLat = asF32(ref.get('latents'), 'latents');
    expect(latents.shape).toEqual(refLat.shape);
    const eLat = maxAbs(latents.data, refLat.data);
    const { video } = await decode(p, latents as F32Tensor, { numFrames: m.request.num_frames, device: 'cpu' });
    const refFr = asF32(ref.get('frames'), 'frames');
    expect(video.shape).toEqual(refFr.shape);
    const eFr = maxAbs(video.data, refFr.data);
    console.log(`generate stages rflow_v200/t2v: latents max|err| ${eLat.toExponential(2)} (max|ref| ${maxAbsValue(refLat.data).toFixed(2)}), frames max|err| ${eFr.toExponential(2)}`);
    expect(eLat).toBeLessThanOrEqual(TOL);
    expect(eFr).toBeLessThanOrEqual(TOL);
  }, 120_000);
});

describe('Open-Sora 2.0 pipelines: what is refused', () => {
  it('the bundled examples/pipelines/opensora_v2_0.sora compiles at the released config', () => {
    const p = loadPipeline({ file: join(REPO, 'examples', 'pipelines', 'opensora_v2_0.sora') });
    expect(errors(p).map((d) => `${d.code} ${d.message}`)).toEqual([]);
    expect(p.components.scheduler!.options).toMatchObject({ num_sampling_steps: 50, cfg_scale: 7.5, text_osci: true, shift: true, flow_shift: null });
    expect(p.components.tokenizer!.options.max_length).toBe(512);
    expect(p.components.tokenizer_2!.options.max_length).toBe(77);
  });
  it('an MMDiT without text_encoder_2 (y_vec has no source): SORA8001 at the transformer', () => {
    const e = errors(compileSrc('no-te2', source({ te2: null })));
    expect(e.map((d) => d.code)).toContain('SORA8001');
    expect(e.find((d) => d.code === 'SORA8001')!.message).toMatch(/y_vec.*text_encoder_2/);
    expect(e.find((d) => d.code === 'SORA8001')!.span).toBeDefined();
  });
  it('CLIP pooling to other channels than vec_in_dim: SORA8003 with both sides', () => {
    const e = errors(compileSrc('vec-mismatch', source({ te2: 'CLIPTextModel(vocab_size=64, hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8)' })));
    expect(e.map((d) => d.code)).toEqual(['SORA8003']);
    expect(e[0]!.message).toMatch(/pools to 16 channels but the transformer's y_vec takes 12/);
    expect(e[0]!.hint).toMatch(/vec_in_dim=16/);
  });
  it('latent channels x patch² != the MMDiT in_channels: SORA8003', () => {
    const m = meta('rflow_v200');
    const kw = { ...m.mmdit_kwargs, in_channels: 12 };
    delete kw.from_pretrained;
    delete kw.cache_dir;
    const e = errors(compileSrc('ch-mismatch', source({ transformer: `MMDiT(${kwargs(kw)})` })));
    expect(e.map((d) => d.code)).toContain('SORA8003');
    expect(e.find((d) => /latents have 4 channels, 16 per 2x2 patch token/.test(d.message))).toBeDefined();
  });
  it('rflow_v2 with a latent-grid DiT, rflow with the MMDiT: SORA8003 at the scheduler', () => {
    const e1 = errors(compileSrc('v2-stdit', source({ scheduler: 'rflow(num_sampling_steps=3)' })));
    expect(e1.find((d) => d.code === 'SORA8003' && /rflow samples a latent-grid DiT/.test(d.message))).toBeDefined();
  });
  it('unsupported 2.0 modes: method="distill" (SORA8005 at the option), cond_type i2v (SORA8007 in the plan)', async () => {
    const e = errors(compileSrc('distill', source({ scheduler: 'rflow_v2(method="distill")' })));
    expect(e.map((d) => d.code)).toEqual(['SORA8005']);
    expect(e[0]!.message).toMatch(/distilled denoiser.*not supported/);
    const p = compileSrc('i2v', source({ config: '    cond_type: str = "i2v_head"' }));
    expect(errors(p)).toEqual([]);
    const err = await planGeneration(p, { prompts: ['a cat'] }).catch((x) => x);
    expect(err).toBeInstanceOf(SoracError);
    expect(err.code).toBe('SORA8007');
    expect(err.message).toMatch(/text-to-video only/);
  });
});

describe('sorac generate on a small Open-Sora 2.0 pipeline (every component run)', () => {
  it('--dry-run plans both tokenizers and text encoders; a run writes frames and latents', async () => {
    const T5TOK = join(REPO, 'tests', 'fixtures', 'tokenizer', 't5like.model');
    const CLIPTOK = join(REPO, 'tests', 'fixtures', 'clip-tokenizer');
    const src = source()
      .replace('from "unused"\n  text_encoder = T5Encoder(vocab_size=64,', `from ${JSON.stringify(T5TOK)}\n  text_encoder = T5Encoder(vocab_size=512,`)
      .replace(/(text_encoder = T5Encoder\([^)]*\)) from "unused"/, '$1 from "./te.safetensors"')
      .replace('tokenizer_2 = clip_tokenizer(max_length=8) from "unused"', `tokenizer_2 = clip_tokenizer(max_length=8) from ${JSON.stringify(CLIPTOK)}`)
      .replace('CLIPTextModel(vocab_size=64,', 'CLIPTextModel(vocab_size=744,')
      .replace(/(text_encoder_2 = CLIPTextModel\([^)]*\)) from "unused"/, '$1 from "./clip.safetensors"')
      .replace('rflow_v2(num_sampling_steps=12,', 'rflow_v2(num_sampling_steps=2,');
    const file = join(tmp, 'small2.sora');
    writeFileSync(file, src);
    const p = loadPipeline({ file, cwd: tmp });
    expect(errors(p).map((d) => `${d.code} ${d.message}`)).toEqual([]);
    await writeRandomWeights(p.components.text_encoder!.model!, join(tmp, 'te.safetensors'), 1);
    await writeRandomWeights(p.components.text_encoder_2!.model!, join(tmp, 'clip.safetensors'), 2);
    const cli = async (args: string[]) => {
      const io = memoryIO({ cwd: tmp });
      const code = await main(['generate', ...args], io);
      return { code, out: io.out, err: io.err };
    };
    const dry = await cli([file, '-p', 'a red ball', '--dry-run']);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/Open-Sora v2\.0 conditioning/);
    expect(dry.out).toMatch(/9 frame\(s\) of 32x48 at 24 fps; latent \[1, 4, 3, 8, 12\]/);
    expect(dry.out).toMatch(/rflow_v2: 2 steps, cfg 7\.5/);
    expect(dry.out).toMatch(/tokenizer_2: .*clip-tokenizer .*8 tokens/);
    expect(dry.out).toMatch(/text_encoder_2 .*clip\.safetensors .*load report ok/);
    expect(dry.out).toMatch(/text +tokenizer \+ text_encoder \+ tokenizer_2 \+ text_encoder_2/);
    const r = await cli([file, '-p', 'a red ball', '-p', 'a cat', '-o', join(tmp, 'out', 'v.mp4'), '--frames', '--save-latents', join(tmp, 'out', 'z.safetensors'), '--json']);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.outputs.map((o: { kind: string }) => o.kind)).toEqual(['frames', 'frames', 'contact-sheet', 'latents']);
    expect(readdirSync(join(tmp, 'out', 'v_0000_frames'))).toHaveLength(9);
    // a frame count the causal VAE cannot give back: (T - 1) / 4 + 1 latent frames decode to 4(t - 1) + 1
    const bad = await cli([file, '-p', 'a red ball', '-n', '8', '--dry-run']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/SORA8303: the VAE cannot give 8 frames.*use 5 or 9 frames/s);
  }, 120_000);
});
