/**
 * A restricted unpickler written in TypeScript. It interprets the opcodes `torch.save` emits
 * (protocol 2, plus the protocol 3–5 data opcodes used by ColossalAI's pickled U8 blobs) and
 * rebuilds only plain data and tensor *descriptions*: nothing is ever imported, called or
 * executed. Any opcode outside the table below is refused.
 *
 * Globals outside the allow-list:
 *  - a global that runs code or touches the system when PyTorch unpickles it (`posix.system`,
 *    `builtins.eval`, `subprocess.*`, … see CODE_GLOBALS) is refused immediately with an error naming
 *    it (SORA5003): such a file is unsafe to `torch.load`, whatever else it holds;
 *  - any other global (`argparse.Namespace`, `pathlib.PosixPath`, numpy scalars, a training script's
 *    own classes) becomes an inert marker, and reconstructing an object from it (REDUCE, NEWOBJ,
 *    BUILD, SETITEMS/APPENDS on the result) yields an inert record (PyObject: class name, arguments,
 *    state) instead of calling anything. The tensors beside such objects load; the store names what
 *    it skipped.
 *
 * Allow-list (same spirit as torch's weights_only unpickler):
 *   collections.OrderedDict                         → Map
 *   torch._utils._rebuild_tensor_v2 / _rebuild_tensor → PyTensor (a view description)
 *   torch._utils._rebuild_parameter(_with_state)    → the wrapped PyTensor
 *   torch.<Type>Storage (as persistent-id argument)  → storage class
 *   builtins.set / frozenset / bytearray, _codecs.encode (protocol-2 bytes)
 */
import { type DType } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { limit, limitExceeded } from '../../core/limits.ts';

/** Refused (SORA5003: a global or opcode outside the allow-list) or malformed (SORA5005) pickle content. */
export class PickleError extends SoracError {
  constructor(
    public readonly kind: 'global' | 'opcode' | 'format',
    message: string,
    /** For kind "global": the dotted name that was refused. */
    public readonly global?: string,
  ) {
    super(kind === 'format' ? 'SORA5005' : 'SORA5003', message);
    this.name = 'PickleError';
  }
}

export interface PyStorage {
  readonly kind: 'storage';
  readonly key: string;
  readonly dtype: DType;
  readonly className: string;
  readonly location: string;
  /** element count of the typed storage */
  readonly numel: number;
}

export interface PyTensor {
  readonly kind: 'tensor';
  readonly storage: PyStorage;
  /** in elements */
  readonly storageOffset: number;
  readonly shape: readonly number[];
  /** in elements */
  readonly stride: readonly number[];
  readonly requiresGrad: boolean;
  readonly parameter: boolean;
}

