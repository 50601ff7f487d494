import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ConversionError,
  bf16BitsToF32,
  bitsToF32,
  convertBytes,
  f16BitsToF32,
  f16ToF32,
  f32BitsToBf16,
  f32BitsToF16,
  f32ToBf16,
  f32ToF16,
  f32ToF16Bits,
} from '../../core/convert.ts';

/** Independent f16 decoder (arithmetic, not bit tricks). */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** Reference RNE to a sorted table of finite non-negative representable values (index = bits). */
function rneRef(x: number, table: Float64Array, maxFinite: number, ulpAtMax: number): number {
  // returns bit index (non-negative magnitude), or -1 for overflow
  const a = Math.abs(x);
  if (a >= maxFinite + ulpAtMax / 2) return -1;
  let lo = 0;
  let hi = table.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid]! <= a) lo = mid;
    else hi = mid;
  }
  if (table[lo] === a) return lo;
  const dl = a - table[lo]!;
  const dh = table[hi]! - a;
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return lo % 2 === 0 ? lo : hi;
}

const F16_TABLE = Float64Array.from({ length: 0x7c00 }, (_, i) => f16Value(i));
const BF16_TABLE = Float64Array.from({ length: 0x7f80 }, (_, i) => bf16BitsToF32(i));

describe('f16', () => {
  it('decodes every f16 bit pattern like the arithmetic definition', () => {
    for (let h = 0; h < 0x10000; h++) {
      const a = f16BitsToF32(h);
      const b = f16Value(h);
      if (Number.isNaN(b)) expect(Number.isNaN(a)).toBe(true);
      else expect(a).toBe(b);
    }
  });

  it('round-trips every non-NaN f16 through f32 exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) continue;
      expect(f32BitsToF16(new Uint32Array(new Float32Array([f16BitsToF32(h)]).buffer)[0]!)).toBe(h);
    }
  });

  it('rounds f32 to nearest even (random bit patterns)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = bitsToF32(bits);
        const r = f32BitsToF16(bits);
        if (Number.isNaN(x)) {
          expect(r & 0x7c00).toBe(0x7c00);
          expect(r & 0x3ff).not.toBe(0);
          return;
        }
        if (!Number.isFinite(x)) {
          expect(r).toBe(x > 0 ? 0x7c00 : 0xfc00);
          return;
        }
        const ref = rneRef(x, F16_TABLE, 65504, 32);
        if (ref < 0) expect(r).toBe(-1);
        else expect(r & 0x7fff).toBe(ref);
        if (ref > 0) expect(r & 0x8000).toBe(x < 0 ? 0x8000 : 0);
      }),
      { numRuns: 20000 },
    );
  });

  it('handles ties, subnormals and the overflow edge', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even (1.0)
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie with zero -> even (0)
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(-(2 ** -14))).toBe(0x8400); // smallest normal
    expect(f32ToF16Bits(65519)).toBe(0x7bff); // below the rounding boundary
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to inf
    expect(() => f32ToF16(new Float32Array([1, 2, 65520]), { key: 'blocks.0.w' })).toThrow(
      /tensor "blocks\.0\.w": value 65520 at flat index 2 overflows float16/,
    );
    expect(f32ToF16(new Float32Array([-1e6]), { overflow: 'inf' })[0]).toBe(0xfc00);
    expect(f32ToF16(new Float32Array([Infinity]))[0]).toBe(0x7c00); // inf is not an overflow
  });
});

describe('bf16', () => {
  it('rounds f32 to nearest even (random bit patterns)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = bitsToF32(bits);
        const r = f32BitsToBf16(bits);
        if (Number.isNaN(x)) {
          expect(Number.isNaN(bf16BitsToF32(r))).toBe(true);
          expect(r & 0x8000).toBe((bits >>> 16) & 0x8000);
          return;
        }
        if (!Number.isFinite(x)) {
          expect(r).toBe(x > 0 ? 0x7f80 : 0xff80);
          return;
        }
        const ref = rneRef(x, BF16_TABLE, bf16BitsToF32(0x7f7f), 2 ** 120);
        expect(r & 0x7fff).toBe(ref < 0 ? 0x7f80 : ref);
      }),
      { numRuns: 20000 },
    );
  });

  it('widens exactly and round-trips', () => {
    const h = Uint16Array.from({ length: 0x10000 }, (_, i) => i).filter((i) => !((i & 0x7f80) === 0x7f80 && (i & 0x7f)));
    expect(f32ToBf16(bf16ToF32ViaBytes(h))).toEqual(h);
    expect(f32ToBf16(new Float32Array([1 + 2 ** -8]))[0]).toBe(0x3f80); // tie -> even
    expect(f32ToBf16(new Float32Array([1 + 3 * 2 ** -8]))[0]).toBe(0x3f82);
    expect(f32ToBf16(new Float32Array([NaN]))[0]! & 0x7fc0).toBe(0x7fc0);
  });
});

function bf16ToF32ViaBytes(h: Uint16Array): Float32Array {
  const b = convertBytes(new Uint8Array(h.buffer), 'bf16', 'f32');
  return new Float32Array(b.buffer, b.byteOffset, h.length);
}

describe('convertBytes', () => {
  it('converts between all float dtypes, handles unaligned views, rejects non-floats', () => {
    const vals = [0, -0, 1, -2.5, 3.140625, 65504, 2 ** -24, -Infinity];
    const f32 = new Uint8Array(new Float32Array(vals).buffer);
    const unaligned = new Uint8Array(f32.length + 1);
    unaligned.set(f32, 1);
    const f16 = convertBytes(unaligned.subarray(1), 'f32', 'f16');
    expect(Array.from(f16ToF32(new Uint16Array(f16.buffer, f16.byteOffset, vals.length)))).toEqual(vals);
    const back = convertBytes(f16, 'f16', 'f64');
    expect(Array.from(new Float64Array(back.buffer, back.byteOffset, vals.length))).toEqual(vals);
    expect(convertBytes(f32, 'f32', 'f32')).toBe(f32);
    expect(() => convertBytes(new Uint8Array(8), 'i64', 'f32', { key: 'k' })).toThrow(ConversionError);
  });

  it('f64 -> f16 / bf16 rounds once (no double rounding)', () => {
    // 1 + 2^-11 + 2^-40: just above the f16 tie; rounding to f32 first would land on the tie and go to even (down)
    const x = 1 + 2 ** -11 + 2 ** -40;
    const f16 = convertBytes(new Uint8Array(new Float64Array([x]).buffer), 'f64', 'f16');
    expect(new Uint16Array(f16.buffer, f16.byteOffset, 1)[0]).toBe(0x3c01);
    const y = 1 + 2 ** -8 + 2 ** -40;
    const bf = convertBytes(new Uint8Array(new Float64Array([y]).buffer), 'f64', 'bf16');
    expect(new Uint16Array(bf.buffer, bf.byteOffset, 1)[0]).toBe(0x3f81);
    expect(() => convertBytes(new Uint8Array(new Float64Array([1e300]).buffer), 'f64', 'f16', { key: 'big' })).toThrow(/"big".*overflows float16/);
  });
});
