/**
 * How the dynamic loader (glibc's ld.so) would find a shared library by soname, emulated so that
 * `sorac doctor` can say *which* CUDA library the provider will not find, and where it would be
 * found, before anything is loaded.
 *
 * onnxruntime's CUDA provider is dlopened by full path, but its DT_NEEDED entries (libcudart.so.13,
 * libcublas.so.13, ...) and its later dlopen("libcudnn.so.9") are resolved by soname: the
 * provider has no RUNPATH, so ld.so looks in
 *
 *   1. the directories of LD_LIBRARY_PATH, as the process saw it when it *started* (glibc reads
 *      it once: setting process.env.LD_LIBRARY_PATH inside node changes nothing for node itself),
 *   2. the requesting object's DT_RUNPATH (with $ORIGIN expanded),
 *   3. /etc/ld.so.cache (what `ldconfig -p` prints),
 *   4. the default directories (/lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, ...).
 *
 * A file found by name must also be an ELF object of the right class and machine, else ld.so
 * skips it and keeps looking. Every input (the environment, the cache file, the default
 * directories) can be given, so tests run the same resolution over a fake layout.
 */
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { EM_AARCH64, EM_X86_64, tryReadElfDynamic } from './elf.ts';

export type ResolvedVia = 'LD_LIBRARY_PATH' | 'RUNPATH' | 'ld.so.cache' | 'default';

export interface ResolvedLibrary {
  readonly soname: string;
  readonly path: string;
  readonly via: ResolvedVia;
}

export interface LoaderEnv {
  /** LD_LIBRARY_PATH as the process to be started will see it ('' or undefined: unset). */
  readonly ldLibraryPath?: string;
  /** soname -> paths, in cache order (from /etc/ld.so.cache); see readLdSoCache. */
  readonly cache: ReadonlyMap<string, readonly string[]>;
  /** The loader's built-in directories, searched last. */
  readonly defaultDirs: readonly string[];
  /** ELF machine and class libraries must have (the running node's). */
  readonly machine: number;
  readonly bits: 32 | 64;
}

