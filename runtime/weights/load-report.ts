/**
 * The load report: a strict comparison of a compiled model's key/shape map with a checkpoint,
 * in the spirit of transformers' LOAD REPORT but failing by default. Every item carries both
 * shapes/dtypes, the `.sora` source location of the declaration, and — when sorac recognises
 * the pattern — a concrete fix and the built-in migration that performs it.
 *
 * Recognised patterns:
 *  - Conv2d → Conv3d patch embed (`[C,4,2,2]` vs `[C,4,1,2,2]`): unsqueeze(2), `patch-embed-2d-to-3d`
 *  - caption table length (`y_embedder.y_embedding` 120 → 200 rows): pad by repeating the last row /
 *    truncate, `caption-table-resize`
 *  - 4 → 16 latent channels (`x_embedder.proj.weight` in-channels ×4, `final_layer.linear` ×4): `vae-4ch-to-16ch`
 *  - fused vs unfused attention projections (`qkv.weight [3C,C]` vs `q_proj/k_proj/v_proj`):
 *    `mmdit-fuse-qkv` / `mmdit-unfuse-qkv`
 *  - prefix renames across many keys: `blocks.` → `spatial_blocks.` (`pixart-sigma-to-stdit3`),
 *    a `module.` prefix (DataParallel), keys nested under `ema.` / `state_dict.` / `model.`
 *  - generic: unsqueeze/squeeze of a unit dim, transpose, reshape with equal element count, dtype casts
 */
import type { DType } from '../../core/dtype.ts';
import { isFloat } from '../../core/dtype.ts';
import type { Keymap } from '../../core/keymap.ts';
import { withAliases } from './aliases.ts';
import { collapseKeys, renderCollapsed } from './key-tree.ts';
import { openWeights, type OpenWeightsOptions, type TensorStore } from './store.ts';
import { SoracError } from '../../core/errors.ts';
import { printable } from '../../core/printable.ts';

export type MigrationName =
  | 'patch-embed-2d-to-3d'
  | 'caption-table-resize'
  | 'pixart-sigma-to-stdit3'
  | 'mmdit-unfuse-qkv'
  | 'mmdit-fuse-qkv'
  | 'vae-4ch-to-16ch';

export interface TensorSig {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export interface LoadIssue {
  readonly key: string;
  /** what the model declares (absent for unexpected keys) */
  readonly expected?: TensorSig;
  /** what the checkpoint holds (absent for missing keys) */
  readonly found?: TensorSig & { readonly file?: string };
  /** `.sora` declaration, `file:line:col` (absent for unexpected keys) */
  readonly source?: string;
  /** the model member that brings the tensor in (`examples/stdit3.sora:106:3`), when not the declaring line */
  readonly via?: string;
  /** a concrete suggested fix, one line */
  fix?: string;
  /** the built-in migration that performs the fix */
  migration?: MigrationName;
  /** for renames / fused-unfused pairs: the key(s) on the other side */
  counterpart?: string;
}

export interface Suggestion {
  readonly title: string;
  readonly keys: number;
  readonly migration?: MigrationName;
  /** how to apply it, when it is not a migration (e.g. an open option) */
  readonly how?: string;
  /** for a migration: the exact `sorac migrate apply …` command */
  readonly command?: string;
}

export interface LoadReport {
  readonly ok: boolean;
  readonly model: string;
  readonly contract: string;
  readonly counts: { readonly expected: number; readonly found: number; readonly matched: number };
  readonly missing: LoadIssue[];
  readonly unexpected: LoadIssue[];
  readonly shapeMismatch: LoadIssue[];
  readonly dtypeMismatch: LoadIssue[];
  /** keys absent from the checkpoint but allowed by `allowMissing` */
  readonly allowedMissing: string[];
  /** renames and migrations detected across many keys */
  readonly suggestions: Suggestion[];
  readonly notes: string[];
}

export interface LoadReportOptions {
  /** glob patterns (`*` within a segment run, `**` anything, `?` one char) of model keys that may be absent */
  allowMissing?: readonly string[];
  /** glob patterns of checkpoint keys that may be present without a model counterpart */
  allowUnexpected?: readonly string[];
  /** fail on any dtype difference (default: only on float↔int/bool differences; float casts are reported) */
  strictDtype?: boolean;
  /** the weights argument as the user wrote it, for the `sorac migrate apply` commands in suggestions */
  weights?: string;
}

/** The `sorac migrate apply` command that performs a suggested migration (docs/cli/migrate.md). */
export function migrateCommand(name: MigrationName, weights = 'WEIGHTS', params: Record<string, string | number> = {}): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const out = weights.endsWith('.safetensors') ? weights.replace(/\.safetensors$/, `.${name}.safetensors`) : `${weights.replace(/\/+$/, '')}-${name}`;
  const ps = Object.entries(params).map(([k, v]) => ` --param ${k}=${v}`).join('');
  return `sorac migrate apply ${name} --in ${q(weights)} --out ${q(out)}${ps}`;
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^.]*';
    } else if (c === '?') re += '.';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

