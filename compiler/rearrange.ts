/**
 * einops-style `rearrange` and `repeat` lowered to Reshape / Transpose / Expand, with
 * compile-time checking of the pattern against the symbolic input shape.
 */
import type { Ctx } from './ops.ts';
import * as ops from './ops.ts';
import { Sym } from './sym.ts';
import type { Tensor } from './values.ts';

type Group = string[]; // elementary axis names; '1' is an anonymous unit axis

function parseSide(ctx: Ctx, side: string, pattern: string): Group[] {
  const groups: Group[] = [];
  let cur: Group | undefined;
  const re = /\s*(\(|\)|\.\.\.|[A-Za-z_][A-Za-z0-9_]*|\d+)\s*/y;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < side.length && (m = re.exec(side))) {
    pos = re.lastIndex;
    const tok = m[1]!;
    if (tok === '(') {
      if (cur) ctx.interp.error('SORA3007', `nested parentheses in rearrange pattern "${pattern}"`, ctx.span);
      cur = [];
    } else if (tok === ')') {
      if (!cur) ctx.interp.error('SORA3007', `unbalanced ")" in rearrange pattern "${pattern}"`, ctx.span);
      groups.push(cur);
      cur = undefined;
    } else {
      if (/^\d+$/.test(tok) && tok !== '1') ctx.interp.error('SORA3007', `only the literal 1 is allowed as a number in "${pattern}"`, ctx.span);
      if (cur) cur.push(tok);
      else groups.push([tok]);
    }
  }
  if (side.slice(pos).trim()) ctx.interp.error('SORA3007', `cannot parse "${side.slice(pos).trim()}" in rearrange pattern "${pattern}"`, ctx.span);
  if (cur) ctx.interp.error('SORA3007', `unbalanced "(" in rearrange pattern "${pattern}"`, ctx.span);
  return groups;
}

export function rearrange(ctx: Ctx, x: Tensor, pattern: string, sizes: ReadonlyMap<string, Sym>, mode: 'rearrange' | 'repeat' = 'rearrange'): Tensor {
  const parts = pattern.split('->');
  if (parts.length !== 2) ctx.interp.error('SORA3007', `a ${mode} pattern needs exactly one "->": "${pattern}"`, ctx.span);
  let left = parseSide(ctx, parts[0]!, pattern);
  let right = parseSide(ctx, parts[1]!, pattern);
  // ellipsis: expand to anonymous axes
  const ellL = left.findIndex((g) => g.includes('...'));
  if (ellL >= 0) {
    if (left[ellL]!.length !== 1) ctx.interp.error('SORA3007', '"..." cannot be inside parentheses on the left', ctx.span);
    const n = x.shape.length - (left.length - 1);
    if (n < 0) ctx.interp.error('SORA3007', `pattern "${pattern}" needs rank >= ${left.length - 1}, got ${ops.fmtShape(x.shape)}`, ctx.span);
    const names = Array.from({ length: n }, (_, i) => `__e${i}`);
    left = [...left.slice(0, ellL), ...names.map((nm) => [nm]), ...left.slice(ellL + 1)];
    right = right.flatMap((g) => (g.length === 1 && g[0] === '...' ? names.map((nm) => [nm]) : [g.flatMap((a) => (a === '...' ? names : [a]))]));
  }
  if (left.length !== x.shape.length)
    ctx.interp.error('SORA3007', `pattern "${parts[0]!.trim()}" has ${left.length} axes but the tensor has shape ${ops.fmtShape(x.shape)} (rank ${x.shape.length})`, ctx.span, {
      hint: 'write one name or parenthesised group per input dimension',
    });
  // axis sizes must be positive: a negative one (h=-2) made check pass and build crash
  for (const [a, v] of sizes) {
    const c = v.value();
    if (c !== undefined && c < 1) ctx.interp.error('SORA3012', `axis size ${a}=${c} in ${mode} "${pattern}" must be a positive integer`, ctx.span, { hint: 'pass a size of at least 1' });
  }
  const known = new Map(sizes);
  // solve left groups
  left.forEach((g, i) => {
    const dim = x.shape[i]!;
    const unknown = g.filter((a) => a !== '1' && !known.has(a));
    let prod = Sym.const(1);
    for (const a of g) if (a !== '1' && known.has(a)) prod = prod.mul(known.get(a)!);
    if (unknown.length === 0) {
      if (!prod.equals(dim))
        ctx.interp.error('SORA3007', `axis group (${g.join(' ')}) has size ${prod} but dimension ${i} of ${ops.fmtShape(x.shape)} is ${dim}`, ctx.span, { hint: 'check the axis sizes passed to rearrange' });
    } else if (unknown.length === 1) {
      const q = dim.divExact(prod);
      if (!q)
        ctx.interp.error('SORA3007', `cannot split dimension ${i} (${dim}) into (${g.join(' ')}): ${dim} is not provably a multiple of ${prod}`, ctx.span, {
          hint: 'pad the tensor first, or declare the input dimension as a multiple (e.g. `8*h`)',
        });
      known.set(unknown[0]!, q);
    } else ctx.interp.error('SORA3007', `cannot infer the sizes of ${unknown.join(', ')} in (${g.join(' ')}); pass them, e.g. ${unknown[0]}=...`, ctx.span);
  });
  const leftAxes = left.flat().filter((a) => a !== '1');
  const seen = new Set<string>();
  for (const a of leftAxes) {
    if (seen.has(a)) ctx.interp.error('SORA3007', `axis "${a}" appears twice on the left of "${pattern}"`, ctx.span);
    seen.add(a);
  }
  const rightAxes = right.flat().filter((a) => a !== '1');
  for (const a of rightAxes) {
    if (!seen.has(a)) {
      if (mode === 'repeat') {
        if (!known.has(a)) ctx.interp.error('SORA3007', `new axis "${a}" in repeat needs a size, e.g. ${a}=...`, ctx.span);
      } else ctx.interp.error('SORA3007', `axis "${a}" appears on the right of "${pattern}" but not on the left`, ctx.span, { hint: 'use repeat() to create new axes' });
    }
  }
  for (const a of leftAxes) if (!rightAxes.includes(a)) ctx.interp.error('SORA3007', `axis "${a}" is dropped by "${pattern}"`, ctx.span, { hint: 'every input axis must appear on the right; use reduce() to aggregate' });
  // 1. reshape to elementary axes
  let t = ops.reshape(ctx, x, leftAxes.map((a) => known.get(a)!));
  // 2. transpose existing axes into right order
  const existing = rightAxes.filter((a) => seen.has(a));
  t = ops.transpose(ctx, t, existing.map((a) => leftAxes.indexOf(a)));
  // 3. new axes (repeat): unsqueeze then expand
  const newAxes = rightAxes.filter((a) => !seen.has(a));
  if (newAxes.length) {
    const positions = rightAxes.map((a, i) => (seen.has(a) ? -1 : i)).filter((i) => i >= 0);
    t = ops.unsqueeze(ctx, t, positions);
    t = ops.expand(ctx, t, rightAxes.map((a) => known.get(a)!));
  }
  // 4. reshape to right groups
  const outShape = right.map((g) => g.reduce((p, a) => (a === '1' ? p : p.mul(known.get(a)!)), Sym.const(1)));
  return ops.reshape(ctx, t, outShape);
}
