/**
 * Is an NVIDIA GPU visible to this process, and which? Read without loading CUDA: the kernel
 * module's version file, the device nodes, and `nvidia-smi` when it is on PATH.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface GpuDevice {
  readonly index: number;
  readonly name: string;
  readonly driver?: string;
  readonly memoryMiB?: number;
  /** e.g. "9.0" (Hopper); absent when nvidia-smi does not report it. */
  readonly computeCap?: string;
}

export interface GpuProbe {
  /** Kernel module version from /proc/driver/nvidia/version (e.g. "580.159.03"). */
  readonly driver?: string;
  /** /dev/nvidia0, /dev/nvidia1, ... */
  readonly deviceNodes: readonly string[];
  readonly nvidiaSmi: 'ok' | 'missing' | 'failed';
  readonly nvidiaSmiError?: string;
  readonly devices: readonly GpuDevice[];
  readonly cudaVisibleDevices?: string;
}

export interface GpuProbeOptions {
  readonly procVersionFile?: string;
  readonly devDir?: string;
  /** nvidia-smi executable, or null to skip it. */
  readonly nvidiaSmi?: string | null;
  readonly env?: NodeJS.ProcessEnv;
}

export function probeGpu(opts: GpuProbeOptions = {}): GpuProbe {
  const env = opts.env ?? process.env;
  let driver: string | undefined;
  try {
    const text = readFileSync(opts.procVersionFile ?? '/proc/driver/nvidia/version', 'utf8');
    driver = /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? /\b(\d{3}\.\d+(?:\.\d+)?)\b/.exec(text)?.[1];
  } catch {
    // no NVIDIA kernel module
  }
  let deviceNodes: string[] = [];
  try {
    const dev = opts.devDir ?? '/dev';
    deviceNodes = readdirSync(dev)
      .filter((n) => /^nvidia\d+$/.test(n))
      .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
      .map((n) => `${dev}/${n}`);
  } catch {
    // no /dev
  }
  const devices: GpuDevice[] = [];
  let nvidiaSmi: GpuProbe['nvidiaSmi'] = 'missing';
  let nvidiaSmiError: string | undefined;
  if (opts.nvidiaSmi !== null) {
    const r = spawnSync(opts.nvidiaSmi ?? 'nvidia-smi', ['--query-gpu=index,name,driver_version,memory.total,compute_cap', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000, env });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') nvidiaSmi = 'missing';
    else if (r.status !== 0) {
      nvidiaSmi = 'failed';
      nvidiaSmiError = (r.stderr || r.stdout || r.error?.message || `exit ${r.status}`).trim().split('\n')[0];
    } else {
      nvidiaSmi = 'ok';
      devices.push(...parseNvidiaSmi(r.stdout));
    }
  }
  return { ...(driver ? { driver } : {}), deviceNodes, nvidiaSmi, ...(nvidiaSmiError ? { nvidiaSmiError } : {}), devices, ...(env.CUDA_VISIBLE_DEVICES !== undefined ? { cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES } : {}) };
}

/** `nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits` lines. */
export function parseNvidiaSmi(out: string): GpuDevice[] {
  const devices: GpuDevice[] = [];
  for (const line of out.split('\n')) {
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 2 || !/^\d+$/.test(f[0]!)) continue;
    const mem = Number(f[3]);
    devices.push({ index: Number(f[0]), name: f[1]!, ...(f[2] ? { driver: f[2] } : {}), ...(Number.isFinite(mem) && f[3] ? { memoryMiB: mem } : {}), ...(f[4] && /^\d+\.\d+$/.test(f[4]) ? { computeCap: f[4] } : {}) });
  }
  return devices;
}

/** The driver's major branch ("580.159.03" -> 580). */
export function driverMajor(v: string | undefined): number | undefined {
  const m = v ? /^(\d+)/.exec(v) : null;
  return m ? Number(m[1]) : undefined;
}
