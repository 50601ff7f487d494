/**
 * Faults: SIGKILL mid-apply (a child stopped by the SORAC_TEST_PAUSE_AFTER_TENSOR hook) leaves the
 * input intact and nothing at the output path (file and sharded directory); a full disk (a real
 * tmpfs, root only), a read-only target, a missing directory, an existing output and an output
 * that is the input give clear errors.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GOLDEN } from '../helpers/parity.ts';
import { cli, mountTmpfs, remountReadOnly, sha256File, spawnCli, tempDir, umount } from './helpers.ts';

const W = join(GOLDEN, 'mmdit', 'a', 'model.safetensors');
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) umount(m);
});

async function killMidApply(out: string, input: string, signal: NodeJS.Signals = 'SIGKILL') {
  const child = spawnCli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', out], { SORAC_TEST_PAUSE_AFTER_TENSOR: '5' });
  let err = '';
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no pause marker; stderr: ${err}`)), 60_000);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes('sorac-test-hook: paused after 5 tensor(s)')) {
        clearTimeout(t);
        res();
      }
    });
    child.on('exit', (c) => {
      clearTimeout(t);
      rej(new Error(`exited ${c} before the hook: ${err}`));
    });
  });
  child.kill(signal);
  const [code, sig] = await new Promise<[number | null, string | null]>((res) => child.on('exit', (c, s) => res([c, s])));
  return { code, sig, err };
}

describe('migrate apply faults', () => {
  it('SIGKILL mid-apply: input intact, nothing at the output path (single file)', async () => {
    const d = tempDir();
    const input = join(d, 'in.safetensors');
    copyFileSync(W, input);
    const before = sha256File(input);
    const out = join(d, 'out.safetensors');
    const r = await killMidApply(out, input);
    expect(r.sig).toBe('SIGKILL');
    expect(sha256File(input)).toBe(before);
    expect(existsSync(out)).toBe(false);
    // what is left is a hidden temp file that no loader would take for a checkpoint
    const left = readdirSync(d).filter((f) => f !== 'in.safetensors');
    for (const f of left) expect(f).toMatch(/^\.out\.safetensors\.sorac-tmp-\d+-[0-9a-f]+$/);
  });

  it('SIGKILL mid-apply: nothing at the output path (sharded directory)', async () => {
    const d = tempDir();
    const before = sha256File(W);
    const out = join(d, 'out-dir');
    const r = await killMidApply(out, W);
    expect(r.sig).toBe('SIGKILL');
    expect(sha256File(W)).toBe(before);
    expect(existsSync(out)).toBe(false);
    for (const f of readdirSync(d)) expect(f).toMatch(/^\.out-dir\.sorac-tmp-/);
  });

  it('SIGTERM / Ctrl-C mid-apply: the temp output is removed too (file and sharded directory)', async () => {
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      const d = tempDir();
      for (const out of [join(d, 'out.safetensors'), join(d, 'out-dir')]) {
        const r = await killMidApply(out, W, signal);
        expect(r.code).toBe(code);
        expect(r.err).toContain(`interrupted (${signal}): nothing was written at ${out}`);
      }
      expect(readdirSync(d)).toEqual([]);
    }
  });

  it('refuses to write over its input, over an existing output (without --force), or into a missing dir', async () => {
    const d = tempDir();
    const input = join(d, 'in.safetensors');
    copyFileSync(W, input);
    const same = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', input, '--force']);
    expect(same.code).toBe(1);
    expect(same.err).toMatch(/SORA6007: --out .* is the input .*; an output never replaces or modifies an input \(not even with --force\)/);
    const exists = join(d, 'exists.safetensors');
    writeFileSync(exists, 'x');
    const ex = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', exists]);
    expect(ex.code).toBe(1);
    expect(ex.err).toMatch(/SORA6007: .*exists\.safetensors already exists/);
    const forced = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', exists, '--force']);
    expect(forced.code, forced.err).toBe(0);
    const missing = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', join(d, 'no', 'such', 'dir', 'o.safetensors')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/SORA6008: cannot write .*: the directory .* does not exist/);
    expect(missing.err).toMatch(/hint: create it first \(mkdir -p/);
  });

  it('a full disk (real 64 KiB tmpfs; root only): SORA6008, nothing left behind', async (ctx) => {
    const d = tempDir();
    const full = join(d, 'full');
    mkdirSync(full);
    if (!mountTmpfs(full, '64k')) ctx.skip();
    mounts.push(full);
    for (const out of [join(full, 'o.safetensors'), join(full, 'o-dir')]) {
      const r = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', W, '--out', out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/SORA6008: no space left on the device while writing .*; nothing was written at/);
      expect(readdirSync(full)).toEqual([]);
    }
  });

  it('a read-only target (tmpfs remounted ro; root only): SORA6008', async (ctx) => {
    const d = tempDir();
    const ro = join(d, 'ro');
    mkdirSync(ro);
    if (!mountTmpfs(ro, '1m')) ctx.skip();
    mounts.push(ro);
    if (!remountReadOnly(ro)) ctx.skip();
    const r = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', W, '--out', join(ro, 'o.safetensors')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6008: cannot write .*: read-only file system/);
  });
});