export class PyTuple {
  constructor(public readonly items: readonly PyValue[]) {}
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | Map<PyKey, PyValue>
  | Set<PyKey>
  | PyTensor
  | PyStorage
  | PyGlobal
  | PyObject;

export interface PyGlobal {
  readonly kind: 'global';
  readonly name: string;
  /** outside the allow-list: never called; reconstructing from it gives a PyObject */
  readonly inert?: true;
}

/**
 * An object a pickle asked to construct from a global outside the allow-list, recorded as data and
 * never constructed: the class (or callable) name, the arguments REDUCE/NEWOBJ would have passed, the
 * state BUILD would have set, and the items SETITEMS/APPENDS would have added.
 */
export interface PyObject {
  readonly kind: 'object';
  readonly cls: string;
  readonly args: readonly PyValue[];
  state?: PyValue;
  items?: Map<PyKey, PyValue>;
  list?: PyValue[];
}

export function isPyObject(v: unknown): v is PyObject {
  return !!v && typeof v === 'object' && (v as PyObject).kind === 'object';
}

function isInertGlobal(v: unknown): v is PyGlobal {
  return !!v && typeof v === 'object' && (v as PyGlobal).kind === 'global' && (v as PyGlobal).inert === true;
}

/**
 * Globals that run code, spawn processes or touch files/network when a pickle calls them: a pickle
 * that names one is refused outright (it is unsafe to torch.load), although sorac would not call it.
 */
const CODE_MODULES = new Set(['os', 'posix', 'nt', 'subprocess', 'sys', 'importlib', 'runpy', 'pty', 'shutil', 'socket', 'ctypes', 'pickle', '_pickle', 'marshal', 'code', 'codeop', 'webbrowser', 'commands', 'multiprocessing', 'threading', 'signal', 'tempfile', 'io', '_io', 'glob', 'urllib', 'http', 'ftplib', 'smtplib', 'telnetlib', 'asyncio', 'functools', 'operator', 'types', 'inspect', 'gc', 'atexit', 'torch.hub', 'timeit', 'pdb', 'bdb', 'cProfile', 'profile', 'trace', 'zipimport', 'pkgutil', 'distutils', 'setuptools', 'pip']);
const CODE_BUILTINS = new Set(['eval', 'exec', 'compile', '__import__', 'getattr', 'setattr', 'delattr', 'open', 'input', 'breakpoint', 'globals', 'locals', 'vars', 'help', 'exit', 'quit']);

export function isCodeGlobal(full: string): boolean {
  const dot = full.lastIndexOf('.');
  const module = full.slice(0, dot);
  const name = full.slice(dot + 1);
  if (module === 'builtins') return CODE_BUILTINS.has(name);
  const top = module.split('.')[0]!;
  return CODE_MODULES.has(module) || CODE_MODULES.has(top) || name.startsWith('__') || /\b(system|popen|exec|spawn|eval|load|import)/i.test(name);
}

/** storage class → dtype (float8 names as in torch ≥2.1; treat anything else as unsupported). */
export const STORAGE_DTYPE: Readonly<Record<string, DType>> = {
  FloatStorage: 'f32', DoubleStorage: 'f64', HalfStorage: 'f16', BFloat16Storage: 'bf16', LongStorage: 'i64', IntStorage: 'i32',
  ShortStorage: 'i16', CharStorage: 'i8', ByteStorage: 'u8', BoolStorage: 'bool', Float8_e4m3fnStorage: 'f8_e4m3', Float8_e5m2Storage: 'f8_e5m2',
};

const CALLABLE_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Size',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'builtins.set',
  'builtins.frozenset',
  'builtins.bytearray',
  '_codecs.encode',
]);

export interface UnpickleOptions {
  /** Resolve a persistent id (BINPERSID); torch: ('storage', cls, key, location, numel). */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Storage classes found via persistent ids (set by torch's persistentLoad). */
  maxDepth?: number;
}

function isMap(v: unknown): v is Map<PyKey, PyValue> {
  return v instanceof Map;
}

export function isTensor(v: unknown): v is PyTensor {
  return !!v && typeof v === 'object' && (v as PyTensor).kind === 'tensor';
}

function toKey(v: PyValue): PyKey {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return v;
  if (v instanceof PyTuple) {
    // only flat tuples of primitives get a readable key; anything deeper is rejected (no recursion on hostile nesting)
    if (v.items.every((x) => x === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof x)))
      return `(${v.items.map((x) => (typeof x === 'string' ? JSON.stringify(x) : String(x))).join(', ')})`;
    throw new PickleError('format', 'nested tuple used as a dictionary key');
  }
  throw new PickleError('format', 'unhashable dictionary key');
}

function asInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(v);
  throw new PickleError('format', `${what} is not an integer`);
}

function asIntTuple(v: PyValue, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items) throw new PickleError('format', `${what} is not a tuple`);
  return items.map((x) => asInt(x, what));
}

function rebuildTensor(args: readonly PyValue[], parameter = false): PyTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!storage || typeof storage !== 'object' || (storage as PyStorage).kind !== 'storage') throw new PickleError('format', '_rebuild_tensor: first argument is not a storage');
  const shape = asIntTuple(size ?? new PyTuple([]), 'size');
  const strides = asIntTuple(stride ?? new PyTuple([]), 'stride');
  const storageOffset = asInt(offset ?? 0, 'storage offset');
  if (shape.some((d) => d < 0) || strides.some((d) => d < 0) || storageOffset < 0) throw new PickleError('format', '_rebuild_tensor: negative size, stride or offset');
  if (shape.length > 64) throw new PickleError('format', `_rebuild_tensor: ${shape.length} dimensions`);
  let n = 1;
  for (const d of shape) n *= d;
  if (!Number.isSafeInteger(n * 8)) throw new PickleError('format', '_rebuild_tensor: element count overflows');
  return {
    kind: 'tensor',
    storage: storage as PyStorage,
    storageOffset,
    shape,
    stride: strides,
    requiresGrad: requiresGrad === true,
    parameter,
  };
}

