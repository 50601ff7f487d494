/**
 * Atomic file-system writes, one scheme for the whole tool.
 *
 * A file or directory is written under a hidden temp name beside its target and renamed into place
 * (then the directory is fsynced), so a reader never sees a half-written output and a crash leaves
 * only an obviously temporary sibling. Temp names are `.<target name>.sorac-tmp-<pid>-<hex>`; a
 * directory moved aside to be deleted (prune, --force replacement) is `.<name>.sorac-prune-<pid>-<hex>`.
 * `isSoracTemp` recognises both (listings skip them); `removeOwnTemps` lets a process that is
 * interrupted remove the ones it made.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SoracError } from './errors.ts';

export type TempKind = 'tmp' | 'prune';

/** A fresh hidden sibling path of `target` for an atomic write (`tmp`) or a move-aside (`prune`). */
export function tempSibling(target: string, kind: TempKind = 'tmp'): string {
  return join(dirname(target), `.${basename(target)}.sorac-${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

const TEMP_NAME = /^\..+\.sorac-(tmp|prune)-\d+-[0-9a-f]+$/;

/** Whether a directory entry name is one of sorac's temp siblings. */
export function isSoracTemp(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** Remove the temp siblings of `target` that this process made (e.g. after Ctrl-C mid-write). */
export function removeOwnTemps(target: string): void {
  const prefix = `.${basename(target)}.sorac-tmp-${process.pid}-`;
  let names: string[];
  try {
    names = readdirSync(dirname(target));
  } catch {
    return;
  }
  for (const f of names) if (f.startsWith(prefix)) rmSync(join(dirname(target), f), { recursive: true, force: true });
}

/** fsync a directory (makes a rename durable); a no-op where the file system does not support it. */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // not supported on every file system
  }
}

/** Write `target` through `body` into a temp sibling, fsync, rename into place. Nothing is left on failure. */
export async function atomicWrite<T>(target: string, body: (fh: FileHandle) => Promise<T>, opts: { mode?: number } = {}): Promise<T> {
  const dir = dirname(target);
  const tmp = tempSibling(target);
  const fh = await open(tmp, 'wx', 0o644);
  if (opts.mode !== undefined) await fh.chmod(opts.mode);
  let ok = false;
  try {
    const r = await body(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
    ok = true;
    await fsyncDir(dir);
    return r;
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
    }
  }
}

/**
 * Most bytes handed to one `fh.write` call: Node refuses a single write of 2 GiB or more
 * (ERR_OUT_OF_RANGE), so every writer goes through `writeFully`, which splits below it.
 */
export const MAX_WRITE_CHUNK = 1 << 30;

/** Write all of `buf` at `pos` (short writes looped, each call below MAX_WRITE_CHUNK bytes). */
export async function writeFully(fh: Pick<FileHandle, 'write'>, buf: Uint8Array, pos: number, maxChunk: number = MAX_WRITE_CHUNK): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, Math.min(maxChunk, buf.byteLength - done), pos + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}

/** Write bytes atomically (with `mode`, the new file gets exactly that mode). */
export async function writeFileAtomic(path: string, bytes: Uint8Array, opts: { mode?: number } = {}): Promise<void> {
  await atomicWrite(path, (fh) => writeFully(fh, bytes, 0), opts);
}

/**
 * Make sure a single output file can be written at `target`, before any compute: the parent
 * directories are created (like `build -o` and `ckpt export`), and a target that is an existing
 * directory, sits under a file, or lies in a directory that cannot be written is refused (SORA7008)
 * with the flag that named it. Nothing is written at `target` itself.
 */
export function prepareOutputFile(target: string, opts: { flag?: string; example?: string } = {}): void {
  const flag = opts.flag ?? '-o';
  let st;
  try {
    st = statSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new SoracError('SORA7008', `cannot write ${target}: a part of its directory path is a file`, { hint: `choose another ${flag}`, path: target });
    if (code !== 'ENOENT') throw new SoracError('SORA7008', `cannot write ${target}: ${code ?? (e as Error).message}`, { hint: `choose another ${flag}`, path: target });
  }
  if (st?.isDirectory())
    throw new SoracError('SORA7008', `${flag} ${target} is a directory; ${flag} names the file to write`, { hint: `name a file, e.g. ${flag} ${join(target, opts.example ?? 'out.safetensors')}`, path: target });
  const dir = dirname(target);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SoracError('SORA7008', `cannot create the output directory ${dir}: ${code === 'EEXIST' || code === 'ENOTDIR' ? 'a part of the path is a file' : (code ?? (e as Error).message)}`, { hint: `choose a writable location with ${flag}`, path: target });
  }
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch (e) {
    throw new SoracError('SORA7008', `cannot write ${target}: the directory ${dir} is not writable (${(e as NodeJS.ErrnoException).code ?? 'denied'})`, { hint: `choose a writable location with ${flag}`, path: target });
  }
}
