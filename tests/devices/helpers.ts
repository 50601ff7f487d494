/**
 * Test material for the device code, made in memory: minimal ELF shared objects (a dynamic section
 * with DT_NEEDED / DT_SONAME / DT_RUNPATH, which is all the loader emulation reads), a ustar+gzip
 * writer (the npm package layout) and a stored-zip writer (the .nupkg layout), and a fake
 * CUDA/driver/Python layout under one temp root.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import type { ProviderPin } from '../../runtime/devices/pins.ts';

export interface FakeElf {
  soname?: string;
  needed?: string[];
  runpath?: string[];
  machine?: number;
  bits?: 32 | 64;
  /** Extra bytes after the structures (to give files distinct sizes). */
  pad?: number;
}

/** A tiny but well-formed ELF shared object: one PT_LOAD over the whole file, a PT_DYNAMIC, a string table. */
export function makeElf(o: FakeElf = {}): Uint8Array {
  const is64 = (o.bits ?? 64) === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const dynent = is64 ? 16 : 8;
  const strs = ['', ...(o.needed ?? []), ...(o.soname ? [o.soname] : []), ...(o.runpath?.length ? [o.runpath.join(':')] : [])];
  const offsets = new Map<string, number>();
  let strtab = '';
  for (const s of strs) {
    if (!offsets.has(s)) offsets.set(s, Buffer.byteLength(strtab));
    if (s !== '' || strtab === '') strtab += s + '\0';
  }
  const strBytes = Buffer.from(strtab, 'utf8');
  const strOff = ehsize + 2 * phentsize;
  const dyn: [number, number][] = [
    ...(o.needed ?? []).map((n) => [1, offsets.get(n)!] as [number, number]),
    ...(o.soname ? [[14, offsets.get(o.soname)!] as [number, number]] : []),
    ...(o.runpath?.length ? [[29, offsets.get(o.runpath.join(':'))!] as [number, number]] : []),
    [5, strOff],
    [10, strBytes.length],
    [0, 0],
  ];
  const dynOff = Math.ceil((strOff + strBytes.length) / 8) * 8;
  const size = dynOff + dyn.length * dynent + (o.pad ?? 0);
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0);
  b.writeUInt16LE(3, 16); // ET_DYN
  b.writeUInt16LE(o.machine ?? 62, 18);
  b.writeUInt32LE(1, 20);
  if (is64) {
    b.writeBigUInt64LE(64n, 32); // e_phoff
    b.writeUInt16LE(ehsize, 52);
    b.writeUInt16LE(phentsize, 54);
    b.writeUInt16LE(2, 56);
  } else {
    b.writeUInt32LE(52, 28);
    b.writeUInt16LE(ehsize, 40);
    b.writeUInt16LE(phentsize, 42);
    b.writeUInt16LE(2, 44);
  }
  const ph = (i: number, type: number, offset: number, filesz: number) => {
    const p = ehsize + i * phentsize;
    b.writeUInt32LE(type, p);
    if (is64) {
      b.writeBigUInt64LE(BigInt(offset), p + 8);
      b.writeBigUInt64LE(BigInt(offset), p + 16);
      b.writeBigUInt64LE(BigInt(offset), p + 24);
      b.writeBigUInt64LE(BigInt(filesz), p + 32);
      b.writeBigUInt64LE(BigInt(filesz), p + 40);
    } else {
      b.writeUInt32LE(offset, p + 4);
      b.writeUInt32LE(offset, p + 8);
      b.writeUInt32LE(offset, p + 12);
      b.writeUInt32LE(filesz, p + 16);
      b.writeUInt32LE(filesz, p + 20);
    }
  };
  ph(0, 1, 0, size);
  ph(1, 2, dynOff, dyn.length * dynent);
  strBytes.copy(b, strOff);
  dyn.forEach(([tag, val], i) => {
    const p = dynOff + i * dynent;
    if (is64) {
      b.writeBigInt64LE(BigInt(tag), p);
      b.writeBigUInt64LE(BigInt(val), p + 8);
    } else {
      b.writeInt32LE(tag, p);
      b.writeUInt32LE(val, p + 4);
    }
  });
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function writeElf(path: string, o: FakeElf = {}): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, makeElf(o));
  return path;
}

/** A ustar archive of `files` (path -> bytes), gzipped unless `gzip` is false. */
export function makeTar(files: Record<string, Uint8Array | string>, opts: { gzip?: boolean } = {}): Uint8Array {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    const sum = h.reduce((a, x) => a + x, 0);
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return opts.gzip === false ? tar : gzipSync(tar);
}

/** A zip (stored members) of `files`, as a .nupkg is laid out. */
export function makeZip(files: Record<string, Uint8Array | string>): Uint8Array {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const n = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(n.length, 26);
    locals.push(lh, n, data);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(n.length, 28);
    ch.writeUInt32LE(offset, 42);
    central.push(ch, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, end]));
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Fake provider libraries (ELF, with the real provider's NEEDED list) and a pin that matches them. */
export function fakeProviders(): { cuda: Uint8Array; shared: Uint8Array; pin: ProviderPin } {
  const cuda = makeElf({ needed: ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1', 'libdl.so.2', 'libstdc++.so.6', 'libc.so.6'], pad: 4000 });
  const shared = makeElf({ soname: 'libonnxruntime_providers_shared.so', needed: ['libstdc++.so.6', 'libc.so.6'], pad: 100 });
  const pin: ProviderPin = {
    ortVersion: '1.29.0',
    cudaMajor: 13,
    cudnnMajor: 9,
    minDriver: 580,
    npm: { spec: 'fake-provider-package@1.0.0', integrity: 'sha512-fake', size: 0 },
    nuget: { id: 'Fake.Gpu.Linux', version: '1.0.0', url: 'https://invalid.example/fake.nupkg' },
    files: [
      { name: 'libonnxruntime_providers_shared.so', size: shared.length, sha256: sha256(shared) },
      { name: 'libonnxruntime_providers_cuda.so', size: cuda.length, sha256: sha256(cuda) },
    ],
    cudaNeeded: ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'],
    lazy: [{ soname: 'libcudnn.so.9', when: 'the first convolution' }],
  };
  return { cuda, shared, pin };
}
