/**
 * `sorac generate` end to end on small pipelines with seeded random weights (the numbers do not matter
 * here; tests/pipeline/generate-parity.test.ts proves them): the plan and --dry-run, the outputs (video or
 * frames, contact sheet, latents), determinism, one JSON document with --json, and every bad input the
 * issue names (empty and huge prompts, unknown resolution, frames the VAE cannot take, existing or
 * unwritable outputs, missing weights, Ctrl-C mid-loop) as a clear error with nothing finished-looking left.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadPipeline, planGeneration } from '../../api/pipeline.ts';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';
import { SoracError } from '../../core/errors.ts';
import { findFfmpeg } from '../../runtime/media/video.ts';
import { goldenConfig } from '../helpers/parity.ts';
import { writeRandomWeights } from '../helpers/random-weights.ts';

const REPO = join(import.meta.dirname, '..', '..');
const TOKENIZER = join(REPO, 'tests', 'fixtures', 'tokenizer', 't5like.model');
const ex = (f: string) => JSON.stringify(join(REPO, 'examples', f));
const dir = mkdtempSync(join(tmpdir(), 'sorac-generate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small text-to-video pipeline: per-frame SD VAE (any frame count), or the Hunyuan VAE ((T-1)/4+1 latent frames). */
function pipelineSource(vae: 'sd' | 'hunyuan'): string {
  const vaeLine =
    vae === 'sd'
      ? `  vae = AutoencoderKL(block_out_channels=[8, 8, 8, 8], layers_per_block=1, norm_num_groups=4, down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]) from "./vae-sd.safetensors"`
      : `  vae = AutoencoderKLCausal3D(${Object.entries(goldenConfig('hunyuan_vae')).map(([k, v]) => `${k}=${v === null ? 'none' : typeof v === 'boolean' ? v : JSON.stringify(v)}`).join(', ')}) from "./vae-hy.safetensors"`;
  const channels = vae === 'sd' ? 4 : (goldenConfig('hunyuan_vae').latent_channels as number);
  return `import { T5Encoder } from ${ex('t5.sora')}
import { STDiT3 } from ${ex('stdit3.sora')}
import { AutoencoderKL } from ${ex('sd_vae.sora')}
import { AutoencoderKLCausal3D } from ${ex('hunyuan_vae.sora')}

pipeline Small version "0.1" {
  config {
    release: str = "v1.2"
    resolution: str = "32x32"
    num_frames: int = 4
    fps: int = 8
    seed: int = 7
  }
  tokenizer = t5_tokenizer(max_length=8) from ${JSON.stringify(TOKENIZER)}
  text_encoder = T5Encoder(vocab_size=512, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4) from "./te.safetensors"
  transformer = STDiT3(hidden_size=32, depth=1, num_heads=4, caption_channels=16, model_max_length=8, in_channels=${channels}) from "./tr-${vae}.safetensors"
${vaeLine}
  scheduler = rflow(num_sampling_steps=3, cfg_scale=4.0)
}
`;
}

