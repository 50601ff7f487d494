/**
 * The CUDA lowering (compiler/passes/cuda-precision.ts) on every bundled example at its golden
 * config, with compute bf16 and f16: afterwards every node has a CUDA kernel for its dtype at the
 * graph's opset (a pure check against the measured table), the graph verifies, every added cast is
 * explained, and the bf16 graph still computes the same numbers on the CPU (emulated) as the plain
 * path (measured: bit-identical). vae_v13 is not in the reduced-precision list: its bf16 trace stops
 * at a dtype conflict (SORA3008, examples/vae_v13.sora), independent of CUDA. At opset 22 InstanceNormalization (no CUDA kernel there) is decomposed; the decomposed VAEs
 * still match the real upstream outputs (golden) as closely as onnxruntime's own kernel does.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runGraph } from '../../api/session.ts';
import { traceEntry } from '../../compiler/compile.ts';
import { emulateBf16 } from '../../compiler/passes/cpu-bf16.ts';
import { cudaHasKernel, cudaPlacementGaps, lowerForCuda, ORT_1_29_CUDA_KERNELS, verifyGraph } from '../../compiler/passes/index.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import type { IrGraph } from '../../core/ir.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, goldenConfig } from '../helpers/parity.ts';
import { assertCompiles, compileFile } from '../helpers/model.ts';
import { v13Config } from '../helpers/vae-v13-config.ts';

const configOf = (ex: string) => (ex === 'vae_v13' ? v13Config() : goldenConfig(ex));

const EXAMPLES = ['stdit', 'stdit2', 'stdit3', 'mmdit', 't5', 'sd_vae', 'vae_temporal', 'hunyuan_vae'] as const;

function relL2(a: HostTensor, b: HostTensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let n = 0;
  let d = 0;
  for (let i = 0; i < y.length; i++) {
    n += (x[i]! - y[i]!) ** 2;
    d += y[i]! ** 2;
  }
  return Math.sqrt(n / Math.max(d, 1e-30));
}

function maxAbs(a: HostTensor, b: HostTensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** Each entry of an example whose inputs the golden case has: its graph and the feed. */
async function entries(ex: string, dtype?: 'bf16' | 'f16', opset = 17): Promise<{ entry: string; graph: IrGraph; feed: Map<string, HostTensor> }[]> {
  const m = assertCompiles(compileFile(`examples/${ex}.sora`, { values: configOf(ex), ...(dtype ? { dtype: { params: dtype, compute: dtype } } : {}) }));
  const { tensors } = await readTensorsFile(join(GOLDEN, ex, 'a', 'inputs.safetensors'));
  const out: { entry: string; graph: IrGraph; feed: Map<string, HostTensor> }[] = [];
  for (const e of m.entries) {
    if (e.inputs.some((i) => !i.optional && !tensors.has(i.name))) continue;
    const tr = traceEntry(m, e.name, { opset, absent: new Set(e.inputs.filter((i) => i.optional && !tensors.has(i.name)).map((i) => i.name)) });
    if (!tr.graph) throw new Error(`${ex}.${e.name}: ${tr.diagnostics.map((d) => d.message).join('; ')}`);
    // one inputs file serves several entries (x for encode, z for decode; images and videos): take the entries it fits
    if (tr.graph.inputs.some((i) => tensors.has(i.name) && tensors.get(i.name)!.shape.length !== i.shape.length)) continue;
    out.push({ entry: e.name, graph: tr.graph, feed: new Map([...tensors].filter(([k]) => tr.graph!.inputs.some((i) => i.name === k))) });
  }
  expect(out.length, `${ex}: no entry runnable on the golden inputs`).toBeGreaterThan(0);
  return out;
}

async function run(ex: string, g: IrGraph, feed: Map<string, HostTensor>, weights: string, lower = true): Promise<Map<string, HostTensor>> {
  const w = await safetensorsWeightSource([join(GOLDEN, ex, 'a', weights)]);
  try {
    return (await runGraph(g, w, feed, { device: 'cpu', lower })).outputs;
  } finally {
    await w.close();
  }
}

const FLOAT = new Set(['f32', 'f16', 'bf16']);
const floatCasts = (g: IrGraph) => g.nodes.filter((n) => n.op === 'Cast' && FLOAT.has(n.inputs[0]!.dtype) && FLOAT.has(n.outputs[0]!.dtype)).length;

