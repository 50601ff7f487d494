/**
 * Integrity checks for checkpoints: hash every file (streaming sha256, one reused buffer, flat
 * memory), compare hub-cache blobs with the hash in their name (sha256 for LFS files, git blob
 * sha1 for small files), and check structure cheaply from headers: safetensors length rules, zip
 * end-of-central-directory and entry bounds, index JSON shards present, `.incomplete` downloads.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve as resolvePath } from 'node:path';
import { SoracError } from '../../core/errors.ts';
import { limit, limitExceeded } from '../../core/limits.ts';
import { containedRealpath, fileKind, isWithin, openRegularFile, readSmallTextFile } from '../formats/safe-fs.ts';
import { hubBlobOf, resolveWeights, type ResolveOptions } from './resolve.ts';
import { openSafetensors, SafetensorsError } from '../formats/safetensors.ts';
import { sniffFile } from '../formats/torch-file.ts';
import { entryDataOffset, readZipDirectory, ZipError } from '../formats/zip.ts';

export type VerifyStatus = 'ok' | 'corrupt' | 'truncated' | 'hash-mismatch' | 'incomplete' | 'missing' | 'unreadable';

export interface VerifyFileResult {
  path: string;
  size: number;
  sha256?: string;
  status: VerifyStatus;
  detail?: string;
  /** set for hub-cache blobs: what the blob name says the content hashes to */
  expected?: { algo: 'sha256' | 'git-sha1'; hash: string };
}

export interface VerifyReport {
  target: string;
  ok: boolean;
  files: VerifyFileResult[];
  /** with `expect`/`sums`: what the hashes were checked against, and how many matched */
  checked?: { against: string; listed: number; matched: number; mismatched: number; missing: number; unlisted: number };
  /** bytes actually hashed (a blob reached through several links counts once) */
  bytes: number;
  seconds: number;
}

export interface VerifyProgress {
  file: string;
  fileIndex: number;
  fileCount: number;
  doneBytes: number;
  totalBytes: number;
}

export interface VerifyOptions extends ResolveOptions {
  onProgress?: (p: VerifyProgress) => void;
  /** the sha256 (hex) the one file of PATH must hash to (`sorac verify FILE --expect SHA`) */
  expect?: string;
  /** a SHA256SUMS file (`<sha256>  <name>` lines, as sha256sum writes them; names relative to its folder) */
  sums?: string;
  /** total read buffer size, split into 4 read-ahead slots (default 16 MiB) */
  chunkSize?: number;
}

const SKIP_DIRS = new Set(['.git', '.locks', '.no_exist']);

/**
 * The files under `dir`. A symlinked directory is followed once: a directory already on the walk
 * (by real path: `a -> .`, two `.` links) is not entered again, so loops cannot make the walk
 * exponential; the number of entries is capped (SORAC_MAX_DIR_ENTRIES). Special files (FIFOs,
 * devices, sockets) are listed so verifyFile reports them; they are never opened.
 */
async function walk(dir: string, out: string[], seen: Set<string> = new Set(), budget = { left: limit('fileEntries') }) {
  const real = await realpath(dir).catch(() => dir);
  if (seen.has(real)) return;
  seen.add(real);
  const ents = await readdir(dir, { withFileTypes: true });
  for (const e of ents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (--budget.left < 0) throw limitExceeded('SORA5030', 'fileEntries', `${dir}: the checkpoint directory holds more than ${limit('fileEntries')} entries`, limit('fileEntries') + 1, { path: dir });
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (SKIP_DIRS.has(e.name) || (e.name === '.cache' && dir !== '/')) continue;
      await walk(p, out, seen, budget);
    } else if (e.isSymbolicLink()) {
      const s = await stat(p).catch(() => null);
      if (s?.isDirectory()) await walk(p, out, seen, budget);
      else out.push(p); // a dangling link is reported as missing
    } else out.push(p);
  }
}

