/**
 * emitOnnx writes the ModelProto bytes straight from the IrGraph (compiler/emit/onnx.ts with
 * compiler/emit/proto.ts); they must be exactly what onnx-proto's protobufjs encoder writes for
 * the message the emitter is specified to produce (tests/helpers/model-proto.ts), since sorac's
 * builds are byte-reproducible.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import type { IrConstant, IrGraph, IrNode, IrValue, IrWeight } from '../../core/ir.ts';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { EmitError, emitOnnx, type EmitOptions } from '../../compiler/emit/onnx.ts';
import { InternalError } from '../../core/errors.ts';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { referenceOnnxBytes } from '../helpers/model-proto.ts';
import { lowerForTarget, optimizeForOrt } from '../../compiler/passes/index.ts';

const { onnx } = onnxProto;
const ROOT = join(import.meta.dirname, '..', '..');

function expectSameBytes(g: IrGraph, opts: EmitOptions, what: string): Uint8Array {
  const direct = emitOnnx(g, opts);
  const reference = referenceOnnxBytes(g, opts);
  expect(direct.length, what).toBe(reference.length);
  expect(Buffer.from(direct).equals(Buffer.from(reference)), what).toBe(true);
  return direct;
}

const sizeOf = (w: IrWeight) => (w.value.shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_SIZE[w.value.dtype];
/** Deterministic fake weight bytes. */
const inlineData = (w: IrWeight) => new Uint8Array(sizeOf(w)).map((_, i) => (i * 7 + w.key.length) & 255);

describe('ONNX bytes written from the IR', () => {
  it('are the bytes protobufjs writes, for every entry of every example model (small configs)', () => {
    const small: Record<string, Record<string, unknown>> = { 'stdit3.sora': { depth: 2 }, 'stdit3_v13.sora': { depth: 2 }, 'stdit2.sora': { depth: 2 }, 'stdit.sora': { depth: 2 }, 'mmdit.sora': { depth: 1, depth_single_blocks: 1 }, 't5.sora': { num_layers: 1 } };
    let graphs = 0;
    let contrib = 0;
    for (const f of readdirSync(join(ROOT, 'examples')).filter((x) => x.endsWith('.sora'))) {
      const m = compile({ file: `examples/${f}`, host: fsHost, cwd: ROOT, ...(small[f] ? { config: { values: small[f] } } : {}) });
      if (m.diagnostics.some((d) => d.severity === 'error')) continue; // a pipeline file, or a config key this model lacks
      for (const e of m.entries) {
        const r = traceEntry(m, e.name, {});
        if (!r.graph) continue;
        expectSameBytes(r.graph, { weights: 'none' }, `${f} ${e.name}`);
        // the ORT target's graph: com.microsoft nodes (node domain, a second opset import)
        const ort = optimizeForOrt(lowerForTarget(r.graph, 'cpu').graph).graph;
        expectSameBytes(ort, { weights: 'none' }, `${f} ${e.name} --target ort`);
        if (ort.nodes.some((n) => n.domain === 'com.microsoft')) contrib++;
        graphs++;
        if (f === 'stdit3.sora') {
          // the other weight modes and options on one real model
          const external: EmitOptions['externalData'] = (w) => (w.key.endsWith('bias') ? undefined : { location: 'STDiT3.weights.safetensors', offset: 64 * w.value.id, length: sizeOf(w) });
          expectSameBytes(r.graph, { weights: 'inline', inlineData, producerVersion: '0.1.0' }, `${f} ${e.name} inline`);
          expectSameBytes(r.graph, { weights: 'external', externalData: external, inlineData, valueInfo: false }, `${f} ${e.name} external`);
        }
      }
    }
    expect(graphs).toBeGreaterThanOrEqual(10);
    expect(contrib).toBeGreaterThanOrEqual(3);
  });

  it('are the bytes protobufjs writes for every attribute kind, negative and large ints, odd floats, non-ASCII and ill-formed text, and long messages', () => {
    const g = edgeCaseGraph();
    for (const opts of [
      { weights: 'none', producerVersion: 'v1 — ünïcode ✓' },
      { weights: 'inline', inlineData },
      { weights: 'external', externalData: (w: IrWeight) => (w.key === 'w.small' ? undefined : { location: 'wëights/x.bin', offset: 2 ** 40, length: sizeOf(w) }), inlineData, valueInfo: false },
    ] as const) {
      const bytes = expectSameBytes(g, opts, opts.weights);
      // and protobufjs reads back what was written
      const m = onnx.ModelProto.decode(bytes);
      expect(m.graph?.node?.length).toBe(g.nodes.length + 1); // + the Identity for the weight output
      expect(m.graph?.node?.[1]?.attribute?.find((a) => a.name === 'ints')?.ints?.map(Number)).toEqual([-1, 0, 127, 128, 2 ** 40, -(2 ** 40)]);
    }
  });
});

