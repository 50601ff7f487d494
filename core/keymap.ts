import { createHash } from 'node:crypto';
import type { DType } from './dtype.ts';

/**
 * The checkpoint key/shape map: the contract between a compiled `.sora` model and the
 * checkpoints that can be loaded into it. Written as canonical JSON by `sorac build`.
 */
export interface KeymapEntry {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly kind: 'param' | 'buffer';
  /** Declaring source location, `file:line:col` (file relative to the project / as given). */
  readonly source: string;
  /** The member of the compiled model that brings this tensor in (e.g. `spatial_blocks = [...]`), when that is another line. */
  readonly via?: string;
  /** Tied weights: this key names the same tensor as `alias` (checkpoints may hold either or both). */
  readonly alias?: string;
}

export interface Keymap {
  readonly format: 'sorac.keymap/1';
  readonly model: string;
  readonly version: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** `sha256:<hex>` over keys, shapes and dtypes only (see contractHash). */
  readonly contract: string;
  readonly tensors: Readonly<Record<string, KeymapEntry>>;
}

/** Canonical JSON: object keys sorted, no insignificant whitespace beyond a fixed 2-space indent. */
export function canonicalJson(value: unknown, indent = 2): string {
  return JSON.stringify(sortDeep(value), null, indent) + '\n';
}

function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) out[k] = sortDeep((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/**
 * The contract hash: sha256 over the sorted list of `key\tshape\tdtype` lines. Independent of
 * source locations, config spelling, declaration order and formatting.
 */
export function contractHash(tensors: Readonly<Record<string, Pick<KeymapEntry, 'shape' | 'dtype'>>>): string {
  const lines = Object.keys(tensors)
    .sort()
    .map((k) => `${k}\t${tensors[k]!.shape.join(',')}\t${tensors[k]!.dtype}`);
  return 'sha256:' + createHash('sha256').update(lines.join('\n')).digest('hex');
}

export function parameterCount(km: Keymap, kind: 'param' | 'buffer' | 'all' = 'param'): number {
  let n = 0;
  for (const e of Object.values(km.tensors)) {
    if (kind !== 'all' && e.kind !== kind) continue;
    if (e.alias) continue; // tied weights are counted once
    n += e.shape.reduce((a, b) => a * b, 1);
  }
  return n;
}
