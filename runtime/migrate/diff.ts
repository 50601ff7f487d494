/**
 * Diff two checkpoint signatures (a compiled model's keymap or a checkpoint's header) and propose
 * a plan that turns FROM into TO. Proposals, in order:
 *  1. built-in migrations that remove differences when resolved against FROM (real Open-Sora
 *     transitions: fused/unfused qkv, 2-D/3-D patch embed, caption table, blocks→spatial_blocks,
 *     4→16 channels);
 *  2. renames explaining several removed/added pairs (one segment renamed, a prefix added or
 *     stripped), written as capture patterns;
 *  3. per-key shape fixes (unsqueeze/squeeze, transpose, rows pad/slice, reshape) and casts;
 *  4. what is left: drop (FROM only) and init zeros (TO only), each listed as unmatched with why.
 * Every key that was not matched by name and shape is explained in `unmatched`.
 */
import { BUILTINS } from './builtins.ts';
import { SoracError } from '../../core/errors.ts';
import type { Op, Plan } from './plan.ts';
import { resolvePlan, type Sig } from './resolve.ts';

export interface DiffEntry {
  readonly key: string;
  readonly sig: Sig;
}

export interface Unmatched {
  readonly key: string;
  readonly side: 'from' | 'to';
  readonly sig: Sig;
  readonly reason: string;
  /** what the proposed plan does about it */
  readonly proposal: string;
}

export interface DiffResult {
  readonly empty: boolean;
  readonly counts: { readonly from: number; readonly to: number; readonly same: number };
  readonly added: DiffEntry[];
  readonly removed: DiffEntry[];
  readonly reshaped: { key: string; from: Sig; to: Sig }[];
  readonly retyped: { key: string; from: Sig; to: Sig }[];
  /** built-in migrations the proposal uses */
  readonly builtins: string[];
  readonly plan: Plan;
  /** ops with a one-line reason each (same order as plan.ops) */
  readonly reasons: string[];
  readonly unmatched: Unmatched[];
  /** would the proposed plan turn FROM into exactly TO's keys, shapes and dtypes? */
  readonly complete: boolean;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: Sig) => `[${s.shape.join(',')}] ${s.dtype}`;

/** Raw differences between two signatures. */
function rawDiff(from: ReadonlyMap<string, Sig>, to: ReadonlyMap<string, Sig>) {
  const added: DiffEntry[] = [];
  const removed: DiffEntry[] = [];
  const reshaped: { key: string; from: Sig; to: Sig }[] = [];
  const retyped: { key: string; from: Sig; to: Sig }[] = [];
  let sameCount = 0;
  for (const [k, s] of from) {
    const t = to.get(k);
    if (!t) removed.push({ key: k, sig: s });
    else if (!same(s.shape, t.shape)) reshaped.push({ key: k, from: s, to: t });
    else if (s.dtype !== t.dtype) retyped.push({ key: k, from: s, to: t });
    else sameCount++;
  }
  for (const [k, s] of to) if (!from.has(k)) added.push({ key: k, sig: s });
  const sort = <T extends { key: string }>(a: T[]) => a.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  return { added: sort(added), removed: sort(removed), reshaped: sort(reshaped), retyped: sort(retyped), same: sameCount };
}

const score = (d: ReturnType<typeof rawDiff>) => d.added.length + d.removed.length + d.reshaped.length + d.retyped.length;

function after(plan: Plan, from: ReadonlyMap<string, Sig>): Map<string, Sig> | undefined {
  try {
    const r = resolvePlan(plan, from);
    return new Map([...r.tensors].map(([k, n]) => [k, n.sig]));
  } catch (e) {
    if ((e instanceof SoracError && e.code.startsWith('SORA6'))) return undefined;
    throw e;
  }
}

const escPat = (s: string) => s.replace(/[()\\]/g, '\\$&');

/** Rename patterns tried (each costs one resolve of the whole checkpoint), most votes first. */
const MAX_RENAME_CANDIDATES = 64;
/** Keys compared when naming the nearest key of the other side in an explanation. */
const MAX_NEAR_CANDIDATES = 128;

