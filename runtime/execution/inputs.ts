/**
 * Input validation before any compute: names (unknown/missing), dtypes, typed-array kinds, ranks,
 * static dims, symbolic dims (one size per symbol across all inputs) and declared multiples (`4*t`:
 * divisible, and `t` consistent); and the output check that
 * catches a graph whose run-time shapes disagree with its compiled types (a compiler bug).
 */
import type { Code } from '../../core/codes.ts';
import type { DType } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { type HostTensor, fmtShape, isTypedArrayFor, shapeNumel, typedArrayName } from '../../core/host-tensor.ts';
import type { IrDim } from '../../core/ir.ts';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly IrDim[];
}

export function toEntries<T>(m: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m as Record<string, T>);
}

function describeSpecs(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `  ${s.name}: ${s.dtype}${fmtShape(s.shape)}`).join('\n');
}

/**
 * Check inputs against the graph's input types before any compute: names (unknown/missing),
 * dtypes, typed-array kinds, ranks, static dims, and symbolic dims (the same symbol must bind to
 * the same size across all inputs). Throws one SoracError listing every problem.
 * Returns the symbol bindings.
 */
export function validateInputs(specs: readonly TensorSpec[], inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>): Map<string, number> {
  const given = new Map(toEntries(inputs));
  const byName = new Map(specs.map((s) => [s.name, s]));
  const unknown = [...given.keys()].filter((k) => !byName.has(k));
  const missing = specs.filter((s) => !given.has(s.name)).map((s) => s.name);
  if (unknown.length || missing.length) {
    const parts: string[] = [];
    if (unknown.length) parts.push(`unknown input${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);
    if (missing.length) parts.push(`missing input${missing.length > 1 ? 's' : ''} ${missing.map((n) => JSON.stringify(n)).join(', ')}`);
    throw new SoracError('SORA5501', `${parts.join('; ')}. The model expects:\n${describeSpecs(specs)}`);
  }
  const bound = new Map<string, { size: number; by: string }>();
  const problems: string[] = [];
  let code: Code = 'SORA5503';
  for (const spec of specs) {
    const t = given.get(spec.name)!;
    const want = `${spec.dtype}${fmtShape(spec.shape)}`;
    if (t.dtype !== spec.dtype) {
      problems.push(`  ${spec.name}: dtype ${t.dtype}, expected ${want}`);
      code = 'SORA5502';
      continue;
    }
    if (!isTypedArrayFor(t.dtype, t.data)) {
      problems.push(`  ${spec.name}: ${t.dtype} data must be a ${typedArrayName(t.dtype)}, got ${t.data?.constructor?.name ?? typeof t.data}`);
      code = 'SORA5502';
      continue;
    }
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      problems.push(`  ${spec.name}: invalid shape ${JSON.stringify(t.shape)}`);
      continue;
    }
    if (t.shape.length !== spec.shape.length) {
      problems.push(`  ${spec.name}: got rank ${t.shape.length} ${fmtShape(t.shape)}, expected rank ${spec.shape.length} ${want}`);
      continue;
    }
    spec.shape.forEach((d, i) => {
      const got = t.shape[i]!;
      if (typeof d === 'number') {
        if (got !== d) problems.push(`  ${spec.name}: dim ${i} is ${got}, expected ${d} (${want}, got ${fmtShape(t.shape)})`);
        return;
      }
      const prev = bound.get(d);
      if (!prev) bound.set(d, { size: got, by: `${spec.name} dim ${i}` });
      else if (prev.size !== got) problems.push(`  ${spec.name}: dim ${i} (${d}) is ${got}, but ${d} = ${prev.size} from ${prev.by}`);
      // a declared multiple (`4*t`, from an entry's `f32[B, C, tcr * t, ...]`): the size must divide, and binds `t`
      const mult = /^(\d+)\*([A-Za-z_][A-Za-z0-9_]*)$/.exec(d);
      if (mult) {
        const k = Number(mult[1]);
        const name = mult[2]!;
        if (got % k !== 0) {
          problems.push(`  ${spec.name}: dim ${i} is ${got}, not a multiple of ${k} (${want}, got ${fmtShape(t.shape)})`);
          return;
        }
        const sym = bound.get(name);
        if (!sym) bound.set(name, { size: got / k, by: `${spec.name} dim ${i} (${d})` });
        else if (sym.size !== got / k) problems.push(`  ${spec.name}: dim ${i} (${d}) is ${got}, so ${name} = ${got / k}, but ${name} = ${sym.size} from ${sym.by}`);
      }
    });
    if (t.data.length !== shapeNumel(t.shape)) problems.push(`  ${spec.name}: shape ${fmtShape(t.shape)} has ${shapeNumel(t.shape)} elements but data has ${t.data.length}`);
  }
  if (problems.length) {
    throw new SoracError(code, `invalid input${problems.length > 1 ? 's' : ''}:\n${problems.join('\n')}\nThe model expects:\n${describeSpecs(specs)}`);
  }
  return new Map([...bound].map(([k, v]) => [k, v.size]));
}

/** Outputs must agree with the graph's static types (a mismatch is a compiler bug). */
export function checkOutput(o: TensorSpec, shape: number[], symbols: Map<string, number>): void {
  const bad = shape.length !== o.shape.length || o.shape.some((d, i) => {
    if (typeof d === 'number') return d !== shape[i];
    const b = symbols.get(d);
    if (b === undefined) {
      symbols.set(d, shape[i]!);
      return false;
    }
    return b !== shape[i];
  });
  if (bad) {
    throw new SoracError('SORA5508', `output "${o.name}" has shape ${fmtShape(shape)}, but the compiled graph says ${o.dtype}${fmtShape(o.shape)} (with ${[...symbols].map(([k, v]) => `${k}=${v}`).join(', ')}); this is a compiler bug, please report it`);
  }
}
