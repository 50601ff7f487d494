/** Compile-time values of the .sora interpreter (config values, symbolic dims, traced tensors, modules). */
import type * as A from '../grammar/ast.ts';
import type { Span } from '../core/diagnostics.ts';
import type { DType } from '../core/dtype.ts';
import type { IrValue } from '../core/ir.ts';
import type { LoadedFile } from './program.ts';
import type { Sym } from './sym.ts';

export interface Origin {
  readonly span?: Span;
  /** e.g. "--set depth=4" or "config file cfg.json" */
  readonly label?: string;
}

export type Value =
  | { readonly k: 'int'; readonly v: number; readonly origin?: Origin }
  | { readonly k: 'float'; readonly v: number; readonly origin?: Origin }
  | { readonly k: 'bool'; readonly v: boolean; readonly origin?: Origin }
  | { readonly k: 'str'; readonly v: string; readonly origin?: Origin }
  | { readonly k: 'none' }
  | { readonly k: 'dim'; readonly s: Sym }
  | { readonly k: 'list'; readonly items: readonly Value[]; readonly origin?: Origin }
  | { readonly k: 'tuple'; readonly items: readonly Value[] }
  | { readonly k: 'tensor'; readonly t: Tensor }
  | { readonly k: 'module'; readonly inst: Instance }
  | { readonly k: 'slot'; readonly slot: TensorSlot }
  | { readonly k: 'fn'; readonly decl: A.FnDecl; readonly file: LoadedFile; readonly self?: Instance }
  | { readonly k: 'builtin'; readonly name: string }
  | { readonly k: 'dtype'; readonly d: DType }
  | { readonly k: 'moddef'; readonly decl: A.ModuleDecl; readonly file: LoadedFile }
  | { readonly k: 'ctor'; readonly decl: A.ModuleDecl; readonly file: LoadedFile; readonly args: ReadonlyMap<string, Value>; readonly span: Span };

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly Sym[];
  readonly ir: IrValue;
}

export interface TensorSlot {
  readonly key: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly kind: 'param' | 'buffer';
  readonly span: Span;
  readonly file: LoadedFile;
  /** for `alias` declarations: the key of the tensor this key is another name for */
  readonly aliasOf?: string;
  /** the compiled model's member declaration that instantiates this tensor (for messages) */
  readonly via?: Span;
}

export interface Instance {
  /** undefined for a namespace created by a dotted member path (`t_block.1 = ...`). */
  readonly decl?: A.ModuleDecl;
  readonly file?: LoadedFile;
  readonly path: string;
  readonly env: Map<string, Value>;
  readonly members: Map<string, Value>;
  readonly callSpan?: Span;
}

export const NONE: Value = { k: 'none' };

export function typeName(v: Value): string {
  switch (v.k) {
    case 'int': return 'int';
    case 'float': return 'float';
    case 'bool': return 'bool';
    case 'str': return 'str';
    case 'none': return 'none';
    case 'dim': return 'int (symbolic dimension)';
    case 'list': return 'list';
    case 'tuple': return 'tuple';
    case 'tensor': return `tensor ${v.t.dtype}[${v.t.shape.map(String).join(', ')}]`;
    case 'module': return v.inst.decl ? `module ${v.inst.decl.name.name}` : 'module namespace';
    case 'slot': return `tensor ${v.slot.dtype}[${v.slot.shape.join(', ')}]`;
    case 'fn': return 'function';
    case 'builtin': return 'builtin function';
    case 'dtype': return 'dtype';
    case 'moddef': return 'module definition';
    case 'ctor': return `module ${v.decl.name.name}`;
  }
}

/** A plain JSON rendering of a config value (for keymaps and --json). */
export function toJson(v: Value): unknown {
  switch (v.k) {
    case 'int':
    case 'float':
    case 'bool':
    case 'str':
      return v.v;
    case 'none':
      return null;
    case 'list':
    case 'tuple':
      return v.items.map(toJson);
    case 'dtype':
      return v.d;
    default:
      return typeName(v);
  }
}

/** A dimension as a value: an int when it is known, else the symbolic dim. */
export function dimValue(s: Sym): Value {
  const c = s.value();
  return c !== undefined ? { k: 'int', v: c } : { k: 'dim', s };
}
