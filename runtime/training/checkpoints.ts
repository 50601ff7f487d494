/**
 * Open-Sora training checkpoint directories (`<exp>/epoch{E}-global_step{S}/`, written by
 * `opensora/utils/ckpt_utils.py@v1.x` `save()` and `opensora/utils/ckpt.py@HEAD` `CheckpointIO.save`
 * through ColossalAI): list them, decide which are complete from headers and sizes alone (cheap:
 * no tensor bytes are read), pick the latest complete one, prune old ones, and write new ones in
 * the same layout, atomically.
 *
 * Complete means: `running_states.json` parses with integer `epoch` and `step`; the model weights
 * are present (`model/` sharded with an index, `model.safetensors|pt`, or `lora/`); every shard an
 * index names exists with the size its header implies (safetensors `8 + N + data`, zip archives end
 * with their central directory); and every other part that is present (EMA, optimizer,
 * lr_scheduler, sampler, master weights) is structurally whole. Absent optional parts are listed.
 * Writing new checkpoints in the same layout is in writer.ts.
 */
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';

import { readExact } from '../formats/safetensors.ts';
import { tempSibling } from '../../core/atomic.ts';

import { SoracError } from '../../core/errors.ts';

import { readZipDirectory } from '../formats/zip.ts';
import { openRegularFile, readSmallTextFile } from '../formats/safe-fs.ts';

export const CKPT_NAME = /^epoch(\d+)-global_step(\d+)$/;
/** Manifest written by `sorac ckpt manifest` inside a checkpoint dir. */
export const MANIFEST_NAME = 'sorac-manifest.json';

export type PartName = 'model' | 'ema' | 'optimizer' | 'lr_scheduler' | 'sampler' | 'master' | 'running_states' | 'lora';

export interface PartInfo {
  name: PartName;
  /** path relative to the checkpoint dir (`model/`, `ema.safetensors`, …) */
  path: string;
  ok: boolean;
  /** apparent bytes of the part's files */
  bytes: number;
  files: number;
  problems: string[];
}

export interface CheckpointInfo {
  name: string;
  dir: string;
  /** from the dir name (Open-Sora sorts by these) */
  nameEpoch: number;
  nameStep: number;
  epoch?: number;
  step?: number;
  globalStep?: number;
  actualUpdateStep?: number;
  batchSize?: number | null;
  runningStates?: Record<string, unknown>;
  parts: Partial<Record<PartName, PartInfo>>;
  /** `v1.x` (torch shards), `2.0` (safetensors shards), `unknown` */
  layout: string;
  bytes: number;
  mtimeMs: number;
  complete: boolean;
  /** why it is incomplete */
  problems: string[];
  /** not fatal: absent optional parts, odd metadata */
  warnings: string[];
  /** only `eval/` left (pruned by Open-Sora's rm_checkpoints or `sorac ckpt prune`) */
  pruned?: boolean;
}

export interface ExperimentListing {
  dir: string;
  /** oldest first, by (epoch, step) from the dir name */
  checkpoints: CheckpointInfo[];
  latest?: CheckpointInfo;
  /** other entries in the experiment dir (logs, configs, tensorboard) */
  others: string[];
}

export async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch {
    return null;
  }
}

