/**
 * The one test path from source to numbers: compile (an example file or inline source) -> trace an
 * entry -> run it with onnxruntime. Failures throw with every diagnostic's code and location, and
 * diagnostics are asserted by code and span (`at(ds)`), not by matching message text.
 */
import { expect } from 'vitest';
import { runGraph } from '../../api/session.ts';
import { type CompiledModel, compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import type { Diagnostic } from '../../core/diagnostics.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import type { IrGraph } from '../../core/ir.ts';
import type { WeightSource } from '../../runtime/execution/binding.ts';

export interface CompileArgs {
  readonly values?: Record<string, unknown>;
  readonly dtype?: Record<string, string>;
  readonly model?: string;
}

const where = (d: Diagnostic) => `${d.code} ${d.span ? `${d.span.file}:${d.span.start.line}:${d.span.start.col}` : '-'}: ${d.message}`;

const compiled = new Map<string, CompiledModel>();

/**
 * Compile a file; diagnostics are left to the caller. Memoized per (file, config, dtype, model) within a test
 * file: a CompiledModel is frozen and tracing it is reentrant (docs/adr/006-layers.md), so sharing one is safe.
 */
export function compileFile(file: string, args: CompileArgs = {}): CompiledModel {
  const key = JSON.stringify([file, args.values ?? {}, args.dtype ?? null, args.model ?? null]);
  let m = compiled.get(key);
  if (!m) {
    m = compile({ file, host: fsHost, config: { values: args.values ?? {} }, ...(args.dtype ? { dtype: args.dtype } : {}), ...(args.model ? { model: args.model } : {}) });
    compiled.set(key, m);
  }
  return m;
}

/** Compile inline .sora source (shown as `file` in diagnostics); diagnostics are left to the caller. */
export function compileSource(src: string, file = 'test.sora', args: CompileArgs = {}): CompiledModel {
  return compile({ file, host: fsHost, rootText: src, config: { values: args.values ?? {} }, ...(args.dtype ? { dtype: args.dtype } : {}) });
}

/** Throw (with code and location of each) when `m` has compile errors. */
export function assertCompiles(m: CompiledModel): CompiledModel {
  const errors = m.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map(where).join('\n'));
  return m;
}

/** Trace an entry, throwing with every diagnostic when it does not produce a graph. */
export function traceOk(m: CompiledModel, entry = 'forward', absent: Iterable<string> = []): IrGraph {
  const tr = traceEntry(m, entry, { absent: new Set(absent) });
  if (!tr.graph) throw new Error(tr.diagnostics.map(where).join('\n'));
  return tr.graph;
}

/** Run a graph once on CPU with the given weights (none by default). */
export async function runOnce(graph: IrGraph, feed: ReadonlyMap<string, HostTensor>, weights: WeightSource = { tensors: new Map() }): Promise<Map<string, HostTensor>> {
  return (await runGraph(graph, weights, feed, { device: 'cpu' })).outputs;
}

/** Diagnostics as `CODE file:line:col` strings (plus severity when not an error), for toEqual. */
export function at(ds: readonly Diagnostic[]): string[] {
  return ds.map((d) => `${d.code}${d.severity === 'error' ? '' : ` (${d.severity})`} ${d.span ? `${d.span.file}:${d.span.start.line}:${d.span.start.col}` : '-'}`);
}

/** The errors of a compile + every entry trace, as `at()` strings. */
export function errorsAt(m: CompiledModel, entry = 'forward', absent: Iterable<string> = []): string[] {
  const ds = [...m.diagnostics];
  if (!ds.some((d) => d.severity === 'error')) ds.push(...traceEntry(m, entry, { absent: new Set(absent) }).diagnostics);
  return at(ds.filter((d) => d.severity === 'error'));
}

/** A compiled model with no errors (asserted with vitest, showing each code and location on failure). */
export function expectCompiles(m: CompiledModel): void {
  expect(m.diagnostics.filter((d) => d.severity === 'error').map(where)).toEqual([]);
}
