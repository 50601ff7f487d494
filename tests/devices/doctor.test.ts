/**
 * `sorac doctor` on this CPU machine and on fake machines: with nothing installed every check fails
 * with its fix; with a fake CUDA 13 pip layout the libraries are found and the exact LD_LIBRARY_PATH
 * is printed; with that LD_LIBRARY_PATH they resolve; a CUDA 12-only layout is the wrong major; the
 * GPU probe reads the driver version, device nodes and nvidia-smi.
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { doctor, smokeModel } from '../../api/devices.ts';
import { cudaProviderInstalled } from '../../runtime/execution/providers.ts';
import { smokeReasons } from '../../runtime/execution/smoke.ts';
import type { DoctorOptions } from '../../runtime/devices/doctor.ts';
import { parseNvidiaSmi } from '../../runtime/devices/gpu.ts';
import { main } from '../../cli/main.ts';
import { memoryIO } from '../../cli/io.ts';
import { fakeProviders, writeElf } from './helpers.ts';

/** A machine under `root`: nothing outside it is looked at. */
function machine(opts: { providers?: boolean; gpu?: { driver: string; smi?: string } } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'sorac-doctor-'));
  const binDir = join(root, 'ort', 'bin');
  mkdirSync(binDir, { recursive: true });
  const { cuda, shared, pin } = fakeProviders();
  if (opts.providers) {
    writeFileSync(join(binDir, 'libonnxruntime_providers_cuda.so'), cuda);
    writeFileSync(join(binDir, 'libonnxruntime_providers_shared.so'), shared);
  }
  mkdirSync(join(root, 'dev'));
  let smi: string | null = null;
  if (opts.gpu) {
    writeFileSync(join(root, 'nvidia-version'), `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  ${opts.gpu.driver}  Release Build  (dvs-builder@U22)\nGCC version:  gcc version 12.3.0\n`);
    writeFileSync(join(root, 'dev', 'nvidia0'), '');
    writeFileSync(join(root, 'dev', 'nvidiactl'), '');
    if (opts.gpu.smi !== undefined) {
      smi = join(root, 'nvidia-smi');
      writeFileSync(smi, `#!/bin/sh\necho '${opts.gpu.smi}'\n`);
      chmodSync(smi, 0o755);
    }
  }
  const venv = join(root, 'venv');
  const site = join(venv, 'lib', 'python3.12', 'site-packages');
  const options = (env: NodeJS.ProcessEnv = {}): DoctorOptions & { smoke: false } => ({
    binDir,
    ortVersion: '1.29.0',
    ortCommonVersion: '1.29.0',
    pin,
    env: { VIRTUAL_ENV: venv, ...env },
    loader: { ldLibraryPath: env.LD_LIBRARY_PATH, cache: new Map(), defaultDirs: [join(root, 'empty')], machine: 62, bits: 64 },
    discovery: { python: null, sitePatterns: [], libPatterns: [], home: join(root, 'home') },
    gpu: { procVersionFile: join(root, 'nvidia-version'), devDir: join(root, 'dev'), nvidiaSmi: smi },
    nodeVersion: '20.20.2',
    platform: 'linux',
    arch: 'x64',
    smoke: false,
  });
  return { root, binDir, site, options };
}

const status = (r: { checks: readonly { id: string; status: string }[] }) => Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
const fix = (r: { checks: readonly { id: string; fix?: string }[] }, id: string) => r.checks.find((c) => c.id === id)?.fix ?? '';

