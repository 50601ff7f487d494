import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';

const FIX = join(import.meta.dirname, '../fixtures/ckpt');
const tmp = mkdtempSync(join(tmpdir(), 'sorac-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(args: string[], opts: { isTTY?: boolean } = {}) {
  const io = memoryIO({ cwd: FIX, ...opts });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

describe('sorac inspect', () => {
  it('prints format, files, counts, dtypes and collapsed keys; training parts', async () => {
    const r = await run(['inspect', 'train/epoch1-global_step200', '--part', 'model']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/format: +torch-zip-sharded/);
    expect(r.out).toMatch(/tensors: +13/);
    expect(r.out).toMatch(/training: epoch 1, step 50, global step 200 \(loaded: model\)/);
    expect(r.out).toMatch(/optimizer\/ yes/);
    expect(r.out).toMatch(/blocks\.\{0\.\.1\}\.attn\.qkv\.weight +\[24,8\] f32/);
  });

  it('--json is machine-readable', async () => {
    const r = await run(['inspect', 'hf_sharded', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ ok: true, format: 'safetensors-sharded', tensorCount: 13 });
    expect(j.dtypes.bf16.tensors).toBe(1);
    expect(j.tensors['bf16.weight']).toMatchObject({ shape: [2, 3], dtype: 'bf16' });
    expect(typeof j.tensors['bf16.weight'].offset).toBe('number');
  });

  it('resolves a hub id offline from --cache-dir', async () => {
    const { createHash } = await import('node:crypto');
    const { mkdirSync, symlinkSync } = await import('node:fs');
    const repo = join(tmp, 'cache', 'models--org--tiny');
    const data = readFileSync(join(FIX, 'hf_model/model.safetensors'));
    const sha = createHash('sha256').update(data).digest('hex');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(join(repo, 'refs'), { recursive: true });
    mkdirSync(join(repo, 'snapshots', 'c'.repeat(40)), { recursive: true });
    writeFileSync(join(repo, 'blobs', sha), data);
    writeFileSync(join(repo, 'refs', 'main'), 'c'.repeat(40));
    symlinkSync(`../../blobs/${sha}`, join(repo, 'snapshots', 'c'.repeat(40), 'model.safetensors'));
    const r = await run(['inspect', 'org/tiny', '--cache-dir', join(tmp, 'cache'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ via: 'hub-cache', hub: { repo: 'org/tiny', revision: 'main' }, tensorCount: 13 });
    const v = await run(['verify', 'org/tiny', '--cache-dir', join(tmp, 'cache')]);
    expect(v.code).toBe(0);
    expect(v.out).toMatch(/1 hub-cache blob\(s\) checked/);
  });

  it('bad input: a typed error with code and hint, exit 1, no stack trace', async () => {
    for (const args of [['inspect', 'torch/malicious.pt'], ['inspect', 'torch/sd_legacy.pt'], ['inspect', 'nope/nothing'], ['inspect', './missing.safetensors']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toMatch(/^error: SORA50\d\d/);
      expect(r.err).not.toMatch(/\n\s+at .*\.ts:\d+/);
    }
    const j = await run(['inspect', 'torch/malicious.pt', '--json']);
    expect(JSON.parse(j.out).error.code).toBe('SORA5003');
  });
});

describe('sorac verify', () => {
  it('hashes every file, exit 0 when all ok, no progress output off a TTY', async () => {
    const r = await run(['verify', 'hf_sharded']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/4 file\(s\).*all ok/);
    expect(r.err).toBe('');
  });

  it('reports truncated and corrupt files and exits 1; --json lists statuses', async () => {
    const d = join(tmp, 'bad');
    cpSync(join(FIX, 'hf_sharded'), d, { recursive: true });
    const p = join(d, 'model-00001-of-00002.safetensors');
    writeFileSync(p, readFileSync(p).subarray(0, 100));
    const r = await run(['verify', d, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(false);
    expect(j.files.find((f: { path: string }) => f.path === p).status).toBe('truncated');
    const t = await run(['verify', d]);
    expect(t.code).toBe(1);
    expect(t.out).toMatch(/truncated/);
    expect(t.out).toMatch(/1 bad/);
  });

  it('draws a progress bar on a TTY', async () => {
    const r = await run(['verify', 'hf_sharded'], { isTTY: true });
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/\[#+\] 100%/);
  });
});
