/**
 * ONNX emission: serialises an IrGraph into a ModelProto (onnx-proto, schema onnx 1.10.2 / IR 8).
 *
 * The tracer already produces ONNX operators of the default domain at `graph.opset`, so this is
 * a naming + encoding step. Design decisions (docs/adr/001-onnx-emission.md):
 *
 * - IR version: 8 for opset <= 17 (the maximum Debian onnx 1.12's checker accepts), otherwise
 *   the standard onnx release pairing (opset 18 -> 8, 19/20 -> 9, 21/22 -> 10, ...).
 * - Deterministic bytes: nothing depends on time, hashing order or the environment. Names are
 *   derived from the IR in a fixed traversal order; metadata_props are sorted by key.
 * - Weight initializers are named by their checkpoint key, so ONNX initializer names and keymap
 *   keys coincide (one-to-one, same dtype and shape).
 * - Weights modes: 'external' (data_location=EXTERNAL into a file, usually the safetensors
 *   checkpoint itself), 'inline' (raw_data), 'none' (weights become graph inputs named by key:
 *   the model stays valid, checkable and even runnable by feeding the weights as inputs).
 *
 * Malformed IR (duplicate user names, bad shapes, data of the wrong size) is a tracer bug and
 * raises InternalError; nothing here produces user diagnostics.
 */
import { type DType, DTYPE_SIZE, ONNX_DTYPE } from '../../core/dtype.ts';
import { InternalError, SoracError } from '../../core/errors.ts';
import type { ExternalDataRef, IrAttr, IrConstant, IrDim, IrGraph, IrNode, IrValue, IrWeight } from '../../core/ir.ts';
import { FIXED32, LEN, ProtoWriter, VARINT } from './proto.ts';

export type { ExternalDataRef };

export interface EmitOptions {
  /**
   * 'external': every weight is an initializer with data_location=EXTERNAL, placed by
   *   `externalData`; a weight for which it returns undefined falls back to `inlineData`.
   * 'inline': every weight is an initializer with raw_data from `inlineData`.
   * 'none': weights become graph inputs named by checkpoint key (no data at all).
   */
  readonly weights: 'external' | 'inline' | 'none';
  readonly externalData?: (w: IrWeight) => ExternalDataRef | undefined;
  /** Little-endian bytes of the weight in the graph's expected dtype (`w.value.dtype`). */
  readonly inlineData?: (w: IrWeight) => Uint8Array;
  /** Emit value_info (types/shapes) for intermediate values. Default true. */
  readonly valueInfo?: boolean;
  /** producer_version; default: none (keeps bytes independent of the package version). */
  readonly producerVersion?: string;
}

/** The IR version that goes with an ai.onnx opset (onnx release pairing), never below 8. */
export function irVersionForOpset(opset: number): number {
  if (!Number.isInteger(opset) || opset < 1) throw new InternalError(`invalid opset ${opset}`);
  const pairs: [number, number][] = [
    [18, 8], [20, 9], [22, 10], [23, 11], [24, 12], [26, 13],
  ];
  if (opset <= 17) return 8;
  for (const [maxOpset, ir] of pairs) if (opset <= maxOpset) return ir;
  return 13;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Byte size of a tensor whose shape is fully static. */
export function byteSize(dtype: DType, shape: readonly IrDim[]): number {
  const dims = staticShape(shape, 'tensor');
  return numel(dims) * DTYPE_SIZE[dtype];
}

function staticShape(shape: readonly IrDim[], what: string): number[] {
  return shape.map((d) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new InternalError(`${what} must have a static non-negative shape, got [${shape.join(', ')}]`);
    }
    return d;
  });
}

/**
 * Deterministic, unique ONNX names for every value of the graph.
 * Priority: graph inputs and outputs keep the user's names (must be unique); weights are named by
 * checkpoint key; everything else keeps its IR name, made unique with a `__N` suffix in
 * first-appearance order (constants, then node outputs in node order).
 */
