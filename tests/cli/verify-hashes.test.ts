/**
 * `sorac verify --expect SHA` and `--sums SHA256SUMS`, through the built CLI, against sums written by
 * coreutils' sha256sum: matches pass, a changed file is hash-mismatch (exit 1), a listed file that is
 * gone is missing, a malformed sums line or hash is a clear error.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, soracBin } from '../helpers/cli.ts';

const G = join(ROOT, 'tests/fixtures/golden/stdit3/a');

function dirWithSums(): string {
  const d = mkdtempSync(join(tmpdir(), 'sorac-sums-'));
  mkdirSync(join(d, 'w'));
  copyFileSync(join(G, 'model.safetensors'), join(d, 'w', 'model.safetensors'));
  copyFileSync(join(G, 'inputs.safetensors'), join(d, 'w', 'inputs.safetensors'));
  writeFileSync(join(d, 'w', 'SHA256SUMS'), execFileSync('sha256sum', ['model.safetensors', 'inputs.safetensors'], { cwd: join(d, 'w'), encoding: 'utf8' }));
  return d;
}
const sha = (f: string) => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0]!;

describe('sorac verify --expect / --sums', () => {
  it('--expect: a match passes, another hash is hash-mismatch (exit 1)', () => {
    const f = join(G, 'model.safetensors');
    const ok = soracBin(['verify', f, '--expect', sha(f).toUpperCase()]);
    expect(ok.code, ok.out + ok.err).toBe(0);
    expect(ok.out).toMatch(/matches the sha256 given with --expect/);
    const bad = soracBin(['verify', f, '--expect', '0'.repeat(64), '--json']);
    expect(bad.code).toBe(1);
    const j = JSON.parse(bad.out);
    expect(j.files[0]).toMatchObject({ status: 'hash-mismatch', detail: expect.stringMatching(/--expect says 0{64}/) });
    expect(j.checked).toMatchObject({ against: '--expect', matched: 0, mismatched: 1 });
    const notHex = soracBin(['verify', f, '--expect', 'abc']);
    expect(notHex.code).toBe(2);
    expect(notHex.err).toMatch(/SORA7007: --expect abc is not a sha256/);
  });

  it('--sums: every listed file checked; a changed file mismatches, a removed one is missing', () => {
    const d = dirWithSums();
    const w = join(d, 'w');
    const ok = soracBin(['verify', w, '--sums', join(w, 'SHA256SUMS')]);
    expect(ok.code, ok.out + ok.err).toBe(0);
    expect(ok.out).toMatch(/checked against .*SHA256SUMS: 2 matched, 0 mismatched, 0 listed but missing, 1 not listed/);
    // a single file against the sums (relative to the sums' folder)
    expect(soracBin(['verify', join(w, 'model.safetensors'), '--sums', join(w, 'SHA256SUMS')]).code).toBe(0);
    writeFileSync(join(w, 'inputs.safetensors'), Buffer.concat([Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"__metadata__":{}}'.padEnd(16))]));
    rmSync(join(w, 'model.safetensors'));
    const bad = soracBin(['verify', w, '--sums', join(w, 'SHA256SUMS'), '--json']);
    expect(bad.code).toBe(1);
    const j = JSON.parse(bad.out);
    expect(j.checked).toMatchObject({ matched: 0, mismatched: 1, missing: 1 });
    expect(j.files.find((f: { path: string }) => f.path.endsWith('inputs.safetensors')).status).toBe('hash-mismatch');
    expect(j.files.find((f: { path: string }) => f.path.endsWith('model.safetensors'))).toMatchObject({ status: 'missing', detail: expect.stringMatching(/listed in SHA256SUMS/) });
  });

  it('a malformed SHA256SUMS line is named with its line number', () => {
    const d = dirWithSums();
    writeFileSync(join(d, 'bad.sums'), 'not a line\n');
    const r = soracBin(['verify', join(d, 'w'), '--sums', join(d, 'bad.sums')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7002: .*bad\.sums:1: not a SHA256SUMS line/);
  });
});
