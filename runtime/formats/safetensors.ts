/**
 * safetensors reader: learns keys, shapes and dtypes from the header alone and reads tensor
 * bytes lazily (positioned reads, never the whole file).
 *
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{ "__metadata__"?: {str: str}, key: {dtype, shape, data_offsets: [begin, end]} }`, then the
 * byte buffer; offsets are relative to the start of the buffer (8 + N).
 */
import { type FileHandle } from 'node:fs/promises';
import { type DType, SAFETENSORS_DTYPE } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { limit, limitExceeded } from '../../core/limits.ts';
import { openRegularFile } from './safe-fs.ts';
import { type JsonValue, parseStrictJson, StrictJsonError } from './strict-json.ts';

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
export class SafetensorsError extends SoracError {
  constructor(
    public readonly rule: string,
    message: string,
    path: string,
  ) {
    super(rule === 'io' ? 'SORA5012' : 'SORA5002', `${path}: ${message}`, { path });
    this.name = 'SafetensorsError';
  }
}

/** Header size cap, as in the reference implementation (100 MB). */
export const MAX_HEADER_SIZE = 100_000_000;

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let fh: FileHandle;
  try {
    fh = await openRegularFile(path);
  } catch (e) {
    if (e instanceof SoracError) throw e;
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
        if ((await readExact(fh, buf, 0, t.byteLength, t.offset)) !== t.byteLength)
          throw new SafetensorsError('truncated', `file ended while reading "${key}"`, path);
        return buf;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Every dtype string of the reference implementation, with its element size in bits. */
export const SAFETENSORS_KNOWN_DTYPES: Readonly<Record<string, number>> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
};

const ST_TO_DTYPE = new Map<string, DType>(Object.entries(SAFETENSORS_DTYPE).map(([k, v]) => [v, k as DType]));