/** The default directories of glibc's loader on the common 64-bit distributions (Debian multiarch, RHEL lib64). */
export function defaultLibraryDirs(arch: string = process.arch): string[] {
  const triple = arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  return [`/lib/${triple}`, `/usr/lib/${triple}`, '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
}

export function hostMachine(arch: string = process.arch): { machine: number; bits: 32 | 64 } {
  return arch === 'arm64' ? { machine: EM_AARCH64, bits: 64 } : { machine: EM_X86_64, bits: 64 };
}

/** Split a search-path string the way ld.so does (':' and ';' separate; empty entries are skipped). */
export function splitSearchPath(s: string | undefined): string[] {
  return (s ?? '').split(/[:;]/).filter((d) => d.length > 0);
}

/** Whether `path` is a loadable library for this loader (exists, ELF, right class and machine). */
export function isLoadable(path: string, env: Pick<LoaderEnv, 'machine' | 'bits'>): boolean {
  const e = tryReadElfDynamic(path);
  return !!e && e.machine === env.machine && e.bits === env.bits;
}

/**
 * Resolve `soname` as ld.so would for an object at `requester` (whose RUNPATH entries are given;
 * `$ORIGIN` expands to the requester's directory). Undefined when the loader would fail.
 */
export function resolveLibrary(soname: string, env: LoaderEnv, requester?: { path: string; runpath: readonly string[] }): ResolvedLibrary | undefined {
  // a name with a slash is opened as a path, without searching
  if (soname.includes('/')) return isLoadable(soname, env) ? { soname, path: soname, via: 'default' } : undefined;
  const tryDirs = (dirs: readonly string[], via: ResolvedVia): ResolvedLibrary | undefined => {
    for (const d of dirs) {
      const p = join(d, soname);
      if (existsSync(p) && isLoadable(p, env)) return { soname, path: p, via };
    }
    return undefined;
  };
  const origin = requester ? dirname(requester.path) : undefined;
  const runpath = (requester?.runpath ?? []).map((d) => (origin ? d.replace(/\$\{?ORIGIN\}?/g, origin) : d));
  return (
    tryDirs(splitSearchPath(env.ldLibraryPath), 'LD_LIBRARY_PATH') ??
    tryDirs(runpath, 'RUNPATH') ??
    (env.cache.get(soname) ?? []).map((p) => (isLoadable(p, env) ? { soname, path: p, via: 'ld.so.cache' as const } : undefined)).find((x) => x) ??
    tryDirs(env.defaultDirs, 'default')
  );
}

const OLD_MAGIC = 'ld.so-1.7.0';
const NEW_MAGIC = 'glibc-ld.so.cache1.1';
const FLAG_ELF_LIBC6 = 0x0003;
const FLAG_TYPE_MASK = 0x00ff;
const FLAG_REQUIRED_MASK = 0xff00;
const FLAG_X8664_LIB64 = 0x0300;
const FLAG_AARCH64_LIB64 = 0x0a00;

/**
 * Parse glibc's /etc/ld.so.cache (the "glibc-ld.so.cache1.1" format, alone or after an old
 * "ld.so-1.7.0" table) into soname -> paths for the given architecture. Throws on a file in
 * another format (use ldconfigList as the fallback).
 */
export function parseLdSoCache(bytes: Uint8Array, arch: string = process.arch): Map<string, string[]> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let start = 0;
  if (b.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC) {
    // old format: magic (11) + pad + nlibs (u32) + 12-byte entries; the new table follows, 8-aligned
    const nOld = b.readUInt32LE(12);
    start = Math.ceil((16 + nOld * 12) / 8) * 8;
  }
  if (b.toString('latin1', start, start + NEW_MAGIC.length) !== NEW_MAGIC) throw new Error('not a glibc-ld.so.cache1.1 file');
  const nlibs = b.readUInt32LE(start + 20);
  const want = arch === 'arm64' ? FLAG_AARCH64_LIB64 : FLAG_X8664_LIB64;
  const str = (off: number): string => {
    const at = start + off;
    const end = b.indexOf(0, at);
    return b.toString('utf8', at, end < 0 ? b.length : end);
  };
  const out = new Map<string, string[]>();
  for (let i = 0; i < nlibs; i++) {
    const o = start + 48 + i * 24;
    if (o + 24 > b.length) throw new Error('truncated ld.so.cache');
    const flags = b.readInt32LE(o);
    if ((flags & FLAG_TYPE_MASK) !== FLAG_ELF_LIBC6 || (flags & FLAG_REQUIRED_MASK) !== want) continue;
    const key = str(b.readUInt32LE(o + 4));
    const value = str(b.readUInt32LE(o + 8));
    const list = out.get(key);
    if (list) list.push(value);
    else out.set(key, [value]);
  }
  return out;
}

/** `ldconfig -p`, parsed the same way (soname -> paths), for systems whose cache format we do not read. */
export function ldconfigList(arch: string = process.arch): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const exe of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    const r = spawnSync(exe, ['-p'], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0 || !r.stdout) continue;
    const tag = arch === 'arm64' ? 'AArch64' : 'x86-64';
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*(\S+) \(([^)]*)\) => (.+)$/.exec(line);
      if (!m || !m[2]!.includes(tag)) continue;
      const list = out.get(m[1]!);
      if (list) list.push(m[3]!.trim());
      else out.set(m[1]!, [m[3]!.trim()]);
    }
    return out;
  }
  return out;
}

/** The loader cache of this system: /etc/ld.so.cache parsed directly, else `ldconfig -p`, else empty. */
export function readLdSoCache(path = '/etc/ld.so.cache', arch: string = process.arch): Map<string, string[]> {
  try {
    return parseLdSoCache(readFileSync(path), arch);
  } catch {
    return path === '/etc/ld.so.cache' ? ldconfigList(arch) : new Map();
  }
}

/** The loader environment of a process started now with `ldLibraryPath` (default: this process's). */
export function systemLoaderEnv(ldLibraryPath: string | undefined = process.env.LD_LIBRARY_PATH): LoaderEnv {
  return { ldLibraryPath, cache: readLdSoCache(), defaultDirs: defaultLibraryDirs(), ...hostMachine() };
}
