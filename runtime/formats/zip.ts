/**
 * Minimal read-only ZIP directory reader for torch.save archives: finds the end of central
 * directory (and the ZIP64 records when present), lists entries from the central directory (torch
 * writes local headers with the data-descriptor flag, so local sizes are 0 — never trust them), and
 * locates each entry's data start by reading its local header (name + extra field lengths).
 *
 * Nothing is decompressed here; entries are read by absolute offset. Every length is checked
 * against the file size before anything is allocated.
 */
import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { SoracError } from '../../core/errors.ts';
import { limit, limitExceeded } from '../../core/limits.ts';
import { readExact } from './safetensors.ts';

/** A corrupt or unsupported zip archive (a PyTorch file's container). */
export class ZipError extends SoracError {
  constructor(message: string) {
    super('SORA5005', message);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const Z64_LOCATOR_SIG = 0x07064b50;
const Z64_EOCD_SIG = 0x06064b50;
const CD_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
/** Cap the central directory we are willing to load (a torch file has a few entries per tensor). */
const MAX_CD_SIZE = 256 * 1024 * 1024;

function u64(b: Buffer, o: number): number {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError('a ZIP64 size or offset is larger than 2^53');
  return Number(v);
}

export async function readZipDirectory(fh: FileHandle, size: number): Promise<ZipEntry[]> {
  if (size < 22) throw new ZipError(`file is ${size} bytes, too small for a zip archive (truncated?)`);
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = Buffer.alloc(tailLen);
  await readExact(fh, tail, 0, tailLen, size - tailLen);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('no end-of-central-directory record: the zip archive is truncated or not a zip file (failed finding central directory)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== Z64_LOCATOR_SIG) throw new ZipError('ZIP64 end-of-central-directory locator missing');
    const z64Off = u64(tail, loc + 8);
    if (z64Off + 56 > size) throw new ZipError('ZIP64 end-of-central-directory record out of bounds');
    const z = Buffer.alloc(56);
    await readExact(fh, z, 0, 56, z64Off);
    if (z.readUInt32LE(0) !== Z64_EOCD_SIG) throw new ZipError('bad ZIP64 end-of-central-directory signature');
    count = u64(z, 32);
    cdSize = u64(z, 40);
    cdOffset = u64(z, 48);
  }
  if (cdOffset + cdSize > size) throw new ZipError(`central directory (offset ${cdOffset}, ${cdSize} bytes) lies outside the ${size}-byte file (truncated?)`);
  if (cdSize > MAX_CD_SIZE) throw new ZipError(`central directory of ${cdSize} bytes exceeds the ${MAX_CD_SIZE}-byte cap`);
  if (count * 46 > cdSize) throw new ZipError(`central directory claims ${count} entries but is only ${cdSize} bytes`);
  const maxEntries = limit('headerEntries');
  if (count > maxEntries) throw limitExceeded('SORA5030', 'headerEntries', `the zip central directory lists ${count} records`, count);
  const cd = Buffer.alloc(cdSize);
  if ((await readExact(fh, cd, 0, cdSize, cdOffset)) !== cdSize) throw new ZipError('could not read the central directory');
  const out: ZipEntry[] = [];
  // each record has its own local header: entries sharing one alias (overlap) the same bytes, a
  // zip-bomb technique that makes every per-record pass (CRC, reads) repeat the same data
  const locals = new Map<number, string>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== CD_SIG) throw new ZipError(`central directory entry ${i} is corrupt`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let csize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let local = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw new ZipError(`central directory entry ${i} runs past the directory`);
    if (flags & 1) throw new ZipError('encrypted zip entries are not supported');
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extended information: only the fields whose 32-bit value is saturated, in this order.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (e + 4 + len > eEnd) break;
      if (id === 0x0001) {
        let q = e + 4;
        const need = (n: number) => {
          if (q + 8 > e + 4 + len) throw new ZipError(`ZIP64 extra field of "${name}" is too short`);
          const v = u64(cd, q);
          q += 8;
          return v ?? n;
        };
        if (usize === 0xffffffff) usize = need(usize);
        if (csize === 0xffffffff) csize = need(csize);
        if (local === 0xffffffff) local = need(local);
      }
      e += 4 + len;
    }
    const dup = locals.get(local);
    if (dup !== undefined) throw new ZipError(`central directory entries "${dup}" and "${name}" share one record (overlapping entries)`);
    locals.set(local, name);
    out.push({ name, method, compressedSize: csize, size: usize, crc32, localHeaderOffset: local });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** Absolute offset of an entry's data (after its local header, name and extra field). */
export async function entryDataOffset(fh: FileHandle, size: number, e: ZipEntry): Promise<number> {
  if (e.localHeaderOffset + 30 > size) throw new ZipError(`local header of "${e.name}" lies outside the file (truncated?)`);
  const h = Buffer.alloc(30);
  await readExact(fh, h, 0, 30, e.localHeaderOffset);
  if (h.readUInt32LE(0) !== LOCAL_SIG) throw new ZipError(`bad local header signature for "${e.name}"`);
  const start = e.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  if (start + e.compressedSize > size) throw new ZipError(`data of "${e.name}" (${e.compressedSize} bytes at ${start}) runs past the end of the ${size}-byte file (truncated?)`);
  return start;
}

/** Read a whole (small) entry, inflating if needed; `max` bounds the allocation. */
export async function readEntry(fh: FileHandle, size: number, e: ZipEntry, max: number): Promise<Buffer> {
  if (e.size > max || e.compressedSize > max) throw new ZipError(`entry "${e.name}" is ${e.size} bytes, more than the ${max}-byte limit`);
  const start = await entryDataOffset(fh, size, e);
  const buf = Buffer.alloc(e.compressedSize);
  await readExact(fh, buf, 0, e.compressedSize, start);
  if (e.method === 0) return buf;
  if (e.method === 8) {
    // deflate cannot exceed ~1032:1; a larger claim is a zip bomb or a corrupt directory
    if (e.size > e.compressedSize * 1032 + 1024) throw new ZipError(`entry "${e.name}" claims ${e.size} bytes from ${e.compressedSize} compressed bytes, more than deflate can produce`);
    // torch.save stores records uncompressed; a deflated record that expands by hundreds is a bomb
    const ratio = limit('zipExpansionRatio');
    if (e.size > 1 << 20 && e.size > e.compressedSize * ratio)
      throw limitExceeded('SORA5030', 'zipExpansionRatio', `entry "${e.name}" inflates ${e.compressedSize} bytes to ${e.size} (ratio ${Math.round(e.size / Math.max(1, e.compressedSize))})`, Math.round(e.size / Math.max(1, e.compressedSize)));
    let out: Buffer;
    try {
      out = inflateRawSync(buf, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw new ZipError(`entry "${e.name}" does not inflate: ${(err as Error).message}`);
    }
    if (out.length !== e.size) throw new ZipError(`entry "${e.name}" inflates to ${out.length} bytes, expected ${e.size}`);
    return out;
  }
  throw new ZipError(`entry "${e.name}" uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
}
