/**
 * Extract selected members of a .tgz (npm package, ORT's GitHub release tarball) or a .zip
 * (.nupkg) into files, hashing them on the way: the provider libraries are 230 MB, so nothing is
 * held in memory and nothing but the wanted members is written.
 *
 * The tar reader handles ustar names (prefix + name), GNU long names ('L') and pax path records
 * ('x'), which is what npm and GNU tar write. The zip reader walks the central directory (zip64
 * included) and inflates stored or deflated members. A truncated or corrupt archive is an
 * ArchiveError (the caller turns it into a SoracError with its own code); so is a member that
 * appears twice.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createGunzip, createInflateRaw } from 'node:zlib';

export class ArchiveError extends Error {}

export interface ExtractedMember {
  /** Path of the member inside the archive. */
  readonly member: string;
  /** Where it was written. */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** Decides per member path: a destination file path to extract it to, or undefined to skip it. */
export type MemberFilter = (member: string) => string | undefined;

/** Extract the members `want` selects from a (gzipped) tar file. */
export async function extractTar(archive: string, want: MemberFilter): Promise<ExtractedMember[]> {
  const head = Buffer.alloc(2);
  const fd0 = openSync(archive, 'r');
  try {
    readSync(fd0, head, 0, 2, 0);
  } finally {
    closeSync(fd0);
  }
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  const src = createReadStream(archive);
  const stream = gz ? src.pipe(createGunzip()) : src;
  src.on('error', (e) => stream.destroy(e));
  const out: ExtractedMember[] = [];
  const seen = new Set<string>();
  let buf: Buffer = Buffer.alloc(0);
  // state: reading a header, or `remaining` bytes of the current member (+ padding)
  let remaining = 0;
  let padding = 0;
  let current: { member: string; fd?: number; path?: string; hash?: ReturnType<typeof createHash>; size: number; keep: 'file' | 'longname' | 'pax' | 'skip'; meta?: Buffer[] } | undefined;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let ended = false;
  const finish = () => {
    if (!current) return;
    if (current.keep === 'file') {
      closeSync(current.fd!);
      out.push({ member: current.member, path: current.path!, size: current.size, sha256: current.hash!.digest('hex') });
    } else if (current.keep === 'longname') longName = Buffer.concat(current.meta!).toString('utf8').replace(/\0.*$/s, '');
    else if (current.keep === 'pax') {
      for (const rec of Buffer.concat(current.meta!).toString('utf8').split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(rec);
        if (m) paxPath = m[1];
      }
    }
    current = undefined;
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      while (!ended) {
        if (current && remaining > 0) {
          const n = Math.min(remaining, buf.length - off);
          if (n === 0) break;
          const part = buf.subarray(off, off + n);
          if (current.keep === 'file') {
            writeSync(current.fd!, part);
            current.hash!.update(part);
          } else if (current.keep !== 'skip') current.meta!.push(Buffer.from(part));
          remaining -= n;
          off += n;
          if (remaining > 0) break;
        }
        if (current && remaining === 0) {
          if (buf.length - off < padding) {
            padding -= buf.length - off;
            off = buf.length;
            break;
          }
          off += padding;
          padding = 0;
          finish();
        }
        if (buf.length - off < 512) break;
        const h = buf.subarray(off, off + 512);
        off += 512;
        if (h.every((x) => x === 0)) {
          ended = true;
          break;
        }
        const entry = parseHeader(h);
        const name = paxPath ?? longName ?? entry.name;
        if (entry.type !== 'x' && entry.type !== 'L' && entry.type !== 'g') {
          longName = undefined;
          paxPath = undefined;
        }
        remaining = entry.size;
        padding = (512 - (entry.size % 512)) % 512;
        let keep: 'file' | 'longname' | 'pax' | 'skip' = 'skip';
        let dest: string | undefined;
        if (entry.type === 'L') keep = 'longname';
        else if (entry.type === 'x') keep = 'pax';
        else if (entry.type === '0' || entry.type === '\0' || entry.type === '7') {
          dest = want(name);
          if (dest !== undefined) {
            if (seen.has(name)) throw new ArchiveError(`member ${name} appears twice in ${archive}`);
            seen.add(name);
            keep = 'file';
          }
        }
        current = { member: name, size: entry.size, keep, ...(keep === 'file' ? { fd: openSync(dest!, 'wx', 0o644), path: dest!, hash: createHash('sha256') } : {}), ...(keep === 'longname' || keep === 'pax' ? { meta: [] } : {}) };
        if (remaining === 0 && padding === 0) finish();
      }
      buf = buf.subarray(off);
      if (ended) break;
    }
  } catch (e) {
    if (current?.fd !== undefined) closeSync(current.fd);
    if (e instanceof ArchiveError) throw e;
    throw new ArchiveError(`${archive}: ${(e as Error).message} (truncated or corrupt archive)`);
  } finally {
    stream.destroy();
  }
  if (current) {
    if (current.fd !== undefined) closeSync(current.fd);
    throw new ArchiveError(`${archive}: ends inside member ${current.member} (truncated archive)`);
  }
  return out;
}

