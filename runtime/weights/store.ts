/**
 * The unified tensor store: whatever the weights string names (file, dir, training dir, sharded
 * index, hub id), the caller gets keys, shapes and dtypes from headers alone, plus a lazy `read()`
 * per tensor. Nested containers (`state_dict`, `ema`, `model`, `module`) and a global `module.`
 * prefix are unwrapped by default and every such step is recorded in `notes` — nothing is dropped
 * silently.
 */
import { dirname, join, resolve as resolvePath } from 'node:path';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import { resolveWeights, type ResolveOptions, type ResolvedWeights } from './resolve.ts';
import { openSafetensors, SafetensorsError, type SafetensorsFile } from '../formats/safetensors.ts';
import { isTensor, numelOf, openTorchFile, type TorchFile } from '../formats/torch-file.ts';
import { isPyObject, PickleError, PyTuple, toPlain, unpickle, type PyKey, type PyTensor, type PyValue } from '../formats/unpickle.ts';
import { SoracError } from '../../core/errors.ts';
import { containedRealpath, readSmallTextFile } from '../formats/safe-fs.ts';
import { limit, LimitError, limitExceeded } from '../../core/limits.ts';

export interface StoredTensor {
  readonly key: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  readonly file: string;
  /** present when the bytes sit contiguously, little-endian, in `file` at this absolute offset (safetensors, and uncompressed contiguous torch zip entries) */
  readonly offset?: number;
  read(): Promise<Uint8Array>;
}

export interface TensorStore {
  /** `safetensors`, `torch-zip`, `safetensors-sharded`, `torch-zip-sharded`, `mixed-sharded`. */
  readonly format: string;
  readonly files: string[];
  readonly tensors: ReadonlyMap<string, StoredTensor>;
  /** safetensors `__metadata__`, index `metadata`, training `running_states.json`… */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** What was done to get here: "unwrapped ['ema']", "stripped prefix module.", … */
  readonly notes: string[];
  /** Non-tensor values found next to the tensors (plain JSON), keyed by their dotted path. */
  readonly extras: Readonly<Record<string, unknown>>;
  /** How the weights string was resolved. */
  readonly resolved?: ResolvedWeights;
  close(): Promise<void>;
}

export interface OpenWeightsOptions extends ResolveOptions {
  /**
   * Unwrap single wrapper containers (`ema`, `state_dict`, `model`, `module`, …) and strip a
   * `module.` prefix shared by every key. Default true. With false, keys are the raw dotted paths
   * (`ema.blocks.0…`, `module.x…`) and the load report suggests the fix.
   */
  unwrap?: boolean;
  /** Pick this top-level container of a nested file (e.g. `model` when a file has both `ema` and `model`). */
  container?: string;
}

/** Wrapper keys tried in this order when a torch file nests its state dict (ema first, as Open-Sora's find_model). */
export const WRAPPER_KEYS = ['ema', 'state_dict', 'model', 'module', 'model_ema', 'state_dict_ema', 'ema_state_dict', 'net', 'params'];

export async function openWeights(spec: string, opts: OpenWeightsOptions = {}): Promise<TensorStore> {
  const resolved = await resolveWeights(spec, opts);
  const store = await openResolved(resolved.path, resolved.format, opts);
  const notes = [...resolved.notes, ...store.notes];
  const metadata: Record<string, unknown> = { ...store.metadata };
  if (resolved.training?.runningStates) metadata.running_states = resolved.training.runningStates;
  return { ...store, notes, metadata, resolved };
}

/** Open a file or index directly (no resolution). */
export async function openWeightsFile(path: string, opts: OpenWeightsOptions = {}): Promise<TensorStore> {
  const r = await resolveWeights(path, opts);
  return openResolved(r.path, r.format, opts);
}

async function openResolved(path: string, format: ResolvedWeights['format'], opts: OpenWeightsOptions): Promise<TensorStore> {
  if (format === 'index') return openIndex(path, opts);
  const single = await openSingle(path, format, opts);
  return finish(single, opts);
}

interface Partial {
  format: string;
  files: string[];
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, unknown>;
  notes: string[];
  extras: Record<string, unknown>;
  closers: (() => Promise<void>)[];
}

