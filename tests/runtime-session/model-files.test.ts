import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planWeightsFile, weightsFileName, writeModelFiles } from '../../api/build.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { loadOrt } from '../../runtime/execution/ort.ts';
import { SoracError } from '../../core/errors.ts';
import { writeSafetensors } from '../../runtime/formats/safetensors-writer.ts';
import { openSafetensors } from '../../runtime/formats/safetensors.ts';
import { checkOnnxFile } from '../helpers/onnx-check.ts';
import { maxAbsDiff, randF32, sampleGraph, sampleReference, sampleWeights } from '../helpers/sample-model.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sorac-model-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('build artefacts: model.onnx + model.weights.safetensors', () => {
  it('plans the weights file from the graph alone; the file written later matches the plan', async () => {
    const g = sampleGraph({ projDtype: 'f32' });
    expect(weightsFileName('out/model.onnx')).toBe('model.weights.safetensors');
    const plan = planWeightsFile(g, 'model.weights.safetensors');
    expect([...plan.refs.keys()].sort()).toEqual(g.weights.map((w) => w.key).sort());
    expect(plan.metadata).toEqual({ 'sorac.contract': 'sha256:0000', 'sorac.entry': 'forward', 'sorac.model': 'sample' });

    // weights-less build: only the .onnx, offsets already final
    const out = join(dir, 'a', 'model.onnx');
    await mkdir(join(dir, 'a'));
    const r0 = await writeModelFiles(out, g);
    expect(r0.weights).toBeUndefined();
    expect((await checkOnnxFile(out)).ok).toBe(false); // weights file not there yet

    // then with a bf16 checkpoint: converted to the graph's f32 and written in the planned layout
    const w = sampleWeights('bf16');
    const ckpt = join(dir, 'ckpt.safetensors');
    await writeSafetensors(ckpt, w);
    const src = await safetensorsWeightSource([ckpt]);
    const r1 = await writeModelFiles(out, g, { weights: src });
    await src.close();
    expect(r1.weights).toBe(join(dir, 'a', 'model.weights.safetensors'));
    expect((await stat(r1.weights!)).size).toBe(plan.size);
    const f = await openSafetensors(r1.weights!);
    for (const [k, ref] of plan.refs) {
      expect(f.tensors.get(k)!.offset).toBe(ref.offset);
      expect(f.tensors.get(k)!.dtype).toBe('f32');
    }
    expect(f.metadata['sorac.contract']).toBe('sha256:0000');
    await f.close();
    expect((await checkOnnxFile(out)).message).toMatch(/^ok 8 17/);

    // the pair runs as-is in onnxruntime (by path, external data relative to the model)
    const ort = await loadOrt();
    const s = await ort.InferenceSession.create(out, { executionProviders: ['cpu'] });
    const xs = [1, 4, 1, 4, 4];
    const x = randF32(64, 8);
    const y = (await s.run({ x: new ort.Tensor('float32', x, xs) })).y!;
    expect(maxAbsDiff(y.data as Float32Array, sampleReference(x, xs, w).data)).toBeLessThan(1e-6);
    await s.release();
  });

  it('is byte-deterministic', async () => {
    const w = sampleWeights('bf16');
    const ckpt = join(dir, 'ckpt2.safetensors');
    await writeSafetensors(ckpt, w);
    const src = await safetensorsWeightSource([ckpt]);
    const bytes: Buffer[] = [];
    for (const sub of ['d1', 'd2']) {
      await mkdir(join(dir, sub));
      const r = await writeModelFiles(join(dir, sub, 'm.onnx'), sampleGraph(), { weights: src });
      bytes.push(await readFile(r.onnx), await readFile(r.weights!));
    }
    await src.close();
    expect(bytes[0]!.equals(bytes[2]!)).toBe(true);
    expect(bytes[1]!.equals(bytes[3]!)).toBe(true);
  });

  it('refuses a checkpoint that does not match, writing nothing', async () => {
    const w = sampleWeights('bf16');
    w.delete('norm.bias');
    const ckpt = join(dir, 'ckpt3.safetensors');
    await writeSafetensors(ckpt, w);
    const src = await safetensorsWeightSource([ckpt]);
    await mkdir(join(dir, 'bad'));
    const err = await writeModelFiles(join(dir, 'bad', 'm.onnx'), sampleGraph(), { weights: src }).catch((e) => e);
    await src.close();
    expect(err).toBeInstanceOf(SoracError);
    expect(err.message).toContain('norm.bias: missing from the checkpoint');
    expect(await readdir(join(dir, 'bad'))).toEqual([]);
  });
});
