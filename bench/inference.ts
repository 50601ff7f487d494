/**
 * CPU inference of STDiT3 at the "medium" config of bench/perf-anchors.json (hidden 384, depth 4,
 * heads 6, x [1,4,8,32,32], y [1,1,300,4096]) through sorac's ONNX graph and onnxruntime, 2 intra-op
 * threads, against the upstream PyTorch module (Open-Sora v1.2.0, eager, the same weights and inputs,
 * 2 threads) run in the same invocation: the two sides alternate forward by forward, so both see the
 * same machine load, and the ratio is of medians measured side by side.
 *
 *   OPEN_SORA_ROOT=DIR npx tsx bench/inference.ts [runs=5]
 *
 * DIR holds os-v1.2.0/opensora (tests/fixtures/golden-extra/README.md). Without OPEN_SORA_ROOT only
 * sorac's side runs. It also prints the forward's FLOPs (the matrix products, counted from the shapes:
 * `forwardFlops` below) as GFLOP/s at sorac's median and best, against a peak measured in the same
 * process: a 2048 x 2048 x 2048 MatMul through an onnxruntime session with the same threads and weight
 * prepacking on (sorac's sessions leave it off: no gain on the STDiT3 Gemms), three runs after each of
 * sorac's forwards, the best of them all (on a shared machine the best is the one least disturbed).
 * PYTHON (default /usr/bin/python3) needs torch and numpy (Debian's python3-torch
 * uses OpenBLAS when libopenblas0-pthread is installed).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, traceEntry } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { parameterCount } from '../core/keymap.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import { safetensorsWeightSource } from '../runtime/execution/binding.ts';
import { openSafetensors } from '../runtime/formats/safetensors.ts';
import { writeSafetensors } from '../runtime/formats/safetensors-writer.ts';
import { createSession } from '../api/session.ts';
import { lowerForTarget, optimizeForOrt } from '../compiler/passes/index.ts';
import type { IrGraph, IrValue } from '../core/ir.ts';

/**
 * FLOPs (2 per multiply-add) of the matrix products of one STDiT3 forward (mlp_ratio 4, pred_sigma: as
 * the medium config has them): the linear layers and the attention products (QK^T and ·V); the
 * elementwise work, norms, softmax and the tiny timestep/fps MLPs are not counted.
 */
function forwardFlops(cfg: { hidden_size: number; depth: number; patch_size: number[]; in_channels: number; caption_channels: number }, x: readonly number[], textLen: number): number {
  const C = cfg.hidden_size;
  const [pt, ph, pw] = cfg.patch_size as [number, number, number];
  const T = Math.ceil(x[2]! / pt);
  const S = Math.ceil(x[3]! / ph) * Math.ceil(x[4]! / pw);
  const N = T * S;
  const L = textLen;
  const mlp = 4 * C;
  const lin = (rows: number, k: number, n: number) => 2 * rows * k * n;
  // per block: qkv, proj, cross q/kv/proj, MLP; cross attention N x L; self attention within a frame (spatial) or a position (temporal)
  const block = lin(N, C, 3 * C) + lin(N, C, C) + lin(N, C, C) + lin(L, C, 2 * C) + lin(N, C, C) + lin(N, C, mlp) + lin(N, mlp, C) + 2 * (2 * N * L * C);
  const spatial = 2 * (2 * T * S * S * C);
  const temporal = 2 * (2 * S * T * T * C);
  const embed = lin(N, cfg.in_channels * pt * ph * pw, C) + lin(L, cfg.caption_channels, C) + lin(L, C, C) + lin(1, C, 6 * C);
  const final = lin(N, C, pt * ph * pw * 2 * cfg.in_channels);
  return cfg.depth * (2 * block + spatial + temporal) + embed + final;
}

/** An n x n x n f32 MatMul (constant right operand) through createSession: run() gives one run's GFLOP/s. */
async function matmulPeak(n: number, threads: number): Promise<{ run: () => Promise<number>; release: () => Promise<void> }> {
  const a: IrValue = { id: 0, name: 'a', dtype: 'f32', shape: [n, n] };
  const w: IrValue = { id: 1, name: 'w', dtype: 'f32', shape: [n, n] };
  const y: IrValue = { id: 2, name: 'y', dtype: 'f32', shape: [n, n] };
  const data = new Float32Array(n * n).map((_, i) => Math.sin(i) / n);
  const g: IrGraph = { name: 'peak', inputs: [a], outputs: [y], nodes: [{ op: 'MatMul', inputs: [a, w], outputs: [y], attrs: {} }], constants: new Map([[w, { dtype: 'f32', shape: [n, n], data: new Uint8Array(data.buffer) }]]), weights: [], opset: 17, metadata: {} };
  // prepacked: the fastest this MatMul runs in onnxruntime (~8% over packing per call at this size)
  const s = await createSession(g, { tensors: new Map() }, { device: 'cpu', intraOpThreads: threads, prepacking: true });
  const x = { a: { dtype: 'f32' as const, shape: [n, n], data } };
  return {
    run: async () => {
      const t = performance.now();
      await s.run(x);
      return (2 * n ** 3) / ((performance.now() - t) / 1000) / 1e9;
    },
    release: () => s.release(),
  };
}

