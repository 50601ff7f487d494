/**
 * The ORT pass (compiler/passes/ort-cpu.ts) on small hand-made graphs: what it merges and what it
 * must leave apart, and on every bundled example at its golden config: the result verifies.
 */
import { describe, expect, it } from 'vitest';
import { traceEntry } from '../../compiler/compile.ts';
import onnxProto from 'onnx-proto';
import { emitOnnx, formatGraph } from '../../compiler/emit/onnx.ts';
import { optimizeForOrt, verifyGraph } from '../../compiler/passes/index.ts';
import type { IrAttr, IrConstant, IrGraph, IrNode, IrValue } from '../../core/ir.ts';
import { goldenConfig } from '../helpers/parity.ts';
import { assertCompiles, compileFile } from '../helpers/model.ts';

let id = 0;
const val = (name: string, shape: number[] = [2]): IrValue => ({ id: id++, name, dtype: 'f32', shape });
const f32c = (xs: number[]): IrConstant => ({ dtype: 'f32', shape: [xs.length], data: new Uint8Array(new Float32Array(xs).buffer) });
const node = (op: string, inputs: IrValue[], outputs: IrValue[], attrs: Record<string, IrAttr> = {}): IrNode => ({ op, inputs, outputs, attrs });
const graph = (inputs: IrValue[], outputs: IrValue[], nodes: IrNode[], constants: [IrValue, IrConstant][] = []): IrGraph => ({
  name: 't',
  inputs,
  outputs,
  nodes,
  constants: new Map(constants),
  weights: [],
  opset: 17,
  metadata: {},
});

