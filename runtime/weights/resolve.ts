/**
 * One resolver for a user's weights string. Search order (documented in docs/guides/checkpoints.md):
 *
 *  1. an existing path (relative to cwd, `~` expanded):
 *     - a file → opened by content sniffing (safetensors, torch zip, `*.index.json`);
 *     - an Open-Sora training checkpoint dir (`running_states.json`, `model/`, `ema.pt|ema.safetensors`)
 *       → `ema` by default, `model/` with `part: 'model'`;
 *     - an HF transformers / diffusers model dir → the first of `model.safetensors`,
 *       `model.safetensors.index.json`, `diffusion_pytorch_model.safetensors`, its index,
 *       `pytorch_model.bin`, its index, `diffusion_pytorch_model.bin`, its index;
 *     - otherwise a dir holding exactly one `*.index.json` or exactly one weights file;
 *  2. a hub id `org/name`, `org/name/path/in/repo`, `org/name@rev[/path]` (or `…/file@rev`), resolved
 *     fully offline in the local hub cache(s): `--cache-dir`, `$HF_HUB_CACHE`,
 *     `$HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
 *     `~/.cache/huggingface/hub` — `models--org--name/refs/<rev>` → `snapshots/<commit>/…`
 *     (symlinks into `blobs/` or plain copies).
 *
 * Nothing touches the network. A miss throws SoracError SORA5001 listing every place looked at.
 */
import { readdir, stat, lstat, readlink, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { containedRealpath, notRegular, readSmallTextFile } from '../formats/safe-fs.ts';
import { sniffFile } from '../formats/torch-file.ts';
import { SoracError } from '../../core/errors.ts';

export type WeightsFormat = 'safetensors' | 'torch-zip' | 'index';

export interface ResolveOptions {
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Open-Sora training dirs: load the EMA weights (default) or the `model/` weights. */
  part?: 'ema' | 'model';
  /** A hub cache to search first (like `cache_dir=` in huggingface_hub). */
  cacheDir?: string;
  /** Revision for hub ids without `@rev` (default `main`). */
  revision?: string;
  /** Weight variant, e.g. `fp16` → `model.fp16.safetensors`. */
  variant?: string;
}

export interface HubLocation {
  repo: string;
  revision: string;
  commit: string;
  cache: string;
  repoDir: string;
  snapshot: string;
  file?: string;
}

export interface TrainingInfo {
  dir: string;
  epoch?: number;
  step?: number;
  globalStep?: number;
  runningStates?: Record<string, unknown>;
  parts: { model: boolean; ema: string | null; optimizer: boolean; lrScheduler: boolean; sampler: boolean; master: boolean; runningStates: boolean };
  chosen: 'ema' | 'model';
}

export interface ResolvedWeights {
  spec: string;
  /** The file to open: a weights file or an index JSON. */
  path: string;
  format: WeightsFormat;
  via: 'file' | 'dir' | 'training-dir' | 'hub-cache';
  hub?: HubLocation;
  training?: TrainingInfo;
  /** Every place looked at, in order (also on success). */
  looked: string[];
  notes: string[];
}

const HF_DIR_ORDER = [
  'model.safetensors',
  'model.safetensors.index.json',
  'diffusion_pytorch_model.safetensors',
  'diffusion_pytorch_model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
  'diffusion_pytorch_model.bin',
  'diffusion_pytorch_model.bin.index.json',
];
const WEIGHT_EXT = /\.(safetensors|pt|pth|bin|ckpt)$/;

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch {
    return null;
  }
}

function withVariant(name: string, variant?: string): string {
  if (!variant) return name;
  const m = /^(.*?)(\.safetensors|\.bin)(\.index\.json)?$/.exec(name);
  return m ? `${m[1]}.${variant}${m[2]}${m[3] ?? ''}` : name;
}

export function expandHome(p: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (p === '~') return env.HOME ?? homedir();
  if (p.startsWith('~/')) return join(env.HOME ?? homedir(), p.slice(2));
  return p;
}

