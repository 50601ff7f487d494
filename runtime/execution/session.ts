/**
 * onnxruntime-node sessions for an IrGraph plus a checkpoint (docs/adr/001-onnx-emission.md).
 *
 * Weight binding, per weight:
 *  - checkpoint dtype == graph dtype and the bytes sit raw in a file (`file` + `offset`): bound as
 *    ONNX external data pointing straight into that file, no copy. ORT only accepts relative
 *    locations inside the model's directory and resolves symlinks, so the model is written into a
 *    private temp dir and the checkpoint file (its realpath) is HARDLINKED there. If that fails
 *    (another filesystem, no permission) a temp dir next to the checkpoint is tried, then the
 *    bytes are copied ("staged").
 *  - otherwise (dtype differs, e.g. bf16 checkpoint into an f32 graph; or no file): read once,
 *    converted with runtime/convert.ts, and written to a staged external-data file in the temp dir.
 * The temp dir is deleted as soon as the session exists: ORT has read or mmapped everything by
 * then, and an mmapped file stays valid after unlink on POSIX systems.
 *
 * Prepacking is disabled by default (`session.disable_prepacking=1`): with external data it takes
 * session creation for a 500 MiB MatMul weight from ~0.6 s to a few ms and halves peak RSS
 * (toolchain.md §3, bench/session-binding.ts); per-run cost is similar.
 *
 * Graph inputs/outputs typed bf16 cannot cross the JS boundary (ort-common has no bfloat16 tensor
 * type, session creation throws "Unsupported data type: 16"). The session therefore feeds them as
 * f32 through an in-graph Cast (bf16 -> f32 is exact) and returns bf16 outputs by casting them to
 * f32 in-graph and back to bf16 bits in JS (exact, since the values are bf16). f16 crosses as-is
 * (Uint16Array bit patterns).
 */
import { existsSync, rmSync } from 'node:fs';
import { link, mkdtemp, open, realpath, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import type { IrDim, IrGraph, IrNode, IrValue, IrWeight } from '../../core/ir.ts';
import { emitOnnx, type ExternalDataRef } from '../../compiler/emit/onnx.ts';
import { canConvert, convertBytes, ConversionError, bf16ToF32, f32ToBf16 } from '../../core/convert.ts';
import { type HostTensor, fmtShape, isTypedArrayFor, shapeNumel, typedArrayName } from '../../core/host-tensor.ts';

// ---- weights source -------------------------------------------------------------------------

/**
 * One checkpoint tensor. Structurally compatible with runtime/store.ts `StoredTensor`.
 * `file` + `offset` (absolute byte offset) mean the tensor's raw little-endian bytes lie at
 * [offset, offset + byteLength) in `file`, which allows zero-copy binding.
 */
export interface StoredWeight {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  readonly file?: string;
  readonly offset?: number;
  read(): Promise<Uint8Array>;
}

/** A checkpoint: key -> tensor (e.g. a `TensorStore`). */
export interface WeightSource {
  readonly tensors: ReadonlyMap<string, StoredWeight>;
}

// ---- errors ---------------------------------------------------------------------------------

/** Stable codes for run-time problems (SORA55xx; the checkpoint readers use SORA50xx). */
export const RUN_CODES = {
  SORA5501: 'unknown or missing graph input',
  SORA5502: 'input dtype mismatch',
  SORA5503: 'input shape mismatch',
  SORA5504: 'checkpoint tensor missing or of the wrong shape/dtype',
  SORA5505: 'CUDA execution provider unavailable',
  SORA5506: 'no kernel for an op on this device',
  SORA5507: 'weight conversion failed',
  SORA5508: 'onnxruntime failed',
} as const;
export type RunCode = keyof typeof RUN_CODES;

export class RunError extends Error {
  constructor(
    public readonly code: RunCode,
    message: string,
    public readonly hint?: string,
  ) {
    super(hint ? `${message}\nhint: ${hint}` : message);
    this.name = 'RunError';
  }
}

// ---- options --------------------------------------------------------------------------------

export type Device = 'auto' | 'cpu' | 'cuda';

export interface SessionOptions {
  /** 'auto' tries CUDA and falls back to CPU with one info line; 'cuda' fails clearly. Default 'auto'. */
  readonly device?: Device;
  readonly deviceId?: number;
  /** Receives the few human-readable notes (fallbacks, conversions). One line each, no newline. */
  readonly onInfo?: (msg: string) => void;
  /** Enable ORT weight prepacking (faster first kernels, 2x peak memory, slow create). Default false. */
  readonly prepacking?: boolean;
  readonly graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  readonly intraOpThreads?: number;
  /**
   * 'auto': zero-copy external data where dtypes match, staged file otherwise (default).
   * 'staged': copy/convert every weight into a temp external-data file.
   * 'inline': every weight inline in the model proto (small models only: 2 GB protobuf limit).
   */
  readonly binding?: 'auto' | 'staged' | 'inline';
  /** Parent directory for the private temp dir (default os.tmpdir()). */
  readonly tempDir?: string;
  /** Keep the temp dir (model.onnx + links) for debugging; its path is in `session.binding.dir`. */
  readonly keepTempDir?: boolean;
  /**
   * Try CUDA even when the provider libraries are not next to onnxruntime-node's binding (for
   * setups that provide them some other way, and for tests). Default false: look for the files
   * first, which avoids a slow failing attempt and ORT's own error output.
   */
  readonly skipCudaLibraryCheck?: boolean;
  /** Bytes per read when copying/converting weights into the staged file (default 16 MiB). */
  readonly stagingChunkBytes?: number;
}

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly IrDim[];
}

