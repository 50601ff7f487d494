/**
 * onnxruntime-node sessions (docs/adr/001-onnx-emission.md). `openSession` takes a model already
 * emitted for a weight binding (runtime/execution/binding.ts) and creates the ORT session on the
 * chosen device, with the CUDA -> CPU fallback policy of `--device auto`. The composition
 * graph -> lowered graph -> binding -> ONNX bytes -> session lives in api/session.ts.
 *
 * Session options, chosen on purpose (bench/inference.ts, STDiT3 medium on 2 cores, 2026-12-07):
 * - prepacking disabled by default (`session.disable_prepacking=1`): with external data it takes
 *   session creation for a 500 MiB MatMul weight from ~0.6 s to a few ms and halves peak RSS
 *   (toolchain.md §3, bench/session-binding.ts); per-run cost is the same within noise (the weights
 *   stay initializers, and MLAS packs B per call, which the 2048-row activations amortise: the Gemms
 *   run at ~190 GFLOP/s either way, the machine's measured MatMul peak);
 * - graph optimisation 'all' (the ORT target's contrib fusions need at least 'extended'; 'all' and
 *   'extended' measured the same on STDiT3);
 * - intra-op threads: the caller's (`intraOpThreads`), else onnxruntime's default of one per
 *   physical core; spinning left at onnxruntime's default (turning it off measured no gain).
 *
 * Graph inputs/outputs typed bf16 cannot cross the JS boundary (ort-common has no bfloat16 tensor
 * type). The graph is wrapped (compiler/passes/io-bf16.ts) so they cross as f32, and the session
 * converts: bf16 bits -> f32 for such inputs (exact), f32 -> bf16 bits for such outputs (exact,
 * since the values are bf16). f16 crosses as-is (Uint16Array bit patterns).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { bf16ToF32, f32ToBf16 } from '../../core/convert.ts';
import { InternalError, SoracError } from '../../core/errors.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import type { IrValue } from '../../core/ir.ts';
import type { BindingOptions, BindingReport } from './binding.ts';
import { checkOutput, type TensorSpec, toEntries, validateInputs } from './inputs.ts';
import { firstLine, loadOrt, ORT_TYPE, ortLogSeverity, translateOrtError } from './ort.ts';
import { CUDA_FIX, cudaFailureReason, type Device, type DeviceChoice } from './providers.ts';

export type { Device, TensorSpec };

export interface SessionOptions extends BindingOptions {
  /** 'auto' tries CUDA and falls back to CPU with one info line; 'cuda' fails clearly. Default 'auto'. */
  readonly device?: Device;
  readonly deviceId?: number;
  /** Receives the few human-readable notes (fallbacks, conversions). One line each, no newline. */
  readonly onInfo?: (msg: string) => void;
  /** Enable ORT weight prepacking (faster first kernels, 2x peak memory, slow create). Default false. */
  readonly prepacking?: boolean;
  readonly graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  readonly intraOpThreads?: number;
  /** Keep the temp dir (model.onnx + links) for debugging; its path is in `session.binding.dir`. */
  readonly keepTempDir?: boolean;
  /**
   * Try CUDA even when the provider libraries are not next to onnxruntime-node's binding (for
   * setups that provide them some other way, and for tests). Default false: look for the files
   * first, which avoids a slow failing attempt and ORT's own error output.
   */
  readonly skipCudaLibraryCheck?: boolean;
}

export interface SoracSession {
  readonly device: 'cpu' | 'cuda';
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly binding: BindingReport;
  /** Milliseconds spent in InferenceSession.create. */
  readonly createMs: number;
  run(inputs: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>): Promise<Map<string, HostTensor>>;
  release(): Promise<void>;
}

/** The graph boundary a session exposes (after bf16 I/O wrapping) and which names cross as f32 for bf16. */
export interface SessionIo {
  readonly inputs: readonly IrValue[];
  readonly outputs: readonly IrValue[];
  readonly bf16Inputs: ReadonlySet<string>;
  readonly bf16Outputs: ReadonlySet<string>;
}

/** Inputs and outputs whose dtype cannot be handed to onnxruntime-node (bf16 is wrapped, see above). */
export function checkBoundaryDtypes(inputs: readonly IrValue[], outputs: readonly IrValue[]): void {
  for (const v of [...inputs, ...outputs]) {
    if (v.dtype !== 'bf16' && !ORT_TYPE[v.dtype]) throw new SoracError('SORA5502', `graph ${inputs.includes(v) ? 'input' : 'output'} "${v.name}" has dtype ${v.dtype}, which cannot cross the JS boundary`);
  }
}

/**
 * The model to use when a CUDA session cannot be created under --device auto: the graph lowered
 * for the CPU instead (bf16 compute emulated), emitted for the same weight binding.
 */
export interface CpuFallback {
  readonly model: Uint8Array;
  readonly io: SessionIo;
  readonly cpuEmulated: boolean;
  /** The CPU lowering's notes (replace the CUDA lowering's). */
  readonly notes: readonly string[];
}

/**
 * Write `model` (ONNX bytes whose external data refers to files in `dir`) into `dir` and create the
 * session: CUDA first when `choice.tryCuda` (falling back to CPU with a note under --device auto:
 * with `opts.cpuFallback()`'s model when given, the graph as lowered for the CPU), CPU otherwise.
 * Notes (the lowering's, fallbacks, conversions, binding problems) go to `opts.onInfo` once the
 * session exists.
 */