/** Hub cache roots in search order, each with where it came from. */
export function hubCacheRoots(opts: ResolveOptions = {}): { dir: string; from: string }[] {
  const env = opts.env ?? process.env;
  const home = env.HOME ?? homedir();
  const out: { dir: string; from: string }[] = [];
  const add = (dir: string | undefined, from: string) => {
    if (!dir) return;
    const d = resolvePath(expandHome(dir, env));
    if (!out.some((o) => o.dir === d)) out.push({ dir: d, from });
  };
  add(opts.cacheDir, '--cache-dir');
  add(env.HF_HUB_CACHE, '$HF_HUB_CACHE');
  add(env.HUGGINGFACE_HUB_CACHE, '$HUGGINGFACE_HUB_CACHE');
  if (env.HF_HOME) add(join(env.HF_HOME, 'hub'), '$HF_HOME/hub');
  if (env.XDG_CACHE_HOME) add(join(env.XDG_CACHE_HOME, 'huggingface', 'hub'), '$XDG_CACHE_HOME/huggingface/hub');
  add(join(home, '.cache', 'huggingface', 'hub'), 'default ~/.cache/huggingface/hub');
  return out;
}

export interface HubSpec {
  repo: string;
  revision?: string;
  file?: string;
}

/** Parse `org/name`, `org/name/path/in/repo`, `org/name@rev`, `org/name@rev/path`, `org/name/path@rev`. */
export function parseHubSpec(spec: string): HubSpec | undefined {
  if (spec.startsWith('/') || spec.startsWith('.') || spec.startsWith('~') || spec.includes('\\') || spec.includes('//')) return undefined;
  const parts = spec.split('/');
  if (parts.length < 2) return undefined;
  const seg = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  let revision: string | undefined;
  let [org, name] = parts as [string, string];
  const at = name.indexOf('@');
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
  }
  let rest = parts.slice(2);
  if (!revision && rest.length) {
    const last = rest[rest.length - 1]!;
    const a = last.lastIndexOf('@');
    if (a > 0) {
      revision = last.slice(a + 1);
      rest = [...rest.slice(0, -1), last.slice(0, a)];
    }
  }
  if (!seg.test(org) || !seg.test(name) || name.includes('--') || org.includes('--')) return undefined;
  if (revision !== undefined && !/^[A-Za-z0-9._/-]+$/.test(revision)) return undefined;
  if (rest.some((r) => r === '' || r === '..' || r === '.')) return undefined;
  return { repo: `${org}/${name}`, revision, file: rest.length ? rest.join('/') : undefined };
}

/**
 * The `huggingface-cli download` arguments after the repo id that fetch `file`: a path with an extension is
 * a file (`REPO model.safetensors`), one without is a folder (`REPO --include "text_encoder/*"`; a bare
 * `REPO text_encoder` would ask for a file of that name).
 */
export function hubDownloadArgs(file: string | undefined, revision?: string): string {
  const last = file?.split('/').pop() ?? '';
  const what = !file ? '' : last.includes('.') ? ` ${file}` : ` --include "${file}/*"`;
  return `${what}${revision && revision !== 'main' ? ` --revision ${revision}` : ''}`;
}

/** Weight-holding components of a diffusers pipeline folder (model_index.json), `vae` first; undefined when it is not one. */
async function pipelineComponents(dir: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readSmallTextFile(join(dir, 'model_index.json'), MAX_JSON_BYTES);
  } catch {
    return undefined;
  }
  let idx: unknown;
  try {
    idx = JSON.parse(text);
  } catch {
    return [];
  }
  if (!idx || typeof idx !== 'object') return [];
  const skip = /scheduler|tokenizer|feature_extractor|image_processor|safety_checker/;
  const names = Object.entries(idx as Record<string, unknown>)
    .filter(([k, v]) => !k.startsWith('_') && Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string') && !skip.test(k))
    .map(([k]) => k);
  return [...names.filter((n) => n === 'vae'), ...names.filter((n) => n !== 'vae')];
}