function call(fn: PyGlobal, args: readonly PyValue[]): PyValue {
  switch (fn.name) {
    case 'collections.OrderedDict': {
      const m = new Map<PyKey, PyValue>();
      const init = args[0];
      if (Array.isArray(init)) for (const p of init) if (p instanceof PyTuple && p.items.length === 2) m.set(toKey(p.items[0]!), p.items[1]!);
      return m;
    }
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor':
      return rebuildTensor(args);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': {
      const t = args[0];
      if (!isTensor(t)) throw new PickleError('format', '_rebuild_parameter: data is not a tensor');
      return { ...t, requiresGrad: args[1] === true, parameter: true };
    }
    case 'torch._tensor._rebuild_from_type_v2': {
      // torch >= 2: (func, new_type, args, state) for tensors with a __dict__ or a Parameter type
      const [f, newType, fargs] = args;
      if (!f || typeof f !== 'object' || (f as PyGlobal).kind !== 'global') throw new PickleError('format', '_rebuild_from_type_v2: func is not a global');
      const typeName = newType && typeof newType === 'object' && (newType as PyGlobal).kind === 'global' ? (newType as PyGlobal).name : '?';
      if (!TYPE_GLOBALS.has(typeName)) throw new PickleError('global', `refusing tensor subclass ${typeName}`, typeName);
      if (!(fargs instanceof PyTuple)) throw new PickleError('format', '_rebuild_from_type_v2: args is not a tuple');
      const t = call(f as PyGlobal, fargs.items);
      if (!isTensor(t)) throw new PickleError('format', '_rebuild_from_type_v2: func did not build a tensor');
      return typeName === 'torch.nn.parameter.Parameter' ? { ...t, parameter: true } : t;
    }
    case 'torch.Size': {
      const a = args[0];
      return a instanceof PyTuple ? a : new PyTuple(Array.isArray(a) ? a : []);
    }
    case 'builtins.set':
    case 'builtins.frozenset': {
      const it = args[0];
      const items = it instanceof PyTuple ? it.items : Array.isArray(it) ? it : [];
      return new Set(items.map(toKey));
    }
    case 'builtins.bytearray': {
      const a = args[0];
      if (a instanceof Uint8Array) return a;
      if (a === undefined) return new Uint8Array();
      throw new PickleError('format', 'bytearray() with a non-bytes argument');
    }
    case '_codecs.encode': {
      const [s, enc] = args;
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) throw new PickleError('format', '_codecs.encode only supports (str, "latin1")');
      const out = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 255) throw new PickleError('format', '_codecs.encode: character outside latin1');
        out[i] = c;
      }
      return out;
    }
  }
  throw new PickleError('global', `refusing to call ${fn.name}`, fn.name);
}

/** Type markers that may appear as arguments (never called on their own). */
const TYPE_GLOBALS = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);

/** Normalise Python 2 spellings (`__builtin__`) the way pickle's fix_imports does. */
function normaliseGlobal(module: string, name: string): string {
  if (module === '__builtin__') module = 'builtins';
  if (module === 'copy_reg') module = 'copyreg';
  return `${module}.${name}`;
}

function resolveGlobal(module: string, name: string): PyGlobal {
  const full = normaliseGlobal(module, name);
  if (CALLABLE_GLOBALS.has(full) || TYPE_GLOBALS.has(full)) return { kind: 'global', name: full };
  if (module === 'torch' && name in STORAGE_DTYPE) return { kind: 'global', name: full };
  if (module === 'torch' && /Storage$/.test(name))
    throw new PickleError('global', `unsupported storage type ${full} (supported: ${Object.keys(STORAGE_DTYPE).join(', ')})`, full);
  if (isCodeGlobal(full))
    throw new PickleError('global', `refusing pickle global ${full}: torch.load would call it (code execution or system access); nothing in the file is executed`, full);
  return { kind: 'global', name: full, inert: true };
}

