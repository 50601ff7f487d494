import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runFiles } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { SoracError } from '../../core/errors.ts';
import { writeSafetensors } from '../../runtime/formats/safetensors-writer.ts';
import { openSafetensors } from '../../runtime/formats/safetensors.ts';
import { readTensorsFile, writeTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { maxAbsDiff, randF32, sampleGraph, sampleReference, sampleWeights } from '../helpers/sample-model.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sorac-tensors-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tensors-io', () => {
  it('round-trips named tensors of every I/O dtype', async () => {
    const t: Record<string, HostTensor> = {
      a: { dtype: 'f32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      b: { dtype: 'f16', shape: [3], data: Uint16Array.from([0x3c00, 0x4000, 0xfc00]) },
      c: { dtype: 'bf16', shape: [1], data: Uint16Array.from([0x3f80]) },
      d: { dtype: 'i64', shape: [2], data: BigInt64Array.from([-1n, 2n ** 40n]) },
      e: { dtype: 'bool', shape: [], data: Uint8Array.from([1]) },
      f: { dtype: 'u8', shape: [0], data: new Uint8Array(0) },
    };
    const p = join(dir, 'rt.safetensors');
    await writeTensorsFile(p, t, { note: 'hi' });
    const { tensors, metadata } = await readTensorsFile(p);
    expect(metadata.note).toBe('hi');
    expect([...tensors.keys()].sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    for (const [k, v] of Object.entries(t)) {
      const r = tensors.get(k)!;
      expect(r.dtype).toBe(v.dtype);
      expect(r.shape).toEqual(v.shape);
      expect(r.data.constructor).toBe(v.data.constructor);
      expect(Array.from(r.data as ArrayLike<number | bigint>)).toEqual(Array.from(v.data as ArrayLike<number | bigint>));
    }
  });

  it('writes atomically: a failed write leaves the old file and no temp file', async () => {
    const p = join(dir, 'atomic.safetensors');
    await writeFile(p, 'old');
    const bad = { x: { dtype: 'f32', shape: [4], data: new Float32Array(3) } } as Record<string, HostTensor>;
    await expect(writeTensorsFile(p, bad)).rejects.toThrow(/produced 12 bytes, expected 16/);
    expect((await readdir(dir)).filter((f) => f.includes('atomic'))).toEqual(['atomic.safetensors']);
  });
});

describe('runFiles', () => {
  it('reads inputs from safetensors, runs, writes outputs atomically', async () => {
    const w = sampleWeights('bf16');
    const ckpt = join(dir, 'model.safetensors');
    await writeSafetensors(ckpt, w);
    const xs = [1, 4, 2, 4, 4];
    const x = randF32(xs.reduce((a, b) => a * b), 3);
    const inPath = join(dir, 'inputs.safetensors');
    await writeTensorsFile(inPath, { x: { dtype: 'f32', shape: xs, data: x } });
    const weights = await safetensorsWeightSource([ckpt]);
    const outPath = join(dir, 'outputs.safetensors');
    const r = await runFiles(sampleGraph(), weights, inPath, outPath, { device: 'cpu' });
    expect(r.device).toBe('cpu');
    const f = await openSafetensors(outPath);
    expect(f.metadata['sorac.graph']).toBe('sample');
    expect(f.metadata['sorac.contract']).toBe('sha256:0000');
    await f.close();
    const { tensors } = await readTensorsFile(outPath);
    expect(tensors.get('y')!.shape).toEqual([1, 8, 8]);
    expect(tensors.get('y16')!.dtype).toBe('f16');
    expect(maxAbsDiff(tensors.get('y')!.data as Float32Array, sampleReference(x, xs, w).data)).toBeLessThan(1e-6);

    // extra tensors in the inputs file: an error by default, or ignored with one line
    await writeTensorsFile(inPath, { x: { dtype: 'f32', shape: xs, data: x }, z: { dtype: 'f32', shape: [1], data: new Float32Array(1) } });
    await expect(runFiles(sampleGraph(), weights, inPath, outPath, { device: 'cpu' })).rejects.toThrow(/unknown input "z"/);
    const lines: string[] = [];
    await runFiles(sampleGraph(), weights, inPath, outPath, { device: 'cpu', extraInputs: 'ignore', onInfo: (m) => lines.push(m) });
    expect(lines).toEqual([`note: ignoring 1 tensor(s) in ${inPath} that sample does not take: z`, 'note: bf16 weights converted to f32 (CPU has no bf16 kernels)']);

    // a bad input writes nothing
    const outPath2 = join(dir, 'outputs2.safetensors');
    await writeTensorsFile(inPath, { x: { dtype: 'f32', shape: [1, 3, 2, 4, 4], data: new Float32Array(96) } });
    await expect(runFiles(sampleGraph(), weights, inPath, outPath2, { device: 'cpu' })).rejects.toThrow(SoracError);
    expect((await readdir(dir)).filter((f) => f.startsWith('outputs2') || f.startsWith('.outputs2'))).toEqual([]);
    await weights.close();
  });
});