/** SORA5007 for a diffusers pipeline root given where one model's weights are expected. */
function pipelineError(label: string, dir: string, components: readonly string[], looked: readonly string[], sub: (c: string) => string): SoracError {
  const first = components[0];
  return new SoracError('SORA5007', `${label} is a diffusers pipeline (model_index.json), not one model`, {
    hint: first
      ? `use the sub-folder of the component you want, e.g. the \`${first}\` sub-folder: ${sub(first)} (components: ${components.join(', ')})`
      : `use the sub-folder of the component you want (see ${join(dir, 'model_index.json')})`,
    looked,
    path: dir,
  });
}

/** `.incomplete` blobs of a hub repo in any cache root: an interrupted download (hub clients resume it). */
async function partialDownload(hub: HubSpec, opts: ResolveOptions): Promise<{ repoDir: string; incomplete: number; snapshots: boolean } | undefined> {
  const folder = 'models--' + hub.repo.split('/').join('--');
  for (const root of hubCacheRoots(opts)) {
    const repoDir = join(root.dir, folder);
    let blobs: string[];
    try {
      blobs = await readdir(join(repoDir, 'blobs'));
    } catch {
      continue;
    }
    const incomplete = blobs.filter((b) => b.endsWith('.incomplete')).length;
    if (!incomplete) continue;
    const snapshots = ((await readdir(join(repoDir, 'snapshots')).catch(() => [])) as string[]).length > 0;
    return { repoDir, incomplete, snapshots };
  }
  return undefined;
}

export async function resolveWeights(spec: string, opts: ResolveOptions = {}): Promise<ResolvedWeights> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const looked: string[] = [];
  const notes: string[] = [];
  const asPath = resolvePath(cwd, expandHome(spec, env));
  const st = await statOrNull(asPath);
  if (st?.isFile()) return { spec, ...(await resolveFile(asPath)), via: 'file', looked: [`${asPath} (file)`], notes };
  if (st && !st.isDirectory()) throw notRegular(asPath, st);
  if (st?.isDirectory()) {
    const r = await resolveDir(asPath, opts, looked, notes);
    if (r) return { spec, ...r, looked, notes };
    const components = await pipelineComponents(asPath);
    if (components) throw pipelineError(asPath, asPath, components, looked, (c) => join(asPath, c));
    throw new SoracError(
      'SORA5001',
      `no weights found in directory ${asPath}`,
      { hint: 'point at a weights file, an HF model dir (config.json + model.safetensors), a sharded index, or an Open-Sora epochN-global_stepM/ dir', looked, path: asPath },
    );
  }
  looked.push(`${asPath} (no such file or directory)`);
  const hub = parseHubSpec(spec);
  if (hub) {
    const r = await resolveHub(hub, opts, looked, notes);
    if (r) return { spec, ...r, looked, notes };
    const rev = hub.revision ?? opts.revision;
    const args = hubDownloadArgs(hub.file, rev);
    const partial = await partialDownload(hub, opts);
    if (partial)
      throw new SoracError(
        'SORA5008',
        `${hub.repo} is only partially downloaded in ${partial.repoDir}: ${partial.incomplete} .incomplete blob(s)${partial.snapshots ? ' (an interrupted download)' : ' and no complete snapshot'}`,
        { hint: `re-run the download to resume it: huggingface-cli download ${hub.repo}${args}`, looked, path: partial.repoDir },
      );
    const roots = hubCacheRoots(opts);
    throw new SoracError(
      'SORA5001',
      `"${spec}" is not a local path and ${hub.repo}${hub.revision ? '@' + hub.revision : ''}${hub.file ? ' / ' + hub.file : ''} is not in any local hub cache (sorac never downloads)`,
      { hint: [
        `download it into the hub cache on a machine with network access: huggingface-cli download ${hub.repo}${args}`,
        `or into a plain folder and pass that folder: huggingface-cli download ${hub.repo}${args} --local-dir ./ckpts/${hub.repo.split('/')[1]}`,
        `if the cache lives elsewhere, point at it: HF_HUB_CACHE=/path/to/huggingface/hub (searched now: ${roots.map((r) => r.dir).join(', ')})`,
      ].join('\n'), looked },
    );
  }
  throw new SoracError('SORA5001', `no such file or directory: ${asPath}`, { hint: `check the path (relative paths are resolved against ${cwd})`, looked, path: asPath });
}

