/**
 * Micro-batching: run an entry chunk by chunk along an axis where its computation is independent, with one
 * session, writing each output chunk into a preallocated output (memory) or straight into the output
 * safetensors file (file), so that peak memory does not grow with the axis length (docs/adr/005-micro-batching.md).
 *
 * Which axes are safe is declared by the model, in the entry body: `micro_batch("T")` (per-frame models),
 * `micro_batch("Tz", step=5, out_step=17, out_dim=2, length="num_frames")` (the v1.2 pipeline's decode: whole
 * micro-frame chunks of 5 latent frames give 17 frames each; num_frames is the total output length). The
 * tracer records the declarations as graph metadata `sorac.micro_batch` (a JSON list); this module reads
 * them, resolves them against the graph's input/output shapes, and runs the chunks:
 *
 *   const plan = planMicroBatch(graph, { axis: 'T' })
 *   const r = await runMicroBatched(session, plan, inputs, { size: 8 })               // r.outputs
 *   await runMicroBatched(session, plan, inputs, { size: 8, out: { path, metadata } })  // streamed to a file
 *
 * Chunks hold `size` elements of the axis (a multiple of the declared step); the last one may be shorter.
 * The last chunk runs first: its outputs give the non-axis output dims and the tail's extent, so every
 * output can be allocated (or its file header written) before the other chunks run.
 */
import { DTYPE_SIZE } from '../../core/dtype.ts';
import type { IrGraph } from '../../core/ir.ts';
import { type HostTensor, fmtShape, hostBytes, hostFromBytes, shapeNumel } from '../../core/host-tensor.ts';
import { validateInputs } from './inputs.ts';
import type { SoracSession } from './session.ts';
import { SoracError } from '../../core/errors.ts';
import { atomicWrite, writeFully } from '../../core/atomic.ts';
import { buildHeader } from '../formats/safetensors-writer.ts';

/** One `micro_batch(...)` declaration as recorded in the graph metadata. */
export interface MicroBatchDecl {
  readonly axis: string;
  readonly step: number;
  readonly out_step: number;
  readonly out_dim?: number;
  readonly length?: string;
}

/** A declaration resolved against a graph: which input and output dims are cut. */
export interface MicroBatchPlan {
  readonly graph: string;
  readonly axis: string;
  readonly step: number;
  readonly outStep: number;
  readonly length?: string;
  /** input name -> dim along the axis (inputs without the axis are passed whole to every chunk) */
  readonly inputDims: ReadonlyMap<string, number>;
  /** output name -> dim along which chunks are concatenated */
  readonly outputDims: ReadonlyMap<string, number>;
}

export const MICRO_BATCH_KEY = 'sorac.micro_batch';

/** The micro-batch axes an entry's graph declares (empty when none). */
export function declaredMicroBatch(graph: Pick<IrGraph, 'metadata'>): MicroBatchDecl[] {
  const raw = graph.metadata[MICRO_BATCH_KEY];
  if (!raw) return [];
  const v = JSON.parse(raw) as MicroBatchDecl[];
  if (!Array.isArray(v)) throw new SoracError('SORA5509', `graph metadata ${MICRO_BATCH_KEY} is not a list`);
  return v;
}

const HOW = 'declare it in the entry body, e.g. micro_batch("T") for a per-frame entry (docs/adr/005-micro-batching.md)';

