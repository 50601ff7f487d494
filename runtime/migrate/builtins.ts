/**
 * Built-in migrations for the real Open-Sora version transitions (shared/reference stdit.md §5).
 * A built-in is a function of the source checkpoint's signature (keys, shapes, dtypes) and a few
 * parameters; it returns a plain plan, so what runs is always data. The names are the ones the
 * load report suggests (runtime/load-report.ts `MigrationName`).
 */
import type { MigrationName } from '../weights/load-report.ts';
import { SoracError } from '../../core/errors.ts';
import { invertPlan, type Op, type Plan } from './plan.ts';
import type { Sig } from './resolve.ts';

export interface BuiltinParam {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
}

export interface Builtin {
  readonly name: MigrationName;
  readonly description: string;
  /** upstream code this reproduces */
  readonly upstream: string;
  readonly params: readonly BuiltinParam[];
  /** the plan for a checkpoint with signature `sig`; `reverse` builds the way back from a migrated checkpoint */
  plan(sig: ReadonlyMap<string, Sig>, params: Readonly<Record<string, string>>, reverse: boolean): Plan;
}

const plan = (name: string, description: string, ops: Op[], reverse = false): Plan => ({ format: 'sorac.migration/1', name: reverse ? `${name}~reverse` : name, description: reverse ? `reverse of: ${description}` : description, ops });
const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

function find(sig: ReadonlyMap<string, Sig>, re: RegExp): [string, Sig][] {
  return [...sig].filter(([k]) => re.test(k)).sort(([a], [b]) => (a < b ? -1 : 1));
}

function none(name: string, what: string, sig: ReadonlyMap<string, Sig>, re: RegExp, hint: string): never {
  const near = find(sig, re);
  throw new SoracError('SORA6005', `${name}: the checkpoint has no ${what}${near.length ? ` (found ${near.map(([k, s]) => `${k} ${fmt(s.shape)}`).slice(0, 3).join(', ')})` : ''}`, { hint });
}

const PATCH = /(^|\.)(x_embedder|patch_embed)\.proj\.weight$/;

const patchEmbed: Builtin = {
  name: 'patch-embed-2d-to-3d',
  description: 'Conv2d patch embed [C,Cin,kh,kw] (DiT, Latte, PixArt upstream checkpoints) → Conv3d [C,Cin,1,kh,kw] (every Open-Sora v1.x model)',
  upstream: 'opensora/utils/ckpt_utils.py reparameter(): x_embedder.proj.weight.unsqueeze(2)',
  params: [],
  plan(sig, _p, reverse) {
    const rank = reverse ? 5 : 4;
    const hits = find(sig, PATCH).filter(([, s]) => s.shape.length === rank && (!reverse || s.shape[2] === 1));
    if (!hits.length) none(this.name, `${rank}-D ${reverse ? 'kt=1 ' : ''}x_embedder.proj.weight`, sig, PATCH, reverse ? 'the patch embed is not a 3-D kernel with kt=1' : 'is it already 5-D? then nothing needs doing');
    return plan(this.name, this.description, hits.map(([k]) => (reverse ? { op: 'squeeze' as const, key: k, dim: 2 } : { op: 'unsqueeze' as const, key: k, dim: 2 })), reverse);
  },
};

const CAPTION = /(^|\.)y_embedder\.y_embedding$/;

