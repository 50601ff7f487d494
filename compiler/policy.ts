/**
 * The dtype policy of a model: the `dtype { ... }` block (params, compute, inputs, outputs, f32
 * islands by op kind or module glob, per-module overrides), `--dtype rule=value` overrides on top,
 * and the conflicts between rules that are compile errors. See docs/guides/dtype-policy.md.
 */
import type * as A from '../grammar/ast.ts';
import { type Diagnostic, type Span, diag } from '../core/diagnostics.ts';
import { type DType, isDType, isFloat } from '../core/dtype.ts';
import { suggest } from './program.ts';

export interface DtypePolicy {
  params: DType;
  compute: DType;
  inputs: 'cast' | 'exact';
  /** entry inputs that `inputs: cast` leaves in their declared dtype (`uncast: [timestep]`) */
  uncast: string[];
  outputs?: DType;
  /** the `f32:` list as written: op kinds and module path globs computed in f32 */
  f32: string[];
  /** op kinds (builtin names such as softmax, layer_norm, group_norm) computed in f32 */
  f32Ops: Set<string>;
  /** module path globs computed in f32 (e.g. "t_embedder", "*.rope") */
  f32Modules: string[];
  /** per-module compute dtype overrides: `modules: [("final_layer", f16)]` */
  modules: { glob: string; dtype: DType; span?: Span }[];
  spans: Partial<Record<string, Span>>;
}

export const DEFAULT_POLICY: DtypePolicy = { params: 'f32', compute: 'f32', inputs: 'cast', uncast: [], f32: [], f32Ops: new Set(), f32Modules: [], modules: [], spans: {} };

/** Module path globs of the dtype policy: `*` matches any run of characters, dots included ("*.norm*" matches "blocks.0.norm1"). */
export function pathGlob(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** Op kinds that a `f32:` entry can name; any other entry is a module path glob. */
export const F32_OP_KINDS = ['softmax', 'layer_norm', 'group_norm'] as const;

/** A module that the policy both forces to a non-f32 dtype and requires in f32 (e.g. a norm forced to f16). */
export function policyConflicts(p: DtypePolicy, paths: readonly string[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of p.modules) {
    if (m.dtype === 'f32') continue;
    const re = pathGlob(m.glob);
    for (const g of p.f32Modules) {
      const rf = pathGlob(g);
      const hit = paths.find((x) => x && re.test(x) && rf.test(x));
      if (hit)
        out.push(
          diag('SORA3008', `dtype policy conflict: module ${hit} is forced to ${m.dtype} by modules "${m.glob}" but the f32 rule "${g}" requires it in f32`, m.span, {
            related: p.spans.f32 ? [{ span: p.spans.f32, message: `f32 rule "${g}" is here` }] : [],
            hint: `narrow the modules glob "${m.glob}" so it does not cover ${hit}, or remove "${g}" from the f32 list`,
          }),
        );
    }
  }
  return out;
}

export function readPolicy(decl: A.ModuleDecl, diagnostics: Diagnostic[], overrides?: Readonly<Record<string, string>>): DtypePolicy {
  const block = decl.members.find((m): m is A.DtypeBlock => m.kind === 'dtype');
  const p: DtypePolicy = { ...DEFAULT_POLICY, uncast: [], f32: [], f32Ops: new Set(), f32Modules: [], modules: [], spans: {} };
  const rules: { key: A.Ident; value: A.Expr; span: Span }[] = [...(block?.rules ?? [])];
  for (const [k, v] of Object.entries(overrides ?? {})) {
    const span: Span = { file: `--dtype ${k}=${v}`, start: { offset: 0, line: 1, col: 1 }, end: { offset: 0, line: 1, col: 1 } };
    const idx = rules.findIndex((r) => r.key.name === k);
    const rule = { key: { name: k, span }, value: { kind: 'name', name: v, span } as A.Expr, span };
    if (idx >= 0) rules[idx] = rule;
    else rules.push(rule);
  }
  for (const r of rules) {
    const key = r.key.name;
    p.spans[key] = r.span;
    const dt = (e: A.Expr): DType | undefined => (e.kind === 'name' && isDType(e.name) ? e.name : undefined);
    switch (key) {
      case 'params':
      case 'compute':
      case 'outputs': {
        const d = dt(r.value);
        if (!d || !isFloat(d)) {
          diagnostics.push(diag('SORA3001', `dtype rule "${key}" needs a floating dtype (f32, bf16, f16)`, r.value.span));
          break;
        }
        if (key === 'params') p.params = d;
        else if (key === 'compute') p.compute = d;
        else p.outputs = d;
        break;
      }
      case 'inputs':
        if (r.value.kind === 'name' && (r.value.name === 'cast' || r.value.name === 'exact')) p.inputs = r.value.name;
        else diagnostics.push(diag('SORA3001', 'dtype rule "inputs" must be `cast` or `exact`', r.value.span));
        break;
      case 'uncast':
        if (r.value.kind === 'list' && r.value.items.every((x) => x.kind === 'name' || x.kind === 'str')) p.uncast = r.value.items.map((x) => (x.kind === 'name' ? x.name : (x as A.StrLit).value));
        else diagnostics.push(diag('SORA3001', 'dtype rule "uncast" takes a list of entry input names, e.g. [timestep]', r.value.span));
        break;
      case 'f32':
        if (r.value.kind === 'list') {
          p.f32 = r.value.items.map((x) => (x.kind === 'name' ? x.name : x.kind === 'str' ? x.value : ''));
          for (const e of p.f32) {
            if ((F32_OP_KINDS as readonly string[]).includes(e)) p.f32Ops.add(e);
            else if (e) p.f32Modules.push(e);
          }
        } else diagnostics.push(diag('SORA3001', 'dtype rule "f32" takes a list of op kinds (softmax, layer_norm, group_norm) and module path globs ("t_embedder", "*.rope")', r.value.span));
        break;
      case 'modules': {
        const bad = () => diagnostics.push(diag('SORA3001', 'dtype rule "modules" takes a list of ("module path glob", dtype) pairs, e.g. [("final_layer", f32)]', r.value.span));
        if (r.value.kind !== 'list') {
          bad();
          break;
        }
        for (const it of r.value.items) {
          if (it.kind !== 'tuple' || it.items.length !== 2 || it.items[0]!.kind !== 'str' || it.items[1]!.kind !== 'name' || !isDType((it.items[1] as A.NameExpr).name) || !isFloat((it.items[1] as A.NameExpr).name as DType)) {
            bad();
            continue;
          }
          p.modules.push({ glob: (it.items[0] as A.StrLit).value, dtype: (it.items[1] as A.NameExpr).name as DType, span: it.span });
        }
        break;
      }
      default:
        diagnostics.push(diag('SORA2005', `unknown dtype rule "${key}"`, r.key.span, { hint: `${(s => (s ? `${s} ` : ''))(suggest(key, ['params', 'compute', 'inputs', 'uncast', 'outputs', 'f32', 'modules']))}the rules are params, compute, inputs, uncast, outputs, f32, modules (e.g. --dtype compute=bf16)` }));
    }
  }
  return p;
}
