/**
 * Training checkpoint tools that read every byte: `verifyCheckpoint` (structure, sha256, readability
 * of every part through the restricted unpickler, comparison with a manifest), `writeManifest`
 * (sha256 + size of every file, written atomically inside the checkpoint dir), and
 * `exportCheckpoint` (EMA or model weights → inference safetensors, streamed one tensor at a time,
 * optionally validated against a compiled model first, written atomically).
 */
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve as resolvePath } from 'node:path';
import type { DType } from '../../core/dtype.ts';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import type { Keymap } from '../../core/keymap.ts';
import { withAliases } from '../weights/aliases.ts';
import { canConvert, convertBytes } from '../../core/convert.ts';
import { faultPoint } from '../../core/fault-hooks.ts';
import { loadReport, renderLoadReport, type LoadReport } from '../weights/load-report.ts';
import { atomicWrite, isSoracTemp, tempSibling } from '../../core/atomic.ts';
import { writeSafetensors, writeShardedSafetensors, type WriterTensor } from '../formats/safetensors-writer.ts';
import { openWeights, openWeightsFile, type TensorStore } from '../weights/store.ts';
import { openTorchFile, sniffFile } from '../formats/torch-file.ts';
import { CKPT_NAME, inspectCheckpoint, MANIFEST_NAME, type CheckpointInfo } from './checkpoints.ts';
import { ioError } from './writer.ts';
import { verifyFile, type VerifyProgress, type VerifyStatus } from '../weights/verify.ts';
import { checkOutputApart } from '../../core/paths.ts';
import { SoracError } from '../../core/errors.ts';
import { containedRealpath, isWithin, readSmallTextFile } from '../formats/safe-fs.ts';

export const MANIFEST_FORMAT = 'sorac-ckpt-manifest/1';

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  checkpoint: string;
  created: string;
  files: Record<string, { size: number; sha256: string }>;
}

async function listFiles(root: string, dir = root, out: string[] = [], temps: string[] = []): Promise<{ files: string[]; temps: string[] }> {
  const ents = await readdir(dir, { withFileTypes: true });
  for (const e of ents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (isSoracTemp(e.name)) {
      temps.push(relative(root, p));
      continue;
    }
    if (e.isDirectory()) await listFiles(root, p, out, temps);
    else if (e.isFile() || e.isSymbolicLink()) {
      if (dir === root && e.name === MANIFEST_NAME) continue;
      out.push(relative(root, p));
    }
  }
  return { files: out, temps };
}

/** Inspect `dir`, refusing an experiment dir (or any dir that is not one checkpoint) with a pointer to the checkpoints in it. */
async function checkpointDir(dir: string): Promise<CheckpointInfo> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw new SoracError(e.code === 'ENOENT' ? 'SORA5001' : 'SORA5012', `cannot read ${dir}: ${e.code ?? e.message}`, { hint: 'pass an epochN-global_stepM/ checkpoint dir', looked: [], path: dir });
  });
  if (!CKPT_NAME.test(basename(dir)) && !names.includes('running_states.json') && !names.includes('model')) {
    const inside = names.filter((n) => CKPT_NAME.test(n)).sort();
    throw new SoracError(
      'SORA5101',
      `${dir} is not a training checkpoint dir${inside.length ? ` (it is an experiment dir holding ${inside.length} checkpoint(s))` : ''}`,
      { hint: inside.length ? `pass one checkpoint, e.g. ${join(dir, inside[inside.length - 1]!)}, or the latest complete one: $(sorac ckpt latest ${dir})` : 'pass an epochN-global_stepM/ dir (see `sorac ckpt ls EXP_DIR`)', looked: [], path: dir },
    );
  }
  return inspectCheckpoint(dir);
}

/** Thrown when an AbortSignal fires mid-write; the write's temp output is removed on the way out. */
export class InterruptedError extends SoracError {
  constructor() {
    super('SORA7009', 'interrupted');
    this.name = 'InterruptedError';
  }
}

function checkAbort(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw new InterruptedError();
}

function incompleteError(info: CheckpointInfo, what: string): SoracError {
  return new SoracError(
    'SORA5102',
    `${info.dir} is not a complete checkpoint; refusing to ${what}:\n${info.problems.map((p) => `  - ${p}`).join('\n')}`,
    { hint: 'a save was interrupted or files were lost in a copy: use an older complete checkpoint (`sorac ckpt ls`, `sorac ckpt latest`), or copy the missing files again', looked: [], path: info.dir },
  );
}

// ---- manifest --------------------------------------------------------------------------------

