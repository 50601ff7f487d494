/**
 * GraphBuilder: accumulates ONNX-level nodes while the tracer evaluates an entry point.
 * Also owns the lowering of symbolic dimensions to runtime int64 values.
 */
import { type DType, DTYPE_SIZE } from '../core/dtype.ts';
import type { IrAttr, IrConstant, IrDim, IrGraph, IrNode, IrSourceRef, IrValue, IrWeight } from '../core/ir.ts';
import { Sym } from './sym.ts';

export type AttrInput = number | number[] | string | { floats: number[] } | { float: number } | IrAttr;

function toAttr(v: AttrInput): IrAttr {
  if (typeof v === 'number') return { kind: 'int', value: v };
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (Array.isArray(v)) return { kind: 'ints', value: v };
  if ('floats' in v) return { kind: 'floats', value: v.floats };
  if ('float' in v) return { kind: 'float', value: v.float };
  return v;
}

export interface SymbolSource {
  readonly input: IrValue;
  readonly axis: number;
  /** the input's dimension is `divisor * symbol` */
  readonly divisor: number;
  readonly offset: number;
}

export class GraphBuilder {
  private nextId = 0;
  readonly nodes: IrNode[] = [];
  readonly constants = new Map<IrValue, IrConstant>();
  readonly weights: IrWeight[] = [];
  private readonly weightByKey = new Map<string, IrValue>();
  readonly inputs: IrValue[] = [];
  readonly symbols = new Map<string, SymbolSource>();
  /** Input symbols the caller fixed to sizes (traceEntry's `bind`): concrete in this graph. */
  readonly fixed = new Set<string>();
  private readonly dimCache = new Map<string, IrValue>();
  private readonly constCache = new Map<string, IrValue>();
  private readonly shapeCache = new Map<IrValue, IrValue>();
  private readonly usedNames = new Set<string>();
  /** Per name base, the suffix uniqueName tries next (every smaller suffix is taken; names are never freed). */
  private readonly nextSuffix = new Map<string, number>();
  /** constI64's small constants by shape and values (the same IrValue constant()'s cache holds). */
  private readonly i64Cache = new Map<string, IrValue>();
  /** Current module path, for node scopes and value names. */
  scope = '';
  source: IrSourceRef | undefined;
  /** Extra graph metadata set by declarations in the entry body (e.g. `sorac.micro_batch` from micro_batch()). */
  readonly annotations: Record<string, string> = {};
  /** every float->float Cast with why it was placed (for --explain-dtypes) */
  readonly casts: { value: IrValue; from: DType; to: DType; reason: string; source?: IrSourceRef; scope: string }[] = [];

  recordCast(value: IrValue, from: DType, to: DType, reason: string): void {
    this.casts.push({ value, from, to, reason, ...(this.source ? { source: this.source } : {}), scope: this.scope });
  }

  constructor(
    readonly name: string,
    readonly opset: number,
  ) {}

  private uniqueName(base: string): string {
    let n = base;
    if (this.usedNames.has(n)) {
      // the smallest free `${base}_${i}`, i >= 1, without rescanning the suffixes taken before
      let i = this.nextSuffix.get(base) ?? 1;
      while (this.usedNames.has((n = `${base}_${i}`))) i++;
      this.nextSuffix.set(base, i + 1);
    }
    this.usedNames.add(n);
    return n;
  }

  value(dtype: DType, shape: readonly IrDim[], hint?: string): IrValue {
    const id = this.nextId++;
    const name = this.uniqueName(hint ?? `${this.scope ? this.scope + '/' : ''}v${id}`);
    return { id, name, dtype, shape };
  }

  input(name: string, dtype: DType, shape: readonly IrDim[]): IrValue {
    const v = this.value(dtype, shape, name);
    this.inputs.push(v);
    return v;
  }

  weight(key: string, dtype: DType, shape: readonly number[]): IrValue {
    const have = this.weightByKey.get(key);
    if (have) return have;
    const v = this.value(dtype, shape, key);
    this.weights.push({ value: v, key });
    this.weightByKey.set(key, v);
    return v;
  }

  node(op: string, inputs: (IrValue | null)[], outputs: IrValue[], attrs: Record<string, AttrInput> = {}): void {
    const a: Record<string, IrAttr> = {};
    for (const k of Object.keys(attrs).sort()) a[k] = toAttr(attrs[k]!);
    this.nodes.push({ op, inputs, outputs, attrs: a, ...(this.source ? { source: this.source } : {}), ...(this.scope ? { scope: this.scope } : {}) });
  }

  /** Emit a single-output node and return its output. */
  op1(op: string, inputs: (IrValue | null)[], dtype: DType, shape: readonly IrDim[], attrs: Record<string, AttrInput> = {}): IrValue {
    const out = this.value(dtype, shape);
    this.node(op, inputs, [out], attrs);
    return out;
  }

  constant(c: IrConstant, hint?: string): IrValue {
    const key = c.data.length <= 64 ? `${c.dtype}|${c.shape.join(',')}|${Buffer.from(c.data).toString('base64')}` : undefined;
    const have = key !== undefined ? this.constCache.get(key) : undefined;
    if (have) return have;
    const v = this.value(c.dtype, c.shape, hint ?? `const${this.nextId}`);
    this.constants.set(v, c);
    if (key !== undefined) this.constCache.set(key, v);
    return v;
  }

