/**
 * Hub cache messages, through the built CLI (`sorac inspect ID`, a fake cache in $HF_HUB_CACHE): a partial
 * download (blobs/*.incomplete, no snapshot yet) is named as such; a diffusers pipeline repo root says which
 * component sub-folders to use; the hint for a missing sub-folder fetches the folder (--include "sub/*").
 */
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, soracBin, STACK_FRAME } from '../helpers/cli.ts';

const T = mkdtempSync(join(tmpdir(), 'sorac-hubmsg-'));
const CACHE = join(T, 'hub');
const COMMIT = 'a'.repeat(40);
const W = join(ROOT, 'tests/fixtures/golden/stdit3/a/model.safetensors');
const env = { HF_HUB_CACHE: CACHE, HOME: join(T, 'home'), HF_HOME: '', XDG_CACHE_HOME: '' };
const inspect = (id: string) => soracBin(['inspect', id], { cwd: T, env });

function repo(id: string): string {
  const d = join(CACHE, `models--${id.replace('/', '--')}`);
  mkdirSync(join(d, 'blobs'), { recursive: true });
  return d;
}

describe('hub cache messages', () => {
  it('a partial download (blobs/*.incomplete, no snapshot) is named as such, with the command that resumes it', () => {
    const d = repo('org/partial');
    writeFileSync(join(d, 'blobs', `${'b'.repeat(64)}.incomplete`), 'half');
    const r = inspect('org/partial');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: SORA5008: org\/partial is only partially downloaded in .*models--org--partial: 1 \.incomplete blob\(s\) and no complete snapshot/);
    expect(r.err).toMatch(/hint: re-run the download to resume it: huggingface-cli download org\/partial/);
    expect(r.err).not.toMatch(/not in any local hub cache/);
    expect(r.err).not.toMatch(STACK_FRAME);
  });

  it('a diffusers pipeline repo root names its component sub-folders', () => {
    const d = repo('org/pipe');
    mkdirSync(join(d, 'refs'), { recursive: true });
    writeFileSync(join(d, 'refs', 'main'), COMMIT);
    const snap = join(d, 'snapshots', COMMIT);
    mkdirSync(join(snap, 'vae'), { recursive: true });
    writeFileSync(join(snap, 'model_index.json'), JSON.stringify({ _class_name: 'PixArtSigmaPipeline', vae: ['diffusers', 'AutoencoderKL'], transformer: ['diffusers', 'PixArtTransformer2DModel'], text_encoder: ['transformers', 'T5EncoderModel'], scheduler: ['diffusers', 'DPMSolverMultistepScheduler'] }));
    copyFileSync(W, join(snap, 'vae', 'diffusion_pytorch_model.safetensors'));
    const r = inspect('org/pipe');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: SORA5007: org\/pipe is a diffusers pipeline \(model_index\.json\), not one model/);
    expect(r.err).toMatch(/hint: use the sub-folder of the component you want, e.g\. the `vae` sub-folder: org\/pipe\/vae \(components: vae, transformer, text_encoder\)/);
    // the sub-folder resolves
    expect(inspect('org/pipe/vae').code).toBe(0);
    // the same for a local directory
    const l = soracBin(['inspect', snap], { cwd: T, env });
    expect(l.err).toMatch(/SORA5007: .* is a diffusers pipeline \(model_index\.json\)[\s\S]*`vae` sub-folder: .*\/vae/);
  });

  it('the hint for a missing sub-folder fetches the folder, for a file the file', () => {
    const r = inspect('org/pipe/text_encoder');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/huggingface-cli download org\/pipe --include "text_encoder\/\*"/);
    expect(r.err).not.toMatch(/huggingface-cli download org\/pipe text_encoder(\s|$)/);
    const f = inspect('org/other/model.safetensors');
    expect(f.err).toMatch(/huggingface-cli download org\/other model\.safetensors/);
  });
});
