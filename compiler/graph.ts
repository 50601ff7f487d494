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

/** What a value's name is made of, so that a replay can rebuild it for another call (GraphBuilder.replay). */
type NameSpec = { readonly k: 'scope'; readonly scope: string } | { readonly k: 'const' } | { readonly k: 'fixed'; readonly name: string };

type GraphCast = GraphBuilder['casts'][number];

/**
 * One change to the graph while a recording runs (GraphBuilder.beginRecording): everything a replay
 * needs to redo the same changes for another call of the same module, in the same order.
 */
export type GraphEvent =
  | { readonly t: 'value'; readonly v: IrValue; readonly spec: NameSpec }
  | { readonly t: 'node'; readonly n: IrNode }
  | { readonly t: 'constant'; readonly v: IrValue; readonly c: IrConstant }
  | { readonly t: 'weight'; readonly v: IrValue; readonly key: string }
  | { readonly t: 'weightHit'; readonly v: IrValue; readonly key: string }
  | { readonly t: 'cache'; readonly cache: 'dim' | 'const' | 'i64'; readonly key: string; readonly v: IrValue }
  | { readonly t: 'shape'; readonly x: IrValue; readonly s: IrValue }
  | { readonly t: 'shapeHit'; readonly x: IrValue; readonly s: IrValue }
  | { readonly t: 'cast'; readonly c: GraphCast }
  /** something a replay cannot redo (a new graph input or symbol): the recording is not replayable */
  | { readonly t: 'opaque'; readonly why: string };

/**
 * A recorded module call: the graph events it made, and the values from before it that those events
 * use (its inputs, shared weights and constants, symbol-derived dimension scalars).
 */
export interface Tape {
  readonly events: readonly GraphEvent[];
  /** the module instance path of the recorded call (weight keys and scopes under it are rewritten) */
  readonly path: string;
  /** why the tape cannot be replayed, when it cannot */
  readonly unreplayable?: string;
  /** values from before the call that the events use, other than the weights a weightHit names */
  readonly free: ReadonlySet<IrValue>;
  readonly sourceAfter: IrSourceRef | undefined;
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
  /** the event log while at least one recording runs (recordings nest; each is a range of it) */
  private log: GraphEvent[] | undefined;
  private recording = 0;
  /** values that dimScalar/atomScalar computed from the graph's symbols (shared by every call) */
  private readonly symbolValues = new Set<IrValue>();
  /** Current module path, for node scopes and value names. */
  scope = '';
  source: IrSourceRef | undefined;
  /** Extra graph metadata set by declarations in the entry body (e.g. `sorac.micro_batch` from micro_batch()). */
  readonly annotations: Record<string, string> = {};
  /** every float->float Cast with why it was placed (for --explain-dtypes) */
  readonly casts: { value: IrValue; from: DType; to: DType; reason: string; source?: IrSourceRef; scope: string }[] = [];

  recordCast(value: IrValue, from: DType, to: DType, reason: string): void {
    const c = { value, from, to, reason, ...(this.source ? { source: this.source } : {}), scope: this.scope };
    this.casts.push(c);
    this.log?.push({ t: 'cast', c });
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
    return this.alloc(dtype, shape, hint === undefined ? { k: 'scope', scope: this.scope } : { k: 'fixed', name: hint });
  }

  private alloc(dtype: DType, shape: readonly IrDim[], spec: NameSpec): IrValue {
    const id = this.nextId++;
    const name = this.uniqueName(spec.k === 'fixed' ? spec.name : spec.k === 'const' ? `const${id}` : `${spec.scope ? spec.scope + '/' : ''}v${id}`);
    const v = { id, name, dtype, shape };
    this.log?.push({ t: 'value', v, spec });
    return v;
  }

  input(name: string, dtype: DType, shape: readonly IrDim[]): IrValue {
    this.log?.push({ t: 'opaque', why: `graph input ${name}` });
    const v = this.value(dtype, shape, name);
    this.inputs.push(v);
    return v;
  }

  weight(key: string, dtype: DType, shape: readonly number[]): IrValue {
    const have = this.weightByKey.get(key);
    if (have) {
      this.log?.push({ t: 'weightHit', v: have, key });
      return have;
    }
    const v = this.value(dtype, shape, key);
    this.weights.push({ value: v, key });
    this.weightByKey.set(key, v);
    this.log?.push({ t: 'weight', v, key });
    return v;
  }

