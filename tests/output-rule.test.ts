/**
 * Issue 14 items 2–5: one rule for outputs — an output may never be, contain or lie inside an input,
 * whatever the command and even with --force (real paths, symlinks, hard links); prune never follows
 * a symlink out of the experiment; `build -o` publishes its files as a whole; `fmt` keeps symlinks
 * and modes. Each audit reproduction, through the CLI.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyExp, EXP, mountTmpfs, remountReadOnly, run, spawnCli, umount, V12, waitFor } from './ckpt/helpers.ts';
import { GOLDEN } from './helpers/parity.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sorac-outrule-'));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) umount(m);
  rmSync(tmp, { recursive: true, force: true });
});

/** sha256 of every file under a path (a file or a tree), keyed by relative name. */
function snapshot(p: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (q: string, rel: string) => {
    const s = lstatSync(q);
    if (s.isSymbolicLink()) out[rel] = `-> ${readlinkSync(q)}`;
    else if (s.isDirectory()) for (const n of readdirSync(q).sort()) walk(join(q, n), rel ? `${rel}/${n}` : n);
    else out[rel] = createHash('sha256').update(readFileSync(q)).digest('hex');
  };
  walk(p, '');
  return out;
}

const G = join(GOLDEN, 'stdit3', 'a');
const fresh = (name: string) => {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
};

describe('run -o never replaces an input', () => {
  it('-o naming the weights or the inputs (also through a symlink or a hard link) is refused, without and with the file existing', async () => {
    const d = fresh('run');
    const w = join(d, 'w.safetensors');
    const i = join(d, 'in.safetensors');
    copyFileSync(join(G, 'model.safetensors'), w);
    copyFileSync(join(G, 'inputs.safetensors'), i);
    symlinkSync(w, join(d, 'link.safetensors'));
    linkSync(i, join(d, 'hard.safetensors'));
    const before = snapshot(d);
    const base = ['run', 'examples/stdit3.sora', '--config', join(G, 'config.json'), '-w', w, '-i', i, '--device', 'cpu'];
    for (const [out, how] of [
      [w, 'is the input'],
      [i, 'is the input'],
      [join(d, 'link.safetensors'), 'is the input'],
      [join(d, 'hard.safetensors'), 'is the input'],
      [join(d, '.', '..', 'run', 'w.safetensors'), 'is the input'],
    ] as const) {
      const r = await run([...base, '-o', out]);
      expect(r.code, out).toBe(1);
      expect(r.err, out).toMatch(new RegExp(`SORA7020: -o .* ${how} .*; an output never replaces or modifies an input \\(not even with --force\\)`));
    }
    // the weights as a directory: an output inside it is refused too
    const wd = fresh('run-wdir');
    copyFileSync(join(G, 'model.safetensors'), join(wd, 'model.safetensors'));
    const r = await run(['run', 'examples/stdit3.sora', '--config', join(G, 'config.json'), '-w', wd, '-i', i, '--device', 'cpu', '-o', join(wd, 'out.safetensors')]);
    expect(r.err).toMatch(/SORA7020: -o .* lies inside the input/);
    expect(snapshot(d)).toEqual(before);
    expect(readdirSync(wd)).toEqual(['model.safetensors']);
    // a legitimate output still works
    const ok = await run([...base, '-o', join(d, 'out.safetensors')]);
    expect(ok.code, ok.err).toBe(0);
  }, 60_000);
});