export interface BindingReport {
  /** Weights bound as external data straight into checkpoint files (no copy). */
  readonly external: number;
  readonly externalBytes: number;
  /** Weights copied or converted into a staged temp file (or inline). */
  readonly staged: number;
  readonly stagedBytes: number;
  /** checkpoint dtype -> graph dtype, count, for conversions */
  readonly conversions: Readonly<Record<string, number>>;
  /** Why zero-copy was not possible for some files (hardlink failures), if any. */
  readonly notes: readonly string[];
  /** The temp dir (already removed unless keepTempDir). */
  readonly dir: string;
}

export interface SoracSession {
  readonly device: 'cpu' | 'cuda';
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly binding: BindingReport;
  /** Milliseconds spent in InferenceSession.create. */
  readonly createMs: number;
  run(inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>): Promise<Map<string, HostTensor>>;
  release(): Promise<void>;
}

// ---- ORT plumbing ---------------------------------------------------------------------------

let ortModule: Promise<typeof Ort> | undefined;

/**
 * Load onnxruntime-node once. Its process-wide log level (applied when the first session is
 * created) and every session's log severity default to 'fatal': each ORT error also surfaces as
 * an exception that we translate, so the raw ANSI-coloured stderr lines (a failed CUDA attempt,
 * initialisation failures) would only duplicate it. Set
 * SORAC_ORT_LOG_LEVEL=verbose|info|warning|error|fatal to see them.
 */
export function loadOrt(): Promise<typeof Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => {
    const ort = ((m as unknown as { default?: typeof Ort }).default ?? m) as typeof Ort;
    ort.env.logLevel = ORT_LOG_LEVELS[ortLogSeverity()];
    return ort;
  });
  return ortModule;
}

const ORT_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;

/** Session/env log severity: SORAC_ORT_LOG_LEVEL if set, else 4 (fatal). */
function ortLogSeverity(): 0 | 1 | 2 | 3 | 4 {
  const i = ORT_LOG_LEVELS.indexOf(process.env.SORAC_ORT_LOG_LEVEL as never);
  return (i >= 0 ? i : 4) as 0 | 1 | 2 | 3 | 4;
}