async function resolveFile(path: string): Promise<{ path: string; format: WeightsFormat }> {
  if (path.endsWith('.index.json')) return { path, format: 'index' };
  let kind;
  try {
    kind = await sniffFile(path);
  } catch (e) {
    if (e instanceof SoracError) throw e;
    throw new SoracError('SORA5012', `cannot read ${path}: ${(e as Error).message}`, { hint: 'check file permissions', looked: [], path });
  }
  if (kind === 'safetensors') return { path, format: 'safetensors' };
  if (kind === 'torch-zip' || kind === 'torch-legacy' || kind === 'torch-legacy-tar' || kind === 'pickle') return { path, format: 'torch-zip' };
  if (kind === 'json') return { path, format: 'index' };
  if (path.endsWith('.safetensors') || kind === 'empty') return { path, format: 'safetensors' }; // the reader reports the exact problem
  throw new SoracError('SORA5005', `${path} is not a recognised weights file (not safetensors, not a PyTorch zip archive, not an index JSON)`, { hint: 'supported: .safetensors, torch.save zip files (.pt/.pth/.bin/…), *.index.json', looked: [], path });
}

async function readJson(p: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await readSmallTextFile(p, MAX_JSON_BYTES));
    return v && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function trainingInfo(dir: string, part: 'ema' | 'model' = 'ema'): Promise<TrainingInfo | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const has = (n: string) => names.includes(n);
  const modelDir = has('model') && (await statOrNull(join(dir, 'model')))?.isDirectory() === true;
  const ema = has('ema.safetensors') ? 'ema.safetensors' : has('ema.pt') ? 'ema.pt' : null;
  const isTraining = has('running_states.json') || (modelDir && (ema !== null || has('optimizer'))) || /^epoch\d+-global_step\d+$/.test(basename(dir));
  if (!isTraining) return undefined;
  const rs = has('running_states.json') ? await readJson(join(dir, 'running_states.json')) : undefined;
  const m = /^epoch(\d+)-global_step(\d+)$/.exec(basename(dir));
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    dir,
    epoch: num(rs?.epoch) ?? (m ? Number(m[1]) : undefined),
    step: num(rs?.step),
    globalStep: num(rs?.global_step) ?? (m ? Number(m[2]) : undefined),
    runningStates: rs,
    parts: {
      model: modelDir,
      ema,
      optimizer: has('optimizer'),
      lrScheduler: has('lr_scheduler'),
      sampler: has('sampler'),
      master: has('master.safetensors'),
      runningStates: has('running_states.json'),
    },
    chosen: part,
  };
}

async function resolveDir(
  dir: string,
  opts: ResolveOptions,
  looked: string[],
  notes: string[],
): Promise<{ path: string; format: WeightsFormat; via: ResolvedWeights['via']; training?: TrainingInfo } | undefined> {
  const tr = await trainingInfo(dir, opts.part ?? 'ema');
  if (tr) {
    const want = opts.part ?? 'ema';
    looked.push(`${dir} (Open-Sora training checkpoint dir, part "${want}")`);
    if (want === 'ema') {
      if (tr.parts.ema) {
        notes.push(`training checkpoint: loading ${tr.parts.ema} (the EMA weights, the default)${tr.parts.model ? '; the raw model/ weights are also there (part "model")' : ''}`);
        return { ...(await resolveFile(join(dir, tr.parts.ema))), via: 'training-dir', training: tr };
      }
      looked.push(`${join(dir, 'ema.safetensors')} (missing)`, `${join(dir, 'ema.pt')} (missing)`);
      if (opts.part === 'ema') return undefined;
      notes.push('training checkpoint has no ema.pt / ema.safetensors: falling back to model/');
    }
    for (const n of ['model.safetensors', 'model.pt']) {
      if ((await statOrNull(join(dir, n)))?.isFile()) return { ...(await resolveFile(join(dir, n))), via: 'training-dir', training: { ...tr, chosen: 'model' } };
    }
    if (tr.parts.model) {
      const r = await resolvePlainDir(join(dir, 'model'), opts, looked, notes);
      if (r) return { ...r, via: 'training-dir', training: { ...tr, chosen: 'model' } };
    } else looked.push(`${join(dir, 'model')} (missing)`);
    return undefined;
  }
  const r = await resolvePlainDir(dir, opts, looked, notes);
  return r ? { ...r, via: 'dir' } : undefined;
}