/** Read exactly `length` bytes at `position` (loops over short reads). */
export async function readExact(fh: FileHandle, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, offset + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Validate a header against the reference rules. Each violated rule has its own `rule` string:
 * too-small, header-too-large, header-out-of-bounds, header-utf8, header-start, header-json,
 * duplicate-key, header-not-object, metadata, tensor-entry, dtype, dtype-unsupported, shape,
 * offsets, numel-overflow, misaligned, size-mismatch, overlap, gap, truncated, trailing-bytes.
 */
async function readHeader(fh: FileHandle, size: number, path: string) {
  if (size < 8) throw new SafetensorsError('too-small', `file is ${size} bytes; a safetensors file starts with an 8-byte header length`, path);
  const lenBuf = Buffer.alloc(8);
  if ((await readExact(fh, lenBuf, 0, 8, 0)) !== 8) throw new SafetensorsError('too-small', 'could not read the 8-byte header length', path);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_SIZE)) throw new SafetensorsError('header-too-large', `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte cap`, path);
  const headerLength = Number(n);
  if (8 + headerLength > size) throw new SafetensorsError('header-out-of-bounds', `header length ${headerLength} runs past the end of the ${size}-byte file (truncated?)`, path);
  const hb = Buffer.alloc(headerLength);
  if ((await readExact(fh, hb, 0, headerLength, 8)) !== headerLength) throw new SafetensorsError('truncated', 'file ended inside the header', path);
  let text: string;
  try {
    // ignoreBOM: keep a leading U+FEFF so the "{" rule rejects it, as the reference does
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb);
  } catch {
    throw new SafetensorsError('header-utf8', 'header is not valid UTF-8', path);
  }
  if (text[0] !== '{') throw new SafetensorsError('header-start', `header must start with "{" (found ${JSON.stringify(text.slice(0, 8))})`, path);
  let json: JsonValue;
  try {
    const maxEntries = limit('headerEntries');
    const maxDims = limit('tensorDims');
    json = parseStrictJson(text, {
      maxDepth: 64,
      maxTopKeys: maxEntries + 1, // + __metadata__
      maxArrayItems: Math.max(maxDims, 2),
      onTooMany: (what, count) => {
        throw what === 'keys'
          ? limitExceeded('SORA5030', 'headerEntries', `${path}: the safetensors header lists more than ${count - 2} tensors`, count - 1, { path })
          : limitExceeded('SORA5030', 'tensorDims', `${path}: an array in the safetensors header (a shape) has more than ${count - 1} elements`, count, { path });
      },
    });
  } catch (e) {
    if (e instanceof SoracError && !(e instanceof StrictJsonError)) throw e;
    if (e instanceof StrictJsonError && e.kind === 'duplicate-key') throw new SafetensorsError('duplicate-key', `header has a ${e.message}`, path);
    throw new SafetensorsError('header-json', `header is not valid JSON: ${(e as Error).message}`, path);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError('header-not-object', 'header is not a JSON object', path);
  const dataStart = 8 + headerLength;
  const metadata: Record<string, string> = Object.create(null);
  const list: TensorInfo[] = [];
  for (const key of Object.keys(json)) {
    const v = (json as Record<string, JsonValue>)[key];
    if (key === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError('metadata', '__metadata__ must be an object of strings', path);
      for (const mk of Object.keys(v)) {
        const mv = (v as Record<string, JsonValue>)[mk];
        if (typeof mv !== 'string') throw new SafetensorsError('metadata', `__metadata__[${JSON.stringify(mk)}] is not a string`, path);
        metadata[mk] = mv;
      }
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError('tensor-entry', `entry ${JSON.stringify(key)} is not an object`, path);
    const e = v as { dtype?: JsonValue; shape?: JsonValue; data_offsets?: JsonValue };
    // Unknown fields inside an entry are ignored, as serde does in the reference implementation.
    // own properties only: "toString" / "__proto__" are not dtypes
    if (typeof e.dtype !== 'string' || !Object.hasOwn(SAFETENSORS_KNOWN_DTYPES, e.dtype))
      throw new SafetensorsError('dtype', `tensor ${JSON.stringify(key)} has unknown dtype ${JSON.stringify(e.dtype)}`, path);
    const bits = SAFETENSORS_KNOWN_DTYPES[e.dtype]!;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0 && !Object.is(d, -0)) || (typeof d === 'bigint' && d >= 0n)))
      throw new SafetensorsError('shape', `tensor ${JSON.stringify(key)} has an invalid shape ${show(e.shape)}`, path);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0 && !Object.is(d, -0)) || (typeof d === 'bigint' && d >= 0n)))
      throw new SafetensorsError('offsets', `tensor ${JSON.stringify(key)} has invalid data_offsets ${show(off)}`, path);
    // numel and byte size with checked (bigint) arithmetic, as the reference does with checked_mul.
    // fast path in doubles while exact (< 2^53), bigint beyond
    let fast = 1;
    for (const d of e.shape) fast *= typeof d === 'number' ? d : Number(d);
    let numel: bigint;
    let overflow = false;
    if (Number.isSafeInteger(fast * bits)) numel = BigInt(fast);
    else {
      // checked product, stopping at the first overflow (never a product of thousands of huge factors)
      numel = 1n;
      for (const d of e.shape) {
        numel *= BigInt(d as number | bigint);
        if (numel > U64_MAX) {
          overflow = true;
          break;
        }
      }
    }
    const totalBits = numel * BigInt(bits);
    if (overflow || numel > U64_MAX || totalBits > U64_MAX)
      throw new SafetensorsError('numel-overflow', `tensor ${JSON.stringify(key)} shape ${show(e.shape)} overflows the element count`, path);
    if (totalBits % 8n !== 0n) throw new SafetensorsError('misaligned', `tensor ${JSON.stringify(key)} ends inside a byte (${totalBits} bits)`, path);
    const begin = BigInt(off[0] as number | bigint);
    const end = BigInt(off[1] as number | bigint);
    if (end < begin) throw new SafetensorsError('offsets', `tensor ${JSON.stringify(key)} has data_offsets end < begin ${show(off)}`, path);
    const need = totalBits / 8n;
    if (end - begin !== need)
      throw new SafetensorsError('size-mismatch', `tensor ${JSON.stringify(key)} ${e.dtype}${show(e.shape)} needs ${need} bytes but data_offsets span ${end - begin}`, path);
    if (BigInt(dataStart) + end > BigInt(size))
      throw new SafetensorsError('truncated', `tensor ${JSON.stringify(key)} ends at byte ${BigInt(dataStart) + end} but the file is ${size} bytes (truncated download?)`, path);
    const dtype = ST_TO_DTYPE.get(e.dtype);
    if (!dtype) throw new SafetensorsError('dtype-unsupported', `tensor ${JSON.stringify(key)} has dtype ${e.dtype}, which is valid safetensors but not supported by sorac`, path);
    list.push({ key, dtype, shape: (e.shape as number[]).map(Number), offset: dataStart + Number(begin), byteLength: Number(need) });
  }
  list.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let cursor = dataStart;
  for (const t of list) {
    if (t.offset !== cursor) {
      throw new SafetensorsError(t.offset < cursor ? 'overlap' : 'gap', `tensor ${JSON.stringify(t.key)} starts at buffer offset ${t.offset - dataStart}, expected ${cursor - dataStart} (tensors must be contiguous and non-overlapping)`, path);
    }
    cursor += t.byteLength;
  }
  if (cursor !== size) {
    throw new SafetensorsError(cursor > size ? 'truncated' : 'trailing-bytes', cursor > size ? `file is ${size} bytes but its header describes ${cursor} (truncated download?)` : `file has ${size - cursor} bytes after the last tensor`, path);
  }
  return { headerLength, metadata, tensors: new Map(list.map((t) => [t.key, t])) };
}

const U64_MAX = 2n ** 64n - 1n;

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}