describe('optimizeForOrt', () => {
  it('merges equal nodes and equal constants, and the chains built on them', () => {
    const x = val('x');
    const [c1, c2] = [val('c1'), val('c2')];
    const [a1, a2, m1, m2, out] = [val('a1'), val('a2'), val('m1'), val('m2'), val('out')];
    const g = graph([x], [out], [node('Add', [x, c1], [a1]), node('Add', [x, c2], [a2]), node('Mul', [a1, a1], [m1]), node('Mul', [a2, a2], [m2]), node('Sub', [m1, m2], [out])], [
      [c1, f32c([1, 2])],
      [c2, f32c([1, 2])],
    ]);
    const r = optimizeForOrt(g);
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['Add', 'Mul', 'Sub']);
    expect(r.graph.nodes[2]!.inputs).toEqual([m1, m1]);
    expect([...r.graph.constants.keys()]).toEqual([c1]);
    expect(r.removed.merged).toBe(2);
    expect(verifyGraph(r.graph)).toEqual([]);
  });

  it('keeps apart: different attributes, 0 and -0, random draws, a node that makes a graph output', () => {
    const x = val('x');
    const [c0, cm0] = [val('c0'), val('cm0')];
    const vs = Array.from({ length: 8 }, (_, i) => val(`v${i}`));
    const [o1, o2] = [val('o1'), val('o2')];
    const g = graph(
      [x],
      [o1, o2, vs[6]!, vs[7]!],
      [
        node('Add', [x, c0], [vs[0]!]),
        node('Add', [x, cm0], [vs[1]!]),
        node('LeakyRelu', [vs[0]!], [vs[2]!], { alpha: { kind: 'float', value: 0 } }),
        node('LeakyRelu', [vs[0]!], [vs[3]!], { alpha: { kind: 'float', value: -0 } }),
        node('RandomNormalLike', [x], [vs[4]!]),
        node('RandomNormalLike', [x], [vs[5]!]),
        node('Sum', [vs[1]!, vs[2]!, vs[3]!, vs[4]!, vs[5]!], [o1]),
        node('Neg', [x], [o2]),
        node('Neg', [x], [vs[6]!]),
        node('Identity', [x], [vs[7]!]),
      ],
      [
        [c0, f32c([0, 0])],
        [cm0, f32c([-0, -0])],
      ],
    );
    const r = optimizeForOrt(g);
    expect(r.graph.nodes.length).toBe(g.nodes.length);
    expect(r.graph.constants.size).toBe(2);
  });

  it('drops Identity and dead nodes', () => {
    const x = val('x');
    const [i1, d1, out] = [val('i1'), val('d1'), val('out')];
    const g = graph([x], [out], [node('Identity', [x], [i1]), node('Exp', [x], [d1]), node('Neg', [i1], [out])]);
    const r = optimizeForOrt(g);
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['Neg']);
    expect(r.graph.nodes[0]!.inputs).toEqual([x]);
    expect(r.removed).toEqual({ merged: 0, identity: 1, dead: 1 });
  });

  it('writes the tanh GELU cube as Pow(x, 3) (FastGeluFusion), only for that pattern', () => {
    const x = val('x');
    const [k, k2, c1] = [val('k'), val('k2'), val('c1')];
    const [sq, cube, t, sq2, cube2, out, out2] = [val('sq'), val('cube'), val('t'), val('sq2'), val('cube2'), val('out'), val('out2')];
    const coef = (v: number): IrConstant => ({ dtype: 'f32', shape: [], data: new Uint8Array(new Float32Array([v]).buffer) });
    const g = graph(
      [x],
      [out, out2],
      [
        node('Mul', [x, x], [sq]),
        node('Mul', [sq, x], [cube]),
        node('Mul', [k, cube], [t]),
        node('Add', [x, t], [out]),
        // the same cube scaled by another constant: not a GELU, left alone
        node('Mul', [c1, x], [sq2]),
        node('Mul', [sq2, sq2], [cube2]),
        node('Mul', [k2, cube2], [out2]),
      ],
      [
        [k, coef(0.044715)],
        [k2, coef(0.5)],
        [c1, coef(2)],
      ],
    );
    const r = optimizeForOrt(g);
    expect(r.gelus).toBe(1);
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['Pow', 'Mul', 'Add', 'Mul', 'Mul', 'Mul']);
    expect(r.graph.nodes[0]!.inputs[0]).toBe(x);
    expect(verifyGraph(r.graph)).toEqual([]);
  });

  it('fuses a residual Add + LayerNormalization into com.microsoft SkipLayerNormalization, only for that pattern', () => {
    const v3 = (name: string, shape: (number | string)[] = ['B', 4, 8]): IrValue => ({ id: id++, name, dtype: 'f32', shape });
    const [x, y, z] = [v3('x'), v3('y'), v3('z', [1, 1, 8])];
    const [gamma, beta] = [val('gamma', [8]), val('beta', [8])];
    const [s, n, out, s2, n2, dx] = [v3('s'), v3('n'), v3('out'), v3('s2'), v3('n2'), v3('dx')];
    const eps = { epsilon: { kind: 'float', value: 1e-6 } } as const;
    const g = graph(
      [x, y, z],
      [out, n2, dx],
      [
        node('Add', [x, y], [s]),
        node('LayerNormalization', [s, gamma, beta], [n], { axis: { kind: 'int', value: -1 }, ...eps }),
        // the sum has another use (the residual stream): it becomes the fused node's fourth output
        node('Add', [s, n], [out]),
        // broadcast Add: left alone (the kernel's skip must have the input's shape here)
        node('Add', [x, z], [s2]),
        node('LayerNormalization', [s2, gamma, beta], [n2], { axis: { kind: 'int', value: -1 }, ...eps }),
        // a LayerNormalization whose scale is computed is left alone too
        node('Mul', [gamma, gamma], [dx]),
      ],
      [
        [gamma, f32c(Array(8).fill(1))],
        [beta, f32c(Array(8).fill(0))],
      ],
    );
    const r = optimizeForOrt(g);
    expect(r.skipLayerNorms).toBe(1);
    expect(r.graph.nodes.map((m) => (m.domain ? `${m.domain}.${m.op}` : m.op))).toEqual(['com.microsoft.SkipLayerNormalization', 'Add', 'Add', 'LayerNormalization', 'Mul']);
    const sln = r.graph.nodes[0]!;
    expect(sln.inputs).toEqual([x, y, gamma, beta]);
    expect(sln.outputs[0]).toBe(n);
    expect(sln.outputs[3]).toBe(s);
    expect(sln.attrs.epsilon).toEqual({ kind: 'float', value: 1e-6 });
    expect(verifyGraph(r.graph)).toEqual([]);
    // the emitted model imports the contrib domain only when a node uses it
    expect(formatGraph(r.graph)).toContain('com.microsoft.SkipLayerNormalization(');
    const opsets = (g: typeof r.graph) => onnxProto.onnx.ModelProto.decode(emitOnnx(g, { weights: 'none' })).opsetImport.map((o) => ({ domain: o.domain, version: Number(o.version) }));
    const proto = onnxProto.onnx.ModelProto.decode(emitOnnx(r.graph, { weights: 'none' }));
    expect(opsets(r.graph)).toEqual([{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }]);
    expect(proto.graph!.node![0]!.domain).toBe('com.microsoft');
    const plain = optimizeForOrt(graph([x, y], [out], [node('Add', [x, y], [out])]));
    expect(plain.skipLayerNorms).toBe(0);
    expect(opsets(plain.graph)).toEqual([{ domain: '', version: 17 }]);
  });

  for (const ex of ['stdit', 'stdit2', 'stdit3', 'mmdit', 't5', 'sd_vae', 'vae_temporal', 'hunyuan_vae']) {
    it(`${ex}: every entry still verifies after the pass, with fewer nodes`, () => {
      const m = assertCompiles(compileFile(`examples/${ex}.sora`, { values: goldenConfig(ex) }));
      for (const e of m.entries) {
        const g = traceEntry(m, e.name).graph;
        if (!g) continue;
        const r = optimizeForOrt(g);
        expect(verifyGraph(r.graph), `${ex}.${e.name}`).toEqual([]);
        expect(r.graph.nodes.length).toBeLessThanOrEqual(g.nodes.length);
      }
    });
  }
});