function stError(e: unknown): never {
  if (e instanceof SafetensorsError)
    throw new SoracError(
      'SORA5002',
      `${e.message} [rule: ${e.rule}]`,
      { hint: e.rule === 'truncated' || e.rule === 'header-out-of-bounds' || e.rule === 'too-small'
        ? 'the file is shorter than its header says: an interrupted download? Re-download it, then run `sorac verify`'
        : e.rule === 'dtype-unsupported'
          ? 'convert the tensor to f32/f16/bf16/f64/int/bool/f8 first'
          : 'the file is corrupt or was not written by a safetensors writer; re-download or re-export it', looked: [], path: e.path },
    );
  throw e;
}

async function openSingle(path: string, format: 'safetensors' | 'torch-zip', opts: OpenWeightsOptions): Promise<Partial> {
  if (format === 'safetensors') {
    let f: SafetensorsFile;
    try {
      f = await openSafetensors(path);
    } catch (e) {
      stError(e);
    }
    const tensors = new Map<string, StoredTensor>();
    for (const t of f.tensors.values())
      tensors.set(t.key, { key: t.key, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, file: path, offset: t.offset, read: () => f.read(t.key) });
    const notes: string[] = [];
    const extras: Record<string, unknown> = {};
    try {
      await decodeNonTensorKeys(f, tensors, notes, extras);
    } catch (e) {
      await f.close();
      throw e;
    }
    return { format: 'safetensors', files: [path], tensors, metadata: { ...f.metadata }, notes, extras, closers: [() => f.close()] };
  }
  const tf = await openTorchFile(path);
  let collected;
  try {
    collected = collectTorch(tf, path, opts);
  } catch (e) {
    await tf.close().catch(() => {});
    throw e;
  }
  const { tensors, extras, notes } = collected;
  return { format: 'torch-zip', files: [path], tensors, metadata: {}, notes, extras, closers: [() => tf.close()] };
}

/**
 * ColossalAI's safetensors writer pickles non-tensor values (optimizer `step`, `param_groups`) into
 * U8 tensors listed in `__metadata__.non_tensor_keys` (a JSON array string). Decode them with the
 * restricted unpickler into `extras` instead of presenting them as tensors.
 */
async function decodeNonTensorKeys(f: SafetensorsFile, tensors: Map<string, StoredTensor>, notes: string[], extras: Record<string, unknown>) {
  const raw = f.metadata.non_tensor_keys;
  if (raw === undefined) return;
  let keys: unknown;
  try {
    keys = JSON.parse(raw);
  } catch {
    notes.push('__metadata__.non_tensor_keys is not valid JSON; left as tensors');
    return;
  }
  if (!Array.isArray(keys)) return;
  let n = 0;
  for (const k of keys) {
    const t = typeof k === 'string' ? f.tensors.get(k) : undefined;
    if (!t || t.dtype !== 'u8' || t.byteLength > 64 * 1024 * 1024) continue;
    try {
      extras[k] = toPlain(unpickle(await f.read(k)));
    } catch (e) {
      if (e instanceof LimitError) throw e;
      if (e instanceof PickleError && (e.kind === 'global' || e.kind === 'opcode'))
        throw new SoracError('SORA5003', `${f.path}: non-tensor value "${k}": ${e.message}`, { hint: 'sorac never executes pickle code; re-save the value as plain data', looked: [], path: f.path });
      throw new SoracError('SORA5002', `${f.path}: non-tensor value "${k}" is not a valid pickle: ${(e as Error).message}`, { looked: [], path: f.path });
    }
    tensors.delete(k);
    n++;
  }
  if (n) notes.push(`decoded ${n} pickled non-tensor value(s) listed in __metadata__.non_tensor_keys (ColossalAI) into extras`);
}

/**
 * Does `v` contain a tensor? Memoised per container (pickles can share sub-objects and form
 * cycles; a container on the current path counts as tensor-free), so repeated calls are O(1).
 */
