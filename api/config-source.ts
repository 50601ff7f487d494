/**
 * Where a model's config comes from when a checkpoint is given: `--config FILE`, `--config DIR|HUB_ID`
 * (its config.json, found offline like weights), a config.json beside the weights (the file's directory,
 * an HF/diffusers folder, a hub snapshot, an Open-Sora training dir and its experiment dir), or
 * `--config auto` (the default with weights): the config inferred from the checkpoint's header
 * (compiler/infer.ts), over the config.json found and the `--set` values. Each choice is reported as one
 * note line.
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { fsHost } from '../compiler/host.ts';
import { inferConfig } from '../compiler/infer.ts';
import { SoracError } from '../core/errors.ts';
import { resolveFolder, resolveWeights } from '../runtime/weights/resolve.ts';
import { openWeights } from '../runtime/weights/store.ts';
import { readConfigFile } from './model.ts';

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/** `--config SPEC` as a file path: a file as is; a directory or hub id (`org/name[@rev][/sub]`) → its config.json. */
export async function resolveConfigSpec(spec: string, cwd = process.cwd()): Promise<{ path: string; note?: string }> {
  const asPath = path.resolve(cwd, spec);
  if (isFile(asPath)) return { path: spec };
  const folder = await resolveFolder(spec, { cwd });
  const file = path.join(folder.dir, 'config.json');
  if (!isFile(file)) throw new SoracError('SORA7001', `--config ${spec}: ${folder.dir} has no config.json`, { hint: 'pass the config file itself, or the folder that holds config.json', path: folder.dir, looked: [...folder.looked, `${file} (no such file)`] });
  return { path: file, note: `config: ${file} (from --config ${spec}${folder.via === 'hub-cache' ? ', local hub cache' : ''})` };
}

/** A config.json beside a checkpoint: the weights file's folder, then (training dirs) the checkpoint dir and the experiment dir above it. */
export async function configBesideWeights(weights: string, opts: { cwd?: string; part?: 'ema' | 'model' } = {}): Promise<string | undefined> {
  let r;
  try {
    r = await resolveWeights(weights, { ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.part ? { part: opts.part } : {}) });
  } catch {
    return undefined; // the weights error is reported where the weights are read
  }
  const dirs = [path.dirname(r.path)];
  if (r.training) dirs.push(r.training.dir, path.dirname(r.training.dir));
  for (const d of dirs) {
    const f = path.join(d, 'config.json');
    if (isFile(f)) return f;
  }
  return undefined;
}

export interface ConfigChoice {
  /** the config file to read (given, resolved, or found beside the weights) */
  readonly configPath?: string;
  /** inferred values (a full config) when the weights determined one that fits */
  readonly values?: Readonly<Record<string, unknown>>;
  /** one line per choice made, for the user */
  readonly notes: readonly string[];
}

export interface ChooseConfigOptions {
  readonly file: string;
  readonly cwd?: string;
  readonly model?: string;
  /** --config as given: a file, a directory, a hub id, or "auto" */
  readonly config?: string;
  readonly set?: readonly (readonly [string, string])[];
  readonly weights?: string;
  readonly part?: 'ema' | 'model';
}

/**
 * The config for compiling `file` against `weights`. Without weights only `--config` is resolved. With
 * weights and no `--config` (or `--config auto`): a config.json beside the weights is the base, and the
 * config inferred from the header is used when it reproduces the checkpoint exactly; otherwise the base
 * (the strict load report then says what disagrees).
 */
