/**
 * A `torch.save`-compatible writer for flat state dicts (`OrderedDict[str, Tensor]`), for the
 * checkpoint parts Open-Sora v1.x can only read as torch files (`ema.pt`). Streaming and atomic,
 * like the safetensors writer: the pickle (protocol 2, only `collections.OrderedDict`,
 * `torch._utils._rebuild_tensor_v2` and `torch.*Storage` — what the restricted reader accepts) is
 * built from shapes alone, then each tensor's bytes are streamed into its own stored zip record
 * (`archive/data/<i>`, 64-byte aligned like torch's writer) with the CRC-32 computed on the way and
 * patched into the local header; ZIP64 records are used when an offset or size needs them.
 */
import { crc32 } from 'node:zlib';
import type { FileHandle } from 'node:fs/promises';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import { atomicWrite } from '../../core/atomic.ts';
import { type TensorSource, type WriterTensors, type WriterTensor } from './safetensors-writer.ts';

const STORAGE: Partial<Record<DType, string>> = {
  f32: 'FloatStorage',
  f64: 'DoubleStorage',
  f16: 'HalfStorage',
  bf16: 'BFloat16Storage',
  i64: 'LongStorage',
  i32: 'IntStorage',
  i16: 'ShortStorage',
  i8: 'CharStorage',
  u8: 'ByteStorage',
  bool: 'BoolStorage',
};

class PickleOut {
  private parts: Buffer[] = [];
  op(...b: number[]) {
    this.parts.push(Buffer.from(b));
  }
  global(mod: string, name: string) {
    this.parts.push(Buffer.from(`c${mod}\n${name}\n`, 'utf8'));
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.parts.push(h, b);
  }
  int(n: number) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`pickle int ${n}`);
    if (n < 256) this.op(0x4b, n); // BININT1
    else if (n < 65536) this.op(0x4d, n & 0xff, n >> 8); // BININT2
    else if (n < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(n, 1);
      this.parts.push(b);
    } else {
      const b = Buffer.alloc(10);
      b[0] = 0x8a; // LONG1, 8 bytes little-endian two's complement
      b[1] = 8;
      b.writeBigInt64LE(BigInt(n), 2);
      this.parts.push(b);
    }
  }
  tuple(items: number[]) {
    if (!items.length) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    this.op(0x74); // TUPLE
  }
  bytes() {
    return Buffer.concat(this.parts);
  }
}

/** The data.pkl of `OrderedDict((key, tensor) …)`, storage i holding tensor i. */
export function statePickle(list: readonly [string, { dtype: DType; shape: readonly number[] }][]): Buffer {
  const p = new PickleOut();
  p.op(0x80, 2); // PROTO 2
  p.global('collections', 'OrderedDict');
  p.op(0x29, 0x52); // EMPTY_TUPLE REDUCE
  if (list.length) {
    p.op(0x28); // MARK
    list.forEach(([key, t], i) => {
      const cls = STORAGE[t.dtype];
      if (!cls) throw new RangeError(`torch writer: no storage class for ${t.dtype}`);
      const numel = t.shape.reduce((a, b) => a * b, 1);
      p.str(key);
      p.global('torch._utils', '_rebuild_tensor_v2');
      p.op(0x28); // MARK (args)
      p.op(0x28); // MARK (persistent id)
      p.str('storage');
      p.global('torch', cls);
      p.str(String(i));
      p.str('cpu');
      p.int(numel);
      p.op(0x74, 0x51); // TUPLE BINPERSID
      p.int(0); // storage offset
      p.tuple([...t.shape]);
      const stride: number[] = [];
      let s = 1;
      for (let d = t.shape.length - 1; d >= 0; d--) {
        stride.unshift(s);
        s *= t.shape[d]!;
      }
      p.tuple(stride);
      p.op(0x89); // NEWFALSE (requires_grad)
      p.global('collections', 'OrderedDict');
      p.op(0x29, 0x52); // backward hooks: OrderedDict()
      p.op(0x74, 0x52); // TUPLE REDUCE
    });
    p.op(0x75); // SETITEMS
  }
  p.op(0x2e); // STOP
  return p.bytes();
}