async function resolvePlainDir(dir: string, opts: ResolveOptions, looked: string[], notes: string[] = []): Promise<{ path: string; format: WeightsFormat } | undefined> {
  for (let i = 0; i < HF_DIR_ORDER.length; i++) {
    const p = join(dir, withVariant(HF_DIR_ORDER[i]!, opts.variant));
    if ((await statOrNull(p))?.isFile()) {
      const others: string[] = [];
      for (const n of HF_DIR_ORDER.slice(i + 1)) if ((await statOrNull(join(dir, withVariant(n, opts.variant))))?.isFile()) others.push(withVariant(n, opts.variant));
      if (others.length) notes.push(`${dir}: loading ${basename(p)}; also present, not loaded: ${others.join(', ')}`);
      return resolveFile(p);
    }
    looked.push(`${p} (missing)`);
  }
  let names: string[] = [];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    looked.push(`${dir} (unreadable: ${(e as Error).message})`);
    return undefined;
  }
  const indexes = names.filter((n) => n.endsWith('.index.json'));
  if (indexes.length === 1) return resolveFile(join(dir, indexes[0]!));
  if (indexes.length > 1)
    throw new SoracError('SORA5007', `${dir} holds ${indexes.length} index files (${indexes.join(', ')}); cannot tell which checkpoint to load`, { hint: `pass one of them explicitly, e.g. ${join(dir, indexes[0]!)}`, looked, path: dir });
  const files = names.filter((n) => WEIGHT_EXT.test(n));
  if (files.length === 1) return resolveFile(join(dir, files[0]!));
  if (files.length > 1)
    throw new SoracError('SORA5007', `${dir} holds ${files.length} weight files (${files.slice(0, 6).join(', ')}${files.length > 6 ? ', …' : ''}) and no index`, { hint: `pass one file explicitly, e.g. ${join(dir, files[0]!)}`, looked, path: dir });
  if (names.includes('model_index.json'))
    looked.push(`${dir} is a diffusers pipeline (model_index.json): pass a component sub-folder such as ${join(dir, 'vae')} or ${join(dir, 'transformer')}`);
  else looked.push(`${dir} (no *.index.json, no .safetensors/.pt/.pth/.bin/.ckpt file)`);
  return undefined;
}

const HEX40 = /^[0-9a-f]{40}$/;
/** JSON side files (running_states.json, indexes) are read whole; cap their size. */
const MAX_JSON_BYTES = 100_000_000;

