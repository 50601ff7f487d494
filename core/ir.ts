/**
 * Graph IR: the output of tracing a checked entry point, one graph per entry.
 * Nodes are ONNX operators (default domain) at the graph's target opset, so emission is a
 * serialisation step. Higher-level ops (attention, RMSNorm, GELU-tanh, RoPE...) are already
 * decomposed by the tracer's builtins. Only the ORT target pass (compiler/passes/ort-cpu.ts) puts in
 * nodes of onnxruntime's contrib domain (`domain: 'com.microsoft'`).
 */
import type { DType } from './dtype.ts';

/** A dimension in a value's static type: a concrete size or a symbolic expression string ("B", "ceil(H/2)"). */
export type IrDim = number | string;

export interface IrValue {
  readonly id: number;
  /** Unique name inside the graph (graph inputs/outputs keep the user's names). */
  name: string;
  readonly dtype: DType;
  readonly shape: readonly IrDim[];
}

export type IrAttr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'tensor'; readonly value: IrConstant };

export interface IrSourceRef {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export interface IrNode {
  readonly op: string;
  /** Operator domain; absent means the default ONNX domain at `graph.opset`. 'com.microsoft' is imported at version 1. */
  readonly domain?: 'com.microsoft';
  /** `null` marks an omitted optional input (ONNX empty name). */
  readonly inputs: readonly (IrValue | null)[];
  readonly outputs: readonly IrValue[];
  readonly attrs: Readonly<Record<string, IrAttr>>;
  /** Where in the .sora source this node comes from (for doc_string / debugging). */
  readonly source?: IrSourceRef;
  /** Module instance path that produced the node, e.g. "spatial_blocks.0.attn". */
  readonly scope?: string;
}

/** A compile-time constant (positional tables, shape vectors, scalars). Data is little-endian bytes. */
export interface IrConstant {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** A weight that comes from the checkpoint: bound at load time by key. */
export interface IrWeight {
  readonly value: IrValue;
  /** Checkpoint key, e.g. "spatial_blocks.0.attn.qkv.weight". */
  readonly key: string;
}

export interface IrGraph {
  readonly name: string;
  readonly inputs: readonly IrValue[];
  readonly outputs: readonly IrValue[];
  readonly nodes: readonly IrNode[];
  /** Constants created by the tracer (become ONNX initializers stored inline). */
  readonly constants: ReadonlyMap<IrValue, IrConstant>;
  /** Checkpoint tensors (become initializers, inline or external data). */
  readonly weights: readonly IrWeight[];
  readonly opset: number;
  /** Extra metadata_props (the contract hash, model name, version, entry). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Where float casts were placed and why (the dtype policy at work); not serialised. */
  readonly casts?: readonly IrCast[];
}

export interface IrCast {
  readonly value: IrValue;
  readonly from: DType;
  readonly to: DType;
  readonly reason: string;
  readonly source?: IrSourceRef;
  readonly scope: string;
}

/** Where an external weight's bytes live: `location` is relative to the model file's directory. */
export interface ExternalDataRef {
  readonly location: string;
  readonly offset: number;
  readonly length: number;
}
