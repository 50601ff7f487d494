/**
 * Weight binding: how a checkpoint's tensors reach an onnxruntime session (docs/adr/001-onnx-emission.md).
 *
 * Per weight:
 *  - checkpoint dtype == graph dtype and the bytes sit raw in a file (`file` + `offset`): bound as
 *    ONNX external data pointing straight into that file, no copy. ORT only accepts relative
 *    locations inside the model's directory and resolves symlinks, so the model is written into a
 *    private temp dir and the checkpoint file (its realpath) is HARDLINKED there. If that fails
 *    (another filesystem, no permission) a temp dir next to the checkpoint is tried, then the
 *    bytes are copied ("staged").
 *  - otherwise (dtype differs, e.g. bf16 checkpoint into an f32 graph; or no file): read once,
 *    converted with core/convert.ts, and written to a staged external-data file in the temp dir.
 * The temp dir is deleted as soon as the session exists: ORT has read or mmapped everything by
 * then, and an mmapped file stays valid after unlink on POSIX systems.
 */
import { rmSync } from 'node:fs';
import { link, mkdtemp, open, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { writeFully } from '../../core/atomic.ts';
import { canConvert, convertBytes, ConversionError } from '../../core/convert.ts';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';
import { fmtShape, shapeNumel } from '../../core/host-tensor.ts';
import type { ExternalDataRef, IrWeight } from '../../core/ir.ts';
import { openSafetensors, type SafetensorsFile } from '../formats/safetensors.ts';
import { firstLine } from './ort.ts';

/**
 * One checkpoint tensor. Structurally compatible with runtime/weights/store.ts `StoredTensor`.
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

export interface BindingOptions {
  /**
   * 'auto': zero-copy external data where dtypes match, staged file otherwise (default).
   * 'staged': copy/convert every weight into a temp external-data file.
   * 'inline': every weight inline in the model proto (small models only: 2 GB protobuf limit).
   */
  readonly binding?: 'auto' | 'staged' | 'inline';
  /** Parent directory for the private temp dir (default os.tmpdir()). */
  readonly tempDir?: string;
  /** Bytes per read when copying/converting weights into the staged file (default 16 MiB). */
  readonly stagingChunkBytes?: number;
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

export interface BoundWeights {
  /** The private temp dir holding the links, the staged file, and (later) model.onnx. */
  readonly dir: string;
  /** key -> external data ref (relative to `dir`), for every weight bound as external data */
  readonly refs: ReadonlyMap<string, ExternalDataRef>;
  /** key -> bytes, for every weight bound inline (binding 'inline') */
  readonly inline: ReadonlyMap<string, Uint8Array>;
  readonly report: BindingReport;
  /** Remove every temp dir made for this binding (the session keeps mmapped files alive); `keep` leaves `dir`. */
  release(keep?: boolean): Promise<void>;
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
    if (b.byteLength !== s.byteLength) throw new SoracError('SORA5504', `${key}: read ${b.byteLength} bytes, expected ${s.byteLength}`);
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
        if (bytesRead === 0) throw new SoracError('SORA5504', `${key}: ${s.file} ended while reading the tensor (truncated?)`);
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

/**
 * Bind `weights` (a graph's weight list) to `source` in a private temp dir: hardlinks for zero-copy
 * external data, a staged file for copied/converted tensors, or inline bytes. Every weight is
 * validated first (one error listing every problem). The caller emits the model with `refs`/`inline`,
 * writes it into `dir`, creates the session, and calls `release()`.
 */
export async function bindWeights(weights: readonly IrWeight[], source: WeightSource, opts: BindingOptions = {}): Promise<BoundWeights> {
  const dir0 = await mkdtemp(join(opts.tempDir ?? tmpdir(), 'sorac-session-'));
  const created = [dir0];
  trackDir(dir0);
  const release = async (dir: string, keep = false) => {
    for (const d of created) {
      if (!(keep && d === dir)) await rm(d, { recursive: true, force: true });
      liveDirs.delete(d);
    }
  };
  try {
    const r = await bindInto(weights, source, opts, dir0, created);
    return { ...r, report: { ...r.report, dir: r.dir }, release: (keep?: boolean) => release(r.dir, keep) };
  } catch (e) {
    await release(dir0);
    throw e;
  }
}

async function bindInto(
  weights: readonly IrWeight[],
  source: WeightSource,
  opts: BindingOptions,
  initialDir: string,
  /** every temp dir created here is appended, so the caller can always clean up */
  created: string[],
): Promise<{ dir: string; refs: Map<string, ExternalDataRef>; inline: Map<string, Uint8Array>; report: Omit<BindingReport, 'dir'> }> {
  const mode = opts.binding ?? 'auto';
  // validate all weights first: every problem at once
  const problems: string[] = [];
  for (const w of weights) {
    const s = source.tensors.get(w.key);
    const want = `${w.value.dtype}${fmtShape(w.value.shape)}`;
    if (!s) problems.push(`  ${w.key}: missing from the checkpoint (graph expects ${want})`);
    else if (s.shape.length !== w.value.shape.length || s.shape.some((d, i) => d !== w.value.shape[i]))
      problems.push(`  ${w.key}: checkpoint has ${s.dtype}${fmtShape(s.shape)}, graph expects ${want}`);
    else if (!canConvert(s.dtype, w.value.dtype)) problems.push(`  ${w.key}: checkpoint dtype ${s.dtype} cannot be converted to ${w.value.dtype}`);
    else if (s.byteLength !== shapeNumel(s.shape) * DTYPE_SIZE[s.dtype]) problems.push(`  ${w.key}: byteLength ${s.byteLength} does not match ${s.dtype}${fmtShape(s.shape)}`);
  }
  if (problems.length) {
    throw new SoracError('SORA5504', `checkpoint does not match the model (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${problems.join('\n')}`, { hint: 'check the load report with `sorac verify`' });
  }

  const zeroCopy = (w: IrWeight) => {
    const s = source.tensors.get(w.key)!;
    // (empty tensors are never external: the emitter inlines them, see emit/onnx.ts)
    return mode === 'auto' && s.dtype === w.value.dtype && s.file !== undefined && s.offset !== undefined && s.byteLength > 0;
  };
  const notes: string[] = [];
  // realpath: HF-cache style symlinks would be resolved (and rejected) by ORT
  const real = new Map<string, string>();
  for (const w of weights) {
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
    for (const w of weights) {
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
            if (e instanceof ConversionError) throw new SoracError('SORA5507', e.message, { hint: 'compile the model with a wider dtype for this weight' });
            throw e;
          }
        }
        elems += chunk.byteLength / DTYPE_SIZE[s.dtype];
        if (!fh) parts.push(out);
        else {
          await writeFully(fh, out, pos);
          pos += out.byteLength;
        }
      }
      if (!fh) {
        inline.set(w.key, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
        continue;
      }
      if (pos - start !== outLength) throw new SoracError('SORA5504', `${w.key}: read ${pos - start} bytes, expected ${outLength}`);
      refs.set(w.key, { location: STAGED_FILE, offset: start, length: outLength });
    }
  } finally {
    await fh?.close();
  }
  return { dir, refs, inline, report: { external, externalBytes, staged, stagedBytes, conversions, notes } };
}

/**
 * A WeightSource over one or more safetensors files (tests and benchmarks; the CLI and API use
 * runtime/weights/store.ts's TensorStore, which has the same shape). A key in two files is an error.
 */
export async function safetensorsWeightSource(paths: readonly string[]): Promise<WeightSource & { close(): Promise<void> }> {
  const files: SafetensorsFile[] = [];
  const tensors = new Map<string, StoredWeight>();
  try {
    for (const p of paths) {
      const f = await openSafetensors(p);
      files.push(f);
      for (const [key, t] of f.tensors) {
        if (tensors.has(key)) throw new SoracError('SORA5011', `tensor "${key}" is defined in more than one weights file (${p})`, { path: p });
        tensors.set(key, { dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, file: p, offset: t.offset, read: () => f.read(key) });
      }
    }
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
  return { tensors, close: async () => void (await Promise.all(files.map((f) => f.close()))) };
}