export function assignNames(graph: IrGraph, weightsAsInputs = false): Map<number, string> {
  const names = new Map<number, string>();
  const taken = new Set<string>();
  const reserve = (v: IrValue, name: string, what: string) => {
    const prev = names.get(v.id);
    if (prev !== undefined) {
      if (prev !== name) throw new InternalError(`value #${v.id} is both ${JSON.stringify(prev)} and ${what} ${JSON.stringify(name)}`);
      return;
    }
    if (name === '') throw new InternalError(`${what} has an empty name`);
    if (taken.has(name)) throw new InternalError(`duplicate ${what} name ${JSON.stringify(name)}`);
    taken.add(name);
    names.set(v.id, name);
  };
  for (const v of graph.inputs) reserve(v, v.name, 'graph input');
  for (const v of graph.outputs) {
    if (names.has(v.id)) throw new InternalError(`graph output ${JSON.stringify(v.name)} is also a graph input (add an Identity node)`);
    reserve(v, v.name, 'graph output');
  }
  for (const w of graph.weights) reserve(w.value, w.key, weightsAsInputs ? 'weight input' : 'weight');
  // per-base suffix counters keep this linear when thousands of values share a name ("h")
  const nextSuffix = new Map<string, number>();
  const fresh = (v: IrValue) => {
    if (names.has(v.id)) return;
    const base = v.name || `v${v.id}`;
    let name = base;
    if (taken.has(name)) {
      let i = nextSuffix.get(base) ?? 1;
      while (taken.has(`${base}__${i}`)) i++;
      name = `${base}__${i}`;
      nextSuffix.set(base, i + 1);
    }
    taken.add(name);
    names.set(v.id, name);
  };
  for (const v of graph.constants.keys()) fresh(v);
  for (const n of graph.nodes) for (const o of n.outputs) fresh(o);
  return names;
}

/**
 * ONNX graph outputs must be produced by nodes under their own names. A traced entry point may
 * return a weight or a constant directly: give such outputs an Identity node (the weight keeps
 * its checkpoint key, the output keeps the user's name). Returning a graph input unchanged, or
 * the same value twice, cannot be named and is an error.
 */
export function normalizeOutputs(graph: IrGraph): IrGraph {
  const inputIds = new Set(graph.inputs.map((v) => v.id));
  const stored = new Set([...graph.weights.map((w) => w.value.id), ...[...graph.constants.keys()].map((v) => v.id)]);
  const seen = new Set<number>();
  let nextId = -1;
  const extra: IrNode[] = [];
  const outputs = graph.outputs.map((v) => {
    if (inputIds.has(v.id)) throw new InternalError(`graph output ${JSON.stringify(v.name)} is the graph input of the same name, unchanged; ONNX needs distinct names (rename the output)`);
    if (seen.has(v.id)) throw new InternalError(`graph output ${JSON.stringify(v.name)} is listed twice`);
    seen.add(v.id);
    if (!stored.has(v.id)) return v;
    if (nextId < 0) nextId = 1 + Math.max(0, ...allIds(graph));
    const o: IrValue = { id: nextId++, name: v.name, dtype: v.dtype, shape: v.shape };
    extra.push({ op: 'Identity', inputs: [v], outputs: [o], attrs: {} });
    return o;
  });
  return extra.length ? { ...graph, outputs, nodes: [...graph.nodes, ...extra] } : graph;
}

function allIds(g: IrGraph): number[] {
  return [...g.inputs, ...g.weights.map((w) => w.value), ...g.constants.keys(), ...g.nodes.flatMap((n) => n.outputs)].map((v) => v.id);
}

function nodeName(n: IrNode, i: number): string {
  return n.scope ? `${n.scope}/${n.op}_${i}` : `${n.op}_${i}`;
}

function docString(n: IrNode): string {
  const parts: string[] = [];
  if (n.source) parts.push(`${n.source.file}:${n.source.line}:${n.source.col}`);
  if (n.scope) parts.push(`in ${n.scope}`);
  return parts.join(' ');
}

