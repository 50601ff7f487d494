/**
 * Property tests on random elementwise graphs with deliberately colliding IR names:
 * deterministic bytes, unique SSA names, initializers <-> weight keys, and onnxruntime results
 * equal to a float64 JS evaluation.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import type { IrGraph, IrValue } from '../../core/ir.ts';
import { loadOrt } from '../../runtime/execution/ort.ts';
import { checkOnnx } from '../helpers/onnx-check.ts';
import { GraphBuilder } from '../helpers/ir-build.ts';

const { onnx } = onnxProto;
const SHAPE = [2, 3];
const N = 6;
const NAMES = ['h', 'x0', 'y', 'w.0', 't', 'out0', ''];
const UNARY = { Neg: (a: number) => -a, Tanh: Math.tanh, Relu: (a: number) => Math.max(0, a), Abs: Math.abs } as const;
const BINARY = { Add: (a: number, b: number) => a + b, Mul: (a: number, b: number) => a * b, Sub: (a: number, b: number) => a - b } as const;

interface Spec {
  nInputs: number;
  weights: number[][];
  consts: number[][];
  steps: { op: string; a: number; b: number; name: number }[];
  outs: number[];
  weightOut: boolean;
}

const vec = fc.array(fc.float({ min: -2, max: 2, noNaN: true, noDefaultInfinity: true }), { minLength: N, maxLength: N });
const specArb: fc.Arbitrary<Spec> = fc.record({
  nInputs: fc.integer({ min: 1, max: 2 }),
  weights: fc.array(vec, { maxLength: 2 }),
  consts: fc.array(vec, { maxLength: 2 }),
  steps: fc.array(
    fc.record({ op: fc.constantFrom(...Object.keys(UNARY), ...Object.keys(BINARY)), a: fc.nat(), b: fc.nat(), name: fc.nat({ max: NAMES.length - 1 }) }),
    { minLength: 1, maxLength: 12 },
  ),
  outs: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }),
  weightOut: fc.boolean(),
});

interface Built {
  graph: IrGraph;
  weightData: Map<string, Float32Array>;
  eval(inputs: Float32Array[]): Map<string, Float64Array>;
}

function build(spec: Spec): Built {
  const g = new GraphBuilder('prop');
  const pool: { v: IrValue; f: (ins: Float32Array[]) => Float64Array }[] = [];
  for (let i = 0; i < spec.nInputs; i++) {
    const v = g.input(`x${i}`, 'f32', SHAPE);
    pool.push({ v, f: (ins) => Float64Array.from(ins[i]!) });
  }
  const weightData = new Map<string, Float32Array>();
  spec.weights.forEach((w, i) => {
    const data = Float32Array.from(w);
    const key = `w.${i}`;
    weightData.set(key, data);
    pool.push({ v: g.weight(key, 'f32', SHAPE), f: () => Float64Array.from(data) });
  });
  spec.consts.forEach((c, i) => {
    const data = Float32Array.from(c);
    pool.push({ v: g.constF32(NAMES[i % NAMES.length] || 'c', SHAPE, Array.from(data)), f: () => Float64Array.from(data) });
  });
  for (const st of spec.steps) {
    const a = pool[st.a % pool.length]!;
    const b = pool[st.b % pool.length]!;
    const name = NAMES[st.name]!;
    if (st.op in UNARY) {
      const fn = UNARY[st.op as keyof typeof UNARY];
      const v = g.op(st.op, [a.v], { name, dtype: 'f32', shape: SHAPE });
      pool.push({ v, f: (ins) => a.f(ins).map((x) => Math.fround(fn(x))) });
    } else {
      const fn = BINARY[st.op as keyof typeof BINARY];
      const v = g.op(st.op, [a.v, b.v], { name, dtype: 'f32', shape: SHAPE });
      pool.push({ v, f: (ins) => { const x = a.f(ins); const y = b.f(ins); return x.map((xi, i) => Math.fround(fn(xi, y[i]!))); } });
    }
  }
  const outFns = new Map<string, (ins: Float32Array[]) => Float64Array>();
  spec.outs.forEach((o, i) => {
    const src = pool[o % pool.length]!;
    const v = g.op('Identity', [src.v], { name: `out${i}`, dtype: 'f32', shape: SHAPE });
    g.output(v);
    outFns.set(`out${i}`, src.f);
  });
  if (spec.weightOut && spec.weights.length) {
    // a weight returned directly: the emitter adds an Identity
    const w = g.weights[0]!.value;
    w.name = 'returned_weight';
    g.output(w);
    outFns.set('returned_weight', () => Float64Array.from(weightData.get('w.0')!));
  }
  return {
    graph: g.build(),
    weightData,
    eval: (ins) => new Map([...outFns].map(([k, f]) => [k, f(ins)])),
  };
}

function inlineOf(b: Built) {
  return (w: { key: string }) => new Uint8Array(b.weightData.get(w.key)!.buffer);
}

function decode(bytes: Uint8Array): O.ModelProto & { graph: O.GraphProto } {
  return onnx.ModelProto.decode(bytes) as O.ModelProto & { graph: O.GraphProto };
}

describe('emitOnnx on random graphs', () => {
  it('deterministic bytes; SSA names unique and defined before use; initializers = weight keys + constants', () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const a = build(spec);
        const bytes = emitOnnx(a.graph, { weights: 'inline', inlineData: inlineOf(a) });
        const again = emitOnnx(build(spec).graph, { weights: 'inline', inlineData: inlineOf(a) });
        expect(Buffer.from(bytes).equals(Buffer.from(again))).toBe(true);
        const g = decode(bytes).graph;
        const defined = new Set<string>([...g.input.map((i) => i.name!), ...g.initializer.map((t) => t.name!)]);
        expect(defined.size).toBe(g.input.length + g.initializer.length);
        for (const n of g.node) {
          for (const i of n.input!) expect(defined.has(i)).toBe(true);
          for (const o of n.output!) {
            expect(defined.has(o)).toBe(false);
            defined.add(o);
          }
        }
        for (const o of g.output) expect(defined.has(o.name!)).toBe(true);
        const weightInits = g.initializer.slice(0, a.graph.weights.length);
        expect(weightInits.map((t) => t.name)).toEqual(a.graph.weights.map((w) => w.key));
        for (const t of weightInits) {
          expect(t.dataType).toBe(1);
          expect(t.dims!.map(Number)).toEqual(SHAPE);
        }
        expect(g.initializer.length).toBe(a.graph.weights.length + a.graph.constants.size);
      }),
      { numRuns: 300 },
    );
  });

  it('onnxruntime results equal a float64 evaluation', async () => {
    const ort = await loadOrt();
    await fc.assert(
      fc.asyncProperty(specArb, fc.array(vec, { minLength: 2, maxLength: 2 }), async (spec, xs) => {
        const b = build(spec);
        const bytes = emitOnnx(b.graph, { weights: 'inline', inlineData: inlineOf(b) });
        const s = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled' });
        const ins = xs.map((x) => Float32Array.from(x));
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
        for (let i = 0; i < spec.nInputs; i++) feeds[`x${i}`] = new ort.Tensor('float32', ins[i]!, SHAPE);
        const res = await s.run(feeds);
        for (const [name, want] of b.eval(ins)) {
          const got = res[name]!.data as Float32Array;
          want.forEach((w, i) => {
            if (Number.isNaN(w)) expect(Number.isNaN(got[i]!)).toBe(true);
            else expect(Math.abs(got[i]! - w)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w)));
          });
        }
        await s.release();
      }),
      { numRuns: 60 },
    );
  });

  it('the ONNX checker accepts a few random graphs', async () => {
    const samples = fc.sample(specArb, { numRuns: 4, seed: 42 });
    for (const spec of samples) {
      const b = build(spec);
      const r = await checkOnnx(emitOnnx(b.graph, { weights: 'inline', inlineData: inlineOf(b) }));
      expect(r.message).toMatch(/^ok/);
    }
  });
});
