/**
 * Devices as API calls: `setupCuda` (sorac setup cuda) installs onnxruntime's pinned CUDA provider
 * next to onnxruntime-node and verifies the result; `doctor` (sorac doctor) says whether CUDA
 * would work here and gives each failure its exact fix, with a real CUDA session in a child
 * process as the ground truth.
 *
 * The runtime does the work (runtime/devices: reading, resolving, installing; runtime/execution:
 * the child-process session); this module composes them with the smoke model, which the compiler
 * emits (a 3x3 convolution for cuDNN and a matmul for cuBLAS).
 */
import { emitOnnx } from '../compiler/emit/onnx.ts';
import type { IrConstant, IrGraph, IrValue } from '../core/ir.ts';
import { type DoctorCheck, diagnoseStatic, type DoctorOptions, ortVersions, type StaticDoctorReport } from '../runtime/devices/doctor.ts';
import { installCudaProvider, type InstallCudaOptions, type InstallCudaResult } from '../runtime/devices/install.ts';
import { PINNED_ORT_VERSION, PROVIDER_PINS } from '../runtime/devices/pins.ts';
import { ortBinaryDir } from '../runtime/execution/ort.ts';
import { cudaSmokeTest, type SmokeModel, type SmokeResult } from '../runtime/execution/smoke.ts';

export type { DoctorCheck, InstallCudaResult, SmokeResult, StaticDoctorReport };
export { PINNED_ORT_VERSION, PROVIDER_PINS };

export interface DoctorReport extends StaticDoctorReport {
  /** CUDA works for a process started now with this environment (the smoke session ran, or every check passed when it was skipped). */
  readonly ok: boolean;
  /** The real CUDA session in a child process with the current environment (absent when skipped or impossible). */
  readonly smoke?: SmokeResult;
  /** The same with the suggested LD_LIBRARY_PATH, when libraries were found off the loader path. */
  readonly smokeWithFix?: SmokeResult & { readonly ldLibraryPath: string };
  /** Every fix, in the order to apply them. */
  readonly fixes: readonly string[];
}

export interface DoctorApiOptions extends Omit<DoctorOptions, 'binDir'> {
  /** Default: onnxruntime-node's binary directory of this installation. */
  readonly binDir?: string;
  /** Run the child-process CUDA session (default true). */
  readonly smoke?: boolean;
  readonly deviceId?: number;
  readonly smokeTimeoutMs?: number;
}

/** A 1x1x4x4 image through a 3x3 convolution (2 channels) and a 2x2 matmul: cuDNN and cuBLAS in one run. */
export function smokeModel(): SmokeModel {
  let id = 0;
  const v = (name: string, shape: number[]): IrValue => ({ id: id++, name, dtype: 'f32', shape });
  const f32 = (shape: number[], values: number[]): IrConstant => ({ dtype: 'f32', shape, data: new Uint8Array(Float32Array.from(values).buffer) });
  const x = v('x', [1, 1, 4, 4]);
  const w = v('w', [2, 1, 3, 3]);
  const m = v('m', [2, 2]);
  const c = v('c', [1, 2, 2, 2]);
  const y = v('y', [1, 2, 2, 2]);
  const graph: IrGraph = {
    name: 'sorac_cuda_smoke',
    inputs: [x],
    outputs: [y],
    nodes: [
      { op: 'Conv', inputs: [x, w], outputs: [c], attrs: { kernel_shape: { kind: 'ints', value: [3, 3] } } },
      { op: 'MatMul', inputs: [c, m], outputs: [y], attrs: {} },
    ],
    constants: new Map([
      [w, f32([2, 1, 3, 3], Array.from({ length: 18 }, (_, i) => ((i % 7) - 3) / 4))],
      [m, f32([2, 2], [0.5, -1, 2, 0.25])],
    ]),
    weights: [],
    opset: 17,
    metadata: {},
  };
  return { onnx: emitOnnx(graph, { weights: 'inline', valueInfo: false }), input: { name: 'x', dims: [1, 1, 4, 4], data: Array.from({ length: 16 }, (_, i) => i / 8 - 1) } };
}