function hasTensor(v: PyValue, memo: Map<object, boolean> = new Map()): boolean {
  // iterative post-order walk with an explicit stack: hostile pickles nest containers thousands
  // deep (memo references can build nesting the unpickler's depth check does not see)
  const childrenOf = (x: PyValue): readonly PyValue[] =>
    x instanceof Map ? [...x.values()] : Array.isArray(x) ? x : x instanceof PyTuple ? x.items : [];
  const quick = (x: PyValue): boolean | undefined => {
    if (isTensor(x)) return true;
    if (!x || typeof x !== 'object') return false;
    return memo.get(x);
  };
  const q = quick(v);
  if (q !== undefined) return q;
  const stack: { v: object; kids: readonly PyValue[]; i: number }[] = [];
  const enter = (x: object) => {
    memo.set(x, false); // on the path: a cycle back here counts as tensor-free
    stack.push({ v: x, kids: childrenOf(x as PyValue), i: 0 });
  };
  enter(v as object);
  let last = false;
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    if (last) {
      memo.set(f.v, true);
      stack.pop();
      continue; // last stays true: the parent has a tensor too
    }
    if (f.i >= f.kids.length) {
      stack.pop();
      last = false;
      continue;
    }
    const c = f.kids[f.i++]!;
    const r = quick(c);
    if (r === true) last = true;
    else if (r === undefined) enter(c as object);
  }
  return memo.get(v as object) ?? false;
}

/**
 * Class names of the inert records (objects from globals outside the allow-list, never constructed)
 * inside a non-tensor value, in first-seen order; bounded (hostile nesting, shared sub-objects, cycles).
 */
function inertClasses(v: PyValue, out: Set<string> = new Set(), seen: Set<object> = new Set(), budget = { n: 10_000 }): Set<string> {
  if (!v || typeof v !== 'object' || seen.has(v) || --budget.n < 0) return out;
  seen.add(v);
  if (isPyObject(v)) {
    out.add(v.cls);
    for (const x of v.args) inertClasses(x, out, seen, budget);
    if (v.state !== undefined) inertClasses(v.state, out, seen, budget);
    if (v.items) inertClasses(v.items, out, seen, budget);
    for (const x of v.list ?? []) inertClasses(x, out, seen, budget);
  } else if ((v as { kind?: string }).kind === 'global' && (v as { inert?: boolean }).inert) out.add((v as { name: string }).name);
  else if (v instanceof Map) for (const x of v.values()) inertClasses(x, out, seen, budget);
  else if (Array.isArray(v)) for (const x of v) inertClasses(x, out, seen, budget);
  else if (v instanceof PyTuple) for (const x of v.items) inertClasses(x, out, seen, budget);
  return out;
}

/** The note naming the objects that were read as inert data, or nothing. */
function inertNote(entries: readonly [string, PyValue][]): string | undefined {
  const named = entries.map(([k, v]) => [k, [...inertClasses(v)]] as const).filter(([, c]) => c.length);
  if (!named.length) return undefined;
  const list = named.slice(0, 8).map(([k, c]) => `'${k || '<root>'}' (${c.slice(0, 3).join(', ')}${c.length > 3 ? ', …' : ''})`).join(', ');
  return `read ${named.length} non-tensor value(s) holding pickled objects as inert data, never constructed or called (kept in extras): ${list}${named.length > 8 ? `, … (${named.length})` : ''}`;
}


