/**
 * Pass: bf16 graph inputs/outputs made to cross the JS boundary as f32.
 *
 * onnxruntime-node has no bfloat16 tensor type (session creation throws "Unsupported data type: 16"),
 * so a bf16 input becomes an f32 graph input followed by a Cast to bf16 (exact for bf16 values), and a
 * bf16 output is cast to f32 in-graph; the session converts the bits on the JS side (exact both ways).
 * The user-facing names and dtypes stay those of the original graph.
 */
import type { IrGraph, IrNode, IrValue } from '../../core/ir.ts';

export interface Bf16IoGraph {
  graph: IrGraph;
  /** user input name -> true when fed as f32 and cast to bf16 in-graph */
  bf16Inputs: Set<string>;
  bf16Outputs: Set<string>;
}

export function wrapBf16Io(graph: IrGraph): Bf16IoGraph {
  const bf16Inputs = new Set(graph.inputs.filter((v) => v.dtype === 'bf16').map((v) => v.name));
  const bf16Outputs = new Set(graph.outputs.filter((v) => v.dtype === 'bf16').map((v) => v.name));
  if (!bf16Inputs.size && !bf16Outputs.size) return { graph, bf16Inputs, bf16Outputs };
  let nextId = 1 + Math.max(-1, ...allValues(graph).map((v) => v.id));
  const pre: IrNode[] = [];
  const post: IrNode[] = [];
  const inputs = graph.inputs.map((v) => {
    if (v.dtype !== 'bf16') return v;
    const f: IrValue = { id: nextId++, name: v.name, dtype: 'f32', shape: v.shape };
    pre.push({ op: 'Cast', inputs: [f], outputs: [v], attrs: { to: { kind: 'int', value: 16 } }, scope: 'sorac.io' });
    return f;
  });
  const outputs = graph.outputs.map((v) => {
    if (v.dtype !== 'bf16') return v;
    const f: IrValue = { id: nextId++, name: v.name, dtype: 'f32', shape: v.shape };
    post.push({ op: 'Cast', inputs: [v], outputs: [f], attrs: { to: { kind: 'int', value: 1 } }, scope: 'sorac.io' });
    return f;
  });
  return { graph: { ...graph, inputs, outputs, nodes: [...pre, ...graph.nodes, ...post] }, bf16Inputs, bf16Outputs };
}

function allValues(g: IrGraph): IrValue[] {
  return [...g.inputs, ...g.weights.map((w) => w.value), ...g.constants.keys(), ...g.nodes.flatMap((n) => n.outputs)];
}
