/**
 * Resolve a plan against a checkpoint's signature (keys, shapes, dtypes; no tensor data): run the
 * ops symbolically, check that each fits, and produce for every output key an expression over
 * source tensors. Nothing is read here; apply.ts evaluates the expressions one output at a time.
 */
import { constants as bufferConstants } from 'node:buffer';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { keyMatcher, fillTemplate, describeOp, invertOp, isPattern, patternRenamer, type Fill, type Op, type Plan } from './plan.ts';

export interface Sig {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export type Expr =
  | { readonly k: 'src'; readonly key: string }
  /** same bytes, new shape (reshape / squeeze / unsqueeze) */
  | { readonly k: 'view'; readonly of: Node }
  | { readonly k: 'permute'; readonly of: Node; readonly perm: readonly number[] }
  | { readonly k: 'slice'; readonly of: Node; readonly dim: number; readonly start: number; readonly end: number }
  | { readonly k: 'concat'; readonly of: readonly Node[]; readonly dim: number }
  | { readonly k: 'pad'; readonly of: Node; readonly dim: number; readonly before: number; readonly after: number; readonly mode: 'zeros' | 'ones' | 'repeat-last' }
  | { readonly k: 'tile'; readonly of: Node; readonly dim: number; readonly times: number }
  | { readonly k: 'scale'; readonly of: Node; readonly factor: number }
  | { readonly k: 'cast'; readonly of: Node; readonly to: DType }
  | { readonly k: 'init'; readonly fill: Fill };

export interface Node {
  readonly sig: Sig;
  readonly expr: Expr;
}

export interface OpReport {
  readonly op: string;
  readonly matched: number;
}

export interface Resolved {
  /** output key → how to compute it (insertion order = input order, new keys last) */
  readonly tensors: ReadonlyMap<string, Node>;
  readonly ops: OpReport[];
  /** SORA6009 / SORA6010 warnings */
  readonly warnings: { code: 'SORA6009' | 'SORA6010'; message: string }[];
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

/** Run `plan` over `input` (key → signature). Throws SoracError (SORA6002/6004) when an op does not fit. */
export function resolvePlan(plan: Plan, input: ReadonlyMap<string, Sig>): Resolved {
  let state = new Map<string, Node>();
  for (const [k, sig] of input) state.set(k, { sig, expr: { k: 'src', key: k } });
  const ops: OpReport[] = [];
  const warnings: Resolved['warnings'] = [];
  plan.ops.forEach((op, i) => {
    const where = `${plan.name}: op #${i + 1} (${describeOp(op)})`;
    const fail = (msg: string, hint?: string): never => {
      throw new SoracError('SORA6002', `${where}: ${msg}`, { hint });
    };
    const prev = new Map(state);
    const r = applyOp(op, state, fail, where, warnings);
    for (const [k, n] of r.state) if (prev.get(k) !== n) checkMaterialised(k, n, where);
    state = r.state;
    ops.push({ op: describeOp(op), matched: r.matched });
    if (r.matched === 0) warnings.push({ code: 'SORA6009', message: `${where} matched no key` });
  });
  return { tensors: state, ops, warnings };
}

/**
 * The largest tensor an op may materialise in memory (init, pad, tile, permute, cast, … — not the
 * renames and dim-0 slices/concats that are streamed from the source). Default 2 GiB; raised with
 * SORAC_MIGRATE_MAX_TENSOR_MB up to the engine's typed-array limit.
 */
export function maxMaterialisedBytes(): number {
  const hard = bufferConstants.MAX_LENGTH;
  const v = process.env.SORAC_MIGRATE_MAX_TENSOR_MB;
  if (v === undefined || v === '') return Math.min(2 ** 31, hard);
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new SoracError('SORA6021', `SORAC_MIGRATE_MAX_TENSOR_MB=${v} is not a positive number`, { hint: 'unset it or set a size in MiB' });
  return Math.min(Math.floor(n * 2 ** 20), hard);
}

function checkMaterialised(key: string, n: Node, where: string): void {
  if (byteRanges(n)) return; // streamed, never held in memory
  const bytes = numel(n.sig.shape) * DTYPE_SIZE[n.sig.dtype];
  const max = maxMaterialisedBytes();
  if (bytes <= max) return;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 30 ? 1 : 0)} MiB`;
  const hard = bufferConstants.MAX_LENGTH;
  throw new SoracError('SORA6021', `${where}: ${key} ${fmt(n.sig.shape)} ${n.sig.dtype} would be ${Number.isSafeInteger(bytes) ? mib(bytes) : 'more than 2^53 bytes'}, over the limit of ${mib(max)} for one tensor built in memory`, {
    hint: max < hard ? `check the shape; if it is right, raise the limit with SORAC_MIGRATE_MAX_TENSOR_MB (at most ${Math.floor(hard / 2 ** 20)}, this engine's typed-array limit; docs/security.md#limits)` : `this is the engine's typed-array limit (${mib(hard)}); split the tensor, or produce it outside sorac`,
  });
}

function normDim(dim: number, rank: number, fail: (m: string) => never, key: string): number {
  const d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) fail(`dim ${dim} is out of range for ${key} (rank ${rank})`);
  return d;
}

/** Keys matching a selector, in sorted order, with their captures. */
function select(sel: string, state: Map<string, Node>): [string, string[]][] {
  // a literal key is one lookup, not a sort and scan of every key (plans of 10k per-key ops)
  if (!isPattern(sel)) return state.has(sel) ? [[sel, [sel]]] : [];
  const m = keyMatcher(sel);
  const out: [string, string[]][] = [];
  for (const k of [...state.keys()].sort()) {
    const c = m(k);
    if (c) out.push([k, c]);
  }
  return out;
}

/** Replace `key` by `node` in place (same position). */
function replace(state: Map<string, Node>, key: string, node: Node) {
  state.set(key, node);
}

function applyOp(op: Op, state: Map<string, Node>, fail: (m: string, h?: string) => never, where: string, warnings: Resolved['warnings']): { state: Map<string, Node>; matched: number } {
  const collide = (k: string, from: string): never => {
    throw new SoracError('SORA6004', `${where}: ${from} would become ${k}, which already exists`, { hint: 'drop or rename the existing tensor first, or fix the pattern' });
  };
  switch (op.op) {
    case 'rename':
    case 'renamePattern': {
      const f = op.op === 'rename' ? (k: string) => (k === op.from ? op.to : undefined) : patternRenamer(op.from, op.to);
      const next = new Map<string, Node>();
      const origin = new Map<string, string>();
      let matched = 0;
      const moved = new Map<string, string>();
      for (const k of state.keys()) {
        const t = f(k);
        if (t !== undefined && t !== k) moved.set(k, t);
      }
      for (const [k, node] of state) {
        const t = moved.get(k) ?? k;
        if (moved.has(k)) matched++;
        if (next.has(t)) {
          const other = origin.get(t)!;
          throw new SoracError('SORA6004', `${where}: ${moved.has(k) ? k : other} and ${moved.has(k) ? other : k} would both be named ${t}`, { hint: 'fix the pattern so that it maps keys one to one' });
        }
        next.set(t, node);
        origin.set(t, k);
      }
      if (op.op === 'renamePattern' && matched) {
        // exact reversibility on this key set: the inverse must map the result back, key by key
        const inv = invertOp(op);
        if ('ops' in inv) {
          const g = patternRenamer((inv.ops[0] as { from: string }).from, (inv.ops[0] as { to: string }).to);
          const bad = [...next.keys()].find((k) => (g(k) ?? k) !== origin.get(k));
          if (bad) warnings.push({ code: 'SORA6010', message: `${where} is not exactly reversible on this checkpoint: reversing would rename ${bad} to ${g(bad) ?? bad}, not ${origin.get(bad)}` });
        }
      }
      if (op.op === 'rename' && matched === 0 && state.has(op.to)) return { state, matched: 0 };
      return { state: next, matched };
    }
    case 'drop': {
      const hits = select(op.key, state);
      for (const [k] of hits) state.delete(k);
      return { state, matched: hits.length };
    }
    case 'init': {
      if (state.has(op.key)) collide(op.key, 'init');
      state.set(op.key, { sig: { shape: op.shape, dtype: op.dtype }, expr: { k: 'init', fill: op.fill } });
      return { state, matched: 1 };
    }
    case 'split': {
      const hits = select(op.key, state);
      const next = new Map<string, Node>();
      const targets = new Map<string, string[]>();
      for (const [k, caps] of hits) targets.set(k, op.into.map((t) => fillTemplate(t, caps)));
      for (const [k, node] of state) {
        const into = targets.get(k);
        if (!into) {
          next.set(k, node);
          continue;
        }
        const { shape } = node.sig;
        const d = normDim(op.dim, shape.length, fail, k);
        const known = op.sizes.reduce((a, s) => a + (s === -1 ? 0 : s), 0);
        const sizes = op.sizes.map((s) => (s === -1 ? shape[d]! - known : s));
        if (sizes.some((s) => s < 0) || sizes.reduce((a, b) => a + b, 0) !== shape[d]) fail(`${k} has ${shape[d]} along dim ${d}, but the sizes ${fmt(op.sizes)} add up to ${known}`);
        let start = 0;
        into.forEach((t, j) => {
          if ((state.has(t) && !targets.has(t)) || next.has(t)) collide(t, k);
          const s = [...shape];
          s[d] = sizes[j]!;
          next.set(t, { sig: { shape: s, dtype: node.sig.dtype }, expr: { k: 'slice', of: node, dim: d, start, end: start + sizes[j]! } });
          start += sizes[j]!;
        });
      }
      return { state: next, matched: hits.length };
    }
    case 'concat': {
      const hits = select(op.from[0]!, state);
      const groups: { parts: string[]; to: string }[] = [];
      for (const [k, caps] of hits) {
        const parts = [k, ...op.from.slice(1).map((t) => fillTemplate(t, caps))];
        const absent = parts.filter((p) => !state.has(p));
        if (absent.length) fail(`${absent.join(', ')} not found (needed with ${k})`);
        groups.push({ parts, to: fillTemplate(op.to, caps) });
      }
      const consumed = new Set(groups.flatMap((g) => g.parts));
      const next = new Map<string, Node>();
      const made = new Map<string, Node>();
      for (const g of groups) {
        const nodes = g.parts.map((p) => state.get(p)!);
        const r0 = nodes[0]!.sig.shape;
        const d = normDim(op.dim, r0.length, fail, g.parts[0]!);
        for (const [j, n] of nodes.entries()) {
          if (n.sig.dtype !== nodes[0]!.sig.dtype) fail(`${g.parts[j]} is ${n.sig.dtype} but ${g.parts[0]} is ${nodes[0]!.sig.dtype}`, 'cast the parts to one dtype first');
          if (n.sig.shape.length !== r0.length || n.sig.shape.some((v, a) => a !== d && v !== r0[a])) fail(`${g.parts[j]} ${fmt(n.sig.shape)} does not fit ${g.parts[0]} ${fmt(r0)} along dim ${d}`);
          if (op.sizes && n.sig.shape[d] !== op.sizes[j]) fail(`${g.parts[j]} has ${n.sig.shape[d]} along dim ${d}, the op says ${op.sizes[j]}`);
        }
        const s = [...r0];
        s[d] = nodes.reduce((a, n) => a + n.sig.shape[d]!, 0);
        if ((state.has(g.to) && !consumed.has(g.to)) || made.has(g.to)) collide(g.to, g.parts.join(' + '));
        made.set(g.to, { sig: { shape: s, dtype: nodes[0]!.sig.dtype }, expr: { k: 'concat', of: nodes, dim: d } });
      }
      // the fused tensor takes the place of its first part
      const firstOf = new Map(groups.map((g) => [g.parts[0]!, g.to]));
      for (const [k, node] of state) {
        if (firstOf.has(k)) next.set(firstOf.get(k)!, made.get(firstOf.get(k)!)!);
        else if (!consumed.has(k)) next.set(k, node);
      }
      return { state: next, matched: hits.length };
    }
    case 'cast': {
      // with a pattern, `from` selects: "cast every bf16 tensor to f32"; with an exact key it is checked
      let hits = select(op.key, state);
      if (op.from && isPattern(op.key)) {
        const already = hits.filter(([k]) => state.get(k)!.sig.dtype === op.to && op.to !== op.from);
        if (already.length) warnings.push({ code: 'SORA6010', message: `${where}: ${already[0]![0]}${already.length > 1 ? ` and ${already.length - 1} more` : ''} already ${op.to}; the reverse cast would convert ${already.length > 1 ? 'them' : 'it'} too` });
        hits = hits.filter(([k]) => state.get(k)!.sig.dtype === op.from);
      }
      for (const [k] of hits) replace(state, k, shapeOp(op, k, state.get(k)!, fail));
      return { state, matched: hits.length };
    }
    default: {
      const hits = select(op.key, state);
      for (const [k] of hits) replace(state, k, shapeOp(op, k, state.get(k)!, fail));
      return { state, matched: hits.length };
    }
  }
}

function shapeOp(op: Op, key: string, node: Node, fail: (m: string, h?: string) => never): Node {
  const { shape, dtype } = node.sig;
  const view = (s: readonly number[]): Node => ({ sig: { shape: s, dtype }, expr: node.expr.k === 'view' ? node.expr : { k: 'view', of: node } });
  switch (op.op) {
    case 'unsqueeze': {
      const d = op.dim < 0 ? op.dim + shape.length + 1 : op.dim;
      if (d < 0 || d > shape.length) fail(`dim ${op.dim} is out of range for ${key} ${fmt(shape)}`);
      return view([...shape.slice(0, d), 1, ...shape.slice(d)]);
    }
    case 'squeeze': {
      const d = normDim(op.dim, shape.length, fail, key);
      if (shape[d] !== 1) fail(`${key} ${fmt(shape)} has ${shape[d]} at dim ${d}, not 1`);
      return view([...shape.slice(0, d), ...shape.slice(d + 1)]);
    }
    case 'reshape': {
      if (op.from && !same(op.from, shape)) fail(`${key} is ${fmt(shape)}, the op expects ${fmt(op.from)}`);
      const known = op.to.filter((d) => d !== -1);
      const wild = op.to.length - known.length;
      if (wild > 1) fail('at most one -1 in a reshape');
      const to = op.to.map((d) => (d === -1 ? numel(shape) / Math.max(1, numel(known)) : d));
      if (!to.every(Number.isInteger) || numel(to) !== numel(shape)) fail(`${key} ${fmt(shape)} (${numel(shape)} elements) cannot be reshaped to ${fmt(op.to)}`);
      return view(to);
    }
    case 'permute': {
      if (op.perm.length !== shape.length) fail(`perm ${fmt(op.perm)} has ${op.perm.length} dims, ${key} has ${shape.length}`);
      return { sig: { shape: op.perm.map((p) => shape[p]!), dtype }, expr: { k: 'permute', of: node, perm: op.perm } };
    }
    case 'slice': {
      const d = normDim(op.dim, shape.length, fail, key);
      const n = shape[d]!;
      const norm = (v: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
      const start = norm(op.start);
      const end = norm(op.end);
      if (end < start) fail(`slice [${op.start}:${op.end}] of ${n} rows is empty`);
      const s = [...shape];
      s[d] = end - start;
      return { sig: { shape: s, dtype }, expr: { k: 'slice', of: node, dim: d, start, end } };
    }
    case 'pad': {
      const d = normDim(op.dim, shape.length, fail, key);
      if (op.mode === 'repeat-last' && shape[d] === 0) fail(`${key} has no row to repeat along dim ${d}`);
      const s = [...shape];
      s[d] = shape[d]! + (op.before ?? 0) + op.after;
      return { sig: { shape: s, dtype }, expr: { k: 'pad', of: node, dim: d, before: op.before ?? 0, after: op.after, mode: op.mode } };
    }
    case 'tile': {
      const d = normDim(op.dim, shape.length, fail, key);
      const s = [...shape];
      s[d] = shape[d]! * op.times;
      return { sig: { shape: s, dtype }, expr: { k: 'tile', of: node, dim: d, times: op.times } };
    }
    case 'untile': {
      const d = normDim(op.dim, shape.length, fail, key);
      if (shape[d]! % op.times) fail(`${key} has ${shape[d]} along dim ${d}, not a multiple of ${op.times}`);
      const s = [...shape];
      s[d] = shape[d]! / op.times;
      return { sig: { shape: s, dtype }, expr: { k: 'slice', of: node, dim: d, start: 0, end: s[d]! } };
    }
    case 'scale':
      if (!['f64', 'f32', 'f16', 'bf16'].includes(dtype)) fail(`${key} is ${dtype}; only float tensors can be scaled`);
      return { sig: node.sig, expr: { k: 'scale', of: node, factor: op.factor } };
    case 'cast': {
      if (op.from && op.from !== dtype) fail(`${key} is ${dtype}, the op expects ${op.from}`);
      if (op.to === dtype) return node;
      const fl = (d: DType) => d === 'f64' || d === 'f32' || d === 'f16' || d === 'bf16';
      const int = (d: DType) => d === 'i64' || d === 'i32' || d === 'i16' || d === 'i8' || d === 'u8';
      if (!((fl(dtype) && fl(op.to)) || (int(dtype) && int(op.to)))) fail(`${key}: ${dtype} → ${op.to} is not a supported cast`, 'casts are float↔float (f64/f32/f16/bf16) or int↔int (i64/i32/i16/i8/u8)');
      return { sig: { shape, dtype: op.to }, expr: { k: 'cast', of: node, to: op.to } };
    }
    default:
      throw new Error(`unreachable: ${op.op}`);
  }
}

/** Byte size of a signature. */
export const byteSize = (s: Sig) => numel(s.shape) * DTYPE_SIZE[s.dtype];

/** The source keys an expression reads. */
export function sourcesOf(n: Node, out = new Set<string>()): Set<string> {
  const e = n.expr;
  if (e.k === 'src') out.add(e.key);
  else if (e.k === 'concat') for (const p of e.of) sourcesOf(p, out);
  else if (e.k !== 'init') sourcesOf(e.of, out);
  return out;
}

/** True when the output bytes are exactly one source's bytes (a rename/reshape): streamed without loading. */
export function passThrough(n: Node): string | undefined {
  const e = n.expr;
  if (e.k === 'src') return e.key;
  if (e.k === 'view') return passThrough(e.of);
  return undefined;
}

export interface ByteRange {
  readonly key: string;
  readonly start: number;
  readonly end: number;
}

/**
 * When the output's bytes are a sequence of contiguous byte ranges of source tensors (renames,
 * reshapes, dim-0 splits/slices and dim-0 concatenations such as fused ↔ unfused qkv), those
 * ranges: the output is then streamed from the source files without materialising anything.
 */
export function byteRanges(n: Node): ByteRange[] | undefined {
  const e = n.expr;
  const es = DTYPE_SIZE[n.sig.dtype];
  switch (e.k) {
    case 'src':
      return [{ key: e.key, start: 0, end: byteSize(n.sig) }];
    case 'view':
      return byteRanges(e.of);
    case 'slice': {
      if (numel(e.of.sig.shape.slice(0, e.dim)) !== 1) return undefined;
      const inner = numel(e.of.sig.shape.slice(e.dim + 1)) * es;
      const r = byteRanges(e.of);
      return r && subRanges(r, e.start * inner, e.end * inner);
    }
    case 'concat': {
      if (numel(n.sig.shape.slice(0, e.dim)) !== 1) return undefined;
      const out: ByteRange[] = [];
      for (const p of e.of) {
        const r = byteRanges(p);
        if (!r) return undefined;
        out.push(...r);
      }
      return out;
    }
    default:
      return undefined;
  }
}

function subRanges(rs: readonly ByteRange[], from: number, to: number): ByteRange[] {
  const out: ByteRange[] = [];
  let pos = 0;
  for (const r of rs) {
    const len = r.end - r.start;
    const a = Math.max(from, pos);
    const b = Math.min(to, pos + len);
    if (b > a) out.push({ key: r.key, start: r.start + (a - pos), end: r.start + (b - pos) });
    pos += len;
  }
  return out;
}
