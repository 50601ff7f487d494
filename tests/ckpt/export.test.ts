/**
 * `sorac ckpt export`: EMA / model weights of a training checkpoint → inference safetensors, bytes
 * identical to what the readers give (or exactly cast), source and step in `__metadata__`, HF
 * shards with --shard-size, strict validation against a .sora model before anything is written.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportCheckpoint, parseSize } from '../../runtime/training/export.ts';
import { convertBytes } from '../../core/convert.ts';
import { openWeights } from '../../runtime/weights/store.ts';
import { ASYNC20, copyExp, EXP, run, STDIT3, SYNC20, tempRoot, TINY_CONFIG, V12 } from './helpers.ts';

const tmp = tempRoot('export');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tensorsOf(spec: string, part?: 'ema' | 'model') {
  const s = await openWeights(spec, part ? { part } : {});
  try {
    const out = new Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array }>();
    for (const t of s.tensors.values()) out.set(t.key, { dtype: t.dtype, shape: t.shape, bytes: await t.read() });
    return { tensors: out, metadata: s.metadata };
  } finally {
    await s.close();
  }
}

describe('ckpt export', () => {
  it('EMA as stored: every tensor byte-identical, source and step recorded', async () => {
    const out = join(tmp, 'ema.safetensors');
    const r = await run(['ckpt', 'export', join(EXP, ASYNC20), '-o', out]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/exported ema weights of epoch1-global_step6 \(epoch 1, step 1, global step 6\): 55 tensors/);
    expect(r.err).toBe('');
    const src = await tensorsOf(join(EXP, ASYNC20));
    const dst = await tensorsOf(out);
    expect([...dst.tensors.keys()].sort()).toEqual([...src.tensors.keys()].sort());
    for (const [k, t] of src.tensors) {
      expect(dst.tensors.get(k)!.dtype).toBe(t.dtype);
      expect(Buffer.from(dst.tensors.get(k)!.bytes).equals(Buffer.from(t.bytes)), k).toBe(true);
    }
    expect(dst.metadata).toMatchObject({ format: 'pt', source_checkpoint: ASYNC20, source_part: 'ema', epoch: '1', step: '1', global_step: '6', actual_update_step: '6' });
    expect(dst.metadata.source).toBe(join(EXP, ASYNC20));
  });

  for (const [name, from, dtype] of [[V12, 'ema', 'bf16'], [SYNC20, 'model', 'f32'], [V12, 'model', 'f16']] as const) {
    it(`${name} --from ${from} --dtype ${dtype}: exact casts of every float tensor`, async () => {
      const out = join(tmp, `${name}-${from}-${dtype}.safetensors`);
      const r = await exportCheckpoint(join(EXP, name), { from, dtype, out });
      expect(r.tensors).toBe(55);
      const src = await tensorsOf(join(EXP, name), from);
      const dst = await tensorsOf(out);
      for (const [k, t] of src.tensors) {
        const d = dst.tensors.get(k)!;
        expect(d.dtype).toBe(dtype);
        expect(d.shape).toEqual(t.shape);
        expect(Buffer.from(d.bytes).equals(Buffer.from(convertBytes(t.bytes, t.dtype as 'f32', dtype))), k).toBe(true);
      }
      expect(dst.metadata.dtype).toBe(dtype);
    });
  }

  it('--shard-size writes HF shards (-of-N names, byte total_size, sorted weight_map) with metadata on each', async () => {
    const out = join(tmp, 'sharded');
    const r = await run(['ckpt', 'export', join(EXP, V12), '--from', 'model', '--dtype', 'f32', '--shard-size', '12KB', '-o', out, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ ok: true, tensors: 55 });
    const names = readdirSync(out).sort();
    expect(names.length).toBeGreaterThan(2);
    expect(names.filter((n) => n.endsWith('.safetensors')).every((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n))).toBe(true);
    const idx = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(idx.metadata.total_size).toBe(7618 * 4);
    const back = await tensorsOf(out);
    expect(back.tensors.size).toBe(55);
    expect(back.metadata.total_size).toBe(7618 * 4);
    const one = await openWeights(join(out, names[0]!));
    expect(one.metadata).toMatchObject({ source_checkpoint: V12, source_part: 'model', global_step: '2' });
    await one.close();
  });

  it('--model validates first: ok with the right config, nothing written with the wrong one', async () => {
    const ok = join(tmp, 'validated.safetensors');
    const r = await run(['ckpt', 'export', join(EXP, SYNC20), '-o', ok, '--model', STDIT3, '--config', TINY_CONFIG, '--dtype', 'bf16']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/validated against .*stdit3\.sora: load report ok/);
    const bad = join(tmp, 'bad.safetensors');
    const b = await run(['ckpt', 'export', join(EXP, SYNC20), '-o', bad, '--model', STDIT3, '--config', TINY_CONFIG, '--set', 'hidden_size=16']);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/SORA5010: the ema weights of epoch0-global_step4 do not match the model; nothing was written/);
    expect(b.err).toMatch(/shape mismatch/);
    expect(existsSync(bad)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('bad.safetensors'))).toEqual([]);
  });

  it('a torn checkpoint: its damaged part is never exported, an intact part is (with a note); no EMA → a clear error; an existing output needs --force', async () => {
    const exp = copyExp(tmp, 'torn');
    unlinkSync(join(exp, ASYNC20, 'model/model-00002.safetensors'));
    const out = join(tmp, 'torn.safetensors');
    const r = await run(['ckpt', 'export', join(exp, ASYNC20), '--from', 'model', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5102: .* is not a complete checkpoint; refusing to export it/);
    expect(r.err).toMatch(/model-00002\.safetensors: missing/);
    expect(existsSync(out)).toBe(false);
    // the EMA weights of the same torn save are intact: exported, and the note says what else is wrong
    const ema = await run(['ckpt', 'export', join(exp, ASYNC20), '-o', out]);
    expect(ema.code, ema.err).toBe(0);
    expect(ema.err).toMatch(/note: epoch1-global_step6 is not a complete checkpoint \(1 problem\(s\) elsewhere, e\.g\. .*model-00002\.safetensors: missing.*\), but its ema weights \(ema\.safetensors\) are intact: exported them/);
    expect((await tensorsOf(out)).metadata.source_incomplete).toBe('true');
    rmSync(out);

    unlinkSync(join(exp, SYNC20, 'ema.pt'));
    const n = await run(['ckpt', 'export', join(exp, SYNC20), '-o', out, '--json']);
    expect(JSON.parse(n.out).error).toMatchObject({ code: 'SORA5102', hint: 'export the trained weights instead: --from model' });
    expect((await run(['ckpt', 'export', join(exp, SYNC20), '--from', 'model', '-o', out])).code).toBe(0);

    writeFileSync(join(tmp, 'exists.safetensors'), 'keep me');
    const e = await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'exists.safetensors')]);
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/SORA5103: .*exists\.safetensors already exists/);
    expect(readFileSync(join(tmp, 'exists.safetensors'), 'utf8')).toBe('keep me');
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'exists.safetensors'), '--force'])).code).toBe(0);
    expect((await tensorsOf(join(tmp, 'exists.safetensors'))).tensors.size).toBe(55);
  });

  it('--force onto a directory when writing one file: a clear error, the directory untouched', async () => {
    const d = join(tmp, 'a-dir.safetensors');
    mkdirSync(d);
    writeFileSync(join(d, 'keep'), 'x');
    const r = await run(['ckpt', 'export', join(EXP, V12), '-o', d, '--force']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5103: .*a-dir\.safetensors is in the way \(EISDIR/);
    expect(readdirSync(d)).toEqual(['keep']);
    expect(readdirSync(tmp).filter((n) => n.startsWith('.a-dir'))).toEqual([]);
  });

  it('creates missing parent dirs of OUT', async () => {
    const out = join(tmp, 'deep', 'er', 'ema.safetensors');
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', out])).code).toBe(0);
    expect((await tensorsOf(out)).tensors.size).toBe(55);
  });

  it('usage errors exit 2; progress only on a TTY', async () => {
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'x.safetensors'), '--dtype', 'int8'])).code).toBe(2);
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'x.safetensors'), '--from', 'master'])).code).toBe(2);
    expect((await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'x.safetensors'), '--shard-size', 'lots'])).code).toBe(2);
    expect((await run(['ckpt', 'export', join(EXP, V12)])).code).toBe(2);
    const tty = await run(['ckpt', 'export', join(EXP, V12), '-o', join(tmp, 'tty.safetensors')], { isTTY: true });
    expect(tty.code).toBe(0);
    expect(tty.err).toMatch(/\r\[#+\.*\] +\d+%/);
    expect(parseSize('5GB')).toBe(5e9);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseSize('500mb')).toBe(5e8);
    expect(parseSize('1024')).toBe(1024);
    expect(parseSize('0')).toBeUndefined();
  });
});
