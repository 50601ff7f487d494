/**
 * Faults while writing: `kill -9` in the middle of an export or a manifest (a child process paused
 * by the SORAC_TEST_PAUSE_AFTER hook, then SIGKILLed) leaves nothing finished-looking at the target;
 * a full disk (a real 16 KiB tmpfs when we may mount one, and always the SORAC_TEST_FAIL_AFTER
 * ENOSPC injection) and a read-only target give a clear error and leave nothing behind.
 * SORAC_TEST_NO_MOUNT=1 exercises the no-mount fallbacks (a 0555 dir written as `nobody` when root).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint, verifyCheckpoint, writeManifest } from '../../runtime/training/export.ts';
import { MANIFEST_NAME } from '../../runtime/training/checkpoints.ts';
import { ASYNC20, copyExp, EXP, mountTmpfs, remountReadOnly, run, spawnCli, tempRoot, umount, V12, waitFor } from './helpers.ts';

const tmp = tempRoot('faults');
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) umount(m);
  rmSync(tmp, { recursive: true, force: true });
});

async function killWhenPaused(args: string[], pauseAfter: number) {
  const marker = join(tmp, `paused-${Math.random().toString(16).slice(2)}`);
  const child = spawnCli(args, { SORAC_TEST_PAUSE_AFTER: String(pauseAfter), SORAC_TEST_PAUSE_FILE: marker });
  let err = '';
  child.stderr.on('data', (b) => (err += b));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  await Promise.race([waitFor(marker), exited.then((x) => Promise.reject(new Error(`child exited early ${JSON.stringify(x)}: ${err}`)))]);
  child.kill('SIGKILL');
  const ex = await exited;
  expect(ex.signal).toBe('SIGKILL');
}

describe('kill -9 mid-write', () => {
  it('export to one file: no OUT, only a hidden temp file', async () => {
    const dir = join(tmp, 'k1');
    mkdirSync(dir);
    const out = join(dir, 'model.safetensors');
    await killWhenPaused(['ckpt', 'export', join(EXP, V12), '-o', out], 20);
    expect(existsSync(out)).toBe(false);
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.model\.safetensors\.sorac-tmp-\d+-[0-9a-f]+$/);
    // a re-run succeeds and is complete
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', out])).code).toBe(0);
  }, 60_000);

  it('sharded export: no OUT dir, only a hidden temp dir', async () => {
    const dir = join(tmp, 'k2');
    mkdirSync(dir);
    const out = join(dir, 'hf');
    await killWhenPaused(['ckpt', 'export', join(EXP, V12), '--shard-size', '8KB', '-o', out], 30);
    expect(existsSync(out)).toBe(false);
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.hf\.sorac-tmp-\d+-[0-9a-f]+$/);
    expect(readdirSync(join(dir, left[0]!)).some((n) => n.endsWith('.index.json'))).toBe(false);
  }, 60_000);

  it('manifest: no manifest, a half-written hidden temp file that verify reports as a leftover and ignores', async () => {
    const exp = copyExp(tmp, 'k3');
    const d = join(exp, ASYNC20);
    await killWhenPaused(['ckpt', 'manifest', d], 1);
    expect(existsSync(join(d, MANIFEST_NAME))).toBe(false);
    const temps = readdirSync(d).filter((n) => n.startsWith(`.${MANIFEST_NAME}.`));
    expect(temps).toHaveLength(1);
    expect(() => JSON.parse(readFileSync(join(d, temps[0]!), 'utf8'))).toThrow();
    const v = await verifyCheckpoint(d);
    expect(v.ok).toBe(true);
    expect(v.manifest.present).toBe(false);
    expect(v.temps).toEqual(temps);
    await writeManifest(d);
    const again = await verifyCheckpoint(d);
    expect(again.manifest).toMatchObject({ present: true, missing: 0, mismatched: 0, extra: 0 });
  }, 60_000);
});

describe('Ctrl-C mid-write', () => {
  for (const [what, args, after, left] of [
    ['export', (d: string) => ['ckpt', 'export', join(EXP, V12), '-o', join(d, 'out.safetensors')], 20, 'nothing was written at'],
    ['sharded export', (d: string) => ['ckpt', 'export', join(EXP, V12), '--shard-size', '8KB', '-o', join(d, 'hf')], 30, 'nothing was written at'],
  ] as const) {
    it(`${what}: SIGINT stops it, removes its temp output, exit 130`, async () => {
      const dir = join(tmp, `int-${what.replace(' ', '-')}`);
      mkdirSync(dir);
      const marker = join(tmp, `int-marker-${Math.random().toString(16).slice(2)}`);
      const child = spawnCli(args(dir), { SORAC_TEST_PAUSE_AFTER: String(after), SORAC_TEST_PAUSE_FILE: marker, SORAC_TEST_PAUSE_MS: '1500' });
      let err = '';
      child.stderr.on('data', (b) => (err += b));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      await waitFor(marker);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(err).toMatch(new RegExp(`interrupted: ${left}`));
      expect(readdirSync(dir)).toEqual([]);
    }, 60_000);
  }

  it('manifest: SIGINT leaves no manifest and no temp file', async () => {
    const exp = copyExp(tmp, 'int-manifest');
    const d = join(exp, ASYNC20);
    const marker = join(tmp, 'int-marker-manifest');
    const child = spawnCli(['ckpt', 'manifest', d], { SORAC_TEST_PAUSE_AFTER: '1', SORAC_TEST_PAUSE_FILE: marker, SORAC_TEST_PAUSE_MS: '1500' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor(marker);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(readdirSync(d).filter((n) => n.includes(MANIFEST_NAME))).toEqual([]);
  }, 60_000);
});

describe('full and read-only targets', () => {
  it('ENOSPC from inside the write path (injected): clear error, nothing left', async () => {
    const dir = join(tmp, 'enospc');
    mkdirSync(dir);
    process.env.SORAC_TEST_FAIL_AFTER = '10:ENOSPC';
    try {
      await expect(exportCheckpoint(join(EXP, V12), { from: 'ema', out: join(dir, 'm.safetensors') })).rejects.toMatchObject({
        code: 'SORA5105',
        message: expect.stringMatching(/no space left on the device holding .* \(ENOSPC\); nothing was left at/),
      });
      await expect(exportCheckpoint(join(EXP, V12), { from: 'ema', out: join(dir, 'hf'), shardSize: 8000 })).rejects.toMatchObject({ code: 'SORA5105' });
      process.env.SORAC_TEST_FAIL_AFTER = '1:ENOSPC';
      const exp = copyExp(tmp, 'enospc-exp');
      await expect(writeManifest(join(exp, ASYNC20))).rejects.toMatchObject({ code: 'SORA5105' });
      expect(readdirSync(join(exp, ASYNC20)).filter((n) => n.includes(MANIFEST_NAME))).toEqual([]);
    } finally {
      delete process.env.SORAC_TEST_FAIL_AFTER;
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  const full = join(tmp, 'tmpfs-full');
  let canMount = false;
  beforeAll(() => {
    canMount = mountTmpfs(full, '16k');
    if (canMount) mounts.push(full);
  });

  it('a real full file system (16 KiB tmpfs; root only): ENOSPC reported, nothing left', async (ctx) => {
    if (!canMount) ctx.skip();
    const r = await run(['ckpt', 'export', join(EXP, V12), '--dtype', 'f32', '-o', join(full, 'ema.safetensors')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5105: no space left on the device holding .*tmpfs-full/);
    expect(readdirSync(full)).toEqual([]);
  });

  it('a read-only target: EROFS (read-only tmpfs) or EACCES (mode 0555 dir, written as a non-root user)', async (ctx) => {
    const ro = join(tmp, 'ro');
    if (process.env.SORAC_TEST_NO_MOUNT !== '1' && mountTmpfs(ro, '1m')) {
      mounts.push(ro);
      if (!remountReadOnly(ro)) ctx.skip();
      const r = await run(['ckpt', 'export', join(EXP, V12), '-o', join(ro, 'ema.safetensors')]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/SORA5105: .*read-only file system \(EROFS\); nothing was written/);
      const m = await run(['ckpt', 'export', join(EXP, V12), '--shard-size', '8KB', '-o', join(ro, 'hf')]);
      expect(m.err).toMatch(/EROFS/);
    } else if (process.getuid?.() !== 0) {
      mkdirSync(ro);
      chmodSync(ro, 0o555);
      const r = await run(['ckpt', 'export', join(EXP, V12), '-o', join(ro, 'ema.safetensors')]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/SORA5105: permission denied writing into .* \(EACCES\)/);
      chmodSync(ro, 0o755);
    } else {
      // root without mount privileges: root ignores mode bits, so run the export as nobody
      const base = join(tmp, 'ro-nobody');
      mkdirSync(join(base, 'ro'), { recursive: true });
      chmodSync(tmp, 0o755);
      chmodSync(base, 0o755);
      chmodSync(join(base, 'ro'), 0o555);
      const child = spawnCli(['ckpt', 'export', join(EXP, V12), '-o', join(base, 'ro', 'ema.safetensors')], { HOME: '/tmp' }, { uid: 65534, gid: 65534 });
      let err = '';
      child.stderr.on('data', (b) => (err += b));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      if (/EACCES: permission denied, (open|scandir|stat) '\/work|Cannot find module|ERR_MODULE/.test(err)) ctx.skip(); // nobody cannot read the checkout
      expect(code).toBe(1);
      expect(err).toMatch(/SORA5105: permission denied writing into .* \(EACCES\)/);
      expect(readdirSync(join(base, 'ro'))).toEqual([]);
    }
  });
});