function smokeCheck(s: SmokeResult, withFix?: DoctorReport['smokeWithFix']): DoctorCheck {
  if (s.ok) return { id: 'smoke', status: 'ok', title: 'CUDA session', detail: `a convolution and a matmul ran on CUDA and match the CPU (max |diff| ${s.maxAbsDiff?.toExponential(1)}) in ${(s.ms / 1000).toFixed(1)} s` };
  const why = s.missingLibrary ? `${s.missingLibrary} cannot be loaded` : s.cudaError ? `CUDA error ${s.cudaError}` : s.error ?? 'failed';
  const fix = withFix?.ok
    ? `export LD_LIBRARY_PATH=${withFix.ldLibraryPath}   (checked: with it a CUDA session runs)`
    : s.missingLibrary
      ? `make ${s.missingLibrary} findable (see the library checks above)`
      : s.cudaError && /^(100|cudaErrorNoDevice)/.test(s.cudaError)
        ? 'no usable GPU: check CUDA_VISIBLE_DEVICES, and in a container the NVIDIA container toolkit (--gpus all)'
        : s.cudaError && /^(35|cudaErrorInsufficientDriver)/.test(s.cudaError)
          ? 'the NVIDIA driver is too old for CUDA 13: update it to R580 or newer'
          : s.stage === 'compare'
            ? 'the CUDA libraries on the loader path are not NVIDIA\'s (stand-ins or a broken install): fix LD_LIBRARY_PATH'
            : 'run with SORAC_ORT_LOG_LEVEL=verbose for onnxruntime\'s own log';
  return { id: 'smoke', status: 'fail', title: 'CUDA session', detail: `creating and running a CUDA session failed at ${s.stage}: ${why}${s.log ? `\n${s.log}` : ''}`, fix };
}

/** `sorac doctor`. */
export async function doctor(opts: DoctorApiOptions = {}): Promise<DoctorReport> {
  const binDir = opts.binDir ?? ortBinaryDir();
  const env = opts.env ?? process.env;
  const st = await diagnoseStatic({ ...opts, binDir, env });
  const byId = (id: string) => st.checks.find((c) => c.id === id);
  const canLoad = byId('platform')?.status === 'ok' && byId('onnxruntime')?.status === 'ok' && byId('providers')?.status === 'ok';
  let smoke: SmokeResult | undefined;
  let smokeWithFix: DoctorReport['smokeWithFix'];
  const checks = [...st.checks];
  if (opts.smoke !== false && canLoad) {
    const model = smokeModel();
    const base = { deviceId: opts.deviceId ?? 0, ...(opts.smokeTimeoutMs ? { timeoutMs: opts.smokeTimeoutMs } : {}) };
    smoke = await cudaSmokeTest(model, { ...base, env });
    if (!smoke.ok && st.addToLdLibraryPath.length) {
      const ldLibraryPath = [...st.addToLdLibraryPath, ...(env.LD_LIBRARY_PATH ? [env.LD_LIBRARY_PATH] : [])].join(':');
      smokeWithFix = { ...(await cudaSmokeTest(model, { ...base, env: { ...env, LD_LIBRARY_PATH: ldLibraryPath } })), ldLibraryPath };
    }
    checks.push(smokeCheck(smoke, smokeWithFix));
  } else if (opts.smoke !== false) {
    checks.push({ id: 'smoke', status: 'skip', title: 'CUDA session', detail: 'not tried: the provider cannot be loaded until the checks above pass' });
  }
  const failed = checks.some((c) => c.status === 'fail');
  const fixes = [...new Set(checks.filter((c) => c.status === 'fail' && c.fix).map((c) => c.fix!))];
  return { ...st, checks, ok: !failed && (smoke ? smoke.ok : true), ...(smoke ? { smoke } : {}), ...(smokeWithFix ? { smokeWithFix } : {}), fixes };
}

export interface SetupCudaOptions extends Omit<InstallCudaOptions, 'binDir' | 'ortVersion'> {
  readonly binDir?: string;
  readonly ortVersion?: string;
  /** Run `doctor` afterwards (default true; its smoke session too unless smoke is false). */
  readonly verify?: boolean;
  readonly smoke?: boolean;
}

export interface SetupCudaResult {
  readonly install: InstallCudaResult;
  /** The verification: the doctor's report right after installing. */
  readonly doctor?: DoctorReport;
}

/** `sorac setup cuda`: install the pinned CUDA provider, then verify with the doctor. */
export async function setupCuda(opts: SetupCudaOptions = {}): Promise<SetupCudaResult> {
  const binDir = opts.binDir ?? ortBinaryDir();
  const ortVersion = opts.ortVersion ?? ortVersions(binDir).node ?? 'unknown';
  const install = await installCudaProvider({ ...opts, binDir, ortVersion });
  if (opts.verify === false) return { install };
  const report = await doctor({ binDir, ortVersion, ...(opts.smoke === false ? { smoke: false } : {}), ...(opts.pin ? { pin: opts.pin } : {}) });
  return { install, doctor: report };
}
