/**
 * safetensors reader: learns keys, shapes and dtypes from the header alone and reads tensor
 * bytes lazily (positioned reads, never the whole file).
 *
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{ "__metadata__"?: {str: str}, key: {dtype, shape, data_offsets: [begin, end]} }`, then the
 * byte buffer; offsets are relative to the start of the buffer (8 + N).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { type DType, DTYPE_SIZE, dtypeFromSafetensors } from '../compiler/dtype.ts';

export interface TensorInfo {
  readonly key: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly size: number;
  readonly headerLength: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** In file order (by data offset). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  read(key: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A problem with a safetensors file; `rule` is stable and names the violated rule. */
export class SafetensorsError extends Error {
  constructor(
    public readonly rule: string,
    message: string,
    public readonly path: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** Header size cap, as in the reference implementation (100 MB). */
export const MAX_HEADER_SIZE = 100_000_000;

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new SafetensorsError('io', `cannot open: ${(e as Error).message}`, path);
  }
  try {
    const size = (await fh.stat()).size;
    const parsed = await readHeader(fh, size, path);
    return {
      path,
      size,
      headerLength: parsed.headerLength,
      metadata: parsed.metadata,
      tensors: parsed.tensors,
      async read(key: string) {
        const t = parsed.tensors.get(key);
        if (!t) throw new SafetensorsError('missing-key', `no tensor named "${key}"`, path);
        const buf = new Uint8Array(t.byteLength);
        let done = 0;
        while (done < t.byteLength) {
          const { bytesRead } = await fh.read(buf, done, t.byteLength - done, t.offset + done);
          if (bytesRead === 0) throw new SafetensorsError('truncated', `file ended while reading "${key}"`, path);
          done += bytesRead;
        }
        return buf;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function readHeader(fh: FileHandle, size: number, path: string) {
  if (size < 8) throw new SafetensorsError('too-small', `file is ${size} bytes; a safetensors file starts with an 8-byte header length`, path);
  const lenBuf = Buffer.alloc(8);
  await fh.read(lenBuf, 0, 8, 0);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_SIZE)) throw new SafetensorsError('header-too-large', `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte cap`, path);
  const headerLength = Number(n);
  if (8 + headerLength > size) throw new SafetensorsError('header-out-of-bounds', `header length ${headerLength} runs past the end of the ${size}-byte file (truncated?)`, path);
  const hb = Buffer.alloc(headerLength);
  await fh.read(hb, 0, headerLength, 8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
  } catch (e) {
    throw new SafetensorsError('header-json', `header is not valid UTF-8 JSON: ${(e as Error).message}`, path);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError('header-json', 'header is not a JSON object', path);
  const dataStart = 8 + headerLength;
  const metadata: Record<string, string> = {};
  const list: TensorInfo[] = [];
  for (const [key, v] of Object.entries(json as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError('metadata', '__metadata__ must be an object of strings', path);
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw new SafetensorsError('metadata', `__metadata__["${mk}"] is not a string`, path);
        metadata[mk] = mv;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw new SafetensorsError('tensor-entry', `entry "${key}" is not an object`, path);
    const dtype = typeof e.dtype === 'string' ? dtypeFromSafetensors(e.dtype) : undefined;
    if (!dtype) throw new SafetensorsError('dtype', `tensor "${key}" has unknown dtype ${JSON.stringify(e.dtype)}`, path);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError('shape', `tensor "${key}" has an invalid shape ${JSON.stringify(e.shape)}`, path);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1])
      throw new SafetensorsError('offsets', `tensor "${key}" has invalid data_offsets ${JSON.stringify(off)}`, path);
    const shape = e.shape as number[];
    const numel = shape.reduce((a, b) => a * b, 1);
    const byteLength = off[1] - off[0];
    if (numel * DTYPE_SIZE[dtype] !== byteLength)
      throw new SafetensorsError('size-mismatch', `tensor "${key}" ${dtype}[${shape.join(',')}] needs ${numel * DTYPE_SIZE[dtype]} bytes but data_offsets span ${byteLength}`, path);
    list.push({ key, dtype, shape, offset: dataStart + off[0], byteLength });
  }
  list.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let cursor = dataStart;
  for (const t of list) {
    if (t.offset !== cursor) {
      throw new SafetensorsError(t.offset < cursor ? 'overlap' : 'gap', `tensor "${t.key}" starts at buffer offset ${t.offset - dataStart}, expected ${cursor - dataStart} (tensors must be contiguous and non-overlapping)`, path);
    }
    cursor += t.byteLength;
  }
  if (cursor !== size) {
    throw new SafetensorsError(cursor > size ? 'truncated' : 'trailing-bytes', cursor > size ? `file is ${size} bytes but its header describes ${cursor} (truncated download?)` : `file has ${size - cursor} bytes after the last tensor`, path);
  }
  return { headerLength, metadata, tensors: new Map(list.map((t) => [t.key, t])) };
}
