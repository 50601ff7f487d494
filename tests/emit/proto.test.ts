/**
 * compiler/emit/proto.ts writes ModelProto bytes directly; they must be exactly what onnx-proto's
 * protobufjs encoder writes (sorac's builds are byte-reproducible), and anything the direct writer
 * does not cover must fall back to protobufjs rather than be dropped.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { buildModelProto, emitOnnx } from '../../compiler/emit/onnx.ts';
import { encodeModelProto } from '../../compiler/emit/proto.ts';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { sampleGraph } from '../helpers/sample-model.ts';

const { onnx } = onnxProto;
const ROOT = join(import.meta.dirname, '..', '..');
const viaProtobufjs = (m: O.IModelProto) => onnx.ModelProto.encode(m).finish();

describe('direct ModelProto writer', () => {
  it('writes the bytes protobufjs writes for every entry of every example model (small configs)', () => {
    const small: Record<string, Record<string, unknown>> = { 'stdit3.sora': { depth: 2 }, 'stdit3_v13.sora': { depth: 2 }, 'stdit2.sora': { depth: 2 }, 'stdit.sora': { depth: 2 }, 'mmdit.sora': { depth: 1, depth_single_blocks: 1 }, 't5.sora': { num_layers: 1 } };
    let graphs = 0;
    for (const f of readdirSync(join(ROOT, 'examples')).filter((x) => x.endsWith('.sora'))) {
      const m = compile({ file: `examples/${f}`, host: fsHost, cwd: ROOT, ...(small[f] ? { config: { values: small[f] } } : {}) });
      if (m.diagnostics.some((d) => d.severity === 'error')) continue; // a pipeline file, or a config key this model lacks
      for (const e of m.entries) {
        const r = traceEntry(m, e.name, {});
        if (!r.graph) continue;
        const proto = buildModelProto(r.graph, { weights: 'none' });
        const direct = encodeModelProto(proto);
        expect(direct, `${f} ${e.name}`).toBeDefined();
        expect(Buffer.from(direct!).equals(Buffer.from(viaProtobufjs(proto))), `${f} ${e.name}`).toBe(true);
        graphs++;
      }
    }
    expect(graphs).toBeGreaterThanOrEqual(10);
  });

  it('matches protobufjs on inline weights, negative ints, floats, non-ASCII text and multi-byte tags', () => {
    const g = sampleGraph();
    const proto = buildModelProto(g, { weights: 'none', producerVersion: 'v1 — ünïcode ✓' });
    proto.graph!.initializer!.push(
      { name: 'w_inline', dims: [2, 3], dataType: 1, rawData: new Uint8Array(24).map((_, i) => i * 11) },
      { name: 'w_ext', dims: [4], dataType: 1, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: 'model.safetensors' }, { key: 'offset', value: '128' }, { key: 'length', value: '16' }] },
    );
    proto.graph!.node!.push({
      name: 'extra_é',
      opType: 'Foo',
      input: ['', 'a'],
      output: ['b'],
      attribute: [
        { name: 'ints', type: onnx.AttributeProto.AttributeType.INTS, ints: [-1, 0, 127, 128, 2 ** 40, -(2 ** 40)] },
        { name: 'i', type: onnx.AttributeProto.AttributeType.INT, i: -3 },
        { name: 'f', type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.1 },
        { name: 'fs', type: onnx.AttributeProto.AttributeType.FLOATS, floats: [1.5, -0, 1e-30, Infinity] },
        { name: 'empty', type: onnx.AttributeProto.AttributeType.INTS, ints: [] },
        { name: 's', type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode('x'.repeat(300)) },
      ],
      docString: '𝔘 and ü',
    });
    const direct = encodeModelProto(proto);
    expect(direct).toBeDefined();
    expect(Buffer.from(direct!).equals(Buffer.from(viaProtobufjs(proto)))).toBe(true);
    // emitOnnx (which uses the direct writer) round-trips through protobufjs' decoder
    const bytes = emitOnnx(g, { weights: 'none' });
    expect(onnx.ModelProto.decode(bytes).graph?.node?.length).toBe(g.nodes.length);
  });

  it('leaves a field it does not cover, an unsafe integer or a lone surrogate to protobufjs', () => {
    const base = buildModelProto(sampleGraph(), { weights: 'none' });
    const withDomain: O.IModelProto = { ...base, graph: { ...base.graph!, node: base.graph!.node!.map((n, i) => (i === 0 ? { ...n, domain: 'com.microsoft' } : n)) } };
    // NodeProto.domain is covered; a field that is not (ModelProto.functions) gives undefined
    expect(Buffer.from(encodeModelProto(withDomain)!).equals(Buffer.from(viaProtobufjs(withDomain)))).toBe(true);
    expect(encodeModelProto({ ...base, functions: [{ name: 'f' }] })).toBeUndefined();
    expect(encodeModelProto({ ...base, irVersion: 2 ** 60 })).toBeUndefined();
    expect(encodeModelProto({ ...base, docString: 'a\ud800b' })).toBeUndefined();
  });
});
