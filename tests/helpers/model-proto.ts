/**
 * The reference for ONNX emission's bytes: the ModelProto message that compiler/emit/onnx.ts used
 * to build for onnx-proto (protobufjs) before it wrote the bytes directly from the IrGraph
 * (tests/emit/proto.test.ts encodes it with protobufjs and compares). Keep it independent of the
 * writer: it says field by field what emitOnnx must write.
 */
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { DTYPE_SIZE, ONNX_DTYPE } from '../../core/dtype.ts';
import { InternalError } from '../../core/errors.ts';
import type { IrAttr, IrConstant, IrDim, IrGraph, IrNode, IrValue } from '../../core/ir.ts';
import { assignNames, type EmitOptions, irVersionForOpset, normalizeOutputs, numel, weightInitializer } from '../../compiler/emit/onnx.ts';

const { onnx } = onnxProto;

function staticShape(shape: readonly IrDim[], what: string): number[] {
  return shape.map((d) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new InternalError(`${what} must have a static non-negative shape, got [${shape.join(', ')}]`);
    }
    return d;
  });
}

function dimProto(d: IrDim): O.TensorShapeProto.IDimension {
  if (typeof d === 'number') {
    if (!Number.isSafeInteger(d) || d < 0) throw new InternalError(`invalid dimension ${d}`);
    return { dimValue: d };
  }
  if (d === '') throw new InternalError('empty symbolic dimension');
  return { dimParam: d };
}

function valueInfo(name: string, v: IrValue): O.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ONNX_DTYPE[v.dtype], shape: { dim: v.shape.map(dimProto) } } },
  };
}

function tensorProto(name: string, c: IrConstant): O.ITensorProto {
  const dims = staticShape(c.shape, `constant ${JSON.stringify(name)}`);
  const want = numel(dims) * DTYPE_SIZE[c.dtype];
  if (c.data.byteLength !== want) {
    throw new InternalError(`constant ${JSON.stringify(name)} ${c.dtype}[${dims.join(',')}] needs ${want} bytes, has ${c.data.byteLength}`);
  }
  return { name, dims, dataType: ONNX_DTYPE[c.dtype], rawData: c.data };
}

function attrProto(name: string, a: IrAttr): O.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      if (!Number.isSafeInteger(a.value)) throw new InternalError(`attribute ${name}: ${a.value} is not an integer`);
      return { name, type: T.INT, i: a.value };
    case 'ints':
      for (const x of a.value) if (!Number.isSafeInteger(x)) throw new InternalError(`attribute ${name}: ${x} is not an integer`);
      return { name, type: T.INTS, ints: [...a.value] };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', a.value) };
  }
}

function nodeName(n: IrNode, i: number): string {
  return n.scope ? `${n.scope}/${n.op}_${i}` : `${n.op}_${i}`;
}

function docString(n: IrNode): string {
  const parts: string[] = [];
  if (n.source) parts.push(`${n.source.file}:${n.source.line}:${n.source.col}`);
  if (n.scope) parts.push(`in ${n.scope}`);
  return parts.join(' ');
}

export function referenceModelProto(irGraph: IrGraph, opts: EmitOptions): O.IModelProto {
  const graph = normalizeOutputs(irGraph);
  const weightsAsInputs = opts.weights === 'none';
  const names = assignNames(graph, weightsAsInputs);
  const nameOf = (v: IrValue) => {
    const n = names.get(v.id);
    if (n === undefined) throw new InternalError(`value #${v.id} (${v.name}) is used but never defined`);
    return n;
  };

  const initializer: O.ITensorProto[] = [];
  const inputs: O.IValueInfoProto[] = graph.inputs.map((v) => valueInfo(nameOf(v), v));
  for (const w of graph.weights) {
    const name = nameOf(w.value);
    if (weightsAsInputs) {
      inputs.push(valueInfo(name, w.value));
      continue;
    }
    // which data the weight gets (and its checks) is the emitter's; how that is written, field by field, is this file's
    const init = weightInitializer(w, name, opts);
    const base: O.ITensorProto = { name, dims: [...init.dims], dataType: ONNX_DTYPE[init.dtype] };
    initializer.push(
      init.external
        ? {
            ...base,
            dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
            externalData: [
              { key: 'location', value: init.external.location },
              { key: 'offset', value: String(init.external.offset) },
              { key: 'length', value: String(init.external.length) },
            ],
          }
        : { ...base, rawData: init.rawData! },
    );
  }
  for (const [v, c] of graph.constants) {
    if (c.dtype !== v.dtype) throw new InternalError(`constant ${v.name}: value is ${v.dtype} but data is ${c.dtype}`);
    initializer.push(tensorProto(nameOf(v), c));
  }

  const defined = new Set<number>([...graph.inputs, ...graph.weights.map((w) => w.value), ...graph.constants.keys()].map((v) => v.id));
  const nodes: O.INodeProto[] = graph.nodes.map((n, i) => {
    for (const inp of n.inputs) {
      if (inp && !defined.has(inp.id)) throw new InternalError(`node ${nodeName(n, i)} reads ${JSON.stringify(inp.name)} before it is defined`);
    }
    for (const o of n.outputs) defined.add(o.id);
    const attrNames = Object.keys(n.attrs).sort();
    const doc = docString(n);
    return {
      name: nodeName(n, i),
      opType: n.op,
      ...(n.domain ? { domain: n.domain } : {}),
      input: n.inputs.map((v) => (v ? nameOf(v) : '')),
      output: n.outputs.map(nameOf),
      attribute: attrNames.map((k) => attrProto(k, n.attrs[k]!)),
      ...(doc ? { docString: doc } : {}),
    };
  });
  for (const o of graph.outputs) if (!defined.has(o.id)) throw new InternalError(`graph output ${JSON.stringify(o.name)} is never produced`);

  const valueInfos: O.IValueInfoProto[] = [];
  if (opts.valueInfo ?? true) {
    const outIds = new Set(graph.outputs.map((v) => v.id));
    for (const n of graph.nodes) for (const o of n.outputs) if (!outIds.has(o.id)) valueInfos.push(valueInfo(nameOf(o), o));
  }

  const metadataProps = Object.keys(graph.metadata)
    .sort()
    .map((key) => ({ key, value: graph.metadata[key]! }));

  return {
    irVersion: irVersionForOpset(graph.opset),
    opsetImport: [{ domain: '', version: graph.opset }, ...(graph.nodes.some((n) => n.domain === 'com.microsoft') ? [{ domain: 'com.microsoft', version: 1 }] : [])],
    producerName: 'sorac',
    ...(opts.producerVersion ? { producerVersion: opts.producerVersion } : {}),
    graph: {
      name: graph.name,
      node: nodes,
      initializer,
      input: inputs,
      output: graph.outputs.map((v) => valueInfo(nameOf(v), v)),
      valueInfo: valueInfos,
    },
    metadataProps,
  };
}

/** The protobufjs encoding of referenceModelProto (what emitOnnx must write, byte for byte). */
export function referenceOnnxBytes(graph: IrGraph, opts: EmitOptions): Uint8Array {
  const model = referenceModelProto(graph, opts);
  const err = onnx.ModelProto.verify(model);
  if (err) throw new InternalError(`ModelProto does not verify: ${err}`);
  return onnx.ModelProto.encode(model).finish();
}