/** Resolve the declaration for `axis` (default: the first declared) against the graph's inputs and outputs. */
export function planMicroBatch(graph: Pick<IrGraph, 'name' | 'metadata' | 'inputs' | 'outputs'>, opts: { axis?: string } = {}): MicroBatchPlan {
  const decls = declaredMicroBatch(graph);
  const names = decls.map((d) => d.axis).join(', ');
  if (!decls.length) throw new SoracError('SORA5509', `${graph.name} declares no micro-batch axis: its inputs cannot be split safely`, { hint: HOW });
  const d = opts.axis === undefined ? decls[0]! : decls.find((x) => x.axis === opts.axis);
  if (!d) throw new SoracError('SORA5509', `${graph.name} cannot be micro-batched along "${opts.axis}"`, { hint: `declared micro-batch axes: ${names}` });
  const inputDims = new Map<string, number>();
  for (const v of graph.inputs) {
    const dims = v.shape.flatMap((x, i) => (x === d.axis ? [i] : []));
    if (dims.length > 1) throw new SoracError('SORA5509', `${graph.name}: input ${v.name}${fmtShape(v.shape)} has the axis ${d.axis} more than once`);
    if (dims.length) inputDims.set(v.name, dims[0]!);
  }
  if (!inputDims.size) throw new SoracError('SORA5509', `${graph.name}: no input has a dimension named ${d.axis}`);
  const outputDims = new Map<string, number>();
  for (const v of graph.outputs) {
    let dim = d.out_dim;
    if (dim === undefined) {
      const dims = v.shape.flatMap((x, i) => (x === d.axis ? [i] : []));
      if (dims.length !== 1) throw new SoracError('SORA5509', `${graph.name}: output ${v.name}${fmtShape(v.shape)} has no single dimension named ${d.axis}`, { hint: 'pass out_dim= to micro_batch()' });
      dim = dims[0]!;
    }
    if (dim < 0 || dim >= v.shape.length) throw new SoracError('SORA5509', `${graph.name}: out_dim ${dim} is outside output ${v.name}${fmtShape(v.shape)}`);
    outputDims.set(v.name, dim);
  }
  if (d.length !== undefined && !graph.inputs.some((v) => v.name === d.length)) throw new SoracError('SORA5509', `${graph.name}: length input ${d.length} is not an input`);
  return { graph: graph.name, axis: d.axis, step: d.step, outStep: d.out_step, ...(d.length !== undefined ? { length: d.length } : {}), inputDims, outputDims };
}

export interface MicroBatchRunOptions {
  /** Elements of the axis per run (a multiple of the declared step). */
  readonly size: number;
  /** Stream the outputs into this safetensors file (atomically) instead of returning them. */
  readonly out?: { readonly path: string; readonly metadata?: Readonly<Record<string, string>> };
  /** Called after each chunk (progress). */
  readonly onChunk?: (done: number, total: number) => void;
}

export interface MicroBatchResult {
  /** The outputs, when not streamed to a file. */
  readonly outputs?: Map<string, HostTensor>;
  readonly shapes: ReadonlyMap<string, { dtype: HostTensor['dtype']; shape: number[] }>;
  readonly chunks: number;
  readonly runMs: number;
}

interface Chunk {
  readonly start: number;
  readonly end: number;
  /** extent of every output along its dim; undefined = learned from the run (the last chunk) */
  extent?: number;
  /** the value of the `length` input for this chunk */
  lengthValue?: number;
  outOffset?: number;
}

/** x[..., start:end, ...] along dim (a copy). */
export function sliceAlong(t: HostTensor, dim: number, start: number, end: number): HostTensor {
  const shape = [...t.shape];
  const n = shape[dim]!;
  const post = shapeNumel(shape.slice(dim + 1)) * DTYPE_SIZE[t.dtype];
  const pre = shapeNumel(shape.slice(0, dim));
  const len = end - start;
  const src = hostBytes(t);
  const out = new Uint8Array(pre * len * post);
  for (let p = 0; p < pre; p++) out.set(src.subarray((p * n + start) * post, (p * n + end) * post), p * len * post);
  shape[dim] = len;
  return hostFromBytes(t.dtype, shape, out);
}

function scalarInt(t: HostTensor, name: string): number {
  if (t.shape.length !== 0) throw new SoracError('SORA5509', `length input ${name} must be a scalar, got ${fmtShape(t.shape)}`);
  const v = t.data[0]!;
  return typeof v === 'bigint' ? Number(v) : v;
}

function withLength(t: HostTensor, v: number): HostTensor {
  const data = t.data instanceof BigInt64Array ? new BigInt64Array([BigInt(v)]) : new (t.data.constructor as new (a: number[]) => HostTensor['data'])([v]);
  return { dtype: t.dtype, shape: [], data };
}

/**
 * Run `session` chunk by chunk along `plan.axis`. Every chunk reuses the session; each chunk's outputs are
 * copied into place and dropped, so memory holds one chunk's activations plus the outputs (or, with
 * `out`, only one chunk's outputs: they are written into the file at their final offsets).
 */
