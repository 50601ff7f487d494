/**
 * Access to the sampler golden cases (tests/fixtures/golden-sampler/, made by harness/make_sampler_goldens.py from the
 * real upstream code) through sorac's public API only: compile, load, openWeights.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, fsHost, load, openWeights } from '../../index.ts';
import type { TensorStore } from '../../index.ts';
import type { F32Tensor } from '../../runtime/sampling/index.ts';

export const ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden-sampler');
export const GOLDEN = join(import.meta.dirname, '..', 'fixtures', 'golden');

export type Tensor = { readonly dtype: string; readonly shape: readonly number[]; readonly data: Float32Array | BigInt64Array | Uint8Array | Float64Array };

const CTORS = { f32: Float32Array, f64: Float64Array, i64: BigInt64Array, bool: Uint8Array } as const;

/** Every tensor of a safetensors file. */
export async function readTensors(path: string): Promise<Map<string, Tensor>> {
  const s = await openWeights(path);
  try {
    const out = new Map<string, Tensor>();
    for (const [k, t] of s.tensors) {
      const C = CTORS[t.dtype as keyof typeof CTORS];
      if (!C) throw new Error(`${path}: ${k} has dtype ${t.dtype}`);
      const b = await t.read();
      const copy = new Uint8Array(b.byteLength);
      copy.set(b);
      out.set(k, { dtype: t.dtype, shape: [...t.shape], data: new C(copy.buffer) });
    }
    return out;
  } finally {
    await s.close();
  }
}

export const asF32 = (t: Tensor | undefined, what = 'tensor'): F32Tensor => {
  if (!t || t.dtype !== 'f32') throw new Error(`${what}: expected f32`);
  return t as F32Tensor;
};

export function meta(caseName: string): any {
  return JSON.parse(readFileSync(join(ROOT, caseName, 'meta.json'), 'utf8'));
}

export function goldenKwargs(model: string): Record<string, unknown> {
  const kw = JSON.parse(readFileSync(join(GOLDEN, model, 'a', 'meta.json'), 'utf8')).constructor_kwargs as Record<string, Record<string, unknown>>;
  return Object.assign({}, ...Object.values(kw));
}

export function compileOk(file: string, values: Record<string, unknown>) {
  const m = compile({ file, host: fsHost, config: { values } });
  const errors = m.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return m;
}

export function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbsValue(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * The tiny Open-Sora 1.2 VAE pipeline checkpoint as an in-memory TensorStore: the sd_vae golden weights under
 * spatial_vae.module., the vae_temporal golden weights under temporal_vae., and the released scale/shift buffers.
 */
export async function pipelineStore(shift: number[], scale: number[]): Promise<TensorStore> {
  const parts = await Promise.all([openWeights(join(GOLDEN, 'sd_vae', 'a', 'model.safetensors')), openWeights(join(GOLDEN, 'vae_temporal', 'a', 'model.safetensors'))]);
  const tensors = new Map<string, any>();
  parts.forEach((p, i) => {
    const prefix = i === 0 ? 'spatial_vae.module.' : 'temporal_vae.';
    for (const [k, t] of p.tensors) tensors.set(prefix + k, { ...t, key: prefix + k, read: () => t.read() });
  });
  for (const [k, v] of [['scale', scale], ['shift', shift]] as const) {
    const bytes = new Uint8Array(Float32Array.from(v).buffer);
    tensors.set(k, { key: k, dtype: 'f32', shape: [1, 4, 1, 1, 1], byteLength: 16, file: '<memory>', read: async () => bytes });
  }
  return {
    format: 'safetensors',
    files: parts.flatMap((p) => p.files),
    tensors,
    metadata: {},
    notes: [],
    extras: {},
    async close() {
      for (const p of parts) await p.close();
    },
  };
}

export { load };
