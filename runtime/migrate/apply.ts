/**
 * Apply a migration plan to a checkpoint, streaming: the plan is resolved against the source's
 * header (no data read), then each output tensor is computed when the writer asks for it, so at
 * most one output tensor and its inputs are in memory (a concat holds its parts). Tensors that a
 * plan only renames or reshapes are copied straight from the source file in 8 MiB chunks without
 * being materialised; so are dim-0 splits and concatenations (fused ↔ unfused qkv), which are
 * byte ranges of their sources.
 *
 * The output is written atomically: a `.safetensors` path through a hidden temp file + fsync +
 * rename (runtime/safetensors-writer.ts atomicWrite); a directory (sharded) is built in a hidden
 * temp directory next to it and renamed into place at the end. The input is opened read-only and
 * the output may not be (or be inside) any input file. `__metadata__` records the migration and
 * the source's sha256, hashed while the tensors stream (the header is laid out with placeholders
 * of the same length and rewritten in place before the rename).
 */
import { createHash } from 'node:crypto';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { canonicalJson } from '../../core/keymap.ts';
import { openWeights, type OpenWeightsOptions, type StoredTensor, type TensorStore } from '../weights/store.ts';
import { atomicWrite, tempSibling, writeFully } from '../../core/atomic.ts';
import { buildHeader, groupIntoShards, layoutOrder, type WriterTensor } from '../formats/safetensors-writer.ts';
import { verifyFile } from '../weights/verify.ts';
import { SoracError } from '../../core/errors.ts';
import { checkOutputApart } from '../../core/paths.ts';
import { castBytes, concatDim, initBytes, padDim, permute, scaleBytes, sliceDim, tileDim } from './kernels.ts';
import { invertPlan, planHash, type Plan } from './plan.ts';
import { byteRanges, byteSize, resolvePlan, type Node, type Resolved, type Sig } from './resolve.ts';

export interface ApplyProgress {
  readonly key: string;
  readonly index: number;
  readonly count: number;
  readonly doneBytes: number;
  readonly totalBytes: number;
}

export interface ApplyOptions {
  /** checkpoint to read (anything openWeights accepts) */
  readonly input: string;
  /** `*.safetensors` → one file; anything else → a sharded directory */
  readonly out: string;
  /** a plan, or a function of the source's signature that returns one (built-ins; it handles direction itself) */
  readonly plan: Plan | ((sig: ReadonlyMap<string, Sig>) => Plan);
  /** apply the inverse of a static plan (ignored for a plan function) */
  readonly reverse?: boolean;
  /** replace an existing output */
  readonly force?: boolean;
  /** shard size in bytes for directory output (default 5 GB) */
  readonly shardSize?: number;
  /** `files` (default): sha256 of each source file; `header`: sha256 of the source's key/shape/dtype/offset table */
  readonly sourceHash?: 'files' | 'header';
  readonly open?: OpenWeightsOptions;
  readonly onProgress?: (p: ApplyProgress) => void;
  /** called after each output tensor is written to the temp output (tests use it to kill the process mid-apply) */
  readonly afterTensor?: (index: number, key: string) => Promise<void> | void;
}

export interface ApplyResult {
  readonly out: string;
  readonly layout: 'file' | 'sharded';
  readonly plan: Plan;
  readonly planHash: string;
  readonly tensors: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly source: { readonly files: string[]; readonly hash: string; readonly mode: 'files' | 'header' };
  readonly largestTensorBytes: number;
  readonly warnings: { code: string; message: string }[];
  readonly ops: Resolved['ops'];
}

const CHUNK = 8 << 20;

/** The signature (key → shape/dtype) of a store. */
export function storeSignature(store: Pick<TensorStore, 'tensors'>): Map<string, Sig> {
  const m = new Map<string, Sig>();
  for (const [k, t] of store.tensors) m.set(k, { shape: t.shape, dtype: t.dtype });
  return m;
}