/** Suggest a fix for a shape difference on one key. */
export function shapeFix(key: string, model: readonly number[], ckpt: readonly number[]): { fix: string; migration?: MigrationName } | undefined {
  // Caption table: rows differ, width equal.
  if (/(^|\.)y_embedder\.y_embedding$/.test(key) && model.length === 2 && ckpt.length === 2 && model[1] === ckpt[1]) {
    return model[0]! > ckpt[0]!
      ? { fix: `pad ${ckpt[0]}→${model[0]} rows by repeating the last row`, migration: 'caption-table-resize' }
      : { fix: `truncate ${ckpt[0]}→${model[0]} rows (keep the first ${model[0]})`, migration: 'caption-table-resize' };
  }
  // 4 → 16 latent channels (Open-Sora v1.3 adapt_16ch)
  if (/(^|\.)x_embedder\.proj\.weight$/.test(key) && model.length === ckpt.length && model[1] === 4 * ckpt[1]! && same(model.filter((_, i) => i !== 1), ckpt.filter((_, i) => i !== 1)))
    return { fix: `repeat input channels ×4 and divide by 4 (${ckpt[1]}→${model[1]})`, migration: 'vae-4ch-to-16ch' };
  if (/(^|\.)final_layer\.linear\.(weight|bias)$/.test(key) && model.length === ckpt.length && model[0] === 4 * ckpt[0]! && same(model.slice(1), ckpt.slice(1)))
    return { fix: `repeat output channels ×4 (${ckpt[0]}→${model[0]})`, migration: 'vae-4ch-to-16ch' };
  // unsqueeze / squeeze a unit dim
  if (model.length === ckpt.length + 1) {
    for (let d = 0; d < model.length; d++) {
      if (model[d] === 1 && same([...model.slice(0, d), ...model.slice(d + 1)], ckpt)) {
        const patch = /(^|\.)(x_embedder|patch_embed)\.proj\.weight$/.test(key) && model.length === 5 && d === 2;
        return patch ? { fix: `unsqueeze(2): Conv2d patch embed ${fmt(ckpt)} → Conv3d ${fmt(model)} (kt=1)`, migration: 'patch-embed-2d-to-3d' } : { fix: `unsqueeze(${d})` };
      }
    }
  }
  if (ckpt.length === model.length + 1) {
    for (let d = 0; d < ckpt.length; d++) if (ckpt[d] === 1 && same([...ckpt.slice(0, d), ...ckpt.slice(d + 1)], model)) return { fix: `squeeze(${d})` };
  }
  if (model.length === 2 && ckpt.length === 2 && model[0] === ckpt[1] && model[1] === ckpt[0]) return { fix: 'transpose (the checkpoint stores [in,out]; sorac expects [out,in])' };
  if (numel(model) === numel(ckpt)) return { fix: `reshape ${fmt(ckpt)} → ${fmt(model)} (same element count; check the layout first)` };
  return undefined;
}

