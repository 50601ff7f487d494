/**
 * Reading untrusted paths safely: only regular files are opened (a FIFO would block forever,
 * `/dev/zero` never ends), and a path that came from inside a checkpoint (an index weight_map, a
 * manifest, a hub ref or snapshot symlink) must resolve inside the root it came from.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, sep } from 'node:path';
import { SoracError } from '../../core/errors.ts';

export function fileKind(s: Stats): string {
  if (s.isFile()) return 'regular file';
  if (s.isDirectory()) return 'directory';
  if (s.isFIFO()) return 'FIFO (named pipe)';
  if (s.isCharacterDevice()) return 'character device';
  if (s.isBlockDevice()) return 'block device';
  if (s.isSocket()) return 'socket';
  return 'special file';
}

export function notRegular(path: string, s: Stats): SoracError {
  return new SoracError('SORA5032', `${path} is a ${fileKind(s)}, not a regular file; sorac reads weights, indexes, refs and manifests only from regular files`, {
    hint: 'point at the real file (a device, pipe or socket is never read)',
    path,
  });
}

/**
 * Open a file for reading only if it is a regular file. O_NONBLOCK makes opening a FIFO return
 * at once (instead of waiting for a writer); fstat on the open handle then refuses it, with no
 * window between the check and the read. Errors of `open` itself (ENOENT, EACCES) propagate.
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  let s: Stats;
  try {
    s = await fh.stat();
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
  if (!s.isFile()) {
    await fh.close().catch(() => {});
    throw notRegular(path, s);
  }
  return fh;
}

/** Read a small regular text file whole (refs, indexes, manifests); larger than `max` is refused. */
export async function readSmallTextFile(path: string, max: number): Promise<string> {
  const fh = await openRegularFile(path);
  try {
    const size = (await fh.stat()).size;
    if (size > max) throw new SoracError('SORA5030', `${path} is ${size} bytes, more than the ${max} bytes such a file may have`, { path, hint: 'the file is not what its name says; re-download it' });
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, done, size - done, done);
      if (!bytesRead) break;
      done += bytesRead;
    }
    return buf.toString('utf8', 0, done);
  } finally {
    await fh.close();
  }
}

/** Whether `p` is `root` or lies under it (both absolute, already resolved). */
export function isWithin(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/** A hub-cache blob path: `.../models--org--name/blobs/<sha256 or git sha1>`. */
export function looksLikeHubBlob(real: string): boolean {
  return basename(dirname(real)) === 'blobs' && basename(dirname(dirname(real))).startsWith('models--') && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(basename(real));
}

/**
 * Resolve `p` (symlinks and all) and require it to stay inside one of `roots` (resolved too), or,
 * with `allowHubBlobs`, to be a hub-cache blob (older `huggingface-cli --local-dir` downloads link
 * shards into the cache). Returns the real path, or undefined when `p` does not exist. Throws
 * SORA5031 naming where it came from.
 */
export async function containedRealpath(p: string, roots: readonly string[], from: string, opts: { allowHubBlobs?: boolean } = {}): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(p);
  } catch {
    return undefined;
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => r)));
  if (realRoots.some((r) => isWithin(r, real))) return real;
  if (opts.allowHubBlobs && looksLikeHubBlob(real)) return real;
  throw new SoracError('SORA5031', `${from} names ${p}, which resolves to ${real}, outside ${realRoots.join(' / ')}; it was not read`, {
    hint: 'a checkpoint may only refer to files inside its own directory (or hub cache repo); re-download it from a source you trust',
    path: p,
  });
}