/** Evaluate one output node to bytes (materialised). */
export async function evalNode(n: Node, read: (key: string) => Promise<Uint8Array>, key: string, warn: (m: string) => void): Promise<Uint8Array> {
  const e = n.expr;
  const es = DTYPE_SIZE[n.sig.dtype];
  switch (e.k) {
    case 'src':
      return read(e.key);
    case 'view':
      return evalNode(e.of, read, key, warn);
    case 'permute':
      return permute(await evalNode(e.of, read, key, warn), e.of.sig.shape, e.perm, es);
    case 'slice':
      return sliceDim(await evalNode(e.of, read, key, warn), e.of.sig.shape, e.dim, e.start, e.end, es);
    case 'concat': {
      const parts: Uint8Array[] = [];
      for (const p of e.of) parts.push(await evalNode(p, read, key, warn));
      return concatDim(parts, e.of.map((p) => p.sig.shape), e.dim, es);
    }
    case 'pad':
      return padDim(await evalNode(e.of, read, key, warn), e.of.sig.shape, e.dim, e.before, e.after, e.mode, n.sig.dtype);
    case 'tile':
      return tileDim(await evalNode(e.of, read, key, warn), e.of.sig.shape, e.dim, e.times, es);
    case 'scale': {
      const r = scaleBytes(await evalNode(e.of, read, key, warn), n.sig.dtype, e.factor, key);
      if (r.inexact) warn(`scale ×${e.factor} of ${key}: ${r.inexact} value(s) under/overflow in ${n.sig.dtype}, so scaling back will not restore them exactly`);
      return r.bytes;
    }
    case 'cast':
      return castBytes(await evalNode(e.of, read, key, warn), e.of.sig.dtype, e.to, key);
    case 'init':
      return initBytes(n.sig.shape, n.sig.dtype, e.fill, key);
  }
}

/** Two read buffers shared by every streamed range of one apply (the writer consumes one chunk at a time). */
interface ChunkBuffers {
  bufs: [Buffer, Buffer];
}

/** Double-buffered chunk reader for a tensor stored contiguously at `offset` in `fh`: the next read overlaps the write of the current chunk. */
async function* streamRange(fh: FileHandle, offset: number, length: number, file: string, key: string, shared: ChunkBuffers): AsyncIterable<Uint8Array> {
  const readAt = async (buf: Buffer, pos: number, n: number) => {
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, offset + pos + got);
      if (!bytesRead) throw new SoracError('SORA6002', `${file} ended while reading ${key} (truncated?)`, { hint: 'run `sorac verify` on the input' });
      got += bytesRead;
    }
    return buf.subarray(0, n);
  };
  let pos = 0;
  let i = 0;
  let pending: Promise<Buffer> | undefined = length ? readAt(shared.bufs[0], 0, Math.min(CHUNK, length)) : undefined;
  while (pending) {
    const cur = await pending;
    const next = pos + cur.length;
    pending = next < length ? readAt(shared.bufs[(i + 1) % 2]!, next, Math.min(CHUNK, length - next)) : undefined;
    yield cur;
    pos = next;
    i++;
  }
}

function errnoToMigrate(e: unknown, out: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new SoracError('SORA6008', `no space left on the device while writing ${out}; nothing was written at ${out}`, { hint: 'free space (the output is about as large as the input) or pass --out on another disk' });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new SoracError('SORA6008', `cannot write ${out}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'}`, { hint: 'pick an --out in a writable directory' });
  if (code === 'ENOENT' || code === 'ENOTDIR') return new SoracError('SORA6008', `cannot write ${out}: the directory ${dirname(out)} does not exist`, { hint: `create it first (mkdir -p ${dirname(out)})` });
  if (code === 'EFBIG') return new SoracError('SORA6008', `cannot write ${out}: file too large for this file system or ulimit`, { hint: 'write a sharded directory instead (an --out without .safetensors) or raise the limit' });
  if (code === 'EIO') return new SoracError('SORA6008', `I/O error while writing ${out}`, { hint: 'check the disk' });
  return e;
}

/** Check that `out` may be written: not an input, not inside an input dir, absent unless --force. */
async function checkOutput(out: string, inputs: string[], force: boolean) {
  const abs = resolvePath(out);
  checkOutputApart(out, inputs, { code: 'SORA6007', flag: '--out' });
  const st = await stat(abs).catch(() => undefined);
  if (st && !force) throw new SoracError('SORA6007', `${out} already exists`, { hint: 'pick a new path, or pass --force to replace it (atomically, after the new output is complete)' });
  const parent = await stat(dirname(abs)).catch(() => undefined);
  if (!parent || !parent.isDirectory()) throw new SoracError('SORA6008', `cannot write ${out}: the directory ${dirname(abs)} does not exist`, { hint: `create it first (mkdir -p ${dirname(abs)})` });
}

/** sha256 of the signature table: keys, shapes, dtypes, files and offsets (documented in docs/cli/migrate.md). */
function headerHash(store: TensorStore): string {
  const rows = [...store.tensors.values()].map((t) => [t.key, t.dtype, t.shape, basename(t.file), t.offset ?? null]).sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1));
  return createHash('sha256').update(canonicalJson(rows, 0)).digest('hex');
}

/**
 * sha256 of every source file (the value `sha256sum` and `sorac verify` print). Several files: the
 * combined value is the sha256 of the sorted `name  sha256` lines, and each file's own hash is
 * recorded under `sorac.source.sha256:<name>`. Every value is 64 hex digits, so the header can be
 * laid out with placeholders before the hash is known (see writeWithLateMetadata).
 */