/** Directory holding onnxruntime-node's native libraries for this platform. */
export function ortBinaryDir(): string {
  const req = createRequire(import.meta.url);
  const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Whether the CUDA provider libraries are installed next to onnxruntime-node's binding. */
export function cudaProviderInstalled(): boolean {
  const dir = ortBinaryDir();
  return existsSync(join(dir, 'libonnxruntime_providers_shared.so')) && existsSync(join(dir, 'libonnxruntime_providers_cuda.so'));
}

export const CUDA_FIX =
  'install the CUDA provider libraries for onnxruntime-node 1.30.0 on a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9: ' +
  'in the sorac install directory run `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` ' +
  '(downloads Microsoft.ML.OnnxRuntime.Gpu.Linux 1.30.0 from api.nuget.org), or copy libonnxruntime_providers_shared.so and ' +
  'libonnxruntime_providers_cuda.so of exactly version 1.30.0 into ' +
  '<sorac>/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ (see docs/guides/gpu.md); or use --device cpu';

const ORT_TYPE: Partial<Record<DType, Ort.Tensor.Type>> = {
  f32: 'float32',
  f64: 'float64',
  f16: 'float16',
  i64: 'int64',
  i32: 'int32',
  i16: 'int16',
  i8: 'int8',
  u8: 'uint8',
  bool: 'bool',
};

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const line = m.split('\n')[0]!.replace(/\x1b\[[0-9;]*m/g, '').trim();
  // ORT prefixes messages with the C++ source location and signature; keep the message proper
  const core = /\[ONNXRuntimeError\] : \d+ : \w+ : (.*)$/.exec(line);
  return core ? core[1]!.trim() : line;
}

// ---- session graph (bf16 I/O wrapping) ------------------------------------------------------

interface SessionGraph {
  graph: IrGraph;
  /** user input name -> true when fed as f32 and cast to bf16 in-graph */
  bf16Inputs: Set<string>;
  bf16Outputs: Set<string>;
}

function wrapBf16Io(graph: IrGraph): SessionGraph {
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

// ---- weight binding -------------------------------------------------------------------------

interface Staged {
  /** key -> external data ref, for every weight */
  refs: Map<string, ExternalDataRef>;
  inline: Map<string, Uint8Array>;
  report: Omit<BindingReport, 'dir'>;
}

/**
 * Temp dirs of sessions being created. If the process exits mid-creation (process.exit, an
 * uncaught error), the 'exit' hook removes them synchronously. (A SIGKILL cannot be handled.)
 */
const liveDirs = new Set<string>();
let exitHook = false;
function trackDir(d: string): void {
  liveDirs.add(d);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const x of liveDirs) rmSync(x, { recursive: true, force: true });
    });
  }
}

const STAGED_FILE = 'staged-weights.bin';
/** Staging chunk size (a multiple of every element size). */
const CHUNK = 16 * 1024 * 1024;

/** A tensor's bytes in chunks: positioned reads when it lies raw in a file, else one read(). */
async function* tensorChunks(key: string, s: StoredWeight, chunk: number): AsyncGenerator<Uint8Array> {
  if (s.file === undefined || s.offset === undefined || !Number.isFinite(chunk)) {
    const b = await s.read();
    if (b.byteLength !== s.byteLength) throw new RunError('SORA5504', `${key}: read ${b.byteLength} bytes, expected ${s.byteLength}`);
    yield b;
    return;
  }
  const fh = await open(s.file, 'r');
  try {
    for (let off = 0; off < s.byteLength; off += chunk) {
      const buf = new Uint8Array(Math.min(chunk, s.byteLength - off));
      let done = 0;
      while (done < buf.byteLength) {
        const { bytesRead } = await fh.read(buf, done, buf.byteLength - done, s.offset + off + done);
        if (bytesRead === 0) throw new RunError('SORA5504', `${key}: ${s.file} ended while reading the tensor (truncated?)`);
        done += bytesRead;
      }
      yield buf;
    }
  } finally {
    await fh.close();
  }
}
const ALIGN = 64;

