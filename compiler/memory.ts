/**
 * How much memory running a graph needs, from its static types: the bytes of its weights (in the
 * graph's dtypes, which is what onnxruntime holds), its constants, and the peak of the activations that
 * are alive at once when the nodes run in order (a value lives from the node that makes it to the last
 * node that reads it; graph inputs from the start, outputs to the end). Needs concrete shapes: trace the
 * entry with `bind` for the request's sizes first. Used by `sorac generate --dry-run` for its estimate.
 */
import { DTYPE_SIZE } from '../core/dtype.ts';
import type { IrGraph, IrValue } from '../core/ir.ts';

export interface GraphMemory {
  readonly weightBytes: number;
  readonly constantBytes: number;
  /** Peak bytes of simultaneously live activations (inputs, intermediates, outputs). */
  readonly peakActivationBytes: number;
  /** The largest single activation (a lower bound for any schedule). */
  readonly largestValueBytes: number;
  /** Values whose size is not known statically (symbolic or data-dependent dims), not counted. */
  readonly unknownValues: number;
}

function bytesOf(v: IrValue): number | undefined {
  let n = DTYPE_SIZE[v.dtype];
  for (const d of v.shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

export function graphMemory(g: IrGraph): GraphMemory {
  let unknown = 0;
  const size = (v: IrValue) => {
    const b = bytesOf(v);
    if (b === undefined) unknown++;
    return b ?? 0;
  };
  const weightBytes = g.weights.reduce((a, w) => a + size(w.value), 0);
  const constantBytes = [...g.constants.keys()].reduce((a, v) => a + size(v), 0);
  const held = new Set<IrValue>([...g.weights.map((w) => w.value), ...g.constants.keys()]);
  // last node index reading each value (graph outputs: live to the end)
  const lastUse = new Map<IrValue, number>();
  g.nodes.forEach((n, i) => {
    for (const x of n.inputs) if (x && !held.has(x)) lastUse.set(x, i);
  });
  for (const o of g.outputs) lastUse.set(o, g.nodes.length);
  let live = 0;
  let peak = 0;
  let largest = 0;
  const alive = new Map<IrValue, number>();
  const add = (v: IrValue) => {
    if (alive.has(v) || held.has(v)) return;
    const b = size(v);
    alive.set(v, b);
    live += b;
    largest = Math.max(largest, b);
  };
  for (const v of g.inputs) add(v);
  peak = live;
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) add(o);
    peak = Math.max(peak, live);
    for (const x of new Set(n.inputs)) {
      if (!x || held.has(x)) continue;
      if ((lastUse.get(x) ?? -1) <= i && alive.has(x)) {
        live -= alive.get(x)!;
        alive.delete(x);
      }
    }
    // outputs nobody reads die at once
    for (const o of n.outputs) if (!lastUse.has(o) && alive.has(o)) {
      live -= alive.get(o)!;
      alive.delete(o);
    }
  });
  return { weightBytes, constantBytes, peakActivationBytes: peak, largestValueBytes: largest, unknownValues: unknown };
}
