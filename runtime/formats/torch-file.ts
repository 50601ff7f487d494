/**
 * PyTorch `torch.save` zip archives (.pt/.pth/.bin and extension-less files such as Open-Sora's
 * `lr_scheduler` / `sampler`), read without Python and without executing anything:
 * the central directory gives the records, `<prefix>/data.pkl` goes through the restricted
 * unpickler, and tensor bytes are read lazily from `<prefix>/data/<key>` by absolute offset.
 *
 * The legacy (pre-1.6, non-zip) format is refused with a conversion hint.
 */
import { type FileHandle } from 'node:fs/promises';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { readExact } from './safetensors.ts';
import { openRegularFile } from './safe-fs.ts';
import { PickleError, PyTuple, STORAGE_DTYPE, unpickle, type PyStorage, type PyTensor, type PyValue } from './unpickle.ts';
import { SoracError } from '../../core/errors.ts';
import { limit, limitExceeded } from '../../core/limits.ts';
import { entryDataOffset, readEntry, readZipDirectory, ZipError, type ZipEntry } from './zip.ts';

export type SniffedFormat = 'safetensors' | 'torch-zip' | 'torch-legacy' | 'torch-legacy-tar' | 'pickle' | 'json' | 'unknown' | 'empty';

const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

export const LEGACY_HINT =
  'convert it once with a recent PyTorch (>= 1.6): python -c "import torch; torch.save(torch.load(\'OLD.pt\', map_location=\'cpu\'), \'NEW.pt\')" ' +
  '(the zip format is the default; with older code pass _use_new_zipfile_serialization=True), or save it as safetensors';

/** Identify a weights file by its first bytes (extensions lie: Open-Sora's `lr_scheduler` has none). */
export async function sniffFile(path: string): Promise<SniffedFormat> {
  const fh = await openRegularFile(path);
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return 'empty';
    const head = Buffer.alloc(Math.min(size, 512));
    await readExact(fh, head, 0, head.length, 0);
    return sniffBytes(head, size);
  } finally {
    await fh.close();
  }
}

export function sniffBytes(head: Buffer, size: number): SniffedFormat {
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'torch-zip';
  if (head.length >= LEGACY_MAGIC.length && head.subarray(0, LEGACY_MAGIC.length).equals(LEGACY_MAGIC)) return 'torch-legacy';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'torch-legacy-tar';
  // safetensors before the pickle test: a header length whose low byte is 0x80 (1 in 32 of
  // 8-byte-padded headers) starts the file with the pickle PROTO opcode
  if (head.length >= 9) {
    const n = head.readBigUInt64LE(0);
    if (n > 0n && n + 8n <= BigInt(size) && (head[8] === 0x7b || head[8] === 0x20)) return 'safetensors';
  }
  if (head[0] === 0x80) return 'pickle';
  const t = head.toString('utf8').trimStart();
  if (t.startsWith('{')) return 'json';
  return 'unknown';
}

export interface TorchStorageRecord {
  readonly entry: ZipEntry;
  /** absolute data offset in the file (valid for stored entries) */
  readonly dataOffset: number;
}

export interface TorchFile {
  readonly path: string;
  readonly size: number;
  readonly prefix: string;
  readonly byteorder: 'little' | 'big';
  readonly root: PyValue;
  /** Absolute little-endian offset of a contiguous tensor's bytes, when directly addressable. */
  tensorOffset(t: PyTensor): number | undefined;
  isContiguous(t: PyTensor): boolean;
  readTensor(t: PyTensor): Promise<Uint8Array>;
  close(): Promise<void>;
}

const MAX_PICKLE = 512 * 1024 * 1024;

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

function wrapError(e: unknown, path: string): never {
  if (e instanceof SoracError) throw e;
  if (e instanceof PickleError) {
    if (e.kind === 'global' && e.message.startsWith('unsupported storage type'))
      throw new SoracError('SORA5009', `${path}: ${e.message}`, { hint: 'convert the tensor to a supported dtype (f32/f16/bf16/f64/int/bool) before saving', looked: [], path });
    if (e.kind === 'global' || e.kind === 'opcode')
      throw new SoracError(
        'SORA5003',
        `${path}: ${e.message}`,
        { hint: e.global
          ? `the file asks to run ${e.global} while loading; sorac never executes pickle code. If you trust the file, re-save only its tensors (torch.save(state_dict) or safetensors) on a sandboxed machine`
          : 'sorac only reads pickles made by torch.save of tensors and plain containers; re-save the state dict (or convert to safetensors)', looked: [], path },
      );
    throw new SoracError('SORA5005', `${path}: malformed pickle: ${e.message}`, { hint: 'the file is corrupt or truncated; re-download or re-save it', looked: [], path });
  }
  if (e instanceof ZipError) throw new SoracError('SORA5005', `${path}: ${e.message}`, { hint: 'the archive is corrupt or truncated (an interrupted download?); re-download it and run `sorac verify`', looked: [], path });
  throw e;
}

