/**
 * `sorac doctor`: would CUDA work here, and if not, exactly what to do. Everything is read, nothing
 * is loaded: the node/platform/glibc, onnxruntime-node's version against the pin, the provider
 * files (size and sha256), the CUDA libraries the provider needs (its DT_NEEDED entries, read from
 * the file) resolved as ld.so would, the places they could be found otherwise (and the
 * LD_LIBRARY_PATH that would make them resolve), and the GPU. The ground truth, a real CUDA session
 * in a child process, is added by the API (runtime/execution/smoke.ts); this module gives the
 * static picture and the fixes.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { candidateDirs, type CandidateKind, type DiscoveryOptions, otherMajors } from './discover.ts';
import { tryReadElfDynamic } from './elf.ts';
import { driverMajor, type GpuProbe, probeGpu, type GpuProbeOptions } from './gpu.ts';
import { inspectProviderFiles, type ProviderFileState } from './install.ts';
import { isLoadable, type LoaderEnv, type ResolvedLibrary, resolveLibrary, systemLoaderEnv } from './loader.ts';
import { CUDA_PROVIDER_FILE, PINNED_ORT_VERSION, pinFor, type ProviderPin } from './pins.ts';

/** The C runtime every binary needs; never a CUDA problem. */
const SYSTEM_LIBS = /^(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux-x86-64|ld-linux-aarch64|libutil|libz)\.so/;

/** Sub-libraries libcudnn.so.9 dlopens from its own folder (cuDNN 9). */
const CUDNN9_PARTS = ['libcudnn_graph.so.9', 'libcudnn_ops.so.9', 'libcudnn_cnn.so.9', 'libcudnn_adv.so.9', 'libcudnn_heuristic.so.9', 'libcudnn_engines_precompiled.so.9', 'libcudnn_engines_runtime_compiled.so.9'];

export type CheckStatus = 'ok' | 'fail' | 'warn' | 'skip';

export interface DoctorCheck {
  readonly id: string;
  readonly status: CheckStatus;
  readonly title: string;
  readonly detail: string;
  /** The exact command or step that fixes it. */
  readonly fix?: string;
}

export interface CudaLibraryState {
  readonly soname: string;
  readonly neededBy: string;
  /** 'load': needed to create any CUDA session; 'first-conv': dlopened at the first convolution; 'dependency': needed by another CUDA library. */
  readonly when: 'load' | 'first-conv' | 'dependency';
  readonly resolved?: { readonly path: string; readonly via: ResolvedLibrary['via'] };
  /** Where it exists although the loader would not find it. */
  readonly candidates: readonly { readonly path: string; readonly kind: CandidateKind }[];
  /** The same library with another major version (e.g. libcudart.so.12 from CUDA 12 wheels). */
  readonly otherMajors: readonly string[];
}

export interface StaticDoctorReport {
  readonly node: { readonly version: string; readonly platform: string; readonly arch: string; readonly glibc?: string };
  readonly ort: { readonly node?: string; readonly common?: string; readonly pinned: string; readonly binDir: string };
  readonly providers: readonly ProviderFileState[];
  /** Where the list of libraries came from: the installed provider's DT_NEEDED, or the pin (provider not installed). */
  readonly librariesFrom: 'provider' | 'pin';
  readonly libs: readonly CudaLibraryState[];
  /** Folders to prepend to LD_LIBRARY_PATH so that every found library resolves (empty: nothing to add). */
  readonly addToLdLibraryPath: readonly string[];
  readonly gpu: GpuProbe;
  readonly env: { readonly LD_LIBRARY_PATH?: string; readonly CUDA_VISIBLE_DEVICES?: string; readonly NVIDIA_TF32_OVERRIDE?: string };
  readonly checks: readonly DoctorCheck[];
}

export interface DoctorOptions {
  readonly binDir: string;
  readonly ortVersion?: string;
  readonly ortCommonVersion?: string;
  /** The environment the CUDA session would start with (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  readonly loader?: LoaderEnv;
  readonly discovery?: DiscoveryOptions;
  readonly gpu?: GpuProbeOptions;
  /** Hash the provider files against the pin (about a second for 230 MB). Default true. */
  readonly hash?: boolean;
  readonly pin?: ProviderPin;
  readonly nodeVersion?: string;
  readonly platform?: string;
  readonly arch?: string;
}

