/** Argument binding for builtins: positional/keyword binding by a parameter list, and typed readers. */
import type { Ident } from '../../grammar/ast.ts';
import type { Span } from '../../core/diagnostics.ts';
import type { DType } from '../../core/dtype.ts';
import type { BuiltinCtx } from '../context.ts';
import { Sym } from '../sym.ts';
import { type Tensor, type Value, typeName } from '../values.ts';
import { BUILTIN_REFERENCE, signatureText } from './reference.ts';

/** An argument; `fn` and `param` name the builtin and parameter it was bound to (for messages). */
export type Arg = { v: Value; span: Span; name?: Ident; fn?: string; param?: string };
export type Builtin = (ctx: BuiltinCtx, pos: Arg[], kw: Map<string, Arg>) => Value;

/** Bind builtin arguments by the builtin's parameter list in BUILTIN_REFERENCE; names ending in `?` are optional. */
export function sig(ctx: BuiltinCtx, name: string, pos: Arg[], kw: Map<string, Arg>): Record<string, Arg | undefined> {
  const ref = BUILTIN_REFERENCE[name];
  if (!ref) throw new Error(`builtin ${name} has no entry in compiler/builtins/reference.ts`);
  const params = ref.params;
  const names = params.map((p) => p.replace(/\?$/, ''));
  const shown = signatureText(name);
  const out: Record<string, Arg | undefined> = {};
  if (pos.length > params.length) ctx.interp.error('SORA2006', `${name}() takes at most ${params.length} arguments (${names.join(', ')}), got ${pos.length}`, pos[params.length]!.span, { hint: shown });
  pos.forEach((a, i) => (out[names[i]!] = { ...a, fn: name, param: names[i]! }));
  for (const [k, a] of kw) {
    if (!names.includes(k)) ctx.interp.error('SORA2007', `${name}() has no parameter "${k}"`, a.name?.span ?? a.span, { hint: `parameters: ${names.join(', ')}; ${shown}` });
    if (out[k]) ctx.interp.error('SORA2002', `${name}(): "${k}" given twice`, a.span, { hint: shown });
    out[k] = { ...a, fn: name, param: k };
  }
  params.forEach((p, i) => {
    if (!p.endsWith('?') && (!out[names[i]!] || out[names[i]!]!.v.k === 'none') && out[names[i]!]?.v.k !== 'none')
      ctx.interp.error('SORA2008', `${name}() is missing argument "${names[i]}"`, ctx.span, { hint: shown });
  });
  return out;
}

/** The tensor an argument holds; anything else is an error that names the builtin's signature. */
export const T = (ctx: BuiltinCtx, a: Arg | undefined): Tensor => {
  if (a?.fn && a.v.k !== 'tensor' && a.v.k !== 'slot') {
    ctx.interp.error('SORA3001', `${a.fn}(): ${a.param ? `"${a.param}" ` : ''}expected a tensor, got ${typeName(a.v)}`, a.span, { hint: `${signatureText(a.fn)}: ${BUILTIN_REFERENCE[a.fn]!.doc}` });
  }
  return ctx.interp.tensorOf(a!.v, a!.span);
};
export const Topt = (ctx: BuiltinCtx, a: Arg | undefined): Tensor | undefined => (a && a.v.k !== 'none' ? T(ctx, a) : undefined);
export function I(ctx: BuiltinCtx, a: Arg | undefined, d?: number): number {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing integer argument', ctx.span);
    return d;
  }
  if (a.v.k === 'int') return a.v.v;
  if (a.v.k === 'dim' && a.v.s.value() !== undefined) return a.v.s.value()!;
  return ctx.interp.error('SORA3011', `expected an int known at compile time, got ${typeName(a.v)}`, a.span);
}
export function F(ctx: BuiltinCtx, a: Arg | undefined, d?: number): number {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing number argument', ctx.span);
    return d;
  }
  if (a.v.k === 'int' || a.v.k === 'float') return a.v.v;
  return ctx.interp.error('SORA3011', `expected a number known at compile time, got ${typeName(a.v)}`, a.span);
}
export function Bo(ctx: BuiltinCtx, a: Arg | undefined, d: boolean): boolean {
  if (!a || a.v.k === 'none') return d;
  if (a.v.k === 'bool') return a.v.v;
  return ctx.interp.error('SORA3001', `expected a bool, got ${typeName(a.v)}`, a.span);
}
export function S(ctx: BuiltinCtx, a: Arg | undefined, d?: string): string {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing string argument', ctx.span);
    return d;
  }
  if (a.v.k === 'str') return a.v.v;
  return ctx.interp.error('SORA3001', `expected a string, got ${typeName(a.v)}`, a.span);
}
export function Dt(ctx: BuiltinCtx, a: Arg | undefined, d?: DType): DType {
  if (!a || a.v.k === 'none') {
    if (d === undefined) ctx.interp.error('SORA2008', 'missing dtype argument', ctx.span);
    return d;
  }
  if (a.v.k === 'dtype') return a.v.d;
  return ctx.interp.error('SORA3001', `expected a dtype (f32, bf16, i64, ...), got ${typeName(a.v)}`, a.span);
}
export function listOf(ctx: BuiltinCtx, a: Arg | undefined): Value[] {
  if (!a) return [];
  if (a.v.k === 'list' || a.v.k === 'tuple') return [...a.v.items];
  return [a.v];
}
export function ints(ctx: BuiltinCtx, a: Arg | undefined, d?: number[]): number[] {
  if (!a || a.v.k === 'none') {
    if (!d) ctx.interp.error('SORA2008', 'missing list argument', ctx.span);
    return d;
  }
  return listOf(ctx, a).map((v) => I(ctx, { v, span: a.span }));
}
export function dims(ctx: BuiltinCtx, a: Arg): Sym[] {
  return listOf(ctx, a).map((v) => {
    if (v.k === 'int') return Sym.const(v.v);
    if (v.k === 'dim') return v.s;
    return ctx.interp.error('SORA3010', `a shape entry must be an int or a dimension, got ${typeName(v)}`, a.span);
  });
}
export const tv = (t: Tensor): Value => ({ k: 'tensor', t });
