/**
 * Graph passes and the verifier: every bundled example's graphs (f32, and with bf16 compute) are well
 * formed after tracing and after each device pass; the verifier catches the breakages a pass could
 * introduce; stage outputs are frozen and tracing is reentrant.
 */
import { describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import { lowerGraph, verifyGraph } from '../../compiler/passes/index.ts';
import type { IrGraph, IrValue } from '../../core/ir.ts';
import { goldenConfig } from '../helpers/parity.ts';
import { assertCompiles, compileFile, traceOk } from '../helpers/model.ts';

const EXAMPLES: [string, string][] = [
  ['examples/stdit.sora', 'stdit'],
  ['examples/stdit2.sora', 'stdit2'],
  ['examples/stdit3.sora', 'stdit3'],
  ['examples/mmdit.sora', 'mmdit'],
  ['examples/t5.sora', 't5'],
  ['examples/sd_vae.sora', 'sd_vae'],
  ['examples/vae_temporal.sora', 'vae_temporal'],
];

describe('graph passes', () => {
  for (const [file, golden] of EXAMPLES) {
    it(`${golden}: every entry verifies after tracing and after the cpu/cuda passes (f32 and bf16 compute)`, () => {
      for (const dtype of [undefined, { params: 'bf16', compute: 'bf16' }]) {
        const m = assertCompiles(compileFile(file, { values: goldenConfig(golden), ...(dtype ? { dtype } : {}) }));
        for (const e of m.entries) {
          const g = traceOk(m, e.name);
          expect(verifyGraph(g), `${golden}.${e.name}`).toEqual([]);
          for (const target of ['cpu', 'cuda'] as const) {
            const l = lowerGraph(g, target, { verify: true });
            expect(verifyGraph(l.graph)).toEqual([]);
            if (dtype && target === 'cpu' && g.nodes.some((n) => n.outputs.some((o) => o.dtype === 'bf16'))) expect(l.graph.metadata['sorac.cpu_emulation']).toBeDefined();
          }
        }
      }
    });
  }

  it('the verifier reports use before definition, a lying Cast and a missing output', () => {
    const m = assertCompiles(compileFile('examples/t5.sora', { values: goldenConfig('t5') }));
    const g = traceOk(m, 'forward');
    // swap two dependent nodes: a use before its definition
    const i = g.nodes.findIndex((n, k) => k > 0 && n.inputs.some((x) => x && g.nodes[k - 1]!.outputs.includes(x)));
    const swapped: IrGraph = { ...g, nodes: [...g.nodes.slice(0, i - 1), g.nodes[i]!, g.nodes[i - 1]!, ...g.nodes.slice(i + 1)] };
    expect(verifyGraph(swapped).some((p) => /before it is defined/.test(p.message))).toBe(true);
    // a Cast whose output type disagrees with its `to`
    const c = g.nodes.findIndex((n) => n.op === 'Cast');
    const cast = g.nodes[c]!;
    const lying: IrValue = { ...cast.outputs[0]!, dtype: cast.outputs[0]!.dtype === 'f32' ? 'i64' : 'f32' };
    const badCast: IrGraph = { ...g, nodes: g.nodes.map((n, k) => (k === c ? { ...n, outputs: [lying] } : n)) };
    expect(verifyGraph(badCast).some((p) => /casts to .* but its output/.test(p.message))).toBe(true);
    // an output nobody produces
    const orphan: IrValue = { id: 1e9, name: 'orphan', dtype: 'f32', shape: [1] };
    expect(verifyGraph({ ...g, outputs: [...g.outputs, orphan] }).map((p) => p.message)).toContain('graph output orphan (id 1000000000) is never produced');
  });
});

describe('stage outputs', () => {
  it('a compiled model is frozen, and traces are reentrant and independent', () => {
    const m = assertCompiles(compileFile('examples/stdit3.sora', { values: goldenConfig('stdit3') }));
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.keymap)).toBe(true);
    expect(Object.isFrozen(m.keymap!.tensors['x_embedder.proj.weight'])).toBe(true);
    expect(() => ((m.keymap!.tensors as Record<string, unknown>)['x'] = 1)).toThrow(TypeError);
    expect('_interp' in m).toBe(false);
    const bytes = (g: IrGraph) => Buffer.from(emitOnnx(g, { weights: 'none' })).toString('base64');
    const a1 = bytes(traceOk(m, 'forward'));
    // another path of the same model in between, then the first again: identical graphs
    const other = traceEntry(m, 'forward', { absent: new Set(['mask', 'x_mask']) });
    expect(other.graph).toBeDefined();
    const a2 = bytes(traceOk(m, 'forward'));
    expect(a2).toBe(a1);
    expect(bytes(other.graph!)).not.toBe(a1);
  });
});