const captionTable: Builtin = {
  name: 'caption-table-resize',
  description: 'resize the caption null-embedding table y_embedder.y_embedding [L,D] to `rows` rows: pad by repeating the last row, or truncate to the first rows',
  upstream: 'opensora/utils/ckpt_utils.py reparameter() @v1.1.0+: y_embedding length adapt (120 → 200 → 300)',
  params: [{ name: 'rows', description: 'the model\'s caption length (model_max_length): 120 (v1.0), 200 (v1.1), 300 (v1.2+)', required: true }],
  plan(sig, p, reverse) {
    if (reverse) throw new SoracError('SORA6003', `${this.name} has no fixed way back`, { hint: 'run it again with --param rows=<the old length>: padding is undone by truncation; truncation cannot be undone' });
    const rows = Number(p.rows);
    if (!Number.isSafeInteger(rows) || rows <= 0) throw new SoracError('SORA6005', `${this.name}: --param rows=<positive integer> is required (got ${p.rows === undefined ? 'nothing' : JSON.stringify(p.rows)})`, { hint: 'e.g. --param rows=300 for STDiT3 (v1.2+); the load report names the model\'s length' });
    const hits = find(sig, CAPTION).filter(([, s]) => s.shape.length === 2);
    if (!hits.length) none(this.name, '2-D y_embedder.y_embedding', sig, /y_embedding/, 'this checkpoint has no caption table');
    const ops: Op[] = [];
    for (const [k, s] of hits) {
      const n = s.shape[0]!;
      if (rows > n) ops.push({ op: 'pad', key: k, dim: 0, after: rows - n, mode: 'repeat-last' });
      else if (rows < n) ops.push({ op: 'slice', key: k, dim: 0, start: 0, end: rows });
    }
    return plan(this.name, `${this.description} (${hits.map(([k, s]) => `${k}: ${s.shape[0]} → ${rows}`).join(', ')})`, ops);
  },
};

const pixartToStdit3: Builtin = {
  name: 'pixart-sigma-to-stdit3',
  description: 'PixArt-Σ weights initialise STDiT3\'s spatial branch: every "blocks.N." becomes "spatial_blocks.N." (and a 2-D patch embed becomes 3-D)',
  upstream: 'opensora/utils/ckpt_utils.py reparameter() @v1.2.0: k.replace("blocks", "spatial_blocks") for PixArt-Sigma names, plus x_embedder unsqueeze(2)',
  params: [],
  plan(sig, _p, reverse) {
    const from = reverse ? /(^|\.)spatial_blocks\.\d+\./ : /(^|\.)blocks\.\d+\./;
    if (!find(sig, from).length) none(this.name, reverse ? 'spatial_blocks.N.* keys' : 'blocks.N.* keys', sig, /blocks/, reverse ? 'not an STDiT3-layout checkpoint' : 'already renamed? a PixArt-Σ checkpoint has blocks.0 … blocks.27');
    const ops: Op[] = [];
    if (reverse) {
      if (find(sig, /(^|\.)temporal_blocks\./).length) throw new SoracError('SORA6003', `${this.name} --reverse: the checkpoint has temporal_blocks.*, which PixArt-Σ does not`, { hint: 'drop them first (a migration with drop "temporal_blocks.(.*)")' });
      ops.push({ op: 'renamePattern', from: 'spatial_blocks.(\\d+).', to: 'blocks.$1.' });
      for (const [k, s] of find(sig, PATCH)) if (s.shape.length === 5 && s.shape[2] === 1) ops.push({ op: 'squeeze', key: k, dim: 2 });
    } else {
      for (const [k, s] of find(sig, PATCH)) if (s.shape.length === 4) ops.push({ op: 'unsqueeze', key: k, dim: 2 });
      ops.push({ op: 'renamePattern', from: 'blocks.(\\d+).', to: 'spatial_blocks.$1.' });
    }
    return plan(this.name, this.description, ops, reverse);
  },
};

/** MMDiT sizes from a signature: hidden size C and the single-block v_mlp rows (C+M); undefined when there are no MMDiT blocks. */
function mmdit(sig: ReadonlyMap<string, Sig>, fused: boolean, name: string) {
  const dq = find(sig, fused ? /^double_blocks\.\d+\.(img|txt)_attn\.qkv\.weight$/ : /^double_blocks\.\d+\.(img|txt)_attn\.q_proj\.weight$/);
  const sq = find(sig, fused ? /^single_blocks\.\d+\.linear1\.weight$/ : /^single_blocks\.\d+\.q_proj\.weight$/);
  const sv = find(sig, /^single_blocks\.\d+\.v_mlp\.weight$/);
  if (!dq.length && !sq.length) return undefined;
  const C = dq.length ? (fused ? dq[0]![1].shape[1]! : dq[0]![1].shape[0]!) : fused ? sq[0]![1].shape[1]! : sq[0]![1].shape[0]!;
  const rows1 = fused ? sq[0]?.[1].shape[0] : undefined;
  const vRows = fused ? (rows1 !== undefined ? rows1 - 2 * C : undefined) : sv[0]?.[1].shape[0];
  for (const [k, s] of dq) if (s.shape[0] !== (fused ? 3 * C : C)) throw new SoracError('SORA6002', `${name}: ${k} is ${fmt(s.shape)}; expected ${fused ? 3 * C : C} rows like the other blocks`);
  return { C, vRows, hasDouble: dq.length > 0, hasSingle: sq.length > 0 };
}

