/**
 * Emitter + runtime against torch: hand-built IrGraphs for two STDiT3 (Open-Sora v1.2) modules,
 * run with the torch-made fixture checkpoint, compared to torch's recorded intermediates
 * (tests/fixtures/golden/stdit3/a). Linear layers use Gemm(transB=1) so torch-layout [out, in]
 * weights bind zero-copy (see docs/adr/001-onnx-emission.md).
 *
 *   x_embedder: PatchEmbed3D = Conv3d(4->64, k=s=(1,2,2)) -> flatten(2) -> transpose(1,2)
 *   t_embedder: sinusoid(t, 256) -> Linear(256,64) -> SiLU -> Linear(64,64)
 */
import { describe, expect, it } from 'vitest';
import type { IrGraph, IrValue } from '../../core/ir.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GraphBuilder, int, ints } from '../helpers/ir-build.ts';
import { maxAbsDiff } from '../helpers/sample-model.ts';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import { checkOnnx } from '../helpers/onnx-check.ts';

const DIR = 'tests/fixtures/golden/stdit3/a';

function xEmbedder(wDtype: 'f32' | 'bf16'): IrGraph {
  const g = new GraphBuilder('x_embedder');
  const x = g.input('x', 'f32', ['B', 4, 'T', 'H', 'W']);
  const cast = (v: IrValue, shape: number[]) => (wDtype === 'f32' ? v : g.op('Cast', [v], { name: `${v.name}_f32`, dtype: 'f32', shape }, { to: int(1) }));
  const w = cast(g.weight('x_embedder.proj.weight', wDtype, [64, 4, 1, 2, 2]), [64, 4, 1, 2, 2]);
  const b = cast(g.weight('x_embedder.proj.bias', wDtype, [64]), [64]);
  const c = g.op('Conv', [x, w, b], { name: 'conv', dtype: 'f32', shape: ['B', 64, 'T', 'Hp', 'Wp'] }, { kernel_shape: ints([1, 2, 2]), strides: ints([1, 2, 2]) });
  const r = g.op('Reshape', [c, g.constI64('shape', [3], [0, 64, -1])], { name: 'flat', dtype: 'f32', shape: ['B', 64, 'N'] });
  g.output(g.op('Transpose', [r], { name: 'x_embedder', dtype: 'f32', shape: ['B', 'N', 64] }, { perm: ints([0, 2, 1]) }));
  return g.build();
}

function tEmbedder(wDtype: 'f32' | 'bf16'): IrGraph {
  const g = new GraphBuilder('t_embedder');
  const t = g.input('timestep', 'f32', ['B']);
  // torch: freqs = exp(-log(10000) * arange(128, dtype=f32) / 128), in float32 steps
  const freqs = Array.from({ length: 128 }, (_, i) => Math.fround(Math.exp(Math.fround(Math.fround(-Math.log(10000) * i) / 128))));
  const tf = g.op('Unsqueeze', [t, g.constI64('ax1', [1], [1])], { name: 't2', dtype: 'f32', shape: ['B', 1] });
  const args = g.op('Mul', [tf, g.constF32('freqs', [1, 128], freqs)], { name: 'args', dtype: 'f32', shape: ['B', 128] });
  const cos = g.op('Cos', [args], { name: 'cos', dtype: 'f32', shape: ['B', 128] });
  const sin = g.op('Sin', [args], { name: 'sin', dtype: 'f32', shape: ['B', 128] });
  const emb = g.op('Concat', [cos, sin], { name: 't_freq', dtype: 'f32', shape: ['B', 256] }, { axis: int(-1) });
  const linear = (x: IrValue, key: string, out: number, inp: number, name: string) => {
    let w = g.weight(`${key}.weight`, wDtype, [out, inp]);
    let b = g.weight(`${key}.bias`, wDtype, [out]);
    if (wDtype !== 'f32') {
      w = g.op('Cast', [w], { name: `${key}.w32`, dtype: 'f32', shape: [out, inp] }, { to: int(1) });
      b = g.op('Cast', [b], { name: `${key}.b32`, dtype: 'f32', shape: [out] }, { to: int(1) });
    }
    return g.op('Gemm', [x, w, b], { name, dtype: 'f32', shape: ['B', out] }, { transB: int(1) }, { scope: key });
  };
  const h = linear(emb, 't_embedder.mlp.0', 64, 256, 'h');
  const silu = g.op('Mul', [h, g.op('Sigmoid', [h], { name: 'sig', dtype: 'f32', shape: ['B', 64] })], { name: 'silu', dtype: 'f32', shape: ['B', 64] });
  g.output(linear(silu, 't_embedder.mlp.2', 64, 64, 't_embedder'));
  return g.build();
}

describe('STDiT3 modules vs torch (golden fixture)', async () => {
  const { tensors: inputs } = await readTensorsFile(`${DIR}/inputs.safetensors`);
  const { tensors: inter } = await readTensorsFile(`${DIR}/intermediates.safetensors`);

  const cases: [string, (d: 'f32' | 'bf16') => IrGraph, Record<string, HostTensor>][] = [
    ['x_embedder', xEmbedder, { x: inputs.get('x')! }],
    ['t_embedder', tEmbedder, { timestep: inputs.get('timestep')! }],
  ];
  it('both graphs pass the ONNX checker (f32 and bf16 weights)', async () => {
    for (const [, build] of cases) for (const d of ['f32', 'bf16'] as const) expect((await checkOnnx(emitOnnx(build(d), { weights: 'none' }))).message).toMatch(/^ok 8 17/);
  });

  for (const [name, build, feeds] of cases) {
    it(`${name}: f32 checkpoint bound zero-copy matches torch`, async () => {
      const src = await safetensorsWeightSource([`${DIR}/model.safetensors`]);
      const r = await runGraph(build('f32'), src, feeds, { device: 'cpu' });
      await src.close();
      expect(r.binding.staged).toBe(0);
      const got = r.outputs.get(name)!;
      const want = inter.get(name)!;
      expect(got.shape).toEqual(want.shape);
      const err = maxAbsDiff(got.data as Float32Array, want.data as Float32Array);
      if (process.env.SORAC_VERBOSE) console.log(name, "f32 max abs err", err);
      expect(err).toBeLessThan(2e-5);
    });

    it(`${name}: bf16 checkpoint (in-graph Cast) stays within bf16 error of torch f32`, async () => {
      const src = await safetensorsWeightSource([`${DIR}/model.bf16.safetensors`]);
      const lines: string[] = [];
      const r = await runGraph(build('bf16'), src, feeds, { device: 'cpu', onInfo: (m) => lines.push(m) });
      await src.close();
      expect(lines).toEqual(['note: bf16 weights converted to f32 (CPU has no bf16 kernels)']);
      const got = r.outputs.get(name)!.data as Float32Array;
      const want = inter.get(name)!.data as Float32Array;
      const scale = Math.max(...Array.from(want, Math.abs));
      if (process.env.SORAC_VERBOSE) console.log(name, "bf16 rel err", maxAbsDiff(got, want) / scale);
      expect(maxAbsDiff(got, want) / scale).toBeLessThan(1e-2);
    });
  }
});