/** The files that make up a checkpoint named by `spec` (path, dir, training dir or hub id). */
export async function checkpointFiles(spec: string, opts: ResolveOptions = {}): Promise<{ target: string; files: string[]; root?: string }> {
  const cwd = opts.cwd ?? process.cwd();
  const p = resolvePath(cwd, spec);
  const s = await stat(p).catch(() => null);
  if (s?.isDirectory()) {
    const files: string[] = [];
    await walk(p, files);
    return { target: p, files };
  }
  if (s?.isFile()) return { target: p, files: await withShards(p) };
  const r = await resolveWeights(spec, opts);
  if (r.hub && !r.hub.file) {
    const files: string[] = [];
    await walk(r.hub.snapshot, files);
    return { target: r.hub.snapshot, files, root: r.hub.repoDir };
  }
  return { target: r.path, files: await withShards(r.path), ...(r.hub ? { root: r.hub.repoDir } : {}) };
}

async function withShards(p: string): Promise<string[]> {
  if (!p.endsWith('.json')) return [p];
  let idx: { weight_map?: unknown };
  try {
    idx = JSON.parse(await readSmallTextFile(p, 100_000_000));
  } catch {
    return [p]; // reported by the structural check
  }
  if (idx && typeof idx.weight_map === 'object' && idx.weight_map !== null) {
    const shards = [...new Set(Object.values(idx.weight_map as Record<string, unknown>))].filter((n): n is string => typeof n === 'string').sort();
    const out = [p];
    // a shard name must stay inside the index's directory (resolved, symlinks included), else it is not read
    for (const n of shards) {
      const sp = join(dirname(p), n);
      if (isAbsolute(n) || !isWithin(dirname(p), sp)) throw new SoracError('SORA5031', `${p}: weight_map names ${JSON.stringify(n)}, outside the index's directory; nothing was read`, { path: p, hint: 'a sharded index may only name shard files beside it; re-download the checkpoint' });
      await containedRealpath(sp, [dirname(p)], `${p} weight_map (shard ${n})`, { allowHubBlobs: true });
      out.push(sp);
    }
    return out;
  }
  return [p];
}