const D_FUSED = 'double_blocks.(\\d+).(img|txt)_attn.qkv.(weight|bias)';
const D_PARTS = ['q_proj', 'k_proj', 'v_proj'].map((p) => `double_blocks.$1.$2_attn.${p}.$3`);
const S_FUSED = 'single_blocks.(\\d+).linear1.(weight|bias)';
const S_PARTS = ['q_proj', 'k_proj', 'v_mlp'].map((p) => `single_blocks.$1.${p}.$2`);
const MM_KEY = /^(double_blocks\.\d+\.(img|txt)_attn|single_blocks\.\d+)\./;

function unfuseOps(sig: ReadonlyMap<string, Sig>, name: string): Op[] {
  const mm = mmdit(sig, true, name);
  const ops: Op[] = [];
  if (mm?.hasDouble) ops.push({ op: 'split', key: D_FUSED, dim: 0, into: D_PARTS, sizes: [mm.C, mm.C, mm.C] });
  if (mm?.hasSingle) ops.push({ op: 'split', key: S_FUSED, dim: 0, into: S_PARTS, sizes: [mm.C, mm.C, mm.vRows!] });
  // any other fused `P.qkv.{weight,bias}` → P.q_proj / P.k_proj / P.v_proj (three equal row blocks)
  for (const [k, s] of find(sig, /^(.+)\.qkv\.(weight|bias)$/)) {
    if (MM_KEY.test(k)) continue;
    const r = s.shape[0]!;
    if (r % 3) throw new SoracError('SORA6002', `${name}: ${k} ${fmt(s.shape)} has ${r} rows, not 3 equal blocks`);
    const [, p, leaf] = /^(.+)\.qkv\.(weight|bias)$/.exec(k)!;
    ops.push({ op: 'split', key: k, dim: 0, into: ['q_proj', 'k_proj', 'v_proj'].map((n) => `${p}.${n}.${leaf}`), sizes: [r / 3, r / 3, r / 3] });
  }
  if (!ops.length) none(name, 'fused projections (double_blocks.N.{img,txt}_attn.qkv, single_blocks.N.linear1, or P.qkv)', sig, /^(double|single)_blocks\.0\./, 'already unfused?');
  return ops;
}

function fuseOps(sig: ReadonlyMap<string, Sig>, name: string): Op[] {
  const mm = mmdit(sig, false, name);
  const ops: Op[] = [];
  if (mm?.hasDouble) ops.push({ op: 'concat', from: ['double_blocks.(\\d+).(img|txt)_attn.q_proj.(weight|bias)', ...D_PARTS.slice(1)], dim: 0, to: 'double_blocks.$1.$2_attn.qkv.$3', sizes: [mm.C, mm.C, mm.C] });
  if (mm?.hasSingle) {
    if (mm.vRows === undefined) throw new SoracError('SORA6002', `${name}: single_blocks have q_proj but no v_mlp`);
    ops.push({ op: 'concat', from: ['single_blocks.(\\d+).q_proj.(weight|bias)', ...S_PARTS.slice(1)], dim: 0, to: 'single_blocks.$1.linear1.$2', sizes: [mm.C, mm.C, mm.vRows] });
  }
  // any other P.q_proj / P.k_proj / P.v_proj → P.qkv
  for (const [k, s] of find(sig, /^(.+)\.q_proj\.(weight|bias)$/)) {
    if (MM_KEY.test(k)) continue;
    const [, p, leaf] = /^(.+)\.q_proj\.(weight|bias)$/.exec(k)!;
    const kk = sig.get(`${p}.k_proj.${leaf}`);
    const vv = sig.get(`${p}.v_proj.${leaf}`);
    if (!kk || !vv) continue;
    ops.push({ op: 'concat', from: [k, `${p}.k_proj.${leaf}`, `${p}.v_proj.${leaf}`], dim: 0, to: `${p}.qkv.${leaf}`, sizes: [s.shape[0]!, kk.shape[0]!, vv.shape[0]!] });
  }
  if (!ops.length) none(name, 'separate q_proj/k_proj/v_proj (or single-block q_proj/k_proj/v_mlp) projections', sig, /^(double|single)_blocks\.0\./, 'already fused?');
  return ops;
}

