/**
 * `sorac ckpt verify` / `manifest`: every file hashed, every torch file opened through the
 * restricted unpickler, shards checked against their index, and — when a manifest exists — every
 * file compared with its recorded sha256 and size.
 */
import { copyFileSync, existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyCheckpoint, writeManifest } from '../../runtime/training/export.ts';
import { MANIFEST_NAME } from '../../runtime/training/checkpoints.ts';
import { ASYNC20, copyExp, EXP, ROOT, run, SYNC20, tempRoot, V12 } from './helpers.ts';

const tmp = tempRoot('verify');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('ckpt verify', () => {
  for (const name of [V12, SYNC20, ASYNC20]) {
    it(`${name}: every file ok and readable`, async () => {
      const r = await verifyCheckpoint(join(EXP, name));
      expect(r.problems).toEqual([]);
      expect(r.ok).toBe(true);
      expect(r.files.every((f) => f.status === 'ok' && /^[0-9a-f]{64}$/.test(f.sha256!))).toBe(true);
      expect(r.readable.length).toBeGreaterThan(3);
      expect(r.readable.every((x) => x.ok)).toBe(true);
      expect(r.readable.map((x) => x.part)).toEqual(expect.arrayContaining(['lr_scheduler', 'sampler', 'optimizer/pytorch_optim_group.bin']));
      expect(r.manifest.present).toBe(false);
    });
  }

  it('CLI: per-file lines, summary, exit 0; no progress off a TTY, a bar on one', async () => {
    const r = await run(['ckpt', 'verify', join(EXP, V12)]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ok +[0-9a-f]{64} +\S+ \S+ +model\/pytorch_model-00001\.bin$/m);
    expect(r.out).toMatch(/readable: 15\/15 /);
    expect(r.out).toMatch(/manifest: none/);
    expect(r.err).toBe('');
    const tty = await run(['ckpt', 'verify', join(EXP, V12)], { isTTY: true });
    expect(tty.err).toMatch(/\r\[#+/);
    const j = JSON.parse((await run(['ckpt', 'verify', join(EXP, ASYNC20), '--json'])).out);
    expect(j).toMatchObject({ ok: true, checkpoint: { name: ASYNC20, complete: true }, manifest: { present: false } });
  });

  it('a flipped byte in a torch shard is caught (zip CRC) and in a safetensors shard (manifest)', async () => {
    const exp = copyExp(tmp, 'flip');
    const p = join(exp, V12, 'model/pytorch_model-00002.bin');
    const b = readFileSync(p);
    b[b.length >> 1] ^= 0xff;
    writeFileSync(p, b);
    const r = await run(['ckpt', 'verify', join(exp, V12)]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/corrupt .*model\/pytorch_model-00002\.bin/);
    expect(r.out).toMatch(/CRC-32 mismatch/);

    await writeManifest(join(exp, ASYNC20));
    const q = join(exp, ASYNC20, 'model/model-00002.safetensors');
    const c = readFileSync(q);
    c[c.length - 3] ^= 0x01; // tensor bytes: structure still valid, only the hash can tell
    writeFileSync(q, c);
    const v = await verifyCheckpoint(join(exp, ASYNC20));
    expect(v.ok).toBe(false);
    expect(v.manifest).toMatchObject({ present: true, mismatched: 1, missing: 0 });
    expect(v.files.find((f) => f.path === 'model/model-00002.safetensors')).toMatchObject({ status: 'hash-mismatch' });
  });

  it('manifest: written atomically, later copies verified against it; missing and extra files', async () => {
    const exp = copyExp(tmp, 'manifest');
    const d = join(exp, SYNC20);
    const w = await run(['ckpt', 'manifest', d]);
    expect(w.code).toBe(0);
    expect(w.out).toMatch(/wrote .*sorac-manifest\.json: 16 file\(s\)/);
    const m = JSON.parse(readFileSync(join(d, MANIFEST_NAME), 'utf8'));
    expect(m.format).toBe('sorac-ckpt-manifest/1');
    expect(Object.keys(m.files)).toContain('model/model-00001.safetensors');
    expect(Object.keys(m.files)).not.toContain(MANIFEST_NAME);
    // a copy elsewhere verifies against it
    const copy = copyExp(join(tmp, 'elsewhere'), 'copied');
    copyFileSync(join(d, MANIFEST_NAME), join(copy, SYNC20, MANIFEST_NAME));
    const ok = await run(['ckpt', 'verify', join(copy, SYNC20)]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/manifest: 16 file\(s\); 0 missing, 0 changed, 0 not listed/);
    // extra file: reported, not fatal
    writeFileSync(join(copy, SYNC20, 'notes.txt'), 'hello');
    const extra = await verifyCheckpoint(join(copy, SYNC20));
    expect(extra.ok).toBe(true);
    expect(extra.files.find((f) => f.path === 'notes.txt')?.status).toBe('extra');
    // a file lost in the copy
    unlinkSync(join(copy, SYNC20, 'sampler'));
    const lost = await run(['ckpt', 'verify', join(copy, SYNC20), '--json']);
    expect(lost.code).toBe(1);
    const j = JSON.parse(lost.out);
    expect(j.manifest).toMatchObject({ missing: 1 });
    expect(j.problems.join('\n')).toMatch(/sampler: missing/);
  });

  it('an experiment dir instead of a checkpoint: SORA5101 pointing at the checkpoints in it', async () => {
    for (const cmd of ['verify', 'manifest', 'export']) {
      const r = await run(['ckpt', cmd, EXP, ...(cmd === 'export' ? ['-o', join(tmp, 'nope.safetensors')] : [])]);
      expect(r.code, cmd).toBe(1);
      expect(r.err).toMatch(/SORA5101: .* is not a training checkpoint dir \(it is an experiment dir holding 3 checkpoint\(s\)\)/);
      expect(r.err).toMatch(/hint: pass one checkpoint, e\.g\. .*epoch1-global_step6/);
    }
    expect(existsSync(join(tmp, 'nope.safetensors'))).toBe(false);
  });

  it('manifest refuses an incomplete checkpoint', async () => {
    const exp = copyExp(tmp, 'inc');
    unlinkSync(join(exp, ASYNC20, 'model/model-00001.safetensors'));
    const r = await run(['ckpt', 'manifest', join(exp, ASYNC20)]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5102: .* is not a complete checkpoint; refusing to write a manifest/);
    expect(existsSync(join(exp, ASYNC20, MANIFEST_NAME))).toBe(false);
  });

  it('a hostile lr_scheduler pickle is refused by name (SORA5003), never run', async () => {
    const exp = copyExp(tmp, 'evil');
    rmSync('/tmp/sorac-pwned', { force: true });
    copyFileSync(join(ROOT, 'tests/fixtures/ckpt/torch/malicious.pt'), join(exp, V12, 'lr_scheduler'));
    const r = await verifyCheckpoint(join(exp, V12));
    expect(r.ok).toBe(false);
    expect(r.readable.find((x) => x.part === 'lr_scheduler')).toMatchObject({ ok: false });
    expect(r.problems.join('\n')).toMatch(/lr_scheduler: not readable: SORA5003: .*posix\.system|lr_scheduler: not readable: SORA5003/);
    expect(existsSync('/tmp/sorac-pwned')).toBe(false);
  });
});
