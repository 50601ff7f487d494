import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import { emitOnnx, formatGraph, irVersionForOpset } from '../../compiler/emit/onnx.ts';
import { InternalError } from '../../core/errors.ts';
import { openSafetensors } from '../../runtime/formats/safetensors.ts';
import { writeSafetensors } from '../../runtime/formats/safetensors-writer.ts';
import { checkOnnx, probeChecker } from '../helpers/onnx-check.ts';
import { GraphBuilder, int } from '../helpers/ir-build.ts';
import { type ProjDtype, sampleGraph, sampleWeights } from '../helpers/sample-model.ts';

import type { onnx as O } from 'onnx-proto';

const { onnx } = onnxProto;

/** Decode with the graph typed as a full message (fields always present after decode). */
function decode(bytes: Uint8Array): O.ModelProto & { graph: O.GraphProto } {
  return onnx.ModelProto.decode(bytes) as O.ModelProto & { graph: O.GraphProto };
}

function inline(projDtype: ProjDtype = 'bf16') {
  const w = sampleWeights(projDtype);
  return (x: { key: string }) => w.get(x.key)!.data;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sorac-emit-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('emitOnnx', () => {
  for (const projDtype of ['f32', 'f16', 'bf16'] as const) {
    it(`passes the ONNX checker with inline ${projDtype} weights`, async () => {
      const bytes = emitOnnx(sampleGraph({ projDtype }), { weights: 'inline', inlineData: inline(projDtype) });
      const r = await checkOnnx(bytes);
      expect(r.message).toMatch(/^ok 8 17/);
    });
  }

  it('writes IR 8 / opset 17, producer, sorted metadata, doc strings, typed outputs with dim_param', () => {
    const m = decode(emitOnnx(sampleGraph(), { weights: 'inline', inlineData: inline() }));
    expect(Number(m.irVersion)).toBe(8);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(m.producerName).toBe('sorac');
    expect(m.metadataProps.map((p) => p.key)).toEqual(['sorac.contract', 'sorac.entry', 'sorac.model']);
    const g = m.graph;
    expect(g.input.map((i) => i.name)).toEqual(['x']);
    expect(g.output.map((o) => o.name)).toEqual(['y', 'y16']);
    const dims = g.output[0]!.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
    expect(dims).toEqual(['B', 'N', 8]);
    expect(g.output[1]!.type!.tensorType!.elemType).toBe(10);
    expect(g.initializer.slice(0, 6).map((t) => t.name)).toEqual(['patch.weight', 'patch.bias', 'proj.weight', 'proj.bias', 'norm.weight', 'norm.bias']);
    expect(g.initializer[2]!.dataType).toBe(16);
    expect(g.node[0]!.name).toBe('patch/Conv_0');
    expect(g.node[0]!.docString).toBe('sample.sora:3:5 in patch');
    // duplicate IR names ("h", "g") made unique deterministically
    const outs = g.node.flatMap((n) => n.output);
    expect(new Set(outs).size).toBe(outs.length);
    expect(outs.slice(0, 3)).toEqual(['h', 'h__1', 'h__2']);
  });

  it('is deterministic: same graph -> identical bytes, independent of construction', () => {
    const a = emitOnnx(sampleGraph(), { weights: 'inline', inlineData: inline() });
    const b = emitOnnx(sampleGraph(), { weights: 'inline', inlineData: inline() });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const g = sampleGraph();
    const c = emitOnnx(g, { weights: 'inline', inlineData: inline() });
    const d = emitOnnx(g, { weights: 'inline', inlineData: inline() });
    expect(Buffer.from(c).equals(Buffer.from(d))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(true);
  });

  it('metadata order does not change bytes', () => {
    const g1 = sampleGraph();
    const g2 = { ...g1, metadata: Object.fromEntries(Object.entries(g1.metadata).reverse()) };
    expect(Buffer.from(emitOnnx(g1, { weights: 'none' })).equals(Buffer.from(emitOnnx(g2, { weights: 'none' })))).toBe(true);
  });

  it('external data into a safetensors file passes the checker', async () => {
    const w = sampleWeights('bf16');
    const st = join(dir, 'w.safetensors');
    await writeSafetensors(st, w);
    const f = await openSafetensors(st);
    await f.close();
    const bytes = emitOnnx(sampleGraph(), {
      weights: 'external',
      externalData: (x) => {
        const t = f.tensors.get(x.key)!;
        return { location: 'w.safetensors', offset: t.offset, length: t.byteLength };
      },
    });
    const m = decode(bytes);
    const init = m.graph.initializer[0]!;
    expect(init.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
    expect(init.externalData!.map((e) => e.key)).toEqual(['location', 'offset', 'length']);
    expect(init.rawData?.length ?? 0).toBe(0);
    expect((await checkOnnx(bytes, { 'w.safetensors': { path: st } })).message).toMatch(/^ok/);
    // and without the file next to it the checker complains (it really reads the external data)
    expect((await checkOnnx(bytes)).ok).toBe(false);
  });

  it("external mode falls back to inlineData when externalData returns undefined", () => {
    const w = sampleWeights('bf16');
    const bytes = emitOnnx(sampleGraph(), {
      weights: 'external',
      externalData: (x) => (x.key === 'proj.weight' ? undefined : { location: 'w.safetensors', offset: 0, length: w.get(x.key)!.data.byteLength }),
      inlineData: (x) => w.get(x.key)!.data,
    });
    const inits = decode(bytes).graph.initializer;
    expect(inits.find((t) => t.name === 'proj.weight')!.rawData!.length).toBe(128);
    expect(inits.find((t) => t.name === 'patch.weight')!.dataLocation).toBe(1);
  });

  it('always inlines empty weights (ORT reads external length 0 as "to end of file")', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'f32', [0, 4]);
    const e = g.weight('empty', 'f32', [0, 4]);
    g.output(g.op('Add', [x, e], { name: 'y', dtype: 'f32', shape: [0, 4] }));
    const bytes = emitOnnx(g.build(), { weights: 'external', externalData: () => ({ location: 'w.bin', offset: 0, length: 0 }) });
    const init = decode(bytes).graph.initializer[0]!;
    expect(init.dataLocation ?? 0).toBe(0);
    expect((await checkOnnx(bytes)).message).toMatch(/^ok/);
  });

  it("weights: 'none' turns weights into graph inputs named by key (checker passes)", async () => {
    const bytes = emitOnnx(sampleGraph(), { weights: 'none' });
    const g = decode(bytes).graph;
    expect(g.input.map((i) => i.name)).toEqual(['x', 'patch.weight', 'patch.bias', 'proj.weight', 'proj.bias', 'norm.weight', 'norm.bias']);
    expect(g.initializer.every((t) => t.name!.startsWith('c_') || t.name === 'shape')).toBe(true);
    expect((await checkOnnx(bytes)).message).toMatch(/^ok/);
  });

  it('pairs IR versions with opsets', () => {
    expect([13, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26].map(irVersionForOpset)).toEqual([8, 8, 8, 9, 9, 10, 10, 11, 12, 13, 13]);
    const m = decode(emitOnnx(sampleGraph({ opset: 20 }), { weights: 'none' }));
    expect(Number(m.irVersion)).toBe(9);
  });

  it('rejects malformed IR with InternalError', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'f32', [2]);
    g.input('a', 'f32', [2]);
    g.output(g.op('Relu', [a], { name: 'y', dtype: 'f32', shape: [2] }));
    expect(() => emitOnnx(g.build(), { weights: 'none' })).toThrow(InternalError);
    expect(() => emitOnnx(g.build(), { weights: 'none' })).toThrow(/duplicate graph input name "a"/);

    const h = new GraphBuilder();
    const x = h.input('x', 'f32', [2]);
    const w = h.weight('w', 'f32', [2]);
    h.output(h.op('Add', [x, w], { name: 'y', dtype: 'f32', shape: [2] }));
    expect(() => emitOnnx(h.build(), { weights: 'inline', inlineData: () => new Uint8Array(4) })).toThrow(/inline data for "w": 4 bytes, but f32\[2\] needs 8/);
    expect(() => emitOnnx(h.build(), { weights: 'external', externalData: () => ({ location: '/abs/w', offset: 0, length: 8 }) })).toThrow(/relative/);
  });

  it('gives outputs that are weights or constants an Identity; rejects returning an input unchanged', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'f32', [2]);
    const w = g.weight('blocks.0.w', 'f32', [2]);
    w.name = 'w_out';
    const c = g.constF32('c_out', [2], [1, 2]);
    g.output(g.op('Add', [x, w], { name: 'y', dtype: 'f32', shape: [2] }));
    g.output(w);
    g.output(c);
    const bytes = emitOnnx(g.build(), { weights: 'inline', inlineData: () => new Uint8Array(8) });
    const m = decode(bytes).graph;
    expect(m.output.map((o) => o.name)).toEqual(['y', 'w_out', 'c_out']);
    expect(m.node.slice(1).map((n) => [n.opType, n.input![0], n.output![0]])).toEqual([
      ['Identity', 'blocks.0.w', 'w_out'],
      ['Identity', 'c_out__1', 'c_out'],
    ]);
    expect((await checkOnnx(bytes)).message).toMatch(/^ok/);
    expect(formatGraph(g.build())).toContain('%w_out: f32[2] = Identity(%blocks.0.w)');

    const h = new GraphBuilder();
    h.output(h.input('x', 'f32', [2]));
    expect(() => emitOnnx(h.build(), { weights: 'none' })).toThrow(/graph output "x" is the graph input of the same name, unchanged/);
  });

  it('emits multi-output nodes (Split at opset 17 with a split input)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'f32', ['B', 6]);
    const sizes = g.constI64('sizes', [2], [2, 4]);
    const a = g.value('a', 'f32', ['B', 2]);
    const b = g.value('b', 'f32', ['B', 4]);
    g.nodes.push({ op: 'Split', inputs: [x, sizes], outputs: [a, b], attrs: { axis: int(1) } });
    g.output(g.op('Relu', [a], { name: 'ra', dtype: 'f32', shape: ['B', 2] }));
    g.output(g.op('Relu', [b], { name: 'rb', dtype: 'f32', shape: ['B', 4] }));
    const bytes = emitOnnx(g.build(), { weights: 'none' });
    expect(decode(bytes).graph.node[0]!.output).toEqual(['a', 'b']);
    expect((await checkOnnx(bytes)).message).toMatch(/^ok/);
  });

  it('passes the checker for optional (empty) inputs and symbolic dims, with value_info off', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'f32', ['batch', 'seq', 16]);
    const sl = g.constI64('starts', [1], [0]);
    const se = g.constI64('ends', [1], [8]);
    const ax = g.constI64('axes', [1], [2]);
    const s = g.op('Slice', [x, sl, se, ax, null], { name: 's', dtype: 'f32', shape: ['batch', 'seq', 8] });
    const c = g.op('Clip', [s, null, null], { name: 'c', dtype: 'f32', shape: ['batch', 'seq', 8] });
    g.output(g.op('Cast', [c], { name: 'out', dtype: 'f16', shape: ['batch', 'seq', 8] }, { to: int(10) }));
    const bytes = emitOnnx(g.build(), { weights: 'none', valueInfo: false });
    expect(decode(bytes).graph.node[0]!.input).toEqual(['x', 'starts', 'ends', 'axes', '']);
    expect((await checkOnnx(bytes)).message).toMatch(/^ok/);
  });

  it('the checker rejects a shape the tracer got wrong (value_info is checked)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'f32', [2, 3]);
    const t = g.op('Transpose', [x], { name: 't', dtype: 'f32', shape: [2, 3] }, { perm: { kind: 'ints', value: [1, 0] } });
    g.output(g.op('Relu', [t], { name: 'y', dtype: 'f32', shape: [2, 3] }));
    const r = await checkOnnx(emitOnnx(g.build(), { weights: 'none' }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/Inferred shape and existing shape differ/);
  });
});

