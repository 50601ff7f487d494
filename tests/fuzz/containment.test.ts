/**
 * Reads stay where they belong (issue 14, items 6 and 11): paths from an index weight_map, a ckpt
 * manifest, a hub ref or snapshot symlink resolve inside the checkpoint / cache repo they came
 * from; only regular files are read; directory walks do not follow loops.
 *
 * The "outside" targets are FIFOs: reading one would block forever, so a test that finishes
 * proves nothing read it (besides the typed result it asserts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openWeights, verifyWeights } from '../../api/weights.ts';
import { SoracError } from '../../core/errors.ts';
import { verifyCheckpoint } from '../../runtime/training/export.ts';
import { safetensors } from './make-corpus.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sorac-contain-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fifo = (p: string) => {
  execFileSync('mkfifo', [p]);
  return p;
};
const st = () => safetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (!(e instanceof SoracError)) throw e;
    return e.code;
  }
}

const outside = join(tmp, 'outside');
mkdirSync(outside);
const secret = fifo(join(outside, 'secret'));
writeFileSync(join(outside, 'plain.safetensors'), st());

describe('sharded indexes and manifests name files inside their checkpoint only', () => {
  const ck = join(tmp, 'ck', 'sub');
  mkdirSync(ck, { recursive: true });
  writeFileSync(join(ck, 'a.safetensors'), st());

  it('verify of an index naming ../../outside/… is SORA5031 and reads nothing', async () => {
    const idx = join(ck, 'dotdot.index.json');
    writeFileSync(idx, JSON.stringify({ weight_map: { w: '../../outside/secret' } }));
    expect(await codeOf(verifyWeights(idx))).toBe('SORA5031');
    expect(await codeOf(openWeights(idx))).toBe('SORA5006'); // the loader already refused ".."
  });

  it('a shard that is a symlink out of the directory is SORA5031 for verify and for loading', async () => {
    const d = join(tmp, 'ck2');
    mkdirSync(d);
    symlinkSync(secret, join(d, 'shard.safetensors'));
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'shard.safetensors' } }));
    expect(await codeOf(verifyWeights(join(d, 'model.safetensors.index.json')))).toBe('SORA5031');
    expect(await codeOf(openWeights(join(d, 'model.safetensors.index.json')))).toBe('SORA5031');
  });

  it('a shard inside the directory still loads and verifies', async () => {
    const idx = join(ck, 'model.safetensors.index.json');
    writeFileSync(idx, JSON.stringify({ weight_map: { w: 'a.safetensors' } }));
    const s = await openWeights(idx);
    expect([...s.tensors.keys()]).toEqual(['w']);
    await s.close();
    expect((await verifyWeights(idx)).ok).toBe(true);
  });

  it('ckpt verify: a manifest naming ../../outside/secret is reported, not read', async () => {
    const d = join(tmp, 'exp', 'epoch0-global_step1');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'running_states.json'), JSON.stringify({ epoch: 0, step: 1, global_step: 1 }));
    writeFileSync(join(d, 'ema.safetensors'), st());
    writeFileSync(join(d, 'sorac-manifest.json'), JSON.stringify({ format: 'sorac-ckpt-manifest/1', checkpoint: 'x', created: '', files: { '../../../outside/secret': { size: 1, sha256: '0' }, '/dev/zero': { size: 1, sha256: '0' } } }));
    const r = await verifyCheckpoint(d);
    expect(r.ok).toBe(false);
    const bad = r.files.filter((f) => /outside the checkpoint/.test(f.detail ?? ''));
    expect(bad.map((f) => f.path).sort()).toEqual(['../../../outside/secret', '/dev/zero']);
  });
});

describe('hub cache: refs and snapshot links stay in the repo; only regular files are read', () => {
  const cache = join(tmp, 'hub');
  const repo = join(cache, 'models--org--name');
  const commit = 'a'.repeat(40);
  const snap = join(repo, 'snapshots', commit);
  mkdirSync(snap, { recursive: true });
  mkdirSync(join(repo, 'refs'));
  mkdirSync(join(repo, 'blobs'));
  writeFileSync(join(repo, 'refs', 'main'), commit);
  symlinkSync('/dev/zero', join(snap, 'zero.safetensors'));
  symlinkSync(join(outside, 'plain.safetensors'), join(snap, 'model.safetensors'));
  const opts = { cacheDir: cache, env: { HOME: tmp } };

  it('a snapshot symlink to a file outside the cache is SORA5031 (loading) and unreadable (verify)', async () => {
    expect(await codeOf(openWeights('org/name/model.safetensors', opts))).toBe('SORA5031');
    expect(await codeOf(openWeights('org/name', opts))).toBe('SORA5031');
    expect(await codeOf(verifyWeights('org/name', opts))).toBe('SORA5031');
  });

  it('verify of a snapshot whose weights are fine but another link leads outside: that file unreadable, not read', async () => {
    const repo3 = join(cache, 'models--org--mixed');
    const snap3 = join(repo3, 'snapshots', commit);
    mkdirSync(snap3, { recursive: true });
    mkdirSync(join(repo3, 'refs'));
    mkdirSync(join(repo3, 'blobs'));
    writeFileSync(join(repo3, 'refs', 'main'), commit);
    const blob = join(repo3, 'blobs', 'b'.repeat(64));
    writeFileSync(blob, st());
    symlinkSync(join('..', '..', 'blobs', 'b'.repeat(64)), join(snap3, 'model.safetensors'));
    symlinkSync(secret, join(snap3, 'config.json'));
    const r = await verifyWeights('org/mixed', opts);
    expect(r.ok).toBe(false);
    const cfg = r.files.find((f) => f.path.endsWith('config.json'))!;
    expect(cfg.status).toBe('unreadable');
    expect(cfg.detail).toMatch(/outside/);
  });

  it('a snapshot symlink to /dev/zero is refused, not hashed forever', async () => {
    expect(await codeOf(openWeights('org/name/zero.safetensors', opts))).toBe('SORA5031');
  });

  it('refs/main as a FIFO is skipped with the reason, not waited on', async () => {
    const repo2 = join(cache, 'models--org--fifo');
    mkdirSync(join(repo2, 'refs'), { recursive: true });
    mkdirSync(join(repo2, 'snapshots'));
    fifo(join(repo2, 'refs', 'main'));
    try {
      await openWeights('org/fifo', opts);
      expect.unreachable();
    } catch (e) {
      expect((e as SoracError).code).toBe('SORA5001');
      expect((e as SoracError).looked.join('\n')).toMatch(/FIFO/);
    }
  });
});

describe('special files and loops', () => {
  it('/dev/zero and a FIFO given as weights are SORA5032', async () => {
    expect(await codeOf(openWeights('/dev/zero'))).toBe('SORA5032');
    expect(await codeOf(openWeights(secret))).toBe('SORA5032');
    expect(await codeOf(verifyWeights(secret))).toBe('SORA5032');
  });

  it('verify of a directory with FIFOs and two "." symlinks: bounded, the FIFO reported, the file hashed once per path', async () => {
    const d = join(tmp, 'loops');
    mkdirSync(d);
    writeFileSync(join(d, 'model.safetensors'), st());
    fifo(join(d, 'pipe.bin'));
    symlinkSync('.', join(d, 'a'));
    symlinkSync('.', join(d, 'b'));
    const r = await verifyWeights(d);
    const pipe = r.files.find((f) => f.path.endsWith('pipe.bin'))!;
    expect(pipe.status).toBe('unreadable');
    expect(pipe.detail).toMatch(/FIFO/);
    expect(r.files.filter((f) => f.path.endsWith('model.safetensors'))).toHaveLength(1);
  });
});