describe('CUDA lowering of reduced-precision graphs (onnxruntime 1.29 kernel table)', () => {
  it('the table covers every op the examples emit in f32', async () => {
    for (const ex of EXAMPLES) for (const { graph } of await entries(ex)) expect(cudaPlacementGaps(graph), ex).toEqual([]);
    expect(cudaHasKernel('Pad', 'bf16', 17)).toBe(false);
    expect(cudaHasKernel('Conv', 'bf16', 22)).toBe(true);
    expect(cudaHasKernel('InstanceNormalization', 'f32', 22)).toBe(false);
    expect(Object.keys(ORT_1_29_CUDA_KERNELS).length).toBeGreaterThan(55);
  });

  for (const ex of EXAMPLES) {
    it(`${ex}: bf16 and f16 graphs have only CUDA kernels after lowering, verify, explain every cast, and bf16 computes the same on CPU`, async () => {
      for (const dt of ['bf16', 'f16'] as const) {
        for (const { entry, graph, feed } of await entries(ex, dt)) {
          const where = `${ex}.${entry} ${dt}`;
          const l = lowerForCuda(graph);
          expect(cudaPlacementGaps(l.graph), where).toEqual([]);
          expect(verifyGraph(l.graph), where).toEqual([]);
          expect(floatCasts(l.graph) - floatCasts(graph), where).toBe((l.graph.casts?.length ?? 0) - (graph.casts?.length ?? 0));
          expect(l.graph.inputs).toEqual(graph.inputs);
          expect(l.graph.outputs).toEqual(graph.outputs);
          expect(l.graph.weights).toBe(graph.weights);
          if (dt === 'f16') {
            // f16 kernels are complete at opset 17: nothing to move
            expect(l.islands, where).toEqual([]);
            continue;
          }
          if (!l.islands.length) {
            expect(l.graph).toBe(graph);
            continue;
          }
          const plain = await run(ex, graph, feed, 'model.bf16.safetensors');
          const lowered = await run(ex, emulateBf16(l.graph), feed, 'model.bf16.safetensors', false);
          for (const [k, v] of plain) {
            // an island computes what a bf16 kernel with f32 math computes: the same per-op rounding as the
            // emulation (measured: bit-identical for every example)
            expect(relL2(lowered.get(k)!, v), `${where} ${k}`).toBeLessThan(1e-3);
          }
        }
      }
    }, 120_000);
  }

  it('the islands where ORT 1.29 lacks bf16 kernels, per example (what --explain-dtypes --target cuda lists)', async () => {
    const seen: Record<string, string[]> = {};
    for (const ex of EXAMPLES) for (const { entry, graph } of await entries(ex, 'bf16')) seen[`${ex}.${entry}`] = lowerForCuda(graph).islands.map((i) => `${i.op}x${i.count}`);
    // STDiT2/3 pad the latent before the patch embedder; the VAEs clip/compare/pad/resize
    expect(seen['stdit3.forward']).toContain('Padx1');
    expect(seen['stdit.forward']).toEqual([]);
    expect(seen['t5.forward']).toEqual([]);
    expect(Object.values(seen).flat().every((s) => /^(Pad|Clip|Resize|Less|LessOrEqual|Greater|GreaterOrEqual|Equal|ReduceMean|ReduceMax|ReduceMin|Log|Floor|Ceil|Round|Reciprocal|ConvTranspose)x\d+$/.test(s))).toBe(true);
  });

  for (const ex of ['sd_vae', 'vae_temporal', 'hunyuan_vae', 'vae_v13'] as const) {
    it(`${ex} at opset 22: InstanceNormalization decomposed into CUDA ops; numbers as close to upstream as ORT's kernel`, async () => {
      const { tensors: ref } = await readTensorsFile(join(GOLDEN, ex, 'a', 'outputs.safetensors'));
      for (const { entry, graph, feed } of await entries(ex, undefined, 22)) {
        const l = lowerForCuda(graph);
        expect(cudaPlacementGaps(graph).map((g) => g.op)).toContain('InstanceNormalization');
        expect(cudaPlacementGaps(l.graph), `${ex}.${entry}`).toEqual([]);
        expect(verifyGraph(l.graph)).toEqual([]);
        const a = await run(ex, graph, feed, 'model.safetensors', false);
        const b = await run(ex, l.graph, feed, 'model.safetensors', false);
        for (const [k, v] of a) {
          expect(maxAbs(b.get(k)!, v), `${ex}.${entry} ${k} vs ORT's InstanceNormalization`).toBeLessThan(2e-5);
          if (ref.has(k)) expect(maxAbs(b.get(k)!, ref.get(k)!), `${ex}.${entry} ${k} vs upstream`).toBeLessThanOrEqual(Math.max(1e-4, maxAbs(v, ref.get(k)!) * 1.5));
        }
      }
    }, 120_000);
  }

  it('bf16 at opset 22: Conv, Sin and Cos stay bf16 on CUDA; the rest is islanded the same way', async () => {
    const [{ graph }] = await entries('stdit3', 'bf16', 22);
    const l = lowerForCuda(graph!);
    expect(cudaPlacementGaps(l.graph)).toEqual([]);
    expect(l.graph.nodes.some((n) => n.op === 'Conv' && n.outputs[0]!.dtype === 'bf16')).toBe(true);
    expect(l.islands.map((i) => i.op)).toEqual(['Pad']);
  });
});