/** Size check of one weights/pickle file from its header or zip directory only. */
export async function checkFileShape(path: string): Promise<{ ok: boolean; size: number; problem?: string; tensorBytes?: number; tensorCount?: number }> {
  let fh;
  try {
    fh = await openRegularFile(path);
  } catch (e) {
    if (e instanceof SoracError) return { ok: false, size: 0, problem: e.message };
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, size: 0, problem: code === 'ENOENT' ? 'missing' : `unreadable (${code ?? (e as Error).message})` };
  }
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return { ok: false, size, problem: 'empty file (0 bytes)' };
    const head = Buffer.alloc(Math.min(size, 16));
    await readExact(fh, head, 0, head.length, 0);
    if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
      try {
        await readZipDirectory(fh, size);
      } catch (e) {
        return { ok: false, size, problem: `zip: ${(e as Error).message}` };
      }
      return { ok: true, size };
    }
    if (size >= 9 && (head[8] === 0x7b || head[8] === 0x20) && head.readBigUInt64LE(0) <= 100_000_000n) {
      const n = Number(head.readBigUInt64LE(0));
      if (8 + n > size) return { ok: false, size, problem: `truncated: the safetensors header alone is ${8 + n} bytes, file has ${size}` };
      const hb = Buffer.alloc(n);
      await readExact(fh, hb, 0, n, 8);
      // A scan, not a parse: the largest data_offsets end and the tensor count are all the size
      // rule needs (JSON.parse of a 1000-tensor header costs 4x more; `ckpt verify` and every
      // loader validate the header fully).
      const text = hb.toString('latin1');
      if (text.trimStart()[0] !== '{' || text.trimEnd().slice(-1) !== '}') return { ok: false, size, problem: 'safetensors header is not a JSON object (cut short?)' };
      const re = /"data_offsets"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]/g;
      let end = 0;
      let count = 0;
      for (let mm = re.exec(text); mm; mm = re.exec(text)) {
        count++;
        const e2 = Number(mm[2]);
        if (e2 > end) end = e2;
      }
      const want = 8 + n + end;
      if (want !== size)
        return { ok: false, size, problem: want > size ? `truncated: header says ${want} bytes, file has ${size}` : `${size - want} trailing bytes after the data the header describes` };
      return { ok: true, size, tensorBytes: end, tensorCount: count };
    }
    if (head[0] === 0x80) return { ok: true, size }; // raw pickle: structure checked by `ckpt verify`
    return { ok: false, size, problem: 'neither a safetensors file nor a torch zip archive' };
  } catch (e) {
    return { ok: false, size: 0, problem: `unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  } finally {
    await fh.close();
  }
}

async function checkIndexedDir(ckptDir: string, rel: string, name: PartName, opts: { optimizer?: boolean } = {}): Promise<PartInfo> {
  const dir = join(ckptDir, rel);
  const part: PartInfo = { name, path: rel + '/', ok: false, bytes: 0, files: 0, problems: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    part.problems.push(`${rel}/ unreadable (${(e as NodeJS.ErrnoException).code})`);
    return part;
  }
  const indexes = names.filter((n) => /\.index(\..*)?\.json$/.test(n));
  if (indexes.length === 0) {
    // a single unsharded file (ColossalAI shard=False) or LoRA adapter dir
    const single = names.filter((n) => /\.(safetensors|bin|pt|pth)$/.test(n));
    if (single.length === 1) {
      const r = await checkFileShape(join(dir, single[0]!));
      part.bytes += r.size;
      part.files++;
      if (!r.ok) part.problems.push(`${rel}/${single[0]}: ${r.problem}`);
      part.ok = part.problems.length === 0;
      return part;
    }
    part.problems.push(`${rel}/ has no *.index.json${single.length ? ` but ${single.length} weight files` : ''} (a save still in progress, or the index was lost)`);
    return part;
  }
  if (indexes.length > 1) {
    part.problems.push(`${rel}/ holds ${indexes.length} index files (${indexes.join(', ')}); ColossalAI requires exactly one`);
    return part;
  }
  const indexPath = join(dir, indexes[0]!);
  let idx: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
  try {
    const text = await readSmallTextFile(indexPath, 100_000_000);
    part.bytes += Buffer.byteLength(text);
    part.files++;
    idx = JSON.parse(text);
  } catch (e) {
    part.problems.push(`${rel}/${indexes[0]}: not valid JSON (${(e as Error).message})`);
    return part;
  }
  if (!idx || typeof idx.weight_map !== 'object' || idx.weight_map === null || Array.isArray(idx.weight_map)) {
    part.problems.push(`${rel}/${indexes[0]}: no "weight_map" object`);
    return part;
  }
  // shard → [tensor count, first key]
  const shards = new Map<string, [number, string]>();
  for (const k in idx.weight_map) {
    const v = idx.weight_map[k];
    if (typeof v !== 'string' || v.includes('/') || v.includes('\\') || v === '..') {
      part.problems.push(`${rel}/${indexes[0]}: weight_map["${k}"] is not a shard file name`);
      return part;
    }
    const e = shards.get(v);
    if (e) e[0]++;
    else shards.set(v, [1, k]);
  }
  let tensorBytes = 0;
  let allSafetensors = true;
  const checks = await Promise.all([...shards.keys()].map((shard) => checkFileShape(join(dir, shard))));
  let i = 0;
  for (const [shard, [count, first]] of shards) {
    const r = checks[i++]!;
    part.bytes += r.size;
    if (r.size) part.files++;
    if (!r.ok) {
      part.problems.push(`${rel}/${shard}: ${r.problem}${r.problem === 'missing' ? ` (the index lists ${count} tensor(s) there, e.g. ${first})` : ''}`);
      continue;
    }
    if (r.tensorCount !== undefined) {
      tensorBytes += r.tensorBytes ?? 0;
      if (!opts.optimizer && r.tensorCount !== count)
        part.problems.push(`${rel}/${shard}: holds ${r.tensorCount} tensor(s), the index puts ${count} there (a shard from another save?)`);
    } else allSafetensors = false;
  }
  if (opts.optimizer) {
    const group = idx.metadata?.param_groups;
    if (typeof group === 'string') {
      const r = await checkFileShape(join(dir, group));
      part.bytes += r.size;
      if (r.size) part.files++;
      if (!r.ok) part.problems.push(`${rel}/${group} (param groups): ${r.problem}`);
    }
  }
  // the model index total_size is exact for safetensors shards (bytes for HF, float MiB for ColossalAI)
  const ts = idx.metadata?.total_size;
  if (!opts.optimizer && allSafetensors && typeof ts === 'number' && part.problems.length === 0 && shards.size > 0) {
    const mib = tensorBytes / 1024 / 1024;
    if (!(ts === tensorBytes || Math.abs(ts - mib) <= Math.max(1e-6, mib * 1e-6)))
      part.problems.push(`${rel}/${indexes[0]}: total_size ${ts} does not match the ${tensorBytes} tensor bytes in its shards (a shard from another save?)`);
  }
  part.ok = part.problems.length === 0;
  return part;
}

async function checkFilePart(ckptDir: string, rel: string, name: PartName): Promise<PartInfo> {
  const r = await checkFileShape(join(ckptDir, rel));
  return { name, path: rel, ok: r.ok, bytes: r.size, files: r.size ? 1 : 0, problems: r.ok ? [] : [`${rel}: ${r.problem}`] };
}

async function dirBytes(dir: string): Promise<{ bytes: number; mtimeMs: number }> {
  let bytes = 0;
  let mtimeMs = 0;
  let ents;
  try {
    ents = await readdir(dir, { withFileTypes: true });
  } catch {
    return { bytes, mtimeMs };
  }
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const r = await dirBytes(p);
      bytes += r.bytes;
      mtimeMs = Math.max(mtimeMs, r.mtimeMs);
    } else {
      const s = await statOrNull(p);
      if (s) {
        bytes += s.size;
        mtimeMs = Math.max(mtimeMs, s.mtimeMs);
      }
    }
  }
  return { bytes, mtimeMs };
}

/** Inspect one checkpoint dir (headers and sizes only). */
export async function inspectCheckpoint(dirIn: string): Promise<CheckpointInfo> {
  const dir = resolvePath(dirIn);
  const name = basename(dir);
  const m = CKPT_NAME.exec(name);
  const info: CheckpointInfo = {
    name,
    dir,
    nameEpoch: m ? Number(m[1]) : NaN,
    nameStep: m ? Number(m[2]) : NaN,
    parts: {},
    layout: 'unknown',
    bytes: 0,
    mtimeMs: 0,
    complete: false,
    problems: [],
    warnings: [],
  };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    info.problems.push(`cannot read the directory (${(e as NodeJS.ErrnoException).code})`);
    return info;
  }
  const has = (n: string) => names.includes(n);
  const isDir = async (n: string) => has(n) && (await statOrNull(join(dir, n)))?.isDirectory() === true;
  const visible = names.filter((n) => !n.startsWith('.'));
  if (visible.length === 1 && visible[0] === 'eval' && (await isDir('eval'))) {
    info.pruned = true;
    info.problems.push('pruned: only eval/ is left');
    return info;
  }
  // running states
  if (has('running_states.json')) {
    const p = join(dir, 'running_states.json');
    try {
      const text = await readSmallTextFile(p, 100_000_000);
      const rs = JSON.parse(text);
      info.parts.running_states = { name: 'running_states', path: 'running_states.json', ok: true, bytes: Buffer.byteLength(text), files: 1, problems: [] };
      if (!rs || typeof rs !== 'object' || Array.isArray(rs)) throw new Error('not a JSON object');
      info.runningStates = rs;
      const int = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);
      info.epoch = int(rs.epoch);
      info.step = int(rs.step);
      info.globalStep = int(rs.global_step);
      info.actualUpdateStep = int(rs.actual_update_step);
      info.batchSize = rs.batch_size === null ? null : int(rs.batch_size);
      if (info.epoch === undefined || info.step === undefined) {
        info.parts.running_states.ok = false;
        info.parts.running_states.problems.push('running_states.json lacks integer "epoch" and "step" (Open-Sora load() returns them)');
      } else if (m && info.epoch !== info.nameEpoch) info.warnings.push(`running_states.json says epoch ${info.epoch}, the dir name says ${info.nameEpoch}`);
    } catch (e) {
      info.parts.running_states = { name: 'running_states', path: 'running_states.json', ok: false, bytes: 0, files: 1, problems: [`running_states.json unreadable: ${(e as Error).message}`] };
    }
  } else info.problems.push('running_states.json is missing (Open-Sora load() asserts it exists; written near the end of a save)');
  // model weights, EMA, optimizer and the small pickles: independent, checked concurrently
  const jobs: Promise<void>[] = [];
  const add = (p: Promise<PartInfo>) => jobs.push(p.then((x) => void (info.parts[x.name] = x)));
  const [modelDir, optDir, loraDir] = await Promise.all([isDir('model'), isDir('optimizer'), isDir('lora')]);
  if (modelDir) add(checkIndexedDir(dir, 'model', 'model'));
  else if (has('model.safetensors')) add(checkFilePart(dir, 'model.safetensors', 'model'));
  else if (has('model.pt')) add(checkFilePart(dir, 'model.pt', 'model'));
  else if (loraDir) add(checkIndexedDir(dir, 'lora', 'lora'));
  else info.problems.push('model weights are missing (no model/, model.safetensors, model.pt or lora/)');
  if (has('ema.safetensors')) add(checkFilePart(dir, 'ema.safetensors', 'ema'));
  else if (has('ema.pt')) add(checkFilePart(dir, 'ema.pt', 'ema'));
  else info.warnings.push('no ema.pt / ema.safetensors (export --from model, or Open-Sora load(ema=…) fails)');
  if (optDir) add(checkIndexedDir(dir, 'optimizer', 'optimizer', { optimizer: true }));
  else info.warnings.push('no optimizer/ (Open-Sora --load restores the optimizer and fails without it)');
  if (has('lr_scheduler')) add(checkFilePart(dir, 'lr_scheduler', 'lr_scheduler'));
  if (has('sampler')) add(checkFilePart(dir, 'sampler', 'sampler'));
  if (has('master.safetensors')) add(checkFilePart(dir, 'master.safetensors', 'master'));
  const sizeJob = dirBytes(dir);
  await Promise.all(jobs);
  if (info.parts.model?.path === 'model/') {
    const idx = (await readdir(join(dir, 'model')).catch(() => [] as string[])).find((n) => n.endsWith('.index.json'));
    info.layout = idx?.includes('safetensors') ? '2.0' : idx ? 'v1.x' : 'unknown';
  }
  const order: PartName[] = ['running_states', 'model', 'lora', 'ema', 'optimizer', 'lr_scheduler', 'sampler', 'master'];
  info.parts = Object.fromEntries(order.filter((k) => info.parts[k]).map((k) => [k, info.parts[k]!]));
  for (const k of order) info.problems.push(...(info.parts[k]?.problems ?? []));
  const { bytes, mtimeMs } = await sizeJob;
  info.bytes = bytes;
  info.mtimeMs = mtimeMs;
  info.complete = info.problems.length === 0;
  return info;
}

export function compareCheckpoints(a: Pick<CheckpointInfo, 'nameEpoch' | 'nameStep' | 'name'>, b: Pick<CheckpointInfo, 'nameEpoch' | 'nameStep' | 'name'>): number {
  return a.nameEpoch - b.nameEpoch || a.nameStep - b.nameStep || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Every `epoch*-global_step*` dir of an experiment dir, oldest first (Open-Sora's `rm_checkpoints`
 * order: epoch, then the step in the name). When `dir` is itself a checkpoint dir, that one alone.
 */
export async function listCheckpoints(dirIn: string): Promise<ExperimentListing> {
  const dir = resolvePath(dirIn);
  const s = await statOrNull(dir);
  if (!s) throw new SoracError('SORA5001', `no such directory: ${dir}`, { hint: 'pass the experiment dir that holds the epochN-global_stepM/ checkpoints (e.g. outputs/000-STDiT3-XL-2)', looked: [], path: dir });
  if (!s.isDirectory()) throw new SoracError('SORA5101', `${dir} is not a directory`, { hint: 'pass the experiment dir that holds the epochN-global_stepM/ checkpoints', looked: [], path: dir });
  if (CKPT_NAME.test(basename(dir))) {
    const one = await inspectCheckpoint(dir);
    return { dir: dirname(dir), checkpoints: [one], latest: one.complete ? one : undefined, others: [] };
  }
  let ents;
  try {
    ents = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new SoracError('SORA5012', `cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'check permissions', looked: [], path: dir });
  }
  const names = ents.filter((e) => (e.isDirectory() || e.isSymbolicLink()) && CKPT_NAME.test(e.name)).map((e) => e.name);
  const others = ents.filter((e) => !CKPT_NAME.test(e.name)).map((e) => e.name).sort();
  // headers of different checkpoints are independent: inspect a few at a time
  const infos: CheckpointInfo[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      infos[i] = await inspectCheckpoint(join(dir, names[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, names.length) }, worker));
  const checkpoints = infos.filter((c) => !c.pruned).sort(compareCheckpoints);
  // A save writes its parts one after another (v1.x and 2.0: model/, optimizer/, lr_scheduler,
  // running_states.json, then ema and sampler), so a checkpoint lacking a part that the previous
  // complete checkpoint of the run has is most likely still being written (or was cut short).
  let prev: CheckpointInfo | undefined;
  for (const c of checkpoints) {
    if (c.complete && prev) {
      const lost = (Object.keys(prev.parts) as PartName[]).filter((p) => !c.parts[p] && !(p === 'model' && c.parts.lora) && !(p === 'lora' && c.parts.model));
      if (lost.length) {
        c.complete = false;
        c.problems.push(`no ${lost.join(', ')}, which ${prev.name} has: a save still in progress, or cut short`);
      }
    }
    if (c.complete) prev = c;
  }
  const complete = checkpoints.filter((c) => c.complete);
  return { dir, checkpoints, latest: complete[complete.length - 1], others };
}