async function tryLinkAll(dir: string, files: string[]): Promise<{ linked: Map<string, string>; failed: Map<string, string> }> {
  const linked = new Map<string, string>();
  const failed = new Map<string, string>();
  for (const [i, f] of files.entries()) {
    const name = `${i}-${basename(f).replace(/[^\w.-]/g, '_')}`;
    try {
      await link(f, join(dir, name));
      linked.set(f, name);
    } catch (e) {
      failed.set(f, `${(e as NodeJS.ErrnoException).code ?? 'error'}: ${firstLine(e)}`);
    }
  }
  return { linked, failed };
}

/** Write the model's weights into `dir` (links + staged file). May move to another dir; returns the dir used. */
async function bindWeights(
  graph: IrGraph,
  source: WeightSource,
  opts: SessionOptions,
  initialDir: string,
  /** every temp dir created here is appended, so the caller can always clean up */
  created: string[],
): Promise<Staged & { dir: string }> {
  const mode = opts.binding ?? 'auto';
  // validate all weights first: every problem at once
  const problems: string[] = [];
  for (const w of graph.weights) {
    const s = source.tensors.get(w.key);
    const want = `${w.value.dtype}${fmtShape(w.value.shape)}`;
    if (!s) problems.push(`  ${w.key}: missing from the checkpoint (graph expects ${want})`);
    else if (s.shape.length !== w.value.shape.length || s.shape.some((d, i) => d !== w.value.shape[i]))
      problems.push(`  ${w.key}: checkpoint has ${s.dtype}${fmtShape(s.shape)}, graph expects ${want}`);
    else if (!canConvert(s.dtype, w.value.dtype)) problems.push(`  ${w.key}: checkpoint dtype ${s.dtype} cannot be converted to ${w.value.dtype}`);
    else if (s.byteLength !== shapeNumel(s.shape) * DTYPE_SIZE[s.dtype]) problems.push(`  ${w.key}: byteLength ${s.byteLength} does not match ${s.dtype}${fmtShape(s.shape)}`);
  }
  if (problems.length) {
    throw new RunError('SORA5504', `checkpoint does not match the model (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${problems.join('\n')}`, 'check the load report with `sorac verify`');
  }

  const zeroCopy = (w: IrWeight) => {
    const s = source.tensors.get(w.key)!;
    // (empty tensors are never external: the emitter inlines them, see emit/onnx.ts)
    return mode === 'auto' && s.dtype === w.value.dtype && s.file !== undefined && s.offset !== undefined && s.byteLength > 0;
  };
  const notes: string[] = [];
  // realpath: HF-cache style symlinks would be resolved (and rejected) by ORT
  const real = new Map<string, string>();
  for (const w of graph.weights) {
    const f = source.tensors.get(w.key)!.file;
    if (zeroCopy(w) && f && !real.has(f)) real.set(f, await realpath(f));
  }
  const files = [...new Set(real.values())];
  let dir = initialDir;
  let linked = new Map<string, string>();
  if (files.length) {
    let r = await tryLinkAll(dir, files);
    if (r.failed.size) {
      // another filesystem? try a temp dir next to the (first failing) checkpoint file
      const near = dirname([...r.failed.keys()][0]!);
      const alt = await mkdtemp(join(near, '.sorac-session-')).catch(() => undefined);
      if (alt) {
        created.push(alt);
        trackDir(alt);
        const r2 = await tryLinkAll(alt, files);
        if (r2.linked.size > r.linked.size) {
          await rm(dir, { recursive: true, force: true });
          dir = alt;
          r = r2;
        } else await rm(alt, { recursive: true, force: true });
      }
    }
    linked = r.linked;
    for (const [f, why] of r.failed) notes.push(`cannot hardlink ${f} next to the model (${why}); its tensors are copied`);
  }

  const refs = new Map<string, ExternalDataRef>();
  const inline = new Map<string, Uint8Array>();
  const conversions: Record<string, number> = {};
  let external = 0;
  let externalBytes = 0;
  let staged = 0;
  let stagedBytes = 0;
  const chunkBytes = Math.max(8, Math.floor((opts.stagingChunkBytes ?? CHUNK) / 8) * 8);
  const fh = mode === 'inline' ? undefined : await open(join(dir, STAGED_FILE), 'w');
  let pos = 0;
  try {
    for (const w of graph.weights) {
      const s = source.tensors.get(w.key)!;
      const linkName = s.file !== undefined ? linked.get(real.get(s.file) ?? '') : undefined;
      if (zeroCopy(w) && linkName) {
        refs.set(w.key, { location: linkName, offset: s.offset!, length: s.byteLength });
        external++;
        externalBytes += s.byteLength;
        continue;
      }
      const converting = s.dtype !== w.value.dtype;
      if (converting) {
        const k = `${s.dtype}->${w.value.dtype}`;
        conversions[k] = (conversions[k] ?? 0) + 1;
      }
      const outLength = (s.byteLength / DTYPE_SIZE[s.dtype]) * DTYPE_SIZE[w.value.dtype];
      staged++;
      stagedBytes += outLength;
      pos = Math.ceil(pos / ALIGN) * ALIGN;
      const start = pos;
      const parts: Uint8Array[] = [];
      let elems = 0;
      // one chunk at a time: peak JS memory stays at a chunk, not the tensor
      for await (const chunk of tensorChunks(w.key, s, fh ? chunkBytes : Infinity)) {
        let out = chunk;
        if (converting) {
          try {
            out = convertBytes(chunk, s.dtype, w.value.dtype, { key: w.key, indexOffset: elems });
          } catch (e) {
            if (e instanceof ConversionError) throw new RunError('SORA5507', e.message, 'compile the model with a wider dtype for this weight');
            throw e;
          }
        }
        elems += chunk.byteLength / DTYPE_SIZE[s.dtype];
        if (!fh) parts.push(out);
        else {
          let done = 0;
          while (done < out.byteLength) done += (await fh.write(out, done, out.byteLength - done, pos + done)).bytesWritten;
          pos += out.byteLength;
        }
      }
      if (!fh) {
        inline.set(w.key, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
        continue;
      }
      if (pos - start !== outLength) throw new RunError('SORA5504', `${w.key}: read ${pos - start} bytes, expected ${outLength}`);
      refs.set(w.key, { location: STAGED_FILE, offset: start, length: outLength });
    }
  } finally {
    await fh?.close();
  }
  return { dir, refs, inline, report: { external, externalBytes, staged, stagedBytes, conversions, notes } };
}

// ---- input validation -----------------------------------------------------------------------

function toEntries<T>(m: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m as Record<string, T>);
}