export async function writeManifest(dirIn: string, opts: { onProgress?: (p: VerifyProgress) => void; signal?: AbortSignal } = {}): Promise<{ path: string; manifest: Manifest; bytes: number }> {
  const dir = resolvePath(dirIn);
  const info = await checkpointDir(dir);
  if (!info.complete) throw incompleteError(info, 'write a manifest for it');
  const { files } = await listFiles(dir);
  const sizes = await Promise.all(files.map(async (f) => (await stat(join(dir, f))).size));
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const buf = Buffer.allocUnsafe(16 << 20);
  const manifest: Manifest = { format: MANIFEST_FORMAT, checkpoint: info.name, created: new Date().toISOString(), files: {} };
  let done = 0;
  for (let i = 0; i < files.length; i++) {
    const rel = files[i]!;
    checkAbort(opts.signal);
    const r = await verifyFile(join(dir, rel), buf, (n) => {
      done += n;
      opts.onProgress?.({ file: rel, fileIndex: i, fileCount: files.length, doneBytes: done, totalBytes });
    });
    if (r.status !== 'ok' || !r.sha256) throw new SoracError('SORA5102', `${join(dir, rel)} is ${r.status}: ${r.detail ?? ''}; refusing to write a manifest that blesses it`, { hint: 'fix or re-copy the file first (`sorac ckpt verify`)', looked: [], path: join(dir, rel) });
    manifest.files[rel] = { size: r.size, sha256: r.sha256 };
  }
  const text = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  const path = join(dir, MANIFEST_NAME);
  try {
    await atomicWrite(path, async (fh) => {
      const half = text.length >> 1;
      await fh.write(text, 0, half, 0);
      await faultPoint(1); // tests: kill -9 / ENOSPC with half the manifest written
      checkAbort(opts.signal);
      await fh.write(text, half, text.length - half, half);
    });
  } catch (e) {
    throw ioError(e, path);
  }
  return { path, manifest, bytes: totalBytes };
}

// ---- verify ----------------------------------------------------------------------------------

export type CkptFileStatus = VerifyStatus | 'extra';

export interface CkptVerifyFile {
  path: string;
  size: number;
  sha256?: string;
  status: CkptFileStatus;
  detail?: string;
}

export interface CkptVerifyReport {
  dir: string;
  ok: boolean;
  checkpoint: CheckpointInfo;
  files: CkptVerifyFile[];
  /** parts opened through the readers (restricted unpickler for torch files, index ↔ shard keys) */
  readable: { part: string; ok: boolean; detail?: string }[];
  manifest: { present: boolean; files: number; missing: number; mismatched: number; extra: number };
  /** leftovers of interrupted sorac writes (not part of the checkpoint) */
  temps: string[];
  problems: string[];
  bytes: number;
  seconds: number;
}