/** protobuf messages are limited to 2 GiB; larger models must use external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Error for a model that cannot be serialised as asked (not a tracer bug). */
export class EmitError extends SoracError {
  constructor(message: string) {
    super('SORA4002', message);
    this.name = 'EmitError';
  }
}

/** onnx.proto enum values written here. */
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;
const DATA_LOCATION_EXTERNAL = 1;

/** One initializer as it will be written (checked before anything is written). */
export interface Initializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dtype: DType;
  readonly rawData?: Uint8Array;
  readonly external?: ExternalDataRef;
}

/**
 * What a weight's initializer holds under the emit options (empty tensors inline, external data where
 * `externalData` places it, else `inlineData`'s bytes), with every size and location checked.
 */
export function weightInitializer(w: IrWeight, name: string, opts: EmitOptions): Initializer {
  const dims = staticShape(w.value.shape, `weight ${JSON.stringify(w.key)}`);
  const length = numel(dims) * DTYPE_SIZE[w.value.dtype];
  const base = { name, dims, dtype: w.value.dtype };
  if (opts.weights === 'external' && !opts.externalData) throw new InternalError("weights: 'external' needs an externalData callback");
  if (length === 0) {
    // empty tensors are always inline: onnxruntime reads external data with length 0 as
    // "to the end of the file" and then fails
    return { ...base, rawData: new Uint8Array(0) };
  }
  const ext = opts.weights === 'external' ? opts.externalData?.(w) : undefined;
  if (ext) {
    if (ext.length !== length) {
      throw new InternalError(`external data for ${JSON.stringify(w.key)}: length ${ext.length}, but ${w.value.dtype}[${dims.join(',')}] needs ${length} bytes`);
    }
    if (!Number.isSafeInteger(ext.offset) || ext.offset < 0) throw new InternalError(`external data for ${JSON.stringify(w.key)}: bad offset ${ext.offset}`);
    if (!ext.location || ext.location.startsWith('/') || /^[A-Za-z]:[\\/]/.test(ext.location)) {
      throw new InternalError(`external data for ${JSON.stringify(w.key)}: location must be a relative path, got ${JSON.stringify(ext.location)}`);
    }
    return { ...base, external: { location: ext.location, offset: ext.offset, length: ext.length } };
  }
  if (!opts.inlineData) {
    throw new InternalError(`weight ${JSON.stringify(w.key)} has no external data and no inlineData callback was given`);
  }
  const data = opts.inlineData(w);
  if (data.byteLength !== length) {
    throw new InternalError(`inline data for ${JSON.stringify(w.key)}: ${data.byteLength} bytes, but ${w.value.dtype}[${dims.join(',')}] needs ${length}`);
  }
  return { ...base, rawData: data };
}

function constantInitializer(name: string, c: IrConstant): Initializer {
  const dims = staticShape(c.shape, `constant ${JSON.stringify(name)}`);
  const want = numel(dims) * DTYPE_SIZE[c.dtype];
  if (c.data.byteLength !== want) {
    throw new InternalError(`constant ${JSON.stringify(name)} ${c.dtype}[${dims.join(',')}] needs ${want} bytes, has ${c.data.byteLength}`);
  }
  return { name, dims, dtype: c.dtype, rawData: c.data };
}

const textEncoder = new TextEncoder();

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/**
 * Writes the ModelProto of an IrGraph straight into protobuf bytes (compiler/emit/proto.ts), field
 * by field in field-number order: the bytes onnx-proto's protobufjs encoder gives for the message
 * { ir_version, producer_name 'sorac', producer_version?, graph { node*, name, initializer*
 * (weights, then constants), input* (graph inputs, then weights in 'none' mode), output*,
 * value_info* }, opset_import [{ domain '', version }], metadata_props* (sorted by key) }, without
 * building that message (tests/emit/proto.test.ts compares the two on every example).
 */