function parseHeader(h: Buffer): { name: string; size: number; type: string } {
  const str = (o: number, n: number) => h.toString('utf8', o, o + n).replace(/\0.*$/s, '');
  const sum = h.reduce((a, x, i) => a + (i >= 148 && i < 156 ? 32 : x), 0);
  const stored = parseInt(str(148, 8).trim() || '0', 8);
  if (sum !== stored) throw new ArchiveError(`bad tar header checksum (stored ${stored}, computed ${sum}): not a tar archive, or corrupt`);
  let size: number;
  if (h[124]! & 0x80) {
    // base-256 (GNU) for members >= 8 GiB
    size = 0;
    for (let i = 125; i < 136; i++) size = size * 256 + h[i]!;
  } else size = parseInt(str(124, 12).trim() || '0', 8);
  const name = str(0, 100);
  const magic = h.toString('latin1', 257, 262);
  const prefix = magic === 'ustar' ? str(345, 155) : '';
  return { name: prefix ? `${prefix}/${name}` : name, size, type: String.fromCharCode(h[156]!) };
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Extract the members `want` selects from a zip file (.nupkg). */
export async function extractZip(archive: string, want: MemberFilter): Promise<ExtractedMember[]> {
  const fd = openSync(archive, 'r');
  const entries: { name: string; method: number; compSize: number; size: number; local: number }[] = [];
  try {
    const fileSize = fstatSync(fd).size;
    const read = (pos: number, len: number): Buffer => {
      if (pos < 0 || pos + len > fileSize) throw new ArchiveError(`${archive}: offset ${pos} beyond the end of the file (truncated zip)`);
      const b = Buffer.alloc(len);
      readSync(fd, b, 0, len, pos);
      return b;
    };
    const tailLen = Math.min(fileSize, 65_557);
    const tail = read(fileSize - tailLen, tailLen);
    let at = -1;
    for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
    if (at < 0) throw new ArchiveError(`${archive}: no zip end-of-central-directory record (not a zip file, or truncated)`);
    let count = tail.readUInt16LE(at + 10);
    let cdSize = tail.readUInt32LE(at + 12);
    let cdOff = tail.readUInt32LE(at + 16);
    if (at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR) {
      const z = read(Number(tail.readBigUInt64LE(at - 20 + 8)), 56);
      if (z.readUInt32LE(0) !== ZIP64_EOCD) throw new ArchiveError(`${archive}: bad zip64 end record`);
      count = Number(z.readBigUInt64LE(32));
      cdSize = Number(z.readBigUInt64LE(40));
      cdOff = Number(z.readBigUInt64LE(48));
    }
    const cd = read(cdOff, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw new ArchiveError(`${archive}: corrupt zip central directory`);
      const method = cd.readUInt16LE(p + 10);
      let compSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let local = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information: only the fields that are 0xffffffff in the record, in order
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (size === 0xffffffff) (size = Number(cd.readBigUInt64LE(q))), (q += 8);
          if (compSize === 0xffffffff) (compSize = Number(cd.readBigUInt64LE(q))), (q += 8);
          if (local === 0xffffffff) local = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      entries.push({ name, method, compSize, size, local });
      p = eEnd + commentLen;
    }
    const out: ExtractedMember[] = [];
    const seen = new Set<string>();
    for (const en of entries) {
      const dest = want(en.name);
      if (dest === undefined) continue;
      if (seen.has(en.name)) throw new ArchiveError(`member ${en.name} appears twice in ${archive}`);
      seen.add(en.name);
      if (en.method !== 0 && en.method !== 8) throw new ArchiveError(`${archive}: member ${en.name} uses compression method ${en.method} (only stored and deflate are supported)`);
      const lh = read(en.local, 30);
      if (lh.readUInt32LE(0) !== LOCAL) throw new ArchiveError(`${archive}: corrupt local header for ${en.name}`);
      const start = en.local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
      if (start + en.compSize > fileSize) throw new ArchiveError(`${archive}: member ${en.name} extends beyond the end of the file (truncated zip)`);
      out.push(await inflateTo(archive, en.name, start, en.compSize, en.method, dest, en.size));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

async function inflateTo(archive: string, member: string, start: number, length: number, method: number, dest: string, expected: number): Promise<ExtractedMember> {
  const raw = createReadStream(archive, { start, end: start + length - 1 });
  const stream = method === 8 ? raw.pipe(createInflateRaw()) : raw;
  raw.on('error', (e) => stream.destroy(e));
  const fd = openSync(dest, 'wx', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      writeSync(fd, chunk);
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (e) {
    throw new ArchiveError(`${archive}: cannot inflate ${member}: ${(e as Error).message} (corrupt archive)`);
  } finally {
    closeSync(fd);
  }
  if (size !== expected) throw new ArchiveError(`${archive}: ${member} inflated to ${size} bytes, the directory says ${expected} (corrupt archive)`);
  return { member, path: dest, size, sha256: hash.digest('hex') };
}
