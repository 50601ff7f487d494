/**
 * What a builtin (and the op helpers under it) may ask of the tracer: report a diagnostic (and
 * unwind), turn a value into a tensor, apply a binary operator; plus the graph being built, the
 * call's span, and the dtype policy in effect. Builtins depend on this interface, not on the
 * interpreter, so the interpreter -> builtins -> ops -> graph direction has no way back.
 */
import type * as A from '../grammar/ast.ts';
import type { Code, RelatedInfo, Span } from '../core/diagnostics.ts';
import type { DType } from '../core/dtype.ts';
import type { GraphBuilder } from './graph.ts';
import type { DtypePolicy } from './policy.ts';
import type { Tensor, Value } from './values.ts';

export interface Tracer {
  /** Record a diagnostic and unwind the current evaluation. */
  error(code: Code, message: string, span: Span | undefined, extra?: { related?: RelatedInfo[]; hint?: string; notes?: string[] }): never;
  tensorOf(v: Value, span: Span): Tensor;
  binary(op: A.BinaryOp, l: Value, r: Value, span: Span, lspan?: Span, rspan?: Span): Value;
}

export interface BuiltinCtx {
  readonly interp: Tracer;
  readonly g: GraphBuilder;
  readonly span: Span;
  readonly policy: DtypePolicy;
  /** the compute dtype in effect at this call (policy compute, or an island's) */
  readonly compute: DType;
}
