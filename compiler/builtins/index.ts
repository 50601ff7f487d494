/**
 * Builtin functions of the .sora language: compile-time helpers (range, len, min, ...) and the
 * primitive tensor ops the Open-Sora models need. Higher-level layers (Linear, Attention, norms,
 * embedders) are written in .sora in std/, on top of these.
 */
import type { BuiltinCtx } from '../context.ts';
import type { Builtin } from './args.ts';
import { ACTIVATION_BUILTINS, LAYER_BUILTINS } from './nn.ts';
import { SCALAR_BUILTINS } from './scalar.ts';
import { CREATION_BUILTINS, SHAPE_BUILTINS } from './shape.ts';

export type { Builtin, BuiltinCtx };
export { erf } from './scalar.ts';

export const BUILTINS: Readonly<Record<string, Builtin>> = { ...SCALAR_BUILTINS, ...SHAPE_BUILTINS, ...ACTIVATION_BUILTINS, ...CREATION_BUILTINS, ...LAYER_BUILTINS };

/** Whether `name` is a builtin (own keys only: `toString` or `constructor` are not builtins). */
export function isBuiltin(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(BUILTINS, name);
}
