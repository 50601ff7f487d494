/**
 * Replaying repeated module calls (Interp.replays, GraphBuilder.replay): tracing the second call of a
 * kind records what it does to the graph, and every later call of that kind redoes the recording with
 * its own weights, inputs, ids and names. The graph must be the one tracing every call gives, byte for
 * byte: on every bundled example at its defaults and at every golden config (the parity tests then
 * check the replayed graphs' numbers against the upstream code), under other dtype policies, and on
 * sources made to hit the cases where a replay must step aside.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CompiledModel, traceEntry } from '../../compiler/compile.ts';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import { GraphBuilder } from '../../compiler/graph.ts';
import { GOLDEN, dirConfig, goldenConfig } from '../helpers/parity.ts';
import { assertCompiles, compileFile, compileSource } from '../helpers/model.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';

const EXTRA = join(import.meta.dirname, '..', 'fixtures', 'golden-extra');

let replayed = 0;
let declined = 0;
const spy = () => {
  const orig = GraphBuilder.prototype.replay;
  return vi.spyOn(GraphBuilder.prototype, 'replay').mockImplementation(function (this: GraphBuilder, ...args: Parameters<GraphBuilder['replay']>) {
    const r = orig.apply(this, args);
    if (r) replayed++;
    else declined++;
    return r;
  });
};
afterEach(() => {
  vi.restoreAllMocks();
  replayed = 0;
  declined = 0;
});

/** Every entry traced both ways: emitted bytes, casts and annotations equal; returns how many calls were replayed. */
function expectSameGraphs(m: CompiledModel, absent: ReadonlySet<string> = new Set()): number {
  const mocked = spy();
  let total = 0;
  for (const e of m.entries) {
    const full = traceEntry(m, e.name, { replay: false, absent });
    replayed = 0;
    const fast = traceEntry(m, e.name, { absent });
    total += replayed;
    expect(fast.diagnostics).toEqual(full.diagnostics);
    if (!full.graph) {
      expect(fast.graph).toBeUndefined();
      continue;
    }
    const a = emitOnnx(full.graph, { weights: 'none' });
    const b = emitOnnx(fast.graph!, { weights: 'none' });
    expect(Buffer.from(b).equals(Buffer.from(a)), `${m.modelName}.${e.name}: replayed graph differs from the traced one`).toBe(true);
    expect(fast.graph!.casts).toEqual(full.graph.casts);
    expect(fast.graph!.metadata).toEqual(full.graph.metadata);
  }
  mocked.mockRestore();
  return total;
}

const examples = readdirSync('examples').filter((f) => f.endsWith('.sora')).map((f) => f.replace(/\.sora$/, '')).sort();

describe('replayed module calls give the traced graph, byte for byte', () => {
  for (const ex of examples) {
    it(`${ex} at its defaults`, () => {
      expectSameGraphs(assertCompiles(compileFile(`examples/${ex}.sora`)));
    });
  }

  const cases: { name: string; file: string; config: Record<string, unknown> }[] = [];
  for (const ex of examples) {
    if (existsSync(join(GOLDEN, ex, 'a', 'meta.json'))) cases.push({ name: `${ex} golden a`, file: `examples/${ex}.sora`, config: ex === 'vae_v13' ? v13Config() : goldenConfig(ex) });
    const extra = join(EXTRA, ex);
    if (existsSync(extra))
      for (const c of readdirSync(extra).sort()) if (existsSync(join(extra, c, 'meta.json'))) cases.push({ name: `${ex} ${c}`, file: `examples/${ex}.sora`, config: dirConfig(join(extra, c)) });
  }
  for (const c of cases) {
    it(`${c.name}`, () => {
      expectSameGraphs(assertCompiles(compileFile(c.file, { values: c.config })));
    });
  }

  it('the tiny pipeline components', () => {
    const dir = 'examples/tiny-pipeline';
    const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.sora') && !f.includes('pipeline.sora'));
    for (const f of files) expectSameGraphs(assertCompiles(compileFile(join(dir, f))));
  });

  it('STDiT3-XL/2 replays its repeated blocks (26 of 28 spatial, 26 of 28 temporal), with and without the mask', () => {
    const m = assertCompiles(compileFile('examples/stdit3.sora'));
    const n = expectSameGraphs(m, new Set(['x_mask']));
    expect(n).toBeGreaterThanOrEqual(52);
    expectSameGraphs(m);
  });

  it('under other dtype policies (bf16 compute with its casts, f16 params)', () => {
    for (const dtype of [{ compute: 'bf16' }, { params: 'f16', compute: 'f16' }] as Record<string, string>[]) {
      const m = assertCompiles(compileFile('examples/stdit3.sora', { values: { depth: 4 }, dtype }));
      expect(expectSameGraphs(m)).toBeGreaterThan(0);
      const g = traceEntry(m, 'forward').graph!;
      expect(g.casts!.length).toBeGreaterThan(0);
    }
  });

  it('with a per-module dtype rule (an island) every call is traced', () => {
    const src = SRC('    return x + fc(x)').replace('  config {', '  dtype {\n    compute: bf16\n    f32: [softmax, "blocks.1"]\n  }\n  config {');
    const m = assertCompiles(compileSource(src, 'island.sora'));
    expect(expectSameGraphs(m)).toBe(0);
    expect(traceEntry(m, 'forward').graph!.casts!.some((c) => c.scope === 'blocks.1')).toBe(true);
  });
});