describe('onnx-check helper', () => {
  it('fails loudly (never skips) when the interpreter cannot import onnx', async () => {
    await expect(probeChecker('/nonexistent/python3')).rejects.toThrow(/ONNX checker unavailable: .*\n.*apt-get install -y python3-onnx/);
  });
});

describe('formatGraph', () => {
  it('prints one line per node (golden)', () => {
    expect(formatGraph(sampleGraph())).toMatchInlineSnapshot(`
      "graph sample opset 17
      meta   sorac.contract = "sha256:0000"
      meta   sorac.entry = "forward"
      meta   sorac.model = "sample"
      input  x: f32[B,4,T,H,W]
      weight patch.weight: f32[8,4,1,2,2]
      weight patch.bias: f32[8]
      weight proj.weight: bf16[8,8]
      weight proj.bias: f32[8]
      weight norm.weight: f32[8]
      weight norm.bias: f32[8]
      const  shape: i64[3] = [0,8,-1]
      const  c_0044715: f32[] = [0.044714998453855515]
      const  c_sqrt2pi: f32[] = [0.7978845834732056]
      const  c_one: f32[] = [1]
      const  c_half: f32[] = [0.5]
      %h: f32[B,8,T,H/2,W/2] = Conv(%x, %patch.weight, %patch.bias) {kernel_shape=[1,2,2], strides=[1,2,2]}  # sample.sora:3:5 in patch
      %h__1: f32[B,8,N] = Reshape(%h, %shape)  # sample.sora:4:5
      %h__2: f32[B,N,8] = Transpose(%h__1) {perm=[0,2,1]}  # sample.sora:4:5
      %proj_w_f32: f32[8,8] = Cast(%proj.weight) {to=1}  # sample.sora:5:5 in proj
      %h__3: f32[B,N,8] = MatMul(%h__2, %proj_w_f32)  # sample.sora:5:5 in proj
      %h__4: f32[B,N,8] = Add(%h__3, %proj.bias)  # sample.sora:5:5 in proj
      %h__5: f32[B,N,8] = LayerNormalization(%h__4, %norm.weight, %norm.bias) {axis=-1, epsilon=0.00001}  # sample.sora:6:5 in norm
      %g: f32[B,N,8] = Mul(%h__5, %h__5)  # sample.sora:7:5
      %g__1: f32[B,N,8] = Mul(%g, %h__5)  # sample.sora:7:5
      %g__2: f32[B,N,8] = Mul(%g__1, %c_0044715)  # sample.sora:7:5
      %g__3: f32[B,N,8] = Add(%h__5, %g__2)  # sample.sora:7:5
      %g__4: f32[B,N,8] = Mul(%g__3, %c_sqrt2pi)  # sample.sora:7:5
      %g__5: f32[B,N,8] = Tanh(%g__4)  # sample.sora:7:5
      %g__6: f32[B,N,8] = Add(%g__5, %c_one)  # sample.sora:7:5
      %g__7: f32[B,N,8] = Mul(%h__5, %g__6)  # sample.sora:7:5
      %g__8: f32[B,N,8] = Mul(%g__7, %c_half)  # sample.sora:7:5
      %y: f32[B,N,8] = Softmax(%g__8) {axis=-1}  # sample.sora:8:5
      %y16: f16[B,N,8] = Cast(%y) {to=10}  # sample.sora:9:5
      output y: f32[B,N,8]
      output y16: f16[B,N,8]
      "
    `);
  });
});
