/**
 * Config inference: which config of a `.sora` model produced a checkpoint, solved from the checkpoint's
 * header (key → shape) alone, with no per-model code. The compiler is the oracle: every keymap shape is
 * a function of the config, so the solver re-traces the model at probe configs (asserts lenient, one
 * parsed program reused) and
 *
 *   - counts (`depth`, `layers_per_block`: ints that move only instance extents, the number of distinct
 *     indices of a key template such as `blocks.#.attn.qkv.weight`) are solved first, from the extents;
 *     a solved count is then probed at one instance (tracing 28 blocks per probe is the cost);
 *   - list lengths are first set from the top-level instance counts (`encoder.stages.#`), so that
 *     per-element choices line up with the header's stages; a nested index is counted per enclosing
 *     instance (`encoder.stages.2.op_list.#`: one element of a per-stage depth list);
 *   - booleans keep the value whose key templates (then keys) match the header; a nullable list
 *     (`kernel_size: int[]? = none`) is a flag `set(kernel_size)`; strings compared with literals in the
 *     model (`block_type == "ResBlock"`) keep the literal whose keys are nearest, when no other is as near;
 *   - sizes, list lengths and the rest come from equations: a probe tells which (tensor, axis) and which
 *     extents each value moves; a dimension moved by only one still-unknown value is solved for it
 *     (linear `6*hidden_size`, `hidden_size*mlp_ratio` once `hidden_size` is known, inverse
 *     `hidden_size/num_heads`, log2, else integer bisection), each answer re-traced; several per round,
 *     rounds repeated to a fixpoint;
 *   - a flag solved from a shape is flipped at the end with one size re-solved: if that fits too, both are
 *     undetermined (`num_heads` and `set(kernel_size)` only meet in `rope.freqs`);
 *   - values that no shape or key depends on are *undetermined* (the base value: a config.json, `--set`
 *     or the defaults); values only seen as a product (`input_size[1] * input_size[2]`) are undetermined
 *     too, one fitted so that the tensor matches and named as such; a dimension no value gives is a
 *     *contradiction* for that value.
 *
 * The inferred config is verified by a strict compile and a comparison of the whole keymap with the
 * header. Pure: no I/O beyond the Host.
 */
import type { Keymap } from '../core/keymap.ts';
import { compile } from './compile.ts';
import type { ConfigInput } from './model.ts';
import { type Host, type Program, loadProgram } from './program.ts';
import { paramsOf } from './interp.ts';
import type * as A from '../grammar/ast.ts';

/** A checkpoint header: key → shape. */
export type HeaderShapes = ReadonlyMap<string, readonly number[]>;

export type ConfigSource = 'weights' | 'base';

export interface InferredValue {
  /** config key, with `[i]` for a list element and `len(...)` for a list length */
  readonly key: string;
  readonly value: unknown;
  /** determined: solved from the weights; undetermined: no shape or key depends on it (base value kept) */
  readonly status: 'determined' | 'undetermined' | 'contradiction';
  /** the tensor that determined it (`spatial_blocks.0.mlp.fc1.weight[0]`) or why it is undetermined */
  readonly evidence?: string;
}

export interface FitReport {
  readonly matched: number;
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly mismatched: readonly { key: string; model: readonly number[]; checkpoint: readonly number[] }[];
}

export interface InferResult {
  readonly modelName: string;
  readonly version: string;
  /** the base config the solver started from (defaults, config file, --set) */
  readonly base: Readonly<Record<string, unknown>>;
  /** the full config (inferred values over the base) that the verification compiled */
  readonly config: Readonly<Record<string, unknown>>;
  readonly values: readonly InferredValue[];
  /** the inferred config's keymap against the header */
  readonly fit: FitReport;
  /** true when the keymap at the inferred config equals the header (keys and shapes) */
  readonly exact: boolean;
  /** 0..1: matched keys with equal shapes / (model keys ∪ checkpoint keys) */
  readonly score: number;
  /** the errors of the inferred config when it does not compile (an assert no checkpoint of this model can break) */
  readonly invalid?: readonly string[];
  /** probe compiles it took */
  readonly compiles: number;
  /** the keymap at the inferred config (undefined when it does not compile) */
  readonly keymap?: Keymap;
}

export interface InferOptions {
  readonly file: string;
  readonly host: Host;
  readonly cwd?: string;
  readonly model?: string;
  readonly header: HeaderShapes;
  /** the base config (config.json beside the weights, --config, --set): start values, and the values of undetermined keys */
  readonly base?: ConfigInput;
  /** a parsed program to reuse (the same file), e.g. across many headers */
  readonly program?: Program;
  /** config keys given explicitly (`--set`): kept as given, never solved */
  readonly pinned?: ReadonlySet<string>;
  /** an upper bound on probe compiles (default 400) */
  readonly maxCompiles?: number;
}

/** opt: a nullable list (`kernel_size: int[]? = none`), set or none; str: a string among the literals the model compares it with */
type SlotKind = 'int' | 'float' | 'bool' | 'len' | 'opt' | 'str';
interface Slot {
  /** config key; for a list length, the lists whose lengths move together (`block_out_channels`, `down_block_types`, ...) */
  readonly name: string;
  readonly names?: readonly string[];
  readonly index?: number;
  readonly kind: SlotKind;
  /** opt: the list a probe set it to (its elements are then slots of their own) */
  fill?: unknown[];
  /** str: the values to try */
  readonly choices?: readonly string[];
}

const slotKey = (s: Slot): string => (s.kind === 'len' ? `len(${(s.names ?? [s.name]).join(', ')})` : s.kind === 'opt' ? `set(${s.name})` : s.index !== undefined ? `${s.name}[${s.index}]` : s.name);