  constI64(values: readonly number[], shape: readonly number[] = [values.length]): IrValue {
    // small ones (those constant() caches) looked up before encoding: the same value constant() returns
    const key = values.length <= 8 && values.every(Number.isSafeInteger) ? `${shape.join(',')}|${values.join(',')}` : undefined;
    const have = key !== undefined ? this.i64Cache.get(key) : undefined;
    if (have) return have;
    const data = new Uint8Array(values.length * 8);
    const dv = new DataView(data.buffer);
    values.forEach((x, i) => dv.setBigInt64(i * 8, BigInt(x), true));
    const v = this.constant({ dtype: 'i64', shape, data });
    if (key !== undefined) this.i64Cache.set(key, v);
    return v;
  }

  constScalar(value: number, dtype: DType): IrValue {
    return this.constant(encodeConstant([value], dtype, []));
  }

  /** Shape(x) as i64[rank], cached per value. */
  shapeOf(x: IrValue): IrValue {
    let s = this.shapeCache.get(x);
    if (!s) {
      s = this.op1('Shape', [x], 'i64', [x.shape.length]);
      this.shapeCache.set(x, s);
    }
    return s;
  }

  bindSymbol(name: string, src: SymbolSource): void {
    if (!this.symbols.has(name)) this.symbols.set(name, src);
  }

  /** A runtime int64 scalar (shape []) holding the value of a symbolic dimension. */
  dimScalar(d: Sym): IrValue {
    const c = d.value();
    if (c !== undefined) return this.constI64([c], []);
    const key = d.toString();
    const have = this.dimCache.get(key);
    if (have) return have;
    const st = d.structure();
    let acc: IrValue | undefined;
    for (const term of st.terms) {
      let prod: IrValue | undefined;
      for (const atom of term.atoms) {
        const av = this.atomScalar(atom);
        prod = prod ? this.op1('Mul', [prod, av], 'i64', []) : av;
      }
      if (term.coeff !== 1) prod = this.op1('Mul', [prod!, this.constI64([term.coeff], [])], 'i64', []);
      acc = acc ? this.op1('Add', [acc, prod!], 'i64', []) : prod;
    }
    if (st.constant !== 0) acc = this.op1('Add', [acc!, this.constI64([st.constant], [])], 'i64', []);
    this.dimCache.set(key, acc!);
    return acc!;
  }

  private atomScalar(atom: ReturnType<Sym['structure']>['terms'][number]['atoms'][number]): IrValue {
    if (atom.kind === 'sym') {
      const key = 'sym:' + atom.name;
      const have = this.dimCache.get(key);
      if (have) return have;
      const src = this.symbols.get(atom.name);
      if (!src) throw new Error(`internal: symbol ${atom.name} has no runtime source`);
      let v = this.op1('Gather', [this.shapeOf(src.input), this.constI64([src.axis], [])], 'i64', [], { axis: 0 });
      if (src.offset !== 0) v = this.op1('Sub', [v, this.constI64([src.offset], [])], 'i64', []);
      if (src.divisor !== 1) v = this.op1('Div', [v, this.constI64([src.divisor], [])], 'i64', []);
      this.dimCache.set(key, v);
      return v;
    }
    const num = this.dimScalar(atom.num);
    return this.op1(atom.kind === 'fdiv' ? 'Div' : 'Mod', [num, this.constI64([atom.den], [])], 'i64', []);
  }

  /** A runtime i64[rank] vector for a list of dims (constant when all are known). */
  shapeVector(dims: readonly (Sym | number)[]): IrValue {
    const syms = dims.map((d) => (typeof d === 'number' ? Sym.const(d) : d));
    if (syms.every((d) => d.isConst())) return this.constI64(syms.map((d) => d.value()!));
    const parts: IrValue[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) parts.push(this.constI64(run));
      run = [];
    };
    for (const d of syms) {
      const c = d.value();
      if (c !== undefined) run.push(c);
      else {
        flush();
        parts.push(this.op1('Unsqueeze', [this.dimScalar(d), this.constI64([0])], 'i64', [1]));
      }
    }
    flush();
    if (parts.length === 1) return parts[0]!;
    return this.op1('Concat', parts, 'i64', [dims.length], { axis: 0 });
  }

  finish(outputs: IrValue[], metadata: Record<string, string>): IrGraph {
    return { name: this.name, inputs: this.inputs, outputs, nodes: this.nodes, constants: this.constants, weights: this.weights, opset: this.opset, metadata: { ...this.annotations, ...metadata }, casts: this.casts };
  }
}

/** Encode numbers as a little-endian constant of the given dtype. */
export function encodeConstant(values: readonly number[], dtype: DType, shape: readonly number[]): IrConstant {
  const n = values.length;
  const data = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    switch (dtype) {
      case 'f32': dv.setFloat32(i * 4, x, true); break;
      case 'f64': dv.setFloat64(i * 8, x, true); break;
      case 'f16': dv.setUint16(i * 2, f32ToF16(x), true); break;
      case 'bf16': dv.setUint16(i * 2, f32ToBf16(x), true); break;
      case 'i64': dv.setBigInt64(i * 8, BigInt(Math.trunc(x)), true); break;
      case 'i32': dv.setInt32(i * 4, x, true); break;
      case 'i16': dv.setInt16(i * 2, x, true); break;
      case 'i8': dv.setInt8(i, x); break;
      case 'u8': dv.setUint8(i, x); break;
      case 'bool': dv.setUint8(i, x ? 1 : 0); break;
      default: throw new Error(`cannot encode constant of dtype ${dtype}`);
    }
  }
  return { dtype, shape, data };
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN
  const rounding = 0x7fff + ((u >>> 16) & 1);
  return ((u + rounding) >>> 16) & 0xffff;
}

export function f32ToF16(val: number): number {
  f32buf[0] = val;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  let exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  exp = exp - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return h;
}