/** The etag recorded for a file downloaded with `--local-dir` (3-line .metadata: commit, etag, timestamp). */
export async function localDirEtag(path: string): Promise<{ etag: string; algo: 'sha256' | 'git-sha1'; record: string } | undefined> {
  let dir = dirname(path);
  for (let up = 0; up < 12; up++) {
    const record = join(dir, '.cache', 'huggingface', 'download', relative(dir, path) + '.metadata');
    const text = await readSmallTextFile(record, 4096).catch(() => undefined);
    if (text !== undefined) {
      const etag = text.split('\n')[1]?.trim().replace(/^"|"$/g, '') ?? '';
      if (/^[0-9a-f]{64}$/.test(etag)) return { etag, algo: 'sha256', record };
      if (/^[0-9a-f]{40}$/.test(etag)) return { etag, algo: 'git-sha1', record };
      return undefined;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

async function gitBlobSha1(path: string, size: number, buf: Buffer): Promise<string> {
  const h = createHash('sha1');
  h.update(`blob ${size}\0`);
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (!bytesRead) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

export async function verifyWeights(spec: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const { target, files, root } = await checkpointFiles(spec, opts);
  const sizes: number[] = [];
  for (const f of files) sizes.push((await stat(f).catch(() => null))?.size ?? 0);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const buf = Buffer.allocUnsafe(opts.chunkSize ?? 16 * 1024 * 1024);
  const results: VerifyFileResult[] = [];
  let done = 0;
  // snapshot symlinks and the blobs they point to are the same bytes: hash each real file once
  const byReal = new Map<string, VerifyFileResult>();
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const real = await realpath(f).catch(() => f);
    if (root) {
      // hub snapshot links lead into the repo's blobs/; one that leads elsewhere is not read
      const outside = await containedRealpath(f, [root], 'hub snapshot').then(() => undefined, (e: unknown) => (e instanceof SoracError ? e.message : String(e)));
      if (outside) {
        results.push({ path: f, size: 0, status: 'unreadable', detail: outside });
        continue;
      }
    }
    const prev = byReal.get(real);
    if (prev) {
      results.push({ ...prev, path: f, detail: prev.detail ?? `same file as ${prev.path}` });
      done += sizes[i]!;
      opts.onProgress?.({ file: f, fileIndex: i, fileCount: files.length, doneBytes: done, totalBytes });
      continue;
    }
    const r = await verifyFile(f, buf, (n) => {
      done += n;
      opts.onProgress?.({ file: f, fileIndex: i, fileCount: files.length, doneBytes: done, totalBytes });
    });
    byReal.set(real, r);
    results.push(r);
  }
  const bytes = [...byReal.values()].reduce((a, r) => a + r.size, 0);
  const checked = opts.expect !== undefined || opts.sums !== undefined ? await checkHashes(target, results, opts) : undefined;
  return { target, ok: results.every((r) => r.status === 'ok'), files: results, bytes, seconds: (performance.now() - t0) / 1000, ...(checked ? { checked } : {}) };
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Parse a SHA256SUMS file (sha256sum's `<hex>  <name>` or binary-mode `<hex> *<name>`; blank and # lines skipped). */
export function parseSha256Sums(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.startsWith('#')) return;
    const m = /^\\?([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new SoracError('SORA7002', `${file}:${i + 1}: not a SHA256SUMS line ("<sha256>  <file name>"): ${line.slice(0, 80)}`, { hint: 'write it with `sha256sum FILES > SHA256SUMS`', path: file });
    out.set(m[2]!.replace(/^\.\//, ''), m[1]!.toLowerCase());
  });
  return out;
}

/** Compare the hashes just computed with `--expect` or a SHA256SUMS file; mismatches become hash-mismatch. */
async function checkHashes(target: string, results: VerifyFileResult[], opts: VerifyOptions): Promise<NonNullable<VerifyReport['checked']>> {
  const counts = { listed: 0, matched: 0, mismatched: 0, missing: 0, unlisted: 0 };
  const compare = (r: VerifyFileResult, want: string, source: string) => {
    if (!r.sha256) return;
    if (r.sha256 === want) counts.matched++;
    else {
      counts.mismatched++;
      r.status = 'hash-mismatch';
      r.detail = `content hashes to ${r.sha256}, ${source} says ${want}`;
    }
  };
  if (opts.expect !== undefined) {
    const want = opts.expect.trim().toLowerCase();
    if (!SHA256.test(want)) throw new SoracError('SORA7007', `--expect ${opts.expect} is not a sha256 (64 hex digits)`);
    if (results.length !== 1) throw new SoracError('SORA7007', `--expect checks one file, but ${target} is ${results.length} files`, { hint: 'name one file, or check them all with --sums SHA256SUMS' });
    counts.listed = 1;
    compare(results[0]!, want, '--expect');
    return { against: '--expect', ...counts };
  }
  const sumsPath = resolvePath(opts.cwd ?? process.cwd(), opts.sums!);
  let text: string;
  try {
    text = await readFile(sumsPath, 'utf8');
  } catch (e) {
    throw new SoracError('SORA7001', `cannot read ${opts.sums}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path: sumsPath });
  }
  const sums = parseSha256Sums(text, opts.sums!);
  counts.listed = sums.size;
  const base = dirname(sumsPath);
  const targetDir = (await stat(target).catch(() => null))?.isDirectory() ? target : dirname(target);
  const used = new Set<string>();
  for (const r of results) {
    // a name in SHA256SUMS is relative to its folder; else to PATH's folder; else a unique base name
    const rel = [relative(base, r.path), relative(targetDir, r.path), basename(r.path)].find((n) => sums.has(n));
    if (rel === undefined) {
      counts.unlisted++;
      continue;
    }
    used.add(rel);
    compare(r, sums.get(rel)!, basename(opts.sums!));
  }
  // a directory is checked whole: a listed file that is not there is missing
  if (targetDir === target)
    for (const [name] of sums)
      if (!used.has(name)) {
        counts.missing++;
        results.push({ path: resolvePath(base, name), size: 0, status: 'missing', detail: `listed in ${basename(opts.sums!)} but not in ${target}` });
      }
  return { against: sumsPath, ...counts };
}

/** Hash one file and check its structure. Never throws for a bad file; reports it. */
export async function verifyFile(path: string, buf: Buffer = Buffer.allocUnsafe(16 << 20), onBytes?: (n: number) => void): Promise<VerifyFileResult> {
  if (path.endsWith('.incomplete')) {
    const size = (await stat(path).catch(() => null))?.size ?? 0;
    return { path, size, status: 'incomplete', detail: 'partial download left by the hub client (.incomplete); re-run the download' };
  }
  let size: number;
  try {
    const st = await stat(path);
    // only regular files are read: /dev/zero never ends, a FIFO blocks
    if (!st.isFile()) return { path, size: 0, status: 'unreadable', detail: `a ${fileKind(st)}, not a regular file: not read` };
    size = st.size;
  } catch (e) {
    return { path, size: 0, status: 'missing', detail: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file (or the blob it links to) does not exist' : (e as Error).message };
  }
  // Zip archives (torch.save): learn each stored entry's data range first, so the single hashing
  // pass also checks every entry's CRC-32 (catches bit rot in local .pt/.bin files that have no
  // hub hash to compare with).
  let zipRanges: { name: string; start: number; end: number; crc: number; expected: number }[] = [];
  let zipProblem: string | undefined;
  if (!path.endsWith('.json')) {
    try {
      if ((await sniffFile(path)) === 'torch-zip') {
        const fh = await openRegularFile(path);
        try {
          const entries = await readZipDirectory(fh, size);
          for (const e of entries) {
            const start = await entryDataOffset(fh, size, e);
            if (e.method === 0) zipRanges.push({ name: e.name, start, end: start + e.compressedSize, crc: 0, expected: e.crc32 });
          }
        } finally {
          await fh.close();
        }
      }
    } catch (e) {
      if (!(e instanceof ZipError)) return { path, size, status: 'unreadable', detail: (e as Error).message };
      zipProblem = e.message;
      zipRanges = [];
    }
    zipRanges.sort((a, b) => a.start - b.start);
  }
  let sha256: string;
  try {
    const h = createHash('sha256');
    const fh = await openRegularFile(path);
    try {
      // Read-ahead queue: while one chunk is hashed (synchronous CPU work), up to 3 more reads are
      // in flight in the libuv pool, so disk and CPU overlap. Memory: the one buffer passed in.
      if (buf.length < 4) buf = Buffer.allocUnsafe(4);
      const DEPTH = 4;
      const part = Math.floor(buf.length / DEPTH);
      const bufs = Array.from({ length: DEPTH }, (_, k) => buf.subarray(k * part, (k + 1) * part));
      const queue: { start: number; len: number; slot: Buffer; p: Promise<{ bytesRead: number }> }[] = [];
      let next = 0;
      let slot = 0;
      const issue = () => {
        const len = Math.min(part, size - next);
        const b = bufs[slot]!;
        queue.push({ start: next, len, slot: b, p: fh.read(b, 0, len, next) });
        slot = (slot + 1) % DEPTH;
        next += len;
      };
      for (let k = 0; k < DEPTH && next < size; k++) issue();
      let pos = 0;
      while (queue.length) {
        const q = queue.shift()!;
        let got = (await q.p).bytesRead;
        while (got < q.len) {
          // short read: finish this chunk before moving on (keeps positions exact)
          const { bytesRead } = await fh.read(q.slot, got, q.len - got, q.start + got);
          if (!bytesRead) break;
          got += bytesRead;
        }
        const chunk = q.slot.subarray(0, got);
        h.update(chunk);
        for (const r of zipRanges) {
          if (r.end <= pos || r.start >= pos + got) continue;
          const a = Math.max(r.start, pos) - pos;
          const b = Math.min(r.end, pos + got) - pos;
          r.crc = crc32(chunk.subarray(a, b), r.crc);
        }
        pos += got;
        onBytes?.(got);
        if (got < q.len) break; // file shrank while reading
        // this chunk is hashed: its slot may be refilled now
        if (next < size) issue();
      }
      // a file that grew since stat: hash the tail too, so the digest covers what is on disk
      for (;;) {
        const { bytesRead } = await fh.read(bufs[0]!, 0, part, pos);
        if (!bytesRead) break;
        h.update(bufs[0]!.subarray(0, bytesRead));
        pos += bytesRead;
      }
      await Promise.allSettled(queue.map((q) => q.p));
      if (pos !== size) return { path, size, status: 'truncated', detail: `read ${pos} bytes, stat says ${size}` };
    } finally {
      await fh.close();
    }
    sha256 = h.digest('hex');
  } catch (e) {
    return { path, size, status: 'unreadable', detail: (e as Error).message };
  }
  const base: VerifyFileResult = { path, size, sha256, status: 'ok' };
  // hub-cache blob: the name is the hash
  const blob = await hubBlobOf(path);
  if (blob) {
    base.expected = { algo: blob.algo, hash: blob.expected };
    const actual = blob.algo === 'sha256' ? sha256 : await gitBlobSha1(path, size, buf);
    if (actual !== blob.expected)
      return { ...base, status: 'hash-mismatch', detail: `hub blob ${basename(blob.blob)} hashes to ${actual} (${blob.algo}): corrupt or modified; delete the blob and download again` };
    const inc = await stat(blob.blob + '.incomplete').catch(() => null);
    if (inc) base.detail = 'a stale .incomplete sibling exists';
  } else {
    // `huggingface-cli download --local-dir DIR`: DIR/.cache/huggingface/download/<path>.metadata holds the etag
    const meta = await localDirEtag(path);
    if (meta) {
      base.expected = { algo: meta.algo, hash: meta.etag };
      const actual = meta.algo === 'sha256' ? sha256 : await gitBlobSha1(path, size, buf);
      if (actual !== meta.etag)
        return { ...base, status: 'hash-mismatch', detail: `content hashes to ${actual} but the download record ${meta.record} says ${meta.etag} (${meta.algo}): corrupt or modified since download; re-run huggingface-cli download` };
    }
  }
  // structure
  let kind;
  try {
    kind = path.endsWith('.json') ? 'json' : await sniffFile(path);
  } catch (e) {
    return { ...base, status: 'unreadable', detail: (e as Error).message };
  }
  if (kind === 'safetensors' || path.endsWith('.safetensors')) {
    try {
      const f = await openSafetensors(path);
      await f.close();
    } catch (e) {
      if (e instanceof SafetensorsError)
        return { ...base, status: ['truncated', 'header-out-of-bounds', 'too-small'].includes(e.rule) ? 'truncated' : 'corrupt', detail: `safetensors rule ${e.rule}: ${e.message}` };
      throw e;
    }
  } else if (kind === 'torch-zip') {
    if (zipProblem) return { ...base, status: /truncated|outside|past the end/.test(zipProblem) ? 'truncated' : 'corrupt', detail: `zip: ${zipProblem}` };
    const bad = zipRanges.filter((r) => r.crc >>> 0 !== r.expected >>> 0);
    if (bad.length) return { ...base, status: 'corrupt', detail: `zip: CRC-32 mismatch in ${bad.length} record(s): ${bad.slice(0, 3).map((r) => r.name).join(', ')}${bad.length > 3 ? ', …' : ''}` };
  } else if (kind === 'json' && path.endsWith('.json')) {
    try {
      const idx = JSON.parse(await readSmallTextFile(path, 100_000_000));
      if (idx && typeof idx.weight_map === 'object') {
        const missing: string[] = [];
        for (const n of new Set(Object.values(idx.weight_map as Record<string, string>))) {
          if (!(await stat(join(dirname(path), n)).catch(() => null))) missing.push(n);
        }
        if (missing.length) return { ...base, status: 'corrupt', detail: `index lists missing shard(s): ${missing.join(', ')}` };
      }
    } catch (e) {
      return { ...base, status: 'corrupt', detail: `invalid JSON: ${(e as Error).message}` };
    }
  }
  return base;
}
