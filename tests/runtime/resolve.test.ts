import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHubSpec, resolveWeights } from '../../runtime/weights/resolve.ts';
import { openWeights } from '../../runtime/weights/store.ts';
import { verifyWeights } from '../../runtime/weights/verify.ts';
import { SoracError } from '../../core/errors.ts';

const FIX = join(import.meta.dirname, '../fixtures/ckpt');
const tmp = mkdtempSync(join(tmpdir(), 'sorac-hub-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const COMMIT2 = 'b'.repeat(40);

/** Lay out a repo exactly as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/… → relative symlinks, refs/main. */
function makeHubRepo(cache: string, repo: string, files: Record<string, string>, opts: { copy?: boolean; commit?: string; ref?: string } = {}) {
  const commit = opts.commit ?? COMMIT;
  const repoDir = join(cache, 'models--' + repo.replace('/', '--'));
  mkdirSync(join(repoDir, 'blobs'), { recursive: true });
  mkdirSync(join(repoDir, 'refs'), { recursive: true });
  writeFileSync(join(repoDir, 'refs', opts.ref ?? 'main'), commit); // no newline, like the hub client
  for (const [inRepo, src] of Object.entries(files)) {
    const data = readFileSync(src);
    // LFS files (weights) are named by sha256; small git files (json, txt) by their git blob sha1
    const sha = /\.(json|txt|md)$/.test(inRepo)
      ? createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
      : createHash('sha256').update(data).digest('hex');
    const blob = join(repoDir, 'blobs', sha);
    writeFileSync(blob, data);
    const dest = join(repoDir, 'snapshots', commit, inRepo);
    mkdirSync(dirname(dest), { recursive: true });
    if (opts.copy) writeFileSync(dest, data);
    else symlinkSync(relative(dirname(dest), blob), dest);
  }
  return repoDir;
}

let cache: string;
let copyCache: string;
beforeAll(() => {
  cache = join(tmp, 'hub');
  copyCache = join(tmp, 'hub-copy');
  makeHubRepo(cache, 'hpcai-tech/OpenSora-STDiT-v3', {
    'config.json': join(FIX, 'hf_model/config.json'),
    'model.safetensors': join(FIX, 'hf_model/model.safetensors'),
  });
  makeHubRepo(cache, 'PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers', {
    'model_index.json': join(FIX, 'hf_model/config.json'),
    'vae/config.json': join(FIX, 'diffusers_vae/config.json'),
    'vae/diffusion_pytorch_model.safetensors': join(FIX, 'diffusers_vae/diffusion_pytorch_model.safetensors'),
  });
  makeHubRepo(cache, 'org/sharded', {
    'model.safetensors.index.json': join(FIX, 'hf_sharded/model.safetensors.index.json'),
    'model-00001-of-00002.safetensors': join(FIX, 'hf_sharded/model-00001-of-00002.safetensors'),
    'model-00002-of-00002.safetensors': join(FIX, 'hf_sharded/model-00002-of-00002.safetensors'),
  });
  makeHubRepo(cache, 'org/sharded', { 'model.safetensors': join(FIX, 'hf_model/model.safetensors') }, { commit: COMMIT2, ref: 'v2' });
  makeHubRepo(copyCache, 'hpcai-tech/OpenSora-VAE-v1.2', { 'config.json': join(FIX, 'hf_model/config.json'), 'model.safetensors': join(FIX, 'hf_model/model.safetensors') }, { copy: true });
});

const env = (extra: Record<string, string> = {}) => ({ HOME: join(tmp, 'home'), ...extra });

describe('hub id parsing', () => {
  it('parses org/name, files, revisions', () => {
    expect(parseHubSpec('org/name')).toEqual({ repo: 'org/name', revision: undefined, file: undefined });
    expect(parseHubSpec('org/name/vae/x.safetensors')).toEqual({ repo: 'org/name', revision: undefined, file: 'vae/x.safetensors' });
    expect(parseHubSpec('org/name@v2')).toEqual({ repo: 'org/name', revision: 'v2', file: undefined });
    expect(parseHubSpec('org/name@v2/f.bin')).toEqual({ repo: 'org/name', revision: 'v2', file: 'f.bin' });
    expect(parseHubSpec('org/name/f.bin@v2')).toEqual({ repo: 'org/name', revision: 'v2', file: 'f.bin' });
    expect(parseHubSpec('./org/name')).toBeUndefined();
    expect(parseHubSpec('/abs/x')).toBeUndefined();
    expect(parseHubSpec('org/../x')).toBeUndefined();
  });
});

describe('offline hub cache resolution', () => {
  it('resolves org/name through refs/main → snapshots → relative symlinks into blobs', async () => {
    const s = await openWeights('hpcai-tech/OpenSora-STDiT-v3', { env: env({ HF_HUB_CACHE: cache }), cwd: tmp });
    expect(s.resolved!.via).toBe('hub-cache');
    expect(s.resolved!.hub!.commit).toBe(COMMIT);
    expect(s.tensors.size).toBe(13);
    expect(s.notes.join()).toMatch(/hub cache: hpcai-tech\/OpenSora-STDiT-v3@main/);
    await s.close();
  });

  it('finds the cache through HF_HOME/hub and the default ~/.cache/huggingface/hub', async () => {
    const home = join(tmp, 'h2');
    mkdirSync(join(home, '.cache', 'huggingface'), { recursive: true });
    cpSync(cache, join(home, '.cache', 'huggingface', 'hub'), { recursive: true, verbatimSymlinks: true });
    const r1 = await resolveWeights('hpcai-tech/OpenSora-STDiT-v3', { env: { HOME: home }, cwd: tmp });
    expect(r1.hub!.cache).toBe(join(home, '.cache', 'huggingface', 'hub'));
    const r2 = await resolveWeights('hpcai-tech/OpenSora-STDiT-v3', { env: { HOME: tmp, HF_HOME: join(home, '.cache', 'huggingface') }, cwd: tmp });
    expect(r2.hub!.cache).toBe(join(home, '.cache', 'huggingface', 'hub'));
  });

  it('resolves a nested file (org/name/vae/...) and a sub-folder (org/name/vae)', async () => {
    const e = env({ HF_HUB_CACHE: cache });
    const a = await resolveWeights('PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers/vae/diffusion_pytorch_model.safetensors', { env: e, cwd: tmp });
    expect(a.format).toBe('safetensors');
    const b = await openWeights('PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers/vae', { env: e, cwd: tmp });
    expect([...b.tensors.keys()]).toEqual(['encoder.conv_in.weight']);
    await b.close();
  });

  it('resolves sharded repos and @revision refs', async () => {
    const e = env({ HF_HUB_CACHE: cache });
    const a = await openWeights('org/sharded', { env: e, cwd: tmp });
    expect(a.format).toBe('safetensors-sharded');
    expect(a.files).toHaveLength(3);
    await a.close();
    const b = await resolveWeights('org/sharded@v2', { env: e, cwd: tmp });
    expect(b.hub!.commit).toBe(COMMIT2);
    expect(b.format).toBe('safetensors');
    const c = await resolveWeights(`org/sharded@${COMMIT2}`, { env: e, cwd: tmp });
    expect(c.path).toBe(b.path);
  });

  it('resolves a copied (non-symlink) snapshot layout', async () => {
    const s = await openWeights('hpcai-tech/OpenSora-VAE-v1.2', { env: env({ HF_HUB_CACHE: copyCache }), cwd: tmp });
    expect(s.tensors.size).toBe(13);
    await s.close();
  });

  it('a miss lists every place looked and the commands that fix it', async () => {
    try {
      await resolveWeights('hpcai-tech/OpenSora-VAE-v1.3', { env: env({ HF_HUB_CACHE: cache, HF_HOME: join(tmp, 'hfhome') }), cwd: tmp });
      throw new Error('should fail');
    } catch (e) {
      const w = e as SoracError;
      expect(w).toBeInstanceOf(SoracError);
      expect(w.code).toBe('SORA5001');
      const looked = w.looked.join('\n');
      expect(looked).toContain(join(tmp, 'hpcai-tech/OpenSora-VAE-v1.3'));
      expect(looked).toContain(join(cache, 'models--hpcai-tech--OpenSora-VAE-v1.3'));
      expect(looked).toContain(join(tmp, 'hfhome', 'hub'));
      expect(looked).toContain(join(tmp, 'home', '.cache', 'huggingface', 'hub'));
      expect(w.hint).toContain('huggingface-cli download hpcai-tech/OpenSora-VAE-v1.3');
      expect(w.hint).toContain('--local-dir');
      expect(w.hint).toContain('HF_HUB_CACHE=');
      expect(w.render()).toContain('looked in:');
    }
  });

  it('a missing ref names the cached refs; a missing file in the snapshot is listed', async () => {
    const e = env({ HF_HUB_CACHE: cache });
    await expect(resolveWeights('org/sharded@v9', { env: e, cwd: tmp })).rejects.toMatchObject({ code: 'SORA5001', looked: expect.arrayContaining([expect.stringMatching(/cached refs: main, v2/)]) });
    await expect(resolveWeights('org/sharded/nope.safetensors', { env: e, cwd: tmp })).rejects.toMatchObject({ code: 'SORA5001', looked: expect.arrayContaining([expect.stringMatching(/nope\.safetensors \(not downloaded\)/)]) });
  });

  it('a snapshot symlink to a missing / .incomplete blob is SORA5008; verify reports .incomplete files', async () => {
    const c2 = join(tmp, 'hub-incomplete');
    const repoDir = makeHubRepo(c2, 'org/partial', { 'model.safetensors': join(FIX, 'hf_model/model.safetensors') });
    const { readdirSync, renameSync } = await import('node:fs');
    const blob = readdirSync(join(repoDir, 'blobs'))[0]!;
    renameSync(join(repoDir, 'blobs', blob), join(repoDir, 'blobs', blob + '.incomplete'));
    const e = env({ HF_HUB_CACHE: c2 });
    await expect(resolveWeights('org/partial/model.safetensors', { env: e, cwd: tmp })).rejects.toMatchObject({ code: 'SORA5008', message: expect.stringMatching(/partially downloaded/) });
    const v = await verifyWeights(repoDir);
    expect(v.ok).toBe(false);
    expect(v.files.filter((f) => f.status !== 'ok').map((f) => f.status).sort()).toEqual(['incomplete', 'missing']);
  });

  it('verification catches a corrupted blob (sha256 name ≠ content) and passes a clean repo', async () => {
    const e = env({ HF_HUB_CACHE: cache });
    const good = await verifyWeights('org/sharded', { env: e, cwd: tmp });
    expect(good.ok).toBe(true);
    expect(good.files.map((f) => f.expected?.algo).sort()).toEqual(['git-sha1', 'sha256', 'sha256']);
    // a modified small git file (index JSON) is caught through its git blob sha1 name
    const idx = realpathSync((await resolveWeights('org/sharded', { env: e, cwd: tmp })).path);
    writeFileSync(idx, readFileSync(idx, 'utf8').replace('"metadata"', '"metadata" '));
    const idxBad = await verifyWeights('org/sharded', { env: e, cwd: tmp });
    expect(idxBad.files.find((f) => f.expected?.algo === 'git-sha1')!.status).toBe('hash-mismatch');
    const r = await resolveWeights('hpcai-tech/OpenSora-STDiT-v3/model.safetensors', { env: e, cwd: tmp });
    const blob = realpathSync(r.path);
    const b = readFileSync(blob);
    b[b.length - 1]! ^= 0xff; // flip a data byte: structure still valid, hash is not
    writeFileSync(blob, b);
    const bad = await verifyWeights('hpcai-tech/OpenSora-STDiT-v3', { env: e, cwd: tmp });
    expect(bad.ok).toBe(false);
    expect(bad.files.find((f) => f.path.endsWith('model.safetensors'))!.status).toBe('hash-mismatch');
  });
});

describe('local directories', () => {
  it('HF dirs, diffusers dirs, pytorch_model.bin dirs', async () => {
    expect((await resolveWeights(join(FIX, 'hf_model'))).path).toBe(join(FIX, 'hf_model/model.safetensors'));
    expect((await resolveWeights(join(FIX, 'hf_sharded'))).format).toBe('index');
    expect((await resolveWeights(join(FIX, 'diffusers_vae'))).path).toMatch(/diffusion_pytorch_model\.safetensors$/);
    expect((await resolveWeights(join(FIX, 'hf_bin'))).format).toBe('torch-zip');
  });

  it('Open-Sora training dir: ema by default, model/ on request, with epoch/step', async () => {
    const d = join(FIX, 'train/epoch1-global_step200');
    const a = await resolveWeights(d);
    expect(a.via).toBe('training-dir');
    expect(a.path).toBe(join(d, 'ema.pt'));
    expect(a.training).toMatchObject({ epoch: 1, step: 50, globalStep: 200, chosen: 'ema' });
    expect(a.training!.parts).toMatchObject({ model: true, ema: 'ema.pt', optimizer: true, lrScheduler: true, sampler: true, runningStates: true });
    const b = await openWeights(d, { part: 'model' });
    expect(b.format).toBe('torch-zip-sharded');
    expect(b.notes.join()).toMatch(/MiB \(ColossalAI index\)/);
    expect(b.metadata.running_states).toMatchObject({ global_step: 200 });
    await b.close();
  });

  it('an HF dir with both safetensors and .bin weights loads safetensors and says what it skipped', async () => {
    const d = join(tmp, 'both');
    cpSync(join(FIX, 'hf_sharded'), d, { recursive: true });
    cpSync(join(FIX, 'hf_bin/pytorch_model.bin'), join(d, 'pytorch_model.bin'));
    const r = await resolveWeights(d);
    expect(r.path).toBe(join(d, 'model.safetensors.index.json'));
    expect(r.notes.join()).toMatch(/also present, not loaded: pytorch_model\.bin/);
  });

  it('Open-Sora 2.0 training dir: ema.safetensors, master.safetensors, async optimizer shards (state.<id>.<k>)', async () => {
    const d = join(FIX, 'train2/epoch0-global_step1000');
    const a = await openWeights(d);
    expect(a.resolved!.path).toBe(join(d, 'ema.safetensors'));
    expect(a.resolved!.training!.parts).toMatchObject({ master: true, ema: 'ema.safetensors' });
    expect(a.tensors.get('x_embedder.proj.weight')!.dtype).toBe('bf16');
    await a.close();
    const m = await openWeights(d, { part: 'model' });
    expect(m.format).toBe('safetensors-sharded');
    await m.close();
    const o = await openWeights(join(d, 'optimizer'));
    expect([...o.tensors.keys()]).toContain('state.0.exp_avg');
    expect(o.extras['optimizer-00001.safetensors:state.0.step']).toBe(1);
    expect(o.metadata.param_groups).toBe('pytorch_optim_group.bin');
    await o.close();
    expect((await verifyWeights(d)).ok).toBe(true);
  });

  it('a dir with several weight files and no index is ambiguous (SORA5007)', async () => {
    await expect(resolveWeights(join(FIX, 'torch'))).rejects.toMatchObject({ code: 'SORA5007' });
  });

  it('an index whose shard is missing is SORA5006', async () => {
    const d = join(tmp, 'broken-shards');
    cpSync(join(FIX, 'hf_sharded'), d, { recursive: true });
    rmSync(join(d, 'model-00002-of-00002.safetensors'));
    await expect(openWeights(d)).rejects.toMatchObject({ code: 'SORA5006', message: expect.stringMatching(/00002-of-00002.*missing/) });
    const v = await verifyWeights(d);
    expect(v.ok).toBe(false);
  });

  it('verify checks the CRC-32 of every torch zip record (bit rot in a local .pt)', async () => {
    const d = join(tmp, 'crc');
    cpSync(join(FIX, 'train/epoch1-global_step200'), d, { recursive: true });
    expect((await verifyWeights(d)).ok).toBe(true);
    const p = join(d, 'ema.pt');
    const s = await openWeights(p);
    const off = s.tensors.get('x_embedder.proj.weight')!.offset!;
    await s.close();
    const b = readFileSync(p);
    b[off + 5]! ^= 0x01;
    writeFileSync(p, b);
    const v = await verifyWeights(d);
    const f = v.files.find((x) => x.path === p)!;
    expect(f.status).toBe('corrupt');
    expect(f.detail).toMatch(/CRC-32 mismatch in 1 record\(s\): ema\/data\/0/);
  });

  it('verify checks --local-dir downloads against the etag in .cache/huggingface/download/*.metadata', async () => {
    const d = join(tmp, 'localdir');
    cpSync(join(FIX, 'hf_model'), join(d, 'sub'), { recursive: true });
    const w = readFileSync(join(d, 'sub/model.safetensors'));
    const c = readFileSync(join(d, 'sub/config.json'));
    const md = join(d, '.cache/huggingface/download/sub');
    mkdirSync(md, { recursive: true });
    writeFileSync(join(md, 'model.safetensors.metadata'), `${COMMIT}\n${createHash('sha256').update(w).digest('hex')}\n1700000000.0\n`);
    writeFileSync(join(md, 'config.json.metadata'), `${COMMIT}\n${createHash('sha1').update(`blob ${c.length}\0`).update(c).digest('hex')}\n1700000000.0\n`);
    const ok = await verifyWeights(d);
    expect(ok.ok).toBe(true);
    expect(ok.files.map((f) => f.expected?.algo).sort()).toEqual(['git-sha1', 'sha256']);
    w[w.length - 1]! ^= 1;
    writeFileSync(join(d, 'sub/model.safetensors'), w);
    const bad = await verifyWeights(join(d, 'sub'));
    expect(bad.files.find((f) => f.path.endsWith('model.safetensors'))!.status).toBe('hash-mismatch');
  });

  it('verify digests equal a one-shot sha256 for any read-ahead chunk size', async () => {
    for (const chunkSize of [4, 12, 1000, 4096, 16 << 20]) {
      const r = await verifyWeights(join(FIX, 'train/epoch1-global_step200'), { chunkSize });
      expect(r.ok).toBe(true);
      for (const f of r.files) expect(f.sha256, `${f.path} @${chunkSize}`).toBe(createHash('sha256').update(readFileSync(f.path)).digest('hex'));
    }
  });

  it('verify reports a truncated safetensors file', async () => {
    const d = join(tmp, 'trunc');
    cpSync(join(FIX, 'hf_model'), d, { recursive: true });
    const p = join(d, 'model.safetensors');
    writeFileSync(p, readFileSync(p).subarray(0, 200));
    const v = await verifyWeights(d);
    expect(v.files.find((f) => f.path === p)!.status).toBe('truncated');
  });
});
