/**
 * End to end on real golden data (outputs of the upstream PyTorch code):
 *  - MMDiT: the golden checkpoint is the unfused layout (fused_qkv=false). `sorac check` with
 *    fused_qkv=true names mmdit-fuse-qkv and the exact command; applying it and running the model
 *    with --set fused_qkv=true gives the golden outputs; unfusing back restores the checkpoint byte
 *    for byte (also through --reverse) and runs identically.
 *  - STDiT: an "upstream" 2-D patch-embed checkpoint (x_embedder squeezed to [C,4,2,2]) is
 *    diagnosed, migrated with patch-embed-2d-to-3d, and runs to the same outputs as the original.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openWeights } from '../../runtime/weights/store.ts';
import { writeSafetensors, type WriterTensor } from '../../runtime/formats/safetensors-writer.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, goldenConfig, maxAbsDiff } from '../helpers/parity.ts';
import { cli, sha256File, tempDir } from './helpers.ts';

async function tensorsOf(spec: string): Promise<Map<string, { dtype: string; shape: readonly number[]; bytes: Buffer }>> {
  const s = await openWeights(spec);
  try {
    const m = new Map<string, { dtype: string; shape: readonly number[]; bytes: Buffer }>();
    for (const [k, t] of s.tensors) m.set(k, { dtype: t.dtype, shape: t.shape, bytes: Buffer.from(await t.read()) });
    return m;
  } finally {
    await s.close();
  }
}

function expectSameTensors(a: Map<string, { dtype: string; shape: readonly number[]; bytes: Buffer }>, b: typeof a) {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect({ k, dtype: u.dtype, shape: u.shape }).toEqual({ k, dtype: t.dtype, shape: t.shape });
    expect(Buffer.compare(t.bytes, u.bytes), k).toBe(0);
  }
}

describe('MMDiT: fuse the golden (unfused) checkpoint, run it fused, unfuse it back', () => {
  const G = join(GOLDEN, 'mmdit', 'a');
  const W = join(G, 'model.safetensors');
  let d: string;
  let cfg: string;
  const run = (weights: string, out: string, extra: string[] = []) => cli(['run', 'examples/mmdit.sora', '--config', cfg, '-w', weights, '-i', join(G, 'inputs.safetensors'), '-o', out, '--device', 'cpu', ...extra]);

  beforeAll(() => {
    d = tempDir();
    cfg = join(d, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(goldenConfig('mmdit')));
  });

  it('check names the built-in and the exact command; the fused checkpoint gives the golden outputs', async () => {
    const chk = await cli(['check', 'examples/mmdit.sora', '--config', cfg, '--set', 'fused_qkv=true', '--weights', W]);
    expect(chk.code).toBe(1);
    expect(chk.out).toContain('→ migration mmdit-fuse-qkv');
    expect(chk.out).toContain(`run: sorac migrate apply mmdit-fuse-qkv --in ${W} --out ${W.replace(/\.safetensors$/, '.mmdit-fuse-qkv.safetensors')}`);

    const fused = join(d, 'fused.safetensors');
    const ap = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', W, '--out', fused]);
    expect(ap.code, ap.err).toBe(0);
    expect(ap.out).toMatch(/applied mmdit-fuse-qkv \(2 ops\)/);
    const ft = await tensorsOf(fused);
    expect(ft.get('double_blocks.0.img_attn.qkv.weight')!.shape).toEqual([144, 48]);
    expect(ft.get('single_blocks.1.linear1.weight')!.shape).toEqual([336, 48]);
    expect(ft.has('double_blocks.0.img_attn.q_proj.weight')).toBe(false);

    const chk2 = await cli(['check', 'examples/mmdit.sora', '--config', cfg, '--set', 'fused_qkv=true', '--weights', fused]);
    expect(chk2.code, chk2.out).toBe(0);

    const base = await run(W, join(d, 'out-unfused.safetensors'));
    expect(base.code, base.err).toBe(0);
    const r = await run(fused, join(d, 'out-fused.safetensors'), ['--set', 'fused_qkv=true']);
    expect(r.code, r.err).toBe(0);
    const a = (await readTensorsFile(join(d, 'out-unfused.safetensors'))).tensors;
    const b = (await readTensorsFile(join(d, 'out-fused.safetensors'))).tensors;
    const ref = (await readTensorsFile(join(G, 'outputs.safetensors'))).tensors;
    for (const [k, v] of a) {
      // the fused graph computes the same products in one MatMul: equal up to summation order
      expect(maxAbsDiff(b.get(k)!, v), k).toBeLessThanOrEqual(1e-5);
      if (ref.has(k)) expect(maxAbsDiff(b.get(k)!, ref.get(k)!), k).toBeLessThanOrEqual(1e-4);
    }

    // metadata: the migration and the source's sha256 (same as `sorac verify` / sha256sum)
    const s = await openWeights(fused);
    expect(s.metadata['sorac.migration']).toBe('mmdit-fuse-qkv');
    expect(s.metadata['sorac.source.sha256']).toBe(sha256File(W));
    expect(JSON.parse(s.metadata['sorac.migration.plan'] as string).ops).toHaveLength(2);
    await s.close();
  });

  it('unfuse (built-in, and --reverse of the fuse) restores the golden checkpoint byte for byte and runs identically', async () => {
    const fused = join(d, 'fused2.safetensors');
    expect((await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', W, '--out', fused])).code).toBe(0);
    const back = join(d, 'unfused-dir');
    const u = await cli(['migrate', 'apply', 'mmdit-unfuse-qkv', '--in', fused, '--out', back, '--shard-size', '400KB']);
    expect(u.code, u.err).toBe(0);
    expect(u.out).toContain('(sharded)');
    expect(existsSync(join(back, 'model.safetensors.index.json'))).toBe(true);
    const orig = await tensorsOf(W);
    expectSameTensors(orig, await tensorsOf(back));

    // a sharded source records each shard's sha256 and a combined one
    const again = join(d, 'again.safetensors');
    expect((await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--in', back, '--out', again])).code).toBe(0);
    const sa = await openWeights(again);
    const shards = readdirSync(back).filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    for (const f of shards) expect(sa.metadata[`sorac.source.sha256:${f}`]).toBe(sha256File(join(back, f)));
    expect(sa.metadata['sorac.source.sha256']).toMatch(/^[0-9a-f]{64}$/);
    await sa.close();

    const rev = join(d, 'reversed.safetensors');
    const rv = await cli(['migrate', 'apply', 'mmdit-fuse-qkv', '--reverse', '--in', fused, '--out', rev]);
    expect(rv.code, rv.err).toBe(0);
    expectSameTensors(orig, await tensorsOf(rev));

    const r1 = await run(W, join(d, 'o1.safetensors'));
    const r2 = await run(back, join(d, 'o2.safetensors'));
    expect(r1.code, r1.err).toBe(0);
    expect(r2.code, r2.err).toBe(0);
    const o1 = (await readTensorsFile(join(d, 'o1.safetensors'))).tensors;
    const o2 = (await readTensorsFile(join(d, 'o2.safetensors'))).tensors;
    for (const [k, v] of o1) expect(maxAbsDiff(o2.get(k)!, v), k).toBe(0);
  });
});

describe('STDiT: an upstream 2-D patch-embed checkpoint, migrated to 3-D, runs as the original', () => {
  const G = join(GOLDEN, 'stdit', 'a');
  const W = join(G, 'model.safetensors');

  it('check suggests patch-embed-2d-to-3d with the command; applying it restores the golden weights and outputs', async () => {
    const d = tempDir();
    const cfg = join(d, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(goldenConfig('stdit')));
    // make the "upstream" (DiT/PixArt Conv2d) checkpoint: squeeze the kt=1 dim of the patch embed
    const orig = await tensorsOf(W);
    const pe = orig.get('x_embedder.proj.weight')!;
    expect(pe.shape).toEqual([64, 4, 1, 2, 2]);
    const up = join(d, 'upstream.safetensors');
    const ts = new Map<string, WriterTensor>();
    for (const [k, t] of orig) ts.set(k, { dtype: t.dtype as 'f32', shape: k === 'x_embedder.proj.weight' ? [64, 4, 2, 2] : t.shape, data: t.bytes });
    await writeSafetensors(up, ts);

    const chk = await cli(['check', 'examples/stdit.sora', '--config', cfg, '--weights', up]);
    expect(chk.code).toBe(1);
    expect(chk.out).toMatch(/x_embedder\.proj\.weight\s+model \[64,4,1,2,2\] vs checkpoint \[64,4,2,2\]/);
    const cmd = `sorac migrate apply patch-embed-2d-to-3d --in ${up} --out ${up.replace(/\.safetensors$/, '.patch-embed-2d-to-3d.safetensors')}`;
    expect(chk.out).toContain(`run: ${cmd}`);

    // run exactly the suggested command
    const ap = await cli(cmd.split(' ').slice(1));
    expect(ap.code, ap.err).toBe(0);
    const migrated = up.replace(/\.safetensors$/, '.patch-embed-2d-to-3d.safetensors');
    expectSameTensors(orig, await tensorsOf(migrated));
    expect((await cli(['check', 'examples/stdit.sora', '--config', cfg, '--weights', migrated])).code).toBe(0);

    const run = (w: string, o: string) => cli(['run', 'examples/stdit.sora', '--config', cfg, '-w', w, '-i', join(G, 'inputs.safetensors'), '-o', o, '--device', 'cpu']);
    const r1 = await run(W, join(d, 'o1.safetensors'));
    const r2 = await run(migrated, join(d, 'o2.safetensors'));
    expect(r1.code, r1.err).toBe(0);
    expect(r2.code, r2.err).toBe(0);
    const o1 = (await readTensorsFile(join(d, 'o1.safetensors'))).tensors;
    const o2 = (await readTensorsFile(join(d, 'o2.safetensors'))).tensors;
    const ref = (await readTensorsFile(join(G, 'outputs.safetensors'))).tensors;
    for (const [k, v] of o1) {
      expect(maxAbsDiff(o2.get(k)!, v), k).toBe(0);
      if (ref.has(k)) expect(maxAbsDiff(o2.get(k)!, ref.get(k)!), k).toBeLessThanOrEqual(1e-4);
    }
    // and back: --reverse squeezes it again
    const back = join(d, 'back.safetensors');
    expect((await cli(['migrate', 'apply', 'patch-embed-2d-to-3d', '--reverse', '--in', migrated, '--out', back])).code).toBe(0);
    expect((await tensorsOf(back)).get('x_embedder.proj.weight')!.shape).toEqual([64, 4, 2, 2]);
  });
});
