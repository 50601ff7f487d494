/**
 * Migration plans: the executed form of a migration is data. A plan is an ordered list of ops
 * over checkpoint keys; `sorac migrate apply` only ever interprets this JSON (a `.ts` migration
 * script is evaluated to produce it, see script.ts). See docs/adr/004-migrations-as-data.md.
 *
 * Key selectors and patterns: a `key` is either an exact key, or a pattern when it contains a
 * capture group `( … )`. Outside groups every character is literal (so `.` is a dot); inside a
 * group it is a regular expression. Shape ops match patterns against the whole key; `$1`…`$9`
 * in target templates refer to the captures. `renamePattern` matches at the start of a key
 * segment (start of key or after a `.`), first occurrence only, and may be anchored with a
 * leading `^` / trailing `$`.
 *
 * Groups use RE2 syntax and are matched by RE2JS, a linear-time engine: a plan is untrusted data,
 * and a backtracking engine spins for minutes on `((a+)+)$` against a few dozen characters
 * (issue 14). Lookarounds and back-references, which need backtracking, are refused.
 */
import { createHash } from 'node:crypto';
import { RE2JS } from 're2js';
import { type DType, isDType } from '../../core/dtype.ts';
import { canonicalJson } from '../../core/keymap.ts';
import { SoracError } from '../../core/errors.ts';

export type Fill = { readonly kind: 'zeros' } | { readonly kind: 'ones' } | { readonly kind: 'normal'; readonly mean: number; readonly std: number; readonly seed: number };

export type Op =
  /** exact whole-key rename */
  | { readonly op: 'rename'; readonly from: string; readonly to: string }
  /** pattern rename with captures: `blocks.(\d+).` → `spatial_blocks.$1.` */
  | { readonly op: 'renamePattern'; readonly from: string; readonly to: string }
  | { readonly op: 'drop'; readonly key: string }
  | { readonly op: 'unsqueeze'; readonly key: string; readonly dim: number }
  | { readonly op: 'squeeze'; readonly key: string; readonly dim: number }
  /** `from` (the shape before) makes it invertible */
  | { readonly op: 'reshape'; readonly key: string; readonly to: readonly number[]; readonly from?: readonly number[] }
  | { readonly op: 'permute'; readonly key: string; readonly perm: readonly number[] }
  /** split along `dim` into `into` (templates) of `sizes` (one may be -1: the rest) */
  | { readonly op: 'split'; readonly key: string; readonly dim: number; readonly into: readonly string[]; readonly sizes: readonly number[] }
  /** concatenate `from` (first is the selector, the rest templates) along `dim`; `sizes` makes it invertible */
  | { readonly op: 'concat'; readonly from: readonly string[]; readonly dim: number; readonly to: string; readonly sizes?: readonly number[] }
  /** keep [start, end) along dim (end may be negative: from the end) */
  | { readonly op: 'slice'; readonly key: string; readonly dim: number; readonly start: number; readonly end: number }
  /** grow along dim by `before`/`after` rows: zeros, ones, or copies of the last (first, for before) row */
  | { readonly op: 'pad'; readonly key: string; readonly dim: number; readonly before?: number; readonly after: number; readonly mode: 'zeros' | 'ones' | 'repeat-last' }
  /** repeat the whole extent of `dim` `times` times (new index j reads old index j mod n) */
  | { readonly op: 'tile'; readonly key: string; readonly dim: number; readonly times: number }
  /** keep the first 1/times of `dim` (the inverse of tile) */
  | { readonly op: 'untile'; readonly key: string; readonly dim: number; readonly times: number }
  /** multiply float values by `factor` (exactly invertible for powers of two, barring underflow) */
  | { readonly op: 'scale'; readonly key: string; readonly factor: number }
  | { readonly op: 'cast'; readonly key: string; readonly to: DType; readonly from?: DType }
  | { readonly op: 'init'; readonly key: string; readonly shape: readonly number[]; readonly dtype: DType; readonly fill: Fill };

export type OpName = Op['op'];

export interface Plan {
  readonly format: 'sorac.migration/1';
  readonly name: string;
  readonly description?: string;
  readonly ops: readonly Op[];
}

export const OP_NAMES: readonly OpName[] = ['rename', 'renamePattern', 'drop', 'unsqueeze', 'squeeze', 'reshape', 'permute', 'split', 'concat', 'slice', 'pad', 'tile', 'untile', 'scale', 'cast', 'init'];

