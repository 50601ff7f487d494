/**
 * safetensors writer: streaming, atomic, optionally sharded with an HF `*.safetensors.index.json`.
 *
 * Layout (matches the reference writer's guarantees):
 *  - header keys are emitted sorted (`__metadata__` first), compact JSON, right-padded with
 *    spaces to a multiple of 8, and it always starts with `{`;
 *  - data is laid out by element size descending, then by name, so every tensor starts at an
 *    offset that is a multiple of its element size (relative to the file start: 8 + header is a
 *    multiple of 8);
 *  - `__metadata__` always carries `format: "pt"` unless the caller sets `format` itself
 *    (transformers refuses files without it).
 *
 * Atomicity: bytes go to a temp file in the target directory, which is fsynced and renamed over
 * the target; on any failure the temp file is removed and the target is untouched.
 */
import { type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWrite, writeFully } from '../../core/atomic.ts';
import { SoracError } from '../../core/errors.ts';
import { type DType, DTYPE_SIZE, SAFETENSORS_DTYPE } from '../../core/dtype.ts';

/** Tensor bytes: a buffer, an async/sync iterable of chunks, or a function producing either (called once, when written). */
export type TensorSource =
  | Uint8Array
  | AsyncIterable<Uint8Array>
  | Iterable<Uint8Array>
  | (() => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>);

export interface WriterTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorSource;
}

export type WriterTensors = ReadonlyMap<string, WriterTensor> | Readonly<Record<string, WriterTensor>>;

export interface WriteOptions {
  metadata?: Readonly<Record<string, string>>;
}

export interface WrittenFile {
  path: string;
  size: number;
  headerLength: number;
  keys: string[];
}

/** Invalid writer input (a bad shape, a duplicate or reserved name) or a write that went wrong. */
export class SafetensorsWriteError extends SoracError {
  constructor(message: string, path: string) {
    super('SORA5014', `${path}: ${message}`, { path });
    this.name = 'SafetensorsWriteError';
  }
}

function entries(t: WriterTensors): [string, WriterTensor][] {
  return t instanceof Map ? [...t.entries()] : Object.entries(t as Record<string, WriterTensor>);
}

function byteLengthOf(t: WriterTensor, key: string, path: string): number {
  for (const d of t.shape) if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsWriteError(`tensor "${key}" has an invalid shape [${t.shape.join(',')}]`, path);
  const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
  if (!Number.isSafeInteger(n)) throw new SafetensorsWriteError(`tensor "${key}" is too large`, path);
  return n;
}

/** Data order: element size descending, then name (so every tensor is aligned to its element size). */
export function layoutOrder(keys: Iterable<[string, { dtype: DType }]>): string[] {
  return [...keys]
    .sort(([ka, a], [kb, b]) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (ka < kb ? -1 : ka > kb ? 1 : 0))
    .map(([k]) => k);
}

/** Build the padded header for the given tensors; returns the header bytes and each key's [begin,end). */
export function buildHeader(tensors: WriterTensors, metadata: Readonly<Record<string, string>> | undefined, path = '<memory>') {
  const list = entries(tensors);
  const seen = new Set<string>();
  for (const [k] of list) {
    if (k === '__metadata__') throw new SafetensorsWriteError('"__metadata__" is reserved and cannot be a tensor name', path);
    if (seen.has(k)) throw new SafetensorsWriteError(`duplicate tensor "${k}"`, path);
    seen.add(k);
  }
  const byKey = new Map(list);
  const order = layoutOrder(list);
  const offsets = new Map<string, [number, number]>();
  let off = 0;
  for (const k of order) {
    const t = byKey.get(k)!;
    const len = byteLengthOf(t, k, path);
    offsets.set(k, [off, off + len]);
    off += len;
  }
  // null-prototype objects: a tensor may legitimately be called "__proto__"
  const header: Record<string, unknown> = Object.create(null);
  const meta: Record<string, string> = Object.create(null);
  meta.format = 'pt';
  for (const [mk, mv] of Object.entries(metadata ?? {})) meta[mk] = mv;
  header.__metadata__ = meta;
  for (const [mk, mv] of Object.entries(header.__metadata__ as object)) {
    if (typeof mv !== 'string') throw new SafetensorsWriteError(`metadata value for "${mk}" must be a string`, path);
  }
  for (const k of [...byKey.keys()].sort()) {
    const t = byKey.get(k)!;
    header[k] = { dtype: SAFETENSORS_DTYPE[t.dtype], shape: [...t.shape], data_offsets: offsets.get(k) };
  }
  let json = JSON.stringify(header);
  const bytes = Buffer.from(json, 'utf8');
  const pad = (8 - (bytes.length % 8)) % 8;
  const headerBytes = Buffer.concat([bytes, Buffer.alloc(pad, 0x20)]);
  json = '';
  return { headerBytes, order, offsets, byKey, dataLength: off };
}

