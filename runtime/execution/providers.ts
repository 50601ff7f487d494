/**
 * Execution providers: whether onnxruntime-node's CUDA provider is installed, and the device a
 * session will use for a requested `--device auto|cpu|cuda` (decided before any weight is bound,
 * so errors about CUDA come first and cheaply).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SoracError } from '../../core/errors.ts';
import { ortBinaryDir } from './ort.ts';

export type Device = 'auto' | 'cpu' | 'cuda';

/** Whether the CUDA provider libraries are installed next to onnxruntime-node's binding. */
export function cudaProviderInstalled(): boolean {
  const dir = ortBinaryDir();
  return existsSync(join(dir, 'libonnxruntime_providers_shared.so')) && existsSync(join(dir, 'libonnxruntime_providers_cuda.so'));
}

export const CUDA_FIX =
  'install the CUDA provider libraries for onnxruntime-node 1.30.0 on a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9: ' +
  'in the sorac install directory run `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` ' +
  '(downloads Microsoft.ML.OnnxRuntime.Gpu.Linux 1.30.0 from api.nuget.org), or copy libonnxruntime_providers_shared.so and ' +
  'libonnxruntime_providers_cuda.so of exactly version 1.30.0 into ' +
  '<sorac>/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ (see docs/guides/gpu.md); or use --device cpu';

export interface DeviceChoice {
  /** Try the CUDA provider first. */
  readonly tryCuda: boolean;
  /** One-line notes for the user, printed once a session exists. */
  readonly notes: readonly string[];
}

/**
 * The device a session should try for `device`: 'cuda' fails now (SORA5505) when the provider is not
 * installed; 'auto' uses CUDA when installed and otherwise notes the CPU fallback.
 */
export function chooseDevice(device: Device = 'auto', opts: { skipCudaLibraryCheck?: boolean } = {}): DeviceChoice {
  if (device === 'cpu') return { tryCuda: false, notes: [] };
  const installed = !!opts.skipCudaLibraryCheck || cudaProviderInstalled();
  if (device === 'cuda') {
    if (!installed) throw new SoracError('SORA5505', `--device cuda: onnxruntime-node's CUDA execution provider is not installed (no libonnxruntime_providers_cuda.so in ${ortBinaryDir()})`, { hint: CUDA_FIX });
    return { tryCuda: true, notes: [] };
  }
  return installed ? { tryCuda: true, notes: [] } : { tryCuda: false, notes: ['note: CUDA execution provider not installed; running on CPU (see docs/guides/gpu.md)'] };
}