async function* chunks(src: TensorSource): AsyncIterable<Uint8Array> {
  let s: unknown = src;
  if (typeof s === 'function') s = await (s as () => unknown)();
  if (s instanceof Uint8Array) yield s;
  else if (s && typeof (s as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') yield* s as AsyncIterable<Uint8Array>;
  else if (s && typeof (s as Iterable<Uint8Array>)[Symbol.iterator] === 'function') yield* s as Iterable<Uint8Array>;
  else throw new TypeError('tensor data must be a Uint8Array, an (async) iterable of Uint8Array, or a function returning one');
}

/** Positional write in pieces of at most 1 MiB (large single writes are much slower through the page cache). */
async function writeAt(fh: FileHandle, buf: Uint8Array, pos: number) {
  let done = 0;
  while (done < buf.length) done += (await fh.write(buf, done, Math.min(1 << 20, buf.length - done), pos + done)).bytesWritten; // 1 MiB per call, below MAX_WRITE_CHUNK
}

interface Rec {
  name: Buffer;
  offset: number;
  size: number;
  crc: number;
  zip64: boolean;
}

const U32_MAX = 0xffffffff;

/**
 * Write `tensors` as a torch.save zip file (loadable by `torch.load`, and by sorac's restricted
 * reader). `zip64: true` forces ZIP64 records (they are used automatically past 4 GiB).
 */
export async function writeTorchStateDict(path: string, tensors: WriterTensors, opts: { zip64?: boolean; prefix?: string } = {}): Promise<{ path: string; size: number }> {
  const list: [string, WriterTensor][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, WriterTensor>);
  const prefix = opts.prefix ?? 'archive';
  const pkl = statePickle(list);
  let size = 0;
  await atomicWrite(path, async (fh) => {
    const recs: Rec[] = [];
    let pos = 0;
    const addRecord = async (name: string, len: number, body: (dataPos: number) => Promise<number>) => {
      const nameB = Buffer.from(`${prefix}/${name}`, 'utf8');
      const zip64 = !!opts.zip64 || len >= U32_MAX || pos >= U32_MAX;
      const fixed = 30 + nameB.length + (zip64 ? 20 : 0);
      // pad with a torch-style "FB" extra field so the data starts at a multiple of 64
      let pad = (64 - ((pos + fixed + 4) % 64)) % 64;
      const extra = Buffer.alloc((zip64 ? 20 : 0) + 4 + pad);
      let e = 0;
      if (zip64) {
        extra.writeUInt16LE(0x0001, 0);
        extra.writeUInt16LE(16, 2);
        extra.writeBigUInt64LE(BigInt(len), 4);
        extra.writeBigUInt64LE(BigInt(len), 12);
        e = 20;
      }
      extra.writeUInt16LE(0x4246, e); // 'FB'
      extra.writeUInt16LE(pad, e + 2);
      extra.fill(0x5a, e + 4); // 'Z'
      const h = Buffer.alloc(30);
      h.writeUInt32LE(0x04034b50, 0);
      h.writeUInt16LE(zip64 ? 45 : 20, 4);
      h.writeUInt16LE(0, 6); // flags
      h.writeUInt16LE(0, 8); // stored
      h.writeUInt16LE(0, 10); // time
      h.writeUInt16LE(0x21, 12); // date 1980-01-01
      h.writeUInt32LE(0, 14); // crc, patched below
      h.writeUInt32LE(zip64 ? U32_MAX : len, 18);
      h.writeUInt32LE(zip64 ? U32_MAX : len, 22);
      h.writeUInt16LE(nameB.length, 26);
      h.writeUInt16LE(extra.length, 28);
      const start = pos;
      await writeAt(fh, Buffer.concat([h, nameB, extra]), start);
      const dataPos = start + 30 + nameB.length + extra.length;
      const crc = await body(dataPos);
      const c = Buffer.alloc(4);
      c.writeUInt32LE(crc >>> 0, 0);
      await writeAt(fh, c, start + 14);
      recs.push({ name: nameB, offset: start, size: len, crc: crc >>> 0, zip64: zip64 || start >= U32_MAX });
      pos = dataPos + len;
    };
    const small = (name: string, data: Buffer) =>
      addRecord(name, data.length, async (at) => {
        await writeAt(fh, data, at);
        return crc32(data);
      });
    await small('data.pkl', pkl);
    await small('byteorder', Buffer.from('little'));
    for (let i = 0; i < list.length; i++) {
      const [key, t] = list[i]!;
      const len = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
      await addRecord(`data/${i}`, len, async (at) => {
        let crc = 0;
        let n = 0;
        for await (const ch of chunks(t.data)) {
          if (n + ch.length > len) throw new RangeError(`tensor "${key}" produced more than its ${len} bytes`);
          await writeAt(fh, ch, at + n);
          crc = crc32(ch, crc);
          n += ch.length;
        }
        if (n !== len) throw new RangeError(`tensor "${key}" produced ${n} bytes, expected ${len}`);
        return crc;
      });
    }
    await small('version', Buffer.from('3\n'));
    // central directory
    const cdStart = pos;
    const cd: Buffer[] = [];
    for (const r of recs) {
      const h = Buffer.alloc(46);
      h.writeUInt32LE(0x02014b50, 0);
      h.writeUInt16LE(r.zip64 ? 45 : 20, 4);
      h.writeUInt16LE(r.zip64 ? 45 : 20, 6);
      h.writeUInt16LE(0, 8);
      h.writeUInt16LE(0, 10);
      h.writeUInt16LE(0, 12);
      h.writeUInt16LE(0x21, 14);
      h.writeUInt32LE(r.crc, 16);
      h.writeUInt32LE(r.zip64 ? U32_MAX : r.size, 20);
      h.writeUInt32LE(r.zip64 ? U32_MAX : r.size, 24);
      h.writeUInt16LE(r.name.length, 28);
      h.writeUInt16LE(r.zip64 ? 28 : 0, 30);
      h.writeUInt16LE(0, 32); // comment
      h.writeUInt16LE(0, 34); // disk
      h.writeUInt16LE(0, 36);
      h.writeUInt32LE(0, 38);
      h.writeUInt32LE(r.zip64 ? U32_MAX : r.offset, 42);
      cd.push(h, r.name);
      if (r.zip64) {
        const x = Buffer.alloc(28);
        x.writeUInt16LE(0x0001, 0);
        x.writeUInt16LE(24, 2);
        x.writeBigUInt64LE(BigInt(r.size), 4);
        x.writeBigUInt64LE(BigInt(r.size), 12);
        x.writeBigUInt64LE(BigInt(r.offset), 20);
        cd.push(x);
      }
    }
    const cdBuf = Buffer.concat(cd);
    const tail: Buffer[] = [cdBuf];
    const needZ64 = !!opts.zip64 || recs.some((r) => r.zip64) || cdStart >= U32_MAX || recs.length >= 0xffff;
    if (needZ64) {
      const z = Buffer.alloc(56);
      z.writeUInt32LE(0x06064b50, 0);
      z.writeBigUInt64LE(44n, 4);
      z.writeUInt16LE(45, 12);
      z.writeUInt16LE(45, 14);
      z.writeUInt32LE(0, 16);
      z.writeUInt32LE(0, 20);
      z.writeBigUInt64LE(BigInt(recs.length), 24);
      z.writeBigUInt64LE(BigInt(recs.length), 32);
      z.writeBigUInt64LE(BigInt(cdBuf.length), 40);
      z.writeBigUInt64LE(BigInt(cdStart), 48);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(0x07064b50, 0);
      loc.writeUInt32LE(0, 4);
      loc.writeBigUInt64LE(BigInt(cdStart + cdBuf.length), 8);
      loc.writeUInt32LE(1, 16);
      tail.push(z, loc);
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(needZ64 ? 0xffff : recs.length, 8);
    eocd.writeUInt16LE(needZ64 ? 0xffff : recs.length, 10);
    eocd.writeUInt32LE(needZ64 ? U32_MAX : cdBuf.length, 12);
    eocd.writeUInt32LE(needZ64 ? U32_MAX : cdStart, 16);
    tail.push(eocd);
    const t = Buffer.concat(tail);
    await writeAt(fh, t, cdStart);
    size = cdStart + t.length;
  });
  return { path, size };
}
