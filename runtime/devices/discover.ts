/**
 * Where CUDA libraries may be on a machine even when the dynamic loader does not find them:
 * CUDA toolkits, the driver's container mount, conda, and the `nvidia/*` folders of Python
 * environments that have NVIDIA's pip wheels (PyTorch installs them). The answer becomes the exact
 * `LD_LIBRARY_PATH` line `sorac doctor` prints.
 *
 * Wheel layouts (the provider needs CUDA 13):
 *   CUDA 13: site-packages/nvidia/cu13/lib/{libcudart.so.13, libcublas.so.13, libcublasLt.so.13,
 *            libcurand.so.10, ...} and site-packages/nvidia/cudnn/lib/libcudnn*.so.9 (nvidia-cudnn-cu13)
 *   CUDA 12: site-packages/nvidia/{cuda_runtime,cublas,curand,cufft,nvjitlink,cuda_nvrtc,cudnn}/lib
 *            with .so.12 sonames: found, but the wrong CUDA major for these providers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type CandidateKind = 'pip-cu13' | 'pip-cu12' | 'pip-cudnn' | 'toolkit' | 'driver' | 'conda' | 'other';

export interface CandidateDir {
  readonly dir: string;
  readonly kind: CandidateKind;
}

export interface DiscoveryOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Python executables asked for their site-packages (default python3, python); null: do not ask. */
  readonly python?: readonly string[] | null;
  /** Glob patterns (one '*' allowed per path segment) of site-packages folders searched besides the env-based ones; default: the usual system places. */
  readonly sitePatterns?: readonly string[];
  /** Glob patterns of toolkit/driver library folders; default: the usual system places. */
  readonly libPatterns?: readonly { readonly pattern: string; readonly kind: CandidateKind }[];
  readonly home?: string;
}

const SYSTEM_SITE_PATTERNS = [
  '/usr/local/lib/python3*/dist-packages',
  '/usr/local/lib/python3*/site-packages',
  '/usr/lib/python3/dist-packages',
  '/usr/lib/python3*/site-packages',
  '/opt/*/.venv/lib/python3*/site-packages',
  '/opt/*/venv/lib/python3*/site-packages',
  '/opt/*/lib/python3*/site-packages',
  '/opt/conda/envs/*/lib/python3*/site-packages',
];

const SYSTEM_LIB_PATTERNS: readonly { pattern: string; kind: CandidateKind }[] = [
  { pattern: '/usr/local/cuda/lib64', kind: 'toolkit' },
  { pattern: '/usr/local/cuda-*/lib64', kind: 'toolkit' },
  { pattern: '/usr/local/cuda*/targets/x86_64-linux/lib', kind: 'toolkit' },
  { pattern: '/opt/cuda/lib64', kind: 'toolkit' },
  { pattern: '/usr/local/nvidia/lib64', kind: 'driver' },
  { pattern: '/usr/local/nvidia/lib', kind: 'driver' },
  { pattern: '/usr/lib/wsl/lib', kind: 'driver' },
];

/** Expand a pattern whose segments may contain '*' (no '**'), in sorted order; only existing directories. */
export function expandDirPattern(pattern: string): string[] {
  const segs = pattern.split('/');
  let cur = [segs[0] === '' ? '/' : segs[0]!];
  for (const seg of segs.slice(1)) {
    if (!seg) continue;
    const next: string[] = [];
    for (const base of cur) {
      if (!seg.includes('*')) {
        const p = join(base, seg);
        if (existsSync(p)) next.push(p);
        continue;
      }
      const re = new RegExp(`^${seg.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
      let names: string[] = [];
      try {
        names = readdirSync(base).filter((n) => re.test(n)).sort();
      } catch {
        // unreadable
      }
      for (const n of names) next.push(join(base, n));
    }
    cur = next;
  }
  return cur.filter((p) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  });
}

/** The site-packages folders of the Python environments on this machine. */
export function sitePackages(opts: DiscoveryOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const home = opts.home ?? homedir();
  const out: string[] = [];
  for (const exe of opts.python === undefined ? ['python3', 'python'] : (opts.python ?? [])) {
    const r = spawnSync(exe, ['-c', 'import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)'], { encoding: 'utf8', timeout: 5000, env });
    if (r.status === 0) out.push(...r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  }
  const patterns = [
    ...(env.VIRTUAL_ENV ? [`${env.VIRTUAL_ENV}/lib/python3*/site-packages`] : []),
    ...(env.CONDA_PREFIX ? [`${env.CONDA_PREFIX}/lib/python3*/site-packages`] : []),
    `${home}/.local/lib/python3*/site-packages`,
    ...(opts.sitePatterns ?? SYSTEM_SITE_PATTERNS),
  ];
  for (const p of patterns) out.push(...expandDirPattern(p));
  return [...new Set(out.filter((d) => existsSync(d)))];
}

/** Every folder that may hold CUDA libraries, in the order a fix should prefer them. */
export function candidateDirs(opts: DiscoveryOptions = {}): CandidateDir[] {
  const env = opts.env ?? process.env;
  const out: CandidateDir[] = [];
  const add = (dir: string, kind: CandidateKind) => {
    if (!out.some((c) => c.dir === dir) && existsSync(dir)) out.push({ dir, kind });
  };
  for (const site of sitePackages(opts)) {
    add(join(site, 'nvidia', 'cu13', 'lib'), 'pip-cu13');
    add(join(site, 'nvidia', 'cudnn', 'lib'), 'pip-cudnn');
    for (const p of ['cuda_runtime', 'cublas', 'curand', 'cufft', 'nvjitlink', 'cuda_nvrtc']) add(join(site, 'nvidia', p, 'lib'), 'pip-cu12');
  }
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDA_ROOT']) {
    if (!env[v]) continue;
    add(join(env[v]!, 'lib64'), 'toolkit');
    add(join(env[v]!, 'targets', 'x86_64-linux', 'lib'), 'toolkit');
  }
  for (const { pattern, kind } of opts.libPatterns ?? SYSTEM_LIB_PATTERNS) for (const d of expandDirPattern(pattern)) add(d, kind);
  if (env.CONDA_PREFIX) add(join(env.CONDA_PREFIX, 'lib'), 'conda');
  return out;
}

/** Files in `dir` that are the same library with another major version (libcudart.so.12 for libcudart.so.13). */
export function otherMajors(dir: string, soname: string): string[] {
  const m = /^(.*\.so)\.(\d+)$/.exec(soname);
  if (!m) return [];
  try {
    return readdirSync(dir)
      .filter((n) => n.startsWith(`${m[1]}.`) && /^\d+$/.test(n.slice(m[1]!.length + 1)) && n !== soname)
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}