export function diffSignatures(from: ReadonlyMap<string, Sig>, to: ReadonlyMap<string, Sig>, opts: { name?: string } = {}): DiffResult {
  const base = rawDiff(from, to);
  const ops: Op[] = [];
  const reasons: string[] = [];
  const builtins: string[] = [];
  let cur = new Map(from);
  const push = (op: Op, reason: string) => {
    ops.push(op);
    reasons.push(reason);
  };

  // 1. built-ins, greedily, while one helps
  if (score(base)) {
    const captionRows = [...to].find(([k, s]) => /(^|\.)y_embedder\.y_embedding$/.test(k) && s.shape.length === 2)?.[1].shape[0];
    for (let round = 0; round < BUILTINS.size; round++) {
      let best: { name: string; plan: Plan; sig: Map<string, Sig>; s: number } | undefined;
      const now = score(rawDiff(cur, to));
      for (const b of BUILTINS.values()) {
        if (builtins.includes(b.name)) continue;
        let p: Plan;
        try {
          p = b.plan(cur, captionRows !== undefined ? { rows: String(captionRows) } : {}, false);
        } catch (e) {
          if ((e instanceof SoracError && e.code.startsWith('SORA6'))) continue;
          throw e;
        }
        if (!p.ops.length) continue;
        const sig = after(p, cur);
        if (!sig) continue;
        const s = score(rawDiff(sig, to));
        if (s < now && (!best || s < best.s)) best = { name: b.name, plan: p, sig, s };
      }
      if (!best) break;
      builtins.push(best.name);
      for (const op of best.plan.ops) push(op, `built-in ${best.name}`);
      cur = best.sig;
    }
  }

  // 2. renames across several keys
  let d = rawDiff(cur, to);
  if (d.removed.length && d.added.length) {
    const addedSet = new Map(d.added.map((a) => [a.key, a]));
    const addedBySuffix = new Map<string, DiffEntry[]>();
    for (const a of d.added) {
      const as = a.key.split('.');
      for (let k = 1; k <= 2 && k < as.length; k++) {
        const id = `${k}\u0000${as.slice(k).join('.')}`;
        if (!addedBySuffix.has(id)) addedBySuffix.set(id, []);
        addedBySuffix.get(id)!.push(a);
      }
    }
    const votes = new Map<string, { from: string; to: string; n: number }>();
    // index added keys by (segment count, key with one segment blanked): one lookup per removed key and segment
    const bySlot = new Map<string, { a: DiffEntry; segs: string[] }[]>();
    for (const a of d.added) {
      const as = a.key.split('.');
      for (let i = 0; i < as.length; i++) {
        const slot = `${i}\u0000${[...as.slice(0, i), '', ...as.slice(i + 1)].join('.')}`;
        if (!bySlot.has(slot)) bySlot.set(slot, []);
        bySlot.get(slot)!.push({ a, segs: as });
      }
    }
    for (const r of d.removed) {
      const segs = r.key.split('.');
      // one segment renamed (index-aware: blocks.N. → spatial_blocks.N.)
      for (let i = 0; i < segs.length; i++) {
        const slot = `${i}\u0000${[...segs.slice(0, i), '', ...segs.slice(i + 1)].join('.')}`;
        for (const { a, segs: as } of bySlot.get(slot) ?? []) {
          if (as[i] === segs[i]) continue;
          if (!same(a.sig.shape, r.sig.shape)) continue;
          const numbered = /^\d+$/.test(segs[i + 1] ?? '');
          const f = numbered ? `${escPat(segs[i]!)}.(\\d+).` : `${escPat(segs[i]!)}.`;
          const t = numbered ? `${as[i]}.$1.` : `${as[i]}.`;
          const id = `${f}\u0000${t}`;
          const v = votes.get(id) ?? { from: f, to: t, n: 0 };
          v.n++;
          votes.set(id, v);
        }
      }
      // a prefix on one side (the model adds `model.`, or the checkpoint has one), up to 2 segments
      for (let k = 1; k <= 2; k++) {
        for (const a of addedBySuffix.get(`${k}\u0000${r.key}`) ?? []) {
          if (!same(a.sig.shape, r.sig.shape)) continue;
          const p = a.key.slice(0, a.key.length - r.key.length);
          const id = `^(.*)\u0000${p}`;
          const v = votes.get(id) ?? { from: '^(.+)$', to: `${p}$1`, n: 0 };
          v.n++;
          votes.set(id, v);
        }
        if (segs.length > k) {
          const a = addedSet.get(segs.slice(k).join('.'));
          if (a && same(a.sig.shape, r.sig.shape)) {
            const p = segs.slice(0, k).join('.') + '.';
            const id = `${p}\u0000`;
            const v = votes.get(id) ?? { from: `^${escPat(p)}(.+)$`, to: '$1', n: 0 };
            v.n++;
            votes.set(id, v);
          }
        }
      }
    }
    // each candidate costs a resolve of the whole checkpoint: try the best-supported ones only
    let tried = 0;
    for (const v of [...votes.values()].sort((a, b) => b.n - a.n)) {
      if (v.n < 2 && !(d.removed.length === 1 && d.added.length === 1)) continue;
      if (++tried > MAX_RENAME_CANDIDATES) break;
      const op: Op = { op: 'renamePattern', from: v.from, to: v.to };
      const sig = after({ format: 'sorac.migration/1', name: 'probe', ops: [op] }, cur);
      if (!sig) continue;
      const before = score(rawDiff(cur, to));
      const s = score(rawDiff(sig, to));
      if (s >= before) continue;
      push(op, `renames ${v.n} key(s) that exist in TO with the same shape`);
      cur = sig;
    }
    d = rawDiff(cur, to);
    // single leftover pairs with a unique (shape, dtype, last segment) match (indexed: linear, not R x A)
    const used = new Set<string>();
    const pairKey = (e: DiffEntry) => `${e.key.split('.').pop()}\u0000${e.sig.shape.join(',')}\u0000${e.sig.dtype}`;
    const addedByPair = new Map<string, DiffEntry[]>();
    for (const a of d.added) addedByPair.set(pairKey(a), [...(addedByPair.get(pairKey(a)) ?? []), a].slice(0, 2));
    const removedPerPair = new Map<string, number>();
    for (const o of d.removed) removedPerPair.set(pairKey(o), (removedPerPair.get(pairKey(o)) ?? 0) + 1);
    for (const r of d.removed) {
      const pk = pairKey(r);
      const cands = (addedByPair.get(pk) ?? []).filter((a) => !used.has(a.key));
      if (cands.length === 1 && (addedByPair.get(pk) ?? []).length === 1 && removedPerPair.get(pk) === 1) {
        used.add(cands[0]!.key);
        push({ op: 'rename', from: r.key, to: cands[0]!.key }, 'the only key of this shape, dtype and name ending on both sides');
      }
    }
    if (used.size) cur = after({ format: 'sorac.migration/1', name: 'probe', ops }, from) ?? cur;
  }

  // 3. per-key shape fixes and casts
  d = rawDiff(cur, to);
  const unmatched: Unmatched[] = [];
  for (const r of d.reshaped) {
    const a = r.from.shape;
    const b = r.to.shape;
    let op: Op | undefined;
    let why = '';
    if (b.length === a.length + 1) {
      const dd = b.findIndex((v, i) => v === 1 && same([...b.slice(0, i), ...b.slice(i + 1)], a));
      if (dd >= 0) (op = { op: 'unsqueeze', key: r.key, dim: dd }), (why = `insert a unit dim at ${dd}`);
    } else if (a.length === b.length + 1) {
      const dd = a.findIndex((v, i) => v === 1 && same([...a.slice(0, i), ...a.slice(i + 1)], b));
      if (dd >= 0) (op = { op: 'squeeze', key: r.key, dim: dd }), (why = `remove the unit dim ${dd}`);
    }
    if (!op && a.length === 2 && b.length === 2 && a[0] === b[1] && a[1] === b[0] && a[0] !== a[1]) (op = { op: 'permute', key: r.key, perm: [1, 0] }), (why = 'transpose ([in,out] vs [out,in])');
    if (!op && a.length === b.length && a.slice(1).every((v, i) => v === b[i + 1])) {
      op = b[0]! > a[0]! ? { op: 'pad', key: r.key, dim: 0, after: b[0]! - a[0]!, mode: 'repeat-last' } : { op: 'slice', key: r.key, dim: 0, start: 0, end: b[0]! };
      why = b[0]! > a[0]! ? `grow ${a[0]} → ${b[0]} rows by repeating the last row (review: zeros may suit better)` : `keep the first ${b[0]} of ${a[0]} rows (lossy)`;
    }
    if (!op && numel(a) === numel(b)) (op = { op: 'reshape', key: r.key, from: a, to: b }), (why = 'same element count: reshape (check the memory layout first)');
    if (op) {
      push(op, `${r.key}: ${why}`);
      if (r.from.dtype !== r.to.dtype) push({ op: 'cast', key: r.key, from: r.from.dtype, to: r.to.dtype }, `${r.key}: ${r.from.dtype} → ${r.to.dtype}`);
    } else unmatched.push({ key: r.key, side: 'from', sig: r.from, reason: `shape ${fmt(r.from)} vs ${fmt(r.to)} in TO: no rule relates them (element counts ${numel(a)} vs ${numel(b)})`, proposal: 'none: write the op by hand' });
  }
  // casts: one pattern op when every tensor of a dtype changes the same way ("bf16 checkpoint, f32 model")
  const castGroups = new Map<string, typeof d.retyped>();
  for (const r of d.retyped) {
    const g = `${r.from.dtype}>${r.to.dtype}`;
    const list = castGroups.get(g);
    if (list) list.push(r);
    else castGroups.set(g, [r]);
  }
  for (const items of castGroups.values()) {
    const { dtype: from } = items[0]!.from;
    const { dtype: to } = items[0]!.to;
    const all = [...cur.values()].filter((s) => s.dtype === from).length;
    const clean = ![...cur.values()].some((s) => s.dtype === to);
    if (items.length >= 2 && items.length === all && clean) push({ op: 'cast', key: '(.+)', from, to }, `all ${items.length} ${from} tensors → ${to}`);
    else for (const r of items) push({ op: 'cast', key: r.key, from, to }, `${r.key}: ${from} → ${to}`);
  }

  // 4. leftovers
  // the nearest key of the other side, for the explanation: a key sharing >= 2 leading/trailing
  // segments shares its first or last one, so only those are compared (bounded per key)
  const indexOf = (pool: DiffEntry[]) => {
    const byFirst = new Map<string, DiffEntry[]>();
    const byLast = new Map<string, DiffEntry[]>();
    const pos = new Map<DiffEntry, number>(pool.map((p, i) => [p, i]));
    const segsOf = new Map<DiffEntry, string[]>();
    for (const p of pool) {
      const ps = p.key.split('.');
      segsOf.set(p, ps);
      for (const [m, seg] of [[byFirst, ps[0]!], [byLast, ps[ps.length - 1]!]] as const) {
        const l = m.get(seg);
        if (l) l.push(p);
        else m.set(seg, [p]);
      }
    }
    return { byFirst, byLast, pos, segsOf };
  };
  const pools = new Map<DiffEntry[], ReturnType<typeof indexOf>>();
  const near = (key: string, pool: DiffEntry[]): DiffEntry | undefined => {
    const segs = key.split('.');
    let best: DiffEntry | undefined;
    let bestN = 0;
    let idx = pools.get(pool);
    if (!idx) pools.set(pool, (idx = indexOf(pool)));
    let ordered = pool;
    if (pool.length > MAX_NEAR_CANDIDATES) {
      const cands = new Set((idx.byLast.get(segs[segs.length - 1]!) ?? []).slice(0, MAX_NEAR_CANDIDATES));
      for (const p of (idx.byFirst.get(segs[0]!) ?? []).slice(0, MAX_NEAR_CANDIDATES)) cands.add(p);
      // in pool order, so ties resolve as an exhaustive scan would
      ordered = [...cands].sort((a, b) => idx.pos.get(a)! - idx.pos.get(b)!);
    }
    for (const p of ordered) {
      const ps = idx.segsOf.get(p)!;
      let n = 0;
      while (n < segs.length && n < ps.length && segs[segs.length - 1 - n] === ps[ps.length - 1 - n]) n++;
      let m = 0;
      while (m < segs.length && m < ps.length && segs[m] === ps[m]) m++;
      if (n + m > bestN) (best = p), (bestN = n + m);
    }
    return bestN >= 2 ? best : undefined;
  };
  for (const r of d.removed) {
    const n = near(r.key, d.added);
    push({ op: 'drop', key: r.key }, `${r.key}: not in TO`);
    unmatched.push({ key: r.key, side: 'from', sig: r.sig, reason: n ? `no key of this name in TO; the nearest, ${n.key} ${fmt(n.sig)}, ${same(n.sig.shape, r.sig.shape) ? 'has the same shape but no rename rule explains the pair' : 'has a different shape'}` : 'no key of this name in TO and no similar key', proposal: 'drop (not invertible)' });
  }
  for (const a of d.added) {
    const n = near(a.key, d.removed);
    push({ op: 'init', key: a.key, shape: a.sig.shape, dtype: a.sig.dtype, fill: { kind: 'zeros' } }, `${a.key}: new in TO; zeros (review: the model may initialise it otherwise)`);
    unmatched.push({ key: a.key, side: 'to', sig: a.sig, reason: n ? `no source in FROM; the nearest, ${n.key} ${fmt(n.sig)}, ${same(n.sig.shape, a.sig.shape) ? 'has the same shape but no rename rule explains the pair' : 'has a different shape'}` : 'no source in FROM', proposal: 'init zeros (review)' });
  }

  const plan: Plan = { format: 'sorac.migration/1', name: opts.name ?? 'migration', ops };
  const final = after(plan, from);
  const complete = !!final && score(rawDiff(final, to)) === 0 && !unmatched.some((u) => u.proposal.startsWith('none'));
  return {
    empty: score(base) === 0,
    counts: { from: from.size, to: to.size, same: base.same },
    added: base.added,
    removed: base.removed,
    reshaped: base.reshaped,
    retyped: base.retyped,
    builtins,
    plan,
    reasons,
    unmatched,
    complete,
  };
}
