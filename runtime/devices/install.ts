/**
 * `sorac setup cuda`: put onnxruntime's CUDA provider libraries next to onnxruntime-node's
 * binding, from the pinned npm package (`npm pack`, so the user's registry, mirror, proxy and auth
 * apply and no install script runs), from nuget, or from a file the user brings (.tgz, .nupkg,
 * or a folder holding the two libraries).
 *
 *   source --extract the two members--> staging dir --verify size + sha256 of each-->
 *   cache <cache>/ort-cuda/<ort version>-<hash>/ (one directory rename) --> symlink (or copy) each
 *   file into onnxruntime-node's binary directory (one rename per file)
 *
 * Never half-installed: sorac treats the CUDA provider as present only when
 * libonnxruntime_providers_cuda.so is there, and that file is put in place last (an existing one
 * that is not the pinned build is moved away first), so at every instant either the pair is
 * complete and pinned or there is no CUDA provider. Idempotent: a second run finds the verified
 * cache and the links in place and changes nothing. `npm ci` wipes node_modules; re-running
 * `sorac setup cuda` then relinks from the cache offline.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, createReadStream, createWriteStream, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, realpathSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { fsyncDir, tempSibling } from '../../core/atomic.ts';
import { SoracError } from '../../core/errors.ts';
import { ArchiveError, extractTar, extractZip, type ExtractedMember } from './archive.ts';
import { CUDA_PROVIDER_FILE, type PinnedFile, pinFor, PROVIDER_PINS, type ProviderPin } from './pins.ts';

export interface InstallCudaOptions {
  /** onnxruntime-node's binary directory (bin/napi-v6/linux/x64). */
  readonly binDir: string;
  /** The installed onnxruntime-node version. */
  readonly ortVersion: string;
  /** 'npm' (default), 'nuget', or a path to a .tgz/.tar.gz/.tar, .nupkg/.zip or a directory. */
  readonly from?: string;
  readonly cwd?: string;
  /** Default: $SORAC_CACHE_DIR, else $XDG_CACHE_HOME/sorac, else ~/.cache/sorac. */
  readonly cacheDir?: string;
  /** Install copies instead of symlinks (file systems without symlinks, or a node_modules that travels). */
  readonly copy?: boolean;
  /** For tests: a pin other than the table's row for ortVersion. */
  readonly pin?: ProviderPin;
  readonly platform?: string;
  readonly arch?: string;
  /** The npm executable (default 'npm'; tests point it elsewhere). */
  readonly npm?: string;
  /** Progress lines for a terminal. */
  readonly onProgress?: (line: string) => void;
}

export interface InstalledFile {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  /** The path in onnxruntime-node's binary directory. */
  readonly path: string;
  /** The verified file in the cache it links to (or was copied from). */
  readonly cached: string;
  readonly mode: 'symlink' | 'copy';
  /** false when it was already in place. */
  readonly changed: boolean;
}

export interface InstallCudaResult {
  readonly ortVersion: string;
  /** Where the files came from this time: 'cache' when a verified cache was reused. */
  readonly source: string;
  readonly cacheDir: string;
  readonly files: readonly InstalledFile[];
  readonly changed: boolean;
  /** Files of another build that were moved out of the way (not counting a link turned into a copy). */
  readonly replaced: readonly string[];
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SORAC_CACHE_DIR) return env.SORAC_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sorac');
}

/** The pin for this installation, or SORA5511 with what to do. */
export function requirePin(ortVersion: string, platform: string = process.platform, arch: string = process.arch): ProviderPin {
  if (platform !== 'linux' || arch !== 'x64')
    throw new SoracError('SORA5511', `onnxruntime's CUDA execution provider is available to sorac only on linux-x64 (this is ${platform}-${arch})`, { hint: 'run with --device cpu here, or use a Linux x86-64 machine with an NVIDIA GPU' });
  const pin = pinFor(ortVersion);
  if (!pin)
    throw new SoracError('SORA5511', `onnxruntime-node ${ortVersion} is installed, but sorac's CUDA provider pins are for onnxruntime-node ${PROVIDER_PINS.map((p) => p.ortVersion).join(', ')} (providers of another release crash or fail to load)`, {
      hint: 'reinstall the dependencies sorac pins: run `npm ci` in the sorac directory, then `sorac setup cuda` again',
    });
  return pin;
}

