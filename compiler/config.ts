/**
 * Config values as users give them (a JSON file: flat, an HF config.json, or constructor-style nested;
 * `--set k=v`; programmatic values), checked against a model's `config { ... }` declarations.
 */
import type * as A from '../grammar/ast.ts';
import { type Diagnostic, type Span, diag } from '../core/diagnostics.ts';
import { paramsOf } from './interp.ts';
import type { ConfigInput } from './model.ts';
import { suggest } from './program.ts';
import { type Value, NONE } from './values.ts';
import { limit, LIMITS } from '../core/limits.ts';

/** A config value sorac cannot represent exactly: nested too deep, or an integer past ±2^53. */
class ConfigRange {
  constructor(readonly why: string) {}
}

/** The deepest array/object nesting of a JSON value, measured without recursion (stops past `max`). */
export function jsonDepth(v: unknown, max: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d + 1 > deepest) deepest = d + 1;
    if (deepest > max) return deepest;
    for (const c of Array.isArray(x) ? x : Object.values(x)) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return deepest;
}

/**
 * JSON -> Value. `intOnly`: the declared type is int (or a list of ints), so an integral number
 * must be exact (|v| <= 2^53 - 1): `1e308` or `9007199254740993` (read as ...992) are refused
 * rather than silently rounded or turned into infinite shapes.
 */
function jsonToValue(v: unknown, origin: { span?: Span; label?: string }, intOnly = false, depth = 0): Value | undefined {
  if (depth === 0) {
    const max = limit('nestingDepth');
    if (jsonDepth(v, max) > max) throw new ConfigRange(`nested more than ${max} levels deep (the limit nestingDepth; raise it with ${LIMITS.nestingDepth.env}=N)`);
  }
  if (v === null) return NONE;
  if (typeof v === 'boolean') return { k: 'bool', v, origin };
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ConfigRange(`${v} is not a finite number`);
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      if (intOnly) throw new ConfigRange(`${v} is not an exact integer: integers must be within ±${Number.MAX_SAFE_INTEGER} (2^53 - 1)`);
      return { k: 'float', v, origin };
    }
    return Number.isInteger(v) ? { k: 'int', v, origin } : { k: 'float', v, origin };
  }
  if (typeof v === 'string') return { k: 'str', v, origin };
  if (Array.isArray(v)) {
    const items = v.map((x) => jsonToValue(x, origin, intOnly, depth + 1));
    if (items.some((x) => !x)) return undefined;
    return { k: 'list', items: items as Value[], origin };
  }
  return undefined;
}

/** The `upstream { ... }` rules of a model (upstream parameters it fixes or refuses), by parameter name. */
export function upstreamRules(decl: A.ModuleDecl): Map<string, A.UpstreamRule> {
  const m = new Map<string, A.UpstreamRule>();
  for (const b of decl.members) if (b.kind === 'upstream') for (const r of b.rules) m.set(r.key.name, r);
  return m;
}

