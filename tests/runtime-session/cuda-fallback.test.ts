/**
 * `--device auto` when CUDA cannot be used: the session falls back to the CPU with the graph lowered
 * for the CPU (bf16 compute emulated), not the CUDA-lowered graph (whose bf16 ops the CPU provider
 * has no kernels for). And the CUDA-side "no kernel anywhere" message is translated.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runGraph } from '../../api/session.ts';
import { SoracError } from '../../core/errors.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { translateOrtError } from '../../runtime/execution/ort.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { GOLDEN, goldenConfig } from '../helpers/parity.ts';
import { assertCompiles, compileFile, traceOk } from '../helpers/model.ts';

describe('CPU fallback of a CUDA attempt', () => {
  it('a bf16-compute STDiT3 under --device auto, CUDA failing: re-lowered for the CPU, same numbers as --device cpu', async () => {
    const dir = join(GOLDEN, 'stdit3', 'a');
    const m = assertCompiles(compileFile('examples/stdit3.sora', { values: goldenConfig('stdit3'), dtype: { params: 'bf16', compute: 'bf16' } }));
    const { tensors } = await readTensorsFile(join(dir, 'inputs.safetensors'));
    const g = traceOk(m, 'forward', m.entries.find((e) => e.name === 'forward')!.inputs.filter((i) => i.optional && !tensors.has(i.name)).map((i) => i.name));
    const feed = new Map([...tensors].filter(([k]) => g.inputs.some((i) => i.name === k)));
    const w = await safetensorsWeightSource([join(dir, 'model.bf16.safetensors')]);
    try {
      const notes: string[] = [];
      // skipCudaLibraryCheck: try CUDA although no provider is installed here, so the attempt fails inside onnxruntime
      const auto = await runGraph(g, w, feed, { device: 'auto', skipCudaLibraryCheck: true, onInfo: (n) => notes.push(n) });
      expect(auto.device).toBe('cpu');
      expect(notes[0]).toMatch(/^note: CUDA unavailable \(.+\); running on CPU$/);
      // the CPU lowering's note, not the CUDA lowering's (which would say "on CUDA, Pad ... in f32")
      expect(notes.filter((n) => /on CUDA/.test(n))).toEqual([]);
      expect(notes.some((n) => /bf16 compute runs on CPU as f32/.test(n))).toBe(true);
      const cpu = await runGraph(g, w, feed, { device: 'cpu' });
      expect(Array.from(auto.outputs.get('output')!.data as Float32Array)).toEqual(Array.from(cpu.outputs.get('output')!.data as Float32Array));
    } finally {
      await w.close();
    }
  });

  it("translates the CUDA side's \"Provider type for X node ... is not set\" (SORA5506) and a missing cuDNN (SORA5505), with the fix", () => {
    const e = translateOrtError(new Error("Exception during initialization: /onnxruntime_src/onnxruntime/core/optimizer/transformer_memcpy.cc:253 void onnxruntime::TransformerMemcpyImpl::ProcessDefs(...) Provider type for Pad node with name 'x_embedder/pad' is not set."), 'cuda') as SoracError;
    expect(e.code).toBe('SORA5506');
    expect(e.message).toBe("onnxruntime has no kernel for Pad with these dtypes on CUDA or CPU (node x_embedder/pad), so the session cannot be created");
    expect(e.hint).toMatch(/sorac build --target cuda/);
    expect((translateOrtError(new Error("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for MatMul(13) node with name 'mm'"), 'cpu') as SoracError).code).toBe('SORA5506');
    const cudnn = translateOrtError(new Error('Non-zero status code returned while running Conv node. cuDNN is unavailable or disabled for CUDA Execution Provider: dlopen failed for libcudnn.so: libcudnn.so: cannot open shared object file: No such file or directory'), 'cuda') as SoracError;
    expect(cudnn.code).toBe('SORA5505');
    expect(cudnn.message).toMatch(/^CUDA: cuDNN 9 \(libcudnn\.so\.9\) cannot be loaded/);
    expect(cudnn.hint).toMatch(/sorac doctor/);
  });
});