  node(op: string, inputs: (IrValue | null)[], outputs: IrValue[], attrs: Record<string, AttrInput> = {}): void {
    const a: Record<string, IrAttr> = {};
    for (const k of Object.keys(attrs).sort()) a[k] = toAttr(attrs[k]!);
    const n: IrNode = { op, inputs, outputs, attrs: a, ...(this.source ? { source: this.source } : {}), ...(this.scope ? { scope: this.scope } : {}) };
    this.nodes.push(n);
    this.log?.push({ t: 'node', n });
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
    const v = this.alloc(c.dtype, c.shape, hint === undefined ? { k: 'const' } : { k: 'fixed', name: hint });
    this.constants.set(v, c);
    this.log?.push({ t: 'constant', v, c });
    if (key !== undefined) {
      this.constCache.set(key, v);
      this.log?.push({ t: 'cache', cache: 'const', key, v });
    }
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
    if (key !== undefined) {
      this.i64Cache.set(key, v);
      this.log?.push({ t: 'cache', cache: 'i64', key, v });
    }
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
      this.log?.push({ t: 'shape', x, s });
    } else this.log?.push({ t: 'shapeHit', x, s });
    return s;
  }

  bindSymbol(name: string, src: SymbolSource): void {
    if (this.symbols.has(name)) return;
    this.symbols.set(name, src);
    this.log?.push({ t: 'opaque', why: `new symbol ${name}` });
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
    this.setDim(key, acc!);
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
      this.setDim(key, v);
      return v;
    }
    const num = this.dimScalar(atom.num);
    return this.op1(atom.kind === 'fdiv' ? 'Div' : 'Mod', [num, this.constI64([atom.den], [])], 'i64', []);
  }

  private setDim(key: string, v: IrValue): void {
    this.dimCache.set(key, v);
    this.symbolValues.add(v);
    this.log?.push({ t: 'cache', cache: 'dim', key, v });
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

  // ---- recording and replay of module calls (Interp's replay of repeated blocks) ----------------

  /** Start recording the graph's changes; the mark goes to endRecording. Recordings nest. */
  beginRecording(): number {
    if (this.recording++ === 0) this.log = [];
    return this.log!.length;
  }

  /**
   * End a recording: the events since `mark` as a Tape for a call of the module instance at `path`.
   * `uses` are the values the call's result holds; `unreplayable` says why the call must never be
   * replayed (it failed, warned, or changed state a replay does not redo).
   */
  endRecording(mark: number, path: string, uses: readonly IrValue[], unreplayable?: string): Tape {
    const events = this.log!.slice(mark);
    if (--this.recording === 0) this.log = undefined;
    const allocated = new Set<IrValue>();
    const handled = new Set<IrValue>();
    const free = new Set<IrValue>();
    let why = unreplayable;
    const use = (v: IrValue | null): void => {
      if (v !== null && !allocated.has(v) && !handled.has(v) && !this.global(v)) free.add(v);
    };
    for (const e of events) {
      switch (e.t) {
        case 'value':
          allocated.add(e.v);
          break;
        case 'node':
          for (const i of e.n.inputs) use(i);
          for (const o of e.n.outputs) if (!allocated.has(o)) why ??= `node ${e.n.op} writes a value made before the call`;
          break;
        case 'weightHit':
          handled.add(e.v);
          break;
        case 'shape':
          use(e.x);
          break;
        case 'shapeHit':
          use(e.x);
          handled.add(e.s);
          break;
        case 'cast':
          use(e.c.value);
          break;
        case 'opaque':
          why ??= e.why;
          break;
      }
    }
    for (const u of uses) use(u);
    return { events, path, free, sourceAfter: this.source, ...(why !== undefined ? { unreplayable: why } : {}) };
  }

  /** A value every call sees the same: a constant, a graph input, a dimension scalar of the symbols. */
  private global(v: IrValue): boolean {
    return this.constants.has(v) || this.symbolValues.has(v) || this.inputs.includes(v);
  }

  /**
   * Redo a recorded call for the module instance at `path` whose tensor inputs are `inputs` (the
   * recorded call's input values -> this call's): the same nodes, constants, weights, casts and cache
   * entries, in the same order, with the same ids and names that tracing the call would give (weight
   * keys, scopes and value names under the recorded path moved to `path`). Returns the map from the
   * recorded call's values to the new ones, or undefined (nothing changed) when tracing could differ:
   * a cache entry the recording made exists already, a weight or shape it found is missing, an input
   * it used is not given.
   */
  replay(tape: Tape, inputs: ReadonlyMap<IrValue, IrValue>, path: string): ((v: IrValue) => IrValue) | undefined {
    if (tape.unreplayable !== undefined) return undefined;
    for (const v of tape.free) if (!inputs.has(v)) return undefined;
    const from = tape.path;
    const fromDot = from + '.';
    const sub = (s: string): string => (s === from ? path : s.startsWith(fromDot) ? path + s.slice(from.length) : s);
    // a cast's reason names module paths in its text ("spatial_blocks.1.scale_shift_table: storage ..."):
    // the recorded path as a whole path segment run, not "spatial_blocks.10"
    const inText = new RegExp(`(?<![\\w.])${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w])`, 'g');
    const subText = (s: string): string => (s.includes(from) ? s.replace(inText, () => path) : s);
    // check first, so that a replay either happens whole or not at all
    const allocated = new Set<IrValue>();
    const newShapes = new Set<IrValue>();
    const newWeights = new Set<string>();
    for (const e of tape.events) {
      switch (e.t) {
        case 'value':
          allocated.add(e.v);
          break;
        case 'weight': {
          const k = sub(e.key);
          if (this.weightByKey.has(k) || newWeights.has(k)) return undefined;
          newWeights.add(k);
          break;
        }
        case 'weightHit': {
          const k = sub(e.key);
          if (!this.weightByKey.has(k) && !newWeights.has(k)) return undefined;
          break;
        }
        case 'cache':
          if (this.cacheOf(e.cache).has(e.key)) return undefined;
          break;
        case 'shape':
          if (!allocated.has(e.x)) {
            const x = inputs.get(e.x) ?? e.x;
            if (this.shapeCache.has(x) || newShapes.has(x)) return undefined;
            newShapes.add(x);
          }
          break;
        case 'shapeHit':
          if (!allocated.has(e.x)) {
            const x = inputs.get(e.x) ?? e.x;
            if (!this.shapeCache.has(x) && !newShapes.has(x)) return undefined;
          }
          break;
        case 'opaque':
          return undefined;
      }
    }
    const map = new Map<IrValue, IrValue>(inputs);
    const m = (v: IrValue): IrValue => map.get(v) ?? v;
    for (const e of tape.events) {
      switch (e.t) {
        case 'value':
          map.set(e.v, this.alloc(e.v.dtype, e.v.shape, e.spec.k === 'scope' ? { k: 'scope', scope: sub(e.spec.scope) } : e.spec.k === 'fixed' ? { k: 'fixed', name: sub(e.spec.name) } : e.spec));
          break;
        case 'node': {
          const n = e.n;
          const nn: IrNode = { op: n.op, inputs: n.inputs.map((i) => (i === null ? null : m(i))), outputs: n.outputs.map(m), attrs: n.attrs, ...(n.source ? { source: n.source } : {}), ...(n.scope !== undefined ? { scope: sub(n.scope) } : {}) };
          this.nodes.push(nn);
          this.log?.push({ t: 'node', n: nn });
          break;
        }
        case 'constant': {
          const v = m(e.v);
          this.constants.set(v, e.c);
          this.log?.push({ t: 'constant', v, c: e.c });
          break;
        }
        case 'weight': {
          const v = m(e.v);
          const key = sub(e.key);
          this.weights.push({ value: v, key });
          this.weightByKey.set(key, v);
          this.log?.push({ t: 'weight', v, key });
          break;
        }
        case 'weightHit': {
          const key = sub(e.key);
          const v = this.weightByKey.get(key)!;
          map.set(e.v, v);
          this.log?.push({ t: 'weightHit', v, key });
          break;
        }
        case 'cache': {
          const v = m(e.v);
          this.cacheOf(e.cache).set(e.key, v);
          if (e.cache === 'dim') this.symbolValues.add(v);
          this.log?.push({ t: 'cache', cache: e.cache, key: e.key, v });
          break;
        }
        case 'shape': {
          const x = m(e.x);
          const s = m(e.s);
          this.shapeCache.set(x, s);
          this.log?.push({ t: 'shape', x, s });
          break;
        }
        case 'shapeHit': {
          const x = m(e.x);
          const s = this.shapeCache.get(x)!;
          map.set(e.s, s);
          this.log?.push({ t: 'shapeHit', x, s });
          break;
        }
        case 'cast': {
          const c = e.c;
          const nc: GraphCast = { value: m(c.value), from: c.from, to: c.to, reason: subText(c.reason), ...(c.source ? { source: c.source } : {}), scope: sub(c.scope) };
          this.casts.push(nc);
          this.log?.push({ t: 'cast', c: nc });
          break;
        }
      }
    }
    this.source = tape.sourceAfter;
    return m;
  }

  private cacheOf(c: 'dim' | 'const' | 'i64'): Map<string, IrValue> {
    return c === 'dim' ? this.dimCache : c === 'const' ? this.constCache : this.i64Cache;
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