function dtypeFix(model: DType, ckpt: DType): { fix: string; blocking: boolean } {
  if (isFloat(model) && isFloat(ckpt)) {
    const rank: Record<string, number> = { f8_e4m3: 0, f8_e5m2: 0, f16: 1, bf16: 1, f32: 2, f64: 3 };
    const lossless = rank[model]! > rank[ckpt]! || (model === 'f32' && (ckpt === 'bf16' || ckpt === 'f16'));
    return { fix: `cast ${ckpt} → ${model} at load (${lossless ? 'lossless' : 'lossy'})`, blocking: false };
  }
  return { fix: `${ckpt} values cannot stand in for ${model}: re-export the tensor with the right dtype`, blocking: true };
}

/** The layouts the mmdit-*-qkv built-ins handle: `P.qkv` ↔ `P.{q,k,v}_proj` anywhere, and MMDiT's single-block `linear1` ↔ `q_proj/k_proj/v_mlp`. */
const MMDIT_FUSED = /^(.+\.(qkv|q_proj|k_proj|v_proj)|single_blocks\.\d+\.(linear1|v_mlp))\.(weight|bias)$/;

const QKV_SPLITS: [string, string, string][] = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['to_q', 'to_k', 'to_v'],
  ['q', 'k', 'v'],
  ['query', 'key', 'value'],
];

export function loadReport(keymap: Keymap, store: Pick<TensorStore, 'tensors'> & Partial<Pick<TensorStore, 'notes'>>, opts: LoadReportOptions = {}): LoadReport {
  const allowM = (opts.allowMissing ?? []).map(globToRegExp);
  const allowU = (opts.allowUnexpected ?? []).map(globToRegExp);
  const missing: LoadIssue[] = [];
  const unexpected: LoadIssue[] = [];
  const shapeMismatch: LoadIssue[] = [];
  const dtypeMismatch: LoadIssue[] = [];
  const allowedMissing: string[] = [];
  const notes: string[] = [...(store.notes ?? [])];
  const suggestions: Suggestion[] = [];
  let matched = 0;
  let blockingDtype = 0;

  const modelKeys = Object.keys(keymap.tensors);
  for (const key of modelKeys) {
    const e = keymap.tensors[key]!;
    const t = store.tensors.get(key);
    if (!t) {
      if (allowM.some((r) => r.test(key))) allowedMissing.push(key);
      else missing.push({ key, expected: { shape: e.shape, dtype: e.dtype }, source: e.source, ...(e.via ? { via: e.via } : {}) });
      continue;
    }
    matched++;
    const found = { shape: t.shape, dtype: t.dtype, file: t.file };
    if (!same(e.shape, t.shape)) {
      const f = shapeFix(key, e.shape, t.shape);
      shapeMismatch.push({ key, expected: { shape: e.shape, dtype: e.dtype }, found, source: e.source, ...(e.via ? { via: e.via } : {}), ...(f ?? {}) });
    }
    if (e.dtype !== t.dtype) {
      const d = dtypeFix(e.dtype, t.dtype);
      if (d.blocking) blockingDtype++;
      dtypeMismatch.push({ key, expected: { shape: e.shape, dtype: e.dtype }, found, source: e.source, ...(e.via ? { via: e.via } : {}), fix: d.fix });
    }
  }
  for (const [key, t] of store.tensors) {
    if (key in keymap.tensors) continue;
    if (allowU.some((r) => r.test(key))) continue;
    unexpected.push({ key, found: { shape: t.shape, dtype: t.dtype, file: t.file } });
  }

  detectRenames(missing, unexpected, suggestions);
  detectQkv(missing, unexpected, suggestions);
  const mig = new Map<MigrationName, LoadIssue[]>();
  for (const i of shapeMismatch) if (i.migration) mig.set(i.migration, [...(mig.get(i.migration) ?? []), i]);
  for (const [m, items] of mig) {
    const names = items.length <= 3 ? items.map((i) => i.key).join(', ') : `${items.length} keys`;
    suggestions.push({ title: `${names}: ${items[0]!.fix}`, keys: items.length, migration: m });
  }
  if (allowedMissing.length) notes.push(`${allowedMissing.length} model key(s) absent but allowed by --allow-missing`);
  const rows = shapeMismatch.find((i) => i.migration === 'caption-table-resize')?.expected?.shape[0];
  const withCommands = suggestions.map((g) => (g.migration ? { ...g, command: migrateCommand(g.migration, opts.weights, g.migration === 'caption-table-resize' && rows !== undefined ? { rows } : {}) } : g));

  const ok = missing.length === 0 && unexpected.length === 0 && shapeMismatch.length === 0 && blockingDtype === 0 && (!opts.strictDtype || dtypeMismatch.length === 0);
  return {
    ok,
    model: keymap.model,
    contract: keymap.contract,
    counts: { expected: modelKeys.length, found: store.tensors.size, matched },
    missing,
    unexpected,
    shapeMismatch,
    dtypeMismatch,
    allowedMissing,
    suggestions: withCommands,
    notes,
  };
}