/** The cache directory holding one pin's verified files. */
export function pinCacheDir(cacheDir: string, pin: ProviderPin): string {
  const cuda = pin.files.find((f) => f.name === CUDA_PROVIDER_FILE) ?? pin.files[pin.files.length - 1]!;
  return join(cacheDir, 'ort-cuda', `${pin.ortVersion}-${cuda.sha256.slice(0, 16)}`);
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/** Whether `dir` holds every pinned file with the right size and hash. */
async function cacheComplete(dir: string, pin: ProviderPin): Promise<boolean> {
  for (const f of pin.files) {
    const p = join(dir, f.name);
    try {
      if (statSync(p).size !== f.size) return false;
    } catch {
      return false;
    }
    if ((await sha256File(p)) !== f.sha256) return false;
  }
  return true;
}

export async function installCudaProvider(opts: InstallCudaOptions): Promise<InstallCudaResult> {
  const pin = opts.pin ?? requirePin(opts.ortVersion, opts.platform, opts.arch);
  const progress = opts.onProgress ?? (() => {});
  const cacheRoot = opts.cacheDir ?? defaultCacheDir();
  const entry = pinCacheDir(cacheRoot, pin);
  const from = opts.from ?? 'npm';
  let source = 'cache';
  const explicitFile = from !== 'npm' && from !== 'nuget';
  if (explicitFile || !(await cacheComplete(entry, pin))) {
    source = await fetchIntoCache(from, pin, entry, opts, progress);
  } else progress(`using the verified cache ${entry}`);
  const { files, replaced } = linkIntoBinDir(pin, entry, opts.binDir, !!opts.copy);
  return { ortVersion: pin.ortVersion, source, cacheDir: entry, files, changed: files.some((f) => f.changed) || replaced.length > 0, replaced };
}

/** Extract + verify into a staging directory, then rename it to `entry`. Returns a description of the source. */
async function fetchIntoCache(from: string, pin: ProviderPin, entry: string, opts: InstallCudaOptions, progress: (s: string) => void): Promise<string> {
  try {
    mkdirSync(join(entry, '..'), { recursive: true });
  } catch (e) {
    throw cannotWrite(join(entry, '..'), e, 'choose another cache with --cache-dir (or SORAC_CACHE_DIR)');
  }
  const staging = tempSibling(entry);
  mkdirSync(staging);
  let download: string | undefined;
  try {
    let described: string;
    let extracted: ExtractedMember[];
    const want = (member: string) => {
      const f = pin.files.find((x) => x.name === basename(member));
      return f ? join(staging, f.name) : undefined;
    };
    if (from === 'npm') {
      download = await npmPack(pin, staging, opts.npm ?? 'npm', progress);
      described = `npm package ${pin.npm.spec}`;
      extracted = await extractArchive(download, want, described);
    } else if (from === 'nuget') {
      download = await downloadNuget(pin, staging, progress);
      described = `nuget ${pin.nuget.id} ${pin.nuget.version}`;
      extracted = await extractArchive(download, want, described);
    } else {
      const path = isAbsolute(from) ? from : resolve(opts.cwd ?? process.cwd(), from);
      if (!existsSync(path)) throw new SoracError('SORA5512', `--from ${from}: no such file or directory`, { path, hint: 'give the path of the npm tarball (.tgz), the nuget package (.nupkg) or a folder holding the two provider libraries; or --from npm' });
      described = path;
      progress(`reading ${path}`);
      extracted = statSync(path).isDirectory() ? await fromDirectory(path, pin, staging) : await extractArchive(path, want, path);
    }
    if (download) rmSync(download, { force: true });
    verifyExtracted(extracted, pin, described);
    progress(`verified ${pin.files.map((f) => `${f.name} (sha256 ${f.sha256.slice(0, 12)}…)`).join(', ')}`);
    // commit: one rename of the whole directory (an old or damaged entry is moved aside first)
    if (existsSync(entry)) {
      const aside = tempSibling(entry, 'prune');
      renameSync(entry, aside);
      rmSync(aside, { recursive: true, force: true });
    }
    renameSync(staging, entry);
    await fsyncDir(join(entry, '..'));
    return described;
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    if (e instanceof SoracError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EROFS' || (e as NodeJS.ErrnoException).code === 'ENOSPC') throw cannotWrite(entry, e, 'free some space or choose another cache with --cache-dir (or SORAC_CACHE_DIR)');
    throw e;
  }
}

async function extractArchive(path: string, want: (m: string) => string | undefined, described: string): Promise<ExtractedMember[]> {
  try {
    return /\.(nupkg|zip)$/i.test(path) || isZip(path) ? await extractZip(path, want) : await extractTar(path, want);
  } catch (e) {
    if (e instanceof ArchiveError)
      throw new SoracError('SORA5513', `cannot read ${described}: ${e.message}`, { path, hint: 'the file is damaged or incomplete: download it again (npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9), or run `sorac setup cuda` without --from' });
    throw e;
  }
}

function isZip(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(4);
      return readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32LE(0) === 0x04034b50;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** A folder the user brings: find each pinned file by name (any depth up to 6), prefer the one whose hash matches. */
async function fromDirectory(dir: string, pin: ProviderPin, staging: string): Promise<ExtractedMember[]> {
  const found = new Map<string, string[]>();
  const walk = (d: string, depth: number) => {
    let ents;
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = join(d, e.name);
      if (e.isDirectory() && depth < 6) walk(p, depth + 1);
      else if ((e.isFile() || e.isSymbolicLink()) && pin.files.some((f) => f.name === e.name)) found.set(e.name, [...(found.get(e.name) ?? []), p]);
    }
  };
  walk(dir, 0);
  const out: ExtractedMember[] = [];
  for (const f of pin.files) {
    const cands = found.get(f.name) ?? [];
    let chosen: ExtractedMember | undefined;
    for (const c of cands) {
      const size = statSync(c).size;
      const sha256 = size === f.size ? await sha256File(c) : '';
      const m = { member: c, path: c, size, sha256 };
      if (!chosen || (size === f.size && sha256 === f.sha256)) chosen = m;
      if (sha256 === f.sha256) break;
    }
    if (!chosen) continue;
    if (chosen.sha256 === '') chosen = { ...chosen, sha256: await sha256File(chosen.path) };
    const dest = join(staging, f.name);
    copyFileSync(chosen.path, dest);
    out.push({ ...chosen, path: dest });
  }
  return out;
}

function verifyExtracted(extracted: readonly ExtractedMember[], pin: ProviderPin, described: string): void {
  const missing = pin.files.filter((f) => !extracted.some((x) => basename(x.path) === f.name));
  if (missing.length)
    throw new SoracError('SORA5514', `${described} does not contain ${missing.map((f) => f.name).join(' and ')}`, {
      hint: `use the package that carries onnxruntime ${pin.ortVersion}'s Linux CUDA providers: ${pin.npm.spec} (npm), ${pin.nuget.id} ${pin.nuget.version} (nuget), or a folder holding ${pin.files.map((f) => f.name).join(' and ')}`,
    });
  const bad: string[] = [];
  for (const f of pin.files) {
    const x = extracted.find((e) => basename(e.path) === f.name)!;
    if (x.size !== f.size || x.sha256 !== f.sha256) bad.push(`  ${f.name} (from ${x.member}): ${x.size} bytes, sha256 ${x.sha256}\n    pinned: ${f.size} bytes, sha256 ${f.sha256}`);
  }
  if (bad.length)
    throw new SoracError('SORA5515', `${described}: ${bad.length === 1 ? 'a provider file is' : 'provider files are'} not the pinned onnxruntime ${pin.ortVersion} build:\n${bad.join('\n')}`, {
      hint: `a different release or a damaged file: sorac loads only the providers of onnxruntime ${pin.ortVersion} (the release onnxruntime-node is pinned to); use ${pin.npm.spec} or ${pin.nuget.id} ${pin.nuget.version}`,
    });
}

/** `npm pack <spec>` into `dir`; returns the tarball path. npm checks the registry's integrity; we check it is the pinned one. */
async function npmPack(pin: ProviderPin, dir: string, npm: string, progress: (s: string) => void): Promise<string> {
  progress(`downloading ${pin.npm.spec} (${(pin.npm.size / 1e6).toFixed(0)} MB) with npm pack`);
  const r = await run(npm, ['pack', pin.npm.spec, '--pack-destination', dir, '--json', '--ignore-scripts', '--no-fund', '--no-audit'], dir);
  const hint = `check the network or npm's registry settings (npm config get registry), or download ${pin.npm.spec} elsewhere (\`npm pack ${pin.npm.spec}\`) and run \`sorac setup cuda --from <file>.tgz\``;
  if (r.error) throw new SoracError('SORA5512', `cannot run ${npm}: ${r.error}`, { hint: 'install npm (it comes with node), or bring the package file: sorac setup cuda --from <file>.tgz' });
  if (r.code !== 0) throw new SoracError('SORA5512', `npm pack ${pin.npm.spec} failed (exit ${r.code}): ${lastLines(r.stderr)}`, { hint });
  let info: { filename?: string; integrity?: string }[];
  try {
    info = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  } catch {
    throw new SoracError('SORA5512', `npm pack ${pin.npm.spec}: unexpected output ${JSON.stringify(r.stdout.slice(0, 200))}`, { hint });
  }
  const file = info[0]?.filename;
  if (!file) throw new SoracError('SORA5512', `npm pack ${pin.npm.spec} wrote no file`, { hint });
  if (info[0]!.integrity && info[0]!.integrity !== pin.npm.integrity)
    throw new SoracError('SORA5515', `the registry's ${pin.npm.spec} has integrity ${info[0]!.integrity}, pinned ${pin.npm.integrity}`, { hint: 'the package was republished or the registry mirror serves something else: bring the file yourself with --from' });
  const path = join(dir, basename(file.replace(/^@[^/]+\//, '').replace('/', '-')));
  if (!existsSync(path)) {
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new SoracError('SORA5512', `npm pack ${pin.npm.spec} reported ${file} but no .tgz is in ${dir}`, { hint });
    return join(dir, tgz);
  }
  return path;
}

/** Download the nupkg from nuget.org with fetch (HTTPS_PROXY is not honoured by node's fetch: use --from then). */
async function downloadNuget(pin: ProviderPin, dir: string, progress: (s: string) => void): Promise<string> {
  progress(`downloading ${pin.nuget.url}`);
  const dest = join(dir, `${pin.nuget.id}.${pin.nuget.version}.nupkg`);
  const hint = `download ${pin.nuget.url} elsewhere and run \`sorac setup cuda --from <file>.nupkg\`, or use the npm package (sorac setup cuda)`;
  let res: Response;
  try {
    res = await fetch(pin.nuget.url, { redirect: 'follow' });
  } catch (e) {
    throw new SoracError('SORA5512', `cannot reach nuget.org: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause?: Error }).cause!.message})` : ''}`, { hint });
  }
  if (!res.ok || !res.body) throw new SoracError('SORA5512', `nuget.org answered ${res.status} ${res.statusText} for ${pin.nuget.url}`, { hint });
  try {
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(dest, { flags: 'wx' }));
  } catch (e) {
    throw new SoracError('SORA5512', `download of ${pin.nuget.url} failed: ${(e as Error).message}`, { hint });
  }
  return dest;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', (e) => res({ code: null, stdout, stderr, error: e.message }));
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

function lastLines(s: string): string {
  return s.trim().split('\n').slice(-3).join(' / ') || '(no output)';
}

function cannotWrite(path: string, e: unknown, hint: string): SoracError {
  return new SoracError('SORA5516', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path, hint });
}

/** Whether `dest` already is `cached` (a symlink resolving to it, or a copy of the same size when copying). */
function inPlace(dest: string, cached: string, f: PinnedFile, copy: boolean): boolean {
  try {
    const l = lstatSync(dest);
    if (!copy) return l.isSymbolicLink() && realpathSync(dest) === realpathSync(cached);
    return l.isFile() && l.size === f.size && !l.isSymbolicLink() && sameFileHashSync(dest, f);
  } catch {
    return false;
  }
}

// copies are rare (opt-in); a size check plus the hash recorded at copy time would need a side
// file, so a copy is re-hashed synchronously here (about a second for the CUDA provider)
function sameFileHashSync(path: string, f: PinnedFile): boolean {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 22);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex') === f.sha256;
}

function linkIntoBinDir(pin: ProviderPin, entry: string, binDir: string, copy: boolean): { files: InstalledFile[]; replaced: string[] } {
  if (!existsSync(binDir)) throw new SoracError('SORA5516', `onnxruntime-node's binary directory ${binDir} does not exist`, { path: binDir, hint: 'reinstall the dependencies: npm ci' });
  const replaced: string[] = [];
  const files: InstalledFile[] = [];
  const cudaFile = pin.files.find((f) => f.name === CUDA_PROVIDER_FILE);
  try {
    // a CUDA provider of another build goes first, so the pair is never mixed
    if (cudaFile) {
      const dest = join(binDir, cudaFile.name);
      const cached = join(entry, cudaFile.name);
      if (existsOrLink(dest) && !inPlace(dest, cached, cudaFile, copy)) {
        const other = !sameSize(dest, cudaFile);
        const aside = tempSibling(dest, 'prune');
        renameSync(dest, aside);
        rmSync(aside, { force: true });
        if (other) replaced.push(dest);
      }
    }
    for (const f of pin.files) {
      const dest = join(binDir, f.name);
      const cached = join(entry, f.name);
      const mode = copy ? 'copy' : 'symlink';
      if (inPlace(dest, cached, f, copy)) {
        files.push({ name: f.name, size: f.size, sha256: f.sha256, path: dest, cached, mode, changed: false });
        continue;
      }
      if (existsOrLink(dest) && f !== cudaFile && !sameSize(dest, f)) replaced.push(dest);
      const tmp = tempSibling(dest);
      try {
        if (copy) copyFileSync(cached, tmp);
        else symlinkSync(cached, tmp);
        renameSync(tmp, dest);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      files.push({ name: f.name, size: f.size, sha256: f.sha256, path: dest, cached, mode, changed: true });
    }
  } catch (e) {
    if (e instanceof SoracError) throw e;
    throw cannotWrite(binDir, e, `make ${binDir} writable (it is inside the sorac installation's node_modules), or install sorac somewhere you own`);
  }
  return { files, replaced: [...new Set(replaced)] };
}

/** The file at `p` (through a symlink) has the pinned size: the same build, e.g. a link being turned into a copy. */
function sameSize(p: string, f: PinnedFile): boolean {
  try {
    return statSync(p).size === f.size;
  } catch {
    return false;
  }
}

function existsOrLink(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export interface ProviderFileState {
  readonly name: string;
  readonly path: string;
  readonly present: boolean;
  /** Where a symlink points (resolved), when it is one. */
  readonly linkTarget?: string;
  readonly size?: number;
  /** Computed only when asked (hash: true). */
  readonly sha256?: string;
  readonly pinned: PinnedFile;
  /** present, pinned size, and pinned hash when hashed. */
  readonly ok: boolean;
  readonly problem?: string;
}

/** The provider files in `binDir` against the pin (size always; sha256 when `hash`). */
export async function inspectProviderFiles(binDir: string, pin: ProviderPin, opts: { hash?: boolean } = {}): Promise<ProviderFileState[]> {
  const out: ProviderFileState[] = [];
  for (const f of pin.files) {
    const path = join(binDir, f.name);
    let linkTarget: string | undefined;
    try {
      if (lstatSync(path).isSymbolicLink()) linkTarget = readlinkSync(path);
    } catch {
      out.push({ name: f.name, path, present: false, pinned: f, ok: false, problem: 'not installed' });
      continue;
    }
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      out.push({ name: f.name, path, present: false, ...(linkTarget ? { linkTarget } : {}), pinned: f, ok: false, problem: `dangling symlink to ${linkTarget}` });
      continue;
    }
    const sha256 = opts.hash ? await sha256File(path) : undefined;
    const problem = size !== f.size ? `${size} bytes, the pinned build has ${f.size}` : sha256 !== undefined && sha256 !== f.sha256 ? `sha256 ${sha256}, pinned ${f.sha256}` : undefined;
    out.push({ name: f.name, path, present: true, ...(linkTarget ? { linkTarget } : {}), size, ...(sha256 ? { sha256 } : {}), pinned: f, ok: !problem, ...(problem ? { problem } : {}) });
  }
  return out;
}