const runs = Number(process.argv[2] ?? 5);
const root = join(import.meta.dirname, '..');
const anchors = JSON.parse(readFileSync(join(root, 'bench', 'perf-anchors.json'), 'utf8')); // the medium config (its timings are not used)
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
  // SORAC_BENCH_PLAIN=1: the plain standard-opset graph (the session default is the ORT target's)
  const plain = process.env.SORAC_BENCH_PLAIN === '1';
  const s = await createSession(tr.graph, src, { device: 'cpu', intraOpThreads: 2, ...(plain ? { optimize: false } : {}) });
  const ortNodes = optimizeForOrt(lowerForTarget(tr.graph, 'cpu').graph).graph.nodes.length;
  console.log(`trace ${traceMs.toFixed(0)} ms, session create ${s.createMs.toFixed(0)} ms, ${tr.graph.nodes.length} nodes traced, ${plain ? `${tr.graph.nodes.length} run (plain graph, SORAC_BENCH_PLAIN=1)` : `${ortNodes} run (ORT target)`}`);
  // the PyTorch side: a worker that answers one forward per request
  let torch: { run: () => Promise<number>; close: () => void } | undefined;
  if (process.env.OPEN_SORA_ROOT) {
    const toBytes = (t: HostTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    await writeSafetensors(join(dir, 'inputs.safetensors'), new Map(Object.entries(inputs).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: toBytes(t) }])) as never);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(medium.config));
    const py = spawn(process.env.PYTHON ?? '/usr/bin/python3', [join(root, 'bench', 'inference_torch.py'), join(dir, 'config.json'), wpath, join(dir, 'inputs.safetensors'), join(dir, 'torch-out.safetensors'), '2'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await lines.next();
      if (r.done) throw new Error('the PyTorch worker exited (see its message above)');
      return JSON.parse(r.value as string);
    };
    const ready = await next();
    console.log(`PyTorch side: torch ${ready.torch}, ${ready.threads} threads, ${ready.params.toLocaleString('en-US')} parameters (upstream STDiT3 v1.2.0, eager)`);
    torch = {
      run: async () => {
        py.stdin!.write('run\n');
        return (await next()).s as number;
      },
      close: () => py.stdin!.end(),
    };
  }
  let out: HostTensor | undefined;
  const soracRun = async () => {
    const a = performance.now();
    const r = await s.run(inputs);
    out ??= [...r.values()][0];
    return (performance.now() - a) / 1000;
  };
  for (let i = 0; i < 2; i++) {
    await soracRun();
    if (torch) await torch.run();
  }
  const peakMm = await matmulPeak(2048, 2);
  let peak = 0;
  const times: number[] = [];
  const ttimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    times.push(await soracRun());
    for (let j = 0; j < 3; j++) peak = Math.max(peak, await peakMm.run());
    if (torch) ttimes.push(await torch.run());
  }
  await peakMm.release();
  const stats = (t: number[]) => {
    const x = [...t].sort((p, q) => p - q);
    return { med: x[Math.floor(x.length / 2)]!, min: x[0]!, max: x[x.length - 1]! };
  };
  const so = stats(times);
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(`sorac/onnxruntime CPU, 2 threads: median ${so.med.toFixed(3)} s (min ${so.min.toFixed(3)}, max ${so.max.toFixed(3)}), RSS ${rss.toFixed(0)} MiB`);
  const flops = forwardFlops(medium.config, medium.inputs.x, medium.inputs.y[2]);
  console.log(
    `${(flops / 1e9).toFixed(1)} GFLOP per forward (matrix products): ${(flops / so.med / 1e9).toFixed(0)} GFLOP/s at the median, ${(flops / so.min / 1e9).toFixed(0)} at the best; ` +
      `peak (2048^3 MatMul, prepacked, best of ${3 * runs}) ${peak.toFixed(0)} GFLOP/s: the median forward at ${((100 * flops) / so.med / 1e9 / peak).toFixed(0)}% of it, the best at ${((100 * flops) / so.min / 1e9 / peak).toFixed(0)}%; ` +
      `a forward at peak would take ${(flops / peak / 1e9).toFixed(3)} s`,
  );
  if (torch) {
    torch.close();
    const to = stats(ttimes);
    const f = await openSafetensors(join(dir, 'torch-out.safetensors'));
    const bytes = await f.read('output');
    await f.close();
    const ref = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    let diff = 0;
    const a = out!.data as Float32Array;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - ref[i]!));
    console.log(`PyTorch eager, 2 threads, same invocation (interleaved): median ${to.med.toFixed(3)} s (min ${to.min.toFixed(3)}, max ${to.max.toFixed(3)})`);
    console.log(`ratio sorac / PyTorch: ${(so.med / to.med).toFixed(3)}  (max |sorac - PyTorch| on the output: ${diff.toExponential(2)}); of the best runs: ${(so.min / to.min).toFixed(3)} (less disturbed by a shared machine)`);
  } else {
    console.log('PyTorch side skipped: set OPEN_SORA_ROOT (see the header) to run it in the same invocation');
  }
  await s.release();
  await src.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