/** Prefix strip/add and single-segment renames that explain many missing/unexpected pairs. */
function detectRenames(missing: LoadIssue[], unexpected: LoadIssue[], suggestions: Suggestion[]) {
  if (!missing.length || !unexpected.length) return;
  const missingSet = new Map(missing.map((m) => [m.key, m]));
  const claimed = new Set<string>();
  const apply = (title: string, pairs: [LoadIssue, LoadIssue][], extra: { migration?: MigrationName; how?: string }) => {
    for (const [u, m] of pairs) {
      const fix = extra.migration ? `${title} (migration ${extra.migration})` : title;
      u.fix = fix;
      u.counterpart = m.key;
      m.fix = fix;
      m.counterpart = u.key;
      if (extra.migration) {
        u.migration = extra.migration;
        m.migration = extra.migration;
      }
      claimed.add(u.key);
    }
    suggestions.push({ title: `${title} (${pairs.length} keys)`, keys: pairs.length, ...extra });
  };
  // 1. a prefix on the checkpoint side (module., ema., state_dict., model., …): strip the first k segments
  for (const k of [1, 2]) {
    const byPrefix = new Map<string, [LoadIssue, LoadIssue][]>();
    for (const u of unexpected) {
      if (claimed.has(u.key)) continue;
      const segs = u.key.split('.');
      if (segs.length <= k) continue;
      const m = missingSet.get(segs.slice(k).join('.'));
      if (!m) continue;
      const p = segs.slice(0, k).join('.') + '.';
      if (!byPrefix.has(p)) byPrefix.set(p, []);
      byPrefix.get(p)!.push([u, m]);
    }
    for (const [p, pairs] of byPrefix) {
      if (pairs.length < 2 && pairs.length < missing.length) continue;
      const container = ['ema.', 'state_dict.', 'model.', 'module.', 'model_ema.'].includes(p);
      apply(`strip prefix "${p}" from checkpoint keys`, pairs, {
        how: container
          ? p === 'module.'
            ? 'a DataParallel/DDP "module." prefix: open with unwrap (the default) or re-save model.module.state_dict()'
            : `keys are nested under "${p.slice(0, -1)}": open with unwrap (the default) / --container ${p.slice(0, -1)}`
          : `rename "${p}" → "" on load`,
      });
    }
  }
  // 2. a prefix on the model side: the checkpoint lacks the first k segments
  for (const k of [1, 2]) {
    const byPrefix = new Map<string, [LoadIssue, LoadIssue][]>();
    const unexpectedSet = new Map(unexpected.filter((u) => !claimed.has(u.key)).map((u) => [u.key, u]));
    for (const m of missing) {
      if (m.counterpart) continue;
      const segs = m.key.split('.');
      if (segs.length <= k) continue;
      const u = unexpectedSet.get(segs.slice(k).join('.'));
      if (!u) continue;
      const p = segs.slice(0, k).join('.') + '.';
      if (!byPrefix.has(p)) byPrefix.set(p, []);
      byPrefix.get(p)!.push([u, m]);
    }
    for (const [p, pairs] of byPrefix) if (pairs.length >= 2 || pairs.length === missing.length) apply(`add prefix "${p}" to checkpoint keys`, pairs, { how: `rename "" → "${p}" on load` });
  }
  // 3. one segment renamed (blocks → spatial_blocks, attn → attention, …)
  const index = new Map<string, { m: LoadIssue; seg: string }[]>();
  for (const m of missing) {
    if (m.counterpart) continue;
    const segs = m.key.split('.');
    segs.forEach((s, i) => {
      const pat = [...segs.slice(0, i), '\u0000', ...segs.slice(i + 1)].join('.');
      if (!index.has(pat)) index.set(pat, []);
      index.get(pat)!.push({ m, seg: s });
    });
  }
  const renames = new Map<string, [LoadIssue, LoadIssue][]>();
  for (const u of unexpected) {
    if (claimed.has(u.key)) continue;
    const segs = u.key.split('.');
    segs.forEach((s, i) => {
      const pat = [...segs.slice(0, i), '\u0000', ...segs.slice(i + 1)].join('.');
      for (const { m, seg } of index.get(pat) ?? []) {
        if (seg === s || m.counterpart) continue;
        // a rename keeps the tensor: a different shape is not explained by it (fused qkv vs q_proj …)
        if (!same(u.found!.shape, m.expected!.shape)) continue;
        const r = `${s}\u0000${seg}`;
        if (!renames.has(r)) renames.set(r, []);
        renames.get(r)!.push([u, m]);
      }
    });
  }
  for (const [r, pairs] of [...renames].sort((a, b) => b[1].length - a[1].length)) {
    const fresh = pairs.filter(([u, m]) => !claimed.has(u.key) && !m.counterpart);
    if (fresh.length < 2 && !(fresh.length === 1 && missing.length === 1)) continue;
    const [from, to] = r.split('\u0000') as [string, string];
    if (/^\d+$/.test(from) && /^\d+$/.test(to)) continue; // index shifts are not renames
    const migration: MigrationName | undefined = from === 'blocks' && to === 'spatial_blocks' ? 'pixart-sigma-to-stdit3' : undefined;
    apply(`rename "${from}." → "${to}."`, fresh, migration ? { migration } : { how: `rename "${from}." → "${to}." on load` });
  }
}

