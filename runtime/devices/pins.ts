/**
 * The onnxruntime CUDA provider builds sorac installs, pinned by size and sha256, one row per
 * onnxruntime-node version sorac supports (today exactly one: package.json pins onnxruntime-node).
 *
 * The provider bridge has no version check (ORT dlopens the provider and calls GetProvider(); the
 * interface is a C++ vtable), so only the providers of the same ORT release are safe: the pin is
 * the whole safety net. The files are Microsoft's official Linux GPU build of ORT 1.29.0
 * (nuget Microsoft.ML.OnnxRuntime.Gpu.Linux 1.29.0), which the npm package
 * com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 carries verbatim (Plugins/Linux/x64/). They
 * link CUDA 13 (libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcuda.so.1)
 * and dlopen cuDNN 9 at the first convolution. Measured in the GPU research spike (docs/guides/gpu.md).
 *
 * The TensorRT provider of the same package is not installed (it needs TensorRT 10 and sorac does
 * not use it).
 */

export interface PinnedFile {
  /** File name in onnxruntime-node's binary directory. */
  readonly name: string;
  readonly size: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

export interface ProviderPin {
  /** The onnxruntime-node (and ORT core) version these providers belong to. */
  readonly ortVersion: string;
  readonly cudaMajor: number;
  readonly cudnnMajor: number;
  /** Minimum NVIDIA driver branch for that CUDA major (R580 for CUDA 13). */
  readonly minDriver: number;
  /** The npm package that carries the files, and npm's integrity string for its tarball. */
  readonly npm: { readonly spec: string; readonly integrity: string; readonly size: number };
  /** The nuget package (a zip) Microsoft publishes them in. */
  readonly nuget: { readonly id: string; readonly version: string; readonly url: string };
  /** Installed in this order; the CUDA provider last, so its presence means the pair is complete. */
  readonly files: readonly PinnedFile[];
  /** The CUDA libraries the provider needs to load (its DT_NEEDED minus the C runtime), for the docs and tests. */
  readonly cudaNeeded: readonly string[];
  /** Libraries dlopened later: cuDNN at the first convolution. */
  readonly lazy: readonly { readonly soname: string; readonly when: string }[];
}

export const PROVIDER_PINS: readonly ProviderPin[] = [
  {
    ortVersion: '1.29.0',
    cudaMajor: 13,
    cudnnMajor: 9,
    minDriver: 580,
    npm: {
      spec: 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9',
      integrity: 'sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==',
      size: 179_145_956,
    },
    nuget: {
      id: 'Microsoft.ML.OnnxRuntime.Gpu.Linux',
      version: '1.29.0',
      url: 'https://api.nuget.org/v3-flatcontainer/microsoft.ml.onnxruntime.gpu.linux/1.29.0/microsoft.ml.onnxruntime.gpu.linux.1.29.0.nupkg',
    },
    files: [
      { name: 'libonnxruntime_providers_shared.so', size: 14_632, sha256: 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772' },
      { name: 'libonnxruntime_providers_cuda.so', size: 229_780_440, sha256: '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037' },
    ],
    cudaNeeded: ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'],
    lazy: [{ soname: 'libcudnn.so.9', when: 'the first convolution (every DiT and VAE; T5 runs without it)' }],
  },
];

export const CUDA_PROVIDER_FILE = 'libonnxruntime_providers_cuda.so';
export const SHARED_PROVIDER_FILE = 'libonnxruntime_providers_shared.so';

/** The pin for an onnxruntime-node version, if sorac supports CUDA with it. */
export function pinFor(ortVersion: string): ProviderPin | undefined {
  return PROVIDER_PINS.find((p) => p.ortVersion === ortVersion);
}

/** The pinned onnxruntime-node version (the one package.json asks for). */
export const PINNED_ORT_VERSION = PROVIDER_PINS[0]!.ortVersion;