function collectTorch(tf: TorchFile, path: string, opts: OpenWeightsOptions) {
  const notes: string[] = [];
  const extras: Record<string, unknown> = {};
  const found = new Map<string, PyTensor>();
  // one budget for every non-tensor value turned into extras (shared references are counted each time)
  const plainBudget = { nodes: 100_000 };
  let root = tf.root;
  const unwrap = opts.unwrap !== false;
  if (root instanceof Map) {
    const direct = [...root.values()].some(isTensor);
    const wrappers = [...root.keys()].filter((k) => typeof k === 'string' && root instanceof Map && root.get(k) instanceof Map && hasTensor(root.get(k)!)) as string[];
    let pick: string | undefined;
    if (opts.container !== undefined) {
      if (!wrappers.includes(opts.container))
        throw new SoracError('SORA5013', `${path} has no tensor container "${opts.container}"`, { hint: wrappers.length ? `containers present: ${wrappers.join(', ')}` : 'the file has no nested containers', looked: [], path });
      pick = opts.container;
    } else if (unwrap && !direct && wrappers.length) {
      pick = (opts.part === 'model' ? ['model', 'state_dict', 'module', ...WRAPPER_KEYS] : WRAPPER_KEYS).find((k) => wrappers.includes(k));
    }
    if (pick !== undefined) {
      const others = [...root.keys()].filter((k) => k !== pick).map(String);
      const otherContainers = wrappers.filter((k) => k !== pick);
      notes.push(
        `unwrapped ['${pick}']` +
          (otherContainers.length ? `; other tensor containers not loaded: [${otherContainers.map((k) => `'${k}'`).join(', ')}] (choose with --container)` : ''),
      );
      for (const k of others) if (!otherContainers.includes(k)) extras[k] = toPlain(root.get(k)!, 0, plainBudget);
      const inert = inertNote(others.filter((k) => !otherContainers.includes(k)).map((k) => [k, (root as Map<PyKey, PyValue>).get(k)!] as [string, PyValue]));
      if (inert) notes.push(inert);
      root = root.get(pick)!;
    }
  }
  const nonTensor: string[] = [];
  const nonTensorValues: [string, PyValue][] = [];
  const memo = new Map<object, boolean>();
  let visits = 0;
  const maxVisits = limit('pickleObjects');
  const maxTensors = limit('headerEntries');
  const onPath = new Set<object>();
  const walk = (v: PyValue, key: string, depth: number) => {
    if (++visits > maxVisits)
      throw limitExceeded('SORA5030', 'pickleObjects', `${path}: the pickled structure expands to more than ${maxVisits} entries`, visits, { hint: 'the file is not a plain state dict; re-save the tensors only', path });
    if (isTensor(v)) {
      found.set(key, v);
      if (found.size > maxTensors) throw limitExceeded('SORA5030', 'headerEntries', `${path}: the pickle holds more than ${maxTensors} tensors`, found.size, { hint: 'shared references (memo) can repeat one tensor under many keys; re-save the state dict', path });
      return;
    }
    if (depth > 16 || (v && typeof v === 'object' && onPath.has(v))) {
      nonTensor.push(key);
      return;
    }
    if (v && typeof v === 'object') onPath.add(v);
    try {
      walkInner(v, key, depth);
    } finally {
      if (v && typeof v === 'object') onPath.delete(v);
    }
  };
  const walkInner = (v: PyValue, key: string, depth: number) => {
    if (v instanceof Map && hasTensor(v, memo)) {
      for (const [k, x] of v) walk(x, key ? `${key}.${String(k)}` : String(k), depth + 1);
      return;
    }
    if ((Array.isArray(v) || v instanceof PyTuple) && hasTensor(v, memo)) {
      const items = Array.isArray(v) ? v : v.items;
      items.forEach((x, i) => walk(x, key ? `${key}.${i}` : String(i), depth + 1));
      return;
    }
    if (key) {
      nonTensor.push(key);
      nonTensorValues.push([key, v]);
      extras[key] = toPlain(v, 0, plainBudget);
    } else if (!(v instanceof Map && v.size === 0)) {
      nonTensorValues.push(['', v]);
      extras[''] = toPlain(v, 0, plainBudget);
    }
  };
  walk(root, '', 0);
  const inert = inertNote(nonTensorValues);
  if (inert) notes.push(inert);
  if (nonTensor.length) notes.push(`non-tensor entries kept as extras, not tensors: [${nonTensor.slice(0, 8).map((k) => `'${k}'`).join(', ')}${nonTensor.length > 8 ? `, … (${nonTensor.length})` : ''}]`);
  if (root instanceof Map) {
    const nested = [...root.entries()].filter(([, x]) => (x instanceof Map || Array.isArray(x)) && hasTensor(x)).map(([k]) => String(k));
    if (nested.length) notes.push(`flattened nested containers [${nested.slice(0, 8).map((k) => `'${k}'`).join(', ')}${nested.length > 8 ? ', …' : ''}] into dotted keys`);
  }
  const tensors = new Map<string, StoredTensor>();
  let views = 0;
  for (const [key, t] of found) {
    const es = DTYPE_SIZE[t.storage.dtype];
    const offset = tf.tensorOffset(t);
    if (!tf.isContiguous(t)) views++;
    tensors.set(key, {
      key,
      dtype: t.storage.dtype,
      shape: t.shape,
      byteLength: numelOf(t.shape) * es,
      file: path,
      ...(offset !== undefined ? { offset } : {}),
      read: () => tf.readTensor(t),
    });
  }
  if (views) notes.push(`${views} non-contiguous view tensor(s): bytes are materialised in C order on read (no direct file offset)`);
  return { tensors, extras, notes };
}

