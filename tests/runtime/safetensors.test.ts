import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type DType, DTYPE_SIZE, DTYPES } from '../../core/dtype.ts';
import { openSafetensors, SafetensorsError } from '../../runtime/formats/safetensors.ts';
import { writeSafetensors, writeShardedSafetensors, type WriterTensor } from '../../runtime/formats/safetensors-writer.ts';

const FIX = join(import.meta.dirname, '../fixtures/ckpt');
const ref = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'sorac-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Build a raw safetensors file from a header object and data bytes. */
function raw(header: unknown, data: Uint8Array, opts: { lenOverride?: bigint; headerText?: string } = {}): Buffer {
  const text = opts.headerText ?? JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lenOverride ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

async function ruleOf(buf: Uint8Array): Promise<string> {
  const p = join(tmp, `case-${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(p, buf);
  try {
    const f = await openSafetensors(p);
    await f.close();
    return 'ok';
  } catch (e) {
    if (e instanceof SafetensorsError) return e.rule;
    throw e;
  } finally {
    rmSync(p, { force: true });
  }
}

describe('safetensors reader on torch-made fixtures', () => {
  it('reads keys, shapes, dtypes and exact bytes (bf16, bool, scalar, empty)', async () => {
    const f = await openSafetensors(join(FIX, 'safetensors/model.safetensors'));
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.tensors.size).toBe(Object.keys(ref.sd).length);
    for (const [k, r] of Object.entries<any>(ref.sd)) {
      const t = f.tensors.get(k)!;
      expect(t.shape).toEqual(r.shape);
      expect(hex(await f.read(k))).toBe(r.hex);
    }
    expect(f.tensors.get('bf16.weight')!.dtype).toBe('bf16');
    expect(f.tensors.get('scalar')!.shape).toEqual([]);
    expect(f.tensors.get('empty')!.byteLength).toBe(0);
    await f.close();
  });
});

describe('safetensors validation rules', () => {
  const d8 = new Uint8Array(8);
  const cases: [string, Buffer | Uint8Array, string][] = [
    ['too-small', new Uint8Array(5), 'too-small'],
    ['header too large', raw({}, d8, { lenOverride: 100_000_001n }), 'header-too-large'],
    ['header out of bounds', raw({}, d8, { lenOverride: 1000n }), 'header-out-of-bounds'],
    ['not utf8', raw(null, new Uint8Array(), { headerText: '{"a\udc00":1}' }).fill(0xff, 9, 11), 'header-utf8'],
    ['leading whitespace', raw(null, new Uint8Array(), { headerText: ' {}' }), 'header-start'],
    ['bad json', raw(null, new Uint8Array(), { headerText: '{"a":' }), 'header-json'],
    ['duplicate key', raw(null, d8, { headerText: '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' }), 'duplicate-key'],
    ['metadata non-string', raw({ __metadata__: { a: 1 } }, new Uint8Array()), 'metadata'],
    ['entry not object', raw({ a: 3 }, new Uint8Array()), 'tensor-entry'],
    ['unknown field in an entry (ignored, like the reference)', raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8], x: 1 } }, d8), 'ok'],
    ['missing dtype', raw({ a: { shape: [2], data_offsets: [0, 8] } }, d8), 'dtype'],
    ['unknown dtype', raw({ a: { dtype: 'F33', shape: [2], data_offsets: [0, 8] } }, d8), 'dtype'],
    ['valid but unsupported dtype', raw({ a: { dtype: 'U32', shape: [2], data_offsets: [0, 8] } }, d8), 'dtype-unsupported'],
    ['bad shape', raw({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d8), 'shape'],
    ['float in shape', raw(null, d8, { headerText: '{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}' }), 'shape'],
    ['exponent in offsets', raw(null, d8, { headerText: '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}' }), 'offsets'],
    ['negative zero', raw(null, d8, { headerText: '{"a":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}' }), 'offsets'],
    ['u64 offsets beyond 2^53', raw(null, d8, { headerText: '{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,8]}}' }), 'offsets'],
    ['bad offsets', raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, d8), 'offsets'],
    ['end < begin', raw({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, d8), 'offsets'],
    ['numel overflow', raw({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, d8), 'numel-overflow'],
    ['sub-byte misaligned', raw({ a: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, new Uint8Array(2)), 'misaligned'],
    ['size mismatch', raw({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8), 'size-mismatch'],
    ['overlap', raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d8), 'overlap'],
    ['gap', raw({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d8), 'gap'],
    ['truncated', raw({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d8), 'truncated'],
    ['trailing bytes', raw({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, d8), 'trailing-bytes'],
    ['valid', raw({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, d8), 'ok'],
  ];
  for (const [name, buf, rule] of cases) {
    it(`${name} → ${rule}`, async () => {
      expect(await ruleOf(buf)).toBe(rule);
    });
  }
  it('an empty header object is a valid, empty file', async () => {
    expect(await ruleOf(raw(null, new Uint8Array(), { headerText: '{}' }))).toBe('ok');
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests
const dtypeArb = fc.constantFrom<DType>(...DTYPES);
const tensorArb = fc
  .record({ dtype: dtypeArb, shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => ({ dtype, shape, data }));
  });
const keyArb = fc.string({ minLength: 1, maxLength: 12 }).filter((k) => k !== '__metadata__');
const dictArb = fc.dictionary(keyArb, tensorArb, { maxKeys: 6 });
const metaArb = fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 8 }), { maxKeys: 3 });

describe('safetensors properties', () => {
  it('writer → reader round-trips random tensors (bytes, shapes, dtypes, metadata, alignment)', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(dictArb, metaArb, fc.boolean(), async (dict, meta, chunked) => {
        const p = join(tmp, `rt-${i++}.safetensors`);
        const tensors = new Map<string, WriterTensor>();
        for (const [k, v] of Object.entries(dict)) {
          // stream in small chunks half the time
          const data = chunked ? (async function* () { for (let o = 0; o < v.data.length; o += 3) yield v.data.subarray(o, o + 3); })() : v.data;
          tensors.set(k, { dtype: v.dtype, shape: v.shape, data });
        }
        await writeSafetensors(p, tensors, { metadata: meta });
        const bytes = readFileSync(p);
        expect(bytes[8]).toBe('{'.charCodeAt(0));
        const f = await openSafetensors(p);
        try {
          expect((8 + f.headerLength) % 8).toBe(0);
          expect({ ...f.metadata }).toEqual(Object.assign({ format: 'pt' }, Object.fromEntries(Object.entries(meta))));
          expect([...f.tensors.keys()].sort()).toEqual(Object.keys(dict).sort());
          for (const [k, v] of Object.entries(dict)) {
            const t = f.tensors.get(k)!;
            expect(t.dtype).toBe(v.dtype);
            expect(t.shape).toEqual(v.shape);
            expect(t.offset % DTYPE_SIZE[v.dtype]).toBe(0);
            expect(hex(await f.read(k))).toBe(hex(v.data));
          }
        } finally {
          await f.close();
          rmSync(p);
        }
      }),
      { numRuns: 60 },
    );
  });

  async function assertTypedOrValid(buf: Uint8Array, p: string) {
    writeFileSync(p, buf);
    try {
      const f = await openSafetensors(p);
      try {
        let total = 0;
        for (const k of f.tensors.keys()) total += (await f.read(k)).length;
        expect(8 + f.headerLength + total).toBe(buf.length);
      } finally {
        await f.close();
      }
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      expect(typeof e.rule).toBe('string');
    }
  }

  it('random single-byte mutations are read or rejected with a typed SafetensorsError', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(dictArb, fc.nat(), fc.integer({ min: 0, max: 255 }), async (dict, where, byte) => {
        const p = join(tmp, `mut-${i++}.safetensors`);
        const tensors = new Map<string, WriterTensor>(Object.entries(dict));
        await writeSafetensors(p, tensors);
        const buf = readFileSync(p);
        const dataStart = 8 + Number(buf.readBigUInt64LE(0));
        const pos = where % buf.length;
        buf[pos] = byte;
        await assertTypedOrValid(buf, p);
        // a mutation in the data area leaves the header (keys/shapes) readable and identical
        if (pos >= dataStart) {
          const f = await openSafetensors(p);
          expect([...f.tensors.keys()].sort()).toEqual(Object.keys(dict).sort());
          await f.close();
        }
        rmSync(p, { force: true });
      }),
      { numRuns: 300 },
    );
  });

  it('random edits of a valid header (insert/delete/replace, length prefix adjusted or not) are typed errors or valid files', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(
        dictArb,
        fc.array(fc.record({ at: fc.nat(), del: fc.integer({ min: 0, max: 4 }), ins: fc.string({ maxLength: 4 }) }), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.integer({ min: -16, max: 16 }),
        async (dict, edits, fixLength, lenDelta) => {
          const p = join(tmp, `hedit-${i++}.safetensors`);
          await writeSafetensors(p, new Map<string, WriterTensor>(Object.entries(dict)));
          const buf = readFileSync(p);
          const n = Number(buf.readBigUInt64LE(0));
          let text = buf.subarray(8, 8 + n).toString('utf8');
          for (const e of edits) {
            const at = e.at % (text.length + 1);
            text = text.slice(0, at) + e.ins + text.slice(at + e.del);
          }
          const h = Buffer.from(text, 'utf8');
          const len = Buffer.alloc(8);
          len.writeBigUInt64LE(BigInt(Math.max(0, (fixLength ? h.length : n) + (fixLength ? 0 : lenDelta))));
          await assertTypedOrValid(Buffer.concat([len, h, buf.subarray(8 + n)]), p);
          rmSync(p, { force: true });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random header text and length prefixes never crash, hang or over-allocate', async () => {
    let i = 0;
    const headerText = fc.oneof(
      fc.json(),
      fc.string({ maxLength: 40 }),
      fc.record({ a: fc.record({ dtype: fc.constantFrom('F32', 'BF16', 'F8_E4M3', 'X'), shape: fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 3 }), data_offsets: fc.array(fc.oneof(fc.integer(), fc.bigInt({ min: 0n, max: 2n ** 64n })), { maxLength: 3 }) }) }).map((o) => JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))),
    );
    await fc.assert(
      fc.asyncProperty(headerText, fc.option(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 64n }))), fc.uint8Array({ maxLength: 32 }), async (text, len, data) => {
        const p = join(tmp, `hdr-${i++}.safetensors`);
        await assertTypedOrValid(raw(null, data, { headerText: text, lenOverride: len ?? undefined }), p);
        rmSync(p, { force: true });
      }),
      { numRuns: 400 },
    );
  });
});

describe('safetensors writer', () => {
  it('handles awkward tensor and metadata names (__proto__, unicode)', async () => {
    const p = join(tmp, 'proto.safetensors');
    const tensors = new Map<string, WriterTensor>([
      ['__proto__', { dtype: 'f32', shape: [1], data: new Uint8Array(4).fill(1) }],
      ['ünï.κ', { dtype: 'u8', shape: [2], data: new Uint8Array([1, 2]) }],
    ]);
    await writeSafetensors(p, tensors, { metadata: { __proto__x: 'y' } });
    const f = await openSafetensors(p);
    expect([...f.tensors.keys()].sort()).toEqual(['__proto__', 'ünï.κ']);
    expect(hex(await f.read('__proto__'))).toBe('01010101');
    await f.close();
  });

  it('is atomic: a failing source leaves no target and no temp file', async () => {
    const dir = mkdtempSync(join(tmp, 'atomic-'));
    const p = join(dir, 'x.safetensors');
    await expect(
      writeSafetensors(p, {
        a: { dtype: 'f32', shape: [4], data: async function* () { yield new Uint8Array(8); throw new Error('source failed'); } },
      }),
    ).rejects.toThrow('source failed');
    expect(readdirSync(dir)).toEqual([]);
    await expect(writeSafetensors(p, { a: { dtype: 'f32', shape: [4], data: new Uint8Array(12) } })).rejects.toThrow(/expected 16/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writes HF-style shards with an index', async () => {
    const dir = mkdtempSync(join(tmp, 'shard-'));
    const tensors: Record<string, WriterTensor> = {};
    for (let i = 0; i < 5; i++) tensors[`layer.${i}.w`] = { dtype: 'f32', shape: [10], data: new Uint8Array(40).fill(i) };
    const r = await writeShardedSafetensors(dir, tensors, { maxShardSize: 100 });
    expect(r.shards.map((s) => s.path.split('/').pop())).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const idx = JSON.parse(readFileSync(r.indexPath, 'utf8'));
    expect(idx.metadata.total_size).toBe(200);
    expect(Object.keys(idx.weight_map)).toEqual(Object.keys(tensors).sort());
  });
});
