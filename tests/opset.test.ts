/** Raising the target opset (--opset) keeps graphs valid and numerically identical. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceEntry } from '../compiler/compile.ts';
import { runGraph } from '../api/session.ts';
import { safetensorsWeightSource } from '../runtime/execution/binding.ts';
import { readTensorsFile } from '../runtime/formats/tensors-io.ts';
import { GOLDEN, compileExample, goldenConfig, maxAbsDiff } from './helpers/parity.ts';

describe('--opset', () => {
  for (const [ex, opset] of [['stdit3', 18], ['stdit3', 21], ['mmdit', 23], ['sd_vae', 20]] as const) {
    it(`${ex} at opset ${opset} runs and matches the golden output`, async () => {
      const dir = join(GOLDEN, ex, 'a');
      const m = compileExample(`examples/${ex}.sora`, goldenConfig(ex));
      const entry = ex === 'sd_vae' ? 'decode' : 'forward';
      const { tensors: inputs } = await readTensorsFile(join(dir, 'inputs.safetensors'));
      const e = m.entries.find((x) => x.name === entry)!;
      const tr = traceEntry(m, entry, { opset, absent: new Set(e.inputs.filter((i) => i.optional && !inputs.has(i.name)).map((i) => i.name)) });
      expect(tr.graph, tr.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
      expect(tr.graph!.opset).toBe(opset);
      const w = await safetensorsWeightSource([join(dir, 'model.safetensors')]);
      try {
        const feed = new Map([...inputs].filter(([k]) => tr.graph!.inputs.some((i) => i.name === k)));
        const r = await runGraph(tr.graph!, w, feed, { device: 'cpu' });
        const { tensors: ref } = await readTensorsFile(join(dir, 'outputs.safetensors'));
        for (const [k, v] of r.outputs) if (ref.has(k)) expect(maxAbsDiff(v, ref.get(k)!)).toBeLessThan(1e-4);
      } finally {
        await w.close();
      }
    });
  }
});