describe('emitOnnx on malformed IR (tracer bugs: InternalError, no bytes)', () => {
  let id = 100;
  const v = (name: string, shape: IrValue['shape'] = [2], dtype: IrValue['dtype'] = 'f32'): IrValue => ({ id: id++, name, dtype, shape });
  const graph = (nodes: IrNode[], inputs: IrValue[], outputs: IrValue[], extra: Partial<IrGraph> = {}): IrGraph => ({ name: 'g', inputs, outputs, nodes, constants: new Map(), weights: [], opset: 17, metadata: {}, ...extra });
  const node = (op: string, inputs: IrValue[], outputs: IrValue[], attrs: IrNode['attrs'] = {}): IrNode => ({ op, inputs, outputs, attrs });

  it('names the node that reads a value before it is defined, and an output never produced', () => {
    const x = v('x'), a = v('a'), b = v('b');
    expect(() => emitOnnx(graph([node('Relu', [a], [b]), node('Relu', [x], [a])], [x], [b]), { weights: 'none' })).toThrow(/node Relu_0 reads "a" before it is defined/);
    const stray = v('stray');
    expect(() => emitOnnx(graph([node('Relu', [x], [a])], [x], [a, stray]), { weights: 'none' })).toThrow(/graph output "stray" is never produced/);
  });

  it('rejects attribute values of the wrong kind, bad dimensions and constants of the wrong size', () => {
    const x = v('x'), y = v('y');
    const withAttr = (attrs: IrNode['attrs']) => graph([node('Foo', [x], [y], attrs)], [x], [y]);
    expect(() => emitOnnx(withAttr({ k: { kind: 'int', value: 1.5 } }), { weights: 'none' })).toThrow(/attribute k: 1.5 is not an integer/);
    expect(() => emitOnnx(withAttr({ k: { kind: 'ints', value: [1, 2 ** 60] } }), { weights: 'none' })).toThrow(/is not an integer/);
    expect(() => emitOnnx(withAttr({ k: { kind: 'float', value: '1' as unknown as number } }), { weights: 'none' })).toThrow(/attribute k of Foo_0: float expected/);
    expect(() => emitOnnx(withAttr({ t: { kind: 'tensor', value: { dtype: 'f32', shape: [3], data: new Uint8Array(8) } } }), { weights: 'none' })).toThrow(/needs 12 bytes, has 8/);
    const bad = v('bad', [2, -1]);
    expect(() => emitOnnx(graph([node('Relu', [x], [bad])], [x], [bad]), { weights: 'none' })).toThrow(/invalid dimension -1/);
    const empty = v('e', ['']);
    expect(() => emitOnnx(graph([node('Relu', [x], [empty])], [x], [empty]), { weights: 'none' })).toThrow(/empty symbolic dimension/);
    const c = v('c', [2]);
    expect(() => emitOnnx(graph([node('Add', [x, c], [y])], [x], [y], { constants: new Map([[c, { dtype: 'f32', shape: [2], data: new Uint8Array(4) }]]) }), { weights: 'none' })).toThrow(InternalError);
  });

  it('refuses more than ~2 GiB of inline data with EmitError (SORA4002) before writing', () => {
    const x = v('x'), y = v('y', [2 ** 29]), w = v('w.big', [2 ** 29]);
    const g = graph([node('Add', [x, w], [y])], [x], [y], { weights: [{ key: 'w.big', value: w }] });
    const fake = { byteLength: 2 ** 31 } as Uint8Array; // 2 GiB of f32, never read: the check comes first
    expect(() => emitOnnx(g, { weights: 'inline', inlineData: () => fake })).toThrow(EmitError);
  });
});