type Cfg = Record<string, unknown>;

type SlotValue = number | boolean | string;

function getSlot(cfg: Cfg, s: Slot): SlotValue | undefined {
  const v = cfg[s.name];
  if (s.kind === 'len') return Array.isArray(v) ? v.length : undefined;
  if (s.kind === 'opt') return v !== null && v !== undefined;
  const x = s.index !== undefined ? (Array.isArray(v) ? v[s.index] : undefined) : v;
  return typeof x === 'number' || typeof x === 'boolean' || (s.kind === 'str' && typeof x === 'string') ? x : undefined;
}

function setSlot(cfg: Cfg, s: Slot, value: SlotValue): Cfg {
  const out = { ...cfg };
  if (s.kind === 'opt') {
    if (!value) out[s.name] = null;
    else if (!Array.isArray(cfg[s.name])) out[s.name] = s.fill ? [...s.fill] : null;
  } else if (s.kind === 'len') {
    for (const name of s.names ?? [s.name]) {
      const arr = [...((cfg[name] as unknown[]) ?? [])];
      const n = value as number;
      if (n < arr.length) arr.length = n;
      else while (arr.length < n) arr.push(arr[arr.length - 1]);
      out[name] = arr;
    }
  } else if (s.index !== undefined) {
    const arr = [...(cfg[s.name] as unknown[])];
    arr[s.index] = value;
    out[s.name] = arr;
  } else out[s.name] = value;
  return out;
}

/** Key with every numeric path segment replaced by `#`. */
export function keyTemplate(key: string): string {
  return key.replace(/(^|\.)\d+(?=\.|$)/g, '$1#');
}

/**
 * Instance extents: for each key template and each numeric segment of it, how many distinct indices the
 * keys hold there (`spatial_blocks.#.attn.qkv.weight@0` → depth). Counts and list lengths are solved from these.
 */
function extents(keys: Iterable<string>): Map<string, number> {
  const seen = new Map<string, Set<string>>();
  for (const k of keys) {
    const parts = k.split('.');
    const nums: number[] = [];
    parts.forEach((p, i) => (/^\d+$/.test(p) ? nums.push(i) : undefined));
    if (!nums.length) continue;
    const tpl = keyTemplate(k);
    nums.forEach((pos, j) => {
      const prefix = parts.slice(0, pos).join('.');
      // a nested index is counted per enclosing instance (`encoder.stages.2.op_list.#...`: stage 2's depth,
      // one value of a per-stage depth list), the outermost over the whole checkpoint
      const id = j > 0 ? `@${prefix}.${keyTemplate(parts.slice(pos).join('.'))}@${j}` : `@${tpl}@${j}`;
      let set = seen.get(id);
      if (!set) seen.set(id, (set = new Set()));
      set.add(`${prefix}.${parts[pos]}`);
    });
  }
  // distinct indices per enclosing instance, maximised over instances
  const out = new Map<string, number>();
  for (const [id, set] of seen) {
    const per = new Map<string, number>();
    for (const x of set) {
      const at = x.lastIndexOf('.');
      const parent = x.slice(0, at);
      per.set(parent, (per.get(parent) ?? 0) + 1);
    }
    out.set(id, Math.max(...per.values()));
  }
  return out;
}

/** String literals the program compares a name with (`block_type == "ResBlock"`): name → literals. */
function comparedLiterals(program: Program): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    if (Array.isArray(n)) return n.forEach(walk);
    const o = n as Record<string, unknown>;
    if (o.kind === 'binary' && (o.op === '==' || o.op === '!=')) {
      const l = o.left as { kind?: string; name?: string; value?: string };
      const r = o.right as { kind?: string; name?: string; value?: string };
      for (const [a, b] of [[l, r], [r, l]] as const)
        if (a.kind === 'name' && b.kind === 'str' && typeof a.name === 'string' && typeof b.value === 'string') {
          let set = out.get(a.name);
          if (!set) out.set(a.name, (set = new Set()));
          set.add(b.value);
        }
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'span') walk(v);
  };
  for (const f of program.files.values()) walk(f.ast);
  walk(program.root.ast);
  return out;
}

/** the literals a config string is compared with: under its own name or a suffix of it (`encoder_block_type` → `block_type`) */
function choicesOf(name: string, lits: Map<string, Set<string>>, own: readonly unknown[]): string[] {
  const out = new Set<string>(own.filter((x): x is string => typeof x === 'string'));
  for (const [n, set] of lits) if (n === name || (n.includes('_') && name.endsWith(`_${n}`))) for (const x of set) out.add(x);
  return out.size > 1 ? [...out] : [];
}

