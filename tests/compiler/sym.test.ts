import { describe, expect, it } from 'vitest';
import { Sym } from '../../compiler/sym.ts';

describe('symbolic floor division', () => {
  it('folds nested floors: floor(floor(H/2)/2)/2 is floor(H/8)', () => {
    const H = Sym.sym('H');
    const three = H.floorDiv(2).floorDiv(2).floorDiv(2);
    expect(three.toString()).toBe(H.floorDiv(8).toString());
    expect(three.equals(H.floorDiv(8))).toBe(true);
    expect(H.floorDiv(3).floorDiv(5).toString()).toBe(H.floorDiv(15).toString());
  });
  it('agrees with integer arithmetic on every H in 0..200 (nested floors of 2, 3 and 5)', () => {
    for (const [m, k] of [[2, 2], [2, 4], [3, 5], [5, 3]] as const) {
      for (let h = -20; h <= 200; h++) expect(Math.floor(Math.floor(h / m) / k)).toBe(Math.floor(h / (m * k)));
      expect(Sym.sym('H').floorDiv(m).floorDiv(k).toString()).toBe(Sym.sym('H').floorDiv(m * k).toString());
    }
  });
});

describe('symbolic floor division after an exact offset', () => {
  it('floor((floor(H/2) - 2)/2) + 1 is floor(H/4) (a padded stride-2 conv twice)', () => {
    const H = Sym.sym('H');
    const conv = (x: Sym) => x.add(1).sub(3).floorDiv(2).add(1);
    expect(conv(conv(H)).toString()).toBe(H.floorDiv(4).toString());
    for (let h = 2; h <= 100; h++) expect(Math.floor((Math.floor((h - 2) / 2) + 1 - 2) / 2) + 1).toBe(Math.floor(h / 4));
  });
});

describe('symbolic floor division with a constant remainder', () => {
  it('floor((32*h - 1)/2) is 16*h - 1 (a stride-2 conv with padding 1 on 32*h)', () => {
    const h = Sym.sym('h');
    expect(h.scale(32).sub(1).floorDiv(2).toString()).toBe(h.scale(16).sub(1).toString());
    const conv = (x: Sym) => x.add(2).sub(3).floorDiv(2).add(1);
    expect(conv(h.scale(32)).toString()).toBe(h.scale(16).toString());
    for (let v = 1; v <= 50; v++) expect(Math.floor((32 * v - 1) / 2)).toBe(16 * v - 1);
  });
});

describe('symbolic algebra with the constant fast paths and the printed-form cache', () => {
  // random polynomials over B, T, H (constants included, so the fast paths and the shared small
  // constants are exercised); every result must agree with integer arithmetic and print canonically
  const S = ['B', 'T', 'H'].map((n) => Sym.sym(n));
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const poly = (): Sym => {
    let p = Sym.const(rnd(9) - 4);
    for (let i = rnd(3); i > 0; i--) p = p.add(S[rnd(3)]!.mul(rnd(5) - 2));
    if (rnd(3) === 0) p = p.mul(S[rnd(3)]!);
    return p;
  };
  it('add, sub, mul and scale agree with integers, and equal results print the same', () => {
    for (let n = 0; n < 400; n++) {
      const a = poly();
      const b = poly();
      const k = rnd(7) - 3;
      const env = new Map([['B', rnd(9) - 4], ['T', rnd(9) - 4], ['H', rnd(9) - 4]]);
      const z = (x: number) => (x === 0 ? 0 : x); // -0 is 0
      const ev = (x: Sym) => z(x.evaluate(env)!);
      expect(ev(a.add(b))).toBe(z(ev(a) + ev(b)));
      expect(ev(a.sub(b))).toBe(z(ev(a) - ev(b)));
      expect(ev(a.mul(b))).toBe(z(ev(a) * ev(b)));
      expect(ev(a.scale(k))).toBe(z(ev(a) * k));
      expect(a.mul(b).toString()).toBe(b.mul(a).toString());
      expect(a.add(b).equals(b.add(a))).toBe(true);
      expect(a.sub(a).toString()).toBe('0');
      expect(a.mul(Sym.const(1))).toBe(a);
    }
  });
});
