/**
 * A direct protobuf writer for the ModelProto messages buildModelProto makes: the bytes that
 * onnx-proto's (protobufjs) `ModelProto.encode(m).finish()` gives, written into one growing buffer
 * instead of through protobufjs' per-field operation list (which cost about a third of `sorac
 * build`'s emission time and much of its peak memory).
 *
 * It follows the generated encoder exactly: fields in field-number order, a scalar written when
 * present (even at its default), a repeated field only when non-empty, repeated numbers packed,
 * int64/int32 as varints (negative ones as 10-byte two's complement), floats as fixed32. It covers
 * the fields sorac sets; a message with any other field, a number that is not a safe integer where
 * an integer goes, or a string that is not well-formed UTF-16 gets `undefined`, and the caller
 * falls back to protobufjs (tests/emit/proto.test.ts compares the two on every example).
 */
import type { onnx as O } from 'onnx-proto';

type Kind = 'int64' | 'int32' | 'float' | 'string' | 'bytes' | 'packedInt64' | 'packedFloat' | 'strings' | Schema | { readonly repeated: Schema };
interface Schema {
  readonly fields: readonly (readonly [number, string, Kind])[];
  readonly names: ReadonlySet<string>;
}

function schema(fields: readonly (readonly [number, string, Kind])[]): Schema {
  return { fields, names: new Set(fields.map((f) => f[1])) };
}

const DIMENSION = schema([[1, 'dimValue', 'int64'], [2, 'dimParam', 'string'], [3, 'denotation', 'string']]);
const SHAPE = schema([[1, 'dim', { repeated: DIMENSION }]]);
const TENSOR_TYPE = schema([[1, 'elemType', 'int32'], [2, 'shape', SHAPE]]);
const TYPE = schema([[1, 'tensorType', TENSOR_TYPE], [6, 'denotation', 'string']]);
const VALUE_INFO = schema([[1, 'name', 'string'], [2, 'type', TYPE], [3, 'docString', 'string']]);
const ENTRY = schema([[1, 'key', 'string'], [2, 'value', 'string']]);
const TENSOR = schema([
  [1, 'dims', 'packedInt64'],
  [2, 'dataType', 'int32'],
  [8, 'name', 'string'],
  [9, 'rawData', 'bytes'],
  [12, 'docString', 'string'],
  [13, 'externalData', { repeated: ENTRY }],
  [14, 'dataLocation', 'int32'],
]);
const ATTRIBUTE = schema([
  [1, 'name', 'string'],
  [2, 'f', 'float'],
  [3, 'i', 'int64'],
  [4, 's', 'bytes'],
  [5, 't', TENSOR],
  [7, 'floats', 'packedFloat'],
  [8, 'ints', 'packedInt64'],
  [13, 'docString', 'string'],
  [20, 'type', 'int32'],
  [21, 'refAttrName', 'string'],
]);
const NODE = schema([
  [1, 'input', 'strings'],
  [2, 'output', 'strings'],
  [3, 'name', 'string'],
  [4, 'opType', 'string'],
  [5, 'attribute', { repeated: ATTRIBUTE }],
  [6, 'docString', 'string'],
  [7, 'domain', 'string'],
]);
const GRAPH = schema([
  [1, 'node', { repeated: NODE }],
  [2, 'name', 'string'],
  [5, 'initializer', { repeated: TENSOR }],
  [10, 'docString', 'string'],
  [11, 'input', { repeated: VALUE_INFO }],
  [12, 'output', { repeated: VALUE_INFO }],
  [13, 'valueInfo', { repeated: VALUE_INFO }],
]);
const OPSET = schema([[1, 'domain', 'string'], [2, 'version', 'int64']]);
const MODEL = schema([
  [1, 'irVersion', 'int64'],
  [2, 'producerName', 'string'],
  [3, 'producerVersion', 'string'],
  [4, 'domain', 'string'],
  [5, 'modelVersion', 'int64'],
  [6, 'docString', 'string'],
  [7, 'graph', GRAPH],
  [8, 'opsetImport', { repeated: OPSET }],
  [14, 'metadataProps', { repeated: ENTRY }],
]);

/** Thrown inside the writer when a message needs protobufjs; never escapes encodeModelProto. */
class Unsupported extends Error {}