export async function openSession(
  model: Uint8Array,
  dir: string,
  ioIn: SessionIo,
  binding: BindingReport,
  choice: DeviceChoice,
  opts: SessionOptions & { readonly cpuEmulated?: boolean; readonly bf16Weights?: boolean; readonly loweringNotes?: readonly string[]; readonly cpuFallback?: () => CpuFallback } = {},
): Promise<SoracSession> {
  const info = opts.onInfo ?? (() => {});
  const device = opts.device ?? 'auto';
  let io = ioIn;
  const ort = await loadOrt();
  const modelPath = join(dir, 'model.onnx');
  await writeFile(modelPath, model);
  // notes are printed only once the session exists (an error is then the only output)
  const notes = [...choice.notes];
  let lowering = [...(opts.loweringNotes ?? [])];
  let cpuEmulated = !!opts.cpuEmulated;
  const base: Ort.InferenceSession.SessionOptions = {
    logSeverityLevel: ortLogSeverity(),
    graphOptimizationLevel: opts.graphOptimization ?? 'all',
    ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    ...(opts.prepacking ? {} : { extra: { session: { disable_prepacking: '1' } } }),
  };
  const t0 = performance.now();
  let session: Ort.InferenceSession | undefined;
  let used: 'cpu' | 'cuda' = 'cpu';
  if (choice.tryCuda) {
    try {
      session = await ort.InferenceSession.create(modelPath, { ...base, executionProviders: [{ name: 'cuda', deviceId: opts.deviceId ?? 0 }] });
      used = 'cuda';
    } catch (e) {
      const msg = firstLine(e);
      // ORT's exception names no library; the loader emulation does
      const reason = /Failed to load shared library/.test(msg) ? cudaFailureReason() : undefined;
      if (device === 'cuda') {
        if (/Provider type for \w+ node/.test(msg)) throw translateOrtError(e, 'cuda');
        throw new SoracError('SORA5505', `--device cuda: cannot create a CUDA session: ${msg}${reason ? ` (${reason})` : ''}`, { hint: CUDA_FIX });
      }
      notes.push(`note: CUDA unavailable (${reason ?? msg}); running on CPU`);
      if (opts.cpuFallback) {
        // the CUDA-lowered graph is not the CPU's (bf16 compute must be emulated there): use the CPU lowering
        const fb = opts.cpuFallback();
        await writeFile(modelPath, fb.model);
        io = fb.io;
        lowering = [...fb.notes];
        cpuEmulated = fb.cpuEmulated;
      }
    }
  }
  if (!session) {
    try {
      session = await ort.InferenceSession.create(modelPath, { ...base, executionProviders: ['cpu'] });
    } catch (e) {
      throw translateOrtError(e, 'cpu');
    }
  }
  const createMs = performance.now() - t0;

  for (const n of notes) info(n);
  for (const n of lowering) info(n);
  for (const n of binding.notes) info(`note: ${n}`);
  const bf16OnCpu = used === 'cpu' && (!!opts.bf16Weights || (binding.conversions['bf16->f32'] ?? 0) > 0);
  // a graph already lowered for CPU (compiler/passes/cpu-bf16.ts) has said so in its own single line
  if (bf16OnCpu && !cpuEmulated) info('note: bf16 weights converted to f32 (CPU has no bf16 kernels)');
  for (const [pair, n] of Object.entries(binding.conversions)) {
    if (pair === 'bf16->f32' && bf16OnCpu) continue;
    info(`note: ${n} ${pair.replace('->', ' weight(s) converted to ')} at load (the graph expects that dtype)`);
  }
  return makeSession(session, used, io, binding, createMs);
}

function makeSession(session: Ort.InferenceSession, device: 'cpu' | 'cuda', io: SessionIo, binding: BindingReport, createMs: number): SoracSession {
  // user-facing specs: the original graph's I/O (bf16 stays bf16)
  const spec = (v: IrValue, bf16: ReadonlySet<string>): TensorSpec => ({ name: v.name, dtype: bf16.has(v.name) ? 'bf16' : v.dtype, shape: v.shape });
  const inputs = io.inputs.map((v) => spec(v, io.bf16Inputs));
  const outputs = io.outputs.map((v) => spec(v, io.bf16Outputs));
  let released = false;
  return {
    device,
    inputs,
    outputs,
    binding,
    createMs,
    async run(given) {
      if (released) throw new InternalError('run() on a released session');
      const symbols = validateInputs(inputs, given);
      const ort = await loadOrt();
      const feeds: Record<string, Ort.Tensor> = {};
      for (const [name, t] of toEntries(given)) {
        if (io.bf16Inputs.has(name)) feeds[name] = new ort.Tensor('float32', bf16ToF32(t.data as Uint16Array), [...t.shape]);
        else feeds[name] = new ort.Tensor(ORT_TYPE[t.dtype]!, t.data as never, [...t.shape]);
      }
      let res: Ort.InferenceSession.OnnxValueMapType;
      try {
        res = await session.run(feeds);
      } catch (e) {
        throw translateOrtError(e, device);
      }
      const out = new Map<string, HostTensor>();
      for (const o of outputs) {
        const r = res[o.name] as Ort.Tensor;
        const shape = r.dims.map(Number);
        let data = r.data as HostTensor['data'];
        if (io.bf16Outputs.has(o.name)) data = f32ToBf16(r.data as Float32Array);
        checkOutput(o, shape, symbols);
        out.set(o.name, { dtype: o.dtype, shape, data });
        r.dispose?.();
      }
      return out;
    },
    async release() {
      if (released) return;
      released = true;
      await session.release();
    },
  };
}