// ---- patterns -------------------------------------------------------------------------------------

interface Parsed {
  /** alternating literal / group parts */
  readonly parts: readonly ({ lit: string } | { group: string })[];
  readonly anchorStart: boolean;
  readonly anchorEnd: boolean;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Split a key pattern into literal text and `( … )` groups (nested parens inside a group are allowed). */
export function parsePattern(p: string): Parsed {
  let s = p;
  let anchorStart = false;
  let anchorEnd = false;
  if (s.startsWith('^')) {
    anchorStart = true;
    s = s.slice(1);
  }
  if (s.endsWith('$') && !s.endsWith('\\$')) {
    anchorEnd = true;
    s = s.slice(0, -1);
  }
  const parts: ({ lit: string } | { group: string })[] = [];
  let lit = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      lit += s[++i];
      continue;
    }
    if (c !== '(') {
      lit += c;
      continue;
    }
    let depth = 1;
    let j = i + 1;
    for (; j < s.length && depth; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === '(') depth++;
      else if (s[j] === ')') depth--;
    }
    if (depth) throw new SoracError('SORA6001', `key pattern ${JSON.stringify(p)} has an unclosed "("`);
    if (lit) parts.push({ lit });
    lit = '';
    const group = s.slice(i + 1, j - 1);
    try {
      RE2JS.compile(group);
    } catch (e) {
      throw new SoracError('SORA6001', `key pattern ${JSON.stringify(p)}: group (${group}) is not a valid RE2 regular expression: ${(e as Error).message}`, {
        hint: 'groups use RE2 syntax (matched in linear time): no lookarounds (?=…) (?<=…) and no back-references \\1',
      });
    }
    parts.push({ group: group.startsWith('?:') ? group.slice(2) : group });
    i = j - 1;
  }
  if (lit) parts.push({ lit });
  return { parts, anchorStart, anchorEnd };
}

export const isPattern = (s: string) => /(^|[^\\])\(/.test(s);

function regexBody(p: Parsed): string {
  // each group becomes one capture; nested groups inside it are made non-capturing
  return p.parts.map((x) => ('lit' in x ? esc(x.lit) : `(${x.group.replace(/\((?!\?)/g, '(?:')})`)).join('');
}

/** Whole-key matcher for selectors (`key` of shape ops). */
export function keyMatcher(sel: string): (key: string) => string[] | undefined {
  if (!isPattern(sel)) return (k) => (k === sel ? [k] : undefined);
  const re = RE2JS.compile(`^${regexBody(parsePattern(sel))}$`);
  return (k) => {
    const m = re.matcher(k);
    if (!m.find()) return undefined;
    return Array.from({ length: m.groupCount() + 1 }, (_, i) => m.group(i) ?? undefined) as string[];
  };
}

/** Fill `$1`…`$9` (and `$$`) in a template from the captures of a match. */
export function fillTemplate(t: string, m: readonly string[]): string {
  return t.replace(/\$(\$|\d)/g, (_, d: string) => {
    if (d === '$') return '$';
    const v = m[Number(d)];
    if (v === undefined) throw new SoracError('SORA6001', `template ${JSON.stringify(t)} refers to $${d} but the selector has ${m.length - 1} group(s)`);
    return v;
  });
}

/** A segment-anchored, first-occurrence rename function for `renamePattern`. */
export function patternRenamer(from: string, to: string): (key: string) => string | undefined {
  const p = parsePattern(from);
  // RE2 has no lookbehind: the segment start is captured as group 1 ("" or ".") and skipped
  const re = RE2JS.compile(`${p.anchorStart ? '^()' : '(^|\\.)'}${regexBody(p)}${p.anchorEnd ? '$' : ''}`);
  return (k) => {
    const m = re.matcher(k);
    if (!m.find()) return undefined;
    const start = m.start() + m.group(1)!.length;
    const end = m.end();
    const groups = [k.slice(start, end), ...Array.from({ length: m.groupCount() - 1 }, (_, i) => m.group(i + 2) ?? undefined)] as string[];
    return k.slice(0, start) + fillTemplate(to, groups) + k.slice(end);
  };
}

/**
 * The inverse of a pattern rename, when one can be derived: `to` must be literal text and `$n`
 * references using every group of `from` exactly once. Returns undefined otherwise.
 */
export function invertRenamePattern(from: string, to: string): { from: string; to: string } | undefined {
  const p = parsePattern(from);
  const groups = p.parts.filter((x) => 'group' in x) as { group: string }[];
  const refs = [...to.matchAll(/\$(\d)/g)].map((m) => Number(m[1]));
  if (refs.length !== groups.length || new Set(refs).size !== refs.length || refs.some((r) => r < 1 || r > groups.length)) return undefined;
  if (/[()\\]/.test(to.replace(/\$\d/g, ''))) return undefined;
  // new selector: the literal text of `to` (escaped for the pattern syntax) with each $n replaced by group n's regex
  const escPat = (s: string) => s.replace(/[()\\]/g, '\\$&');
  let newFrom = '';
  let last = 0;
  const order: number[] = [];
  for (const m of to.matchAll(/\$(\d)/g)) {
    newFrom += escPat(to.slice(last, m.index));
    newFrom += `(${groups[Number(m[1]) - 1]!.group})`;
    order.push(Number(m[1]));
    last = m.index! + m[0].length;
  }
  newFrom += escPat(to.slice(last));
  // new template: the literal text of `from` with group k replaced by the $ position that carries it
  let newTo = '';
  let gi = 0;
  for (const x of p.parts) {
    if ('lit' in x) newTo += x.lit.replace(/\$/g, '$$$$');
    else {
      gi++;
      newTo += `$${order.indexOf(gi) + 1}`;
    }
  }
  return { from: `${p.anchorStart ? '^' : ''}${newFrom}${p.anchorEnd ? '$' : ''}`, to: newTo };
}

// ---- validation -------------------------------------------------------------------------------------

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => isInt(d) && d >= 0);