class OnnxWriter {
  readonly w: ProtoWriter;
  constructor(
    capacity: number,
    private readonly names: ReadonlyMap<number, string>,
    /** Values defined so far (graph inputs, weights, constants, then node outputs as written). */
    readonly defined: Set<number>,
  ) {
    this.w = new ProtoWriter(capacity);
  }

  nameOf(v: IrValue): string {
    const n = this.names.get(v.id);
    if (n === undefined) throw new InternalError(`value #${v.id} (${v.name}) is used but never defined`);
    return n;
  }

  /** ValueInfoProto { name, type { tensor_type { elem_type, shape { dim* } } } } as field `field`. */
  valueInfo(field: number, name: string, v: IrValue): void {
    const w = this.w;
    w.tag(field, LEN);
    const vi = w.begin();
    w.tag(1, LEN);
    w.string(name);
    w.tag(2, LEN);
    const type = w.begin();
    w.tag(1, LEN);
    const tensorType = w.begin();
    const elemType = ONNX_DTYPE[v.dtype];
    if (elemType !== undefined) {
      w.tag(1, VARINT);
      w.varint(elemType);
    }
    w.tag(2, LEN);
    const shape = w.begin();
    for (const d of v.shape) {
      w.tag(1, LEN);
      const dim = w.begin();
      if (typeof d === 'number') {
        if (!Number.isSafeInteger(d) || d < 0) throw new InternalError(`invalid dimension ${d}`);
        w.tag(1, VARINT);
        w.varint(d);
      } else {
        if (d === '') throw new InternalError('empty symbolic dimension');
        w.tag(2, LEN);
        w.string(d);
      }
      w.end(dim);
    }
    w.end(shape);
    w.end(tensorType);
    w.end(type);
    w.end(vi);
  }

  /** TensorProto { dims, data_type, name, raw_data?, external_data*, data_location? } (no tag). */
  tensor(t: Initializer): void {
    const w = this.w;
    if (t.dims.length) {
      w.tag(1, LEN);
      const dims = w.begin();
      for (const d of t.dims) w.varint(d);
      w.end(dims);
    }
    const dataType = ONNX_DTYPE[t.dtype];
    if (dataType !== undefined) {
      w.tag(2, VARINT);
      w.varint(dataType);
    }
    w.tag(8, LEN);
    w.string(t.name);
    if (t.rawData) {
      w.tag(9, LEN);
      w.bytes(t.rawData);
    }
    if (t.external) {
      const entries: [string, string][] = [['location', t.external.location], ['offset', String(t.external.offset)], ['length', String(t.external.length)]];
      for (const [key, value] of entries) {
        w.tag(13, LEN);
        const e = w.begin();
        w.tag(1, LEN);
        w.string(key);
        w.tag(2, LEN);
        w.string(value);
        w.end(e);
      }
      w.tag(14, VARINT);
      w.varint(DATA_LOCATION_EXTERNAL);
    }
  }