function describeSpecs(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `  ${s.name}: ${s.dtype}${fmtShape(s.shape)}`).join('\n');
}

/**
 * Check inputs against the graph's input types before any compute: names (unknown/missing),
 * dtypes, typed-array kinds, ranks, static dims, and symbolic dims (the same symbol must bind to
 * the same size across all inputs). Throws one RunError listing every problem.
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
    throw new RunError('SORA5501', `${parts.join('; ')}. The model expects:\n${describeSpecs(specs)}`);
  }
  const bound = new Map<string, { size: number; by: string }>();
  const problems: string[] = [];
  let code: RunCode = 'SORA5503';
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
    });
    if (t.data.length !== shapeNumel(t.shape)) problems.push(`  ${spec.name}: shape ${fmtShape(t.shape)} has ${shapeNumel(t.shape)} elements but data has ${t.data.length}`);
  }
  if (problems.length) {
    throw new RunError(code, `invalid input${problems.length > 1 ? 's' : ''}:\n${problems.join('\n')}\nThe model expects:\n${describeSpecs(specs)}`);
  }
  return new Map([...bound].map(([k, v]) => [k, v.size]));
}

// ---- session --------------------------------------------------------------------------------

/** Create an onnxruntime session for `graph` with weights from `weights`. */
export async function createSession(graph: IrGraph, weights: WeightSource, opts: SessionOptions = {}): Promise<SoracSession> {
  const info = opts.onInfo ?? (() => {});
  const device = opts.device ?? 'auto';
  for (const v of [...graph.inputs, ...graph.outputs]) {
    if (v.dtype !== 'bf16' && !ORT_TYPE[v.dtype]) throw new RunError('SORA5502', `graph ${graph.inputs.includes(v) ? 'input' : 'output'} "${v.name}" has dtype ${v.dtype}, which cannot cross the JS boundary`);
  }
  const sg = wrapBf16Io(graph);
  const ort = await loadOrt();

  // decide the device before binding so that errors about CUDA come first and cheaply
  const installed = opts.skipCudaLibraryCheck || cudaProviderInstalled();
  let useCuda = device === 'cuda';
  if (device === 'cuda' && !installed) {
    throw new RunError('SORA5505', `--device cuda: onnxruntime-node's CUDA execution provider is not installed (no libonnxruntime_providers_cuda.so in ${ortBinaryDir()})`, CUDA_FIX);
  }
  // notes are printed only once the session exists (an error is then the only output)
  const notes: string[] = [];
  if (device === 'auto') {
    useCuda = installed;
    if (!useCuda) notes.push('note: CUDA execution provider not installed; running on CPU (see docs/guides/gpu.md)');
  }

  const parent = opts.tempDir ?? tmpdir();
  const dir0 = await mkdtemp(join(parent, 'sorac-session-'));
  const created = [dir0];
  trackDir(dir0);
  let dir = dir0;
  try {
    const bound = await bindWeights(sg.graph, weights, opts, dir0, created);
    dir = bound.dir;
    const model = emitOnnx(sg.graph, {
      weights: opts.binding === 'inline' ? 'inline' : 'external',
      externalData: (w) => bound.refs.get(w.key),
      inlineData: (w) => bound.inline.get(w.key)!,
      valueInfo: false,
    });
    const modelPath = join(dir, 'model.onnx');
    await writeFile(modelPath, model);

    const base: Ort.InferenceSession.SessionOptions = {
      logSeverityLevel: ortLogSeverity(),
      graphOptimizationLevel: opts.graphOptimization ?? 'all',
      ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
      ...(opts.prepacking ? {} : { extra: { session: { disable_prepacking: '1' } } }),
    };
    const t0 = performance.now();
    let session: Ort.InferenceSession | undefined;
    let used: 'cpu' | 'cuda' = 'cpu';
    if (useCuda) {
      try {
        session = await ort.InferenceSession.create(modelPath, { ...base, executionProviders: [{ name: 'cuda', deviceId: opts.deviceId ?? 0 }] });
        used = 'cuda';
      } catch (e) {
        if (device === 'cuda') throw new RunError('SORA5505', `--device cuda: cannot create a CUDA session: ${firstLine(e)}`, CUDA_FIX);
        notes.push(`note: CUDA unavailable (${firstLine(e)}); running on CPU`);
      }
    }
    if (!session) {
      try {
        session = await ort.InferenceSession.create(modelPath, { ...base, executionProviders: ['cpu'] });
      } catch (e) {
        throw translateOrtError(e, 'cpu');
      }
    }
    const createMs = performance.now() - t0;

    for (const n of notes) info(n);
    for (const n of bound.report.notes) info(`note: ${n}`);
    const bf16OnCpu = used === 'cpu' && (sg.graph.weights.some((w) => w.value.dtype === 'bf16') || (bound.report.conversions['bf16->f32'] ?? 0) > 0);
    // a graph already lowered for CPU (runtime/cpu-lowering.ts) has said so in its own single line
    if (bf16OnCpu && !sg.graph.metadata['sorac.cpu_emulation']) info('note: bf16 weights converted to f32 (CPU has no bf16 kernels)');
    for (const [pair, n] of Object.entries(bound.report.conversions)) {
      if (pair === 'bf16->f32' && bf16OnCpu) continue;
      info(`note: ${n} ${pair.replace('->', ' weight(s) converted to ')} at load (the graph expects that dtype)`);
    }
    return makeSession(session, used, sg, { ...bound.report, dir }, createMs);
  } finally {
    for (const d of created) {
      if (!(opts.keepTempDir && d === dir)) await rm(d, { recursive: true, force: true });
      liveDirs.delete(d);
    }
  }
}

