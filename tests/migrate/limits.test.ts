/**
 * Issue 14 items 8, 10, 12 (plan parts): key patterns are matched in linear time, op names that
 * are Object.prototype members are unknown ops, and ops that build tensors in memory are capped.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { keyMatcher, patternRenamer, validatePlan, type Plan } from '../../runtime/migrate/plan.ts';
import { resolvePlan, type Sig } from '../../runtime/migrate/resolve.ts';
import { GOLDEN } from '../helpers/parity.ts';
import { cli, tempDir } from './helpers.ts';

const plan = (ops: unknown[]): Plan => validatePlan({ format: 'sorac.migration/1', name: 't', ops });
const sig = (entries: [string, number[]][]) => new Map<string, Sig>(entries.map(([k, shape]) => [k, { shape, dtype: 'f32' }]));

afterEach(() => {
  delete process.env.SORAC_MIGRATE_MAX_TENSOR_MB;
});

describe('key patterns are matched in linear time (RE2)', () => {
  it('((a+)+)$ against 40 a’s and a b finishes at once (a backtracking engine spins for minutes)', () => {
    // with a backtracking engine each of these spins for minutes (the test times out); no timing asserted
    const key = 'a'.repeat(40) + 'b';
    expect(keyMatcher('((a+)+)$')(key)).toBeUndefined();
    expect(patternRenamer('((a+)+)$', 'x')(key)).toBeUndefined();
    const r = resolvePlan(plan([{ op: 'drop', key: '((a+)+)c' }, { op: 'renamePattern', from: '((a|a)+)$', to: 'x' }]), sig([[key, [1]], ['a'.repeat(5000) + '!', [1]]]));
    expect(r.tensors.size).toBe(2);
  });

  it('captures, segment anchoring and first-occurrence renames are unchanged', () => {
    expect(keyMatcher('blocks.(\\d+).attn.(q|k)')('blocks.12.attn.k')).toEqual(['blocks.12.attn.k', '12', 'k']);
    const r = patternRenamer('blocks.(\\d+).', 'spatial_blocks.$1.');
    expect(r('blocks.3.attn')).toBe('spatial_blocks.3.attn');
    expect(r('x.blocks.3.blocks.4.y')).toBe('x.spatial_blocks.3.blocks.4.y');
    expect(r('xblocks.3.y')).toBeUndefined(); // only at a segment start
    expect(patternRenamer('^(a)', 'b')('a.a')).toBe('b.a');
    expect(patternRenamer('(b)$', 'c')('b.b')).toBe('b.c');
  });

  it('lookarounds and back-references are refused with the reason', () => {
    for (const key of ['((?<=x)a)', '((a)\\2)', '((?=a)a)', 'x.(?<=y)z']) {
      expect(() => plan([{ op: 'drop', key }]), key).toThrow(/not a valid RE2 regular expression/);
    }
    let err: unknown;
    try {
      plan([{ op: 'drop', key: 'x.(?<=y)z' }]);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'SORA6001', hint: expect.stringMatching(/no lookarounds/) });
  });
});

describe('op names are own table entries', () => {
  for (const op of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    it(`"${op}" is an unknown op, not a no-op`, () => {
      expect(() => validatePlan(JSON.parse(`{"format":"sorac.migration/1","name":"t","ops":[{"op":${JSON.stringify(op)}}]}`))).toThrow(new RegExp(`unknown op "${op}"`));
    });
  }
});

describe('tensors built in memory are capped', () => {
  it('init [1000,1000,1000] f64 (7.5 GiB) is refused naming the limit and how to raise it', () => {
    const p = validatePlan({ format: 'sorac.migration/1', name: 't', ops: [{ op: 'init', key: 'big', shape: [1000, 1000, 1000], dtype: 'f64', fill: { kind: 'zeros' } }] });
    expect(() => resolvePlan(p, sig([]))).toThrow(/SORA6021|op #1 \(.*\): big \[1000,1000,1000\] f64 would be 7629 MiB, over the limit of 2048 MiB for one tensor built in memory/);
    let err: unknown;
    try {
      resolvePlan(p, sig([]));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'SORA6021', hint: expect.stringMatching(/SORAC_MIGRATE_MAX_TENSOR_MB/) });
  });

  it('pad and tile past the limit, and sizes past 2^53, are refused; streamed renames are not capped', () => {
    const s = sig([['w', [1024, 1024]]]);
    expect(() => resolvePlan(plan([{ op: 'pad', key: 'w', dim: 0, after: 2 ** 20, mode: 'zeros' }]), s)).toThrow(/w \[1049600,1024\] f32 would be 4100 MiB/);
    expect(() => resolvePlan(plan([{ op: 'tile', key: 'w', dim: 1, times: 2 ** 40 }]), s)).toThrow(/more than 2\^53 bytes/);
    expect(() => resolvePlan(plan([{ op: 'init', key: 'z', shape: [2 ** 40, 2 ** 40], dtype: 'u8', fill: { kind: 'zeros' } }]), s)).toThrow(/SORA6021|over the limit/);
    process.env.SORAC_MIGRATE_MAX_TENSOR_MB = '1';
    expect(() => resolvePlan(plan([{ op: 'rename', from: 'w', to: 'v' }, { op: 'reshape', key: 'v', to: [2 ** 20] }]), s)).not.toThrow(); // streamed
    expect(() => resolvePlan(plan([{ op: 'permute', key: 'w', perm: [1, 0] }]), s)).toThrow(/over the limit of 1\.0 MiB/);
    process.env.SORAC_MIGRATE_MAX_TENSOR_MB = '5';
    expect(() => resolvePlan(plan([{ op: 'permute', key: 'w', perm: [1, 0] }]), s)).not.toThrow();
  });

  it('through the CLI: migrate apply refuses before writing anything', async () => {
    const d = tempDir();
    const p = join(d, 'big.json');
    writeFileSync(p, JSON.stringify({ format: 'sorac.migration/1', name: 'big', ops: [{ op: 'init', key: 'big', shape: [1000, 1000, 1000], dtype: 'f64', fill: { kind: 'zeros' } }] }));
    const out = join(d, 'out.safetensors');
    const r = await cli(['migrate', 'apply', p, '--in', join(GOLDEN, 'mmdit', 'a', 'model.safetensors'), '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6021: .*over the limit of 2048 MiB/);
    expect(r.err).toContain('SORAC_MIGRATE_MAX_TENSOR_MB');
    expect(existsSync(out)).toBe(false);
  });
});