async function filesHash(files: string[]): Promise<{ combined: string; perFile: Record<string, string> }> {
  const perFile: Record<string, string> = {};
  const buf = Buffer.allocUnsafe(16 << 20);
  for (const f of files) {
    const r = await verifyFile(f, buf);
    if (!r.sha256) throw new SoracError('SORA6002', `cannot hash the input ${f}: ${r.detail ?? r.status}`, { hint: 'run `sorac verify` on the input' });
    perFile[basename(f)] = r.sha256;
  }
  const names = Object.keys(perFile).sort();
  const combined = names.length === 1 ? perFile[names[0]!]! : createHash('sha256').update(names.map((n) => `${n}  ${perFile[n]}\n`).join('')).digest('hex');
  return { combined, perFile };
}

async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  await writeFully(fh, buf, pos);
}

/**
 * One safetensors file, atomically, whose metadata is partly known only at the end (the source hash,
 * computed while the tensors stream). The header is laid out with same-length placeholders, the data
 * written, then the header rewritten in place before fsync + rename — so hashing the source overlaps
 * the copy instead of preceding it.
 */
async function writeWithLateMetadata(path: string, tensors: ReadonlyMap<string, WriterTensor>, metadata: Record<string, string>, late: () => Promise<Record<string, string>>): Promise<void> {
  const first = buildHeader(tensors, metadata, path);
  const dataStart = 8 + first.headerBytes.length;
  await atomicWrite(path, async (fh) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(first.headerBytes.length));
    await writeAll(fh, len, 0);
    await writeAll(fh, first.headerBytes, 8);
    for (const k of first.order) {
      const [begin, end] = first.offsets.get(k)!;
      let pos = dataStart + begin;
      const src = first.byKey.get(k)!.data as () => AsyncIterable<Uint8Array>;
      for await (const chunk of src()) {
        if (pos + chunk.length > dataStart + end) throw new Error(`internal: tensor "${k}" produced more than its ${end - begin} bytes`);
        await writeAll(fh, chunk, pos);
        pos += chunk.length;
      }
      if (pos !== dataStart + end) throw new Error(`internal: tensor "${k}" produced ${pos - dataStart - begin} bytes, expected ${end - begin}`);
    }
    const final = buildHeader(tensors, { ...metadata, ...(await late()) }, path);
    if (final.headerBytes.length !== first.headerBytes.length) throw new Error('internal: late metadata changed the header length');
    await writeAll(fh, final.headerBytes, 8);
  });
}

/** HF-style shards (layout order, `maxShardSize` data bytes each) + index, each shard via writeWithLateMetadata. */
async function writeShards(dir: string, tensors: ReadonlyMap<string, WriterTensor>, metadata: Record<string, string>, late: () => Promise<Record<string, string>>, maxShardSize = 5_000_000_000): Promise<void> {
  const order = layoutOrder(tensors);
  const { groups, total } = groupIntoShards(
    order,
    (k) => {
      const t = tensors.get(k)!;
      return t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    },
    maxShardSize,
  );
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < groups.length; i++) {
    const name = `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`;
    await writeWithLateMetadata(join(dir, name), new Map(groups[i]!.map((k) => [k, tensors.get(k)!] as const)), metadata, late);
    for (const k of groups[i]!) weightMap[k] = name;
  }
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k]!;
  const body = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
  await atomicWrite(join(dir, 'model.safetensors.index.json'), (fh) => writeAll(fh, body, 0));
}

