/** The micro_batch() declaration builtin: recorded as graph metadata, checked at trace time. */
import { describe, expect, it } from 'vitest';
import { compile, traceEntry } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { emitOnnx } from '../compiler/emit/onnx.ts';
import { declaredMicroBatch } from '../runtime/execution/micro-batch.ts';
import { declaredTiling, planTiling } from '../runtime/execution/tiling.ts';

function trace(body: string, sig = 'x: f32[B, 4, T, H], n: i64[]') {
  const m = compile({ file: 'mb.sora', host: fsHost, rootText: `model M version "1" {\n  config { k: int = 2 }\n  entry forward(${sig}) -> (y: f32[B, 4, T, H]) {\n${body}\n    return x * 2.0\n  }\n}\n` });
  expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return traceEntry(m, 'forward');
}

describe('micro_batch()', () => {
  it('records each declaration in the graph metadata (and the ONNX metadata_props), adds no nodes', () => {
    const plain = trace('');
    const r = trace('    micro_batch("B")\n    micro_batch("T", step=k, out_step=3, out_dim=2, length="n")');
    expect(r.diagnostics).toEqual([]);
    expect(r.graph!.nodes.length).toBe(plain.graph!.nodes.length);
    expect(declaredMicroBatch(r.graph!)).toEqual([
      { axis: 'B', step: 1, out_step: 1 },
      { axis: 'T', step: 2, out_step: 3, out_dim: 2, length: 'n' },
    ]);
    expect(declaredMicroBatch(plain.graph!)).toEqual([]);
    const onnx = Buffer.from(emitOnnx(r.graph!, { weights: 'inline', inlineData: () => new Uint8Array(0) })).toString('latin1');
    expect(onnx).toContain('sorac.micro_batch');
  });
  it.each([
    ['    micro_batch("C")', /"C" is not a dimension named by the entry's inputs/],
    ['    micro_batch("T", step=0)', /step and out_step must be positive/],
    ['    micro_batch("T", length="x")', /length "x" must name a scalar integer input/],
    ['    micro_batch("T")\n    micro_batch("T")', /axis "T" is declared twice/],
    ['    micro_batch(1)', /expected a string/],
  ])('%s is an error', (body, re) => {
    const r = trace(body);
    expect(r.graph).toBeUndefined();
    expect(r.diagnostics.map((d) => d.message).join('\n')).toMatch(re);
  });
});

describe('tile()', () => {
  it('records each declaration (defaults filled in) in the graph metadata, adds no nodes', () => {
    const plain = trace('');
    const r = trace('    tile("T", size=5, stride=3, blend=4, keep=12, threshold=4, first_keep=13, drop=1)\n    tile(["H"], size=4, stride=3, blend=2, keep=6, unsupported="why")');
    expect(r.diagnostics).toEqual([]);
    expect(r.graph!.nodes.length).toBe(plain.graph!.nodes.length);
    expect(declaredTiling(r.graph!)).toEqual([
      { axes: ['T'], size: 5, stride: 3, blend: 4, keep: 12, threshold: 4, first_keep: 13, drop: 1 },
      { axes: ['H'], size: 4, stride: 3, blend: 2, keep: 6, threshold: 4, first_keep: 6, drop: 0, unsupported: 'why' },
    ]);
    expect(planTiling(plain.graph!)).toBeUndefined();
  });
  it.each([
    ['    tile("C", size=2, stride=1, blend=1, keep=1)', /"C" is not a dimension named by the entry's inputs/],
    ['    tile("T", size=2, stride=0, blend=1, keep=1)', /must be positive/],
    ['    tile("T", size=2, stride=1, blend=1, keep=1)\n    tile(["H", "T"], size=2, stride=1, blend=1, keep=1)', /tiled twice/],
    ['    tile("T", size=2, stride=1)', /missing argument "blend"/],
  ])('%s is an error', (body, re) => {
    const r = trace(body);
    expect(r.graph).toBeUndefined();
    expect(r.diagnostics.map((d) => d.message).join('\n')).toMatch(re);
  });
});