/** The snapshot directories of a hub repo at a revision, in cache search order (misses are added to `looked`). */
async function* hubSnapshots(hub: HubSpec, opts: ResolveOptions, looked: string[]): AsyncGenerator<HubLocation> {
  const revision = hub.revision ?? opts.revision ?? 'main';
  const folder = 'models--' + hub.repo.split('/').join('--');
  for (const root of hubCacheRoots(opts)) {
    const repoDir = join(root.dir, folder);
    const where = `${repoDir} [${root.from}]`;
    if (!(await statOrNull(repoDir))?.isDirectory()) {
      looked.push(`${where} (not in this cache)`);
      continue;
    }
    let commit: string | undefined;
    if (HEX40.test(revision)) commit = revision;
    else {
      try {
        // a ref is a 40-character hash: a FIFO or device here is refused, never read
        commit = (await readSmallTextFile(join(repoDir, 'refs', revision), 1024)).trim();
      } catch (e) {
        if (e instanceof SoracError) {
          looked.push(`${join(repoDir, 'refs', revision)} (${e.message})`);
          continue;
        }
        const refs = await listRefs(join(repoDir, 'refs'));
        looked.push(`${join(repoDir, 'refs', revision)} (no such ref; cached refs: ${refs.length ? refs.join(', ') : 'none'})`);
        continue;
      }
      if (!HEX40.test(commit)) {
        looked.push(`${join(repoDir, 'refs', revision)} (does not hold a commit hash)`);
        continue;
      }
    }
    const snapshot = join(repoDir, 'snapshots', commit);
    // the snapshot itself must be inside the repo folder (a symlinked snapshots/ dir is not followed out)
    await containedRealpath(snapshot, [repoDir], `hub cache ${hub.repo} revision ${revision}`);
    if (!(await statOrNull(snapshot))?.isDirectory()) {
      looked.push(`${snapshot} (snapshot for ${revision} missing)`);
      continue;
    }
    yield { repo: hub.repo, revision, commit, cache: root.dir, repoDir, snapshot, ...(hub.file ? { file: hub.file } : {}) };
  }
}

async function resolveHub(hub: HubSpec, opts: ResolveOptions, looked: string[], notes: string[]) {
  const r = await resolveHubInner(hub, opts, looked, notes);
  // snapshot symlinks point into ../../blobs of the same repo: one that leads anywhere else
  // (another file on the system, /dev/zero) is refused before anything reads it
  if (r) await containedRealpath(r.path, [r.hub.repoDir], `hub cache snapshot ${r.hub.snapshot}`);
  return r;
}

async function resolveHubInner(hub: HubSpec, opts: ResolveOptions, looked: string[], notes: string[]) {
  for await (const loc of hubSnapshots(hub, opts, looked)) {
    const { revision, commit, snapshot, repoDir } = loc;
    if (hub.file) {
      const p = join(snapshot, hub.file);
      await containedRealpath(p, [repoDir], `hub cache snapshot ${snapshot}`);
      const s = await statOrNull(p);
      if (s && !s.isFile() && !s.isDirectory()) throw notRegular(p, s);
      if (s?.isFile()) {
        notes.push(`hub cache: ${hub.repo}@${revision} (${commit.slice(0, 12)}) from ${loc.cache}`);
        return { ...(await resolveFile(p)), via: 'hub-cache' as const, hub: loc };
      }
      if (s?.isDirectory()) {
        const r = await resolveDir(p, opts, looked, notes);
        if (r) return { ...r, via: 'hub-cache' as const, hub: loc };
        const components = await pipelineComponents(p);
        if (components) throw pipelineError(`${hub.repo}/${hub.file}`, p, components, looked, (c) => `${hub.repo}/${hub.file}/${c}`);
        continue;
      }
      const ls = await lstat(p).catch(() => null);
      if (ls?.isSymbolicLink()) {
        const target = await readlink(p);
        const blob = resolvePath(dirname(p), target);
        const incomplete = (await statOrNull(blob + '.incomplete')) !== null;
        throw new SoracError(
          'SORA5008',
          `${hub.repo}@${revision}: ${hub.file} points to blob ${basename(blob)}, which is ${incomplete ? 'only partially downloaded (.incomplete)' : 'missing'}`,
          { hint: `re-download it: huggingface-cli download ${hub.repo}${hubDownloadArgs(hub.file, revision)}`, looked: [...looked, `${p} → ${blob}`], path: p },
        );
      }
      const noExist = await statOrNull(join(repoDir, '.no_exist', commit, hub.file));
      looked.push(`${p} (${noExist ? 'recorded as not existing in the repo at this commit' : 'not downloaded'})`);
      continue;
    }
    const r = await resolveDir(snapshot, opts, looked, notes);
    if (r) {
      notes.push(`hub cache: ${hub.repo}@${revision} (${commit.slice(0, 12)}) from ${loc.cache}`);
      return { ...r, via: 'hub-cache' as const, hub: loc };
    }
    const components = await pipelineComponents(snapshot);
    if (components) throw pipelineError(hub.repo, snapshot, components, looked, (c) => `${hub.repo}${hub.revision ? '@' + hub.revision : ''}/${c}`);
  }
  return undefined;
}