/** Fused qkv in the model vs q/k/v in the checkpoint, and the reverse. */
function detectQkv(missing: LoadIssue[], unexpected: LoadIssue[], suggestions: Suggestion[]) {
  const uMap = new Map(unexpected.map((u) => [u.key, u]));
  const mMap = new Map(missing.map((m) => [m.key, m]));
  let fuse = 0;
  let unfuse = 0;
  let other = 0;
  for (const m of missing) {
    const r = /^(.*)\.(qkv|linear1)\.(weight|bias)$/.exec(m.key);
    if (!r) continue;
    for (const [q, k, v] of r[2] === 'linear1' ? [['q_proj', 'k_proj', 'v_mlp'] as [string, string, string]] : QKV_SPLITS) {
      const parts = [q, k, v].map((n) => uMap.get(`${r[1]}.${n}.${r[3]}`));
      if (parts.some((p) => !p)) continue;
      const fix = `concatenate ${[q, k, v].join('/')} along dim 0 into ${r[2]}`;
      const mm = MMDIT_FUSED.test(m.key) && (q === 'q_proj' || r[2] === 'linear1');
      m.fix = fix;
      if (mm) m.migration = 'mmdit-fuse-qkv';
      m.counterpart = parts.map((p) => p!.key).join(', ');
      for (const p of parts) {
        p!.fix = fix;
        if (mm) p!.migration = 'mmdit-fuse-qkv';
        p!.counterpart = m.key;
      }
      if (mm) fuse++;
      else other++;
      break;
    }
  }
  for (const u of unexpected) {
    const r = /^(.*)\.(qkv|linear1)\.(weight|bias)$/.exec(u.key);
    if (!r) continue;
    for (const [q, k, v] of r[2] === 'linear1' ? [['q_proj', 'k_proj', 'v_mlp'] as [string, string, string]] : QKV_SPLITS) {
      const parts = [q, k, v].map((n) => mMap.get(`${r[1]}.${n}.${r[3]}`));
      if (parts.some((p) => !p)) continue;
      const fix = r[2] === 'linear1' ? `split linear1 into ${[q, k, v].join('/')} (C, C, C+M rows along dim 0)` : `split qkv into ${[q, k, v].join('/')} (3 equal chunks along dim 0)`;
      const mm = MMDIT_FUSED.test(u.key) && (q === 'q_proj' || r[2] === 'linear1');
      u.fix = fix;
      if (mm) u.migration = 'mmdit-unfuse-qkv';
      u.counterpart = parts.map((p) => p!.key).join(', ');
      for (const p of parts) {
        p!.fix = fix;
        if (mm) p!.migration = 'mmdit-unfuse-qkv';
        p!.counterpart = u.key;
      }
      if (mm) unfuse++;
      else other++;
      break;
    }
  }
  if (fuse) suggestions.push({ title: `the checkpoint has separate q/k/v projections where the model has a fused qkv (${fuse} tensors)`, keys: fuse, migration: 'mmdit-fuse-qkv' });
  if (unfuse) suggestions.push({ title: `the checkpoint has a fused qkv where the model has separate q/k/v projections (${unfuse} tensors)`, keys: unfuse, migration: 'mmdit-unfuse-qkv' });
  if (other) suggestions.push({ title: `fused vs separate q/k/v projections outside the MMDiT layout (${other} tensors)`, keys: other, how: 'write a migration with split/concat ops: `sorac migrate new CHECKPOINT MODEL.sora -o migrations/NAME.ts`' });
}