class Writer {
  buf = new Uint8Array(1 << 16);
  pos = 0;
  private readonly f32 = new DataView(new ArrayBuffer(4));

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  varint(v: number): void {
    // v: a non-negative safe integer
    this.ensure(10);
    while (v > 127) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  int64(v: unknown): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Unsupported();
    if (v >= 0) return this.varint(v);
    let b = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (b > 127n) {
      this.buf[this.pos++] = Number(b & 127n) | 128;
      b >>= 7n;
    }
    this.buf[this.pos++] = Number(b);
  }
  float(v: unknown): void {
    if (typeof v !== 'number') throw new Unsupported();
    this.f32.setFloat32(0, v, true);
    this.ensure(4);
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = this.f32.getUint8(i);
  }
  string(v: unknown): void {
    if (typeof v !== 'string') throw new Unsupported();
    // ASCII (names, ops, paths): one pass; otherwise rewind and write UTF-8 through Buffer
    const start = this.pos;
    const n = v.length;
    this.varint(n);
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 127) {
        this.pos = start;
        return this.utf8(v);
      }
      buf[p++] = c;
    }
    this.pos = p;
  }
  private utf8(v: string): void {
    if (!(v as string & { isWellFormed(): boolean }).isWellFormed()) throw new Unsupported();
    const n = Buffer.byteLength(v, 'utf8');
    this.varint(n);
    this.ensure(n);
    this.pos += Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.length).write(v, this.pos, 'utf8');
  }
  bytes(v: unknown): void {
    if (!(v instanceof Uint8Array)) throw new Unsupported();
    this.varint(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
  /** Length-prefix what was written since `start` (moved up by the prefix's size). */
  delimit(start: number): void {
    const len = this.pos - start;
    let size = 1;
    for (let x = len; x > 127; x = Math.floor(x / 128)) size++;
    this.ensure(size);
    this.buf.copyWithin(start + size, start, this.pos);
    const end = this.pos + size;
    this.pos = start;
    this.varint(len);
    this.pos = end;
  }
  message(m: unknown, s: Schema): void {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Unsupported();
    const o = m as Record<string, unknown>;
    for (const k in o) if (o[k] != null && !s.names.has(k)) throw new Unsupported();
    for (const [id, name, kind] of s.fields) {
      const v = o[name];
      if (v == null || !Object.prototype.hasOwnProperty.call(o, name)) continue;
      switch (kind) {
        case 'int64':
          this.varint(id * 8);
          this.int64(v);
          break;
        case 'int32':
          this.varint(id * 8);
          this.int64(v); // an int32 varint is sign-extended to 64 bits, as protobufjs writes it
          break;
        case 'float':
          this.varint(id * 8 + 5);
          this.float(v);
          break;
        case 'string':
          this.varint(id * 8 + 2);
          this.string(v);
          break;
        case 'bytes':
          this.varint(id * 8 + 2);
          this.bytes(v);
          break;
        case 'strings':
          if (!Array.isArray(v)) throw new Unsupported();
          for (const x of v) {
            this.varint(id * 8 + 2);
            this.string(x);
          }
          break;
        case 'packedInt64':
        case 'packedFloat': {
          if (!Array.isArray(v)) throw new Unsupported();
          if (!v.length) break;
          this.varint(id * 8 + 2);
          const start = this.pos;
          for (const x of v) if (kind === 'packedInt64') this.int64(x); else this.float(x);
          this.delimit(start);
          break;
        }
        default:
          if ('repeated' in kind) {
            if (!Array.isArray(v)) throw new Unsupported();
            for (const x of v) {
              this.varint(id * 8 + 2);
              const start = this.pos;
              this.message(x, kind.repeated);
              this.delimit(start);
            }
          } else {
            this.varint(id * 8 + 2);
            const start = this.pos;
            this.message(v, kind);
            this.delimit(start);
          }
      }
    }
  }
}

/** The protobuf bytes of `model`, or undefined when it has a field this writer does not cover. */
export function encodeModelProto(model: O.IModelProto): Uint8Array | undefined {
  const w = new Writer();
  try {
    w.message(model, MODEL);
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
  return w.buf.slice(0, w.pos);
}
