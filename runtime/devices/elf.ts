/**
 * A small ELF reader: the dynamic section of a shared library (DT_NEEDED, DT_SONAME, DT_RUNPATH,
 * DT_RPATH), its class and machine. This is what the dynamic loader looks at when it loads
 * onnxruntime's CUDA provider, so `sorac doctor` reads the list of CUDA libraries the provider
 * needs from the file itself instead of hard-coding it, and checks candidate libraries the way
 * ld.so does (right class and machine).
 *
 * Only the ELF header, the program headers, PT_DYNAMIC and the string table are read (positional
 * reads): a 230 MB provider costs a few kilobytes of I/O. Little-endian ELF32/ELF64 only (every
 * platform onnxruntime-node ships for); anything else is reported as not an ELF library.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

export interface ElfDynamicInfo {
  /** 32 or 64. */
  readonly bits: 32 | 64;
  /** e_machine (62 = x86-64, 183 = aarch64). */
  readonly machine: number;
  /** e_type (2 = executable, 3 = shared object / PIE). */
  readonly type: number;
  readonly soname?: string;
  /** DT_NEEDED entries, in file order. */
  readonly needed: readonly string[];
  /** DT_RUNPATH entries (already split on ':'); `$ORIGIN` is left as is. */
  readonly runpath: readonly string[];
  /** DT_RPATH entries (only honoured by ld.so when there is no DT_RUNPATH). */
  readonly rpath: readonly string[];
}

/** Why a file is not a readable ELF library (not a user-facing error: doctor turns it into a check). */
export class ElfFormatError extends Error {}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

interface Reader {
  read(offset: number, length: number): Buffer;
}

function fileReader(fd: number, size: number): Reader {
  return {
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new ElfFormatError(`reads past the end of the file (offset ${offset}, ${length} bytes, file ${size} bytes)`);
      const b = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, b, got, length - got, offset + got);
        if (n === 0) throw new ElfFormatError('unexpected end of file');
        got += n;
      }
      return b;
    },
  };
}

function bufferReader(buf: Uint8Array): Reader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > b.length) throw new ElfFormatError(`reads past the end of the data (offset ${offset}, ${length} bytes)`);
      return b.subarray(offset, offset + length);
    },
  };
}

/** Parse the dynamic section of an ELF file given as bytes. */
export function parseElfDynamic(bytes: Uint8Array): ElfDynamicInfo {
  return parse(bufferReader(bytes), bytes.byteLength);
}

/** Read the dynamic section of the ELF file at `path` (throws ElfFormatError, or the fs error). */
export function readElfDynamic(path: string): ElfDynamicInfo {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    return parse(fileReader(fd, size), size);
  } finally {
    closeSync(fd);
  }
}

/** `readElfDynamic`, or undefined when the file is missing or not an ELF file this reader understands. */
export function tryReadElfDynamic(path: string): ElfDynamicInfo | undefined {
  try {
    return readElfDynamic(path);
  } catch {
    return undefined;
  }
}

function parse(r: Reader, size: number): ElfDynamicInfo {
  if (size < 52) throw new ElfFormatError('too short for an ELF header');
  const ident = r.read(0, 16);
  if (ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) throw new ElfFormatError('not an ELF file (bad magic)');
  const cls = ident[4];
  if (cls !== 1 && cls !== 2) throw new ElfFormatError(`unknown ELF class ${cls}`);
  if (ident[5] !== 1) throw new ElfFormatError('big-endian ELF files are not supported');
  const is64 = cls === 2;
  const h = r.read(0, is64 ? 64 : 52);
  const u64 = (b: Buffer, o: number) => Number(b.readBigUInt64LE(o));
  const word = (b: Buffer, o: number) => (is64 ? u64(b, o) : b.readUInt32LE(o));
  const type = h.readUInt16LE(16);
  const machine = h.readUInt16LE(18);
  const phoff = word(h, is64 ? 32 : 28);
  const phentsize = h.readUInt16LE(is64 ? 54 : 42);
  const phnum = h.readUInt16LE(is64 ? 56 : 44);
  if (phnum === 0) throw new ElfFormatError('no program headers (not a loadable object)');
  if (phentsize < (is64 ? 56 : 32)) throw new ElfFormatError(`program header entries of ${phentsize} bytes`);
  const ph = r.read(phoff, phentsize * phnum);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let dyn: { offset: number; filesz: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    const ptype = ph.readUInt32LE(o);
    const offset = is64 ? u64(ph, o + 8) : ph.readUInt32LE(o + 4);
    const vaddr = is64 ? u64(ph, o + 16) : ph.readUInt32LE(o + 8);
    const filesz = is64 ? u64(ph, o + 32) : ph.readUInt32LE(o + 16);
    if (ptype === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (ptype === PT_DYNAMIC) dyn = { offset, filesz };
  }
  const base = { bits: (is64 ? 64 : 32) as 32 | 64, machine, type };
  if (!dyn) return { ...base, needed: [], runpath: [], rpath: [] };
  const entSize = is64 ? 16 : 8;
  const d = r.read(dyn.offset, Math.min(dyn.filesz, size - dyn.offset));
  const entries: [tag: number, val: number][] = [];
  for (let o = 0; o + entSize <= d.length; o += entSize) {
    const tag = is64 ? Number(d.readBigInt64LE(o)) : d.readInt32LE(o);
    const val = is64 ? u64(d, o + 8) : d.readUInt32LE(o + 4);
    if (tag === DT_NULL) break;
    entries.push([tag, val]);
  }
  const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  const strsz = entries.find(([t]) => t === DT_STRSZ)?.[1];
  if (strtabAddr === undefined || strsz === undefined) throw new ElfFormatError('dynamic section without a string table');
  // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segment holding it
  const seg = loads.find((l) => strtabAddr >= l.vaddr && strtabAddr < l.vaddr + l.filesz);
  if (!seg) throw new ElfFormatError('the dynamic string table is outside every loadable segment');
  const strtab = r.read(seg.offset + (strtabAddr - seg.vaddr), Math.min(strsz, size - (seg.offset + (strtabAddr - seg.vaddr))));
  const str = (off: number): string => {
    if (off >= strtab.length) throw new ElfFormatError(`string offset ${off} outside the string table`);
    const end = strtab.indexOf(0, off);
    return strtab.toString('utf8', off, end < 0 ? strtab.length : end);
  };
  const needed: string[] = [];
  let soname: string | undefined;
  let runpath: string[] = [];
  let rpath: string[] = [];
  for (const [tag, val] of entries) {
    if (tag === DT_NEEDED) needed.push(str(val));
    else if (tag === DT_SONAME) soname = str(val);
    else if (tag === DT_RUNPATH) runpath = str(val).split(':').filter(Boolean);
    else if (tag === DT_RPATH) rpath = str(val).split(':').filter(Boolean);
  }
  return { ...base, ...(soname !== undefined ? { soname } : {}), needed, runpath, rpath };
}
