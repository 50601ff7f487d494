/**
 * Built-in migrations against the upstream semantics (stdit.md §5.2), plan validation, pattern
 * inversion and the error codes.
 */
import { describe, expect, it } from 'vitest';
import type { DType } from '../../core/dtype.ts';
import { BUILTINS, getBuiltin } from '../../runtime/migrate/builtins.ts';
import { SoracError } from '../../core/errors.ts';
import { invertPlan, invertRenamePattern, patternRenamer, validatePlan, type Plan } from '../../runtime/migrate/plan.ts';
import { resolvePlan } from '../../runtime/migrate/resolve.ts';
import type { MigrationName } from '../../runtime/weights/load-report.ts';
import { applyMem, canon, fillBytes, sigOf, type MemCkpt } from './helpers.ts';

function ckpt(spec: Record<string, [number[], DType?]>): MemCkpt {
  const c: MemCkpt = new Map();
  let seed = 1;
  for (const [k, [shape, dtype]] of Object.entries(spec)) {
    const sig = { shape, dtype: dtype ?? 'f32' };
    c.set(k, { sig, bytes: fillBytes(sig, seed++) });
  }
  return c;
}
const f32 = (b: Uint8Array) => new Float32Array(b.slice().buffer);
const planOf = (name: string, c: MemCkpt, params: Record<string, string> = {}, reverse = false) => getBuiltin(name).plan(sigOf(c), params, reverse);
const err = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as SoracError;
  }
  throw new Error('did not throw');
};