  /** AttributeProto { name, f | i | s | t | floats | ints, type } (no tag); checks its value. */
  attribute(n: IrNode, i: number, name: string, a: IrAttr): void {
    const w = this.w;
    w.tag(1, LEN);
    w.string(name);
    switch (a.kind) {
      case 'float':
        if (typeof a.value !== 'number') throw new InternalError(`attribute ${name} of ${nodeName(n, i)}: float expected`);
        w.tag(2, FIXED32);
        w.float(a.value);
        break;
      case 'int':
        if (!Number.isSafeInteger(a.value)) throw new InternalError(`attribute ${name}: ${a.value} is not an integer`);
        w.tag(3, VARINT);
        w.int64(a.value);
        break;
      case 'string':
        if (typeof a.value !== 'string') throw new InternalError(`attribute ${name} of ${nodeName(n, i)}: string expected`);
        w.tag(4, LEN);
        w.bytes(textEncoder.encode(a.value));
        break;
      case 'tensor': {
        w.tag(5, LEN);
        const t = w.begin();
        this.tensor(constantInitializer('', a.value));
        w.end(t);
        break;
      }
      case 'floats':
        for (const x of a.value) if (typeof x !== 'number') throw new InternalError(`attribute ${name} of ${nodeName(n, i)}: floats expected`);
        if (a.value.length) {
          w.tag(7, LEN);
          w.varint(a.value.length * 4);
          for (const x of a.value) w.float(x);
        }
        break;
      case 'ints':
        for (const x of a.value) if (!Number.isSafeInteger(x)) throw new InternalError(`attribute ${name}: ${x} is not an integer`);
        if (a.value.length) {
          w.tag(8, LEN);
          const p = w.begin();
          for (const x of a.value) w.int64(x);
          w.end(p);
        }
        break;
      default:
        throw new InternalError(`attribute ${name} of ${nodeName(n, i)}: unknown kind ${JSON.stringify((a as { kind: unknown }).kind)}`);
    }
    w.tag(20, VARINT);
    w.varint(ATTR_TYPE[a.kind]);
  }

  /**
   * NodeProto { input*, output*, name, op_type, attribute*, doc_string? } as GraphProto.node; checks
   * that its inputs are defined before it and its attribute values.
   */
  node(n: IrNode, i: number): void {
    const w = this.w;
    const defined = this.defined;
    w.tag(1, LEN);
    const node = w.begin();
    for (const v of n.inputs) {
      w.tag(1, LEN);
      if (!v) {
        w.string('');
        continue;
      }
      if (!defined.has(v.id)) throw new InternalError(`node ${nodeName(n, i)} reads ${JSON.stringify(v.name)} before it is defined`);
      w.string(this.nameOf(v));
    }
    for (const v of n.outputs) {
      defined.add(v.id);
      w.tag(2, LEN);
      w.string(this.nameOf(v));
    }
    // name `<scope>/<op>_<i>` and doc_string `<file>:<line>:<col> in <scope>`, written piecewise
    // when ASCII (the common case), else through the whole string
    w.tag(3, LEN);
    let s = w.begin();
    if ((!n.scope || (w.ascii(n.scope) && w.ascii('/'))) && w.ascii(n.op) && w.ascii('_')) {
      w.decimal(i);
      w.end(s);
    } else {
      w.pos = s;
      w.string(nodeName(n, i));
    }
    w.tag(4, LEN);
    w.string(n.op);
    if (hasKeys(n.attrs)) {
      const attrNames = Object.keys(n.attrs).sort();
      for (const k of attrNames) {
        w.tag(5, LEN);
        const a = w.begin();
        this.attribute(n, i, k, n.attrs[k]!);
        w.end(a);
      }
    }
    const src = n.source;
    if (src || n.scope) {
      w.tag(6, LEN);
      s = w.begin();
      const ok =
        (!src || (w.ascii(src.file) && w.ascii(':') && w.decimal(src.line) && w.ascii(':') && w.decimal(src.col))) &&
        (!n.scope || ((!src || w.ascii(' ')) && w.ascii('in ') && w.ascii(n.scope)));
      if (ok) {
        w.end(s);
      } else {
        w.pos = s;
        w.string(docString(n));
      }
    }
    if (n.domain) {
      w.tag(7, LEN);
      w.string(n.domain);
    }
    w.end(node);
  }
}