export async function chooseConfig(o: ChooseConfigOptions): Promise<ConfigChoice> {
  const cwd = o.cwd ?? process.cwd();
  const notes: string[] = [];
  if (o.config === 'auto' && !o.weights) throw new SoracError('SORA7007', '--config auto needs --weights: the config is inferred from the checkpoint', { hint: 'pass --weights WEIGHTS, or a config file' });
  if (o.config && o.config !== 'auto') {
    const r = await resolveConfigSpec(o.config, cwd);
    if (r.note) notes.push(r.note);
    return { configPath: r.path, notes };
  }
  if (!o.weights) return { notes };
  const beside = await configBesideWeights(o.weights, { cwd, ...(o.part ? { part: o.part } : {}) });
  if (beside) notes.push(`config: read ${beside} beside the weights (--config FILE chooses another)`);
  let store;
  try {
    store = await openWeights(o.weights, { cwd, ...(o.part ? { part: o.part } : {}) });
  } catch {
    return { ...(beside ? { configPath: beside } : {}), notes }; // reported where the weights are read
  }
  try {
    const header = new Map<string, readonly number[]>();
    for (const t of store.tensors.values()) header.set(t.key, t.shape);
    const set = o.set ?? [];
    const base = { ...(beside ? { file: { path: beside, values: readConfigFile(beside) } } : {}), set };
    let r: ReturnType<typeof inferConfig>;
    try {
      r = inferConfig({ file: path.resolve(cwd, o.file), host: fsHost, cwd, ...(o.model ? { model: o.model } : {}), header, base, pinned: new Set(set.map(([k]) => k)) });
    } catch (e) {
      // inference is a convenience: whatever stops it, the base config and the strict load report still work
      notes.push(`config: could not infer a config from the weights (${(e as Error).message.split('\n')[0]}); using ${beside ? 'config.json' : 'the defaults'}`);
      return { ...(beside ? { configPath: beside } : {}), notes };
    }
    if ('error' in r) return { ...(beside ? { configPath: beside } : {}), notes };
    const from = beside ? 'config.json' : 'the defaults';
    if (!r.exact || r.invalid) {
      notes.push(`config: no config of ${r.modelName} reproduces the weights (${(r.score * 100).toFixed(1)}% of tensors fit at the closest); using ${from}${set.length ? ' and --set' : ''}`);
      return { ...(beside ? { configPath: beside } : {}), notes };
    }
    // values fitted only as a product (STDiT's input_size[1] * input_size[2]) load but may compute wrongly: not silently
    const fitted = r.values.some((v) => v.status === 'undetermined' && v.evidence?.includes('chosen so that')) ? r.values.filter((v) => v.status === 'undetermined' && v.evidence?.includes('only together with')).map((v) => v.key) : [];
    if (fitted.length) {
      // the rest as inferred; these from the base, so that the load report names exactly the tensors they shape
      notes.push(`config: inferred from the weights except ${fitted.join(', ')}: the shapes give only a product (${fitted.length > 1 ? 'they come' : 'it comes'} from ${from}); give ${fitted.length > 1 ? 'them' : 'it'} with --set or a config file`);
      const values: Record<string, unknown> = { ...r.config };
      for (const v of r.values) {
        if (v.status !== 'undetermined' || !v.evidence?.includes('chosen so that')) continue;
        const el = /^(.*)\[(\d+)\]$/.exec(v.key);
        if (!el) values[v.key] = r.base[v.key];
        else if (Array.isArray(values[el[1]!]) && Array.isArray(r.base[el[1]!])) {
          const arr = [...(values[el[1]!] as unknown[])];
          arr[Number(el[2])] = (r.base[el[1]!] as unknown[])[Number(el[2])];
          values[el[1]!] = arr;
        }
      }
      return { ...(beside ? { configPath: beside } : {}), values, notes };
    }
    const determined = r.values.filter((v) => v.status === 'determined');
    const open = [...new Set(r.values.filter((v) => v.status === 'undetermined' && !set.some(([k]) => k === v.key.replace(/\[\d+\]$/, ''))).map((v) => v.key.replace(/\[\d+\]$/, '')))];
    notes.push(`config: inferred from the weights (${determined.length} values determined by the shapes; ${open.length ? `${open.slice(0, 6).join(', ')}${open.length > 6 ? ` and ${open.length - 6} more` : ''} from ${from}` : `the rest from ${from}`}${set.length ? ', --set as given' : ''}); --config FILE overrides`);
    return { ...(beside ? { configPath: beside } : {}), values: r.config, notes };
  } finally {
    await store.close();
  }
}