const unfuse: Builtin = {
  name: 'mmdit-unfuse-qkv',
  description: 'MMDiT fused → unfused projections (Flux layout → Open-Sora 2.0): double_blocks.N.{img,txt}_attn.qkv → q_proj/k_proj/v_proj (3 × C rows); single_blocks.N.linear1 → q_proj/k_proj/v_mlp (C, C, C+M rows); any other P.qkv → P.q_proj/k_proj/v_proj (3 equal blocks)',
  upstream: 'opensora/models/mmdit layers: fused_qkv=True/False parameter layouts (stdit.md §5.3)',
  params: [],
  plan(sig, _p, reverse) {
    return plan(this.name, this.description, reverse ? fuseOps(sig, this.name) : unfuseOps(sig, this.name), reverse);
  },
};

const fuse: Builtin = {
  name: 'mmdit-fuse-qkv',
  description: 'MMDiT unfused → fused projections (Open-Sora 2.0 → Flux layout): q_proj/k_proj/v_proj → {img,txt}_attn.qkv; single-block q_proj/k_proj/v_mlp → linear1',
  upstream: 'opensora/models/mmdit layers: fused_qkv=True/False parameter layouts (stdit.md §5.3)',
  params: [],
  plan(sig, _p, reverse) {
    return plan(this.name, this.description, reverse ? unfuseOps(sig, this.name) : fuseOps(sig, this.name), reverse);
  },
};

const FINAL = /(^|\.)final_layer\.linear\.(weight|bias)$/;

const vae16: Builtin = {
  name: 'vae-4ch-to-16ch',
  description: 'Open-Sora v1.3 adapt_16ch_vae: x_embedder.proj.weight input channels tiled ×4 and divided by 4; final_layer.linear rows viewed as [patch, S, 4 ch] with the channels tiled ×4',
  upstream: 'opensora/utils/ckpt_utils.py@v1.3 adapt_16ch_vae',
  params: [],
  plan(sig, _p, reverse) {
    const cin = reverse ? 16 : 4;
    const pe = find(sig, PATCH).filter(([, s]) => s.shape.length >= 4 && s.shape[1] === cin);
    if (!pe.length) none(this.name, `x_embedder.proj.weight with ${cin} input channels`, sig, PATCH, reverse ? 'not a 16-channel checkpoint' : 'already 16 channels?');
    const [pk, ps] = pe[0]!;
    const P = ps.shape.slice(2).reduce((a, b) => a * b, 1);
    const ops: Op[] = [
      { op: 'tile', key: pk, dim: 1, times: 4 },
      { op: 'scale', key: pk, factor: 0.25 },
    ];
    for (const [k, s] of find(sig, FINAL)) {
      const R = s.shape[0]!;
      if (R % (P * cin)) throw new SoracError('SORA6002', `${this.name}: ${k} has ${R} rows, not a multiple of patch ${P} × ${cin} channels`);
      const S = R / (P * cin);
      const rest = s.shape.slice(1);
      // for the reverse, describe the forward from the 4-channel side and invert it
      const R4 = reverse ? R / 4 : R;
      ops.push({ op: 'reshape', key: k, from: [R4, ...rest], to: [P, S, 4, ...rest] });
      ops.push({ op: 'tile', key: k, dim: 2, times: 4 });
      ops.push({ op: 'reshape', key: k, from: [P, S, 16, ...rest], to: [R4 * 4, ...rest] });
    }
    const fwd = plan(this.name, this.description, ops);
    return reverse ? invertPlan(fwd) : fwd;
  },
};

export const BUILTINS: ReadonlyMap<string, Builtin> = new Map([patchEmbed, captionTable, pixartToStdit3, unfuse, fuse, vae16].map((b) => [b.name, b] as const));

export function getBuiltin(name: string): Builtin {
  const b = BUILTINS.get(name);
  if (!b) throw new SoracError('SORA6005', `no built-in migration named ${JSON.stringify(name)}`, { hint: `built-ins: ${[...BUILTINS.keys()].join(', ')}; or pass a plan (.json) or a migration script (.ts)` });
  return b;
}