export async function openTorchFile(path: string): Promise<TorchFile> {
  const kind = await sniffFile(path).catch((e) => {
    if (e instanceof SoracError) throw e;
    throw new SoracError('SORA5012', `${path}: cannot read: ${(e as Error).message}`, { looked: [], path });
  });
  if (kind === 'torch-legacy' || kind === 'torch-legacy-tar' || kind === 'pickle')
    throw new SoracError('SORA5004', `${path} is in the legacy (non-zip) PyTorch format${kind === 'torch-legacy-tar' ? ' (tar variant)' : ''}, which sorac does not read`, { hint: LEGACY_HINT, looked: [], path });
  if (kind !== 'torch-zip') throw new SoracError('SORA5005', `${path} is not a PyTorch zip archive (detected: ${kind})`, { looked: [], path });
  let fh: FileHandle;
  try {
    fh = await openRegularFile(path);
  } catch (e) {
    if (e instanceof SoracError) throw e;
    throw new SoracError('SORA5012', `${path}: cannot open: ${(e as Error).message}`, { looked: [], path });
  }
  try {
    const size = (await fh.stat()).size;
    const entries = await readZipDirectory(fh, size);
    if (!entries.length) throw new ZipError('the archive has no entries');
    const pkl = entries.find((e) => e.name.endsWith('/data.pkl') && e.name.indexOf('/') === e.name.length - '/data.pkl'.length) ?? entries.find((e) => e.name === 'data.pkl');
    if (!pkl) throw new ZipError('no data.pkl record: not a torch.save archive');
    const prefix = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
    const byName = new Map(entries.map((e) => [e.name, e]));
    if (byName.has(prefix + 'constants.pkl') || entries.some((e) => e.name.startsWith(prefix + 'code/')))
      throw new SoracError('SORA5005', `${path} is a TorchScript archive (torch.jit.save), not a state dict`, { hint: 'export the weights with torch.save(model.state_dict(), f) or safetensors', looked: [], path });
    let byteorder: 'little' | 'big' = 'little';
    const bo = byName.get(prefix + 'byteorder');
    if (bo) {
      const v = (await readEntry(fh, size, bo, 16)).toString('latin1').trim();
      if (v === 'big') byteorder = 'big';
      else if (v !== 'little') throw new ZipError(`unknown byteorder record "${v}"`);
    }
    const pklBytes = await readEntry(fh, size, pkl, MAX_PICKLE);
    const storages = new Map<string, PyStorage>();
    const records = new Map<string, TorchStorageRecord>();
    const root = unpickle(pklBytes, {
      persistentLoad(pid) {
        if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length < 5)
          throw new PickleError('format', 'unexpected persistent id (only torch storages are allowed)');
        const [, cls, key, location, numel] = pid.items;
        const clsName = cls && typeof cls === 'object' && 'name' in cls ? String((cls as { name: string }).name) : '';
        const short = clsName.replace(/^torch\./, '');
        const dtype = STORAGE_DTYPE[short];
        if (!dtype) throw new PickleError('global', `unsupported storage type ${clsName}`, clsName);
        if (typeof key !== 'string') throw new PickleError('format', 'storage key is not a string');
        const seen = storages.get(key);
        if (seen) return seen;
        const entry = byName.get(`${prefix}data/${key}`);
        if (!entry) throw new ZipError(`storage record ${prefix}data/${key} is missing from the archive`);
        if (entry.method !== 0 && entry.method !== 8) throw new ZipError(`storage record ${entry.name} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
        const n = typeof numel === 'number' ? numel : typeof numel === 'bigint' ? Number(numel) : 0;
        const st: PyStorage = { kind: 'storage', key, dtype, className: clsName, location: String(location), numel: n };
        storages.set(key, st);
        records.set(key, { entry, dataOffset: -1 });
        return st;
      },
    });
    // Resolve data offsets for the storages actually referenced (one local-header read each).
    for (const [key, rec] of records) records.set(key, { entry: rec.entry, dataOffset: await entryDataOffset(fh, size, rec.entry) });

    const checkBounds = (t: PyTensor) => {
      const rec = records.get(t.storage.key)!;
      if (t.stride.length !== t.shape.length) throw new SoracError('SORA5005', `${path}: tensor has ${t.shape.length} dims but ${t.stride.length} strides`, { looked: [], path });
      if (t.stride.some((s) => s < 0) || t.storageOffset < 0) throw new SoracError('SORA5005', `${path}: negative stride or storage offset`, { looked: [], path });
      if (numelOf(t.shape) === 0) return;
      let maxIdx = t.storageOffset;
      for (let d = 0; d < t.shape.length; d++) maxIdx += (t.shape[d]! - 1) * t.stride[d]!;
      const es = DTYPE_SIZE[t.storage.dtype];
      if ((maxIdx + 1) * es > rec.entry.size)
        throw new SoracError('SORA5005', `${path}: tensor view (offset ${t.storageOffset}, shape [${t.shape}], stride [${t.stride}]) reaches past its ${rec.entry.size}-byte storage record`, { hint: 'the file is corrupt; re-download or re-save it', looked: [], path });
    };

    const inflated = new Map<string, Uint8Array>();
    const readRange = async (key: string, byteStart: number, byteLen: number): Promise<Uint8Array> => {
      const rec = records.get(key)!;
      if (rec.entry.method === 0) {
        const buf = new Uint8Array(byteLen);
        if ((await readExact(fh, buf, 0, byteLen, rec.dataOffset + byteStart)) !== byteLen) throw new SoracError('SORA5005', `${path}: file ended inside storage ${key} (truncated?)`, { looked: [], path });
        return buf;
      }
      let all = inflated.get(key);
      if (!all) {
        all = await readEntry(fh, size, rec.entry, Number.MAX_SAFE_INTEGER);
        inflated.set(key, all);
      }
      return all.slice(byteStart, byteStart + byteLen);
    };

    const swap = (b: Uint8Array, es: number) => {
      if (byteorder === 'little' || es === 1) return b;
      for (let o = 0; o + es <= b.length; o += es) b.subarray(o, o + es).reverse();
      return b;
    };

    return {
      path,
      size,
      prefix: prefix.replace(/\/$/, ''),
      byteorder,
      root,
      isContiguous: (t) => isContiguous(t.shape, t.stride),
      tensorOffset(t) {
        checkBounds(t);
        const rec = records.get(t.storage.key)!;
        if (rec.entry.method !== 0 || byteorder !== 'little' || !isContiguous(t.shape, t.stride)) return undefined;
        return rec.dataOffset + t.storageOffset * DTYPE_SIZE[t.storage.dtype];
      },
      async readTensor(t) {
        try {
          return await readTensorImpl(t);
        } catch (e) {
          wrapError(e, path);
        }
      },
      close: () => fh.close(),
    };

    async function readTensorImpl(t: PyTensor): Promise<Uint8Array> {
        checkBounds(t);
        const es = DTYPE_SIZE[t.storage.dtype];
        const n = numelOf(t.shape);
        if (n === 0) return new Uint8Array(0);
        if (isContiguous(t.shape, t.stride)) return swap(await readRange(t.storage.key, t.storageOffset * es, n * es), es);
        // Materialise a strided view: read the span it touches, then gather in C order. A view may
        // repeat its storage (stride 0: 4 bytes -> GBs); cap what one view may expand to.
        const rec = records.get(t.storage.key)!;
        const ratio = limit('viewExpansionRatio');
        if (n * es > 16 << 20 && n * es > Math.max(1, rec.entry.size) * ratio)
          throw limitExceeded('SORA5030', 'viewExpansionRatio', `${path}: a view of shape [${t.shape}] stride [${t.stride}] materialises ${n * es} bytes from a ${rec.entry.size}-byte storage`, Math.round((n * es) / Math.max(1, rec.entry.size)), { path });
        let maxIdx = 0;
        for (let d = 0; d < t.shape.length; d++) maxIdx += (t.shape[d]! - 1) * t.stride[d]!;
        const span = await readRange(t.storage.key, t.storageOffset * es, (maxIdx + 1) * es);
        const out = new Uint8Array(n * es);
        const idx = new Array(t.shape.length).fill(0);
        for (let k = 0; k < n; k++) {
          let src = 0;
          for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d]!;
          out.set(span.subarray(src * es, src * es + es), k * es);
          for (let d = idx.length - 1; d >= 0; d--) {
            if (++idx[d] < t.shape[d]!) break;
            idx[d] = 0;
          }
        }
        return swap(out, es);
    }
  } catch (e) {
    await fh.close().catch(() => {});
    wrapError(e, path);
  }
}

/** Unpickle a plain (tensor-free) pickle file, e.g. `sampler`, `lr_scheduler` (zip or raw pickle). */
export async function readPlainTorchFile(path: string): Promise<PyValue> {
  const f = await openTorchFile(path);
  try {
    return f.root;
  } finally {
    await f.close();
  }
}

// Re-exported for callers that need to recognise tensors in the unpickled tree.
export { isTensor, toPlain, PyTuple, type PyTensor, type PyValue } from './unpickle.ts';
