/**
 * Load-time dtype conversions that lose information. A checkpoint is converted to the dtype the graph
 * expects (the policy's storage dtype, or the compute dtype for cast weights); widening (bf16/f16 -> f32)
 * is exact, narrowing is refused unless the user asks for it (`--allow-lossy`), and f32 -> f16 overflow
 * is always an error (runtime/convert.ts).
 */
import type { DType } from '../../core/dtype.ts';
import type { IrGraph } from '../../core/ir.ts';

const EXACT: Record<string, true> = { 'bf16->f32': true, 'f16->f32': true, 'bf16->f64': true, 'f16->f64': true, 'f32->f64': true };

export function isLossy(from: DType, to: DType): boolean {
  if (from === to) return false;
  const float = (d: DType) => d === 'f64' || d === 'f32' || d === 'f16' || d === 'bf16';
  if (!float(from) || !float(to)) return false;
  return !EXACT[`${from}->${to}`];
}

export interface LossyConversion {
  readonly key: string;
  readonly from: DType;
  readonly to: DType;
}

export function lossyConversions(graph: IrGraph, store: { tensors: ReadonlyMap<string, { dtype: DType }> }): LossyConversion[] {
  const out: LossyConversion[] = [];
  for (const w of graph.weights) {
    const t = store.tensors.get(w.key);
    if (t && isLossy(t.dtype, w.value.dtype)) out.push({ key: w.key, from: t.dtype, to: w.value.dtype });
  }
  return out;
}

export function describeLossy(l: readonly LossyConversion[]): string {
  const pairs = new Map<string, string[]>();
  for (const c of l) pairs.set(`${c.from} -> ${c.to}`, [...(pairs.get(`${c.from} -> ${c.to}`) ?? []), c.key]);
  return [...pairs].map(([p, keys]) => `  ${p}: ${keys.length} tensor${keys.length > 1 ? 's' : ''} (${keys.slice(0, 3).join(', ')}${keys.length > 3 ? ', ...' : ''})`).join('\n');
}
