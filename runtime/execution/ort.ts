/**
 * onnxruntime-node plumbing: loading the module once (with sorac's log-level policy), where its
 * native libraries live, the tensor type names, and turning ORT's exceptions into SoracErrors.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { DType } from '../../core/dtype.ts';
import { SoracError } from '../../core/errors.ts';

let ortModule: Promise<typeof Ort> | undefined;

/**
 * Load onnxruntime-node once. Its process-wide log level (applied when the first session is
 * created) and every session's log severity default to 'fatal': each ORT error also surfaces as
 * an exception that we translate, so the raw ANSI-coloured stderr lines (a failed CUDA attempt,
 * initialisation failures) would only duplicate it. Set
 * SORAC_ORT_LOG_LEVEL=verbose|info|warning|error|fatal to see them.
 */
export function loadOrt(): Promise<typeof Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => {
    const ort = ((m as unknown as { default?: typeof Ort }).default ?? m) as typeof Ort;
    ort.env.logLevel = ORT_LOG_LEVELS[ortLogSeverity()];
    return ort;
  });
  return ortModule;
}

const ORT_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;

/** Session/env log severity: SORAC_ORT_LOG_LEVEL if set, else 4 (fatal). */
export function ortLogSeverity(): 0 | 1 | 2 | 3 | 4 {
  const i = ORT_LOG_LEVELS.indexOf(process.env.SORAC_ORT_LOG_LEVEL as never);
  return (i >= 0 ? i : 4) as 0 | 1 | 2 | 3 | 4;
}

/** Directory holding onnxruntime-node's native libraries for this platform. */
export function ortBinaryDir(): string {
  const req = createRequire(import.meta.url);
  const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

export const ORT_TYPE: Partial<Record<DType, Ort.Tensor.Type>> = {
  f32: 'float32',
  f64: 'float64',
  f16: 'float16',
  i64: 'int64',
  i32: 'int32',
  i16: 'int16',
  i8: 'int8',
  u8: 'uint8',
  bool: 'bool',
};

export function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const line = m.split('\n')[0]!.replace(/\x1b\[[0-9;]*m/g, '').trim();
  // ORT prefixes messages with the C++ source location and signature; keep the message proper
  const core = /\[ONNXRuntimeError\] : \d+ : \w+ : (.*)$/.exec(line);
  return core ? core[1]!.trim() : line;
}

export function translateOrtError(e: unknown, device: 'cpu' | 'cuda'): Error {
  const msg = firstLine(e);
  const m = /Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'/.exec(msg);
  if (m) {
    return new SoracError(
      'SORA5506',
      `onnxruntime's ${device.toUpperCase()} provider has no kernel for ${m[1]} (opset ${m[2]}) with these dtypes (node ${m[3]})`,
      { hint: device === 'cpu' ? 'bf16 is storage-only on CPU: compile with compute dtype f32 (bf16 weights are cast at load), or run on CUDA' : undefined },
    );
  }
  // cuDNN is dlopened at the first convolution, so a missing cuDNN surfaces only when a session runs
  if (/cuDNN is unavailable|dlopen failed for libcudnn/.test(msg)) {
    return new SoracError('SORA5505', `CUDA: cuDNN 9 (libcudnn.so.9) cannot be loaded, and convolutions need it (onnxruntime: ${msg})`, {
      hint: 'install cuDNN 9 for CUDA 13 (pip install nvidia-cudnn-cu13, or NVIDIA\'s cuDNN package) and put its folder on LD_LIBRARY_PATH before starting sorac: `sorac doctor` prints the exact line',
    });
  }
  // the CUDA side: no provider claims the node (e.g. a bf16 op with no kernel anywhere), so ORT cannot place it
  const p = /Provider type for (\w+) node with name '([^']*)' is not set/.exec(msg);
  if (p) {
    return new SoracError('SORA5506', `onnxruntime has no kernel for ${p[1]} with these dtypes on ${device.toUpperCase()} or CPU (node ${p[2]}), so the session cannot be created`, {
      hint:
        device === 'cuda'
          ? 'sessions sorac creates place such ops in f32 (compiler/passes/cuda-precision.ts); a graph built without `--target cuda` or given with lower: false is not: rebuild it with `sorac build --target cuda`, or compute in f32/f16'
          : 'compile with compute dtype f32 (bf16 weights are cast at load)',
    });
  }
  return new SoracError('SORA5508', `onnxruntime: ${msg}`);
}