/** Validate untrusted JSON (a plan file, or what a script produced) into a Plan; throws SORA6001 naming the op. */
export function validatePlan(v: unknown, where = 'plan'): Plan {
  const bad = (msg: string): never => {
    throw new SoracError('SORA6001', `${where}: ${msg}`, { hint: 'see docs/cli/migrate.md for the op reference' });
  };
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad('expected an object {format, name, ops}');
  const o = v as Record<string, unknown>;
  if (o.format !== 'sorac.migration/1') bad(`format must be "sorac.migration/1" (got ${JSON.stringify(o.format)})`);
  if (!isStr(o.name)) bad('name must be a non-empty string');
  if (o.description !== undefined && typeof o.description !== 'string') bad('description must be a string');
  if (!Array.isArray(o.ops)) bad('ops must be an array');
  const ops = (o.ops as unknown[]).map((op, i) => validateOp(op, `${where}: op #${i + 1}`));
  return { format: 'sorac.migration/1', name: o.name as string, ...(o.description !== undefined ? { description: o.description as string } : {}), ops };
}

const FIELDS: Record<OpName, Record<string, (v: unknown) => boolean>> = {
  rename: { from: isStr, to: isStr },
  renamePattern: { from: isStr, to: (v) => typeof v === 'string' },
  drop: { key: isStr },
  unsqueeze: { key: isStr, dim: isInt },
  squeeze: { key: isStr, dim: isInt },
  reshape: { key: isStr, to: (v) => Array.isArray(v) && v.every((d) => isInt(d) && d >= -1), 'from?': isShape },
  permute: { key: isStr, perm: (v) => Array.isArray(v) && v.every(isInt) },
  split: { key: isStr, dim: isInt, into: (v) => Array.isArray(v) && v.length > 0 && v.every(isStr), sizes: (v) => Array.isArray(v) && v.every((d) => isInt(d) && d >= -1) },
  concat: { from: (v) => Array.isArray(v) && v.length > 0 && v.every(isStr), dim: isInt, to: isStr, 'sizes?': (v) => Array.isArray(v) && v.every((d) => isInt(d) && d >= 0) },
  slice: { key: isStr, dim: isInt, start: isInt, end: isInt },
  pad: { key: isStr, dim: isInt, 'before?': (v) => isInt(v) && v >= 0, after: (v) => isInt(v) && v >= 0, mode: (v) => v === 'zeros' || v === 'ones' || v === 'repeat-last' },
  tile: { key: isStr, dim: isInt, times: (v) => isInt(v) && v >= 1 },
  untile: { key: isStr, dim: isInt, times: (v) => isInt(v) && v >= 1 },
  scale: { key: isStr, factor: (v) => typeof v === 'number' && Number.isFinite(v) && v !== 0 },
  cast: { key: isStr, to: (v) => typeof v === 'string' && isDType(v), 'from?': (v) => typeof v === 'string' && isDType(v) },
  init: {
    key: isStr,
    shape: isShape,
    dtype: (v) => typeof v === 'string' && isDType(v),
    fill: (v) => {
      const f = v as Record<string, unknown>;
      if (!f || typeof f !== 'object') return false;
      if (f.kind === 'zeros' || f.kind === 'ones') return Object.keys(f).length === 1;
      return f.kind === 'normal' && typeof f.mean === 'number' && typeof f.std === 'number' && f.std >= 0 && isInt(f.seed) && Object.keys(f).length === 4;
    },
  },
};

