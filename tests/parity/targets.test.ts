/**
 * The two graphs sorac writes for a model: the plain standard-opset graph (`sorac build` without
 * --target) and the ORT graph (`sorac build --target ort`, what every CPU session runs;
 * compiler/passes/ort-cpu.ts). On every golden case (outputs of the real upstream code) both are
 * within the parity tolerance, and they agree with each other to float rounding (the ORT graph's
 * tanh GELU runs as onnxruntime's FastGelu kernel, residual Add + LayerNorm as SkipLayerNormalization). The other parity tests run the ORT graph (the
 * session default).
 */
import { describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import { optimizeForOrt, lowerForTarget } from '../../compiler/passes/index.ts';
import { compileExample, maxAbsDiff, runGolden } from '../helpers/parity.ts';

const CASES: { file: string; model: string; entry: string }[] = [
  { file: 'examples/stdit3.sora', model: 'stdit3', entry: 'forward' },
  { file: 'examples/stdit2.sora', model: 'stdit2', entry: 'forward' },
  { file: 'examples/stdit.sora', model: 'stdit', entry: 'forward' },
  { file: 'examples/mmdit.sora', model: 'mmdit', entry: 'forward' },
  { file: 'examples/t5.sora', model: 't5', entry: 'forward' },
  { file: 'examples/sd_vae.sora', model: 'sd_vae', entry: 'forward' },
  { file: 'examples/vae_temporal.sora', model: 'vae_temporal', entry: 'forward' },
  { file: 'examples/hunyuan_vae.sora', model: 'hunyuan_vae', entry: 'forward' },
];

describe('standard-opset and ORT targets on the golden cases', () => {
  for (const c of CASES) {
    it(`${c.model} ${c.entry}: both targets within 1e-4 of the reference and within 1e-5 of each other`, async () => {
      const ort = await runGolden(c.file, c.model, { entry: c.entry });
      const std = await runGolden(c.file, c.model, { entry: c.entry, optimize: false });
      expect(Object.keys(ort.errors).length).toBeGreaterThan(0);
      for (const [k, e] of Object.entries(std.errors)) expect(e, `standard ${k}`).toBeLessThanOrEqual(1e-4);
      for (const [k, e] of Object.entries(ort.errors)) expect(e, `ort ${k}`).toBeLessThanOrEqual(1e-4);
      // the ORT graph's tanh GELU runs as one FastGelu kernel: float rounding only (measured <= 2.4e-6)
      for (const [k, v] of ort.outputs) expect(maxAbsDiff(v, std.outputs.get(k)!), k).toBeLessThanOrEqual(1e-5);
    });
  }

  it('bf16 weights (compute emulated on CPU): the two targets agree', async () => {
    const ort = await runGolden('examples/stdit.sora', 'stdit', { weights: 'model.bf16.safetensors' });
    const std = await runGolden('examples/stdit.sora', 'stdit', { weights: 'model.bf16.safetensors', optimize: false });
    for (const [k, v] of ort.outputs) expect(maxAbsDiff(v, std.outputs.get(k)!), k).toBeLessThanOrEqual(1e-5);
  });

  it('the ORT graph of STDiT3-XL/2 has at most 9,000 nodes (the traced graph over 10,000)', () => {
    const m = compileExample('examples/stdit3.sora', {});
    const g = traceEntry(m, 'forward', { absent: new Set(['x_mask']) }).graph!;
    const o = optimizeForOrt(lowerForTarget(g, 'cpu').graph);
    expect(g.nodes.length).toBeGreaterThan(10_000);
    expect(o.graph.nodes.length).toBeLessThanOrEqual(9_000);
    expect(o.removed.merged).toBeGreaterThan(0);
    // every tanh GELU (28 spatial + 28 temporal block MLPs, the caption MLP) in the form onnxruntime fuses to FastGelu
    expect(o.gelus).toBe(57);
    expect(o.graph.nodes.filter((n) => n.op === 'Pow').length).toBeGreaterThanOrEqual(57);
    // every LayerNorm that reads a residual Add (2 per block x 56, less the first block's, which reads the
    // patch embedding, plus the final layer's) is one SkipLayerNormalization
    expect(o.skipLayerNorms).toBe(112);
    expect(o.graph.nodes.filter((n) => n.op === 'SkipLayerNormalization' && n.domain === 'com.microsoft').length).toBe(112);
    expect(o.graph.nodes.filter((n) => n.op === 'LayerNormalization').length).toBe(1);
    // inputs, outputs and weights are those of the traced graph
    expect(o.graph.inputs).toEqual(g.inputs);
    expect(o.graph.outputs).toEqual(g.outputs);
    expect(o.graph.weights).toEqual(g.weights);
  });
});
