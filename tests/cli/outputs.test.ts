/**
 * Output paths are checked before any compute, through the built CLI: missing parent directories are
 * created (as `build -o` and `ckpt export` do), an existing directory named as the output file is a
 * clear SORA7008 error, and no stack trace ever reaches the user.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, soracBin, STACK_FRAME } from '../helpers/cli.ts';

const G = join(ROOT, 'tests/fixtures/golden/stdit3/a');
const runArgs = (out: string, extra: string[] = []) => ['run', join(ROOT, 'examples/stdit3.sora'), '--config', join(G, 'config.json'), '-w', join(G, 'model.safetensors'), '-i', join(G, 'inputs.safetensors'), '-o', out, '--device', 'cpu', ...extra];

describe('sorac run -o', () => {
  it('creates missing parent directories of the output file (relative to the working directory)', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    const r = soracBin(runArgs('results/deep/out.safetensors'), { cwd: d });
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(d, 'results/deep/out.safetensors'))).toBe(true);
    expect(readdirSync(join(d, 'results/deep'))).toEqual(['out.safetensors']);
  });

  it('refuses an existing directory as the output file before compute: SORA7008, exit 1, no stack', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    mkdirSync(join(d, 'results'));
    const r = soracBin(runArgs('results'), { cwd: d });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: SORA7008: -o results is a directory; -o names the file to write/);
    expect(r.err).toMatch(/hint: name a file, e\.g\. -o results\/out\.safetensors/);
    expect(r.err).not.toMatch(STACK_FRAME);
    expect(r.err).not.toMatch(/internal error/);
    expect(readdirSync(join(d, 'results'))).toEqual([]);
    // with --json: the same error as the one JSON document on stdout
    const j = soracBin(runArgs('results', ['--json']), { cwd: d });
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({ ok: false, error: { code: 'SORA7008' } });
  });

  it('refuses an output under a path component that is a file', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    writeFileSync(join(d, 'file'), 'x');
    const r = soracBin(runArgs('file/out.safetensors'), { cwd: d });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7008: cannot (write|create).*file/);
    expect(r.err).not.toMatch(STACK_FRAME);
  });

  it('checks the output before the inputs are even read (a bad -o is reported even with missing inputs)', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    mkdirSync(join(d, 'o'));
    const args = runArgs('o');
    args[args.indexOf('-i') + 1] = join(d, 'no-such-inputs.safetensors');
    const r = soracBin(args, { cwd: d });
    expect(r.err).toMatch(/SORA7008/);
  });
});

describe('other single-file outputs', () => {
  it('migrate plan -o: parents created; a directory refused before any work; --json stays one document', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    const args = ['migrate', 'plan', 'caption-table-resize', '--in', join(G, 'model.safetensors'), '--param', 'rows=4'];
    const ok = soracBin([...args, '-o', 'plans/deep/plan.json', '--json'], { cwd: d });
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ ok: true, out: 'plans/deep/plan.json', ops: 1 });
    expect(existsSync(join(d, 'plans/deep/plan.json'))).toBe(true);
    const dir = soracBin([...args, '-o', 'plans'], { cwd: d });
    expect(dir.code).toBe(1);
    expect(dir.err).toMatch(/SORA7008: -o .*plans is a directory/);
    expect(dir.err).not.toMatch(STACK_FRAME);
  });

  it('migrate new -o naming a directory (with --force) is refused before the diff', () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-out-'));
    mkdirSync(join(d, 'm.ts'));
    const r = soracBin(['migrate', 'new', join(G, 'model.safetensors'), join(G, 'model.bf16.safetensors'), '-o', 'm.ts', '--force'], { cwd: d });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7008: -o .*m\.ts is a directory/);
  });
});