export interface PrunePlanItem {
  checkpoint: CheckpointInfo;
  action: 'keep' | 'delete';
  reason: string;
}

export interface PruneOptions {
  keep: number;
  dryRun?: boolean;
  /** keep incomplete checkpoints older than the latest complete one too (default: delete them) */
  keepIncomplete?: boolean;
  onDelete?: (item: PrunePlanItem) => void;
}

/** Which checkpoints `prune --keep N` keeps and deletes, newest first. */
export function planPrune(listing: ExperimentListing, opts: Pick<PruneOptions, 'keep' | 'keepIncomplete'>): PrunePlanItem[] {
  if (!Number.isInteger(opts.keep) || opts.keep < 1)
    throw new SoracError('SORA5104', `--keep must be an integer >= 1 (got ${opts.keep})`, { hint: 'prune never deletes the only complete checkpoint; to remove a whole experiment use rm -r' });
  const newestFirst = [...listing.checkpoints].reverse();
  const latest = listing.latest;
  let kept = 0;
  return newestFirst.map((c): PrunePlanItem => {
    if (c.complete) {
      if (kept < opts.keep) {
        kept++;
        return { checkpoint: c, action: 'keep', reason: kept === 1 ? 'latest complete' : `complete, newest ${opts.keep}` };
      }
      return { checkpoint: c, action: 'delete', reason: `complete, older than the newest ${opts.keep}` };
    }
    if (!latest || compareCheckpoints(c, latest) > 0) return { checkpoint: c, action: 'keep', reason: 'incomplete and newer than the latest complete one: may still be being written' };
    if (opts.keepIncomplete) return { checkpoint: c, action: 'keep', reason: 'incomplete (kept: --keep-incomplete)' };
    return { checkpoint: c, action: 'delete', reason: `incomplete, older than the latest complete one: ${c.problems[0] ?? ''}` };
  });
}

