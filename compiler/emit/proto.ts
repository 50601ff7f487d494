/**
 * A minimal protobuf writer for ONNX emission (compiler/emit/onnx.ts writes a ModelProto with it
 * straight from the IrGraph, with no intermediate message objects).
 *
 * The bytes are exactly what onnx-proto's (protobufjs) `ModelProto.encode(m).finish()` gives for
 * the same message: fields in field-number order, varints as protobufjs writes them (int64/int32
 * negatives as 10-byte two's complement), floats as little-endian float32, strings as protobufjs'
 * BufferWriter writes them (see `string`). tests/emit/proto.test.ts compares the two on every
 * example model and on edge cases.
 *
 * Nested messages are length-delimited by back-patching: `begin()` reserves one byte for the
 * length, `end()` fills it in, moving the message up in the rare case its length needs more than
 * one byte (only large messages: a node with many inputs, the graph itself).
 */

/** Field tags: (field number << 3) | wire type. */
export const VARINT = 0;
export const FIXED32 = 5;
export const LEN = 2;

export class ProtoWriter {
  buf: Buffer;
  pos = 0;
  private readonly f32 = new Float32Array(1);
  private readonly f32b = new Uint8Array(this.f32.buffer);

  constructor(capacity = 1 << 16) {
    this.buf = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }
  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }

  /** A field's key: field number and wire type. */
  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** v: a non-negative safe integer. */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    let p = this.pos;
    if (v < 0x80000000) {
      while (v > 127) {
        buf[p++] = (v & 127) | 128;
        v >>>= 7;
      }
    } else {
      while (v > 127) {
        buf[p++] = (v % 128) | 128;
        v = Math.floor(v / 128);
      }
    }
    buf[p++] = v;
    this.pos = p;
  }

  /** v: a safe integer (the caller checks); negative values as 64-bit two's complement, 10 bytes. */
  int64(v: number): void {
    if (v >= 0) return this.varint(v);
    let b = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (b > 127n) {
      this.buf[this.pos++] = Number(b & 127n) | 128;
      b >>= 7n;
    }
    this.buf[this.pos++] = Number(b);
  }

  float(v: number): void {
    this.f32[0] = v;
    this.ensure(4);
    const buf = this.buf;
    const s = this.f32b;
    buf[this.pos] = s[0]!;
    buf[this.pos + 1] = s[1]!;
    buf[this.pos + 2] = s[2]!;
    buf[this.pos + 3] = s[3]!;
    this.pos += 4;
  }

  /** A length-delimited string (length prefix, then UTF-8). */
  string(v: string): void {
    const n = v.length;
    if (n < 128) {
      // one-byte length prefix, if all ASCII
      const start = this.pos;
      this.ensure(n + 1);
      const buf = this.buf;
      let p = start + 1;
      for (let i = 0; i < n; i++) {
        const c = v.charCodeAt(i);
        if (c > 127) return this.utf8String(v);
        buf[p++] = c;
      }
      buf[start] = n;
      this.pos = p;
      return;
    }
    this.utf8String(v);
  }

  /**
   * The UTF-8 of `v` without a length prefix, when it is all ASCII (returns true); otherwise
   * nothing is written and it returns false.
   */
  ascii(v: string): boolean {
    const n = v.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 127) return false;
      buf[p++] = c;
    }
    this.pos = p;
    return true;
  }

  /** A number as `String(v)` writes it, without a length prefix (always ASCII: returns true). */
  decimal(v: number): true {
    if (v >>> 0 !== v) {
      this.ascii(String(v));
      return true;
    }
    let digits = 1;
    for (let x = v; x >= 10; x = (x / 10) >>> 0) digits++;
    this.ensure(digits);
    const buf = this.buf;
    let p = this.pos + digits;
    this.pos = p;
    do {
      const q = (v / 10) >>> 0;
      buf[--p] = 48 + v - q * 10;
      v = q;
    } while (v > 0);
    return true;
  }

  /**
   * protobufjs' BufferWriter: the length is `Buffer.byteLength` (a lone surrogate counts as the 3
   * bytes of U+FFFD); a string shorter than 40 UTF-16 units is then written by protobufjs' own
   * UTF-8 writer (which encodes a lone surrogate as itself, 3 bytes), a longer one by Buffer (as
   * U+FFFD). For well-formed strings both are plain UTF-8.
   */
  private utf8String(v: string): void {
    const len = Buffer.byteLength(v, 'utf8');
    this.varint(len);
    this.ensure(len);
    if (v.length < 40) this.utf8Manual(v);
    else this.pos += this.buf.write(v, this.pos, 'utf8');
  }
  private utf8Manual(v: string): void {
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < v.length; i++) {
      let c1 = v.charCodeAt(i);
      let c2: number;
      if (c1 < 128) {
        buf[p++] = c1;
      } else if (c1 < 2048) {
        buf[p++] = (c1 >> 6) | 192;
        buf[p++] = (c1 & 63) | 128;
      } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = v.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
        c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
        ++i;
        buf[p++] = (c1 >> 18) | 240;
        buf[p++] = ((c1 >> 12) & 63) | 128;
        buf[p++] = ((c1 >> 6) & 63) | 128;
        buf[p++] = (c1 & 63) | 128;
      } else {
        buf[p++] = (c1 >> 12) | 224;
        buf[p++] = ((c1 >> 6) & 63) | 128;
        buf[p++] = (c1 & 63) | 128;
      }
    }
    this.pos = p;
  }

  /** Length-delimited bytes. */
  bytes(v: Uint8Array): void {
    this.varint(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Start a length-delimited value (after its tag); returns what `end` needs. */
  begin(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Write the length of what was written since `begin()` returned `start`. */
  end(start: number): void {
    const len = this.pos - start - 1;
    if (len < 128) {
      this.buf[start] = len;
      return;
    }
    let size = 1;
    for (let x = len; x > 127; x = Math.floor(x / 128)) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(start + size, start + 1, this.pos);
    const end = this.pos + size - 1;
    this.pos = start;
    this.varint(len);
    this.pos = end;
  }

  /**
   * The bytes written: a view of the buffer, or a copy when the unused room is more than a quarter
   * of the bytes and more than 8 MiB (so it is freed; copying a graph's few MB costs milliseconds).
   */
  finish(): Uint8Array {
    const spare = this.buf.length - this.pos;
    return spare <= Math.max(this.pos / 4, 8 << 20) ? this.buf.subarray(0, this.pos) : Uint8Array.prototype.slice.call(this.buf, 0, this.pos);
  }
}