/** The JSON value of a literal expression (numbers, strings, bools, none, lists of them); undefined otherwise. */
export function literalJson(e: A.Expr): unknown {
  switch (e.kind) {
    case 'num': return e.value;
    case 'str': return e.value;
    case 'bool': return e.value;
    case 'none': return null;
    case 'unary': {
      const v = literalJson(e.operand);
      return e.op === '-' && typeof v === 'number' ? -v : e.op === '+' && typeof v === 'number' ? v : undefined;
    }
    case 'list':
    case 'tuple': {
      const items = e.items.map(literalJson);
      return items.some((x) => x === undefined) ? undefined : items;
    }
    default: return undefined;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  return a === b;
}

/**
 * A config key that is no config field but an upstream parameter the model fixes or refuses: accepted when the
 * rule has no value (result-neutral) or the value given is the modelled one, an error naming the parameter and
 * the reason otherwise. Returns false when `k` is not an upstream parameter of the model.
 */
function checkUpstream(decl: A.ModuleDecl, rules: Map<string, A.UpstreamRule>, k: string, raw: unknown, where: string, diagnostics: Diagnostic[]): boolean {
  const r = rules.get(k);
  if (!r) return false;
  const want = r.value ? literalJson(r.value) : undefined;
  if (r.value && !sameJson(raw, want)) {
    diagnostics.push(diag('SORA7011', `${where}: ${k}=${JSON.stringify(raw)} is an upstream parameter that ${decl.name.name} ${r.verdict === 'refuses' ? 'refuses' : 'fixes at ' + JSON.stringify(want)}: ${r.reason.value}`, undefined, { related: [{ span: r.span, message: 'declared here' }], hint: `give ${k}=${JSON.stringify(want)} (the only value modelled) or leave it out; docs/guides/upstream-parameters.md` }));
  } else if (!r.value) {
    diagnostics.push(diag('SORA7011', `${where}: ignoring ${k}=${JSON.stringify(raw)}: ${r.reason.value}`, undefined, { severity: 'info', related: [{ span: r.span, message: 'declared here' }] }));
  }
  return true;
}

export function applyConfig(decl: A.ModuleDecl, cfg: ConfigInput | undefined, diagnostics: Diagnostic[]): Map<string, Value> {
  const params = paramsOf(decl);
  const names = params.map((p) => p.name.name);
  const rules = upstreamRules(decl);
  for (const r of rules.values())
    if (names.includes(r.key.name)) diagnostics.push(diag('SORA7011', `${decl.name.name}: upstream parameter ${r.key.name} is a config key too: it cannot also be ${r.verdict === 'fixes' ? 'fixed' : 'refused'}`, r.span, { hint: 'drop the upstream rule or the config key' }));
    else if (r.value && literalJson(r.value) === undefined) diagnostics.push(diag('SORA7011', `${decl.name.name}: the value of upstream parameter ${r.key.name} must be a literal (number, string, bool, none or a list of them)`, r.value.span));
  const out = new Map<string, Value>();
  const coerce = (p: A.Param, v: Value): Value => {
    const t = p.type?.name?.name;
    if (t === 'float' && v.k === 'int' && !p.type?.dims) return { k: 'float', v: v.v, ...(v.origin ? { origin: v.origin } : {}) };
    if (t === 'int' && v.k === 'float' && Number.isInteger(v.v)) return { k: 'int', v: v.v, ...(v.origin ? { origin: v.origin } : {}) };
    return v;
  };
  const typeOk = (p: A.Param, v: Value): boolean => {
    const t = p.type;
    if (!t?.name) return true;
    if (v.k === 'none') return t.optional;
    if (t.dims) return v.k === 'list';
    switch (t.name.name) {
      case 'int': return v.k === 'int';
      case 'float': return v.k === 'float' || v.k === 'int';
      case 'bool': return v.k === 'bool';
      case 'str': return v.k === 'str';
      default: return true;
    }
  };
  if (cfg?.file) {
    const unknown: string[] = [];
    for (const [k, raw] of flattenConfig(cfg.file.values, new Set(names), diagnostics, cfg.file.path)) {
      const p = params.find((x) => x.name.name === k);
      if (!p) {
        if (!checkUpstream(decl, rules, k, raw, `config file ${cfg.file.path}`, diagnostics)) unknown.push(k);
        continue;
      }
      let v: Value | undefined;
      try {
        v = jsonToValue(raw, { label: `config file ${cfg.file.path}` }, p.type?.name?.name === 'int');
      } catch (e) {
        if (!(e instanceof ConfigRange)) throw e;
        diagnostics.push(diag('SORA7030', `config file ${cfg.file.path}: "${k}": ${e.why}`, undefined, { related: [{ span: p.span, message: 'declared here' }], hint: `give ${k} as ${p.type ? typeText(p.type) : 'a value'} in range` }));
        continue;
      }
      if (!v || !typeOk(p, v)) {
        diagnostics.push(diag('SORA7005', `config file ${cfg.file.path}: "${k}" must be ${p.type ? typeText(p.type) : 'a value'}, got ${JSON.stringify(raw)}`, undefined, { related: [{ span: p.span, message: 'declared here' }] }));
        continue;
      }
      out.set(k, coerce(p, v));
    }
    if (unknown.length)
      diagnostics.push(diag('SORA7004', `config file ${cfg.file.path}: ignoring ${unknown.length} key${unknown.length > 1 ? 's' : ''} that ${decl.name.name} does not declare: ${unknown.sort().join(', ')}`, undefined, { severity: 'warning', hint: 'HF config.json files carry extra fields; this is only a problem if one of them was meant for the model' }));
  }
  for (const src of [cfg?.values ? Object.entries(cfg.values) : [], cfg?.set ?? []]) {
    const isSet = src === cfg?.set;
    for (const [k, rawIn] of src as [string, unknown][]) {
      const p = params.find((x) => x.name.name === k);
      if (!p) {
        if (checkUpstream(decl, rules, k, isSet && typeof rawIn === 'string' ? parseSet(rawIn) : rawIn, isSet ? `--set ${k}` : 'config', diagnostics)) continue;
        diagnostics.push(diag(isSet ? 'SORA2005' : 'SORA2005', `${decl.name.name} has no config key "${k}"`, undefined, { hint: suggest(k, names) ?? `config keys: ${names.join(', ')}` }));
        continue;
      }
      let raw = rawIn;
      if (isSet && typeof rawIn === 'string') {
        try {
          raw = JSON.parse(rawIn);
        } catch {
          raw = rawIn === 'True' ? true : rawIn === 'False' ? false : rawIn === 'None' ? null : rawIn;
        }
      }
      let v: Value | undefined;
      try {
        v = jsonToValue(raw, { label: isSet ? `--set ${k}=${rawIn}` : 'API' }, p.type?.name?.name === 'int');
      } catch (e) {
        if (!(e instanceof ConfigRange)) throw e;
        const shown = typeof rawIn === 'string' ? (rawIn.length > 60 ? rawIn.slice(0, 60) + '…' : rawIn) : '(value)';
        diagnostics.push(diag('SORA7030', `${isSet ? '--set' : 'config'} ${k}=${shown}: ${e.why}`, undefined, { related: [{ span: p.span, message: 'declared here' }], hint: `give ${k} as ${p.type ? typeText(p.type) : 'a value'} in range` }));
        continue;
      }
      if (!v || !typeOk(p, v)) {
        diagnostics.push(diag(isSet ? 'SORA7003' : 'SORA7005', `${isSet ? '--set' : 'config'} ${k}=${String(rawIn)}: expected ${p.type ? typeText(p.type) : 'a value'}`, undefined, { related: [{ span: p.span, message: 'declared here' }] }));
        continue;
      }
      out.set(k, coerce(p, v));
    }
  }
  return out;
}

function parseSet(rawIn: string): unknown {
  try {
    return JSON.parse(rawIn);
  } catch {
    return rawIn === 'True' ? true : rawIn === 'False' ? false : rawIn === 'None' ? null : rawIn;
  }
}

/**
 * Config files as users have them: flat (`{"depth": 28}`, an HF config.json) or nested the way
 * constructors take them (`{"STDiT3Config": {...}}`, `{"encoder": {...}, "decoder": {...}}`). Nested
 * objects under keys that are not config fields are unwrapped; a top-level value wins over a nested one,
 * and nested values that disagree are reported.
 */
function flattenConfig(values: Readonly<Record<string, unknown>>, fields: ReadonlySet<string>, diagnostics: Diagnostic[], path: string): [string, unknown][] {
  const out = new Map<string, { v: unknown; from: string }>();
  const unwrapped: string[] = [];
  const conflicts: string[] = [];
  const visit = (obj: Readonly<Record<string, unknown>>, prefix: string, depth: number) => {
    const nested: [string, Record<string, unknown>][] = [];
    for (const [k, v] of Object.entries(obj)) {
      const isObj = v !== null && typeof v === 'object' && !Array.isArray(v);
      if (isObj && !fields.has(k) && depth < 3) {
        nested.push([k, v as Record<string, unknown>]);
        continue;
      }
      const from = prefix ? `${prefix}.${k}` : k;
      const prev = out.get(k);
      if (!prev) out.set(k, { v, from });
      else if (prefix && fields.has(k) && JSON.stringify(prev.v) !== JSON.stringify(v)) conflicts.push(`${k} (${prev.from} = ${JSON.stringify(prev.v)}, ${from} = ${JSON.stringify(v)})`);
    }
    for (const [k, v] of nested) {
      unwrapped.push(prefix ? `${prefix}.${k}` : k);
      visit(v, prefix ? `${prefix}.${k}` : k, depth + 1);
    }
  };
  visit(values, '', 0);
  if (unwrapped.length)
    diagnostics.push(diag('SORA7006', `config file ${path}: read nested objects ${unwrapped.join(', ')} as config values`, undefined, { severity: 'info', hint: 'a flat JSON object of config keys avoids any ambiguity' }));
  if (conflicts.length)
    diagnostics.push(diag('SORA7006', `config file ${path}: nested objects disagree on ${conflicts.join('; ')}; using the first`, undefined, { severity: 'warning', hint: 'give the value at the top level of the file to choose' }));
  return [...out].map(([k, e]) => [k, e.v]);
}

function typeText(t: A.TypeExpr): string {
  const base = t.name?.name ?? 'tensor';
  const dims = t.dims ? `[${t.dims.length === 1 && t.dims[0]!.kind === 'num' ? (t.dims[0] as A.NumLit).value : ''}]` : '';
  const article = /^[aeiou]/.test(base) ? 'an' : 'a';
  return `${t.dims ? 'a list' : `${article} ${base}`}${dims ? ` ${base}${dims}` : ''}${t.optional ? ' or null' : ''}`;
}
