/**
 * Symbolic integer dimensions: canonical polynomials over symbols (B, T, H, ...) and opaque
 * atoms for floor division / modulo by constants. Canonical form makes structural equality
 * the same as string equality, which is what shape checking needs.
 */

export type Atom = { readonly kind: 'sym'; readonly name: string } | { readonly kind: 'fdiv' | 'mod'; readonly num: Sym; readonly den: number };

interface Term {
  readonly coeff: number;
  /** sorted atom keys (with repetition) */
  readonly atoms: readonly string[];
}

const atomTable = new Map<string, Atom>();

function atomKey(a: Atom): string {
  return a.kind === 'sym' ? a.name : `${a.kind === 'fdiv' ? 'floor' : 'mod'}(${a.num.toString()},${a.den})`;
}

export class Sym {
  /** The printed (canonical) form, computed once: a Sym never changes after construction. */
  private str: string | undefined;
  /** key: atoms joined by '*', '' for the constant term */
  private constructor(private readonly terms: ReadonlyMap<string, Term>) {}

  static const(n: number): Sym {
    if (!Number.isInteger(n)) throw new Error(`non-integer dimension ${n}`);
    if (n >= SMALL_MIN && n <= SMALL_MAX) return (SMALL[n - SMALL_MIN] ??= Sym.makeConst(n));
    return Sym.makeConst(n);
  }
  private static makeConst(n: number): Sym {
    return n === 0 ? new Sym(new Map()) : new Sym(new Map([['', { coeff: n, atoms: [] }]]));
  }
  static sym(name: string): Sym {
    // atoms are keyed by their printed form: a symbol must never look like a floor()/mod() atom
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`internal: invalid symbol name ${JSON.stringify(name)}`);
    return Sym.atom({ kind: 'sym', name });
  }
  private static atom(a: Atom): Sym {
    const k = atomKey(a);
    atomTable.set(k, a);
    return new Sym(new Map([[k, { coeff: 1, atoms: [k] }]]));
  }

  isConst(): boolean {
    return this.terms.size === 0 || (this.terms.size === 1 && this.terms.has(''));
  }
  /** The constant value, or undefined when symbolic. */
  value(): number | undefined {
    if (this.terms.size === 0) return 0;
    if (this.isConst()) return this.terms.get('')!.coeff;
    return undefined;
  }
  constPart(): number {
    return this.terms.get('')?.coeff ?? 0;
  }

  add(o: Sym | number): Sym {
    const b = typeof o === 'number' ? Sym.const(o) : o;
    if (b.terms.size === 0) return this;
    if (this.terms.size === 0) return b;
    const x = this.value();
    if (x !== undefined) {
      const y = b.value();
      if (y !== undefined) return Sym.const(x + y);
    }
    const m = new Map(this.terms);
    for (const [k, t] of b.terms) {
      const prev = m.get(k);
      const c = (prev?.coeff ?? 0) + t.coeff;
      if (c === 0) m.delete(k);
      else m.set(k, { coeff: c, atoms: t.atoms });
    }
    return new Sym(m);
  }
  neg(): Sym {
    return this.scale(-1);
  }
  sub(o: Sym | number): Sym {
    return this.add(typeof o === 'number' ? Sym.const(-o) : o.neg());
  }
  scale(k: number): Sym {
    if (k === 0) return Sym.const(0);
    if (k === 1) return this;
    const v = this.value();
    if (v !== undefined) return Sym.const(v * k);
    const m = new Map<string, Term>();
    for (const [key, t] of this.terms) m.set(key, { coeff: t.coeff * k, atoms: t.atoms });
    return new Sym(m);
  }
  mul(o: Sym | number): Sym {
    if (typeof o === 'number') return this.scale(o);
    const ov = o.value();
    if (ov !== undefined) return this.scale(ov);
    const v = this.value();
    if (v !== undefined) return o.scale(v);
    // the sum of the term products, accumulated in one map (what adding them one by one gives)
    const m = new Map<string, Term>();
    for (const a of this.terms.values()) {
      for (const b of o.terms.values()) {
        const atoms = [...a.atoms, ...b.atoms].sort();
        const key = atoms.join('*');
        const c = (m.get(key)?.coeff ?? 0) + a.coeff * b.coeff;
        if (c === 0) m.delete(key);
        else m.set(key, { coeff: c, atoms });
      }
    }
    return new Sym(m);
  }
  /** Greatest common divisor of all coefficients (0 for the zero polynomial). */
  content(): number {
    let g = 0;
    for (const t of this.terms.values()) g = gcd(g, Math.abs(t.coeff));
    return g;
  }
  /** True when this is provably a multiple of k for every value of the symbols. */
  divisibleBy(k: number): boolean {
    if (k === 0) return false;
    const c = this.content();
    return c === 0 || c % k === 0;
  }
  /** floor(this / k) for a positive integer k. Exact when provably divisible. */
  floorDiv(k: number): Sym {
    if (k <= 0 || !Number.isInteger(k)) throw new Error(`floor division by ${k}`);
    if (k === 1) return this;
    if (this.divisibleBy(k)) {
      const m = new Map<string, Term>();
      for (const [key, t] of this.terms) m.set(key, { coeff: t.coeff / k, atoms: t.atoms });
      return new Sym(m);
    }
    const v = this.value();
    if (v !== undefined) return Sym.const(Math.floor(v / k));
    // pull out the part that divides exactly: floor((k*a + r)/k) = a + floor(r/k)
    const exact = new Map<string, Term>();
    const rest = new Map<string, Term>();
    for (const [key, t] of this.terms) {
      if (t.coeff % k === 0) exact.set(key, { coeff: t.coeff / k, atoms: t.atoms });
      else {
        const q = Math.floor(t.coeff / k);
        if (q !== 0 && key !== '') exact.set(key, { coeff: q, atoms: t.atoms });
        rest.set(key, { coeff: key !== '' ? t.coeff - q * k : t.coeff, atoms: t.atoms });
      }
    }
    const restSym = new Sym(rest);
    // only a constant left over (every symbolic term divided exactly): floor((k*a + c)/k) = a + floor(c/k)
    const rv = restSym.value();
    if (rv !== undefined) return new Sym(exact).add(Math.floor(rv / k));
    // nested floors fold: floor(floor(r/m)/k) = floor(r/(m*k)) for integer r and positive m, k
    // (so three stride-2 downsamplings and one // 8 give the same dimension)
    if (rest.size === 1) {
      const [t] = rest.values();
      const a = t!.coeff === 1 && t!.atoms.length === 1 ? atomTable.get(t!.atoms[0]!) : undefined;
      if (a?.kind === 'fdiv') return new Sym(exact).add(a.num.floorDiv(a.den * k));
    }
    return new Sym(exact).add(Sym.atom({ kind: 'fdiv', num: restSym, den: k }));
  }
  ceilDiv(k: number): Sym {
    return this.add(k - 1).floorDiv(k);
  }
  mod(k: number): Sym {
    if (k <= 0 || !Number.isInteger(k)) throw new Error(`modulo by ${k}`);
    if (this.divisibleBy(k)) return Sym.const(0);
    const v = this.value();
    if (v !== undefined) return Sym.const(((v % k) + k) % k);
    return this.sub(this.floorDiv(k).scale(k));
  }
  /** Exact division by a monomial or constant; undefined when not provably exact. */
  divExact(o: Sym): Sym | undefined {
    const ov = o.value();
    if (ov !== undefined) {
      if (ov === 0) return undefined;
      if (!this.divisibleBy(Math.abs(ov))) return undefined;
      return this.floorDiv(Math.abs(ov)).scale(Math.sign(ov));
    }
    if (o.terms.size !== 1) return this.equals(o) ? Sym.const(1) : undefined;
    const [den] = o.terms.values();
    const m = new Map<string, Term>();
    for (const t of this.terms.values()) {
      if (t.coeff % den!.coeff !== 0) return undefined;
      const atoms = [...t.atoms];
      for (const a of den!.atoms) {
        const i = atoms.indexOf(a);
        if (i < 0) return undefined;
        atoms.splice(i, 1);
      }
      m.set(atoms.join('*'), { coeff: t.coeff / den!.coeff, atoms });
    }
    return new Sym(m);
  }
  equals(o: Sym): boolean {
    return this === o || this.toString() === o.toString();
  }
  /** Symbol names this expression depends on. */
  symbols(): Set<string> {
    const out = new Set<string>();
    for (const t of this.terms.values())
      for (const k of t.atoms) {
        const a = atomTable.get(k)!;
        if (a.kind === 'sym') out.add(a.name);
        else for (const s of a.num.symbols()) out.add(s);
      }
    return out;
  }
  /** Evaluate with concrete symbol values; undefined if a symbol is unbound. */
  evaluate(env: ReadonlyMap<string, number>): number | undefined {
    let sum = 0;
    for (const t of this.terms.values()) {
      let p = t.coeff;
      for (const k of t.atoms) {
        const a = atomTable.get(k)!;
        let v: number | undefined;
        if (a.kind === 'sym') v = env.get(a.name);
        else {
          const n = a.num.evaluate(env);
          v = n === undefined ? undefined : a.kind === 'fdiv' ? Math.floor(n / a.den) : ((n % a.den) + a.den) % a.den;
        }
        if (v === undefined) return undefined;
        p *= v;
      }
      sum += p;
    }
    return sum;
  }
  /** Walk the structure for lowering: constant + sum of coeff * product(atoms). */
  structure(): { constant: number; terms: { coeff: number; atoms: Atom[] }[] } {
    const terms: { coeff: number; atoms: Atom[] }[] = [];
    let constant = 0;
    for (const [k, t] of [...this.terms.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (k === '') constant = t.coeff;
      else terms.push({ coeff: t.coeff, atoms: t.atoms.map((x) => atomTable.get(x)!) });
    }
    return { constant, terms };
  }
  toString(): string {
    return (this.str ??= this.print());
  }
  private print(): string {
    if (this.terms.size === 0) return '0';
    const parts: string[] = [];
    const keys = [...this.terms.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : a > b ? 1 : 0));
    for (const k of keys) {
      const t = this.terms.get(k)!;
      const body = t.atoms.map((a) => (atomTable.get(a)!.kind === 'sym' ? a : a)).join('*');
      let s: string;
      if (body === '') s = String(Math.abs(t.coeff));
      else if (Math.abs(t.coeff) === 1) s = body;
      else s = `${Math.abs(t.coeff)}*${body}`;
      parts.push((t.coeff < 0 ? '-' : parts.length ? '+' : '') + s);
    }
    return parts.join('');
  }
}

/** Shared constants for the small integers shapes are made of (a Sym is immutable). */
const SMALL_MIN = -16;
const SMALL_MAX = 4096;
const SMALL: (Sym | undefined)[] = [];

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function symOf(x: Sym | number): Sym {
  return typeof x === 'number' ? Sym.const(x) : x;
}