/** An inert record for `callee(*args)` where callee is an inert global or another inert record (never called). */
function inertCall(callee: PyValue, args: readonly PyValue[]): PyObject {
  const cls = isInertGlobal(callee) ? callee.name : isPyObject(callee) ? `${callee.cls}(…)` : '?';
  return { kind: 'object', cls, args: [...args] };
}

/**
 * Interpret a pickle. Throws PickleError on anything outside the allow-list or on malformed input.
 * Work is linear in the input size: every opcode consumes at least one byte, and every length
 * is checked against the remaining input before anything is allocated.
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): PyValue {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.length;
  let i = 0;
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  // Resource bounds: objects built (containers, tensors, strings, bytes) and nesting depth of
  // containers as they are built (consumers also walk iteratively or with their own depth cap,
  // since memo references can nest containers after the fact).
  const maxObjects = limit('pickleObjects');
  const maxDepth = limit('nestingDepth');
  let objects = 0;
  const depthOf = new WeakMap<object, number>();
  const built = () => {
    if (++objects > maxObjects) throw limitExceeded('SORA5030', 'pickleObjects', `the pickle builds more than ${maxObjects} objects (at byte ${i})`, objects);
  };
  /** Record that `parent` now holds `children`; refuse nesting past the limit. */
  const nest = (parent: object, children: readonly PyValue[]) => {
    let d = depthOf.get(parent) ?? 1;
    for (const c of children) if (c && typeof c === 'object') d = Math.max(d, (depthOf.get(c) ?? 1) + 1);
    if (d > maxDepth) throw limitExceeded('SORA5030', 'nestingDepth', `the pickle nests containers more than ${maxDepth} deep (at byte ${i})`, d);
    depthOf.set(parent, d);
  };

  const need = (k: number) => {
    if (k < 0 || i + k > n) throw new PickleError('format', `pickle truncated at byte ${i} (needs ${k} more bytes)`);
  };
  const pop = (): PyValue => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) throw new PickleError('format', `stack underflow at byte ${i}`);
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) throw new PickleError('format', `stack underflow at byte ${i}`);
    return stack[stack.length - 1]!;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) throw new PickleError('format', `missing MARK at byte ${i}`);
    return stack.splice(m);
  };
  const str = (len: number): string => {
    need(len);
    let s: string;
    try {
      s = decoder.decode(data.subarray(i, i + len));
    } catch {
      throw new PickleError('format', `invalid UTF-8 string at byte ${i}`);
    }
    i += len;
    return s;
  };
  const bytes = (len: number): Uint8Array => {
    need(len);
    const b = data.slice(i, i + len);
    i += len;
    return b;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(i, true);
    i += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(i, true);
    i += 8;
    if (v > BigInt(n)) throw new PickleError('format', `length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const line = () => {
    const end = data.indexOf(0x0a, i);
    if (end < 0) throw new PickleError('format', 'unterminated GLOBAL line');
    const s = new TextDecoder('latin1').decode(data.subarray(i, end));
    i = end + 1;
    return s;
  };
  const maxLong = limit('pickleLongBytes');
  const long = (len: number): number | bigint => {
    if (len > maxLong) throw limitExceeded('SORA5030', 'pickleLongBytes', `pickled integer of ${len} bytes at byte ${i}`, len);
    need(len);
    if (len === 0) return 0;
    // little-endian two's complement -> bigint in one step (hex), never byte-wise shifts
    const hex = Buffer.from(data.subarray(i, i + len)).reverse().toString('hex');
    let v = BigInt('0x' + hex);
    if (data[i + len - 1]! & 0x80) v -= 1n << BigInt(8 * len);
    i += len;
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (target: PyValue, items: PyValue[]) => {
    if (isPyObject(target)) target.items ??= new Map(); // a dict subclass (defaultdict, ...): items recorded
    if (isPyObject(target)) target = target.items!;
    if (!isMap(target)) throw new PickleError('format', 'SETITEM(S) on a non-dict');
    if (items.length % 2) throw new PickleError('format', 'odd number of SETITEMS arguments');
    for (let k = 0; k < items.length; k += 2) target.set(toKey(items[k]!), items[k + 1]!);
    nest(target, items);
  };
  const push = (v: PyValue, children?: readonly PyValue[]) => {
    built();
    if (children && v && typeof v === 'object') nest(v, children);
    stack.push(v);
  };

  while (i < n) {
    const op = data[i++]!;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (data[i]! > 5) throw new PickleError('format', `unsupported pickle protocol ${data[i]}`);
        i++;
        break;
      case 0x95: // FRAME
        need(8);
        i += 8;
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x63: { // GLOBAL "module\nname\n"
        const mod = line();
        const name = line();
        push(resolveGlobal(mod, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const mod = pop();
        if (typeof mod !== 'string' || typeof name !== 'string') throw new PickleError('format', 'STACK_GLOBAL needs two strings');
        push(resolveGlobal(mod, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!(args instanceof PyTuple)) throw new PickleError('format', 'REDUCE arguments are not a tuple');
        // an inert global (or an inert record used as a callable): recorded, never called
        if (isInertGlobal(fn) || isPyObject(fn)) {
          push(inertCall(fn, args.items), args.items);
          break;
        }
        if (!fn || typeof fn !== 'object' || (fn as unknown as PyGlobal).kind !== 'global') throw new PickleError('format', 'REDUCE on a non-callable');
        push(call(fn as unknown as PyGlobal, args.items), args.items);
        break;
      }
      case 0x81: { // NEWOBJ cls.__new__(cls, *args)
        const nargs = pop();
        const cls = pop();
        const name = cls && typeof cls === 'object' && (cls as PyGlobal).kind === 'global' ? (cls as PyGlobal).name : '?';
        if (name === 'collections.OrderedDict') {
          push(new Map());
          break;
        }
        if (isInertGlobal(cls)) {
          stack.push(inertCall(cls, nargs instanceof PyTuple ? nargs.items : []));
          break;
        }
        throw new PickleError('global', `refusing to instantiate ${name} (NEWOBJ)`, name);
      }
      case 0x62: { // BUILD: only harmless state on dicts / tensors (e.g. OrderedDict._metadata)
        const state = pop();
        const obj = top();
        if (isPyObject(obj)) {
          obj.state = state; // recorded; no __setstate__ runs
          break;
        }
        if (!isMap(obj) && !isTensor(obj)) throw new PickleError('format', 'BUILD on an object that is not a dict or tensor');
        void state;
        break;
      }
      case 0x74: { // TUPLE
        const items = popMark();
        push(new PyTuple(items), items);
        break;
      }
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x85: { const a = pop(); push(new PyTuple([a]), [a]); break; } // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); push(new PyTuple([a, b]), [a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); push(new PyTuple([a, b, c]), [a, b, c]); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: { const items = popMark(); push(items, items); break; } // LIST
      case 0x7d: push(new Map()); break; // EMPTY_DICT
      case 0x64: { const m = new Map<PyKey, PyValue>(); setItems(m, popMark()); push(m); break; } // DICT
      case 0x8f: push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw new PickleError('format', 'ADDITEMS on a non-set');
        for (const x of items) s.add(toKey(x));
        break;
      }
      case 0x91: push(new Set(popMark().map(toKey))); break; // FROZENSET
      case 0x61: { // APPEND
        const v = pop();
        const t = top();
        const l = isPyObject(t) ? (t.list ??= []) : t;
        if (!Array.isArray(l)) throw new PickleError('format', 'APPEND on a non-list');
        l.push(v);
        nest(l, [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const t = top();
        const l = isPyObject(t) ? (t.list ??= []) : t;
        if (!Array.isArray(l)) throw new PickleError('format', 'APPENDS on a non-list');
        for (const x of items) l.push(x);
        nest(l, items);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: need(4); push(dv.getInt32(i, true)); i += 4; break; // BININT
      case 0x4b: need(1); push(data[i++]!); break; // BININT1
      case 0x4d: need(2); push(dv.getUint16(i, true)); i += 2; break; // BININT2
      case 0x8a: { need(1); const len = data[i++]!; push(long(len)); break; } // LONG1
      case 0x8b: { const len = u32(); push(long(len)); break; } // LONG4
      case 0x47: need(8); push(dv.getFloat64(i, false)); i += 8; break; // BINFLOAT (big-endian)
      case 0x58: { const len = u32(); push(str(len)); break; } // BINUNICODE
      case 0x8c: { need(1); const len = data[i++]!; push(str(len)); break; } // SHORT_BINUNICODE
      case 0x8d: { const len = u64(); push(str(len)); break; } // BINUNICODE8
      case 0x55: { need(1); const len = data[i++]!; push(new TextDecoder('latin1').decode(bytes(len))); break; } // SHORT_BINSTRING
      case 0x54: { need(4); const len = dv.getInt32(i, true); i += 4; if (len < 0) throw new PickleError('format', 'negative BINSTRING length'); push(new TextDecoder('latin1').decode(bytes(len))); break; } // BINSTRING
      case 0x42: { const len = u32(); push(bytes(len)); break; } // BINBYTES
      case 0x43: { need(1); const len = data[i++]!; push(bytes(len)); break; } // SHORT_BINBYTES
      case 0x8e: { const len = u64(); push(bytes(len)); break; } // BINBYTES8
      case 0x96: { const len = u64(); push(bytes(len)); break; } // BYTEARRAY8
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw new PickleError('format', 'persistent id in a pickle that should not have any');
        push(opts.persistentLoad(pid));
        break;
      }
      case 0x68: { need(1); const k = data[i++]!; if (!memo.has(k)) throw new PickleError('format', `memo key ${k} missing`); push(memo.get(k)!); break; } // BINGET
      case 0x6a: { const k = u32(); if (!memo.has(k)) throw new PickleError('format', `memo key ${k} missing`); push(memo.get(k)!); break; } // LONG_BINGET
      case 0x71: { need(1); memo.set(data[i++]!, top()); break; } // BINPUT
      case 0x72: { const k = u32(); memo.set(k, top()); break; } // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      default: {
        const names: Record<number, string> = { 0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x50: 'PERSID', 0x92: 'NEWOBJ_EX', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER' };
        const nm = names[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
        throw new PickleError('opcode', `refusing pickle opcode ${nm} at byte ${i - 1}: outside the restricted opcode set`);
      }
    }
  }
  throw new PickleError('format', 'pickle ended without STOP (truncated?)');
}

/**
 * Convert plain pickled data (no tensors) to JSON-friendly values, e.g. for sampler / lr_scheduler
 * files. Cycles print as "<cycle>"; depth and total node count are bounded, so a hostile pickle
 * (a list holding itself twice, repeated at every level) cannot make this exponential.
 */
export function toPlain(v: PyValue, depth = 0, budget = { nodes: 100_000 }, stack = new Set<object>()): unknown {
  if (--budget.nodes < 0) return '…';
  if (depth > 64) return '…';
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (typeof v === 'object') {
    if (stack.has(v)) return '<cycle>';
    stack.add(v);
    try {
      if (Array.isArray(v)) return v.map((x) => toPlain(x, depth + 1, budget, stack));
      if (v instanceof PyTuple) return v.items.map((x) => toPlain(x, depth + 1, budget, stack));
      if (v instanceof Set) return [...v].map((x) => toPlain(x as PyValue, depth + 1, budget, stack));
      if (v instanceof Map) {
        const o: Record<string, unknown> = Object.create(null);
        for (const [k, x] of v) o[String(k)] = toPlain(x, depth + 1, budget, stack);
        return o;
      }
      if (isPyObject(v)) {
        // an inert record: what the pickle would have constructed, as data
        const o: Record<string, unknown> = { __class__: v.cls };
        if (v.args.length) o.args = v.args.map((x) => toPlain(x, depth + 1, budget, stack));
        if (v.state !== undefined) o.state = toPlain(v.state, depth + 1, budget, stack);
        if (v.items) o.items = toPlain(v.items, depth + 1, budget, stack);
        if (v.list) o.list = toPlain(v.list, depth + 1, budget, stack);
        return o;
      }
    } finally {
      stack.delete(v);
    }
  }
  if (isTensor(v)) return `<tensor ${v.storage.dtype}[${v.shape.join(',')}]>`;
  if ((v as PyStorage).kind === 'storage') return `<storage ${(v as PyStorage).className}>`;
  return `<${(v as PyGlobal).name}>`;
}