export async function verifyCheckpoint(dirIn: string, opts: { onProgress?: (p: VerifyProgress) => void } = {}): Promise<CkptVerifyReport> {
  const t0 = performance.now();
  const dir = resolvePath(dirIn);
  const s = await stat(dir).catch(() => null);
  if (!s?.isDirectory()) throw new SoracError('SORA5001', `no such checkpoint directory: ${dir}`, { hint: 'pass an epochN-global_stepM/ dir (see `sorac ckpt ls EXP_DIR`)', looked: [], path: dir });
  const info = await checkpointDir(dir);
  const problems = [...info.problems];
  const { files, temps } = await listFiles(dir);
  // manifest
  let manifest: Manifest | undefined;
  const mpath = join(dir, MANIFEST_NAME);
  const mtext = await readSmallTextFile(mpath, 100_000_000).catch((e: unknown) => {
    if (e instanceof SoracError) problems.push(`${MANIFEST_NAME}: ${e.message}`);
    return undefined;
  });
  if (mtext !== undefined) {
    try {
      const m = JSON.parse(mtext);
      if (m?.format !== MANIFEST_FORMAT || typeof m.files !== 'object') throw new Error(`not a ${MANIFEST_FORMAT} manifest`);
      manifest = m;
    } catch (e) {
      problems.push(`${MANIFEST_NAME}: ${(e as Error).message}`);
    }
  }
  const listed = new Set(manifest ? Object.keys(manifest.files) : []);
  const all = [...files];
  const outside: CkptVerifyFile[] = [];
  for (const f of listed) {
    if (files.includes(f)) continue;
    // a manifest names files inside its checkpoint: `../../etc/shadow` or an absolute path is not read
    const p = join(dir, f);
    const contained = !isAbsolute(f) && isWithin(dir, p) && (await containedRealpath(p, [dir], MANIFEST_NAME).then(() => true, () => false));
    if (contained) all.push(f);
    else outside.push({ path: f, size: 0, status: 'unreadable', detail: `${MANIFEST_NAME} names a path outside the checkpoint; not read` });
  }
  const sizes = await Promise.all(all.map(async (f) => (await stat(join(dir, f)).catch(() => null))?.size ?? 0));
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const buf = Buffer.allocUnsafe(16 << 20);
  const out: CkptVerifyFile[] = [];
  let done = 0;
  let bytes = 0;
  const mstat = { present: manifest !== undefined, files: listed.size, missing: 0, mismatched: 0, extra: 0 };
  for (let i = 0; i < all.length; i++) {
    const rel = all[i]!;
    const r = await verifyFile(join(dir, rel), buf, (n) => {
      done += n;
      opts.onProgress?.({ file: rel, fileIndex: i, fileCount: all.length, doneBytes: done, totalBytes });
    });
    bytes += r.status === 'missing' ? 0 : r.size;
    const f: CkptVerifyFile = { path: rel, size: r.size, sha256: r.sha256, status: r.status, ...(r.detail ? { detail: r.detail } : {}) };
    if (manifest) {
      const want = manifest.files[rel];
      if (!want) {
        if (f.status === 'ok') {
          f.status = 'extra';
          f.detail = 'not in the manifest (added after it was written)';
        }
        mstat.extra++;
      } else if (r.status === 'missing') {
        mstat.missing++;
        f.detail = `listed in ${MANIFEST_NAME} (${want.size} bytes) but missing`;
      } else if (r.sha256 !== want.sha256 || r.size !== want.size) {
        mstat.mismatched++;
        f.status = 'hash-mismatch';
        f.detail = `manifest: ${want.size} bytes sha256 ${want.sha256}; on disk: ${r.size} bytes sha256 ${r.sha256}`;
      }
    }
    out.push(f);
  }
  out.push(...outside);
  // readability through the readers
  const readable: CkptVerifyReport['readable'] = [];
  for (const rel of files) {
    const p = join(dir, rel);
    if (/\.(json|txt|log|md)$/.test(rel)) continue;
    let kind;
    try {
      kind = await sniffFile(p);
    } catch {
      continue;
    }
    if (kind !== 'torch-zip' && kind !== 'pickle') continue;
    try {
      const tf = await openTorchFile(p);
      await tf.close();
      readable.push({ part: rel, ok: true });
    } catch (e) {
      readable.push({ part: rel, ok: false, detail: `${e instanceof SoracError ? e.code + ': ' : ''}${(e as Error).message}` });
    }
  }
  for (const sub of ['model', 'optimizer', 'lora']) {
    const idx = (await readdir(join(dir, sub)).catch(() => [] as string[])).find((n) => n.endsWith('.index.json'));
    if (!idx) continue;
    try {
      const st = await openWeightsFile(join(dir, sub, idx), { unwrap: false });
      await st.close();
      readable.push({ part: `${sub}/${idx} (index ↔ shard keys)`, ok: true });
    } catch (e) {
      readable.push({ part: `${sub}/${idx} (index ↔ shard keys)`, ok: false, detail: `${e instanceof SoracError ? e.code + ': ' : ''}${(e as Error).message}` });
    }
  }
  // one cause, one problem: the first line about a file wins (its hash/structure status, then the
  // directory check, then readability), and an index that fails only because one of its shards is
  // damaged is not listed again
  const lines = [
    ...out.filter((f) => f.status !== 'ok' && f.status !== 'extra').map((f) => `${f.path}: ${f.status}${f.detail ? ` (${f.detail})` : ''}`),
    ...problems,
    ...readable.filter((r) => !r.ok).map((r) => `${r.part}: not readable: ${r.detail}`),
  ];
  const about = (line: string) => line.split(/:| \(/)[0]!.trim();
  const seen = new Set<string>();
  const uniq: string[] = [];
  for (const line of lines) {
    const path = about(line);
    const folder = line.includes('(index ↔ shard keys)') ? path.slice(0, path.indexOf('/') + 1) : undefined;
    if (seen.has(path) || (folder && [...seen].some((s) => s.startsWith(folder) && s !== path))) continue;
    seen.add(path);
    uniq.push(line);
  }
  return {
    dir,
    ok: uniq.length === 0,
    checkpoint: info,
    files: out,
    readable,
    manifest: mstat,
    temps,
    problems: uniq,
    bytes,
    seconds: (performance.now() - t0) / 1000,
  };
}

// ---- export ----------------------------------------------------------------------------------

export type ExportDtype = 'bf16' | 'f16' | 'f32';

export interface ExportOptions {
  from: 'ema' | 'model';
  /** float tensors are cast to this dtype (ints/bools kept); default: keep the stored dtypes */
  dtype?: ExportDtype;
  out: string;
  /** max data bytes per shard: write OUT/ as HF shards + model.safetensors.index.json */
  shardSize?: number;
  /** validate against this compiled model first (strict load report); nothing is written if it fails */
  keymap?: Keymap;
  allowMissing?: string[];
  /** replace an existing OUT (atomically) */
  overwrite?: boolean;
  onProgress?: (p: VerifyProgress) => void;
  /** abort (e.g. on Ctrl-C): the write stops at the next piece and its temp output is removed */
  signal?: AbortSignal;
}

export interface ExportResult {
  out: string;
  files: string[];
  tensors: number;
  bytes: number;
  seconds: number;
  checkpoint: CheckpointInfo;
  metadata: Record<string, string>;
  report?: LoadReport;
  notes: string[];
}

/** `1.5GB`, `500MB`, `4GiB`, `1048576` → bytes. */
export function parseSize(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?b?\s*$/i.exec(s);
  if (!m) return undefined;
  const pow = m[2] ? { k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase() as 'k' | 'm' | 'g' | 't'] : 0;
  const n = Math.floor(Number(m[1]) * (m[3] ? 1024 : 1000) ** pow);
  return n > 0 ? n : undefined;
}

async function exists(p: string) {
  return (await stat(p).catch(() => null)) !== null;
}

export async function exportCheckpoint(dirIn: string, opts: ExportOptions): Promise<ExportResult> {
  const t0 = performance.now();
  const dir = resolvePath(dirIn);
  const out = resolvePath(opts.out);
  checkOutputApart(out, [dir], { flag: '-o' });
  const info = await checkpointDir(dir);
  // a torn checkpoint whose requested part is intact (e.g. ema.pt of a save cut short in the optimizer) is
  // exported, with a note naming what else is wrong; a damaged or absent part is refused
  const wanted = info.parts[opts.from];
  const tornNotes: string[] = [];
  if (!info.complete) {
    if (!wanted?.ok) throw incompleteError(info, 'export it');
    const other = info.problems.filter((p) => !wanted.problems.includes(p));
    tornNotes.push(`${info.name} is not a complete checkpoint (${other.length} problem(s) elsewhere, e.g. ${other[0] ?? '?'}), but its ${opts.from} weights (${wanted.path}) are intact: exported them`);
  }
  if (opts.from === 'ema' && !info.parts.ema)
    throw new SoracError('SORA5102', `${dir} has no EMA weights (ema.pt / ema.safetensors)`, { hint: 'export the trained weights instead: --from model', looked: [], path: dir });
  if (!opts.overwrite && (await exists(out))) throw new SoracError('SORA5103', `${out} already exists`, { hint: 'pass --force to replace it (atomically), or choose another -o', looked: [], path: out });
  const store: TensorStore = await openWeights(dir, { part: opts.from });
  try {
    checkOutputApart(out, store.files, { flag: '-o' }); // the files it reads, wherever their links lead
  } catch (e) {
    await store.close();
    throw e;
  }
  const handleList: FileHandle[] = [];
  try {
    let report: LoadReport | undefined;
    if (opts.keymap) {
      report = loadReport(opts.keymap, withAliases(opts.keymap, store), { allowMissing: opts.allowMissing ?? [] });
      if (!report.ok)
        throw Object.assign(
          new SoracError('SORA5010', `the ${opts.from} weights of ${info.name} do not match the model; nothing was written\n${renderLoadReport(report)}`, { hint: 'follow the per-key fixes above, or check --config/--set', looked: [], path: dir }),
          { report },
        );
    }
    const metadata: Record<string, string> = {
      format: 'pt',
      source: dir,
      source_checkpoint: info.name,
      source_part: opts.from,
      epoch: String(info.epoch ?? info.nameEpoch),
      step: String(info.step ?? ''),
      global_step: String(info.globalStep ?? info.nameStep),
      exported_by: 'sorac ckpt export',
    };
    if (info.actualUpdateStep !== undefined) metadata.actual_update_step = String(info.actualUpdateStep);
    if (tornNotes.length) metadata.source_incomplete = 'true';
    if (opts.dtype) metadata.dtype = opts.dtype;
    const keys = [...store.tensors.keys()];
    const outDtype = (d: DType): DType => (opts.dtype && canConvert(d, opts.dtype) && d !== opts.dtype ? opts.dtype : d);
    const totalBytes = keys.reduce((a, k) => {
      const t = store.tensors.get(k)!;
      return a + (t.byteLength / DTYPE_SIZE[t.dtype]) * DTYPE_SIZE[outDtype(t.dtype)];
    }, 0);
    let done = 0;
    let produced = 0;
    // Streaming: a tensor stored contiguously (safetensors, contiguous torch records) is copied in
    // 1 MiB pieces through two reused buffers (the writer awaits each write before pulling the
    // next piece, which is read meanwhile), cast piece by piece; views without a file offset are read whole, one at a time.
    const CHUNK = 1 << 20; // 1 MiB: large single writes are several times slower through the page cache (bench/ckpt.ts)
    const chunkBufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const handles = new Map<string, FileHandle>();
    const handle = async (file: string) => {
      let fh = handles.get(file);
      if (!fh) {
        handles.set(file, (fh = await open(file, 'r')));
        handleList.push(fh);
      }
      return fh;
    };
    const tensors = new Map<string, WriterTensor>();
    keys.forEach((k) => {
      const t = store.tensors.get(k)!;
      const to = outDtype(t.dtype);
      const es = DTYPE_SIZE[t.dtype];
      tensors.set(k, {
        dtype: to,
        shape: t.shape,
        data: async function* () {
          await faultPoint(produced);
          checkAbort(opts.signal);
          const index = produced++;
          const report = (n: number) => {
            done += n;
            opts.onProgress?.({ file: k, fileIndex: index, fileCount: keys.length, doneBytes: done, totalBytes });
          };
          if (t.offset === undefined) {
            const raw = await t.read();
            const bytes = to === t.dtype ? raw : convertBytes(raw, t.dtype, to, { key: k });
            report(bytes.byteLength);
            yield bytes;
            return;
          }
          const fh = await handle(t.file);
          const step = CHUNK - (CHUNK % (es * 8));
          // double-buffered: the next piece is read while the writer writes this one
          const readPiece = async (pos: number, buf: Buffer) => {
            const len = Math.min(step, t.byteLength - pos);
            let got = 0;
            while (got < len) {
              const { bytesRead } = await fh.read(buf, got, len - got, t.offset! + pos + got);
              if (!bytesRead) throw new SoracError('SORA5012', `${t.file}: unexpected end of file reading "${k}" (the file shrank?)`, { hint: 'run `sorac ckpt verify` on the checkpoint', looked: [], path: t.file });
              got += bytesRead;
            }
            return buf.subarray(0, len);
          };
          let slot = 0;
          let next: Promise<Buffer> | undefined = t.byteLength > 0 ? readPiece(0, chunkBufs[0]!) : undefined;
          for (let pos = 0; next; pos += step) {
            const piece = await next;
            checkAbort(opts.signal);
            slot ^= 1;
            next = pos + step < t.byteLength ? readPiece(pos + step, chunkBufs[slot]!) : undefined;
            next?.catch(() => {}); // surfaced when awaited
            const bytes = to === t.dtype ? piece : convertBytes(piece, t.dtype, to, { key: k, indexOffset: pos / es });
            report(bytes.byteLength);
            yield bytes;
          }
        },
      });
    });
    const files: string[] = [];
    try {
      await mkdir(dirname(out), { recursive: true });
      if (opts.shardSize) {
        const parent = dirname(out);
        const tmp = tempSibling(out);
        await mkdir(tmp);
        try {
          const w = await writeShardedSafetensors(tmp, tensors, { maxShardSize: opts.shardSize, metadata });
          const dh = await open(tmp, 'r');
          await dh.sync().catch(() => {});
          await dh.close();
          let old: string | undefined;
          if (await exists(out)) {
            old = tempSibling(out, 'prune');
            await rename(out, old);
          }
          await rename(tmp, out);
          if (old) await rm(old, { recursive: true, force: true });
          files.push(...w.shards.map((s) => join(out, basename(s.path))), join(out, basename(w.indexPath)));
        } catch (e) {
          await rm(tmp, { recursive: true, force: true }).catch(() => {});
          throw e;
        }
      } else {
        await writeSafetensors(out, tensors, { metadata });
        files.push(out);
      }
    } catch (e) {
      throw ioError(e, out);
    }
    return { out, files, tensors: keys.length, bytes: totalBytes, seconds: (performance.now() - t0) / 1000, checkpoint: info, metadata, report, notes: [...tornNotes, ...store.notes] };
  } finally {
    for (const fh of handleList) await fh.close().catch(() => {});
    await store.close();
  }
}
