/**
 * The dtype policy: mixed precision declared once, checked at compile time, enforced at run time.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { compile, traceEntry } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { f32ToBf16 } from '../compiler/graph.ts';
import { run, ModelError } from '../api/run.ts';
import { writeSafetensors } from '../runtime/formats/safetensors-writer.ts';
import { emulateBf16 } from '../compiler/passes/cpu-bf16.ts';
import { main } from '../cli/main.ts';
import { memoryIO } from '../cli/io.ts';
import { checkOnnxFile } from './helpers/onnx-check.ts';
import { GOLDEN } from './helpers/parity.ts';

const { onnx } = onnxProto;

// A conv patch-embed model whose weights are stored in bf16 (the classic "Input type
// (torch.FloatTensor) and weight type (BFloat16) should be the same" situation).
const model = (inputs: 'cast' | 'exact') => `
import { Conv3d } from "std/nn"
model Embed version "1" {
  config {
    cin: int = 4
    dim: int = 8
  }
  dtype {
    params: bf16
    compute: bf16
    inputs: ${inputs}
    outputs: f32
  }
  proj = Conv3d(cin, dim, [1, 2, 2], stride=[1, 2, 2])
  entry forward(x: [B, cin, T, H, W]) -> (y: [B, dim, T, ceil_div(H, 2), ceil_div(W, 2)]) {
    return proj(pad_to_multiple(x, [1, 2, 2]))
  }
}
`;

async function bf16Weights(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sorac-dtype-'));
  const w = new Uint16Array(8 * 4 * 1 * 2 * 2).map((_, i) => f32ToBf16(Math.sin(i) * 0.3));
  const b = new Uint16Array(8).map((_, i) => f32ToBf16(i * 0.01));
  const p = join(dir, 'w.safetensors');
  await writeSafetensors(p, new Map([
    ['proj.weight', { dtype: 'bf16', shape: [8, 4, 1, 2, 2], data: new Uint8Array(w.buffer) }],
    ['proj.bias', { dtype: 'bf16', shape: [8], data: new Uint8Array(b.buffer) }],
  ]) as never);
  return p;
}

const x = { dtype: 'f32' as const, shape: [1, 4, 2, 5, 6], data: new Float32Array(240).map((_, i) => Math.cos(i)) };

describe('the classic bf16 failure', () => {
  it('inputs: cast — an f32 input reaches bf16 weights and runs (the input is cast in the graph)', async () => {
    const m = compile({ file: 'embed.sora', rootText: model('cast'), host: fsHost });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const notes: string[] = [];
    const out = await run(m, { weights: await bf16Weights(), inputs: { x }, device: 'cpu', onInfo: (s) => notes.push(s) });
    const y = out.get('y')!;
    expect(y.dtype).toBe('f32');
    expect(y.shape).toEqual([1, 8, 2, 3, 3]);
    expect(Array.from(y.data as Float32Array).every(Number.isFinite)).toBe(true);
    expect(notes.filter((n) => /bf16/.test(n))).toHaveLength(1);
  });

  it('inputs: exact — the f32 input is rejected with a clear error before any compute', async () => {
    const m = compile({ file: 'embed.sora', rootText: model('exact'), host: fsHost });
    const tr = traceEntry(m, 'forward');
    expect(tr.graph!.inputs[0]!.dtype).toBe('bf16');
    const err = await run(m, { weights: await bf16Weights(), inputs: { x }, device: 'cpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/x/);
    expect(String(err.message)).toMatch(/bf16/);
    expect(String(err.message)).toMatch(/f32/);
  });

  it('refuses lossy load conversions unless asked (f32 checkpoint into bf16 storage)', async () => {
    const m = compile({ file: 'embed.sora', rootText: model('cast'), host: fsHost });
    const dir = mkdtempSync(join(tmpdir(), 'sorac-dtype-'));
    const p = join(dir, 'w32.safetensors');
    await writeSafetensors(p, new Map([
      ['proj.weight', { dtype: 'f32', shape: [8, 4, 1, 2, 2], data: new Uint8Array(new Float32Array(128).fill(0.1).buffer) }],
      ['proj.bias', { dtype: 'f32', shape: [8], data: new Uint8Array(new Float32Array(8).buffer) }],
    ]) as never);
    const err = await run(m, { weights: p, inputs: { x }, device: 'cpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toMatch(/narrow 2 tensor/);
    const ok = await run(m, { weights: p, inputs: { x }, device: 'cpu', allowLossy: true });
    expect(ok.get('y')!.shape).toEqual([1, 8, 2, 3, 3]);
  });
});

describe('--explain-dtypes and emitted reduced-precision graphs', () => {
  const G = join(GOLDEN, 'stdit3', 'a');
  for (const dt of ['bf16', 'f16'] as const) {
    it(`${dt} STDiT3 graph passes the ONNX checker and its casts are exactly the explained ones`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `sorac-${dt}-`));
      const io = memoryIO();
      const code = await main(['build', 'examples/stdit3.sora', '-c', join(G, 'config.json'), '-w', join(G, 'model.bf16.safetensors'), '-o', dir, '--dtype', `compute=${dt}`, '--dtype', `params=${dt}`, '--explain-dtypes', '--json'], io);
      expect(code, io.err).toBe(0);
      const j = JSON.parse(io.out);
      const onnxFile = readdirSync(dir).find((f) => f.endsWith('.onnx'))!;
      const r = await checkOnnxFile(join(dir, onnxFile));
      expect(r.ok, r.message).toBe(true);
      // every float->float Cast node in the emitted graph is one the explanation lists, and vice versa
      const mp = onnx.ModelProto.decode(readFileSync(join(dir, onnxFile)));
      const FLOATS = new Set([1, 10, 11, 16]);
      const elem = new Map<string, number>();
      for (const v of [...mp.graph!.input!, ...mp.graph!.valueInfo!, ...mp.graph!.output!]) elem.set(v.name!, v.type!.tensorType!.elemType!);
      for (const t of mp.graph!.initializer!) elem.set(t.name!, t.dataType!);
      const floatCasts = mp.graph!.node!.filter((n) => n.opType === 'Cast' && FLOATS.has(elem.get(n.input![0]!) ?? -1) && FLOATS.has(Number(n.attribute![0]!.i)));
      expect(floatCasts.length).toBe(j.casts.length);
      expect(j.casts.every((c: { reason: string }) => c.reason.length > 0)).toBe(true);
      expect(j.casts.some((c: { reason: string }) => /dtype rule inputs: cast/.test(c.reason))).toBe(true);
      expect(j.casts.some((c: { reason: string }) => /storage|softmax|rms|kernel|island|Conv/.test(c.reason))).toBe(true);
    });
  }
});

describe('CPU emulation of bf16 compute', () => {
  it('rounds every value-producing op to bf16 and keeps shape-only ops exact', () => {
    const m = compile({ file: 'embed.sora', rootText: model('cast'), host: fsHost });
    const g = traceEntry(m, 'forward').graph!;
    const e = emulateBf16(g);
    expect(e.nodes.some((n) => n.outputs.some((o) => o.dtype === 'bf16' && !['Cast'].includes(n.op)))).toBe(false);
    expect(e.metadata['sorac.cpu_emulation']).toMatch(/bf16/);
    expect(e.inputs.map((i) => i.dtype)).toEqual(g.inputs.map((i) => i.dtype));
    expect(e.outputs.map((o) => o.dtype)).toEqual(g.outputs.map((o) => o.dtype));
  });
});

describe('dtype rule uncast', () => {
  const inputCasts = (file: string, values: Record<string, unknown>) => {
    const m = compile({ file, host: fsHost, config: { values }, dtype: { compute: 'bf16' } });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const tr = traceEntry(m, 'forward', { absent: new Set(m.entries[0]!.inputs.filter((i) => i.optional).map((i) => i.name)) });
    expect(tr.graph).toBeDefined();
    return (tr.graph!.casts ?? []).map((c) => c.reason).filter((r) => /dtype rule inputs: cast/.test(r));
  };
  const tiny = { hidden_size: 24, depth: 1, num_heads: 2, caption_channels: 8, model_max_length: 4 };

  it('keeps the listed inputs in their declared dtype: STDiT3 v1.3 takes the timestep uncast, v1.2 casts it', () => {
    const v13 = inputCasts('examples/stdit3_v13.sora', tiny);
    expect(v13.some((r) => /^input x: f32 -> compute bf16/.test(r))).toBe(true);
    expect(v13.some((r) => /input timestep/.test(r))).toBe(false);
    const v12 = inputCasts('examples/stdit3.sora', tiny);
    expect(v12.some((r) => /^input timestep: f32 -> compute bf16/.test(r))).toBe(true);
  });

  it('an uncast name that is not an entry input is an error with a suggestion', () => {
    const src = `
model M version "1" {
  config { c: int = 4 }
  dtype { compute: bf16  inputs: cast  uncast: [timestpe] }
  entry forward(x: [B, c], timestep: f32[B]) -> (y: [B, c]) {
    return x * timestep[:, none]
  }
}`;
    const m = compile({ file: 'uncast.sora', host: fsHost, rootText: src, config: { values: {} } });
    const e = m.diagnostics.find((d) => d.code === 'SORA2001');
    expect(e?.message).toMatch(/uncast.*"timestpe".*not an entry input/);
    expect(e?.hint).toMatch(/timestep/);
  });
});
