/**
 * A small strict JSON parser for untrusted headers: rejects duplicate object keys (JSON.parse
 * silently keeps the last), bounds nesting depth, and reports a position. Integer literals are
 * returned as JS numbers when safe and as bigint beyond 2^53 (so a u64 offset is never silently
 * rounded); literals with a fraction or exponent are JsonFloat, so `1.0` is never taken for an
 * integer (serde rejects it for usize fields too).
 */
import { SoracError } from '../../core/errors.ts';

/** Invalid JSON in a checkpoint header or index (the caller re-raises it with the file's own code). */
export class StrictJsonError extends SoracError {
  constructor(
    public readonly kind: 'syntax' | 'duplicate-key' | 'depth',
    message: string,
    public readonly pos: number,
  ) {
    super('SORA5002', message);
    this.name = 'StrictJsonError';
  }
}

/** A number written with a fraction or exponent (`1.0`, `1e2`): never accepted where an integer is required. */
export class JsonFloat {
  constructor(public readonly value: number) {}
  toJSON() {
    return this.value;
  }
}

export type JsonValue = null | boolean | number | bigint | JsonFloat | string | JsonValue[] | { [k: string]: JsonValue };

export interface StrictJsonLimits {
  /** nesting depth (default 64) */
  readonly maxDepth?: number;
  /** members of the top-level object; `onTooMany` is called past it (before more is parsed) */
  readonly maxTopKeys?: number;
  /** elements of any array; `onTooMany` is called past it */
  readonly maxArrayItems?: number;
  readonly onTooMany?: (what: 'keys' | 'items', count: number) => never;
}

export function parseStrictJson(text: string, limits: StrictJsonLimits | number = {}): JsonValue {
  const lim: StrictJsonLimits = typeof limits === 'number' ? { maxDepth: limits } : limits;
  const maxDepth = lim.maxDepth ?? 64;
  const maxTopKeys = lim.maxTopKeys ?? Infinity;
  const maxArrayItems = lim.maxArrayItems ?? Infinity;
  const tooMany = (what: 'keys' | 'items', count: number): never => {
    if (lim.onTooMany) lim.onTooMany(what, count);
    throw new StrictJsonError('syntax', `more than ${count - 1} ${what === 'keys' ? 'object members' : 'array elements'}`, i);
  };
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const fail = (msg: string): never => {
    throw new StrictJsonError('syntax', `${msg} at position ${i}`, i);
  };
  const str = (): string => {
    // at opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        i++;
        const e = text[i];
        i++;
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const h = text.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
            out += String.fromCharCode(parseInt(h, 16));
            i += 4;
            break;
          }
          default:
            fail('bad escape');
        }
        start = i;
        continue;
      }
      i++;
    }
  };
  const NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  const num = (): number | bigint | JsonFloat => {
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) fail('bad number');
    const s = m![0];
    i += s.length;
    if (!m![1] && !m![2]) {
      const v = Number(s);
      if (Number.isSafeInteger(v)) return v;
      return BigInt(s);
    }
    return new JsonFloat(Number(s));
  };
  const value = (depth: number): JsonValue => {
    if (depth > maxDepth) throw new StrictJsonError('depth', `nesting deeper than ${maxDepth}`, i);
    ws();
    if (i >= n) fail('unexpected end');
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [k: string]: JsonValue } = Object.create(null);
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const keyPos = i;
        const k = str();
        if (seen.has(k)) throw new StrictJsonError('duplicate-key', `duplicate key ${JSON.stringify(k)} at position ${keyPos}`, keyPos);
        seen.add(k);
        if (depth === 0 && seen.size > maxTopKeys) tooMany('keys', seen.size);
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        obj[k] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        if (arr.length >= maxArrayItems) tooMany('items', arr.length + 1);
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    if (c === 't' && text.startsWith('true', i)) return (i += 4), true;
    if (c === 'f' && text.startsWith('false', i)) return (i += 5), false;
    if (c === 'n' && text.startsWith('null', i)) return (i += 4), null;
    if (c === '-' || (c! >= '0' && c! <= '9')) return num();
    return fail(`unexpected character ${JSON.stringify(c)}`);
  };
  const v = value(0);
  ws();
  if (i !== n) fail('trailing characters after the JSON value');
  return v;
}