describe('sorac doctor', () => {
  it('nothing installed: every check fails with its fix, and the exit would be 1', async () => {
    const m = machine();
    const r = await doctor(m.options());
    expect(r.ok).toBe(false);
    expect(status(r)).toMatchObject({ platform: 'ok', onnxruntime: 'ok', providers: 'fail', 'cuda-libraries': 'fail', 'driver-library': 'fail', cudnn: 'fail', gpu: 'fail', tf32: 'warn' });
    expect(r.librariesFrom).toBe('pin');
    expect(fix(r, 'providers')).toMatch(/^sorac setup cuda/);
    expect(fix(r, 'cuda-libraries')).toBe("pip install nvidia-cublas nvidia-curand nvidia-cuda-runtime (NVIDIA's CUDA 13 wheels; PyTorch cu13x installs them), then run sorac doctor again for the LD_LIBRARY_PATH line, or install the CUDA 13 toolkit");
    expect(fix(r, 'cudnn')).toMatch(/^pip install nvidia-cudnn-cu13 /);
    expect(fix(r, 'driver-library')).toMatch(/install the NVIDIA driver \(R580 or newer for CUDA 13\)/);
    expect(fix(r, 'gpu')).toMatch(/--device cpu/);
    expect(fix(r, 'tf32')).toBe('export NVIDIA_TF32_OVERRIDE=0 before starting sorac for f32 results within 1e-4 of the CPU (parity runs)');
    expect(r.addToLdLibraryPath).toEqual([]);
    expect(r.fixes[0]).toMatch(/^sorac setup cuda/);
  });

  it('a CUDA 13 pip layout off the loader path: found, the exact LD_LIBRARY_PATH, and with it everything resolves', async () => {
    const m = machine({ providers: true, gpu: { driver: '580.159.03', smi: '0, NVIDIA H200, 580.159.03, 143771, 9.0' } });
    const cu13 = join(m.site, 'nvidia', 'cu13', 'lib');
    const cudnn = join(m.site, 'nvidia', 'cudnn', 'lib');
    writeElf(join(cu13, 'libcudart.so.13'), { soname: 'libcudart.so.13' });
    writeElf(join(cu13, 'libcublas.so.13'), { soname: 'libcublas.so.13', needed: ['libcublasLt.so.13'], runpath: ['$ORIGIN'] });
    writeElf(join(cu13, 'libcublasLt.so.13'), { soname: 'libcublasLt.so.13' });
    writeElf(join(cu13, 'libcurand.so.10'), { soname: 'libcurand.so.10' });
    writeElf(join(cudnn, 'libcudnn.so.9'), { soname: 'libcudnn.so.9', runpath: ['$ORIGIN'] });
    for (const p of ['graph', 'ops', 'cnn', 'adv', 'heuristic', 'engines_precompiled', 'engines_runtime_compiled']) writeElf(join(cudnn, `libcudnn_${p}.so.9`), { soname: `libcudnn_${p}.so.9` });
    const drv = join(m.root, 'driver');
    writeElf(join(drv, 'libcuda.so.1'), { soname: 'libcuda.so.1' });

    const r = await doctor(m.options({ LD_LIBRARY_PATH: drv }));
    expect(r.librariesFrom).toBe('provider');
    expect(status(r)).toMatchObject({ providers: 'ok', 'cuda-libraries': 'fail', 'driver-library': 'ok', cudnn: 'fail', gpu: 'ok' });
    expect(r.addToLdLibraryPath).toEqual([cu13, cudnn]);
    expect(fix(r, 'cuda-libraries')).toBe(`export LD_LIBRARY_PATH=${cu13}:${cudnn}:$LD_LIBRARY_PATH   (in the shell that starts sorac: the loader reads it only at process start)`);
    expect(r.libs.find((l) => l.soname === 'libcublas.so.13')!.candidates).toEqual([{ path: join(cu13, 'libcublas.so.13'), kind: 'pip-cu13' }]);
    expect(r.checks.find((c) => c.id === 'gpu')!.detail).toBe('0: NVIDIA H200, 140 GiB, compute 9.0, driver 580.159.03');

    const fixed = await doctor(m.options({ LD_LIBRARY_PATH: `${cu13}:${cudnn}:${drv}`, NVIDIA_TF32_OVERRIDE: '0' }));
    expect(fixed.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(fixed.ok).toBe(true);
    const byName = Object.fromEntries(fixed.libs.map((l) => [l.soname, l.resolved?.via]));
    expect(byName).toMatchObject({ 'libcudart.so.13': 'LD_LIBRARY_PATH', 'libcublasLt.so.13': 'LD_LIBRARY_PATH', 'libcuda.so.1': 'LD_LIBRARY_PATH', 'libcudnn.so.9': 'LD_LIBRARY_PATH', 'libcudnn_cnn.so.9': 'LD_LIBRARY_PATH' });
    expect(fixed.libs.filter((l) => l.when === 'first-conv')).toHaveLength(8);
  });

  it('a CUDA 12 wheel layout is reported as the wrong CUDA major; an old driver and an old GPU are named', async () => {
    const m = machine({ providers: true, gpu: { driver: '550.54.15', smi: '0, Tesla V100-SXM2-16GB, 550.54.15, 16384, 7.0' } });
    writeElf(join(m.site, 'nvidia', 'cuda_runtime', 'lib', 'libcudart.so.12'), { soname: 'libcudart.so.12' });
    writeElf(join(m.site, 'nvidia', 'cublas', 'lib', 'libcublas.so.12'), { soname: 'libcublas.so.12' });
    const r = await doctor(m.options());
    const d = r.checks.find((c) => c.id === 'cuda-libraries')!.detail;
    expect(d).toContain('libcudart.so.13 (only libcudart.so.12 found: the wrong CUDA major)');
    expect(d).toContain('libcublas.so.13 (only libcublas.so.12 found: the wrong CUDA major)');
    expect(status(r)).toMatchObject({ 'driver-version': 'fail', 'compute-capability': 'fail' });
    expect(fix(r, 'driver-version')).toBe('update the NVIDIA driver to R580+');
  });

  it('a provider of another build is named, with the fix', async () => {
    const m = machine();
    writeFileSync(join(m.binDir, 'libonnxruntime_providers_cuda.so'), 'a 1.30 provider, say');
    writeFileSync(join(m.binDir, 'libonnxruntime_providers_shared.so'), 'x');
    const r = await doctor(m.options());
    expect(r.checks.find((c) => c.id === 'providers')!.detail).toMatch(/libonnxruntime_providers_cuda\.so: 20 bytes, the pinned build has \d+/);
    expect(fix(r, 'providers')).toMatch(/replaces them with the pinned build/);
  });

  it('nvidia-smi lines and ORT failure logs are parsed', () => {
    expect(parseNvidiaSmi('0, NVIDIA H200, 580.159.03, 143771, 9.0\n1, NVIDIA H200, 580.159.03, 143771, 9.0\n')).toHaveLength(2);
    const log = "\x1b[1;31m2026-12-04 [E:onnxruntime:Default, provider_bridge_ort.cc:2251 TryGetProviderInfo_CUDA] ... Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory\x1b[m";
    expect(smokeReasons(log)).toEqual({ missingLibrary: 'libcublasLt.so.13' });
    expect(smokeReasons('CUDA failure 100: no CUDA-capable device is detected ; GPU=0')).toEqual({ cudaError: '100: no CUDA-capable device is detected' });
    expect(smokeReasons('cuDNN is unavailable or disabled for CUDA Execution Provider: dlopen failed for libcudnn.so: libcudnn.so: cannot open')).toMatchObject({ missingLibrary: 'libcudnn.so' });
    expect(smokeModel().onnx.length).toBeGreaterThan(100);
  });

  it('the CLI on this machine: exit 0 only when CUDA works; --json carries every check', async () => {
    const io = memoryIO();
    const code = await main(['doctor', '--json', '--no-hash'], io);
    const r = JSON.parse(io.out);
    expect(code).toBe(r.ok ? 0 : 1);
    expect(r.checks.map((c: { id: string }) => c.id)).toEqual(expect.arrayContaining(['platform', 'onnxruntime', 'providers', 'cuda-libraries', 'cudnn', 'gpu']));
    expect(r.ort.node).toBe('1.29.0');
    if (!cudaProviderInstalled()) {
      expect(r.ok).toBe(false);
      expect(r.fixes[0]).toMatch(/^sorac setup cuda/);
      const text = memoryIO();
      expect(await main(['doctor', '--no-hash', '--no-smoke'], text)).toBe(1);
      expect(text.out).toMatch(/^FAIL {2}CUDA provider/m);
      expect(text.out).toMatch(/CUDA would not work here; fixes, in order:\n {2}1\. sorac setup cuda/);
    }
  });
});