/**
 * A directory a user names as a path or a hub id (`org/name[@rev][/sub/folder]`), found offline like
 * weights are: an existing directory, else the snapshot (sub-folder) in the local hub cache. For files that
 * are not weights (tokenizers, configs). A miss throws SORA5001 listing every place looked.
 */
export async function resolveFolder(spec: string, opts: ResolveOptions = {}): Promise<{ dir: string; via: 'dir' | 'hub-cache'; hub?: HubLocation; looked: string[] }> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const looked: string[] = [];
  const asPath = resolvePath(cwd, expandHome(spec, env));
  const st = await statOrNull(asPath);
  if (st?.isDirectory()) return { dir: asPath, via: 'dir', looked: [`${asPath} (directory)`] };
  looked.push(`${asPath} (${st ? 'not a directory' : 'no such directory'})`);
  const hub = parseHubSpec(spec);
  if (hub) {
    for await (const loc of hubSnapshots(hub, opts, looked)) {
      const dir = hub.file ? join(loc.snapshot, hub.file) : loc.snapshot;
      if ((await statOrNull(dir))?.isDirectory()) return { dir, via: 'hub-cache', hub: loc, looked };
      looked.push(`${dir} (not downloaded)`);
    }
    const partial = await partialDownload(hub, opts);
    if (partial)
      throw new SoracError('SORA5008', `${hub.repo} is only partially downloaded in ${partial.repoDir}: ${partial.incomplete} .incomplete blob(s)${partial.snapshots ? ' (an interrupted download)' : ' and no complete snapshot'}`, {
        hint: `re-run the download to resume it: huggingface-cli download ${hub.repo}${hub.file ? ` --include "${hub.file}/*"` : ''}`,
        looked,
        path: partial.repoDir,
      });
    throw new SoracError('SORA5001', `"${spec}" is not a local directory and ${hub.repo}${hub.file ? ' / ' + hub.file : ''} is not in any local hub cache (sorac never downloads)`, {
      hint: `download it on a machine with network access: huggingface-cli download ${hub.repo}${hub.file ? ` --include "${hub.file}/*"` : ''}`,
      looked,
    });
  }
  throw new SoracError('SORA5001', `no such directory: ${asPath}`, { hint: `check the path (relative paths are resolved against ${cwd})`, looked, path: asPath });
}

async function listRefs(dir: string, prefix = ''): Promise<string[]> {
  let out: string[] = [];
  let ents;
  try {
    ents = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    if (e.isDirectory()) out = out.concat(await listRefs(join(dir, e.name), `${prefix}${e.name}/`));
    else out.push(prefix + e.name);
  }
  return out.sort();
}

/** If `path` is (a symlink into, or a file inside) a hub cache blob, the expected hash. */
export async function hubBlobOf(path: string): Promise<{ blob: string; algo: 'sha256' | 'git-sha1'; expected: string } | undefined> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    return undefined;
  }
  const name = basename(real);
  if (basename(dirname(real)) !== 'blobs' || !basename(dirname(dirname(real))).startsWith('models--')) {
    // copied (non-symlink) layouts carry no hash in the path
    return undefined;
  }
  if (/^[0-9a-f]{64}$/.test(name)) return { blob: real, algo: 'sha256', expected: name };
  if (HEX40.test(name)) return { blob: real, algo: 'git-sha1', expected: name };
  return undefined;
}