function finish(p: Partial, opts: OpenWeightsOptions): TensorStore {
  let tensors = p.tensors;
  if (opts.unwrap !== false && tensors.size > 0) {
    const keys = [...tensors.keys()];
    if (keys.every((k) => k.startsWith('module.'))) {
      tensors = new Map(keys.map((k) => {
        const t = tensors.get(k)!;
        const nk = k.slice('module.'.length);
        return [nk, { ...t, key: nk, read: t.read }];
      }));
      p.notes.push(`stripped prefix module. from all ${keys.length} keys (DataParallel/DDP wrapper)`);
    }
  }
  if (tensors.size === 0) p.notes.push('no tensors found');
  const closers = p.closers;
  return {
    format: p.format,
    files: p.files,
    tensors,
    metadata: p.metadata,
    notes: p.notes,
    extras: p.extras,
    close: async () => {
      for (const c of closers) await c().catch(() => {});
    },
  };
}

/** An index JSON is read whole; real ones are well under 1 MB. */
const MAX_INDEX_BYTES = 100_000_000;

async function openIndex(indexPath: string, opts: OpenWeightsOptions): Promise<TensorStore> {
  let idx: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
  try {
    idx = JSON.parse(await readSmallTextFile(indexPath, MAX_INDEX_BYTES));
  } catch (e) {
    if (e instanceof SoracError) throw e;
    throw new SoracError('SORA5006', `${indexPath}: cannot read the index: ${(e as Error).message}`, { hint: 'the index JSON is corrupt; re-download it', looked: [], path: indexPath });
  }
  if (!idx || typeof idx !== 'object' || !idx.weight_map || typeof idx.weight_map !== 'object' || Array.isArray(idx.weight_map))
    throw new SoracError('SORA5006', `${indexPath}: not a sharded-checkpoint index (no "weight_map" object)`, { looked: [], path: indexPath });
  const dir = dirname(indexPath);
  const byShard = new Map<string, string[]>();
  const entries = Object.keys(idx.weight_map).length;
  if (entries > limit('headerEntries')) throw limitExceeded('SORA5030', 'headerEntries', `${indexPath}: the weight_map lists ${entries} tensors`, entries, { path: indexPath });
  for (const [k, v] of Object.entries(idx.weight_map)) {
    if (typeof v !== 'string' || v.includes('..') || v.startsWith('/'))
      throw new SoracError('SORA5006', `${indexPath}: weight_map["${k}"] is not a shard file name inside the index dir`, { looked: [], path: indexPath });
    if (!byShard.has(v)) byShard.set(v, []);
    byShard.get(v)!.push(k);
  }
  const notes: string[] = [];
  const shardNotes: [string, string][] = [];
  const tensors = new Map<string, StoredTensor>();
  const extras: Record<string, unknown> = {};
  const closers: (() => Promise<void>)[] = [];
  const files: string[] = [indexPath];
  const formats = new Set<string>();
  try {
    for (const [shard, keys] of byShard) {
      const p = join(dir, shard);
      // a shard (or the symlink it is) must resolve inside the index's directory, or be a hub blob
      await containedRealpath(p, [dir], `${indexPath} weight_map (shard ${shard})`, { allowHubBlobs: true });
      let r;
      try {
        r = await resolveWeights(p, { ...opts, cwd: dir });
      } catch (e) {
        if (e instanceof SoracError && e.code === 'SORA5001')
          throw new SoracError('SORA5006', `${indexPath}: shard ${shard} (holding ${keys.length} tensors, e.g. ${keys[0]}) is missing`, { hint: 'the download is incomplete: fetch the missing shard (or the whole directory) again', looked: [resolvePath(p)], path: indexPath });
        throw e;
      }
      const part = await openSingle(r.path, r.format as 'safetensors' | 'torch-zip', { ...opts, unwrap: false });
      closers.push(...part.closers);
      files.push(r.path);
      formats.add(part.format);
      for (const n of part.notes) shardNotes.push([shard, n]);
      for (const [ek, ev] of Object.entries(part.extras)) extras[`${shard}:${ek}`] = ev;
      // Optimizer indexes (ColossalAI) list param ids ("0") whose entries flatten to "0.exp_avg"
      // (torch shards) or "state.0.exp_avg" (async safetensors shards): a listed key covers those.
      const listed = new Set(keys);
      const idOf = (k: string): string | undefined => {
        const segs = k.split('.');
        return segs[0] === 'state' && segs.length > 2 ? segs[1] : segs.length > 1 ? segs[0] : undefined;
      };
      const present = new Set<string>();
      for (const k of [...part.tensors.keys(), ...Object.keys(part.extras)]) {
        present.add(k);
        const id = idOf(k);
        if (id !== undefined) present.add(`\u0000${id}`);
      }
      for (const k of keys) {
        if (!present.has(k) && !present.has(`\u0000${k}`))
          throw new SoracError('SORA5006', `${indexPath}: weight_map says "${k}" is in ${shard}, but that shard has no such tensor`, { hint: 'the index and shards come from different saves; re-download the checkpoint', looked: [], path: indexPath });
      }
      for (const [k, t] of part.tensors) {
        const id = idOf(k);
        const listedKey = listed.has(k) || (id !== undefined && listed.has(id) && (k.startsWith(id + '.') || k.startsWith(`state.${id}.`)));
        if (!listedKey) throw new SoracError('SORA5006', `${indexPath}: shard ${shard} holds "${k}", which the weight_map does not list`, { hint: 'the index and shards come from different saves', looked: [], path: indexPath });
        if (tensors.has(k)) throw new SoracError('SORA5011', `tensor "${k}" is defined in two shards (${tensors.get(k)!.file} and ${t.file})`, { looked: [], path: indexPath });
        tensors.set(k, t);
      }
    }
  } catch (e) {
    for (const c of closers) await c().catch(() => {});
    throw e;
  }
  // The same kind of note from many shards (optimizer shards all flatten param-id containers) is one line.
  const kinds = new Map<string, [string, string][]>();
  for (const [shard, n] of shardNotes) {
    const kind = n.replace(/ \[[^\]]*\](?: \(…\))?/g, '').replace(/\(\d+\)/g, '').replace(/:$/, '');
    if (!kinds.has(kind)) kinds.set(kind, []);
    kinds.get(kind)!.push([shard, n]);
  }
  for (const [kind, items] of kinds) notes.push(items.length === 1 ? `${items[0]![0]}: ${items[0]![1]}` : `${items.length} shards: ${kind}`);
  const total = [...tensors.values()].reduce((a, t) => a + t.byteLength, 0);
  const ts = idx.metadata?.total_size;
  if (typeof ts === 'number') {
    if (Number.isInteger(ts) && ts === total) {
      // HF index, bytes
    } else if (Math.abs(ts - total / 1024 / 1024) <= Math.max(0.01, total / 1024 / 1024 * 1e-6)) notes.push('index total_size is in MiB (ColossalAI index)');
    else notes.push(`index total_size ${ts} does not match the ${total} tensor bytes in the shards (${(total / 1024 / 1024).toFixed(4)} MiB)`);
  }
  const format = formats.size === 1 ? `${[...formats][0]}-sharded` : 'mixed-sharded';
  return finish({ format, files, tensors, metadata: { ...(idx.metadata ?? {}) }, notes, extras, closers }, opts);
}