function glibcVersion(): string | undefined {
  try {
    const r = process.report?.getReport() as unknown as { header?: { glibcVersionRuntime?: string } };
    return r?.header?.glibcVersionRuntime;
  } catch {
    return undefined;
  }
}

/** onnxruntime-node's and onnxruntime-common's versions, read from their package.json next to `binDir`. */
export function ortVersions(binDir: string): { node?: string; common?: string } {
  const pkg = join(binDir, '..', '..', '..', '..');
  const read = (p: string) => {
    try {
      return (JSON.parse(readFileSync(p, 'utf8')) as { version?: string }).version;
    } catch {
      return undefined;
    }
  };
  const node = read(join(pkg, 'package.json'));
  const common = read(join(pkg, 'node_modules', 'onnxruntime-common', 'package.json')) ?? read(join(pkg, '..', 'onnxruntime-common', 'package.json'));
  return { ...(node ? { node } : {}), ...(common ? { common } : {}) };
}

const cmp = (a: string, b: string) => {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

/** The CUDA libraries the provider at `binDir` needs, resolved with `loader` (quick: no hashing, no scanning). */
export function unresolvedCudaLibraries(binDir: string, loader: LoaderEnv = systemLoaderEnv()): string[] {
  const provider = join(binDir, CUDA_PROVIDER_FILE);
  const elf = tryReadElfDynamic(provider);
  if (!elf) return [];
  return elf.needed.filter((n) => !SYSTEM_LIBS.test(n) && !resolveLibrary(n, loader, { path: provider, runpath: elf.runpath }));
}

export async function diagnoseStatic(opts: DoctorOptions): Promise<StaticDoctorReport> {
  const env = opts.env ?? process.env;
  const versions = opts.ortVersion || opts.ortCommonVersion ? { node: opts.ortVersion, common: opts.ortCommonVersion } : ortVersions(opts.binDir);
  const pin = opts.pin ?? pinFor(versions.node ?? '') ?? pinFor(PINNED_ORT_VERSION)!;
  const platform = opts.platform ?? process.platform;
  const arch = opts.arch ?? process.arch;
  const nodeVersion = opts.nodeVersion ?? process.versions.node;
  const glibc = glibcVersion();
  const loader = opts.loader ?? systemLoaderEnv(env.LD_LIBRARY_PATH);
  const checks: DoctorCheck[] = [];

  // platform and node
  const platformOk = platform === 'linux' && arch === 'x64';
  checks.push({ id: 'platform', status: platformOk ? 'ok' : 'fail', title: 'platform', detail: `${platform}-${arch}${glibc ? `, glibc ${glibc}` : ''}, node ${nodeVersion}`, ...(platformOk ? {} : { fix: 'the CUDA provider exists for linux-x64 only: use --device cpu here' }) });
  if (platformOk && glibc && cmp(glibc, '2.28') < 0) checks.push({ id: 'glibc', status: 'fail', title: 'glibc', detail: `glibc ${glibc}; onnxruntime 1.29 needs 2.28 or newer`, fix: 'use a newer distribution (e.g. Debian 10+, Ubuntu 20.04+, RHEL 8+)' });
  if (cmp(nodeVersion, '20.19') < 0) checks.push({ id: 'node', status: 'fail', title: 'node', detail: `node ${nodeVersion}; sorac needs 20.19 or newer`, fix: 'install node 20.19+ (e.g. from nodejs.org)' });

  // onnxruntime-node
  const ortOk = versions.node === pin.ortVersion && (!versions.common || versions.common === pin.ortVersion);
  checks.push({
    id: 'onnxruntime',
    status: ortOk ? 'ok' : 'fail',
    title: 'onnxruntime-node',
    detail: `onnxruntime-node ${versions.node ?? 'not found'}, onnxruntime-common ${versions.common ?? 'not found'}; the CUDA providers are pinned for ${pin.ortVersion}`,
    ...(ortOk ? {} : { fix: 'run `npm ci` in the sorac directory (package.json pins onnxruntime-node to ' + pin.ortVersion + ')' }),
  });

  // provider files
  const providers = await inspectProviderFiles(opts.binDir, pin, { hash: opts.hash ?? true });
  const provOk = providers.every((p) => p.ok);
  const anyPresent = providers.some((p) => p.present);
  checks.push({
    id: 'providers',
    status: provOk ? 'ok' : 'fail',
    title: 'CUDA provider',
    detail: provOk
      ? `${providers.map((p) => `${p.name}${p.linkTarget ? ` -> ${p.linkTarget}` : ''}`).join(', ')} (size${opts.hash === false ? '' : ' and sha256'} match onnxruntime ${pin.ortVersion})`
      : providers.filter((p) => !p.ok).map((p) => `${p.name}: ${p.problem}`).join('; ') + ` (in ${opts.binDir})`,
    ...(provOk ? {} : { fix: anyPresent ? 'sorac setup cuda   (replaces them with the pinned build)' : 'sorac setup cuda   (or, offline: sorac setup cuda --from <com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz>)' }),
  });

  // the libraries: from the provider's DT_NEEDED when it is there, else from the pin
  const providerPath = join(opts.binDir, CUDA_PROVIDER_FILE);
  const elf = providers.find((p) => p.name === CUDA_PROVIDER_FILE)?.present ? tryReadElfDynamic(providerPath) : undefined;
  const librariesFrom: StaticDoctorReport['librariesFrom'] = elf ? 'provider' : 'pin';
  const needed = elf ? elf.needed.filter((n) => !SYSTEM_LIBS.test(n)) : [...pin.cudaNeeded];
  const dirs = candidateDirs({ env, ...opts.discovery });
  const libs: CudaLibraryState[] = [];
  const requester = { path: providerPath, runpath: elf?.runpath ?? [] };
  const stateOf = (soname: string, neededBy: string, when: CudaLibraryState['when'], req?: { path: string; runpath: readonly string[] }): CudaLibraryState => {
    const r = resolveLibrary(soname, loader, req);
    // only where the loader fails: each real file once (toolkits reach the same file through several symlinked folders)
    const seen = new Set<string>();
    const candidates = r
      ? []
      : dirs
          .map((d) => ({ path: join(d.dir, soname), kind: d.kind }))
          .filter((c) => {
            if (!isLoadable(c.path, loader)) return false;
            const real = realpathSync(c.path);
            if (seen.has(real)) return false;
            seen.add(real);
            return true;
          });
    const others = r ? [] : [...new Set(dirs.flatMap((d) => otherMajors(d.dir, soname)))];
    return { soname, neededBy, when, ...(r ? { resolved: { path: r.path, via: r.via } } : {}), candidates, otherMajors: others };
  };
  for (const n of needed) libs.push(stateOf(n, CUDA_PROVIDER_FILE, 'load', requester));
  for (const l of pin.lazy) libs.push(stateOf(l.soname, CUDA_PROVIDER_FILE, 'first-conv', requester));
  // dependencies of the CUDA libraries themselves (libcublas -> libcublasLt, cuDNN's sub-libraries)
  for (let i = 0; i < libs.length; i++) {
    const l = libs[i]!;
    const at = l.resolved?.path ?? l.candidates[0]?.path;
    if (!at) continue;
    const e = tryReadElfDynamic(at);
    const deps = (e?.needed ?? []).filter((n) => !SYSTEM_LIBS.test(n));
    if (/^libcudnn\.so\.9$/.test(l.soname)) deps.push(...CUDNN9_PARTS);
    for (const d of deps) {
      if (libs.some((x) => x.soname === d)) continue;
      // cuDNN's parts are dlopened by libcudnn.so.9, which finds them in its own folder (RUNPATH $ORIGIN in the wheels) or on the loader path
      const req = { path: at, runpath: [...(e?.runpath ?? []), ...(e?.rpath ?? []), ...(CUDNN9_PARTS.includes(d) ? ['$ORIGIN'] : [])] };
      libs.push(stateOf(d, l.soname, l.when === 'first-conv' ? 'first-conv' : 'dependency', req));
    }
  }

  // the LD_LIBRARY_PATH that makes every missing library resolve
  const add: string[] = [];
  for (const l of libs) if (!l.resolved && l.candidates.length) {
    const d = dirname(l.candidates[0]!.path);
    if (!add.includes(d)) add.push(d);
  }
  const ldLine = add.length ? `export LD_LIBRARY_PATH=${add.join(':')}${env.LD_LIBRARY_PATH ? ':$LD_LIBRARY_PATH' : ''}` : undefined;

  const missingAt = (when: CudaLibraryState['when'][]) => libs.filter((l) => !l.resolved && when.includes(l.when));
  const describeMissing = (ls: CudaLibraryState[]) =>
    ls.map((l) => `${l.soname}${l.candidates.length ? ` (found in ${dirname(l.candidates[0]!.path)}, not on the loader path)` : l.otherMajors.length ? ` (only ${l.otherMajors.map((p) => p.split('/').pop()).join(', ')} found: the wrong CUDA major)` : ''}`).join(', ');
  const loadMissing = missingAt(['load', 'dependency']).filter((l) => l.soname !== 'libcuda.so.1');
  const driverLib = libs.find((l) => l.soname === 'libcuda.so.1');
  const convMissing = missingAt(['first-conv']);
  const PIP: Record<string, string> = { libcudart: 'nvidia-cuda-runtime', libcublas: 'nvidia-cublas', libcublasLt: 'nvidia-cublas', libcurand: 'nvidia-curand', libcufft: 'nvidia-cufft', libnvJitLink: 'nvidia-nvjitlink', libnvrtc: 'nvidia-cuda-nvrtc', libcudnn: `nvidia-cudnn-cu${pin.cudaMajor}` };
  const pipFor = (ls: CudaLibraryState[]) => [...new Set(ls.map((l) => PIP[l.soname.replace(/\.so.*$/, '').replace(/^(libcudnn)_.*$/, '$1')]).filter(Boolean))].join(' ');
  const pipHint = (pkgs: string) => `pip install ${pkgs} (NVIDIA's CUDA ${pin.cudaMajor} wheels; PyTorch cu13x installs them), then run sorac doctor again for the LD_LIBRARY_PATH line`;
  checks.push({
    id: 'cuda-libraries',
    status: loadMissing.length ? 'fail' : 'ok',
    title: `CUDA ${pin.cudaMajor} runtime and cuBLAS`,
    detail: loadMissing.length
      ? `the dynamic loader will not find ${describeMissing(loadMissing)}`
      : libs.filter((l) => (l.when === 'load' || l.when === 'dependency') && l.soname !== 'libcuda.so.1').map((l) => `${l.soname} -> ${l.resolved!.path} (${l.resolved!.via})`).join('; ') || 'none needed',
    ...(loadMissing.length
      ? { fix: loadMissing.every((l) => l.candidates.length) ? `${ldLine}   (in the shell that starts sorac: the loader reads it only at process start)` : loadMissing.some((l) => l.candidates.length) ? `${ldLine ?? ''}; and for the rest: ${pipHint(pipFor(loadMissing.filter((l) => !l.candidates.length)))}` : `${pipHint(pipFor(loadMissing))}, or install the CUDA ${pin.cudaMajor} toolkit` }
      : {}),
  });
  if (driverLib) {
    checks.push({
      id: 'driver-library',
      status: driverLib.resolved ? 'ok' : 'fail',
      title: 'NVIDIA driver library (libcuda.so.1)',
      detail: driverLib.resolved ? `${driverLib.resolved.path} (${driverLib.resolved.via})` : driverLib.candidates.length ? `found in ${dirname(driverLib.candidates[0]!.path)}, not on the loader path` : 'not found: no NVIDIA driver is installed or visible here',
      ...(driverLib.resolved ? {} : { fix: driverLib.candidates.length ? `${ldLine}` : `install the NVIDIA driver (R${pin.minDriver} or newer for CUDA ${pin.cudaMajor}); in a container, start it with the NVIDIA container toolkit (docker run --gpus all ...)` }),
    });
  }
  checks.push({
    id: 'cudnn',
    status: convMissing.length ? 'fail' : 'ok',
    title: `cuDNN ${pin.cudnnMajor} (convolutions)`,
    detail: convMissing.length
      ? `the dynamic loader will not find ${describeMissing(convMissing)}: sessions are created, but the first convolution fails (every DiT patch embedder and VAE; the T5 encoder runs without cuDNN)`
      : libs.filter((l) => l.when === 'first-conv').map((l) => `${l.soname} -> ${l.resolved!.path}`).slice(0, 1).join('') + (libs.filter((l) => l.when === 'first-conv').length > 1 ? ` (+${libs.filter((l) => l.when === 'first-conv').length - 1} sub-libraries)` : ''),
    ...(convMissing.length ? { fix: convMissing.every((l) => l.candidates.length) ? `${ldLine}` : pipHint(pipFor(convMissing)) } : {}),
  });

  // the GPU
  const gpu = probeGpu({ env, ...opts.gpu });
  const visible = gpu.devices.length > 0 || (gpu.driver !== undefined && gpu.deviceNodes.length > 0);
  checks.push({
    id: 'gpu',
    status: visible ? 'ok' : 'fail',
    title: 'GPU',
    detail: visible
      ? gpu.devices.length
        ? gpu.devices.map((d) => `${d.index}: ${d.name}${d.memoryMiB ? `, ${(d.memoryMiB / 1024).toFixed(0)} GiB` : ''}${d.computeCap ? `, compute ${d.computeCap}` : ''}`).join('; ') + `, driver ${gpu.driver ?? gpu.devices[0]?.driver ?? '?'}`
        : `${gpu.deviceNodes.join(', ')}, driver ${gpu.driver}`
      : `no NVIDIA GPU visible (${gpu.driver ? `driver ${gpu.driver} loaded but no /dev/nvidia* device nodes` : 'no NVIDIA kernel module: /proc/driver/nvidia/version is missing'}${gpu.nvidiaSmi === 'failed' ? `; nvidia-smi: ${gpu.nvidiaSmiError}` : ''})`,
    ...(visible ? {} : { fix: gpu.driver ? 'in a container, start it with the NVIDIA container toolkit (docker run --gpus all ...); check CUDA_VISIBLE_DEVICES' : `run on a machine with an NVIDIA GPU and driver R${pin.minDriver}+, or use --device cpu` }),
  });
  const major = driverMajor(gpu.driver ?? gpu.devices[0]?.driver);
  if (visible && major !== undefined && major < pin.minDriver)
    checks.push({ id: 'driver-version', status: 'fail', title: 'driver version', detail: `driver ${gpu.driver ?? gpu.devices[0]?.driver}; CUDA ${pin.cudaMajor} needs R${pin.minDriver} or newer`, fix: `update the NVIDIA driver to R${pin.minDriver}+` });
  const oldGpu = gpu.devices.filter((d) => d.computeCap && Number(d.computeCap) < 7.5);
  if (oldGpu.length) checks.push({ id: 'compute-capability', status: 'fail', title: 'compute capability', detail: `${oldGpu.map((d) => `${d.name} (${d.computeCap})`).join(', ')}: CUDA ${pin.cudaMajor} supports compute capability 7.5 (Turing) and newer`, fix: 'use a newer GPU, or --device cpu' });
  const noBf16 = gpu.devices.filter((d) => d.computeCap && Number(d.computeCap) >= 7.5 && Number(d.computeCap) < 8);
  if (noBf16.length) checks.push({ id: 'bf16', status: 'warn', title: 'bf16', detail: `${noBf16.map((d) => d.name).join(', ')}: no native bf16 (compute capability < 8.0); compile with compute f16 or f32`, fix: 'use `--dtype compute=f16` (or f32) for this GPU' });

  // TF32
  if (env.NVIDIA_TF32_OVERRIDE !== '0')
    checks.push({ id: 'tf32', status: 'warn', title: 'TF32', detail: "onnxruntime's CUDA provider uses TF32 for f32 matmuls and convolutions: f32 results differ from the CPU by ~1e-3", fix: 'export NVIDIA_TF32_OVERRIDE=0 before starting sorac for f32 results within 1e-4 of the CPU (parity runs)' });

  return {
    node: { version: nodeVersion, platform, arch, ...(glibc ? { glibc } : {}) },
    ort: { ...(versions.node ? { node: versions.node } : {}), ...(versions.common ? { common: versions.common } : {}), pinned: pin.ortVersion, binDir: opts.binDir },
    providers,
    librariesFrom,
    libs,
    addToLdLibraryPath: add,
    gpu,
    env: {
      ...(env.LD_LIBRARY_PATH !== undefined ? { LD_LIBRARY_PATH: env.LD_LIBRARY_PATH } : {}),
      ...(env.CUDA_VISIBLE_DEVICES !== undefined ? { CUDA_VISIBLE_DEVICES: env.CUDA_VISIBLE_DEVICES } : {}),
      ...(env.NVIDIA_TF32_OVERRIDE !== undefined ? { NVIDIA_TF32_OVERRIDE: env.NVIDIA_TF32_OVERRIDE } : {}),
    },
    checks,
  };
}