/** The slots of a model's config that inference can solve: ints, floats, bools, strings compared with literals, nullable lists (set or none), list elements and variable list lengths. */
function slotsOf(decl: A.ModuleDecl, defaults: Cfg, lits: Map<string, Set<string>>): Slot[] {
  const out: Slot[] = [];
  const lenGroups = new Map<number, string[]>();
  for (const p of paramsOf(decl)) {
    const name = p.name.name;
    const t = p.type?.name?.name;
    const v = defaults[name];
    if (p.type?.dims) {
      if (p.type.optional && v === null && (t === 'int' || t === 'float')) {
        out.push({ name, kind: 'opt' });
        continue;
      }
      if (!Array.isArray(v) || !v.length) continue;
      const fixed = p.type.dims.length === 1 && p.type.dims[0]!.kind === 'num';
      const elem: SlotKind | undefined = t === 'int' ? 'int' : t === 'float' ? 'float' : t === 'bool' ? 'bool' : undefined;
      if (!fixed && (elem || t === 'str')) {
        const g = lenGroups.get(v.length);
        if (g) g.push(name);
        else lenGroups.set(v.length, [name]);
      }
      if (elem) v.forEach((x, i) => (typeof x === (elem === 'bool' ? 'boolean' : 'number') ? out.push({ name, index: i, kind: elem }) : undefined));
      const choices = t === 'str' ? choicesOf(name, lits, v) : [];
      if (choices.length) v.forEach((x, i) => (typeof x === 'string' ? out.push({ name, index: i, kind: 'str', choices }) : undefined));
      continue;
    }
    if (t === 'str' && typeof v === 'string') {
      const choices = choicesOf(name, lits, [v]);
      if (choices.length) out.push({ name, kind: 'str', choices });
      continue;
    }
    if (t === 'int' && typeof v === 'number') out.push({ name, kind: 'int' });
    else if (t === 'float' && typeof v === 'number') out.push({ name, kind: 'float' });
    else if (t === 'bool' && typeof v === 'boolean') out.push({ name, kind: 'bool' });
  }
  // list lengths first: element slots past a new length are dropped and re-made after the length is solved
  return [...[...lenGroups.values()].map((names): Slot => ({ name: names[0]!, names, kind: 'len' })), ...out];
}

/** Compare a keymap with a header: missing, unexpected, mismatched; tied-weight aliases satisfied by either name. */
export function fitOf(km: Keymap, header: HeaderShapes): FitReport {
  const missing: string[] = [];
  const mismatched: { key: string; model: readonly number[]; checkpoint: readonly number[] }[] = [];
  let matched = 0;
  const seen = new Set<string>();
  for (const [k, e] of Object.entries(km.tensors)) {
    let h = header.get(k);
    if (h) seen.add(k);
    if (!h && e.alias) h = header.get(e.alias);
    if (!h) {
      // the alias target may be held under this key instead
      const aliasOfThis = Object.entries(km.tensors).find(([, o]) => o.alias === k)?.[0];
      if (aliasOfThis && header.get(aliasOfThis)) continue;
      missing.push(k);
      continue;
    }
    if (h.length === e.shape.length && h.every((d, i) => d === e.shape[i])) matched++;
    else mismatched.push({ key: k, model: e.shape, checkpoint: h });
  }
  const unexpected = [...header.keys()].filter((k) => !seen.has(k) && !(k in km.tensors));
  return { matched, missing, unexpected, mismatched };
}

function scoreOf(f: FitReport): number {
  const total = f.matched + f.missing.length + f.unexpected.length + f.mismatched.length;
  return total ? f.matched / total : 0;
}

function describeDim(id: string): string {
  const m = /^@(.*)@(\d+)$/.exec(id);
  return m ? `the number of ${m[1]} (index ${Number(m[2]) + 1})` : id;
}

/**
 * Infer the config of `file`'s model from a checkpoint header. Throws nothing for a header that does not
 * fit: the result's `fit`/`exact` say how well the best config found matches.
 */