describe('ckpt export -o never deletes or rewrites the checkpoint it reads', () => {
  it('-o C --force, -o EXPDIR --force and -o C/ema.safetensors --force --dtype bf16 are refused; nothing changes', async () => {
    const exp = copyExp(tmp, 'exp-export');
    const c = join(exp, V12);
    writeFileSync(join(c, 'ema.safetensors'), 'not really'); // the audit's in-place target
    const before = snapshot(exp);
    for (const [out, how, extra] of [
      [c, 'is the input', []],
      [exp, 'contains the input', []],
      [join(c, 'ema.safetensors'), 'lies inside the input', ['--dtype', 'bf16']],
      [join(c, 'model'), 'lies inside the input', ['--shard-size', '1MB']],
    ] as const) {
      const r = await run(['ckpt', 'export', c, '-o', out, '--force', ...extra]);
      expect(r.code, out).toBe(1);
      expect(r.err, out).toMatch(new RegExp(`SORA7020: -o .* ${how} `));
    }
    expect(snapshot(exp)).toEqual(before);
  });

  it('an output reached through a symlink into the checkpoint is refused', async () => {
    const exp = copyExp(tmp, 'exp-export-link');
    const c = join(exp, V12);
    const d = fresh('export-link');
    symlinkSync(c, join(d, 'ckpt-link'));
    const before = snapshot(exp);
    const r = await run(['ckpt', 'export', c, '-o', join(d, 'ckpt-link', 'out.safetensors'), '--force']);
    expect(r.err).toMatch(/SORA7020: -o .* lies inside the input/);
    expect(snapshot(exp)).toEqual(before);
  });
});