async function* chunksOf(src: TensorSource): AsyncIterable<Uint8Array> {
  let s: unknown = src;
  if (typeof s === 'function') s = await (s as () => unknown)();
  if (s instanceof Uint8Array) {
    yield s;
    return;
  }
  if (s && typeof (s as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    for await (const c of s as AsyncIterable<Uint8Array>) yield c;
    return;
  }
  if (s && typeof (s as Iterable<Uint8Array>)[Symbol.iterator] === 'function') {
    for (const c of s as Iterable<Uint8Array>) yield c;
    return;
  }
  throw new TypeError('tensor data must be a Uint8Array, an (async) iterable of Uint8Array, or a function returning one');
}

async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  await writeFully(fh, buf, pos);
}

/**
 * Split keys (in layout order) into shards of at most `max` bytes each (a tensor larger than `max`
 * gets a shard of its own); always at least one shard.
 */
export function groupIntoShards(order: readonly string[], sizeOf: (key: string) => number, max: number): { groups: string[][]; total: number } {
  const groups: string[][] = [];
  let cur: string[] = [];
  let curSize = 0;
  let total = 0;
  for (const k of order) {
    const n = sizeOf(k);
    total += n;
    if (cur.length && curSize + n > max) {
      groups.push(cur);
      cur = [];
      curSize = 0;
    }
    cur.push(k);
    curSize += n;
  }
  if (cur.length || !groups.length) groups.push(cur);
  return { groups, total };
}

/** Write one safetensors file atomically, streaming each tensor's chunks straight to disk. */
export async function writeSafetensors(path: string, tensors: WriterTensors, opts: WriteOptions = {}): Promise<WrittenFile> {
  const { headerBytes, order, offsets, byKey, dataLength } = buildHeader(tensors, opts.metadata, path);
  const dataStart = 8 + headerBytes.length;
  await atomicWrite(path, async (fh) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    await writeAll(fh, len, 0);
    await writeAll(fh, headerBytes, 8);
    for (const k of order) {
      const [begin, end] = offsets.get(k)!;
      let pos = dataStart + begin;
      for await (const chunk of chunksOf(byKey.get(k)!.data)) {
        if (pos + chunk.length > dataStart + end)
          throw new SafetensorsWriteError(`tensor "${k}" produced more than its ${end - begin} bytes`, path);
        await writeAll(fh, chunk, pos);
        pos += chunk.length;
      }
      if (pos !== dataStart + end) throw new SafetensorsWriteError(`tensor "${k}" produced ${pos - dataStart - begin} bytes, expected ${end - begin}`, path);
    }
  });
  return { path, size: dataStart + dataLength, headerLength: headerBytes.length, keys: order };
}

export interface ShardedWriteOptions extends WriteOptions {
  /** Maximum data bytes per shard (a single larger tensor gets a shard of its own). Default 5 GB (HF default). */
  maxShardSize?: number;
  /** File name stem: `model` → `model-00001-of-00002.safetensors` and `model.safetensors.index.json`. */
  prefix?: string;
}

export interface ShardedWritten {
  indexPath: string;
  shards: WrittenFile[];
  totalSize: number;
}

/**
 * Write HF-style shards plus `<prefix>.safetensors.index.json` (`metadata.total_size` in bytes,
 * `weight_map` sorted). With one shard, still writes the `-00001-of-00001` name and an index so
 * the output layout does not depend on the size. The index is written last.
 */
export async function writeShardedSafetensors(dir: string, tensors: WriterTensors, opts: ShardedWriteOptions = {}): Promise<ShardedWritten> {
  const max = opts.maxShardSize ?? 5_000_000_000;
  const prefix = opts.prefix ?? 'model';
  const list = entries(tensors);
  const byKey = new Map(list);
  const order = layoutOrder(list);
  const { groups, total } = groupIntoShards(order, (k) => byteLengthOf(byKey.get(k)!, k, dir), max);
  const N = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const shards: WrittenFile[] = [];
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < N; i++) {
    const name = `${prefix}-${pad(i + 1)}-of-${pad(N)}.safetensors`;
    const sub = new Map(groups[i]!.map((k) => [k, byKey.get(k)!] as const));
    shards.push(await writeSafetensors(join(dir, name), sub, opts));
    for (const k of groups[i]!) weightMap[k] = name;
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k]!;
  const indexPath = join(dir, `${prefix}.safetensors.index.json`);
  const body = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2) + '\n');
  await atomicWrite(indexPath, (fh) => writeAll(fh, body, 0));
  return { indexPath, shards, totalSize: total };
}