export function validateOp(v: unknown, where: string): Op {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SoracError('SORA6001', `${where}: expected an object with an "op" field`);
  const o = v as Record<string, unknown>;
  const name = o.op as OpName;
  const spec = typeof name === 'string' && Object.hasOwn(FIELDS, name) ? FIELDS[name] : undefined; // not "__proto__", "constructor", …
  if (!spec) throw new SoracError('SORA6001', `${where}: unknown op ${JSON.stringify(o.op)}`, { hint: `ops: ${OP_NAMES.join(', ')}` });
  for (const [f, ok] of Object.entries(spec)) {
    const opt = f.endsWith('?');
    const k = opt ? f.slice(0, -1) : f;
    if (o[k] === undefined) {
      if (!opt) throw new SoracError('SORA6001', `${where} (${name}): missing field "${k}"`);
      continue;
    }
    if (!ok(o[k])) throw new SoracError('SORA6001', `${where} (${name}): invalid "${k}": ${JSON.stringify(o[k])}`);
  }
  const known = new Set(['op', ...Object.keys(spec).map((f) => f.replace(/\?$/, ''))]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new SoracError('SORA6001', `${where} (${name}): unknown field "${k}"`, { hint: `fields: ${[...known].join(', ')}` });
  for (const k of ['key', 'from', 'to']) if (typeof o[k] === 'string' && (name !== 'renamePattern' || k !== 'to')) parsePattern(o[k] as string);
  if ((name === 'rename' && (isPattern(o.from as string) || isPattern(o.to as string))) || (name === 'init' && isPattern(o.key as string)))
    throw new SoracError('SORA6001', `${where} (${name}): ${name === 'init' ? '"key"' : '"from"/"to"'} must be an exact key, not a pattern`, { hint: name === 'rename' ? 'use renamePattern for captures' : undefined });
  if (name === 'split') {
    if ((o.into as unknown[]).length !== (o.sizes as unknown[]).length) throw new SoracError('SORA6001', `${where} (split): into has ${(o.into as unknown[]).length} keys but sizes has ${(o.sizes as unknown[]).length}`);
    if ((o.sizes as number[]).filter((s) => s === -1).length > 1) throw new SoracError('SORA6001', `${where} (split): at most one size may be -1`);
  }
  if (name === 'concat' && o.sizes && (o.sizes as unknown[]).length !== (o.from as unknown[]).length) throw new SoracError('SORA6001', `${where} (concat): from has ${(o.from as unknown[]).length} keys but sizes has ${(o.sizes as unknown[]).length}`);
  if (name === 'permute') {
    const p = o.perm as number[];
    if (!p.every((d, _, a) => d >= 0 && d < a.length) || new Set(p).size !== p.length) throw new SoracError('SORA6001', `${where} (permute): perm ${JSON.stringify(p)} is not a permutation of 0..${p.length - 1}`);
  }
  // a plain copy of exactly the known fields (no prototype tricks, no extra data)
  const out: Record<string, unknown> = { op: name };
  for (const k of known) if (k !== 'op' && o[k] !== undefined) out[k] = JSON.parse(JSON.stringify(o[k]));
  return out as unknown as Op;
}

// ---- inversion -------------------------------------------------------------------------------------

/** The inverse op(s) of one op, or a reason why there is none. */
export function invertOp(op: Op): { ops: Op[] } | { reason: string } {
  switch (op.op) {
    case 'rename':
      return { ops: [{ op: 'rename', from: op.to, to: op.from }] };
    case 'renamePattern': {
      const inv = invertRenamePattern(op.from, op.to);
      return inv ? { ops: [{ op: 'renamePattern', ...inv }] } : { reason: `the target ${JSON.stringify(op.to)} does not use every capture of ${JSON.stringify(op.from)} exactly once` };
    }
    case 'drop':
      return { reason: 'dropped tensors cannot be recovered' };
    case 'unsqueeze':
      return { ops: [{ op: 'squeeze', key: sel(op.key), dim: op.dim }] };
    case 'squeeze':
      return { ops: [{ op: 'unsqueeze', key: sel(op.key), dim: op.dim }] };
    case 'reshape':
      if (!op.from) return { reason: 'reshape without "from" (the original shape) cannot be undone' };
      if (op.to.includes(-1)) return { reason: 'reshape to a shape with -1 cannot be undone as data (write the full target shape)' };
      return { ops: [{ op: 'reshape', key: sel(op.key), to: op.from, from: op.to }] };
    case 'permute': {
      const inv = new Array<number>(op.perm.length);
      op.perm.forEach((p, i) => (inv[p] = i));
      return { ops: [{ op: 'permute', key: sel(op.key), perm: inv }] };
    }
    case 'split': {
      if (op.sizes.includes(-1)) return { reason: 'split with a -1 size cannot be undone as data (give every size)' };
      const first = op.into[0]!;
      const rest = op.into.slice(1);
      // the concat selector is the first output (as a pattern when the split was one), the others templates
      return { ops: [{ op: 'concat', from: [toSelector(op.key, first), ...rest], dim: op.dim, to: op.key.includes('(') ? templateOf(op.key) : op.key, sizes: op.sizes }] };
    }
    case 'concat':
      if (!op.sizes) return { reason: 'concat without "sizes" cannot be undone (add sizes: the extent of each part along dim)' };
      return { ops: [{ op: 'split', key: toSelector(op.from[0]!, op.to), dim: op.dim, into: op.from.map((f, i) => (i === 0 ? (op.from[0]!.includes('(') ? templateOf(op.from[0]!) : f) : f)), sizes: op.sizes }] };
    case 'slice':
      return { reason: 'slice drops rows that cannot be recovered' };
    case 'pad':
      return { ops: [{ op: 'slice', key: sel(op.key), dim: op.dim, start: op.before ?? 0, end: -op.after || Number.MAX_SAFE_INTEGER }] };
    case 'tile':
      return { ops: [{ op: 'untile', key: sel(op.key), dim: op.dim, times: op.times }] };
    case 'untile':
      return { reason: 'untile keeps only the first block; the others cannot be recovered' };
    case 'scale': {
      const e = Math.log2(Math.abs(op.factor));
      return Number.isInteger(e) ? { ops: [{ op: 'scale', key: sel(op.key), factor: 1 / op.factor }] } : { reason: `scale by ${op.factor} is not exact in floating point (only powers of two are)` };
    }
    case 'cast': {
      if (!op.from) return { reason: 'cast without "from" (the original dtype) cannot be undone' };
      if (!WIDENING.has(`${op.from}>${op.to}`)) return { reason: `cast ${op.from} → ${op.to} loses information` };
      return { ops: [{ op: 'cast', key: sel(op.key), to: op.from, from: op.to }] };
    }
    case 'init':
      return { ops: [{ op: 'drop', key: op.key }] };
  }
}

/** Casts whose inverse is exact for every value. */
export const WIDENING = new Set(['f16>f32', 'bf16>f32', 'f16>f64', 'bf16>f64', 'f32>f64', 'f32>f32', 'i8>i16', 'i8>i32', 'i8>i64', 'i16>i32', 'i16>i64', 'i32>i64', 'u8>i16', 'u8>i32', 'u8>i64']);

/**
 * The key names a shape op leaves its result under are those it read: a selector stays valid for
 * the inverse. (Kept as a function so the pattern rewrite is in one place.)
 */
const sel = (s: string) => s;

/**
 * `blocks.(\d+).qkv.weight` + the template `blocks.$1.q.weight` → `blocks.(\d+).q.weight`.
 * The template must use $1…$n in order (so the new selector numbers its groups the same way).
 */
function toSelector(selector: string, template: string): string {
  if (!isPattern(selector)) return template;
  const groups = parsePattern(selector).parts.filter((x) => 'group' in x) as { group: string }[];
  const refs = [...template.matchAll(/\$(\d)/g)].map((m) => Number(m[1]));
  if (refs.length !== groups.length || refs.some((r, i) => r !== i + 1)) throw new SoracError('SORA6003', `template ${JSON.stringify(template)} must use $1…$${groups.length} once each, in order, to be inverted`);
  const escPat = (s: string) => s.replace(/[()\\]/g, '\\$&');
  let out = '';
  let last = 0;
  for (const m of template.matchAll(/\$(\d)/g)) {
    out += escPat(template.slice(last, m.index));
    out += `(${groups[Number(m[1]) - 1]!.group})`;
    last = m.index! + m[0].length;
  }
  return out + escPat(template.slice(last));
}

/** `blocks.(\d+).qkv.weight` → `blocks.$1.qkv.weight`. */
function templateOf(selector: string): string {
  let n = 0;
  return parsePattern(selector)
    .parts.map((x) => ('lit' in x ? x.lit.replace(/\$/g, '$$$$') : `$${++n}`))
    .join('');
}

/** The inverse plan (ops inverted, in reverse order); throws SORA6003 naming the first op that has none. */
export function invertPlan(plan: Plan): Plan {
  const out: Op[] = [];
  for (let i = plan.ops.length - 1; i >= 0; i--) {
    const r = invertOp(plan.ops[i]!);
    if ('reason' in r) throw new SoracError('SORA6003', `migration ${plan.name} cannot be reversed: op #${i + 1} (${describeOp(plan.ops[i]!)}) is not invertible: ${r.reason}`, { hint: 'apply the forward migration from the original checkpoint instead, or write the reverse migration by hand' });
    out.push(...r.ops);
  }
  return { format: 'sorac.migration/1', name: `${plan.name}~reverse`, ...(plan.description ? { description: `reverse of: ${plan.description}` } : {}), ops: out };
}

export function isInvertible(plan: Plan): boolean {
  return plan.ops.every((o) => !('reason' in invertOp(o)));
}

/** Sequential composition: apply `a`, then `b`. */
export function composePlans(a: Plan, b: Plan, name = `${a.name}+${b.name}`): Plan {
  return { format: 'sorac.migration/1', name, ops: [...a.ops, ...b.ops] };
}

/** Content hash of a plan (its ops and name), `sha256:<hex>`. */
export function planHash(plan: Plan): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson({ format: plan.format, name: plan.name, ops: plan.ops }, 0)).digest('hex');
}

