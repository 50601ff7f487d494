/**
 * Collapse layer indices in dotted keys for compact listings:
 *   spatial_blocks.0.attn.qkv.weight … spatial_blocks.27.attn.qkv.weight  [3456,1152]
 *   → spatial_blocks.{0..27}.attn.qkv.weight [3456,1152]
 * Keys are grouped when they differ only in numeric segments and share the same `detail`
 * (shape/dtype text), so a layer with a different shape is never hidden inside a range.
 */

import { printable } from '../../core/printable.ts';

export interface KeyLine {
  key: string;
  /** text that must be identical for keys to be merged (e.g. "[3456,1152] bf16") */
  detail: string;
  /** per-key text that does not prevent merging (e.g. a source location); the first one is shown */
  suffix?: string;
}

export interface CollapsedLine {
  pattern: string;
  detail: string;
  suffix?: string;
  count: number;
  keys: string[];
}

function fmtSet(nums: number[]): string {
  const u = [...new Set(nums)].sort((a, b) => a - b);
  if (u.length === 1) return String(u[0]);
  const contiguous = u.every((v, i) => i === 0 || v === u[i - 1]! + 1);
  if (contiguous) return `{${u[0]}..${u[u.length - 1]}}`;
  if (u.length <= 6) return `{${u.join(',')}}`;
  return `{${u[0]}..${u[u.length - 1]} (${u.length} values)}`;
}

export function collapseKeys(lines: readonly KeyLine[]): CollapsedLine[] {
  const groups = new Map<string, { lines: KeyLine[]; first: number }>();
  lines.forEach((l, i) => {
    const shape = l.key.split('.').map((s) => (/^\d+$/.test(s) ? '#' : s)).join('.');
    const g = `${shape}\u0000${l.detail}`;
    if (!groups.has(g)) groups.set(g, { lines: [], first: i });
    groups.get(g)!.lines.push(l);
  });
  const out: (CollapsedLine & { first: number })[] = [];
  for (const { lines: ls, first } of groups.values()) {
    const segs = ls.map((l) => l.key.split('.'));
    const pattern = segs[0]!
      .map((s, i) => (/^\d+$/.test(s) ? fmtSet(segs.map((x) => Number(x[i]))) : s))
      .join('.');
    const suffixes = [...new Set(ls.map((l) => l.suffix ?? ''))];
    const suffix = suffixes[0] ? suffixes[0] + (suffixes.length > 1 ? ` (+${suffixes.length - 1} more)` : '') : undefined;
    out.push({ pattern, detail: ls[0]!.detail, ...(suffix ? { suffix } : {}), count: ls.length, keys: ls.map((l) => l.key), first });
  }
  return out.sort((a, b) => a.first - b.first).map(({ first: _f, ...rest }) => rest);
}

/** Render collapsed lines as aligned text: `pattern  detail`. */
export function renderCollapsed(lines: readonly CollapsedLine[], indent = '  ', maxLines = Infinity): string {
  return printable(renderCollapsedRaw(lines, indent, maxLines));
}

function renderCollapsedRaw(lines: readonly CollapsedLine[], indent: string, maxLines: number): string {
  const shown = lines.slice(0, maxLines);
  const w = Math.min(80, Math.max(0, ...shown.map((l) => l.pattern.length)));
  let s = '';
  for (const l of shown) s += `${indent}${l.pattern.padEnd(w)}  ${l.detail}${l.count > 1 ? `  (×${l.count})` : ''}${l.suffix ? `  ${l.suffix}` : ''}\n`;
  if (lines.length > shown.length) s += `${indent}… ${lines.length - shown.length} more\n`;
  return s;
}

/** 1234567 → "1.2 MB" (decimal units, like the hub and `ls -h --si`). */
export function formatBytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${u[i]}`;
}