const sig = (s?: TensorSig) => (s ? `${fmt(s.shape)} ${s.dtype}` : '');

/** Plain-text rendering (no ANSI) with layer indices collapsed. */
export function renderLoadReport(r: LoadReport, opts: { maxLines?: number } = {}): string {
  return printable(renderLoadReportRaw(r, opts));
}

function renderLoadReportRaw(r: LoadReport, opts: { maxLines?: number } = {}): string {
  const max = opts.maxLines ?? 40;
  let s = `load report: model ${r.model} (${r.counts.expected} tensors, ${r.contract}) ← checkpoint (${r.counts.found} tensors, ${r.counts.matched} matched by name)\n`;
  const problems = [
    r.missing.length && `${r.missing.length} missing`,
    r.unexpected.length && `${r.unexpected.length} unexpected`,
    r.shapeMismatch.length && `${r.shapeMismatch.length} shape mismatch${r.shapeMismatch.length > 1 ? 'es' : ''}`,
    r.dtypeMismatch.length && `${r.dtypeMismatch.length} dtype difference${r.dtypeMismatch.length > 1 ? 's' : ''}`,
  ].filter(Boolean);
  s += r.ok ? `result: OK${problems.length ? ` (${problems.join(', ')})` : ''}\n` : `result: FAILED: ${problems.join(', ')}\n`;
  const section = (title: string, items: LoadIssue[], detail: (i: LoadIssue) => string) => {
    if (!items.length) return;
    s += `\n${title} (${items.length}):\n`;
    const lines = collapseKeys(items.map((i) => ({ key: i.key, detail: detail(i), ...(i.source ? { suffix: i.via ? `at ${i.via} (declared ${i.source})` : `at ${i.source}` } : {}) })));
    s += renderCollapsed(lines, '  ', max);
  };
  const fixOf = (i: LoadIssue) => (i.fix ? `  fix: ${i.fix}${i.migration && !i.fix.includes(i.migration) ? ` (migration ${i.migration})` : ''}` : '');
  // missing/unexpected: a rename explained by a suggestion shows its short tag; details are in "suggested fixes"
  const tagOf = (i: LoadIssue) => (i.migration ? `  [${i.migration}]` : i.counterpart ? `  [${i.fix}]` : fixOf(i));
  section('missing from the checkpoint', r.missing, (i) => `${sig(i.expected)}${tagOf(i)}`);
  section('unexpected in the checkpoint', r.unexpected, (i) => `${sig(i.found)}${tagOf(i)}`);
  section('shape mismatch (model vs checkpoint)', r.shapeMismatch, (i) => `model ${fmt(i.expected!.shape)} vs checkpoint ${fmt(i.found!.shape)}${fixOf(i)}`);
  if (r.dtypeMismatch.length) {
    // A whole-checkpoint cast (bf16 file, f32 model) is one line, not one line per tensor.
    const groups = new Map<string, LoadIssue[]>();
    for (const i of r.dtypeMismatch) {
      const g = `${i.expected!.dtype}\u0000${i.found!.dtype}`;
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(i);
    }
    s += `\ndtype differences (model vs checkpoint) (${r.dtypeMismatch.length}):\n`;
    for (const items of groups.values()) {
      const first = items[0]!;
      if (items.length > 8) {
        const all = items.length === r.counts.matched ? 'all ' : '';
        s += `  ${all}${items.length} tensors: model ${first.expected!.dtype} vs checkpoint ${first.found!.dtype}${fixOf(first)}\n`;
      } else {
        s += renderCollapsed(collapseKeys(items.map((i) => ({ key: i.key, detail: `model ${i.expected!.dtype} vs checkpoint ${i.found!.dtype}${fixOf(i)}` }))), '  ', max);
      }
    }
  }
  if (r.suggestions.length) {
    s += '\nsuggested fixes:\n';
    for (const g of r.suggestions) s += `  - ${g.title}${g.migration ? ` → migration ${g.migration}` : ''}${g.how ? `\n      ${g.how}` : ''}${g.command ? `\n      run: ${g.command}` : ''}\n`;
  }
  if (r.allowedMissing.length) {
    s += `\nallowed missing (${r.allowedMissing.length}):\n`;
    s += renderCollapsed(collapseKeys(r.allowedMissing.map((key) => ({ key, detail: '' }))), '  ', max);
  }
  if (r.notes.length) {
    s += '\nnotes:\n';
    for (const n of r.notes) s += `  - ${n}\n`;
  }
  return s;
}

/**
 * One call for `sorac check MODEL --weights W`: resolve + open the weights, build the strict load
 * report, render it, close the files. Resolution/format problems come back as `error` (a
 * SoracError, render with `error.render()`); a failed report is `ok: false` with code SORA5010.
 */
export async function checkWeights(
  keymap: Keymap,
  weights: string,
  opts: OpenWeightsOptions & LoadReportOptions = {},
): Promise<{ ok: boolean; code?: 'SORA5010'; report?: LoadReport; text: string; error?: SoracError }> {
  let store: TensorStore | undefined;
  try {
    store = await openWeights(weights, opts);
    const report = loadReport(keymap, withAliases(keymap, store), opts);
    const text = renderLoadReport(report);
    return report.ok ? { ok: true, report, text } : { ok: false, code: 'SORA5010', report, text };
  } catch (e) {
    if (e instanceof SoracError) return { ok: false, error: e, text: e.render() };
    throw e;
  } finally {
    await store?.close();
  }
}