/** One-line human description of an op. */
export function describeOp(op: Op): string {
  const f = (s: readonly number[]) => `[${s.join(',')}]`;
  switch (op.op) {
    case 'rename':
    case 'renamePattern':
      return `${op.op} ${op.from} → ${op.to}`;
    case 'drop':
      return `drop ${op.key}`;
    case 'unsqueeze':
    case 'squeeze':
      return `${op.op}(${op.dim}) ${op.key}`;
    case 'reshape':
      return `reshape ${op.key}${op.from ? ` ${f(op.from)}` : ''} → ${f(op.to)}`;
    case 'permute':
      return `permute ${op.key} ${f(op.perm)}`;
    case 'split':
      return `split ${op.key} along ${op.dim} into ${op.into.map((k, i) => `${k}:${op.sizes[i]}`).join(', ')}`;
    case 'concat':
      return `concat ${op.from.join(' + ')} along ${op.dim} → ${op.to}`;
    case 'slice':
      return `slice ${op.key} dim ${op.dim} [${op.start}:${op.end}]`;
    case 'pad':
      return `pad ${op.key} dim ${op.dim} +${op.before ?? 0}/+${op.after} (${op.mode})`;
    case 'tile':
    case 'untile':
      return `${op.op} ${op.key} dim ${op.dim} ×${op.times}`;
    case 'scale':
      return `scale ${op.key} ×${op.factor}`;
    case 'cast':
      return `cast ${op.key}${op.from ? ` ${op.from}` : ''} → ${op.to}`;
    case 'init':
      return `init ${op.key} ${f(op.shape)} ${op.dtype} ${op.fill.kind}${op.fill.kind === 'normal' ? `(mean ${op.fill.mean}, std ${op.fill.std}, seed ${op.fill.seed})` : ''}`;
  }
}
