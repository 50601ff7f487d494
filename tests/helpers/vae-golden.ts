/** Shared checks for the VAE examples: keymap = golden state_dict, bf16 parity, bf16 rounding of inputs. */
import type { HostTensor } from '../../core/host-tensor.ts';
import { parameterCount } from '../../core/keymap.ts';
import { compileExample, goldenConfig, goldenMeta, maxAbsDiff, runGolden } from './parity.ts';

/** Keys and shapes of the compiled keymap vs the golden meta.json state_dict: the differences (empty = equal). */
export function keymapDiff(file: string, model: string, config?: Record<string, unknown>): { missing: string[]; unexpected: string[]; shape: string[]; params: number; golden: number } {
  const m = compileExample(file, config ?? goldenConfig(model));
  const meta = goldenMeta(model);
  const mine = m.keymap!.tensors;
  const want = new Map<string, number[]>(meta.state_dict.map((e: { key: string; shape: number[] }) => [e.key, e.shape]));
  const missing = [...want.keys()].filter((k) => !(k in mine));
  const unexpected = Object.keys(mine).filter((k) => !want.has(k));
  const shape = [...want].filter(([k, s]) => k in mine && mine[k]!.shape.join(',') !== s.join(',')).map(([k, s]) => `${k}: ${mine[k]!.shape} vs ${s}`);
  return { missing, unexpected, shape, params: parameterCount(m.keymap!, 'all'), golden: meta.num_parameters };
}

export function defaultParams(file: string): number {
  const m = compileExample(file, {});
  return parameterCount(m.keymap!, 'all');
}

/** Round f32 values to bf16 (round to nearest even), as `x.to(torch.bfloat16)` does, kept in f32. */
export function roundBf16(t: HostTensor): HostTensor {
  if (t.dtype !== 'f32') return t;
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  const u = new Uint32Array(out.buffer);
  out.set(src);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    u[i] = ((x + 0x7fff + ((x >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return { dtype: 'f32', shape: t.shape, data: out };
}

/**
 * f32 graph on the bf16 checkpoint (weights upcast on load) and bf16-rounded inputs, compared with the
 * reference `<name>_bf16` outputs (the real model run entirely in bf16). Returns max abs errors.
 */
export async function bf16Errors(file: string, model: string, entry: string, extra?: (t: Map<string, HostTensor>) => Map<string, HostTensor>, config?: Record<string, unknown>): Promise<Record<string, number>> {
  const r = await runGolden(file, model, {
    entry,
    ...(config ? { config } : {}),
    weights: 'model.bf16.safetensors',
    inputs: (t) => {
      const rounded = new Map([...t].map(([k, v]) => [k, roundBf16(v)] as const));
      return extra ? extra(rounded) : rounded;
    },
  });
  const errors: Record<string, number> = {};
  for (const [k, v] of r.outputs) {
    const ref = r.reference.get(`${k}_bf16`);
    if (ref) errors[k] = maxAbsDiff(v, ref);
  }
  return errors;
}

/**
 * Tolerance for an f32 run on the bf16 checkpoint (bf16-rounded inputs) vs the all-bf16 reference: 2x the
 * reference's own distance from its f32 run (meta.json bf16.<name>.max_abs_diff_vs_fp32), i.e. "of the order
 * of bf16 noise". Both sides carry independent rounding (ours: bf16 weights/inputs only; the reference: every
 * activation too), so the measured ratios are 0.5-1.6 (worst: sd_vae posterior_mean, 0.041 vs 0.027).
 */
export function bf16Tolerance(model: string, name: string): number {
  const gap = goldenMeta(model).bf16?.[name]?.max_abs_diff_vs_fp32;
  if (typeof gap !== 'number') throw new Error(`${model}: meta.json has no bf16 gap for ${name}`);
  return 2 * gap;
}
