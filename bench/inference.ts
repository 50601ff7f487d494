/**
 * CPU inference of STDiT3 at the "medium" config of bench/perf-anchors.json (hidden 384, depth 4,
 * heads 6, x [1,4,8,32,32], y [1,1,300,4096]) through sorac's ONNX graph and onnxruntime, 2 intra-op
 * threads, compared with the PyTorch eager anchor measured on the same machine type.
 *
 *   npx tsx bench/inference.ts [runs=5]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, traceEntry } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { parameterCount } from '../core/keymap.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import { safetensorsWeightSource } from '../runtime/execution/binding.ts';
import { writeSafetensors } from '../runtime/formats/safetensors-writer.ts';
import { createSession } from '../api/session.ts';

const runs = Number(process.argv[2] ?? 5);
const root = join(import.meta.dirname, '..');
const anchors = JSON.parse(readFileSync(join(root, 'bench', 'perf-anchors.json'), 'utf8'));
const medium = anchors.eager.medium;

// deterministic pseudo-random numbers (xorshift) so runs are comparable
let seed = 1234567;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return ((seed >>> 0) / 4294967296 - 0.5) * 2;
};
const randn = (n: number, scale: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rnd() * scale;
  return a;
};

const model = compile({ file: join(root, 'examples', 'stdit3.sora'), host: fsHost, config: { values: medium.config } });
if (!model.keymap) throw new Error(model.diagnostics.map((d) => d.message).join('\n'));
console.log(`STDiT3 medium: ${parameterCount(model.keymap).toLocaleString('en-US')} parameters (anchor ${medium.params.toLocaleString('en-US')})`);
const dir = mkdtempSync(join(tmpdir(), 'sorac-bench-inf-'));
try {
  const weights = new Map<string, { dtype: 'f32'; shape: readonly number[]; data: Uint8Array }>();
  for (const [k, e] of Object.entries(model.keymap.tensors)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const fan = e.shape.length > 1 ? e.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const data = k.endsWith('norm.weight') ? new Float32Array(n).fill(1) : randn(n, 1 / Math.sqrt(fan));
    weights.set(k, { dtype: 'f32', shape: e.shape, data: new Uint8Array(data.buffer) });
  }
  const wpath = join(dir, 'weights.safetensors');
  await writeSafetensors(wpath, weights);
  const inputs: Record<string, HostTensor> = {
    x: { dtype: 'f32', shape: medium.inputs.x, data: randn(1 * 4 * 8 * 32 * 32, 1) },
    timestep: { dtype: 'f32', shape: [1], data: new Float32Array([500]) },
    y: { dtype: 'f32', shape: medium.inputs.y, data: randn(300 * 4096, 1) },
    mask: { dtype: 'i64', shape: [1, 300], data: new BigInt64Array(300).fill(1n) },
    fps: { dtype: 'f32', shape: [1], data: new Float32Array([24]) },
    height: { dtype: 'f32', shape: [1], data: new Float32Array([256]) },
    width: { dtype: 'f32', shape: [1], data: new Float32Array([256]) },
  };
  const t0 = performance.now();
  const tr = traceEntry(model, 'forward', { absent: new Set(['x_mask']) });
  if (!tr.graph) throw new Error(tr.diagnostics.map((d) => d.message).join('\n'));
  const traceMs = performance.now() - t0;
  const src = await safetensorsWeightSource([wpath]);
  const s = await createSession(tr.graph, src, { device: 'cpu', intraOpThreads: 2 });
  console.log(`trace ${traceMs.toFixed(0)} ms, session create ${s.createMs.toFixed(0)} ms, ${tr.graph.nodes.length} nodes`);
  for (let i = 0; i < 2; i++) await s.run(inputs);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const a = performance.now();
    await s.run(inputs);
    times.push((performance.now() - a) / 1000);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)]!;
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(`sorac/onnxruntime CPU, 2 threads: median ${med.toFixed(3)} s (min ${times[0]!.toFixed(3)}, max ${times[times.length - 1]!.toFixed(3)}), RSS ${rss.toFixed(0)} MiB`);
  console.log(`PyTorch eager anchor (torch ${anchors.torch_version}, ${medium.torch_threads} threads, same machine type): median ${medium.median_s.toFixed(2)} s, peak RSS ${medium.peak_rss_mib} MiB`);
  console.log(`speed-up: ${(medium.median_s / med).toFixed(1)}x`);
  await s.release();
  await src.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
