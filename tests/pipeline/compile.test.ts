/**
 * The pipeline compiler: the bundled release pipelines compile and their components fit; each way a
 * pipeline can be wrong is a diagnostic with a stable code at the right place (asserted by code and
 * span), with the fix in the hint; --set reaches the pipeline config and the components.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePipeline } from '../../compiler/pipeline.ts';
import { fsHost } from '../../compiler/host.ts';
import { at } from '../helpers/model.ts';

const REPO = join(import.meta.dirname, '..', '..');
const ex = (f: string) => JSON.stringify(join(REPO, 'examples', f));

/** A small, well-formed pipeline; `edit` swaps lines to break it. */
function src(edit: (lines: Record<string, string>) => void = () => {}): string {
  const l: Record<string, string> = {
    tokenizer: '  tokenizer = t5_tokenizer(max_length=16) from "./tok"',
    text_encoder: '  text_encoder = T5Encoder(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4) from "./te"',
    transformer: '  transformer = STDiT3(hidden_size=64, depth=1, num_heads=4, caption_channels=32, model_max_length=16) from "./tr"',
    vae: '  vae = AutoencoderKL(block_out_channels=[16, 16], layers_per_block=1, norm_num_groups=8, down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"]) from "./vae"',
    scheduler: '  scheduler = rflow(num_sampling_steps=steps, cfg_scale=5.0)',
  };
  edit(l);
  return [
    `import { T5Encoder } from ${ex('t5.sora')}`,
    `import { STDiT3 } from ${ex('stdit3.sora')}`,
    `import { AutoencoderKL } from ${ex('sd_vae.sora')}`,
    '',
    'pipeline P version "0" {',
    '  config {',
    '    release: str = "v1.2"',
    '    steps: int = 10',
    '  }',
    ...Object.values(l).filter((x) => x),
    '}',
    '',
  ].join('\n');
}

const compileSrc = (text: string, extra: Partial<Parameters<typeof compilePipeline>[0]> = {}) => compilePipeline({ file: join(REPO, '.tmp', 'p.sora'), host: fsHost, rootText: text, cwd: REPO, ...extra });
const errors = (text: string, extra: Partial<Parameters<typeof compilePipeline>[0]> = {}) => at(compileSrc(text, extra).diagnostics.filter((d) => d.severity === 'error'));
const first = (text: string) => compileSrc(text).diagnostics.find((d) => d.severity === 'error')!;

describe('release pipelines', () => {
  for (const v of ['v1_0', 'v1_1', 'v1_2', 'v1_3']) {
    it(`examples/pipelines/opensora_${v}.sora compiles and its components fit`, () => {
      const p = compilePipeline({ file: join(REPO, 'examples', 'pipelines', `opensora_${v}.sora`), host: fsHost, cwd: REPO });
      expect(at(p.diagnostics)).toEqual([]);
      expect(Object.keys(p.components).sort()).toEqual(['scheduler', 'text_encoder', 'tokenizer', 'transformer', 'vae']);
      expect(p.config.release).toBe(v.replace('_', '.'));
    });
  }

  it('opensora_v1_3.sora: the released t2v.py settings (OpenSora-STDiT-v4 layout, 16-channel VAE, v1.3 RFLOW)', () => {
    const p = compilePipeline({ file: join(REPO, 'examples', 'pipelines', 'opensora_v1_3.sora'), host: fsHost, cwd: REPO });
    expect(at(p.diagnostics)).toEqual([]);
    expect(p.components.transformer!.model!.version).toBe('1.3');
    expect(p.components.transformer!.model!.config).toMatchObject({ kernel_size: [8, 8, -1], use_spatial_rope: true, in_channels: 16, qk_norm: true });
    expect(p.components.vae!.model!.config).toMatchObject({ z_channels: 16, micro_frame_size: 17, temporal_overlap: true });
    expect(p.components.scheduler!.options).toMatchObject({ num_sampling_steps: 30, cfg_scale: 7.5, use_timestep_transform: true, use_oscillation_guidance: true, use_flaw_fix: true });
    expect(p.config).toMatchObject({ resolution: '720p', aspect_ratio: '9:16', num_frames: 113, fps: 24, seed: 42 });
  });
});

