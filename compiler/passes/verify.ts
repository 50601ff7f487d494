/**
 * The graph verifier: structural invariants every pass must keep (as tinygrad checks its spec after
 * every rewrite). Run after each pass when SORAC_DEBUG contains `verify` (tests always run it), and
 * cheap enough (one walk) to leave in the emitter's debug path.
 *
 * Checked: value ids and names are unique; every node input is a graph input, a weight, a constant
 * or the output of an earlier node (topological order, no dangling uses); every graph output is
 * produced; Cast outputs have the dtype of their `to` attribute; the operands of elementwise
 * arithmetic and of MatMul/Gemm agree in dtype; shape-preserving unary ops keep their operand's type.
 */
import type { DType } from '../../core/dtype.ts';
import { InternalError } from '../../core/errors.ts';
import type { IrGraph, IrValue } from '../../core/ir.ts';

/** ONNX TensorProto.DataType numbers for the dtypes Cast can target. */
const ONNX_TO_DTYPE: Readonly<Record<number, DType>> = { 1: 'f32', 2: 'u8', 3: 'i8', 5: 'i16', 6: 'i32', 7: 'i64', 9: 'bool', 10: 'f16', 11: 'f64', 16: 'bf16' };
const SAME_DTYPE_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'MatMul', 'Gemm', 'Max', 'Min', 'Sum', 'Mean']);
const TYPE_PRESERVING = new Set(['Relu', 'Sigmoid', 'Tanh', 'Erf', 'Exp', 'Log', 'Neg', 'Abs', 'Sqrt', 'Reciprocal', 'Sin', 'Cos', 'Identity', 'Softmax', 'Floor', 'Ceil', 'Round', 'Sign']);

export interface VerifyProblem {
  readonly node?: number;
  readonly message: string;
}

/** Every broken invariant of `g` (empty when the graph is well formed). */
export function verifyGraph(g: IrGraph): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  const defined = new Set<IrValue>();
  const ids = new Map<number, IrValue>();
  const names = new Map<string, IrValue>();
  const define = (v: IrValue, what: string, node?: number) => {
    const at = node === undefined ? {} : { node };
    if (defined.has(v)) problems.push({ ...at, message: `value ${v.name} (id ${v.id}) is defined twice (${what})` });
    const byId = ids.get(v.id);
    if (byId && byId !== v) problems.push({ ...at, message: `values ${byId.name} and ${v.name} share id ${v.id}` });
    const byName = names.get(v.name);
    if (byName && byName !== v) problems.push({ ...at, message: `two values are named ${v.name} (ids ${byName.id} and ${v.id})` });
    defined.add(v);
    ids.set(v.id, v);
    names.set(v.name, v);
  };
  for (const v of g.inputs) define(v, 'graph input');
  for (const w of g.weights) define(w.value, `weight ${w.key}`);
  for (const v of g.constants.keys()) define(v, 'constant');
  g.nodes.forEach((n, i) => {
    const where = `node #${i} ${n.op}${n.scope ? ` (${n.scope})` : ''}`;
    for (const x of n.inputs) if (x && !defined.has(x)) problems.push({ node: i, message: `${where} uses ${x.name} (id ${x.id}) before it is defined` });
    const ins = n.inputs.filter((x): x is IrValue => !!x);
    if (n.op === 'Cast') {
      const to = n.attrs.to;
      const want = to?.kind === 'int' ? ONNX_TO_DTYPE[to.value] : undefined;
      if (!want) problems.push({ node: i, message: `${where} has no valid \`to\` attribute` });
      else if (n.outputs[0] && n.outputs[0].dtype !== want) problems.push({ node: i, message: `${where} casts to ${want} but its output ${n.outputs[0].name} is typed ${n.outputs[0].dtype}` });
    } else if (SAME_DTYPE_OPS.has(n.op) && ins.length >= 2) {
      const dt = ins[0]!.dtype;
      const odd = ins.find((x) => x.dtype !== dt && !(n.op === 'Gemm' && x === ins[2] && x.dtype === dt));
      if (odd) problems.push({ node: i, message: `${where} mixes ${dt} (${ins[0]!.name}) and ${odd.dtype} (${odd.name})` });
    } else if (TYPE_PRESERVING.has(n.op) && ins[0] && n.outputs[0]) {
      const a = ins[0];
      const o = n.outputs[0];
      if (a.dtype !== o.dtype) problems.push({ node: i, message: `${where} turns ${a.dtype} into ${o.dtype}` });
      else if (a.shape.length !== o.shape.length || a.shape.some((d, k) => String(d) !== String(o.shape[k])))
        problems.push({ node: i, message: `${where} changes the shape [${a.shape.join(',')}] to [${o.shape.join(',')}]` });
    }
    for (const o of n.outputs) define(o, where, i);
  });
  for (const o of g.outputs) if (!defined.has(o)) problems.push({ message: `graph output ${o.name} (id ${o.id}) is never produced` });
  return problems;
}

/** Throw an InternalError naming the pass when `g` breaks an invariant. */
export function assertValidGraph(g: IrGraph, after: string): void {
  const problems = verifyGraph(g);
  if (problems.length)
    throw new InternalError(`graph ${g.name} is malformed after ${after} (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${problems.slice(0, 20).map((p) => `  ${p.message}`).join('\n')}`);
}

/** Whether SORAC_DEBUG asks for graph verification after every pass (`SORAC_DEBUG=verify`, or `all`). */
export function verifyEnabled(): boolean {
  const d = (process.env.SORAC_DEBUG ?? '').split(/[,\s]+/);
  return d.includes('verify') || d.includes('all');
}
