/**
 * The runtime against the checkpoint engineer's TensorStore (runtime/weights/store.ts): a torch zip
 * checkpoint whose tensors are bound zero-copy as external data into the .pt file itself.
 */
import { describe, expect, it } from 'vitest';
import type { DType } from '../../core/dtype.ts';
import { bf16ToF32, f16ToF32 } from '../../core/convert.ts';
import { hostFromBytes } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import type { WeightSource } from '../../runtime/execution/binding.ts';
import { openWeightsFile, type TensorStore } from '../../runtime/weights/store.ts';
import { GraphBuilder, int } from '../helpers/ir-build.ts';

// a TensorStore is a WeightSource (compile-time check)
const asSource = (s: TensorStore): WeightSource => s;

const ONNX_TO: Record<string, number> = { f32: 1 };

describe('runtime with a TensorStore', () => {
  it('binds a torch zip checkpoint zero-copy (external data into the .pt) and computes correctly', async () => {
    const store = await openWeightsFile('tests/fixtures/ckpt/torch/sd_zip.pt');
    try {
      const g = new GraphBuilder('zip');
      const x = g.input('x', 'f32', ['n', 8]);
      const w = g.weight('blocks.0.attn.qkv.weight', 'f32', [24, 8]);
      const b = g.weight('blocks.0.attn.qkv.bias', 'f32', [24]);
      const wt = g.op('Transpose', [w], { name: 'wt', dtype: 'f32', shape: [8, 24] }, { perm: { kind: 'ints', value: [1, 0] } });
      const mm = g.op('MatMul', [x, wt], { name: 'mm', dtype: 'f32', shape: ['n', 24] });
      g.output(g.op('Add', [mm, b], { name: 'qkv', dtype: 'f32', shape: ['n', 24] }));
      // other dtypes straight through (Cast to f32), incl. an empty tensor and a scalar
      const extra: [string, DType, number[]][] = [
        ['bf16.weight', 'bf16', [2, 3]],
        ['half.weight', 'f16', [3, 2]],
        ['t_embedder.freq', 'i64', [4]],
        ['mask', 'bool', [3]],
        ['scalar', 'f32', []],
        ['empty', 'f32', [0, 4]],
      ];
      for (const [key, dtype, shape] of extra) {
        const v = g.weight(key, dtype, shape);
        g.output(g.op('Cast', [v], { name: `out.${key}`, dtype: 'f32', shape }, { to: int(ONNX_TO.f32!) }));
      }
      const xd = Float32Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
      const r = await runGraph(g.build(), asSource(store), { x: { dtype: 'f32', shape: [2, 8], data: xd } }, { device: 'cpu' });
      expect(r.binding.external).toBe(7);
      expect(r.binding).toMatchObject({ staged: 1, stagedBytes: 0 }); // the empty tensor, inline

      const W = hostFromBytes('f32', [24, 8], await store.tensors.get('blocks.0.attn.qkv.weight')!.read()).data as Float32Array;
      const B = hostFromBytes('f32', [24], await store.tensors.get('blocks.0.attn.qkv.bias')!.read()).data as Float32Array;
      const y = r.outputs.get('qkv')!.data as Float32Array;
      for (let n = 0; n < 2; n++)
        for (let o = 0; o < 24; o++) {
          let acc = B[o]!;
          for (let k = 0; k < 8; k++) acc += xd[n * 8 + k]! * W[o * 8 + k]!;
          expect(y[n * 24 + o]).toBeCloseTo(acc, 5);
        }
      const values = async (key: string, dtype: DType, shape: number[]): Promise<number[]> => {
        const t = hostFromBytes(dtype, shape, await store.tensors.get(key)!.read());
        if (dtype === 'bf16') return Array.from(bf16ToF32(t.data as Uint16Array));
        if (dtype === 'f16') return Array.from(f16ToF32(t.data as Uint16Array));
        return Array.from(t.data as ArrayLike<number | bigint>, Number);
      };
      for (const [key, dtype, shape] of extra) {
        const out = r.outputs.get(`out.${key}`)!;
        expect(out.shape).toEqual(shape);
        expect(Array.from(out.data as Float32Array)).toEqual(await values(key, dtype, shape));
      }
    } finally {
      await store.close();
    }
  });
});