/**
 * Delete a checkpoint so that no half-deleted dir ever looks like a checkpoint: it is first renamed
 * to a hidden name in the same dir (atomic), then removed. An `eval/` sub-dir is kept in place, as
 * Open-Sora's rm_checkpoints does. A checkpoint that is a symlink is unlinked, never followed: what
 * it points to (possibly outside the experiment) is left exactly as it is.
 */
export async function deleteCheckpoint(dir: string): Promise<void> {
  if ((await lstat(dir)).isSymbolicLink()) {
    await unlink(dir);
    return;
  }
  const trash = tempSibling(dir, 'prune');
  await rename(dir, trash);
  // lstat: an eval/ that is a symlink is moved back as the link it is (rename never follows it)
  const ev = await lstat(join(trash, 'eval')).catch(() => null);
  if (ev && (ev.isDirectory() || ev.isSymbolicLink())) {
    await mkdir(dir);
    await rename(join(trash, 'eval'), join(dir, 'eval'));
  }
  await rm(trash, { recursive: true, force: true });
}

export async function pruneCheckpoints(expDir: string, opts: PruneOptions): Promise<{ listing: ExperimentListing; plan: PrunePlanItem[]; deleted: string[]; freedBytes: number }> {
  const listing = await listCheckpoints(expDir);
  const plan = planPrune(listing, opts);
  const deleted: string[] = [];
  let freedBytes = 0;
  for (const item of plan) {
    if (item.action !== 'delete') continue;
    opts.onDelete?.(item);
    if (!opts.dryRun) {
      try {
        await deleteCheckpoint(item.checkpoint.dir);
      } catch (e) {
        throw new SoracError('SORA5105', `cannot delete ${item.checkpoint.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'check that the experiment dir is writable', looked: [], path: item.checkpoint.dir });
      }
    }
    deleted.push(item.checkpoint.dir);
    freedBytes += item.checkpoint.bytes;
  }
  return { listing, plan, deleted, freedBytes };
}