describe('built-in migrations', () => {
  it('names match the load report suggestions', () => {
    const names: MigrationName[] = ['patch-embed-2d-to-3d', 'caption-table-resize', 'pixart-sigma-to-stdit3', 'mmdit-unfuse-qkv', 'mmdit-fuse-qkv', 'vae-4ch-to-16ch'];
    expect([...BUILTINS.keys()].sort()).toEqual([...names].sort());
  });

  it('vae-4ch-to-16ch equals adapt_16ch_vae (repeat ×4 / 4 on x_embedder; final layer viewed [4,2,4,C], channels repeated) and reverses exactly', async () => {
    const C = 8;
    const x = ckpt({ 'x_embedder.proj.weight': [[C, 4, 1, 2, 2]], 'x_embedder.proj.bias': [[C]], 'final_layer.linear.weight': [[32, C]], 'final_layer.linear.bias': [[32]] });
    const { out } = await applyMem(planOf('vae-4ch-to-16ch', x), x);
    const pe = f32(out.get('x_embedder.proj.weight')!.bytes);
    const pe0 = f32(x.get('x_embedder.proj.weight')!.bytes);
    expect(out.get('x_embedder.proj.weight')!.sig.shape).toEqual([C, 16, 1, 2, 2]);
    for (let c = 0; c < C; c++) for (let j = 0; j < 16; j++) for (let p = 0; p < 4; p++) expect(pe[(c * 16 + j) * 4 + p]).toBe(pe0[(c * 4 + (j % 4)) * 4 + p]! / 4);
    const w = f32(out.get('final_layer.linear.weight')!.bytes);
    const w0 = f32(x.get('final_layer.linear.weight')!.bytes);
    expect(out.get('final_layer.linear.weight')!.sig.shape).toEqual([128, C]);
    // torch: w0.view(4, 2, 4, C).repeat(1, 1, 4, 1).view(128, C)
    for (let p = 0; p < 4; p++) for (let s = 0; s < 2; s++) for (let j = 0; j < 16; j++) for (let k = 0; k < C; k++) expect(w[((p * 2 + s) * 16 + j) * C + k]).toBe(w0[((p * 2 + s) * 4 + (j % 4)) * C + k]);
    const b = f32(out.get('final_layer.linear.bias')!.bytes);
    const b0 = f32(x.get('final_layer.linear.bias')!.bytes);
    for (let p = 0; p < 4; p++) for (let s = 0; s < 2; s++) for (let j = 0; j < 16; j++) expect(b[(p * 2 + s) * 16 + j]).toBe(b0[(p * 2 + s) * 4 + (j % 4)]);
    expect(out.get('x_embedder.proj.bias')!.bytes).toEqual(x.get('x_embedder.proj.bias')!.bytes);
    // the built-in reverse (from the 16-channel side) restores the 4-channel checkpoint exactly
    const back = await applyMem(getBuiltin('vae-4ch-to-16ch').plan(sigOf(out), {}, true), out);
    expect(canon(back.out)).toEqual(canon(x));
    expect(err(() => planOf('vae-4ch-to-16ch', out)).message).toMatch(/no x_embedder.proj.weight with 4 input channels/);
  });

  it('caption-table-resize pads by repeating the last row, truncates, and needs rows', async () => {
    const x = ckpt({ 'y_embedder.y_embedding': [[3, 4]], other: [[2]] });
    const grow = await applyMem(planOf('caption-table-resize', x, { rows: '5' }), x);
    const g = f32(grow.out.get('y_embedder.y_embedding')!.bytes);
    const g0 = f32(x.get('y_embedder.y_embedding')!.bytes);
    expect(grow.out.get('y_embedder.y_embedding')!.sig.shape).toEqual([5, 4]);
    expect([...g.slice(0, 12)]).toEqual([...g0]);
    expect([...g.slice(12, 16)]).toEqual([...g0.slice(8, 12)]);
    expect([...g.slice(16, 20)]).toEqual([...g0.slice(8, 12)]);
    // padding is invertible as a plan; truncation is not
    expect(canon((await applyMem(invertPlan(planOf('caption-table-resize', x, { rows: '5' })), grow.out)).out)).toEqual(canon(x));
    const cut = planOf('caption-table-resize', x, { rows: '2' });
    expect(resolvePlan(cut, sigOf(x)).tensors.get('y_embedder.y_embedding')!.sig.shape).toEqual([2, 4]);
    expect(err(() => invertPlan(cut))).toMatchObject({ code: 'SORA6003', message: expect.stringMatching(/op #1 \(slice y_embedder\.y_embedding dim 0 \[0:2\]\) is not invertible: slice drops rows/) });
    expect(err(() => planOf('caption-table-resize', x))).toMatchObject({ code: 'SORA6005', message: expect.stringMatching(/--param rows=<positive integer> is required/) });
  });

  it('pixart-sigma-to-stdit3 renames blocks.N. → spatial_blocks.N. (not other keys) and unsqueezes a 2-D patch embed', async () => {
    const x = ckpt({ 'x_embedder.proj.weight': [[8, 4, 2, 2]], 'blocks.0.attn.qkv.weight': [[24, 8]], 'blocks.12.mlp.fc1.weight': [[16, 8]], 't_block.1.weight': [[48, 8]], 'y_embedder.y_embedding': [[300, 8]] });
    const p = planOf('pixart-sigma-to-stdit3', x);
    const { out } = await applyMem(p, x);
    expect([...out.keys()].sort()).toEqual(['spatial_blocks.0.attn.qkv.weight', 'spatial_blocks.12.mlp.fc1.weight', 't_block.1.weight', 'x_embedder.proj.weight', 'y_embedder.y_embedding']);
    expect(out.get('x_embedder.proj.weight')!.sig.shape).toEqual([8, 4, 1, 2, 2]);
    const back = await applyMem(getBuiltin('pixart-sigma-to-stdit3').plan(sigOf(out), {}, true), out);
    expect(canon(back.out)).toEqual(canon(x));
    // a mixed checkpoint is a collision, reported with both keys
    const mixed = ckpt({ 'blocks.0.a': [[2]], 'spatial_blocks.0.a': [[2]] });
    expect(err(() => resolvePlan(planOf('pixart-sigma-to-stdit3', mixed), sigOf(mixed)))).toMatchObject({ code: 'SORA6004', message: expect.stringMatching(/blocks\.0\.a and spatial_blocks\.0\.a would both be named spatial_blocks\.0\.a/) });
  });

  it('mmdit-unfuse-qkv splits linear1 into C, C, C+M rows; fuse is its exact inverse; other P.qkv get 3 equal blocks', async () => {
    const x = ckpt({ 'double_blocks.0.img_attn.qkv.weight': [[12, 4]], 'double_blocks.0.txt_attn.qkv.bias': [[12]], 'single_blocks.0.linear1.weight': [[28, 4]], 'single_blocks.0.linear1.bias': [[28]], 'cross.qkv.weight': [[6, 2]] });
    const p = planOf('mmdit-unfuse-qkv', x);
    const { out } = await applyMem(p, x);
    expect(out.get('single_blocks.0.q_proj.weight')!.sig.shape).toEqual([4, 4]);
    expect(out.get('single_blocks.0.v_mlp.weight')!.sig.shape).toEqual([20, 4]);
    expect(out.get('single_blocks.0.v_mlp.bias')!.sig.shape).toEqual([20]);
    expect(out.get('double_blocks.0.txt_attn.k_proj.bias')!.sig.shape).toEqual([4]);
    expect(out.get('cross.v_proj.weight')!.sig.shape).toEqual([2, 2]);
    const w = f32(x.get('single_blocks.0.linear1.weight')!.bytes);
    expect([...f32(out.get('single_blocks.0.k_proj.weight')!.bytes)]).toEqual([...w.slice(16, 32)]);
    const back = await applyMem(planOf('mmdit-fuse-qkv', out), out);
    expect(canon(back.out)).toEqual(canon(x));
    expect(err(() => planOf('mmdit-fuse-qkv', x)).message).toMatch(/no separate q_proj\/k_proj\/v_proj/);
  });

  it('unknown built-ins are named with the list', () => {
    expect(err(() => getBuiltin('stdit2-to-stdit3'))).toMatchObject({ code: 'SORA6005', hint: expect.stringContaining('mmdit-fuse-qkv') });
  });
});

describe('plans as data', () => {
  it('validation names the op and the field', () => {
    const plan = (ops: unknown[]) => ({ format: 'sorac.migration/1', name: 'x', ops });
    expect(() => validatePlan(plan([{ op: 'explode', key: 'a' }]))).toThrow(/op #1: unknown op "explode"/);
    expect(() => validatePlan(plan([{ op: 'drop' }]))).toThrow(/op #1 \(drop\): missing field "key"/);
    expect(() => validatePlan(plan([{ op: 'drop', key: 'a', why: 1 }]))).toThrow(/unknown field "why"/);
    expect(() => validatePlan(plan([{ op: 'permute', key: 'a', perm: [0, 0] }]))).toThrow(/not a permutation/);
    expect(() => validatePlan(plan([{ op: 'split', key: 'a', dim: 0, into: ['b'], sizes: [1, 2] }]))).toThrow(/into has 1 keys but sizes has 2/);
    expect(() => validatePlan(plan([{ op: 'rename', from: 'a.(b', to: 'c' }]))).toThrow(/unclosed "\("/);
    expect(() => validatePlan({ format: 'other', name: 'x', ops: [] })).toThrow(/format must be "sorac.migration\/1"/);
    expect(validatePlan(plan([{ op: 'init', key: 'n', shape: [2], dtype: 'f32', fill: { kind: 'normal', mean: 0, std: 1, seed: 3 } }])).ops).toHaveLength(1);
  });

  it('pattern renames are segment-anchored, first match only, and invert by swapping literal text and captures', () => {
    const f = patternRenamer('blocks.(\\d+).', 'spatial_blocks.$1.');
    expect(f('blocks.3.attn.w')).toBe('spatial_blocks.3.attn.w');
    expect(f('spatial_blocks.3.attn.w')).toBeUndefined();
    expect(f('model.blocks.3.w')).toBe('model.spatial_blocks.3.w');
    expect(invertRenamePattern('blocks.(\\d+).', 'spatial_blocks.$1.')).toEqual({ from: 'spatial_blocks.(\\d+).', to: 'blocks.$1.' });
    expect(invertRenamePattern('(a|b)_(\\d+).x', 'y.$2.$1')).toEqual({ from: 'y.(\\d+).(a|b)', to: '$2_$1.x' });
    expect(invertRenamePattern('blocks.(\\d+).(\\w+).', 'b.$1.')).toBeUndefined();
    const p: Plan = { format: 'sorac.migration/1', name: 'x', ops: [{ op: 'renamePattern', from: 'blocks.(\\d+).(\\w+).', to: 'b.$1.' }] };
    expect(() => invertPlan(p)).toThrow(/op #1 \(renamePattern .*\) is not invertible: the target "b.\$1." does not use every capture/);
    expect(() => invertPlan({ ...p, ops: [{ op: 'reshape', key: 'a', from: [2, 3], to: [-1] }] })).toThrow(/reshape to a shape with -1 cannot be undone/);
    expect(invertPlan({ ...p, ops: [{ op: 'reshape', key: 'a', from: [2, 3], to: [6] }] }).ops).toEqual([{ op: 'reshape', key: 'a', to: [2, 3], from: [6] }]);
  });

  it('a pattern rename that would not come back exactly on this checkpoint is a SORA6010 warning', () => {
    const sig = sigOf(ckpt({ 'blocks.0.x': [[1]], 'a.spatial_blocks.1.blocks.2.y': [[1]] }));
    const r = resolvePlan({ format: 'sorac.migration/1', name: 'x', ops: [{ op: 'renamePattern', from: 'blocks.(\\d+).', to: 'spatial_blocks.$1.' }] }, sig);
    expect(r.warnings).toEqual([expect.objectContaining({ code: 'SORA6010', message: expect.stringMatching(/not exactly reversible on this checkpoint/) })]);
  });

  it('a pattern cast with from selects that dtype (whole-checkpoint cast) and reverses exactly unless the target dtype was already present', async () => {
    const plan: Plan = { format: 'sorac.migration/1', name: 'c', ops: [{ op: 'cast', key: '(.+)', from: 'bf16', to: 'f32' }] };
    const x = ckpt({ a: [[2, 3], 'bf16'], b: [[4], 'bf16'], n: [[2], 'i32'] });
    const { out, warnings } = await applyMem(plan, x);
    expect(warnings).toEqual([]);
    expect([...out.values()].map((t) => t.sig.dtype)).toEqual(['f32', 'f32', 'i32']);
    expect(canon((await applyMem(invertPlan(plan), out)).out)).toEqual(canon(x));
    const mixed = ckpt({ a: [[2], 'bf16'], c: [[2], 'f32'] });
    expect(resolvePlan(plan, sigOf(mixed)).warnings).toEqual([expect.objectContaining({ code: 'SORA6010', message: expect.stringMatching(/c already f32; the reverse cast would convert it too/) })]);
    // an exact key with the wrong dtype is an error, not a skip
    expect(() => resolvePlan({ ...plan, ops: [{ op: 'cast', key: 'n', from: 'bf16', to: 'f32' }] }, sigOf(x))).toThrow(/n is i32, the op expects bf16/);
  });

  it('ops that do not fit say which key and why; ops that match nothing warn', () => {
    const sig = sigOf(ckpt({ a: [[2, 3]], b: [[4]] }));
    const run = (ops: unknown[]) => resolvePlan(validatePlan({ format: 'sorac.migration/1', name: 'x', ops }), sig);
    expect(() => run([{ op: 'squeeze', key: 'a', dim: 0 }])).toThrow(/a \[2,3\] has 2 at dim 0, not 1/);
    expect(() => run([{ op: 'reshape', key: 'a', to: [4] }])).toThrow(/cannot be reshaped to \[4\]/);
    expect(() => run([{ op: 'split', key: 'a', dim: 1, into: ['p', 'q'], sizes: [1, 1] }])).toThrow(/a has 3 along dim 1, but the sizes \[1,1\] add up to 2/);
    expect(() => run([{ op: 'concat', from: ['a', 'b'], dim: 0, to: 'c' }])).toThrow(/b \[4\] does not fit a \[2,3\]/);
    expect(() => run([{ op: 'rename', from: 'a', to: 'b' }])).toThrow(/would both be named b/);
    expect(run([{ op: 'drop', key: 'zz' }]).warnings).toEqual([expect.objectContaining({ code: 'SORA6009' })]);
  });
});

describe('regressions found by the migrate properties', () => {
  it('a safetensors file whose header length has low byte 0x80 is sniffed as safetensors, not pickle', async () => {
    const { sniffBytes } = await import('../../runtime/formats/torch-file.ts');
    const head = Buffer.alloc(200, 0x20);
    head.writeBigUInt64LE(128n, 0);
    head[8] = 0x7b;
    expect(sniffBytes(head, 1000)).toBe('safetensors');
    expect(sniffBytes(Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]), 6)).toBe('pickle');
  });
});

describe('load report suggestions carry the exact migrate command', () => {
  it('names the built-in, the weights and the parameters', async () => {
    const { loadReport, renderLoadReport } = await import('../../runtime/weights/load-report.ts');
    const km = (t: Record<string, number[]>) => ({ format: 'sorac.keymap/1' as const, model: 'M', version: '1', config: {}, contract: 'sha256:x', tensors: Object.fromEntries(Object.entries(t).map(([k, shape]) => [k, { shape, dtype: 'f32' as const, kind: 'param' as const, source: 'm.sora:1:1' }])) });
    const store = (t: Record<string, number[]>) => ({ tensors: new Map(Object.entries(t).map(([k, shape]) => [k, { key: k, shape, dtype: 'f32' as const, byteLength: 0, file: 'w', read: async () => new Uint8Array() }])) });
    const r = loadReport(km({ 'y_embedder.y_embedding': [300, 8], 'x_embedder.proj.weight': [8, 16, 1, 2, 2] }), store({ 'y_embedder.y_embedding': [200, 8], 'x_embedder.proj.weight': [8, 4, 1, 2, 2] }), { weights: 'ckpt/model.safetensors' });
    const cmds = r.suggestions.map((s) => s.command);
    expect(cmds).toContain('sorac migrate apply caption-table-resize --in ckpt/model.safetensors --out ckpt/model.caption-table-resize.safetensors --param rows=300');
    expect(cmds).toContain('sorac migrate apply vae-4ch-to-16ch --in ckpt/model.safetensors --out ckpt/model.vae-4ch-to-16ch.safetensors');
    expect(renderLoadReport(r)).toContain('run: sorac migrate apply caption-table-resize');
    // every name the report can suggest is a built-in
    for (const s of r.suggestions) if (s.migration) expect(BUILTINS.has(s.migration)).toBe(true);
    // a directory checkpoint gets a sibling directory; no weights given → a placeholder
    const r2 = loadReport(km({ 'x_embedder.proj.weight': [8, 4, 1, 2, 2] }), store({ 'x_embedder.proj.weight': [8, 4, 2, 2] }), { weights: 'hub/org name/' });
    expect(r2.suggestions[0]!.command).toBe("sorac migrate apply patch-embed-2d-to-3d --in 'hub/org name/' --out 'hub/org name-patch-embed-2d-to-3d'");
    expect(loadReport(km({ 'x_embedder.proj.weight': [8, 4, 1, 2, 2] }), store({ 'x_embedder.proj.weight': [8, 4, 2, 2] })).suggestions[0]!.command).toBe('sorac migrate apply patch-embed-2d-to-3d --in WEIGHTS --out WEIGHTS-patch-embed-2d-to-3d');
  });
});
