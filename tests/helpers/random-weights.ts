/**
 * A checkpoint with seeded random weights for a compiled model (every keymap tensor, aliases once):
 * for tests of the machinery around models (pipelines, generate) where the numbers do not matter but
 * must be finite and deterministic. Weight scale 0.05, norm gains and scales near 1.
 */
import type { CompiledModel } from '../../compiler/compile.ts';
import { writeSafetensors } from '../../runtime/formats/safetensors-writer.ts';
import { randF32 } from './sample-model.ts';

export async function writeRandomWeights(m: CompiledModel, path: string, seed = 1): Promise<void> {
  const tensors = new Map<string, { dtype: 'f32'; shape: readonly number[]; data: Uint8Array }>();
  let i = 0;
  for (const [key, t] of Object.entries(m.keymap!.tensors).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (t.alias) continue;
    if (t.dtype !== 'f32') throw new Error(`writeRandomWeights: ${key} is ${t.dtype}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const isGain = /(norm|ln|layer_norm)[^.]*\.weight$|\.scale$|gamma$/.test(key) && t.shape.length === 1;
    const data = randF32(n, seed * 100_003 + i++, 0.05);
    if (isGain) for (let k = 0; k < n; k++) data[k] = 1 + data[k]!;
    tensors.set(key, { dtype: 'f32', shape: t.shape, data: new Uint8Array(data.buffer) });
  }
  await writeSafetensors(path, tensors);
}
