/**
 * Parity harness: compile an example with the constructor kwargs recorded in a golden case
 * (outputs of the real upstream PyTorch code), run it with onnxruntime on the golden weights
 * and inputs, and compare with the golden outputs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCompiles, compileFile, traceOk } from './model.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';

export const GOLDEN = join(import.meta.dirname, '..', 'fixtures', 'golden');

export function goldenMeta(model: string, cfg = 'a'): any {
  return JSON.parse(readFileSync(join(GOLDEN, model, cfg, 'meta.json'), 'utf8'));
}

/** The constructor kwargs of a golden case, flattened to a config object. */
export function goldenConfig(model: string, cfg = 'a'): Record<string, unknown> {
  const kw = goldenMeta(model, cfg).constructor_kwargs as Record<string, Record<string, unknown>>;
  return Object.assign({}, ...Object.values(kw));
}

/** The constructor kwargs recorded in the meta.json of a case directory, flattened to a config object. */
export function dirConfig(dir: string): Record<string, unknown> {
  const kw = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).constructor_kwargs as Record<string, Record<string, unknown>>;
  return Object.assign({}, ...Object.values(kw));
}

/** Compile an example at a config, throwing with every error's code and location. */
export function compileExample(file: string, config: Record<string, unknown>, model?: string) {
  return assertCompiles(compileFile(file, { values: config, ...(model ? { model } : {}) }));
}

export function maxAbsDiff(a: HostTensor, b: HostTensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (Number.isNaN(d)) return Infinity;
    if (d > m) m = d;
  }
  return m;
}

export interface ParityResult {
  readonly outputs: Map<string, HostTensor>;
  readonly reference: Map<string, HostTensor>;
  readonly errors: Record<string, number>;
}

/**
 * Run `entry` of an example on a golden case. `inputsMap` renames golden inputs to the entry's
 * parameter names when they differ; `weights` picks model.safetensors or model.bf16.safetensors.
 */
export async function runGolden(
  file: string,
  model: string,
  opts: { entry?: string; cfg?: string; weights?: string; config?: Record<string, unknown>; inputs?: (t: Map<string, HostTensor>) => Map<string, HostTensor>; absent?: string[]; goldenDir?: string; optimize?: boolean } = {},
): Promise<ParityResult> {
  const cfg = opts.cfg ?? 'a';
  // goldenDir: a case directory outside tests/fixtures/golden (e.g. tests/fixtures/golden-extra/<model>/<case>)
  const dir = opts.goldenDir ?? join(GOLDEN, model, cfg);
  const m = compileExample(file, opts.config ?? (opts.goldenDir ? dirConfig(dir) : goldenConfig(model, cfg)));
  const { tensors: rawInputs } = await readTensorsFile(join(dir, 'inputs.safetensors'));
  const inputs = opts.inputs ? opts.inputs(rawInputs) : rawInputs;
  const entry = m.entries.find((e) => e.name === (opts.entry ?? 'forward'))!;
  const absent = new Set(opts.absent ?? entry.inputs.filter((i) => i.optional && !inputs.has(i.name)).map((i) => i.name));
  const graph = traceOk(m, entry.name, absent);
  const wanted = new Set(graph.inputs.map((i) => i.name));
  const feed = new Map([...inputs].filter(([k]) => wanted.has(k)));
  const w = await safetensorsWeightSource([join(dir, opts.weights ?? 'model.safetensors')]);
  try {
    const r = await runGraph(graph, w, feed, { device: 'cpu', ...(opts.optimize === false ? { optimize: false } : {}) });
    const { tensors: reference } = await readTensorsFile(join(dir, 'outputs.safetensors'));
    const errors: Record<string, number> = {};
    for (const [k, v] of r.outputs) if (reference.has(k)) errors[k] = maxAbsDiff(v, reference.get(k)!);
    return { outputs: r.outputs, reference, errors };
  } finally {
    await w.close();
  }
}
