/** The builtins added for the VAE examples: narrow() (incl. a runtime start) and tensor(list). */
import { describe, expect, it } from 'vitest';
import { assertCompiles, compileSource, errorsAt, runOnce, traceOk } from '../helpers/model.ts';

async function run(src: string, feed: Map<string, { dtype: 'f32' | 'i64'; shape: number[]; data: Float32Array | BigInt64Array }>) {
  const graph = traceOk(assertCompiles(compileSource(src, 'builtins.sora')));
  return { graph, out: await runOnce(graph, feed) };
}

const x = { dtype: 'f32' as const, shape: [2, 5], data: Float32Array.from({ length: 10 }, (_, i) => i) };

describe('narrow', () => {
  it('static start/length, symbolic start, runtime start (new symbolic dim)', async () => {
    const src = `model Narrow version "1" {
  entry forward(x: f32[B, T], s: i64[]) -> (a: f32[B, 2], b: f32[B, _], c: f32[B, L], d: f32[B, 2]) {
    return (narrow(x, 1, 1, length=2), narrow(x, -1, T - 2), narrow(x, 1, s, name="L"), narrow(x, 1, s, length=2))
  }
}
`;
    const { graph, out } = await run(src, new Map<string, never>([['x', x as never], ['s', { dtype: 'i64', shape: [], data: new BigInt64Array([2n]) } as never]]));
    expect([...(out.get('a')!.data as Float32Array)]).toEqual([1, 2, 6, 7]);
    expect([...(out.get('b')!.data as Float32Array)]).toEqual([3, 4, 8, 9]);
    expect(out.get('c')!.shape).toEqual([2, 3]);
    expect([...(out.get('c')!.data as Float32Array)]).toEqual([2, 3, 4, 7, 8, 9]);
    expect([...(out.get('d')!.data as Float32Array)]).toEqual([2, 3, 7, 8]);
    expect(graph.outputs.find((o) => o.name === 'c')!.shape).toEqual(['B', 'L']);
  });
  it('rejects a float start', () => {
    const src = `model Narrow version "1" {
  entry forward(x: f32[B, T]) -> (y: f32[B, L]) {
    return narrow(x, 1, x[0, 0])
  }
}
`;
    // the float start (x[0, 0]) is the third argument of narrow on line 3
    expect(errorsAt(compileSource(src, 'builtins.sora'))).toEqual(['SORA3008 builtins.sora:3:25']);
  });
});

describe('tensor', () => {
  it('makes a constant from a list (f32 and i64)', async () => {
    const src = `model Tensor version "1" {
  entry forward(x: f32[B, 5]) -> (y: f32[B, 5], n: i64[3]) {
    return (x * tensor([1, 2, 3, 4, 5], f32)[none, :] - tensor([0.5, 0.5, 0.5, 0.5, 0.5])[none, :], tensor([7, 8, 9]))
  }
}
`;
    const { out } = await run(src, new Map([['x', x]]) as never);
    expect([...(out.get('y')!.data as Float32Array)]).toEqual([-0.5, 1.5, 5.5, 11.5, 19.5, 4.5, 11.5, 20.5, 31.5, 44.5]);
    expect([...(out.get('n')!.data as BigInt64Array)]).toEqual([7n, 8n, 9n]);
  });
});