describe('migrate apply --out never touches its input (the same rule)', () => {
  it('a symlink or hard link to the input, or a path inside an input directory, is refused even with --force', async () => {
    const d = fresh('mig');
    const input = join(d, 'in.safetensors');
    copyFileSync(join(GOLDEN, 'mmdit', 'a', 'model.safetensors'), input);
    symlinkSync(input, join(d, 'sym.safetensors'));
    linkSync(input, join(d, 'hard.safetensors'));
    const before = snapshot(d);
    for (const out of [join(d, 'sym.safetensors'), join(d, 'hard.safetensors')]) {
      const r = await run(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', input, '--out', out, '--force']);
      expect(r.err, out).toMatch(/SORA6007: --out .* is the input/);
    }
    expect(snapshot(d)).toEqual(before);
    const dir = fresh('mig-dir');
    copyFileSync(input, join(dir, 'model.safetensors'));
    const r = await run(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', dir, '--out', join(dir, 'new.safetensors')]);
    expect(r.err).toMatch(/SORA6007: --out .* lies inside the input/);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });
});

describe('ckpt prune never follows a symlink out of the experiment', () => {
  it('a checkpoint that is a symlink to a dir outside is unlinked; the outside dir (and its eval/) is untouched', async () => {
    const exp = copyExp(tmp, 'exp-prune');
    const outside = join(fresh('prune-outside'), V12);
    cpSync(join(EXP, V12), outside, { recursive: true });
    mkdirSync(join(outside, 'eval'));
    writeFileSync(join(outside, 'eval', 'scores.json'), '{}');
    rmSync(join(exp, V12), { recursive: true });
    symlinkSync(outside, join(exp, V12));
    const before = snapshot(outside);
    const r = await run(['ckpt', 'prune', exp, '--keep', '1']);
    expect(r.code, r.err).toBe(0);
    expect(snapshot(outside)).toEqual(before);
    expect(existsSync(join(exp, V12))).toBe(false);
    expect(readdirSync(exp).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('build -o publishes its files as a whole', () => {
  const cfg = join(G, 'config.json');
  it('a failing build (weights that do not fit) leaves the previous keymap, graph and weights exactly as they were', async () => {
    const out = fresh('build-set');
    const ok = await run(['build', 'examples/stdit3.sora', '--config', cfg, '-w', join(G, 'model.safetensors'), '-o', out]);
    expect(ok.code, ok.err).toBe(0);
    const before = snapshot(out);
    expect(Object.keys(before).sort()).toEqual(['STDiT3.keymap.json', 'STDiT3.onnx', 'STDiT3.weights.safetensors']);
    // a different config (a new keymap) with weights of another model: fails after tracing
    const bad = await run(['build', 'examples/stdit3.sora', '--config', cfg, '--set', 'depth=3', '-w', join(GOLDEN, 'mmdit', 'a', 'model.safetensors'), '-o', out]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/SORA5504/);
    expect(snapshot(out)).toEqual(before); // no new keymap beside the old graph, no temp left
  }, 120_000);

  it('kill -9 after the new keymap is written (staged) leaves the previous keymap and graph as they were', async () => {
    const out = fresh('build-kill');
    expect((await run(['build', 'examples/stdit3.sora', '--config', cfg, '-o', out])).code).toBe(0);
    const before = snapshot(out);
    const pause = join(tmp, 'build-kill.paused');
    const child = spawnCli(['build', 'examples/stdit3.sora', '--config', cfg, '--set', 'depth=3', '-o', out], { SORAC_TEST_PAUSE_AFTER: '1', SORAC_TEST_PAUSE_FILE: pause });
    await waitFor(pause);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const after = snapshot(out);
    const visible = Object.fromEntries(Object.entries(after).filter(([k]) => !k.startsWith('.')));
    expect(visible).toEqual(before);
    // what the killed build left is one hidden staging dir holding only its new keymap
    expect(Object.keys(after).filter((k) => k.startsWith('.')).map((k) => k.replace(/^\.STDiT3\.sorac-tmp-\d+-[0-9a-f]+\//, 'STAGE/'))).toEqual(['STAGE/STDiT3.keymap.json']);
  }, 120_000);

  it('a weights file that is one of its outputs is refused (rebuilding from a previous build)', async () => {
    const out = fresh('build-self');
    expect((await run(['build', 'examples/stdit3.sora', '--config', cfg, '-w', join(G, 'model.safetensors'), '-o', out])).code).toBe(0);
    const before = snapshot(out);
    const r = await run(['build', 'examples/stdit3.sora', '--config', cfg, '-w', join(out, 'STDiT3.weights.safetensors'), '-o', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7020: -o .*STDiT3\.weights\.safetensors is the input/);
    expect(snapshot(out)).toEqual(before);
  }, 120_000);

  it('a read-only location is a clear error, not ENOENT', async (ctx) => {
    const ro = join(tmp, 'ro');
    // needs root (or mount rights) for a read-only tmpfs; skipped where mounting is not possible
    if (!mountTmpfs(ro, '1m')) ctx.skip();
    mounts.push(ro);
    if (!remountReadOnly(ro)) ctx.skip();
    for (const out of [ro, join(ro, 'a', 'b')]) {
      const r = await run(['build', 'examples/stdit3.sora', '--config', cfg, '--no-onnx', '-o', out]);
      expect(r.code, out).toBe(1);
      expect(r.err, out).toMatch(/SORA7008: cannot .* (it is on a read-only file system|is not writable \(read-only file system\))/);
      expect(r.err, out).not.toMatch(/ENOENT/);
    }
  });
});

describe('fmt keeps what a file is', () => {
  it('a symlink stays a symlink (its target is formatted) and the mode is kept', async () => {
    const d = fresh('fmt');
    const real = join(d, 'real.sora');
    writeFileSync(real, 'model   M version "1" {\n  config { a: int = 1 }\n}\n');
    chmodSync(real, 0o640);
    symlinkSync('real.sora', join(d, 'link.sora'));
    const r = await run(['fmt', join(d, 'link.sora')]);
    expect(r.code, r.err).toBe(0);
    expect(lstatSync(join(d, 'link.sora')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(d, 'link.sora'))).toBe('real.sora');
    expect(readFileSync(real, 'utf8')).toMatch(/^model M version "1" \{/);
    expect(statSync(real).mode & 0o777).toBe(0o640);
    expect(readdirSync(d).sort()).toEqual(['link.sora', 'real.sora']);
  });
});

describe('migrate new / plan -o never write over or into an input', () => {
  it('-o inside a FROM checkpoint dir, or over the plan it reads, is refused', async () => {
    const dir = fresh('mig-new');
    copyFileSync(join(GOLDEN, 'mmdit', 'a', 'model.safetensors'), join(dir, 'model.safetensors'));
    const r = await run(['migrate', 'new', dir, 'examples/mmdit.sora', '-o', join(dir, 'm.ts')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6007: -o .*m\.ts lies inside the input/);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const p = join(fresh('mig-plan'), 'p.json');
    writeFileSync(p, JSON.stringify({ format: 'sorac.migration/1', name: 'p', ops: [{ op: 'drop', key: 'a' }] }));
    const before = readFileSync(p, 'utf8');
    const q = await run(['migrate', 'plan', p, '-o', p]);
    expect(q.err).toMatch(/SORA6007: -o .*p\.json is the input/);
    expect(readFileSync(p, 'utf8')).toBe(before);
  });
});
