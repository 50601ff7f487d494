/**
 * A tiny hand-written IrGraph builder for emitter/runtime tests (independent of the tracer).
 */
import type { DType } from '../../core/dtype.ts';
import type { IrAttr, IrConstant, IrDim, IrGraph, IrNode, IrSourceRef, IrValue, IrWeight } from '../../core/ir.ts';

export class GraphBuilder {
  private nextId = 0;
  readonly inputs: IrValue[] = [];
  readonly outputs: IrValue[] = [];
  readonly nodes: IrNode[] = [];
  readonly constants = new Map<IrValue, IrConstant>();
  readonly weights: IrWeight[] = [];
  metadata: Record<string, string> = {};

  constructor(
    readonly name = 'test',
    readonly opset = 17,
  ) {}

  value(name: string, dtype: DType, shape: readonly IrDim[]): IrValue {
    return { id: this.nextId++, name, dtype, shape };
  }

  input(name: string, dtype: DType, shape: readonly IrDim[]): IrValue {
    const v = this.value(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  weight(key: string, dtype: DType, shape: readonly number[]): IrValue {
    const v = this.value(key.replace(/\W/g, '_'), dtype, shape);
    this.weights.push({ value: v, key });
    return v;
  }

  constF32(name: string, shape: readonly number[], values: readonly number[]): IrValue {
    return this.constant(name, 'f32', shape, new Uint8Array(new Float32Array(values).buffer));
  }

  constI64(name: string, shape: readonly number[], values: readonly number[]): IrValue {
    return this.constant(name, 'i64', shape, new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer));
  }

  constant(name: string, dtype: DType, shape: readonly number[], data: Uint8Array): IrValue {
    const v = this.value(name, dtype, shape);
    this.constants.set(v, { dtype, shape, data });
    return v;
  }

  /** Add a node with one output. */
  op(
    op: string,
    inputs: readonly (IrValue | null)[],
    out: { name: string; dtype: DType; shape: readonly IrDim[] },
    attrs: Record<string, IrAttr> = {},
    extra: { source?: IrSourceRef; scope?: string } = {},
  ): IrValue {
    const o = this.value(out.name, out.dtype, out.shape);
    this.nodes.push({ op, inputs, outputs: [o], attrs, ...extra });
    return o;
  }

  output(v: IrValue): void {
    this.outputs.push(v);
  }

  build(): IrGraph {
    return {
      name: this.name,
      inputs: this.inputs,
      outputs: this.outputs,
      nodes: this.nodes,
      constants: this.constants,
      weights: this.weights,
      opset: this.opset,
      metadata: this.metadata,
    };
  }
}

export const int = (value: number): IrAttr => ({ kind: 'int', value });
export const ints = (value: number[]): IrAttr => ({ kind: 'ints', value });
export const float = (value: number): IrAttr => ({ kind: 'float', value });