function translateOrtError(e: unknown, device: 'cpu' | 'cuda'): Error {
  const msg = firstLine(e);
  const m = /Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'/.exec(msg);
  if (m) {
    return new RunError(
      'SORA5506',
      `onnxruntime's ${device.toUpperCase()} provider has no kernel for ${m[1]} (opset ${m[2]}) with these dtypes (node ${m[3]})`,
      device === 'cpu' ? 'bf16 is storage-only on CPU: compile with compute dtype f32 (bf16 weights are cast at load), or run on CUDA' : undefined,
    );
  }
  return new RunError('SORA5508', `onnxruntime: ${msg}`);
}

function makeSession(session: Ort.InferenceSession, device: 'cpu' | 'cuda', sg: SessionGraph, binding: BindingReport, createMs: number): SoracSession {
  // user-facing specs: the original graph's I/O (bf16 stays bf16)
  const spec = (v: IrValue, bf16: Set<string>): TensorSpec => ({ name: v.name, dtype: bf16.has(v.name) ? 'bf16' : v.dtype, shape: v.shape });
  const inputs = sg.graph.inputs.map((v) => spec(v, sg.bf16Inputs));
  const outputs = sg.graph.outputs.map((v) => spec(v, sg.bf16Outputs));
  let released = false;
  return {
    device,
    inputs,
    outputs,
    binding,
    createMs,
    async run(given) {
      if (released) throw new Error('session was released');
      const symbols = validateInputs(inputs, given);
      const ort = await loadOrt();
      const feeds: Record<string, Ort.Tensor> = {};
      for (const [name, t] of toEntries(given)) {
        if (sg.bf16Inputs.has(name)) feeds[name] = new ort.Tensor('float32', bf16ToF32(t.data as Uint16Array), [...t.shape]);
        else feeds[name] = new ort.Tensor(ORT_TYPE[t.dtype]!, t.data as never, [...t.shape]);
      }
      let res: Ort.InferenceSession.OnnxValueMapType;
      try {
        res = await session.run(feeds);
      } catch (e) {
        throw translateOrtError(e, device);
      }
      const out = new Map<string, HostTensor>();
      for (const o of outputs) {
        const r = res[o.name] as Ort.Tensor;
        const shape = r.dims.map(Number);
        let data = r.data as HostTensor['data'];
        if (sg.bf16Outputs.has(o.name)) data = f32ToBf16(r.data as Float32Array);
        checkOutput(o, shape, symbols);
        out.set(o.name, { dtype: o.dtype, shape, data });
        r.dispose?.();
      }
      return out;
    },
    async release() {
      if (released) return;
      released = true;
      await session.release();
    },
  };
}

/** Outputs must agree with the graph's static types (a mismatch is a compiler bug). */
function checkOutput(o: TensorSpec, shape: number[], symbols: Map<string, number>): void {
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
    throw new RunError('SORA5508', `output "${o.name}" has shape ${fmtShape(shape)}, but the compiled graph says ${o.dtype}${fmtShape(o.shape)} (with ${[...symbols].map(([k, v]) => `${k}=${v}`).join(', ')}); this is a compiler bug, please report it`);
  }
}