/** A hand-made graph that exercises every branch of the writer. */
function edgeCaseGraph(): IrGraph {
  let id = 0;
  const v = (name: string, dtype: IrValue['dtype'], shape: IrValue['shape']): IrValue => ({ id: id++, name, dtype, shape });
  const f32 = (xs: number[]): IrConstant => ({ dtype: 'f32', shape: [xs.length], data: new Uint8Array(Float32Array.from(xs).buffer) });
  const x = v('x', 'f32', ['B', 3]);
  const y = v('ÿ_in', 'f32', ['Ñ', 'x'.repeat(130)]);
  const wSmall = v('w.small', 'f32', [2, 3]);
  const wScalar = v('w.scalar', 'f32', []);
  const wEmpty = v('w.empty', 'f32', [0, 4]);
  const wBig = v('w.big', 'f16', [160, 128]); // 40 KiB inline: the graph's length takes 3 bytes
  const c1 = v('c', 'i64', []);
  const c2 = v('c', 'f32', [2]);
  const cLong = v('k'.repeat(140), 'f32', [2]);
  const longName = v('long_' + 'n'.repeat(300), 'f32', ['B', 3]);
  const shortSurrogate = v('a\ud800b', 'f32', ['B', 3]);
  const longSurrogate = v('L'.repeat(50) + '\udc00', 'f32', ['B', 3]);
  const out = v('out', 'f32', ['B', 3]);
  const constants = new Map<IrValue, IrConstant>([
    [c1, { dtype: 'i64', shape: [], data: new Uint8Array(new BigInt64Array([-5n]).buffer) }],
    [c2, f32([1, -2])],
    [cLong, f32([3, 4])],
  ]);
  const node = (op: string, inputs: (IrValue | null)[], outputs: IrValue[], attrs: IrNode['attrs'] = {}, extra: Partial<IrNode> = {}): IrNode => ({ op, inputs, outputs, attrs, ...extra });
  const nodes: IrNode[] = [
    node('Add', [x, c2], [longName], {}, { scope: 'blocks.0.attn', source: { file: 'model.sora', line: 12, col: 5 } }),
    node(
      'Foo',
      [longName, null, wSmall],
      [shortSurrogate],
      {
        ints: { kind: 'ints', value: [-1, 0, 127, 128, 2 ** 40, -(2 ** 40)] },
        empty_ints: { kind: 'ints', value: [] },
        i: { kind: 'int', value: -3 },
        big: { kind: 'int', value: 2 ** 50 },
        f: { kind: 'float', value: 0.1 },
        fs: { kind: 'floats', value: [1.5, -0, 1e-30, Infinity, NaN] },
        empty_floats: { kind: 'floats', value: [] },
        s: { kind: 'string', value: 'x'.repeat(300) },
        su: { kind: 'string', value: 'ü✓ \ud800' },
        t: { kind: 'tensor', value: f32([1, 2, 3]) },
        t0: { kind: 'tensor', value: { dtype: 'i64', shape: [], data: new Uint8Array(8) } },
        ä: { kind: 'int', value: 1 },
      },
      { scope: 'blöcks.1', source: { file: 'mödel.sora', line: 3, col: 10 } },
    ),
    node('Mul', [shortSurrogate, c1], [longSurrogate], {}, { scope: 'only.scope' }),
    node('Sub', [longSurrogate, wScalar], [v('h', 'f32', ['B', 3])], {}, { source: { file: 'x.sora', line: 1, col: 1 } }),
    node('Sub', [longSurrogate, wEmpty, cLong, y], [v('h', 'f32', ['B', 3])], {}, { scope: 'lone\udfff', source: { file: 'p'.repeat(45) + '\ud801', line: 100, col: 2 } }),
    node('Concat', Array.from({ length: 80 }, () => longName), [out], { axis: { kind: 'int', value: 0 } }, { scope: 'cat' }),
  ];
  return {
    name: 'edge ∂',
    inputs: [x, y],
    outputs: [out, { ...wBig, name: 'w_out' }],
    nodes,
    constants,
    weights: [
      { key: 'w.small', value: wSmall },
      { key: 'w.scalar', value: wScalar },
      { key: 'w.empty', value: wEmpty },
      { key: 'w.big', value: wBig },
    ],
    opset: 17,
    metadata: { 'z.last': 'ż', 'a.first': 'x'.repeat(200), 'sorac.entry': 'forward' },
  };
}
