/**
 * Small first-hour items, through the built CLI: `ckpt verify` lists one problem for one cause, `ckpt export`
 * of a torn checkpoint whose requested part is intact, `--dtype foo=bf16` suggests nothing silly.
 */
import { cpSync, existsSync, mkdtempSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, soracBin } from '../helpers/cli.ts';

const EXP = join(ROOT, 'tests/fixtures/training/outputs/000-STDiT3-XL-2');
const V12 = 'epoch0-global_step2';

function tornCopy(): string {
  const d = join(mkdtempSync(join(tmpdir(), 'sorac-small-')), 'exp');
  cpSync(EXP, d, { recursive: true });
  const shard = join(d, V12, 'model/pytorch_model-00001.bin');
  truncateSync(shard, Math.floor(statSync(shard).size / 2));
  return d;
}

describe('first-hour small items', () => {
  it('ckpt verify: one truncated shard is one problem', () => {
    const exp = tornCopy();
    const r = soracBin(['ckpt', 'verify', join(exp, V12), '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.problems).toHaveLength(1);
    expect(j.problems[0]).toMatch(/^model\/pytorch_model-00001\.bin: truncated \(zip: no end-of-central-directory record/);
    expect(soracBin(['ckpt', 'verify', join(exp, V12)]).out).toMatch(/: 1 problem\(s\)\n  - model\/pytorch_model-00001\.bin: truncated/);
  });

  it('ckpt export of a torn checkpoint: the intact ema.pt is exported with a note, the damaged model part is refused', () => {
    const exp = tornCopy();
    const out = join(exp, '..', 'ema.safetensors');
    const r = soracBin(['ckpt', 'export', join(exp, V12), '-o', out]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/note: epoch0-global_step2 is not a complete checkpoint \(1 problem\(s\) elsewhere, .*\), but its ema weights \(ema\.pt\) are intact: exported them/);
    expect(existsSync(out)).toBe(true);
    const m = soracBin(['ckpt', 'export', join(exp, V12), '--from', 'model', '-o', join(exp, '..', 'model.safetensors')]);
    expect(m.code).toBe(1);
    expect(m.err).toMatch(/SORA5102: .* is not a complete checkpoint; refusing to export it/);
  });

  it('--dtype with an unknown rule lists the rules and suggests only a close name', () => {
    const foo = soracBin(['check', 'examples/stdit3.sora', '--dtype', 'foo=bf16']);
    expect(foo.code).toBe(1);
    expect(foo.err).toMatch(/^--dtype foo=bf16: error SORA2005: unknown dtype rule "foo"\n  hint: the rules are params, compute, inputs, uncast, outputs, f32, modules \(e\.g\. --dtype compute=bf16\)/);
    expect(foo.err).not.toMatch(/did you mean/);
    expect(soracBin(['check', 'examples/stdit3.sora', '--dtype', 'comput=bf16']).err).toMatch(/hint: did you mean "compute"\? the rules are/);
  });
});
