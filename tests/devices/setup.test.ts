/**
 * `sorac setup cuda`: the installer with fake provider packages (every source kind and every error
 * path: wrong hash, truncated archive, missing file, another build in place), and once with the real
 * pinned npm package when the registry is reachable (downloaded once into a temp dir).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoracError } from '../../core/errors.ts';
import { readElfDynamic } from '../../runtime/devices/elf.ts';
import { installCudaProvider, inspectProviderFiles, pinCacheDir, requirePin } from '../../runtime/devices/install.ts';
import { PROVIDER_PINS } from '../../runtime/devices/pins.ts';
import { main } from '../../cli/main.ts';
import { memoryIO } from '../../cli/io.ts';
import { fakeProviders, makeTar, makeZip } from './helpers.ts';

const { cuda, shared, pin } = fakeProviders();
const MEMBERS = { 'package/package.json': '{}', 'package/Plugins/Linux/x64/libonnxruntime_providers_shared.so': shared, 'package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so': cuda, 'package/Plugins/Linux/x64/libonnxruntime_providers_tensorrt.so': 'x' };

function sandbox() {
  const root = mkdtempSync(join(tmpdir(), 'sorac-setup-'));
  const binDir = join(root, 'bin');
  mkdirSync(binDir);
  const file = (name: string, bytes: Uint8Array | string) => {
    const p = join(root, name);
    writeFileSync(p, bytes);
    return p;
  };
  return { root, binDir, cacheDir: join(root, 'cache'), file };
}

async function error(p: Promise<unknown>): Promise<SoracError> {
  const e = await p.then(() => undefined, (x) => x);
  expect(e).toBeInstanceOf(SoracError);
  return e as SoracError;
}

describe('setup cuda with fake providers', () => {
  it('installs from an npm-style .tgz: verified cache, symlinks; a second run changes nothing', async () => {
    const s = sandbox();
    const tgz = s.file('pkg.tgz', makeTar(MEMBERS));
    const r = await installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: tgz, pin });
    expect(r.changed).toBe(true);
    expect(r.cacheDir).toBe(pinCacheDir(s.cacheDir, pin));
    expect(readdirSync(s.binDir).sort()).toEqual(['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']);
    for (const f of r.files) {
      expect(lstatSync(f.path).isSymbolicLink()).toBe(true);
      expect(readlinkSync(f.path)).toBe(join(r.cacheDir, f.name));
    }
    expect(readFileSync(join(s.binDir, 'libonnxruntime_providers_cuda.so'))).toEqual(Buffer.from(cuda));
    expect((await inspectProviderFiles(s.binDir, pin, { hash: true })).every((f) => f.ok)).toBe(true);
    // idempotent, and offline: the default source (npm) is not even asked when the cache is verified
    const again = await installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, pin, npm: '/nonexistent/npm' });
    expect(again.changed).toBe(false);
    expect(again.source).toBe('cache');
    // after `npm ci` wiped node_modules, the cache relinks
    rmSync(s.binDir, { recursive: true });
    mkdirSync(s.binDir);
    const relinked = await installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, pin, npm: '/nonexistent/npm' });
    expect(relinked.changed).toBe(true);
    expect(relinked.source).toBe('cache');
  });

  it('installs from a .nupkg (zip), a folder, and as copies; replaces a provider of another build', async () => {
    const s = sandbox();
    const nupkg = s.file('p.nupkg', makeZip({ '[Content_Types].xml': '<x/>', 'runtimes/linux-x64/native/libonnxruntime_providers_cuda.so': cuda, 'runtimes/linux-x64/native/libonnxruntime_providers_shared.so': shared }));
    writeFileSync(join(s.binDir, 'libonnxruntime_providers_cuda.so'), 'an older build');
    const r = await installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: nupkg, pin, copy: true });
    expect(r.replaced).toEqual([join(s.binDir, 'libonnxruntime_providers_cuda.so')]);
    expect(lstatSync(join(s.binDir, 'libonnxruntime_providers_cuda.so')).isFile()).toBe(true);
    expect(readFileSync(join(s.binDir, 'libonnxruntime_providers_cuda.so'))).toEqual(Buffer.from(cuda));
    expect((await installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, pin, copy: true })).changed).toBe(false);

    const t = sandbox();
    mkdirSync(join(t.root, 'dl', 'lib'), { recursive: true });
    writeFileSync(join(t.root, 'dl', 'lib', 'libonnxruntime_providers_cuda.so'), cuda);
    writeFileSync(join(t.root, 'dl', 'libonnxruntime_providers_shared.so'), shared);
    const d = await installCudaProvider({ binDir: t.binDir, ortVersion: '1.29.0', cacheDir: t.cacheDir, from: join(t.root, 'dl'), pin });
    expect(d.files.map((f) => f.name)).toEqual(['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']);
  });

  it('wrong hash (another build), truncated archive, missing file: clear errors and nothing installed', async () => {
    const s = sandbox();
    const other = new Uint8Array(cuda);
    other[other.length - 1] = 7;
    const wrong = s.file('wrong.tgz', makeTar({ ...MEMBERS, 'package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so': other }));
    let e = await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: wrong, pin }));
    expect(e.code).toBe('SORA5515');
    expect(e.message).toContain(pin.files[1]!.sha256);
    expect(e.message).toMatch(/sha256 [0-9a-f]{64}\n {4}pinned:/);
    expect(e.hint).toMatch(/onnxruntime 1\.29\.0/);

    const full = makeTar(MEMBERS);
    const cut = s.file('cut.tgz', full.slice(0, Math.floor(full.length * 0.6)));
    e = await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: cut, pin }));
    expect(e.code).toBe('SORA5513');
    expect(e.message).toMatch(/truncated|corrupt/);

    const uncompressed = makeTar(MEMBERS, { gzip: false });
    const cutTar = s.file('cut.tar', uncompressed.slice(0, 1024 + 700));
    expect((await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: cutTar, pin }))).code).toBe('SORA5513');
    expect((await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: s.file('junk.tgz', 'not a tarball at all, just text'.repeat(30)), pin }))).code).toBe('SORA5513');
    const zip = makeZip({ 'runtimes/linux-x64/native/libonnxruntime_providers_cuda.so': cuda, 'runtimes/linux-x64/native/libonnxruntime_providers_shared.so': shared });
    expect((await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: s.file('cut.nupkg', zip.slice(0, zip.length - 30)), pin }))).code).toBe('SORA5513');

    const { 'package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so': _, ...noCuda } = MEMBERS;
    e = await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: s.file('cpu.tgz', makeTar(noCuda)), pin }));
    expect(e.code).toBe('SORA5514');
    expect(e.message).toMatch(/does not contain libonnxruntime_providers_cuda\.so$/);

    e = await error(installCudaProvider({ binDir: s.binDir, ortVersion: '1.29.0', cacheDir: s.cacheDir, from: join(s.root, 'nope.tgz'), pin }));
    expect(e.code).toBe('SORA5512');

    // nothing was installed or cached, and no temp directory is left behind
    expect(readdirSync(s.binDir)).toEqual([]);
    expect(existsSync(pinCacheDir(s.cacheDir, pin))).toBe(false);
    expect(readdirSync(join(s.cacheDir, 'ort-cuda'))).toEqual([]);
  });

  it('refuses other platforms and onnxruntime-node versions without a pin (SORA5511), and a missing binary dir (SORA5516)', async () => {
    expect(() => requirePin('1.30.0', 'linux', 'x64')).toThrow(/sorac's CUDA provider pins are for onnxruntime-node 1\.29\.0/);
    try {
      requirePin('1.29.0', 'darwin', 'arm64');
      expect.unreachable();
    } catch (e) {
      expect((e as SoracError).code).toBe('SORA5511');
    }
    expect(requirePin('1.29.0', 'linux', 'x64')).toBe(PROVIDER_PINS[0]);
    const s = sandbox();
    const e = await error(installCudaProvider({ binDir: join(s.root, 'no-such-dir'), ortVersion: '1.29.0', cacheDir: s.cacheDir, from: s.file('pkg.tgz', makeTar(MEMBERS)), pin }));
    expect(e.code).toBe('SORA5516');
  });

  it('sorac setup: unknown component is a usage error; a bad --from is SORA5512 in --json', async () => {
    let io = memoryIO();
    expect(await main(['setup', 'tensorrt'], io)).toBe(2);
    expect(io.err).toMatch(/the only component is cuda/);
    io = memoryIO();
    expect(await main(['setup', 'cuda', '--from', '/nonexistent/x.tgz', '--json', '--cache-dir', mkdtempSync(join(tmpdir(), 'sorac-setup-'))], io)).toBe(1);
    expect(JSON.parse(io.out).error.code).toBe('SORA5512');
  });
});

// The real package: downloaded once with `npm pack` (179 MB; the registry must be reachable), verified
// against the pins, installed into a temp directory (never into this checkout's node_modules). Opt in with
// SORAC_TEST_NETWORK=1: a test run must not depend on, or spend minutes on, the network.
const REAL = PROVIDER_PINS[0]!;
let reachable: string | true = 'not checked';
describe('setup cuda with the real pinned npm package', () => {
  let root: string;
  beforeAll(() => {
    if (process.env.SORAC_TEST_NETWORK !== '1') {
      reachable = 'downloads 179 MB from the npm registry: set SORAC_TEST_NETWORK=1 to run it';
      root = mkdtempSync(join(tmpdir(), 'sorac-setup-real-'));
      return;
    }
    const r = spawnSync('npm', ['view', REAL.npm.spec, 'dist.integrity'], { encoding: 'utf8', timeout: 30_000 });
    reachable = r.status === 0 && r.stdout.trim() === REAL.npm.integrity ? true : `npm registry not reachable or different package (${(r.stderr || r.stdout || String(r.error)).trim().split('\n')[0]})`;
    root = mkdtempSync(join(tmpdir(), 'sorac-setup-real-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('downloads, verifies every pinned hash, links, and the provider needs exactly the CUDA 13 libraries', async (ctx) => {
    if (reachable !== true) ctx.skip(reachable);
    const binDir = join(root, 'bin');
    mkdirSync(binDir);
    const lines: string[] = [];
    const r = await installCudaProvider({ binDir, ortVersion: '1.29.0', cacheDir: join(root, 'cache'), onProgress: (l) => lines.push(l) });
    expect(r.source).toBe(`npm package ${REAL.npm.spec}`);
    expect(lines[0]).toMatch(/npm pack/);
    expect((await inspectProviderFiles(binDir, REAL, { hash: true })).map((f) => [f.name, f.ok])).toEqual(REAL.files.map((f) => [f.name, true]));
    const elf = readElfDynamic(join(binDir, 'libonnxruntime_providers_cuda.so'));
    expect(elf.needed.filter((n) => REAL.cudaNeeded.includes(n))).toEqual(REAL.cudaNeeded);
    expect(elf.runpath).toEqual([]);
    const again = await installCudaProvider({ binDir, ortVersion: '1.29.0', cacheDir: join(root, 'cache'), npm: '/nonexistent/npm' });
    expect(again.changed).toBe(false);
  }, 300_000);
});