export async function runMicroBatched(
  session: SoracSession,
  plan: MicroBatchPlan,
  inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  opts: MicroBatchRunOptions,
): Promise<MicroBatchResult> {
  const given = inputs instanceof Map ? new Map(inputs) : new Map(Object.entries(inputs as Record<string, HostTensor>));
  const symbols = validateInputs(session.inputs, given);
  const n = symbols.get(plan.axis);
  if (n === undefined) throw new SoracError('SORA5509', `${plan.graph}: the inputs do not bind ${plan.axis}`);
  const size = opts.size;
  if (!Number.isSafeInteger(size) || size < 1) throw new SoracError('SORA5509', `micro-batch size must be a positive integer, got ${size}`);
  if (size % plan.step !== 0)
    throw new SoracError('SORA5509', `${plan.graph} splits ${plan.axis} in whole groups of ${plan.step}: micro-batch size ${size} is not a multiple of ${plan.step}`, { hint: `use a multiple of ${plan.step}, e.g. ${Math.max(plan.step, Math.floor(size / plan.step) * plan.step)}` });
  const chunks: Chunk[] = [];
  for (let s = 0; s < n; s += size) chunks.push({ start: s, end: Math.min(n, s + size) });
  if (!chunks.length) throw new SoracError('SORA5509', `${plan.graph}: ${plan.axis} = 0, nothing to run`);
  const total = plan.length !== undefined ? scalarInt(given.get(plan.length)!, plan.length) : undefined;
  for (const [i, c] of chunks.entries()) {
    c.outOffset = (c.start / plan.step) * plan.outStep;
    const nominal = Math.ceil((c.end - c.start) / plan.step) * plan.outStep;
    // the one-pass graph gives every group but its last the nominal length and the last what is left of the
    // total: so does each chunk (its groups are consecutive groups of the whole)
    if (total !== undefined) c.lengthValue = i < chunks.length - 1 ? nominal : total - c.outOffset;
    // every chunk but the last is whole and gives its nominal extent; the last one's is learned from its run
    if (i < chunks.length - 1) c.extent = nominal;
  }

  const feedFor = (c: Chunk): Map<string, HostTensor> => {
    const feed = new Map<string, HostTensor>();
    for (const [k, t] of given) {
      const dim = plan.inputDims.get(k);
      if (dim !== undefined) feed.set(k, chunks.length === 1 ? t : sliceAlong(t, dim, c.start, c.end));
      else if (k === plan.length) feed.set(k, withLength(t, c.lengthValue!));
      else feed.set(k, t);
    }
    return feed;
  };

  const t0 = performance.now();
  // the last chunk first: it fixes the non-axis dims and a tail's extent
  const last = chunks[chunks.length - 1]!;
  const firstOut = await session.run(feedFor(last));
  const shapes = new Map<string, { dtype: HostTensor['dtype']; shape: number[] }>();
  let tailExtent: number | undefined;
  for (const [name, t] of firstOut) {
    const dim = plan.outputDims.get(name)!;
    const got = t.shape[dim]!;
    if (tailExtent !== undefined && tailExtent !== got) throw new SoracError('SORA5509', `${plan.graph}: outputs disagree on the extent of the last chunk along ${plan.axis}`);
    tailExtent = got;
  }
  last.extent = tailExtent!;
  const totalOut = last.outOffset! + last.extent;
  for (const [name, t] of firstOut) {
    const shape = [...t.shape];
    shape[plan.outputDims.get(name)!] = totalOut;
    shapes.set(name, { dtype: t.dtype, shape });
  }

  // sinks: preallocated host tensors, or positions in the output file
  let outputs: Map<string, HostTensor> | undefined;
  let place: (name: string, t: HostTensor, c: Chunk) => Promise<void>;
  const copyInto = (dst: Uint8Array, name: string, t: HostTensor, c: Chunk) => {
    const dim = plan.outputDims.get(name)!;
    const post = shapeNumel(t.shape.slice(dim + 1)) * DTYPE_SIZE[t.dtype];
    const pre = shapeNumel(t.shape.slice(0, dim));
    const src = hostBytes(t);
    const ext = t.shape[dim]!;
    for (let p = 0; p < pre; p++) dst.set(src.subarray(p * ext * post, (p + 1) * ext * post), (p * totalOut + c.outOffset!) * post);
  };
  const checkChunk = (name: string, t: HostTensor, c: Chunk) => {
    const want = shapes.get(name)!;
    const dim = plan.outputDims.get(name)!;
    if (t.shape[dim] !== c.extent) throw declarationError(plan, name, c, t.shape[dim]!);
    if (t.dtype !== want.dtype || t.shape.some((d, i) => i !== dim && d !== want.shape[i]))
      throw new SoracError('SORA5509', `${plan.graph}: output ${name} of ${plan.axis}[${c.start}:${c.end}] is ${t.dtype}${fmtShape(t.shape)}, other chunks give ${want.dtype}${fmtShape(want.shape)} (with ${plan.axis} cut)`);
  };

  const runAll = async () => {
    for (const [name, t] of firstOut) await place(name, t, last);
    firstOut.clear();
    opts.onChunk?.(1, chunks.length);
    for (let i = 0; i < chunks.length - 1; i++) {
      const c = chunks[i]!;
      const out = await session.run(feedFor(c));
      for (const [name, t] of out) {
        checkChunk(name, t, c);
        await place(name, t, c);
      }
      opts.onChunk?.(i + 2, chunks.length);
    }
  };

  if (!opts.out) {
    outputs = new Map();
    const bytes = new Map<string, Uint8Array>();
    for (const [name, s] of shapes) {
      const b = new Uint8Array(shapeNumel(s.shape) * DTYPE_SIZE[s.dtype]);
      bytes.set(name, b);
      outputs.set(name, hostFromBytes(s.dtype, s.shape, b));
    }
    place = async (name, t, c) => copyInto(bytes.get(name)!, name, t, c);
    await runAll();
  } else {
    const specs = new Map([...shapes].map(([k, s]) => [k, { dtype: s.dtype, shape: s.shape, data: new Uint8Array(0) }] as const));
    const { headerBytes, offsets } = buildHeader(specs, opts.out.metadata, opts.out.path);
    const dataStart = 8 + headerBytes.length;
    await atomicWrite(opts.out.path, async (fh) => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(headerBytes.length));
      await writeAt(fh, len, 0);
      await writeAt(fh, headerBytes, 8);
      // the file gets its full size up front (holes until written), so a short write cannot go unnoticed
      const end = Math.max(0, ...[...offsets.values()].map(([, e]) => e));
      await fh.truncate(dataStart + end);
      place = async (name, t, c) => {
        const dim = plan.outputDims.get(name)!;
        const post = shapeNumel(t.shape.slice(dim + 1)) * DTYPE_SIZE[t.dtype];
        const pre = shapeNumel(t.shape.slice(0, dim));
        const src = hostBytes(t);
        const ext = t.shape[dim]!;
        const base = dataStart + offsets.get(name)![0];
        for (let p = 0; p < pre; p++) await writeAt(fh, src.subarray(p * ext * post, (p + 1) * ext * post), base + (p * totalOut + c.outOffset!) * post);
      };
      await runAll();
    });
  }
  return { ...(outputs ? { outputs } : {}), shapes, chunks: chunks.length, runMs: performance.now() - t0 };
}

async function writeAt(fh: import('node:fs/promises').FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  await writeFully(fh, buf, pos);
}

function declarationError(plan: MicroBatchPlan, name: string, c: Chunk, got: number): SoracError {
  return new SoracError(
    'SORA5508',
    `${plan.graph}: micro-batching along ${plan.axis}: ${plan.axis}[${c.start}:${c.end}] gave ${got} elements of output ${name} along dim ${plan.outputDims.get(name)}, but the entry's micro_batch(step=${plan.step}, out_step=${plan.outStep}${plan.length ? `, length=${plan.length}` : ''}) declaration implies ${c.extent}`,
    { hint: "the model's micro_batch() declaration does not match its computation; run without --micro-batch" },
  );
}
