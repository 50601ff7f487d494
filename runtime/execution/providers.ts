/**
 * Execution providers: whether onnxruntime-node's CUDA provider is installed (the pinned build,
 * put there by `sorac setup cuda`), and the device a session will use for a requested
 * `--device auto|cpu|cuda` (decided before any weight is bound, so errors about CUDA come first
 * and cheaply). When a CUDA session cannot be created, `cudaFailureReason` names the libraries the
 * dynamic loader will not find (ORT's own exception says only "Failed to load shared library").
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SoracError } from '../../core/errors.ts';
import { ortVersions, unresolvedCudaLibraries } from '../devices/doctor.ts';
import { CUDA_PROVIDER_FILE, PINNED_ORT_VERSION, pinFor, SHARED_PROVIDER_FILE } from '../devices/pins.ts';
import { ortBinaryDir } from './ort.ts';

export type Device = 'auto' | 'cpu' | 'cuda';

export const CUDA_FIX =
  `run \`sorac setup cuda\` (installs onnxruntime ${PINNED_ORT_VERSION}'s CUDA provider from npm; offline: \`sorac setup cuda --from <file>\`), ` +
  'then `sorac doctor`, which checks the CUDA 13 runtime, cuBLAS and cuDNN 9 libraries and the GPU and prints the exact LD_LIBRARY_PATH to set ' +
  '(docs/guides/gpu.md); or use --device cpu';

export interface ProviderState {
  readonly installed: boolean;
  /** Why it cannot be used although files are there (another build). */
  readonly problem?: string;
}

/** The CUDA provider next to onnxruntime-node's binding: both files present and (by size) the pinned build. */
export function cudaProviderState(dir: string = ortBinaryDir()): ProviderState {
  const cuda = join(dir, CUDA_PROVIDER_FILE);
  if (!existsSync(join(dir, SHARED_PROVIDER_FILE)) || !existsSync(cuda)) return { installed: false };
  const pin = pinFor(ortVersions(dir).node ?? '');
  const want = pin?.files.find((f) => f.name === CUDA_PROVIDER_FILE);
  const size = statSync(cuda).size;
  if (want && size !== want.size) return { installed: true, problem: `${cuda} is not the CUDA provider of onnxruntime ${pin!.ortVersion} (${size} bytes, the pinned build has ${want.size})` };
  return { installed: true };
}

/** Whether the CUDA provider libraries are installed next to onnxruntime-node's binding. */
export function cudaProviderInstalled(): boolean {
  const s = cudaProviderState();
  return s.installed && !s.problem;
}

/** The libraries the loader will not find for the installed provider, as one phrase (undefined when all resolve). */
export function cudaFailureReason(dir: string = ortBinaryDir()): string | undefined {
  try {
    const missing = unresolvedCudaLibraries(dir);
    return missing.length ? `${missing.join(', ')} not found by the dynamic loader; \`sorac doctor\` says where to get ${missing.length > 1 ? 'them' : 'it'}` : undefined;
  } catch {
    return undefined;
  }
}

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
  const state: ProviderState = opts.skipCudaLibraryCheck ? { installed: true } : cudaProviderState();
  if (device === 'cuda') {
    if (!state.installed) throw new SoracError('SORA5505', `--device cuda: onnxruntime-node's CUDA execution provider is not installed (no ${CUDA_PROVIDER_FILE} in ${ortBinaryDir()})`, { hint: CUDA_FIX });
    if (state.problem) throw new SoracError('SORA5505', `--device cuda: ${state.problem}`, { hint: CUDA_FIX });
    return { tryCuda: true, notes: [] };
  }
  if (state.installed && !state.problem) return { tryCuda: true, notes: [] };
  return { tryCuda: false, notes: [state.problem ? `note: CUDA provider unusable (${state.problem}); running on CPU (sorac setup cuda)` : 'note: CUDA execution provider not installed; running on CPU (see docs/guides/gpu.md)'] };
}