const SRC = (body: string) => `import { Linear } from "std/nn"
module Block(dim: int) {
  fc = Linear(dim, dim)
  fn forward(x: [B, N, dim]) -> [B, N, dim] {
${body}
  }
}
model M {
  config { dim: int = 8, depth: int = 5 }
  blocks = [Block(dim) for i in range(depth)]
  entry forward(x: f32[B, N, dim]) -> (y: f32[B, N, dim]) {
    for b in blocks {
      x = b(x)
    }
    return x
  }
}
`;

describe('calls a replay must not redo as recorded', () => {
  it('a recording that binds a new symbol is never replayed, and nothing changes', () => {
    const g = new GraphBuilder('t', 17);
    const x = g.input('x', 'f32', ['B', 4]);
    g.bindSymbol('B', { input: x, axis: 0, divisor: 1, offset: 0 });
    g.scope = 'blocks.1';
    const mark = g.beginRecording();
    const y = g.op1('Relu', [x], 'f32', ['B', 4]);
    g.bindSymbol('K', { input: y, axis: 1, divisor: 1, offset: 0 });
    const tape = g.endRecording(mark, 'blocks.1', [y]);
    expect(tape.unreplayable).toBe('new symbol K');
    const n = g.nodes.length;
    expect(g.replay(tape, new Map([[x, x]]), 'blocks.2')).toBeUndefined();
    expect(g.nodes.length).toBe(n);
  });

  it('a replay redoes the recorded nodes with the new weights, scopes, ids and names, or steps aside whole', () => {
    const g = new GraphBuilder('t', 17);
    const x = g.input('x', 'f32', ['B', 4]);
    g.bindSymbol('B', { input: x, axis: 0, divisor: 1, offset: 0 });
    const call = (path: string, input: typeof x) => {
      g.scope = path;
      const w = g.weight(`${path}.w`, 'f32', [4, 4]);
      const s = g.constI64([-1, 4]);
      const h = g.op1('MatMul', [input, w], 'f32', ['B', 4]);
      g.recordCast(h, 'f32', 'f32', `${path}.w: storage`);
      return g.op1('Reshape', [h, s], 'f32', ['B', 4]);
    };
    const a = call('blocks.0', x);
    const mark = g.beginRecording();
    const b = call('blocks.1', a);
    const tape = g.endRecording(mark, 'blocks.1', [b]);
    expect(tape.unreplayable).toBeUndefined();
    expect([...tape.free]).toEqual([a]);
    // the input the recording used must be given
    expect(g.replay(tape, new Map(), 'blocks.2')).toBeUndefined();
    const before = g.nodes.length;
    const m = g.replay(tape, new Map([[a, b]]), 'blocks.2')!;
    const c = m(b);
    expect(g.nodes.length).toBe(before + 2);
    const [mm, rs] = g.nodes.slice(before);
    expect(mm!.op).toBe('MatMul');
    expect(mm!.inputs[0]).toBe(b);
    expect(mm!.inputs[1]!.name).toBe('blocks.2.w');
    expect(mm!.scope).toBe('blocks.2');
    expect(mm!.outputs[0]!.name).toBe(`blocks.2/v${mm!.outputs[0]!.id}`);
    expect(rs!.outputs[0]).toBe(c);
    expect(g.weights.map((w) => w.key)).toEqual(['blocks.0.w', 'blocks.1.w', 'blocks.2.w']);
    expect(g.casts.map((k) => `${k.scope} ${k.reason}`)).toEqual(['blocks.0 blocks.0.w: storage', 'blocks.1 blocks.1.w: storage', 'blocks.2 blocks.2.w: storage']);
    // a second replay for the same path would create the weight twice: it steps aside
    const n = g.nodes.length;
    expect(g.replay(tape, new Map([[a, c]]), 'blocks.2')).toBeUndefined();
    expect(g.nodes.length).toBe(n);
  });

  it('a block whose shapes change from call to call is keyed apart', () => {
    const src = `import { Linear } from "std/nn"
module Down(dim: int) {
  fc = Linear(dim, dim)
  fn forward(x: [B, N, dim]) -> [B, _, dim] {
    return fc(x)[:, 0:N-1, :]
  }
}
model M {
  config { dim: int = 8 }
  blocks = [Down(dim) for i in range(6)]
  entry forward(x: f32[B, 16, dim]) -> (y: f32[B, 10, dim]) {
    for b in blocks {
      x = b(x)
    }
    return x
  }
}
`;
    const m = assertCompiles(compileSource(src, 'down.sora'));
    expect(expectSameGraphs(m)).toBe(0);
  });

  it('repeated blocks with residuals, shared shape vectors and reshapes replay and match', () => {
    const m = assertCompiles(compileSource(SRC('    let h = reshape(fc(x), [B * N, dim])\n    return x + reshape(h, [B, N, dim])'), 'reshape.sora'));
    expect(expectSameGraphs(m)).toBe(3);
  });
});