describe('pipeline diagnostics', () => {
  it('a well-formed pipeline has none; config values reach component options', () => {
    const p = compileSrc(src());
    expect(at(p.diagnostics)).toEqual([]);
    expect(p.components.scheduler!.options.num_sampling_steps).toBe(10);
    expect(p.components.vae!.entries).toEqual({ decode: 'decode_video', encode: 'encode_video' });
  });

  it('--set reaches the pipeline config and a component (and refuses an unknown component)', () => {
    const p = compileSrc(src(), { set: [['steps', '3'], ['transformer.depth', '2'], ['scheduler.cfg_scale', '2.5']] });
    expect(at(p.diagnostics)).toEqual([]);
    expect(p.components.scheduler!.options).toMatchObject({ num_sampling_steps: 3, cfg_scale: 2.5 });
    expect(p.components.transformer!.model!.config!.depth).toBe(2);
    expect(errors(src(), { set: [['transfomer.depth', '2']] })).toEqual(['SORA8001 -']);
    expect(compileSrc(src(), { set: [['transfomer.depth', '2']] }).diagnostics[0]!.hint).toBe('did you mean "transformer"?');
  });

  it('text encoder channels that do not fit the transformer (SORA8003 at the transformer)', () => {
    const text = src((l) => (l.transformer = l.transformer!.replace('caption_channels=32', 'caption_channels=48')));
    expect(errors(text)).toEqual(['SORA8003 .tmp/p.sora:12:3']);
    const d = first(text);
    expect(d.hint).toBe('make them equal: caption_channels=32 in the transformer, or a text encoder with d_model=48');
    expect(d.related!.map((r) => r.span.file)).toContain('.tmp/p.sora');
  });

  it("tokenizer length that does not fit the transformer's null caption (SORA8003 at the tokenizer)", () => {
    const text = src((l) => (l.tokenizer = l.tokenizer!.replace('max_length=16', 'max_length=20')));
    expect(errors(text)).toEqual(['SORA8003 .tmp/p.sora:10:3']);
    expect(first(text).hint).toBe('use max_length=16 in the tokenizer, or model_max_length=20 in the transformer');
  });

  it('VAE latent channels that do not fit the transformer (SORA8003)', () => {
    const text = src((l) => (l.vae = l.vae!.replace('layers_per_block=1', 'layers_per_block=1, latent_channels=8')));
    expect(errors(text)).toEqual(['SORA8003 .tmp/p.sora:12:3']);
    expect(first(text).message).toBe("the VAE's latents have 8 channels but the transformer takes 4");
  });

  it('a missing component, an unknown role, an unknown kind, an unknown option, a bad value', () => {
    expect(errors(src((l) => delete l.vae))).toEqual(['SORA8001 .tmp/p.sora:5:10']);
    expect(errors(src((l) => (l.vae = l.vae!.replace('  vae =', '  vea ='))))).toEqual(['SORA8001 .tmp/p.sora:13:3', 'SORA8001 .tmp/p.sora:5:10']);
    expect(errors(src((l) => (l.scheduler = '  scheduler = rflw(num_sampling_steps=10)')))).toEqual(['SORA8004 .tmp/p.sora:14:15', 'SORA8001 .tmp/p.sora:5:10']);
    expect(first(src((l) => (l.scheduler = '  scheduler = rflw(num_sampling_steps=10)'))).hint).toBe('did you mean "rflow"?');
    expect(errors(src((l) => (l.scheduler = '  scheduler = rflow(num_steps=10)')))).toEqual(['SORA8004 .tmp/p.sora:14:21']);
    expect(errors(src((l) => (l.scheduler = '  scheduler = rflow(num_sampling_steps=0)')))).toEqual(['SORA8005 .tmp/p.sora:14:40']);
    expect(errors(src((l) => (l.scheduler = '  scheduler = rflow(cfg_scale="high")')))).toEqual(['SORA8005 .tmp/p.sora:14:31']);
  });

  it('weights: required for models and tokenizers, refused for schedulers (SORA8002)', () => {
    expect(errors(src((l) => (l.transformer = l.transformer!.replace(' from "./tr"', ''))))).toEqual(['SORA8002 .tmp/p.sora:12:3']);
    expect(errors(src((l) => (l.tokenizer = l.tokenizer!.replace(' from "./tok"', ''))))).toEqual(['SORA8002 .tmp/p.sora:10:3']);
    expect(errors(src((l) => (l.scheduler = `${l.scheduler} from "x"`)))).toEqual(['SORA8002 .tmp/p.sora:14:67']);
  });

  it("a component model's own error is reported where it is, tied to the component", () => {
    const text = src((l) => (l.transformer = l.transformer!.replace('num_heads=4', 'num_heads=5')));
    const p = compileSrc(text);
    const e = p.diagnostics.find((d) => d.severity === 'error')!;
    expect(e.code).toBe('SORA3003');
    expect(e.span!.file).toBe('std/nn.sora');
    expect(e.related!.some((r) => r.message === 'compiling transformer = STDiT3(...) here' && r.span.start.line === 12)).toBe(true);
  });

  it('a file without a pipeline (SORA8006)', () => {
    const p = compilePipeline({ file: join(REPO, 'examples', 'stdit3.sora'), host: fsHost, cwd: REPO });
    expect(at(p.diagnostics.filter((d) => d.severity === 'error'))).toEqual(['SORA8006 examples/stdit3.sora:1:1']);
  });
});