export async function applyMigration(opts: ApplyOptions): Promise<ApplyResult> {
  const t0 = performance.now();
  const given = opts.plan;
  const staticPlan = typeof given === 'function' ? undefined : opts.reverse ? invertPlan(given) : given;
  const store = await openWeights(opts.input, opts.open ?? {});
  try {
    const files = store.files.filter((f) => !f.endsWith('.json'));
    await checkOutput(opts.out, [...(typeof opts.input === 'string' ? [opts.input] : []), ...store.files], !!opts.force);
    const sig = storeSignature(store);
    const plan = staticPlan ?? (given as (s: ReadonlyMap<string, Sig>) => Plan)(sig);
    const resolved = resolvePlan(plan, sig);
    const warnings: { code: string; message: string }[] = [...resolved.warnings];
    const mode = opts.sourceHash ?? 'files';
    // hash the source while the output is written (both are I/O bound; they share the page cache)
    const hashP = mode === 'header' ? Promise.resolve({ combined: headerHash(store), perFile: {} as Record<string, string> }) : filesHash(files);
    hashP.catch(() => {});

    const handles = new Map<string, Promise<FileHandle>>();
    const fhOf = (file: string) => {
      if (!handles.has(file)) handles.set(file, open(file, 'r'));
      return handles.get(file)!;
    };
    const read = (key: string) => {
      const t = store.tensors.get(key);
      if (!t) throw new Error(`internal: source ${key} vanished`);
      return t.read();
    };
    const chunks: ChunkBuffers = { bufs: [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] };
    const entries = [...resolved.tensors];
    const totalBytes = entries.reduce((a, [, n]) => a + byteSize(n.sig), 0);
    let done = 0;
    let index = 0;
    let largest = 0;
    const tensors = new Map<string, WriterTensor>();
    // each tensor's data is a function returning an async iterable (writeWithLateMetadata relies on it)
    for (const [key, node] of entries) {
      largest = Math.max(largest, byteSize(node.sig));
      // contiguous byte ranges of sources (renames, reshapes, dim-0 split/concat) stream from disk
      const ranges = byteRanges(node)?.map((r) => ({ ...r, st: store.tensors.get(r.key) as StoredTensor }));
      const streamable = ranges && ranges.every((r) => r.st && r.st.offset !== undefined);
      const size = byteSize(node.sig);
      const finish = async () => {
        done += size;
        const i = index++;
        opts.onProgress?.({ key, index: i, count: entries.length, doneBytes: done, totalBytes });
        await opts.afterTensor?.(i, key);
      };
      tensors.set(key, {
        dtype: node.sig.dtype,
        shape: node.sig.shape,
        data: async function* () {
          if (streamable) {
            for (const r of ranges) if (r.end > r.start) yield* streamRange(await fhOf(r.st.file), r.st.offset! + r.start, r.end - r.start, r.st.file, r.st.key, chunks);
          } else {
            yield await evalNode(node, read, key, (m) => warnings.push({ code: 'SORA6010', message: m }));
          }
          await finish();
        },
      });
    }
    const srcMeta: Record<string, string> = {};
    for (const [k, v] of Object.entries(store.metadata)) if (typeof v === 'string' && !k.startsWith('sorac.migration') && !k.startsWith('sorac.source')) srcMeta[k] = v;
    const hash = planHash(plan);
    const planJson = canonicalJson(plan, 0).trim();
    let sourceHash: string | undefined;
    const PLACEHOLDER = '0'.repeat(64);
    const hashKeys = (h: { combined: string; perFile: Record<string, string> }) => ({
      'sorac.source.sha256': mode === 'header' ? `header:${h.combined}` : h.combined,
      ...(files.length > 1 ? Object.fromEntries(Object.entries(h.perFile).map(([f, v]) => [`sorac.source.sha256:${f}`, v])) : {}),
    });
    const metadata: Record<string, string> = {
      ...srcMeta,
      'sorac.migration': plan.name,
      'sorac.migration.hash': hash,
      ...(planJson.length <= 65536 ? { 'sorac.migration.plan': planJson } : {}),
      'sorac.source': files.map((f) => basename(f)).join(','),
      // same-length placeholders, rewritten once the source hash (computed while streaming) is known
      ...hashKeys({ combined: PLACEHOLDER, perFile: Object.fromEntries(files.map((f) => [basename(f), PLACEHOLDER])) }),
    };
    const late = async () => {
      const h = await hashP;
      sourceHash = h.combined;
      return hashKeys(h);
    };

    const abs = resolvePath(opts.out);
    const layout: 'file' | 'sharded' = abs.endsWith('.safetensors') ? 'file' : 'sharded';
    try {
      if (layout === 'file') {
        await writeWithLateMetadata(abs, tensors, metadata, late);
      } else {
        const tmp = tempSibling(abs);
        try {
          const { mkdir } = await import('node:fs/promises');
          await mkdir(tmp);
          await writeShards(tmp, tensors, metadata, late, opts.shardSize);
          if (opts.force && (await stat(abs).catch(() => undefined))) {
            const old = tempSibling(abs, 'prune');
            await rename(abs, old);
            await rename(tmp, abs);
            await rm(old, { recursive: true, force: true });
          } else await rename(tmp, abs);
        } catch (e) {
          await rm(tmp, { recursive: true, force: true }).catch(() => {});
          throw e;
        }
      }
    } catch (e) {
      throw errnoToMigrate(e, opts.out);
    } finally {
      for (const p of handles.values()) await p.then((h) => h.close()).catch(() => {});
    }
    return {
      out: opts.out,
      layout,
      plan,
      planHash: hash,
      tensors: entries.length,
      bytes: totalBytes,
      seconds: (performance.now() - t0) / 1000,
      source: { files, hash: sourceHash!, mode },
      largestTensorBytes: largest,
      warnings,
      ops: resolved.ops,
    };
  } finally {
    await store.close();
  }
}