/** Serialise `graph` to ONNX ModelProto bytes. Same graph and options -> byte-identical output. */
export function emitOnnx(irGraph: IrGraph, opts: EmitOptions): Uint8Array {
  const graph = normalizeOutputs(irGraph);
  const weightsAsInputs = opts.weights === 'none';
  const names = assignNames(graph, weightsAsInputs);
  const nameOf = (v: IrValue) => {
    const n = names.get(v.id);
    if (n === undefined) throw new InternalError(`value #${v.id} (${v.name}) is used but never defined`);
    return n;
  };

  // the initializers are checked (and the weights' data fetched) first; the nodes as they are written
  const irVersion = irVersionForOpset(graph.opset);
  const initializers: Initializer[] = [];
  let inlineBytes = 0;
  if (!weightsAsInputs) {
    for (const w of graph.weights) {
      const name = nameOf(w.value);
      const init = weightInitializer(w, name, opts);
      initializers.push(init);
      if (!init.external) inlineBytes += init.rawData!.byteLength;
    }
  }
  for (const [v, c] of graph.constants) {
    if (c.dtype !== v.dtype) throw new InternalError(`constant ${v.name}: value is ${v.dtype} but data is ${c.dtype}`);
    initializers.push(constantInitializer(nameOf(v), c));
    inlineBytes += c.data.byteLength;
  }
  if (inlineBytes > PROTOBUF_LIMIT - 64 * 1024 * 1024) {
    throw new EmitError(
      `${(inlineBytes / 2 ** 30).toFixed(2)} GiB of inline tensor data exceeds what one ONNX protobuf can hold (2 GiB); ` +
        "emit the weights as external data (weights: 'external')",
    );
  }

  const defined = new Set<number>();
  for (const v of graph.inputs) defined.add(v.id);
  for (const w of graph.weights) defined.add(w.value.id);
  for (const v of graph.constants.keys()) defined.add(v.id);
  const ow = new OnnxWriter(64 * 1024 + 448 * graph.nodes.length + 160 * (graph.weights.length + graph.constants.size) + inlineBytes, names, defined);
  const w = ow.w;
  w.tag(1, VARINT);
  w.varint(irVersion);
  w.tag(2, LEN);
  w.string('sorac');
  if (opts.producerVersion) {
    w.tag(3, LEN);
    w.string(opts.producerVersion);
  }
  w.tag(7, LEN);
  const g = w.begin();
  for (let i = 0; i < graph.nodes.length; i++) ow.node(graph.nodes[i]!, i);
  for (const o of graph.outputs) if (!defined.has(o.id)) throw new InternalError(`graph output ${JSON.stringify(o.name)} is never produced`);
  w.tag(2, LEN);
  w.string(graph.name);
  for (const t of initializers) {
    w.tag(5, LEN);
    const s = w.begin();
    ow.tensor(t);
    w.end(s);
  }
  for (const v of graph.inputs) ow.valueInfo(11, nameOf(v), v);
  if (weightsAsInputs) for (const wt of graph.weights) ow.valueInfo(11, nameOf(wt.value), wt.value);
  for (const v of graph.outputs) ow.valueInfo(12, nameOf(v), v);
  if (opts.valueInfo ?? true) {
    const outIds = new Set(graph.outputs.map((v) => v.id));
    for (const n of graph.nodes) for (const o of n.outputs) if (!outIds.has(o.id)) ow.valueInfo(13, nameOf(o), o);
  }
  w.end(g);
  w.tag(8, LEN);
  const opset = w.begin();
  w.tag(1, LEN);
  w.string('');
  w.tag(2, VARINT);
  w.varint(graph.opset);
  w.end(opset);
  // the contrib domain only where the ORT target pass used it (compiler/passes/ort-cpu.ts)
  if (graph.nodes.some((n) => n.domain === 'com.microsoft')) {
    w.tag(8, LEN);
    const ms = w.begin();
    w.tag(1, LEN);
    w.string('com.microsoft');
    w.tag(2, VARINT);
    w.varint(1);
    w.end(ms);
  }
  for (const key of Object.keys(graph.metadata).sort()) {
    w.tag(14, LEN);
    const e = w.begin();
    w.tag(1, LEN);
    w.string(key);
    w.tag(2, LEN);
    w.string(graph.metadata[key]!);
    w.end(e);
  }
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Text dump

function fmtType(v: IrValue): string {
  return `${v.dtype}[${v.shape.join(',')}]`;
}

function fmtAttr(a: IrAttr): string {
  switch (a.kind) {
    case 'int':
    case 'float':
      return String(a.value);
    case 'ints':
    case 'floats':
      return `[${a.value.join(',')}]`;
    case 'string':
      return JSON.stringify(a.value);
    case 'tensor':
      return `tensor ${a.value.dtype}[${a.value.shape.join(',')}]`;
  }
}

/**
 * A readable, deterministic text form of the graph, one line per node (for golden tests and
 * `--explain`). Names are the ONNX names the emitter would use.
 *
 *   graph stdit3 opset 17
 *   input  x: f32[B,4,T,H,W]
 *   weight x_embedder.proj.weight: bf16[1152,4,1,2,2]
 *   const  shape_0: i64[3] = [0,1152,-1]
 *   %y: f32[B,N,1152] = Conv(%x, %w) {strides=[1,2,2]}  # model.sora:12:5 in x_embedder
 *   output y: f32[B,N,1152]
 */
export function formatGraph(irGraph: IrGraph): string {
  const graph = normalizeOutputs(irGraph);
  const names = assignNames(graph);
  const nm = (v: IrValue) => names.get(v.id) ?? `?${v.name}`;
  const lines: string[] = [`graph ${graph.name} opset ${graph.opset}`];
  for (const k of Object.keys(graph.metadata).sort()) lines.push(`meta   ${k} = ${JSON.stringify(graph.metadata[k])}`);
  for (const v of graph.inputs) lines.push(`input  ${nm(v)}: ${fmtType(v)}`);
  for (const w of graph.weights) lines.push(`weight ${nm(w.value)}: ${fmtType(w.value)}`);
  for (const [v, c] of graph.constants) {
    const n = numel(c.shape);
    let preview = '';
    if (n <= 8) preview = ` = [${constantValues(c).join(',')}]`;
    lines.push(`const  ${nm(v)}: ${fmtType(v)}${preview}`);
  }
  for (const n of graph.nodes) {
    const outs = n.outputs.map((o) => `%${nm(o)}: ${fmtType(o)}`).join(', ');
    const ins = n.inputs.map((v) => (v ? `%${nm(v)}` : '_')).join(', ');
    const attrKeys = Object.keys(n.attrs).sort();
    const attrs = attrKeys.length ? ` {${attrKeys.map((k) => `${k}=${fmtAttr(n.attrs[k]!)}`).join(', ')}}` : '';
    const doc = docString(n);
    lines.push(`${outs} = ${n.domain ? `${n.domain}.` : ''}${n.op}(${ins})${attrs}${doc ? `  # ${doc}` : ''}`);
  }
  for (const v of graph.outputs) lines.push(`output ${nm(v)}: ${fmtType(v)}`);
  return lines.join('\n') + '\n';
}

function constantValues(c: IrConstant): (number | bigint | string)[] {
  const dv = new DataView(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  const n = numel(c.shape);
  const out: (number | bigint | string)[] = [];
  for (let i = 0; i < n; i++) {
    switch (c.dtype) {
      case 'f32': out.push(dv.getFloat32(i * 4, true)); break;
      case 'f64': out.push(dv.getFloat64(i * 8, true)); break;
      case 'i64': out.push(dv.getBigInt64(i * 8, true)); break;
      case 'i32': out.push(dv.getInt32(i * 4, true)); break;
      case 'i16': out.push(dv.getInt16(i * 2, true)); break;
      case 'i8': out.push(dv.getInt8(i)); break;
      case 'u8': out.push(dv.getUint8(i)); break;
      case 'bool': out.push(dv.getUint8(i) ? 'true' : 'false'); break;
      case 'f16':
      case 'bf16': out.push(`0x${dv.getUint16(i * 2, true).toString(16).padStart(4, '0')}`); break;
      default: out.push(`0x${dv.getUint8(i).toString(16).padStart(2, '0')}`);
    }
  }
  return out;
}