const files: Record<string, string> = {};
beforeAll(async () => {
  for (const v of ['sd', 'hunyuan'] as const) {
    const file = join(dir, `small-${v}.sora`);
    writeFileSync(file, pipelineSource(v));
    files[v] = file;
    const p = loadPipeline({ file, cwd: dir });
    expect(p.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
    if (v === 'sd') await writeRandomWeights(p.components.text_encoder!.model!, join(dir, 'te.safetensors'), 1);
    await writeRandomWeights(p.components.transformer!.model!, join(dir, `tr-${v}.safetensors`), 2);
    await writeRandomWeights(p.components.vae!.model!, join(dir, `vae-${v === 'sd' ? 'sd' : 'hy'}.safetensors`), 3);
  }
}, 120_000);

async function cli(args: string[]) {
  const io = memoryIO({ cwd: dir });
  const code = await main(['generate', ...args], io);
  return { code, out: io.out, err: io.err };
}

describe('sorac generate', () => {
  it('--dry-run: the plan with every component resolved, the stages and the memory estimate; nothing written', async () => {
    const r = await cli([files.sd!, '-p', 'a red ball', '--dry-run']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/pipeline Small v0\.1 .*Open-Sora v1\.2 conditioning/);
    expect(r.out).toMatch(/1 prompt\(s\); 4 frame\(s\) of 32x32 at 8 fps; latent \[1, 4, 4, 4, 4\]/);
    expect(r.out).toMatch(/transformer +.*tr-sd\.safetensors .*load report ok/);
    expect(r.out).toMatch(/denoise +transformer \+ scheduler +weights +[\d.]+ KB +est\. peak +\d+ MB/);
    expect(r.out).toMatch(/dry run: nothing was run/);
    const j = await cli([files.sd!, '-p', 'a red ball', '--dry-run', '--json']);
    const doc = JSON.parse(j.out);
    expect(doc.ok).toBe(true);
    expect(doc.plan.stages.map((s: { name: string }) => s.name)).toEqual(['text', 'denoise', 'decode']);
    expect(doc.plan.latentShape).toEqual([1, 4, 4, 4, 4]);
  });

  it('writes the video (or frames without ffmpeg), a contact sheet and the latents; deterministic by seed', async () => {
    const out = join(dir, 'out', 'clip.mp4');
    const r = await cli([files.sd!, '-p', 'a red ball', '-p', 'a blue box', '-o', out, '--save-latents', join(dir, 'out', 'z.safetensors'), '--json']);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.ok).toBe(true);
    const kinds = doc.outputs.map((o: { kind: string }) => o.kind);
    const video = findFfmpeg() ? 'video' : 'frames';
    expect(kinds).toEqual([video, video, 'contact-sheet', 'latents']);
    if (video === 'video') {
      for (const f of ['clip_0000.mp4', 'clip_0001.mp4']) expect(readFileSync(join(dir, 'out', f)).subarray(4, 8).toString('latin1')).toBe('ftyp');
    }
    expect(readFileSync(join(dir, 'out', 'clip.png')).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // events went to stderr as JSON lines: stages and steps
    const events = r.err.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'stage' && e.state === 'end').map((e) => e.stage)).toEqual(['text', 'denoise', 'decode']);
    expect(events.some((e) => e.type === 'step' && e.done === 3 && e.total === 3)).toBe(true);
    // no temp files left next to the outputs
    expect(readdirSync(join(dir, 'out')).filter((f) => f.startsWith('.'))).toEqual([]);
    // same seed: the same latents; another seed: others
    const p = loadPipeline({ file: files.sd!, cwd: dir });
    const a = await generate(p, { prompts: ['a red ball'], out: join(dir, 'd1', 'a.mp4'), frames: true, contactSheet: false, device: 'cpu' });
    const b = await generate(p, { prompts: ['a red ball'], out: join(dir, 'd2', 'a.mp4'), frames: true, contactSheet: false, device: 'cpu' });
    const c = await generate(p, { prompts: ['a red ball'], seed: 8, out: join(dir, 'd3', 'a.mp4'), frames: true, contactSheet: false, device: 'cpu' });
    expect(Buffer.from(a.latents.data.buffer).equals(Buffer.from(b.latents.data.buffer))).toBe(true);
    expect(Buffer.from(a.latents.data.buffer).equals(Buffer.from(c.latents.data.buffer))).toBe(false);
    expect(a.video.shape).toEqual([1, 3, 4, 32, 32]);
    expect(readdirSync(join(dir, 'd1', 'a_frames'))).toEqual(['frame_0000.png', 'frame_0001.png', 'frame_0002.png', 'frame_0003.png']);
  }, 120_000);

  it('refuses to overwrite without --force, replaces with it', async () => {
    const out = join(dir, 'once', 'v.mp4');
    expect((await cli([files.sd!, '-p', 'x y', '-o', out, '--frames'])).code).toBe(0);
    const again = await cli([files.sd!, '-p', 'x y', '-o', out, '--frames']);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^error: SORA8304: .*v_frames already exists/m);
    expect((await cli([files.sd!, '-p', 'x y', '-o', out, '--frames', '--force'])).code).toBe(0);
  }, 60_000);

  it('--save-latents naming a directory is refused before any stage runs (SORA8304)', async () => {
    mkdirSync(join(dir, 'latdir'), { recursive: true });
    const r = await cli([files.sd!, '-p', 'x y', '-o', join(dir, 'lat', 'v.mp4'), '--frames', '--save-latents', join(dir, 'latdir')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: SORA8304: --save-latents .*latdir is a directory; it names the safetensors file to write/);
    expect(r.err).not.toMatch(/text: .* s on/);
    expect(existsSync(join(dir, 'lat', 'v_frames'))).toBe(false);
  }, 60_000);

  it('bad prompts: empty, 100 kB, an empty prompts file (SORA8301, nothing run)', async () => {
    const out = join(dir, 'bad', 'v.mp4');
    const empty = await cli([files.sd!, '-p', '  ', '-o', out]);
    expect(empty.code).toBe(1);
    expect(empty.err).toMatch(/error: SORA8301: empty prompt/);
    const huge = await cli([files.sd!, '-p', 'a '.repeat(50_000), '-o', out, '--json']);
    expect(huge.code).toBe(1);
    expect(JSON.parse(huge.out).error).toMatchObject({ code: 'SORA8301' });
    expect(JSON.parse(huge.out).error.message).toMatch(/100,000 characters; the limit is 20,000/);
    writeFileSync(join(dir, 'prompts.txt'), '# only a comment\n\n');
    const none = await cli([files.sd!, '--prompts', join(dir, 'prompts.txt'), '-o', out]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/SORA8301: --prompts .* has no prompt/);
    expect(existsSync(join(dir, 'bad'))).toBe(false);
  });

  it('an unknown resolution or aspect ratio names the choices (SORA8302)', async () => {
    const r = await cli([files.sd!, '-p', 'x', '--resolution', '999p', '--dry-run']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA8302: unknown resolution "999p"/);
    expect(r.err).toMatch(/hint: use one of 256, 512, .*144p, 240p, 360p, .* or HxW/);
    const a = await cli([files.sd!, '-p', 'x', '--resolution', '240p', '--aspect-ratio', '5:7', '--dry-run']);
    expect(a.err).toMatch(/SORA8302: aspect ratio "5:7" is not in the 240p table/);
  });

  it('frames the VAE cannot give back name the nearest counts (SORA8303)', async () => {
    const r = await cli([files.hunyuan!, '-p', 'x', '-n', '16', '--dry-run']);
    expect(r.code, r.out).toBe(1);
    expect(r.err).toMatch(/SORA8303: the VAE cannot give 16 frames: 16 frames encode to 4 latent frames, which decode to 13/);
    expect(r.err).toMatch(/hint: use 13 or 17 frames/);
    expect((await cli([files.hunyuan!, '-p', 'x', '-n', '17', '--dry-run'])).code).toBe(0);
  });

  it('an output location that cannot be written (SORA8304) fails before any compute', async () => {
    writeFileSync(join(dir, 'a-file'), 'x');
    const r = await cli([files.sd!, '-p', 'x', '-o', join(dir, 'a-file', 'v.mp4')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA8304: cannot create the output directory .*a-file/);
    expect(r.err).not.toMatch(/denoise:/);
  });

  it('missing weights: every component listed with where it looked and the fix, before compute', async () => {
    const src = readFileSync(files.sd!, 'utf8').replace('./tr-sd.safetensors', './nope.safetensors').replace('./te.safetensors', 'org-x/t5-missing');
    const file = join(dir, 'missing.sora');
    writeFileSync(file, src);
    mkdirSync(join(dir, 'empty-hub'), { recursive: true });
    const env = { ...process.env };
    process.env.HF_HUB_CACHE = join(dir, 'empty-hub');
    try {
      const r = await cli([file, '-p', 'x', '-o', join(dir, 'never', 'v.mp4'), '--json']);
      expect(r.code).toBe(1);
      const e = JSON.parse(r.out).error;
      expect(e.code).toBe('SORA5001');
      expect(e.message).toMatch(/^2 problems, nothing was run/);
      expect(e.message).toMatch(/text_encoder: "org-x\/t5-missing" is not a local path .* not in any local hub cache/);
      expect(e.message).toMatch(/huggingface-cli download org-x\/t5-missing/);
      expect(e.message).toMatch(/transformer: no such file or directory: .*nope\.safetensors/);
      expect(e.looked.some((l: string) => l.includes('empty-hub/models--org-x--t5-missing'))).toBe(true);
      expect(existsSync(join(dir, 'never'))).toBe(false);
    } finally {
      process.env.HF_HUB_CACHE = env.HF_HUB_CACHE;
      if (env.HF_HUB_CACHE === undefined) delete process.env.HF_HUB_CACHE;
    }
  });

  it('cancelled between steps (an aborted signal): a clear error and no output', async () => {
    const p = loadPipeline({ file: files.sd!, cwd: dir });
    const ac = new AbortController();
    const out = join(dir, 'cancel', 'v.mp4');
    const err = await generate(p, { prompts: ['x'], out, device: 'cpu', signal: ac.signal, onEvent: (e) => e.type === 'step' && ac.abort() }).catch((e) => e);
    expect(err).toBeInstanceOf(SoracError);
    expect(['SORA8214', 'SORA7009']).toContain(err.code);
    expect(readdirSync(join(dir, 'cancel'))).toEqual([]);
  });

  it('Ctrl-C (SIGINT) of the CLI mid-loop: exit 130, nothing written', async () => {
    const out = join(dir, 'sigint', 'v.mp4');
    const src = readFileSync(files.sd!, 'utf8').replace('num_sampling_steps=3', 'num_sampling_steps=200');
    const file = join(dir, 'long.sora');
    writeFileSync(file, src);
    const child = spawn(process.execPath, [join(REPO, 'bin', 'sorac.js'), 'generate', file, '-p', 'x', '-o', out, '--json'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    let stdout = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /"type":"step"/.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(sent, stderr).toBe(true);
    expect(code).toBe(130);
    expect(JSON.parse(stdout).error.code).toBe('SORA7009');
    expect(existsSync(join(dir, 'sigint')) ? readdirSync(join(dir, 'sigint')) : []).toEqual([]);
  }, 120_000);

  it('the plan estimates memory per stage from the requested sizes', async () => {
    const p = loadPipeline({ file: files.sd!, cwd: dir });
    const small = await planGeneration(p, { prompts: ['x'] });
    const big = await planGeneration(p, { prompts: ['x'], resolution: '64x64', numFrames: 8 });
    const d = (pl: typeof small) => pl.stages.find((s) => s.name === 'denoise')!;
    expect(d(big).estimatedPeakBytes).toBeGreaterThan(d(small).estimatedPeakBytes);
    expect(d(big).weightBytes).toBe(d(small).weightBytes);
  });

  it('--dtype: bf16 for every model component or one; narrowing f32 weights is refused in the plan unless --allow-lossy', async () => {
    // refused before any compute, one problem per component
    const r = await cli([files.sd!, '-p', 'a red ball', '--dtype', 'params=bf16', '--dtype', 'compute=bf16', '--dry-run', '--json']);
    expect(r.code).toBe(1);
    const err = JSON.parse(r.out).error;
    expect(err.code).toBe('SORA5510');
    expect(err.data.problems.map((p: { message: string }) => p.message.split(':')[0])).toEqual(['text_encoder', 'transformer', 'vae']);
    // one component only
    const one = await cli([files.sd!, '-p', 'a red ball', '--dtype', 'transformer.params=bf16', '--dtype', 'transformer.compute=bf16', '--dry-run', '--json']);
    expect(JSON.parse(one.out).error.message).toMatch(/^transformer: loading .* would narrow/);
    // accepted: bf16 weights are half the bytes in the plan, and the run stays close to the f32 run
    const p32 = loadPipeline({ file: files.sd!, cwd: dir });
    const p16 = loadPipeline({ file: files.sd!, cwd: dir, dtype: { '*': { params: 'bf16', compute: 'bf16' } } });
    const w = async (p: typeof p32) => (await planGeneration(p, { prompts: ['x'], allowLossy: true })).stages.find((s) => s.name === 'denoise')!.weightBytes;
    expect(await w(p16)).toBe((await w(p32)) / 2);
    const a = await generate(p32, { prompts: ['a red ball'], out: join(dir, 'dt32', 'a.mp4'), frames: true, contactSheet: false, device: 'cpu' });
    const b = await generate(p16, { prompts: ['a red ball'], out: join(dir, 'dt16', 'a.mp4'), frames: true, contactSheet: false, device: 'cpu', allowLossy: true });
    let num = 0;
    let den = 0;
    a.video.data.forEach((x, i) => {
      num += (x - b.video.data[i]!) ** 2;
      den += x * x;
    });
    expect(Math.sqrt(num / den)).toBeLessThan(0.05);
    // a rule for something that is not a model component is a usage error
    const bad = await cli([files.sd!, '-p', 'x', '--dtype', 'scheduler.compute=bf16', '--dry-run']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/SORA7007: --dtype scheduler\.compute=bf16: "scheduler" is not a model component/);
  }, 120_000);
});
