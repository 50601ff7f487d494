/**
 * `sorac build` without `-w`, through the built CLI: the graph it writes has no dangling external-data
 * reference (the weights are graph inputs named by checkpoint key), it passes the ONNX checker and loads
 * in plain onnxruntime, and the command says how to attach weights. With `-w` the graph references the
 * weights file written beside it.
 */
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOrt } from '../../runtime/execution/ort.ts';
import { ROOT, soracBin } from '../helpers/cli.ts';
import { checkOnnxFile } from '../helpers/onnx-check.ts';

const G = join(ROOT, 'tests/fixtures/golden/stdit3/a');
const base = ['build', join(ROOT, 'examples/stdit3.sora'), '--config', join(G, 'config.json')];

describe('sorac build without -w', () => {
  it('writes a self-contained graph (weights as named inputs) that the checker and onnxruntime accept, and says how to attach weights', async () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-build-nw-'));
    const r = soracBin([...base, '-o', d]);
    expect(r.code, r.err).toBe(0);
    expect(readdirSync(d).sort()).toEqual(['STDiT3.keymap.json', 'STDiT3.onnx']);
    expect(r.out).toMatch(/no -w: the weights are inputs of STDiT3\.onnx \(one per checkpoint key\); to write them beside the graph as external data: sorac build .* -w CHECKPOINT/);
    expect((await checkOnnxFile(join(d, 'STDiT3.onnx'))).message).toMatch(/^ok 8 17/);
    const ort = await loadOrt();
    const s = await ort.InferenceSession.create(join(d, 'STDiT3.onnx'), { executionProviders: ['cpu'] });
    expect(s.inputNames).toEqual(expect.arrayContaining(['x', 'timestep', 'x_embedder.proj.weight']));
    await s.release();
    const j = soracBin([...base, '-o', d, '--json']);
    expect(JSON.parse(j.out)).toMatchObject({ ok: true, weights: 'inputs' });
  });

  it('with -w the graph refers to the weights file written beside it, and both load', async () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-build-w-'));
    const r = soracBin([...base, '-o', d, '-w', join(G, 'model.safetensors'), '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, weights: 'external' });
    expect(existsSync(join(d, 'STDiT3.weights.safetensors'))).toBe(true);
    expect((await checkOnnxFile(join(d, 'STDiT3.onnx'))).message).toMatch(/^ok 8 17/);
  });
});
