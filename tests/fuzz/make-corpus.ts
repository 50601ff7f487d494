/**
 * The hostile-input corpus, made by code (no binary blobs in git): crafted safetensors headers,
 * pickles, torch zips, indexes, hub caches, `.sora` sources and configs from the hostile-input
 * audit (issue 14). `writeCorpus(dir)` writes every case under `dir` and returns what each one is
 * and which reader takes it; tests/fuzz/hostile.test.ts runs every reader over it and asserts a
 * typed error (or success) in bounded time. Also the byte builders fuzz.test.ts mutates.
 *
 *   npx tsx tests/fuzz/make-corpus.ts OUTDIR   # write the corpus to look at it
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';

// ---------------------------------------------------------------- safetensors

/** A safetensors file from a header (object or raw JSON text) and `data` bytes. */
export function safetensors(header: unknown, data: Uint8Array | number = 0, opts: { bom?: boolean } = {}): Buffer {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (opts.bom) text = '\uFEFF' + text;
  const hb = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return Buffer.concat([len, hb, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}

/** A header text with `n` one-byte U8 tensors, built as a string (fast for a million entries). */
export function manyEntriesHeader(n: number): { text: string; bytes: number } {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`);
  return { text: `{${parts.join(',')}}`, bytes: n };
}

// ---------------------------------------------------------------- pickles

/** Pickle opcode builder (protocol 2). */
export class Pickle {
  private parts: Buffer[] = [Buffer.from([0x80, 0x02])];
  op(...b: number[]) {
    this.parts.push(Buffer.from(b));
    return this;
  }
  raw(b: Uint8Array) {
    this.parts.push(Buffer.from(b));
    return this;
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    const l = Buffer.alloc(4);
    l.writeUInt32LE(b.length);
    return this.op(0x58).raw(l).raw(b);
  }
  int(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return this.op(0x4a).raw(b);
  }
  global(mod: string, name: string) {
    return this.op(0x63).raw(Buffer.from(`${mod}\n${name}\n`, 'latin1'));
  }
  tuple(items: number[]) {
    this.op(0x28);
    for (const i of items) this.int(i);
    return this.op(0x74);
  }
  /** A tensor over storage `key` (f32, `numel` elements) with the given view. */
  tensor(key: string, numel: number, shape: number[], stride: number[], offset = 0) {
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.op(0x28); // MARK (args tuple)
    this.op(0x28).str('storage').global('torch', 'FloatStorage').str(key).str('cpu').int(numel).op(0x74, 0x51); // persistent id tuple, BINPERSID
    this.int(offset).tuple(shape).tuple(stride).op(0x89); // requires_grad False
    this.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks
    return this.op(0x74, 0x52); // TUPLE, REDUCE
  }
  stop() {
    this.op(0x2e);
    return Buffer.concat(this.parts);
  }
}

/** A list nested `depth` deep: [[[…]]]. */
export function deepListPickle(depth: number): Buffer {
  const p = new Pickle();
  for (let i = 0; i < depth; i++) p.op(0x5d);
  for (let i = 1; i < depth; i++) p.op(0x61);
  return p.stop();
}

/** A dict nested `depth` deep holding one tensor at the bottom (so a tensor search must descend). */
export function deepDictWithTensorPickle(depth: number): Buffer {
  const p = new Pickle();
  for (let i = 0; i < depth; i++) p.op(0x7d).str('a');
  p.tensor('0', 1, [1], [1]);
  for (let i = 0; i < depth; i++) p.op(0x73); // SETITEM
  return p.stop();
}

/** LONG4 of `bytes` bytes. */
export function bigLongPickle(bytes: number): Buffer {
  const l = Buffer.alloc(4);
  l.writeUInt32LE(bytes);
  return new Pickle().op(0x8b).raw(l).raw(Buffer.alloc(bytes, 0x5a)).stop();
}

/**
 * Memo amplification: level 0 = a dict holding one tensor (or a string), each level a list holding
 * `width` references (BINGET) to the level below: width^levels paths from 390 KB of pickle.
 */
export function bingetBombPickle(levels: number, width: number, withTensor = true): Buffer {
  const p = new Pickle();
  p.op(0x7d).str('w');
  if (withTensor) p.tensor('0', 1, [1], [1]);
  else p.str('x');
  p.op(0x73);
  const put = (k: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(k);
    p.op(0x72).raw(b); // LONG_BINPUT
  };
  const get = (k: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(k);
    p.op(0x6a).raw(b); // LONG_BINGET
  };
  put(0);
  for (let l = 1; l <= levels; l++) {
    p.op(0x30); // POP the previous level (it is in the memo)
    p.op(0x5d, 0x28); // EMPTY_LIST MARK
    for (let w = 0; w < width; w++) get(l - 1);
    p.op(0x65); // APPENDS
    put(l);
  }
  return p.stop();
}

// ---------------------------------------------------------------- zip / torch.save

export interface ZipRecord {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** override the uncompressed size written in the central directory */
  size?: number;
}

/** A zip archive; `alias` adds central-directory entries that all point at one record's local header. */
export function zip(records: ZipRecord[], opts: { alias?: { of: string; names: string[] } } = {}): Buffer {
  const parts: Buffer[] = [];
  const cd: Buffer[] = [];
  let off = 0;
  const offsets = new Map<string, { off: number; r: ZipRecord; body: Buffer }>();
  for (const r of records) {
    const body = r.deflate ? deflateRawSync(r.data) : Buffer.from(r.data);
    const name = Buffer.from(r.name, 'utf8');
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(r.deflate ? 8 : 0, 8);
    h.writeUInt32LE(body.length, 18);
    h.writeUInt32LE(r.size ?? r.data.length, 22);
    h.writeUInt16LE(name.length, 26);
    parts.push(h, name, body);
    offsets.set(r.name, { off, r, body });
    off += 30 + name.length + body.length;
  }
  const central = (name: string, at: { off: number; r: ZipRecord; body: Buffer }) => {
    const nb = Buffer.from(name, 'utf8');
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(at.r.deflate ? 8 : 0, 10);
    c.writeUInt32LE(at.body.length, 20);
    c.writeUInt32LE(at.r.size ?? at.r.data.length, 24);
    c.writeUInt16LE(nb.length, 28);
    c.writeUInt32LE(at.off, 42);
    cd.push(c, nb);
  };
  for (const [name, at] of offsets) central(name, at);
  let count = offsets.size;
  if (opts.alias) {
    const at = offsets.get(opts.alias.of)!;
    for (const n of opts.alias.names) central(n, at);
    count += opts.alias.names.length;
  }
  const cdBuf = Buffer.concat(cd);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Math.min(count, 0xfffe), 8);
  eocd.writeUInt16LE(Math.min(count, 0xfffe), 10);
  eocd.writeUInt32LE(cdBuf.length, 12);
  eocd.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cdBuf, eocd]);
}

/** A torch.save-style archive: `archive/data.pkl` + `archive/data/<key>` storage records. */
export function torchZip(pkl: Buffer, storages: Record<string, ZipRecord['data'] | Omit<ZipRecord, 'name'>> = {}, opts: { alias?: { of: string; names: string[] } } = {}): Buffer {
  const recs: ZipRecord[] = [{ name: 'archive/data.pkl', data: pkl }];
  for (const [k, v] of Object.entries(storages)) recs.push(v instanceof Uint8Array ? { name: `archive/data/${k}`, data: v } : { name: `archive/data/${k}`, ...v });
  return zip(recs, opts);
}

/** An OrderedDict-free state dict: {name: tensor} for `n` tensors each over its own storage `key_i`. */
export function stateDictPickle(tensors: { name: string; key: string; numel: number; shape: number[]; stride: number[]; offset?: number }[]): Buffer {
  const p = new Pickle().op(0x7d, 0x28);
  for (const t of tensors) p.str(t.name).tensor(t.key, t.numel, t.shape, t.stride, t.offset);
  return p.op(0x75).stop();
}

// ---------------------------------------------------------------- the corpus

export type Reader = 'weights' | 'verify' | 'inspect' | 'sora' | 'config' | 'set';

export interface Case {
  readonly name: string;
  readonly reader: Reader;
  /** path of the file or directory (weights/verify/inspect/sora/config), or the `--set` text */
  readonly input: string;
  /** the code expected (a typed error), or 'ok' */
  readonly expect: string;
  /** the limit the error must name, when one is expected */
  readonly limit?: string;
}

/** Write every crafted case under `dir`; cheap enough to run at test time (a few MB in all). */
export function writeCorpus(dir: string): Case[] {
  mkdirSync(dir, { recursive: true });
  const cases: Case[] = [];
  const file = (name: string, bytes: Uint8Array | string, reader: Reader, expect: string, limit?: string) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    cases.push({ name, reader, input: p, expect, ...(limit ? { limit } : {}) });
    return p;
  };
  // item 7: dtype names that are Object.prototype members
  for (const dt of ['toString', '__proto__', 'constructor', 'hasOwnProperty'])
    file(`st-dtype-${dt}.safetensors`, safetensors({ a: { dtype: dt, shape: [1], data_offsets: [0, 1] } }, 1), 'weights', 'SORA5002');
  // item 12: UTF-8 BOM before the header (the reference rejects it)
  file('st-bom.safetensors', safetensors({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1, { bom: true }), 'weights', 'SORA5002');
  // item 9: 100,000 huge dims; a million entries
  file('st-dims.safetensors', safetensors(`{"a":{"dtype":"F32","shape":[${Array(100_000).fill('4294967296').join(',')}],"data_offsets":[0,4]}}`, 4), 'weights', 'SORA5030', 'tensorDims');
  {
    const h = manyEntriesHeader(1_000_000);
    file('st-million.safetensors', safetensors(h.text, h.bytes), 'weights', 'SORA5030', 'headerEntries');
  }
  // item 7: a pickle nested 100,000 deep (hasTensor recursion); item 9: LONG4 of 200 KB; BINGET amplification
  file('pkl-deep-list.pt', torchZip(deepListPickle(100_000)), 'weights', 'SORA5030', 'nestingDepth');
  file('pkl-deep-dict.pt', torchZip(deepDictWithTensorPickle(20_000), { 0: new Uint8Array(4) }), 'weights', 'SORA5030', 'nestingDepth');
  file('pkl-long4.pt', torchZip(bigLongPickle(200_000)), 'weights', 'SORA5030', 'pickleLongBytes');
  // 3^15 paths to one tensor: every key a tensor, no copy made, but the count is capped
  file('pkl-binget.pt', torchZip(bingetBombPickle(15, 3), { 0: new Uint8Array(4) }), 'weights', 'SORA5030', 'headerEntries');
  // 2^40 paths to one string: the extras are summarised within one shared budget
  file('pkl-binget-plain.pt', torchZip(bingetBombPickle(40, 2, false)), 'weights', 'ok');
  {
    const p = new Pickle().op(0x5d);
    for (let k = 0; k < 2_100_000; k++) p.op(0x5d, 0x61);
    file('pkl-many-objects.pt', torchZip(p.stop()), 'weights', 'SORA5030', 'pickleObjects');
  }
  // item 9: a deflated record of zeros (the audit's was 3 GiB from 3 MB; 64 MiB from 64 KB shows the same ratio, ~1000:1)
  file('zip-bomb.pt', torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 1 << 24, shape: [1 << 24], stride: [1] }]), { 0: { data: new Uint8Array(64 << 20), deflate: true } }), 'weights', 'SORA5030', 'zipExpansionRatio');
  file('view-stride0.pt', torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 1, shape: [1 << 16, 1 << 14], stride: [0, 0] }]), { 0: new Uint8Array(4) }), 'weights', 'SORA5030', 'viewExpansionRatio');
  {
    const names = Array.from({ length: 65_000 }, (_, i) => `archive/data/${i + 1}`);
    const tensors = names.slice(0, 65_000).map((_, i) => ({ name: `t${i}`, key: String(i + 1), numel: 1, shape: [1], stride: [1] }));
    const p = file('zip-alias.pt', torchZip(stateDictPickle(tensors), { 0: new Uint8Array(4) }, { alias: { of: 'archive/data/0', names } }), 'weights', 'SORA5005');
    cases.push({ name: 'zip-alias.pt (verify)', reader: 'verify', input: p, expect: 'ok' });
  }
  return cases;
}

export function linkCorpus(dir: string, target: string, name: string) {
  symlinkSync(target, join(dir, name));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const out = process.argv[2];
  if (!out) throw new Error('usage: tsx tests/fuzz/make-corpus.ts OUTDIR');
  for (const c of writeCorpus(out)) console.log(`${c.reader}\t${c.expect}\t${c.name}`);
}
