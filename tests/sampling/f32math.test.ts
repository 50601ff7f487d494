/**
 * float32 kernels of the host math: fmaf (single rounding, incl. the double-rounding midpoints a naive
 * fround(a*b + c) gets wrong) and SLEEF's expf as torch's CPU kernel evaluates torch.exp (values recorded from
 * torch 1.13 where a correctly rounded exp differs).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fmaf, sleefExpf, torchExpAt } from '../../runtime/sampling/f32math.ts';

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;

/** x = m·2^e exactly, for float32-representable x (m an integer). */
function parts(x: number): [bigint, number] {
  if (x === 0) return [0n, 0];
  let e = 0;
  let m = x;
  while (!Number.isInteger(m)) {
    m *= 2;
    e--;
  }
  return [BigInt(m), e];
}

/** a·b + c exactly, rounded once to float32 (ties to even). */
function exactFmaf(a: number, b: number, c: number): number {
  const [ma, ea] = parts(a);
  const [mb, eb] = parts(b);
  const [mc, ec] = parts(c);
  const e = Math.min(ea + eb, ec);
  const sum = ((ma * mb) << BigInt(ea + eb - e)) + (mc << BigInt(ec - e));
  if (sum === 0n) return a * b + c;
  const neg = sum < 0n;
  let m = neg ? -sum : sum;
  let sh = m.toString(2).length - 24;
  if (sh > 0) {
    const q = m >> BigInt(sh);
    const rem = m - (q << BigInt(sh));
    const half = 1n << BigInt(sh - 1);
    m = rem > half || (rem === half && (q & 1n) === 1n) ? q + 1n : q;
  } else sh = 0;
  const v = Number(m) * 2 ** (e + sh);
  return neg ? -v : v;
}

describe('fmaf', () => {
  it('equals a·b + c computed exactly (BigInt) and rounded once to float32, on random float32 triples', () => {
    const mag = fc.tuple(fc.integer({ min: -(2 ** 23) + 1, max: 2 ** 23 - 1 }), fc.integer({ min: -30, max: 30 })).map(([m, e]) => m * 2 ** e);
    fc.assert(
      fc.property(mag, mag, mag, (a, b, c) => {
        expect(fmaf(a, b, c)).toBe(exactFmaf(a, b, c));
      }),
      { numRuns: 20000 },
    );
  });
  it('rounds a product that lands just off a float32 midpoint the right way', () => {
    // a·b = 1 + 2^-24 + 2^-48 exactly (a = 1 + 2^-23, b = 1 + ...): c = -2^-48·... constructed below
    const a = 1 + 2 ** -12;
    const b = 1 + 2 ** -12; // a·b = 1 + 2^-11 + 2^-24 exactly
    // + c = 2^-60: true value 1 + 2^-11 + 2^-24 + 2^-60 lies just above the midpoint 1 + 2^-11 + 2^-24
    const c = 2 ** -60;
    expect(Math.fround(a * b + c)).toBe(1 + 2 ** -11); // the double sum drops 2^-60, then ties to even: wrong
    expect(fmaf(a, b, c)).toBe(1 + 2 ** -11 + 2 ** -23); // single rounding: up
    expect(fmaf(a, b, -c)).toBe(1 + 2 ** -11);
    expect(fmaf(a, b, 0)).toBe(1 + 2 ** -11); // a true tie: to even
  });
});

describe('torch.exp (SLEEF expf u10)', () => {
  it('reproduces torch 1.13 values where a correctly rounded exp differs', () => {
    const cases = [[0xc0179b18, 0x3dbfaba6], [0xc0fd4598, 0x39bf8802], [0xc17960a4, 0x3436c978], [0xc16ce85b, 0x34c73f02], [0xbf876f50, 0x3eb1b9ba], [0xc0b9e7c4, 0x3b448795]];
    for (const [x, y] of cases) {
      expect(sleefExpf(f32(x!))).toBe(f32(y!));
      expect(Math.fround(Math.exp(f32(x!)))).not.toBe(f32(y!));
    }
  });
  it('special values, and the std::exp tail of a tensor', () => {
    expect(sleefExpf(0)).toBe(1);
    expect(sleefExpf(-200)).toBe(0);
    expect(sleefExpf(200)).toBe(Infinity);
    expect(sleefExpf(Number.NaN)).toBeNaN();
    const x = f32(0xc0179b18);
    expect(torchExpAt(x, 15, 33)).toBe(sleefExpf(x));
    expect(torchExpAt(x, 32, 33)).toBe(Math.fround(Math.exp(x)));
  });
});