export function inferConfig(opts: InferOptions): InferResult | { error: string } {
  const program = opts.program ?? loadProgram(opts.file, opts.host, { ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const maxCompiles = opts.maxCompiles ?? 400;
  let compiles = 0;
  const memo = new Map<string, Keymap | undefined>();
  let decl: A.ModuleDecl | undefined;
  let strictErrors: string[] = [];
  const compileAt = (cfg: Cfg | undefined, strict = false): Keymap | undefined => {
    const id = JSON.stringify(cfg ?? null) + (strict ? '!' : '');
    if (memo.has(id)) return memo.get(id);
    if (compiles >= maxCompiles) return undefined;
    compiles++;
    const m = compile({ file: opts.file, host: opts.host, program, lenientAsserts: !strict, ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.model ? { model: opts.model } : {}), config: cfg ? { values: cfg } : (opts.base ?? {}) });
    const ok = m.keymap && !m.diagnostics.some((d) => d.severity === 'error');
    if (strict) strictErrors = m.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code}: ${d.message}`);
    if (ok && !decl) decl = m.program.root.ast.decls.find((d): d is A.ModuleDecl => d.kind === 'module' && d.isModel && d.name.name === m.modelName);
    const km = ok ? m.keymap : undefined;
    memo.set(id, km);
    return km;
  };
  // the base: defaults + config.json / --set
  const km0 = compileAt(undefined, true) ?? compileAt(undefined);
  if (!km0 || !decl) return { error: `${opts.file} does not compile with the base config${strictErrors.length ? `: ${strictErrors[0]}` : ''}` };
  const header = opts.header;
  let cur: Cfg = { ...km0.config };
  memo.set(JSON.stringify(cur), km0);
  const slots = slotsOf(decl, cur, comparedLiterals(program)).filter((s) => !opts.pinned?.has(s.name) && !(s.names ?? []).some((n) => opts.pinned?.has(n)));
  const status = new Map<string, { status: InferredValue['status']; evidence?: string }>();
  const known = new Set<string>();

  const headerKeys = new Set(header.keys());
  const headerTemplates = new Set([...headerKeys].map(keyTemplate));
  /** how far a keymap's key set is from the header's: templates first (counts aside), then exact keys */
  const keySetDiff = (km: Keymap): number => {
    let d = 0;
    let t = 0;
    const tpls = new Set<string>();
    for (const k of Object.keys(km.tensors)) {
      tpls.add(keyTemplate(k));
      if (!headerKeys.has(k) && !(km.tensors[k]!.alias && headerKeys.has(km.tensors[k]!.alias!))) d++;
    }
    for (const k of headerKeys) if (!(k in km.tensors)) d++;
    for (const x of tpls) if (!headerTemplates.has(x)) t++;
    for (const x of headerTemplates) if (!tpls.has(x)) t++;
    return t * 1e6 + d;
  };
  const sameKeys = (a: Keymap, b: Keymap): boolean => {
    const ka = Object.keys(a.tensors);
    return ka.length === Object.keys(b.tensors).length && ka.every((k) => k in b.tensors);
  };

  /** a second value for a slot that still compiles (for sensitivity): +1, x2, x3, -1 */
  const probe = (cfg: Cfg, s: Slot, base: Keymap, moves?: (km: Keymap) => boolean): { value: SlotValue; km: Keymap } | undefined => {
    const v = getSlot(cfg, s);
    if (v === undefined) return undefined;
    if (s.kind === 'opt' && !v && !s.fill) {
      // a nullable list set: the shortest list of ones the model accepts (its elements are solved, or named undetermined, after)
      for (let n = 1; n <= 4 && !s.fill; n++) {
        s.fill = Array(n).fill(1);
        if (!compileAt(setSlot(cfg, s, true))) s.fill = undefined;
      }
      if (!s.fill) return undefined;
    }
    const cands: SlotValue[] =
      s.kind === 'str' ? (s.choices ?? []).filter((c) => c !== v) : s.kind === 'bool' || s.kind === 'opt' ? [!v] : s.kind === 'float' ? [(v as number) * 2 || 1, (v as number) + 1, (v as number) / 2] : [(v as number) + 1, (v as number) * 2, Math.floor((v as number) / 2), (v as number) - 1, (v as number) + 2];
    let first: { value: SlotValue; km: Keymap } | undefined;
    let tried = 0;
    for (const c of cands) {
      if (typeof c === 'number' && s.kind !== 'float' && c < (s.kind === 'len' ? 1 : 0)) continue;
      const km = compileAt(setSlot(cfg, s, c));
      if (!km || km === base) continue;
      first ??= { value: c, km };
      // a probe that moves nothing (33 // 2 == 32 // 2) may still hide a dependency: one more value
      if (!moves || moves(km) || ++tried >= 3) return moves && !moves(km) ? first : { value: c, km };
    }
    return first;
  };

  // ---- phase A: booleans that change the key set keep the value whose keys match the header ----
  const keyBools = new Set<string>();
  const boolPass = (): boolean => {
    let changed = false;
    for (const s of slots) {
      if (s.kind === 'str') {
        // every choice: the one whose keys are nearest the header's (exact keys: the key patterns are shared
        // between instances, `stages.#...aggreg` stays while any stage has it); when another is as near it
        // is kept, not determined, and tried again once other values have moved (a per-stage depth)
        const base = compileAt(cur);
        if (!base) break;
        const v = getSlot(cur, s);
        const near = (km: Keymap): number => keySetDiff(km) % 1e6;
        let best: { value: SlotValue; d: number; km: Keymap } = { value: v!, d: near(base), km: base };
        let tie = false;
        let moved = false;
        for (const c of s.choices ?? []) {
          if (c === v) continue;
          const km = compileAt(setSlot(cur, s, c));
          if (!km) continue;
          if (!sameKeys(km, base)) moved = true;
          const d = near(km);
          if (d < best.d) [best, tie] = [{ value: c, d, km }, false];
          else if (d === best.d && !sameKeys(km, best.km)) tie = true;
        }
        if (!moved) continue;
        if (tie) keyBools.delete(slotKey(s));
        else keyBools.add(slotKey(s));
        if (best.value !== v) {
          cur = setSlot(cur, s, best.value);
          changed = true;
        }
        continue;
      }
      if (s.kind !== 'bool' && s.kind !== 'opt') continue;
      const base = compileAt(cur);
      if (!base) break;
      const p = probe(cur, s, base);
      if (!p || sameKeys(p.km, base)) continue;
      keyBools.add(slotKey(s));
      if (keySetDiff(p.km) < keySetDiff(base)) {
        cur = setSlot(cur, s, p.value);
        changed = true;
      }
    }
    return changed;
  };

  // ---- phase B: sizes, counts and list lengths from shape equations and instance extents ----
  type DimId = string; // `${key}[${axis}]` or `@${template}@${segment}`
  const hdims = new Map<DimId, number>();
  for (const [k, shape] of header) shape.forEach((d, i) => hdims.set(`${k}[${i}]`, d));
  for (const [id, n] of extents(header.keys())) hdims.set(id, n);
  const dimsOf = (km: Keymap): Map<DimId, number> => {
    const out = new Map<DimId, number>();
    for (const [k, e] of Object.entries(km.tensors)) {
      const hk = header.has(k) ? k : e.alias && header.has(e.alias) ? e.alias : undefined;
      if (!hk || header.get(hk)!.length !== e.shape.length) continue;
      e.shape.forEach((d, i) => out.set(`${hk}[${i}]`, d));
    }
    for (const [id, n] of extents(Object.keys(km.tensors))) if (hdims.has(id)) out.set(id, n);
    return out;
  };
  /** solved counts held at 1 while the rest is probed */
  const shrunk = new Map<Slot, number>();
  const disturbed = new Set<string>();
  /** a solved count (depth = 28): probe the rest with one instance, which is much cheaper to trace; restored at the end */
  const shrink = (s: Slot, value: number): void => {
    if (value <= 1) return;
    const small = setSlot(cur, s, 1);
    const kmSmall = compileAt(small);
    const kmFull = compileAt(cur);
    if (kmSmall && kmFull && Object.keys(kmSmall.tensors).length < Object.keys(kmFull.tensors).length) {
      // dims the shrink changes (the count's own extents, ...) say nothing about the others
      const ds = dimsOf(kmSmall);
      for (const [id, v] of dimsOf(kmFull)) if (ds.get(id) !== v) disturbed.add(id);
      shrunk.set(s, value);
      cur = small;
    }
  };
  // ---- counts first: ints that move only instance counts (depth, layers_per_block), solved from the extents ----
  const counts = new Set<Slot>();
  for (const s of slots) {
    if (s.kind !== 'int' || s.index !== undefined) continue;
    const base = compileAt(cur);
    if (!base) break;
    const d0 = dimsOf(base);
    const p = probe(cur, s, base);
    if (!p) continue;
    const d1 = dimsOf(p.km);
    const moved = [...d0.keys()].filter((id) => d1.get(id) !== d0.get(id));
    if (!moved.length || moved.some((id) => !id.startsWith('@') || disturbed.has(id))) continue;
    const id = moved[0]!;
    const h = hdims.get(id);
    const a = d0.get(id)!;
    const b = d1.get(id);
    if (h === undefined || b === undefined || a === b) continue;
    const x0 = getSlot(cur, s) as number;
    const x = x0 + ((h - a) * ((p.value as number) - x0)) / (b - a);
    if (!Number.isInteger(x) || x < 0) continue;
    const next = setSlot(cur, s, x);
    const km = compileAt(next);
    if (!km) continue;
    const dn = dimsOf(km);
    if (!moved.every((m) => dn.get(m) === hdims.get(m))) continue;
    cur = next;
    status.set(slotKey(s), { status: 'determined', evidence: describeDim(id) });
    counts.add(s);
    shrink(s, x);
  }
  /** string element slots of a list whose length changed: one per element */
  const fitStrSlots = (name: string): void => {
    const proto = slots.find((x) => x.name === name && x.kind === 'str');
    if (!proto) return;
    const n = (cur[name] as unknown[]).length;
    for (let i = slots.length - 1; i >= 0; i--)
      if (slots[i]!.name === name && slots[i]!.kind === 'str' && slots[i]!.index! >= n) {
        keyBools.delete(slotKey(slots[i]!));
        slots.splice(i, 1);
      }
    for (let i = 0; i < n; i++) if (!slots.some((x) => x.name === name && x.kind === 'str' && x.index === i)) slots.push({ ...proto, index: i });
  };
  /**
   * List lengths before the strings and flags: the per-element choices (`block_type[s]`) are read off the
   * keys of stage s, which only line up at the right number of stages. Each candidate from the top-level
   * instance counts is tried; the one whose keys are nearest the header's is kept (verified in phase B).
   */
  const lenPass = (): void => {
    for (const s of slots) {
      if (s.kind !== 'len') continue;
      const base = compileAt(cur);
      if (!base) return;
      const p = probe(cur, s, base);
      if (!p) continue;
      const d0 = dimsOf(base);
      const d1 = dimsOf(p.km);
      const x0 = getSlot(cur, s) as number;
      const cands = new Set<number>();
      for (const [id, a] of d0) {
        const b = d1.get(id);
        const h = hdims.get(id);
        if (!id.startsWith('@') || !id.endsWith('@0') || b === undefined || h === undefined || a === b) continue;
        const x = x0 + ((h - a) * ((p.value as number) - x0)) / (b - a);
        if (Number.isInteger(x) && x >= 1 && x !== x0) cands.add(x);
      }
      let best = { x: x0, d: keySetDiff(base) };
      for (const x of cands) {
        const km = compileAt(setSlot(cur, s, x));
        if (km && keySetDiff(km) < best.d) best = { x, d: keySetDiff(km) };
      }
      if (best.x !== x0) {
        cur = setSlot(cur, s, best.x);
        for (const name of s.names ?? [s.name]) fitStrSlots(name);
      }
    }
  };
  lenPass();
  for (let pass = 0; pass < 3 && boolPass(); pass++);
  const pending = slots.filter((s) => !keyBools.has(slotKey(s)) && !counts.has(s) && s.kind !== 'str');
  /** the element slots of a list whose length changed or that was set (a nullable list): re-made, pending */
  const remakeElements = (name: string): void => {
    for (let i = slots.length - 1; i >= 0; i--)
      if (slots[i]!.name === name && slots[i]!.index !== undefined && slots[i]!.kind !== 'str') {
        const j = pending.indexOf(slots[i]!);
        if (j >= 0) pending.splice(j, 1);
        slots.splice(i, 1);
      }
    const arr = cur[name];
    if (!Array.isArray(arr)) return;
    arr.forEach((x, i) => {
      const kind: SlotKind | undefined = typeof x === 'boolean' ? 'bool' : typeof x === 'number' ? (Number.isInteger(x) ? 'int' : 'float') : undefined;
      if (!kind) return;
      const e: Slot = { name, index: i, kind };
      slots.push(e);
      pending.push(e);
    });
  };
  for (const s of slots) if (s.kind === 'opt' && getSlot(cur, s) === true && keyBools.has(slotKey(s))) remakeElements(s.name);
  for (const k of keyBools) status.set(k, { status: 'determined', evidence: 'the checkpoint keys' });
  /**
   * A solved value can make the config invalid through values not solved yet: move one still-unknown
   * int to a small value that compiles. Their values are arbitrary until solved, so this loses nothing.
   */
  const repair = (cfg: Cfg, solving: Slot): [Cfg, Keymap] | undefined => {
    for (const o of pending) {
      if (o === solving || o.kind !== 'int') continue;
      for (const c of [1, 2, 4, 8, 3]) {
        const next = setSlot(cfg, o, c);
        const km = compileAt(next);
        if (km) return [next, km];
      }
    }
    return undefined;
  };
  const deps = new Map<string, Set<DimId>>();
  /** values set only to fit a dimension they share with other undetermined values (input_size[1] * input_size[2]) */
  const forced = new Map<string, string>();
  let force = false;
  let lastChance = false;
  while (pending.length) {
    const base = compileAt(cur);
    if (!base) break;
    const roundStart = cur;
    const d0 = dimsOf(base);
    // sensitivity of each still-unknown slot at the current config
    deps.clear();
    const probes = new Map<string, { value: SlotValue; dims: Map<DimId, number> }>();
    const moves = (km: Keymap): boolean => {
      const d1 = dimsOf(km);
      for (const [id, v] of d0) if (d1.get(id) !== v) return true;
      return false;
    };
    for (const s of pending) {
      const p = probe(cur, s, base, moves);
      if (!p) {
        deps.set(slotKey(s), new Set());
        continue;
      }
      const d1 = dimsOf(p.km);
      const moved = new Set<DimId>();
      for (const [id, v] of d0) if (d1.get(id) !== v) moved.add(id);
      deps.set(slotKey(s), moved);
      probes.set(slotKey(s), { value: p.value, dims: d1 });
    }
    let progress = false;
    for (const s of [...pending]) {
      if (!pending.includes(s)) continue;
      const k = slotKey(s);
      const mine = deps.get(k)!;
      if (!mine) continue;
      const owned = [...mine].filter((id) => !disturbed.has(id)).filter((id) => force || pending.every((o) => o === s || !deps.get(slotKey(o))?.has(id)));
      if (!owned.length) continue;
      // a list length is the instance count of its stages (`encoder.stages.#`): the shapes and nested counts
      // a longer list moves too (the last stage's widths and depth) wait for the elements, solved after it
      const top = (id: string): boolean => id.startsWith('@') && id.endsWith('@0');
      if (s.kind === 'len' && owned.some(top)) owned.splice(0, owned.length, ...owned.filter(top));
      const pr = probes.get(k)!;
      const v0 = getSlot(cur, s)!;
      const matches = (dims: Map<DimId, number>) => owned.filter((id) => dims.get(id) === hdims.get(id)).length;
      let solved: SlotValue | undefined;
      let evidence = owned[0]!;
      if (s.kind === 'bool' || s.kind === 'opt') {
        if (cur !== roundStart) continue;
        const a = matches(pr.dims);
        const b = matches(d0);
        if (a === b) continue;
        solved = a > b ? pr.value : v0;
      } else {
        if (s.kind === 'float' && cur !== roundStart) continue; // a float solved from stale probes may fit by flooring only
        // candidates from each owned dimension: linear, inverse (d*v constant: hidden_size/num_heads), log2 (counts of halvings)
        const votes = new Map<number, string>();
        const x0 = v0 as number;
        const x1 = pr.value as number;
        for (const id of owned) {
          const h = hdims.get(id);
          const a = d0.get(id);
          const b = pr.dims.get(id);
          if (h === undefined || a === undefined) continue;
          const cands: number[] = [];
          if (h === a) cands.push(x0);
          else {
            if (b !== undefined && b !== a) cands.push(x0 + ((h - a) * (x1 - x0)) / (b - a));
            if (h !== 0) cands.push((a * x0) / h);
            if (b !== undefined && b !== a && x0 > 0 && x1 > 0 && x1 !== x0) cands.push(x0 * 2 ** (((h - a) / (b - a)) * Math.log2(x1 / x0)));
          }
          // floats: the simplest decimal first (int(hidden * mlp_ratio) holds for a range of ratios)
          if (s.kind === 'float') cands.splice(0, cands.length, ...cands.flatMap((x) => [0, 1, 2, 3, 9].map((d) => Math.round(x * 10 ** d) / 10 ** d)));
          for (let x of cands) {
            x = s.kind === 'float' ? x : Math.abs(x - Math.round(x)) < 1e-9 ? Math.round(x) : x;
            if (!Number.isFinite(x) || (s.kind !== 'float' && (!Number.isInteger(x) || x < (s.kind === 'len' ? 1 : 0)))) continue;
            if (!votes.has(x)) votes.set(x, id);
          }
        }
        // verify each candidate on the owned dims by re-tracing
        for (const [x, id] of votes) {
          let next = setSlot(cur, s, x);
          let km = x === v0 ? base : compileAt(next);
          if (!km) {
            const r = repair(next, s);
            if (!r) continue;
            [next, km] = r;
          }
          const dims = dimsOf(km);
          if (owned.every((o) => dims.get(o) === hdims.get(o))) {
            solved = x;
            cur = next;
            evidence = id;
            break;
          }
        }
        if (solved === undefined && s.kind !== 'float') {
          // a monotone but not linear dimension (hidden_size // (2 * num_heads)): integer bisection on the first owned dim
          const id = owned[0]!;
          const h = hdims.get(id);
          const a = d0.get(id);
          const b = pr.dims.get(id);
          const x0 = v0 as number;
          const x1 = pr.value as number;
          if (h !== undefined && a !== undefined && b !== undefined && a !== b && h !== a) {
            const up = (b - a) / (x1 - x0) > 0 === h > a; // does x have to grow?
            const at = (x: number): number | undefined => {
              const km = compileAt(setSlot(cur, s, x));
              return km ? dimsOf(km).get(id) : undefined;
            };
            const min = s.kind === 'len' ? 1 : 1;
            const side = Math.sign(a - h);
            let p = x0; // f(p) on a's side of h
            let q: number | undefined; // f(q) past h
            let found: number | undefined;
            for (let step = 1; step < 1 << 24 && found === undefined && q === undefined; step *= 2) {
              const x = up ? x0 + step : Math.max(min, x0 - step);
              const f = at(x);
              if (f !== undefined) {
                if (f === h) found = x;
                else if (Math.sign(f - h) === side) p = x;
                else q = x;
              }
              if (!up && x === min) break;
            }
            while (found === undefined && q !== undefined && Math.abs(p - q) > 1) {
              const mid = Math.floor((p + q) / 2);
              const fm = at(mid);
              if (fm === undefined) break;
              if (fm === h) found = mid;
              else if (Math.sign(fm - h) === side) p = mid;
              else q = mid;
            }
            if (found !== undefined) {
              const next = setSlot(cur, s, found);
              const km = compileAt(next);
              if (km && owned.every((o) => dimsOf(km).get(o) === hdims.get(o))) {
                solved = found;
                cur = next;
                evidence = id;
              }
            }
          }
        }
        if (solved === undefined && force) continue;
        if (solved === undefined && cur !== roundStart) continue; // probes are stale: next round
        if (solved === undefined && !lastChance) continue; // others first: a value solved later may make this one solvable
        if (solved === undefined) {
          const o = owned[0]!;
          status.set(k, { status: 'contradiction', evidence: `${describeDim(o)} is ${hdims.get(o)} in the checkpoint (${d0.get(o)} at ${k} = ${String(v0)}); no value of ${k} gives it` });
          pending.splice(pending.indexOf(s), 1);
          continue;
        }
      }
      cur = setSlot(cur, s, solved!);
      if (s.kind === 'int' && evidence.startsWith('@') && !force) shrink(s, solved as number);
      if (force) {
        const partners = pending.filter((o) => o !== s && [...mine].some((id) => deps.get(slotKey(o))?.has(id))).map(slotKey);
        forced.set(k, `only together with ${partners.join(', ')}: ${String(solved)} chosen so that ${describeDim(evidence)} fits with ${partners.length > 1 ? 'their' : 'its'} base value`);
        status.set(k, { status: 'undetermined', evidence: forced.get(k)! });
        // the partners keep their base values: only the product is known
        for (const o of pending.filter((x) => x !== s && partners.includes(slotKey(x)))) {
          status.set(slotKey(o), { status: 'undetermined', evidence: `only together with ${k} (no tensor shape separates them); base value kept` });
          pending.splice(pending.indexOf(o), 1);
        }
        force = false;
      } else status.set(k, { status: 'determined', evidence: describeDim(evidence) });
      pending.splice(pending.indexOf(s), 1);
      // element slots of the lists at their new length, or of a list now set
      if (s.kind === 'len') {
        for (const name of s.names ?? [s.name]) remakeElements(name), fitStrSlots(name);
        if (solved !== v0) boolPass();
      }
      if (s.kind === 'opt' && solved === true) remakeElements(s.name);
      progress = true;
      // go on with the other values on this round's probes; a stale estimate fails its re-trace and waits for the next round
    }
    if (!progress && !lastChance && !force) {
      lastChance = true; // once more, now declaring what no value can fit
      continue;
    }
    lastChance = false;
    if (!progress) {
      // nothing left that one dimension separates: fit one of the values that only move dims together
      // (their product is determined, not each); they stay undetermined
      if (force) break;
      force = true;
    }
  }
  boolPass();
  for (const k of keyBools) status.set(k, { status: 'determined', evidence: 'the checkpoint keys' });
  for (const s of slots) if (s.kind === 'str' && !keyBools.has(slotKey(s))) status.delete(slotKey(s));
  for (const [s, v] of shrunk) cur = setSlot(cur, s, v);
  for (const s of pending) {
    const k = slotKey(s);
    if (status.has(k)) continue;
    const f = forced.get(k);
    if (f) {
      status.set(k, { status: 'undetermined', evidence: f });
      continue;
    }
    const mine = deps.get(k);
    const partners = mine && mine.size ? pending.filter((o) => o !== s && [...mine].some((id) => deps.get(slotKey(o))?.has(id))).map(slotKey) : [];
    const shared = partners.length ? [...mine!].filter((id) => pending.some((o) => o !== s && deps.get(slotKey(o))?.has(id))).map(describeDim) : [];
    status.set(k, { status: 'undetermined', evidence: partners.length ? `only together with ${partners.join(', ')} through ${shared.slice(0, 3).join(', ')} (no tensor shape separates them)` : 'no tensor shape or key depends on it' });
  }
  for (const s of slots)
    if (!status.has(slotKey(s))) status.set(slotKey(s), { status: 'undetermined', evidence: s.kind === 'str' ? `no key set singles out one of ${(s.choices ?? []).join(', ')}` : 'no tensor shape or key depends on it' });
  // ---- ambiguity: a flag solved from a shape, flipped, with one size re-solved, may fit as well (rope.freqs
  // is head_dim // 2 without kernel_size and head_dim // 6 with it: num_heads and set(kernel_size) only
  // together); then neither is determined ----
  // probed with the solved counts at one instance (cheap); the other instances are copies of it
  const small = [...shrunk.keys()].reduce((c, x) => setSlot(c, x, 1), cur);
  const exactAt = (cfg: Cfg): boolean => {
    const km = compileAt(cfg);
    if (!km) return false;
    const f = fitOf(km, header);
    return !f.missing.length && (shrunk.size ? keySetDiff(km) < 1e6 : !f.unexpected.length) && !f.mismatched.length;
  };
  if (exactAt(small))
    // a contradiction declared on the way (against values solved later) that the final config fits
    for (const s of slots) {
      const st = status.get(slotKey(s));
      if (st?.status !== 'contradiction' || shrunk.has(s)) continue;
      const v = getSlot(cur, s);
      const others = s.kind === 'bool' || s.kind === 'opt' ? [!v] : typeof v === 'number' ? [v + 1, v - 1, v * 2, Math.floor(v / 2)].filter((x) => x !== v && x >= (s.kind === 'len' ? 1 : 0)) : [];
      const alt = others.find((x) => exactAt(setSlot(small, s, x)));
      status.set(slotKey(s), alt === undefined ? { status: 'determined', evidence: `the whole checkpoint fits at ${String(v)} and not at ${others.join(', ')}` } : { status: 'undetermined', evidence: `the checkpoint fits at ${String(v)} and at ${String(alt)} alike` });
    }
  if (exactAt(small))
    for (const b of slots) {
      if ((b.kind !== 'bool' && b.kind !== 'opt') || status.get(slotKey(b))?.status !== 'determined' || keyBools.has(slotKey(b))) continue;
      const flipped = setSlot(small, b, !getSlot(cur, b));
      const kmB = compileAt(flipped);
      if (!kmB) continue;
      const fB = fitOf(kmB, header);
      if (fB.missing.length || (shrunk.size ? keySetDiff(kmB) >= 1e6 : fB.unexpected.length)) continue;
      let alt: Slot | undefined;
      if (!fB.mismatched.length) alt = b;
      for (const x of alt ? [] : slots) {
        if (alt || x.kind !== 'int' || counts.has(x) || shrunk.has(x) || status.get(slotKey(x))?.status !== 'determined') continue;
        const x0 = getSlot(flipped, x) as number;
        const m = fB.mismatched[0]!;
        const axis = m.model.findIndex((d, i) => d !== m.checkpoint[i]);
        const a = m.model[axis]!;
        const h = m.checkpoint[axis]!;
        const bDims = [x0 + 1, Math.floor(x0 / 2)].map((c) => (c > 0 ? compileAt(setSlot(flipped, x, c))?.tensors[m.key]?.shape[axis] : undefined));
        if (!bDims.some((d) => d !== undefined && d !== a)) continue; // x does not move that dimension
        const bDim = bDims[0];
        const cands = [(a * x0) / h, ...(bDim !== undefined && bDim !== a ? [x0 + (h - a) / (bDim - a)] : []), ...[2, 3, 4, 6].flatMap((r) => [x0 / r, x0 * r])];
        for (const c of cands) if (!alt) if (Number.isInteger(c) && c > 0 && c !== x0 && exactAt(setSlot(flipped, x, c))) alt = x;
      }
      if (!alt) continue;
      const other = alt === b ? undefined : alt;
      status.set(slotKey(b), { status: 'undetermined', evidence: other ? `only together with ${slotKey(other)}: the checkpoint fits with ${slotKey(b)} = ${String(!getSlot(cur, b))} too, at another ${slotKey(other)}; base value kept` : 'the checkpoint fits either value; base value kept' });
      if (other) status.set(slotKey(other), { status: 'undetermined', evidence: `only together with ${slotKey(b)}: the checkpoint fits with ${slotKey(b)} = ${String(!getSlot(cur, b))} too, at another ${slotKey(other)}` });
    }
  // ---- verify: the whole keymap at the inferred config ----
  let km = compileAt(cur, true);
  if (!km) {
    // undetermined values that make the config invalid (norm_num_groups 32 for 8 channels): the largest
    // halving of each that compiles; still reported as undetermined
    // (a halving that clears one of several broken asserts is kept: spatial and time compression ratios)
    let errs = strictErrors.length;
    for (const s of slots) {
      if (km || s.kind !== 'int' || status.get(slotKey(s))?.status !== 'undetermined') continue;
      for (let c = Math.floor((getSlot(cur, s) as number) / 2); c >= 1 && !km; c = Math.floor(c / 2)) {
        const next = setSlot(cur, s, c);
        km = compileAt(next, true);
        if (km || (strictErrors.length && strictErrors.length < errs)) {
          errs = strictErrors.length;
          cur = next;
          status.set(slotKey(s), { status: 'undetermined', evidence: `no tensor shape depends on it; ${c} is the largest halving of the base value that the model accepts` });
          break;
        }
      }
    }
    // an undetermined int list whose elements only matter together (axes_dim must sum to the head dim): one value for all
    const lists = [...new Set(slots.filter((s) => s.index !== undefined && s.kind === 'int' && status.get(slotKey(s))?.status === 'undetermined').map((s) => s.name))];
    for (const name of lists) {
      const arr = cur[name] as number[];
      for (let c = 1; c <= 32 && !km; c++) {
        const next = { ...cur, [name]: arr.map(() => c) };
        km = compileAt(next, true);
        if (km) {
          cur = next;
          arr.forEach((_, i) => status.set(`${name}[${i}]`, { status: 'undetermined', evidence: `no tensor shape separates the elements; the base value is invalid here, ${c} for each is the smallest the model accepts` }));
        }
      }
    }
    if (!km) compileAt(cur, true);
  }
  const invalid = km ? [] : strictErrors;
  km ??= compileAt(cur);
  const fit: FitReport = km ? fitOf(km, header) : { matched: 0, missing: [], unexpected: [...header.keys()], mismatched: [] };
  const values: InferredValue[] = slots.map((s) => ({ key: slotKey(s), value: getSlot(cur, s), ...status.get(slotKey(s))! }) as InferredValue);
  return {
    modelName: km0.model,
    version: km0.version,
    base: km0.config,
    config: cur,
    values,
    fit,
 ...(invalid.length ? { invalid } : {}),
    exact: !!km && !fit.missing.length && !fit.unexpected.length && !fit.mismatched.length,
    score: scoreOf(fit),
    compiles,
    ...(km ? { keymap: km } : {}),
  };
}
