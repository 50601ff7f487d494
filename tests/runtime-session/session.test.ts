import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IrGraph } from '../../core/ir.ts';
import { f16ToF32, f32ToBf16, bf16ToF32 } from '../../core/convert.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { runGraph } from '../../api/session.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { createSession } from '../../api/session.ts';
import { SoracError } from '../../core/errors.ts';
import { type SessionOptions } from '../../runtime/execution/session.ts';
import { type WeightSource } from '../../runtime/execution/binding.ts';
import { writeSafetensors } from '../../runtime/formats/safetensors-writer.ts';
import { GraphBuilder, int } from '../helpers/ir-build.ts';
import { maxAbsDiff, randF32, sampleGraph, sampleReference, sampleWeights, type RawTensor } from '../helpers/sample-model.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sorac-session-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileNo = 0;
async function checkpoint(tensors: Map<string, RawTensor>, sub = ''): Promise<{ path: string; source: WeightSource & { close(): Promise<void> } }> {
  const d = join(dir, sub);
  await mkdir(d, { recursive: true });
  const path = join(d, `ckpt${fileNo++}.safetensors`);
  await writeSafetensors(path, tensors);
  return { path, source: await safetensorsWeightSource([path]) };
}

const XS = [2, 4, 3, 4, 6];
const X = randF32(XS.reduce((a, b) => a * b), 11);
const xIn = (data = X, shape = XS): Record<string, HostTensor> => ({ x: { dtype: 'f32', shape, data } });

async function runSample(graph: IrGraph, weights: Map<string, RawTensor>, opts: SessionOptions = {}) {
  const { source } = await checkpoint(weights);
  const lines: string[] = [];
  try {
    const r = await runGraph(graph, source, xIn(), { device: 'cpu', onInfo: (m) => lines.push(m), ...opts });
    return { ...r, lines };
  } finally {
    await source.close();
  }
}

describe('createSession / run', () => {
  it('runs the sample graph (bf16 weight cast in-graph) bound by external data, matching a float64 reference', async () => {
    const w = sampleWeights('bf16');
    const r = await runSample(sampleGraph(), w);
    expect(r.device).toBe('cpu');
    expect(r.binding).toMatchObject({ external: 6, staged: 0, conversions: {} });
    const ref = sampleReference(X, XS, w);
    const y = r.outputs.get('y')!;
    expect(y.dtype).toBe('f32');
    expect(y.shape).toEqual([2, 18, 8]);
    expect(maxAbsDiff(y.data as Float32Array, ref.data)).toBeLessThan(1e-6);
    const y16 = r.outputs.get('y16')!;
    expect(y16.dtype).toBe('f16');
    expect(y16.data).toBeInstanceOf(Uint16Array);
    expect(maxAbsDiff(f16ToF32(y16.data as Uint16Array), ref.data)).toBeLessThan(1e-3);
    expect(r.lines).toEqual(['note: bf16 weights converted to f32 (CPU has no bf16 kernels)']);
  });

  it('external, staged and inline binding give bit-identical outputs', async () => {
    const w = sampleWeights('bf16');
    const ext = await runSample(sampleGraph(), w, { binding: 'auto' });
    const staged = await runSample(sampleGraph(), w, { binding: 'staged' });
    const inline = await runSample(sampleGraph(), w, { binding: 'inline' });
    expect(staged.binding).toMatchObject({ external: 0, staged: 6 });
    expect(inline.binding).toMatchObject({ external: 0, staged: 6 });
    for (const r of [staged, inline]) {
      expect(Buffer.from((r.outputs.get('y')!.data as Float32Array).buffer).equals(Buffer.from((ext.outputs.get('y')!.data as Float32Array).buffer))).toBe(true);
    }
  });

  it('one session serves several input shapes (symbolic dims) and can be released', async () => {
    const w = sampleWeights('f32');
    const { source } = await checkpoint(w);
    const s = await createSession(sampleGraph({ projDtype: 'f32' }), source, { device: 'cpu' });
    expect(s.inputs).toEqual([{ name: 'x', dtype: 'f32', shape: ['B', 4, 'T', 'H', 'W'] }]);
    expect(s.outputs.map((o) => o.name)).toEqual(['y', 'y16']);
    for (const shape of [XS, [1, 4, 2, 8, 2]]) {
      const x = randF32(shape.reduce((a, b) => a * b), 5);
      const y = (await s.run(xIn(x, shape))).get('y')!;
      const ref = sampleReference(x, shape, w);
      expect(y.shape).toEqual(ref.shape);
      expect(maxAbsDiff(y.data as Float32Array, ref.data)).toBeLessThan(1e-6);
    }
    await s.release();
    await source.close();
  });

  it('converts a bf16 checkpoint into an f32 graph once at load (exact), with one note line', async () => {
    const w = sampleWeights('bf16');
    const r = await runSample(sampleGraph({ projDtype: 'f32' }), w);
    expect(r.binding).toMatchObject({ external: 5, staged: 1, conversions: { 'bf16->f32': 1 } });
    expect(r.lines).toEqual(['note: bf16 weights converted to f32 (CPU has no bf16 kernels)']);
    const inGraph = await runSample(sampleGraph({ projDtype: 'bf16' }), w);
    expect(maxAbsDiff(r.outputs.get('y')!.data as Float32Array, inGraph.outputs.get('y')!.data as Float32Array)).toBe(0);
  });

  it('converts an f32 checkpoint into an f16 graph weight; f16 overflow names the key', async () => {
    const w = sampleWeights('f32');
    const r = await runSample(sampleGraph({ projDtype: 'f16' }), w);
    expect(r.binding.conversions).toEqual({ 'f32->f16': 1 });
    expect(r.lines).toEqual(['note: 1 f32 weight(s) converted to f16 at load (the graph expects that dtype)']);
    const ref = sampleReference(X, XS, sampleWeights('f16'));
    expect(maxAbsDiff(r.outputs.get('y')!.data as Float32Array, ref.data)).toBeLessThan(1e-6);

    // converting in small chunks gives the same bits
    const chunked = await runSample(sampleGraph({ projDtype: 'f16' }), w, { stagingChunkBytes: 24 });
    expect(Buffer.from((chunked.outputs.get('y')!.data as Float32Array).buffer).equals(Buffer.from((r.outputs.get('y')!.data as Float32Array).buffer))).toBe(true);

    const big = new Float32Array(64).fill(0.5);
    big[7] = 1e6;
    w.set('proj.weight', { dtype: 'f32', shape: [8, 8], data: new Uint8Array(big.buffer) });
    const err = await runSample(sampleGraph({ projDtype: 'f16' }), w).catch((e) => e);
    expect(err).toBeInstanceOf(SoracError);
    expect(err.code).toBe('SORA5507');
    expect(err.message).toMatch(/tensor "proj\.weight": value 1000000 at flat index 7 overflows float16/);
    big[7] = 0.5;
    big[37] = -7e4;
    const err2 = await runSample(sampleGraph({ projDtype: 'f16' }), w, { stagingChunkBytes: 16 }).catch((e) => e);
    expect(err2.message).toMatch(/value -70000 at flat index 37 overflows/);
  });

  it('resolves symlinked checkpoints (HF cache style) and hardlinks the real file', async () => {
    const w = sampleWeights('bf16');
    const blob = await checkpoint(w, 'blobs');
    await blob.source.close();
    const path = blob.path;
    const snap = join(dir, 'snapshots');
    await mkdir(snap, { recursive: true });
    const linkPath = join(snap, 'model.safetensors');
    await symlink(path, linkPath);
    const source = await safetensorsWeightSource([linkPath]);
    const before = (await stat(path)).nlink;
    const r = await runGraph(sampleGraph(), source, xIn(), { device: 'cpu', keepTempDir: true });
    await source.close();
    expect(r.binding.external).toBe(6);
    const files = await readdir(r.binding.dir);
    expect(files.sort()).toEqual(['0-' + path.split('/').pop(), 'model.onnx', 'staged-weights.bin']);
    expect((await stat(path)).nlink).toBe(before + 1); // a hardlink, not a copy
    await rm(r.binding.dir, { recursive: true });
  });

  it('removes its temp dir right after creation; the session keeps working', async () => {
    const w = sampleWeights('bf16');
    const { source } = await checkpoint(w);
    const s = await createSession(sampleGraph(), source, { device: 'cpu' });
    expect(existsSync(s.binding.dir)).toBe(false);
    const y = (await s.run(xIn())).get('y')!;
    expect(maxAbsDiff(y.data as Float32Array, sampleReference(X, XS, w).data)).toBeLessThan(1e-6);
    await s.release();
    await source.close();
  });

  it('falls back to a temp dir next to the checkpoint when the temp dir is on another filesystem', async () => {
    const shm = '/dev/shm';
    if ((await stat(shm).catch(() => undefined))?.dev === (await stat(dir)).dev) return; // same filesystem: nothing to test here
    const w = sampleWeights('bf16');
    const { source } = await checkpoint(w);
    const lines: string[] = [];
    const r = await runGraph(sampleGraph(), source, xIn(), { device: 'cpu', tempDir: shm, onInfo: (m) => lines.push(m) });
    await source.close();
    expect(r.binding.external).toBe(6);
    expect(r.binding.dir.startsWith(dir)).toBe(true);
    expect(existsSync(r.binding.dir)).toBe(false);
    expect((await readdir(shm)).filter((f) => f.startsWith('sorac-session-'))).toEqual([]);
  });
});

describe('weights and devices', () => {
  it('lists every missing or misshaped checkpoint tensor before doing anything', async () => {
    const w = sampleWeights('bf16');
    w.delete('norm.bias');
    w.set('proj.bias', { dtype: 'f32', shape: [9], data: new Uint8Array(36) });
    const err = await runSample(sampleGraph(), w).catch((e) => e);
    expect(err).toBeInstanceOf(SoracError);
    expect(err.code).toBe('SORA5504');
    expect(err.message).toContain('proj.bias: checkpoint has f32[9], graph expects f32[8]');
    expect(err.message).toContain('norm.bias: missing from the checkpoint (graph expects f32[8])');
  });

  it("device 'auto' falls back to CPU with exactly one line; 'cuda' fails with the fix", async () => {
    const w = sampleWeights('f32');
    const auto = await runSample(sampleGraph({ projDtype: 'f32' }), w, { device: 'auto' });
    expect(auto.device).toBe('cpu');
    expect(auto.lines).toHaveLength(1);
    expect(auto.lines[0]).toMatch(/^note: CUDA .*running on CPU/);
    const err = await runSample(sampleGraph({ projDtype: 'f32' }), w, { device: 'cuda' }).catch((e) => e);
    expect(err).toBeInstanceOf(SoracError);
    expect(err.code).toBe('SORA5505');
    expect(err.message).toMatch(/--device cuda: .*CUDA execution provider is not installed/);
    expect(err.hint).toContain('sorac setup cuda');
    expect(err.hint).toContain('sorac doctor');
    expect(err.message).toContain('libonnxruntime_providers_cuda.so');
  });

  it('reports a missing CPU kernel (bf16 compute) clearly', async () => {
    const g = new GraphBuilder('bf16mm');
    const x = g.input('x', 'bf16', [2, 4]);
    const wv = g.weight('w', 'bf16', [4, 3]);
    g.output(g.op('MatMul', [x, wv], { name: 'y', dtype: 'bf16', shape: [2, 3] }));
    const { source } = await checkpoint(new Map([['w', { dtype: 'bf16', shape: [4, 3], data: new Uint8Array(f32ToBf16(new Float32Array(12).fill(1)).buffer) }]]));
    // lower: false hands onnxruntime the bf16 graph as traced (no CPU emulation pass)
    const err = await createSession(g.build(), source, { device: 'cpu', lower: false }).catch((e) => e);
    await source.close();
    expect(err).toBeInstanceOf(SoracError);
    expect(err.code).toBe('SORA5506');
    expect(err.message).toMatch(/CPU provider has no kernel for MatMul/);
    expect(err.hint).toMatch(/bf16 is storage-only on CPU/);
  });

  it('bf16 graph inputs and outputs cross the JS boundary as bf16 bits (exact)', async () => {
    const g = new GraphBuilder('bf16io');
    const x = g.input('x', 'bf16', ['n']);
    const xf = g.op('Cast', [x], { name: 'xf', dtype: 'f32', shape: ['n'] }, { to: int(1) });
    const two = g.constF32('two', [], [2]);
    const y = g.op('Mul', [xf, two], { name: 'yf', dtype: 'f32', shape: ['n'] });
    g.output(g.op('Cast', [y], { name: 'y', dtype: 'bf16', shape: ['n'] }, { to: int(16) }));
    const s = await createSession(g.build(), { tensors: new Map() }, { device: 'cpu' });
    expect(s.inputs).toEqual([{ name: 'x', dtype: 'bf16', shape: ['n'] }]);
    const xb = f32ToBf16(new Float32Array([1.5, -3, 0.0078125, 1e30]));
    const out = (await s.run({ x: { dtype: 'bf16', shape: [4], data: xb } })).get('y')!;
    expect(out.dtype).toBe('bf16');
    expect(Array.from(bf16ToF32(out.data as Uint16Array))).toEqual(Array.from(bf16ToF32(xb), (v) => v * 2));
    await s.release();
  });
});

describe('input validation (before any compute)', () => {
  let s: Awaited<ReturnType<typeof createSession>>;
  beforeAll(async () => {
    const g = new GraphBuilder('two');
    const a = g.input('latents', 'f32', ['B', 4, 'T']);
    const t = g.input('timestep', 'f32', ['B']);
    const ids = g.input('ids', 'i64', ['B', 7]);
    const tu = g.op('Unsqueeze', [t, g.constI64('ax', [2], [1, 2])], { name: 'tu', dtype: 'f32', shape: ['B', 1, 1] });
    g.output(g.op('Add', [a, tu], { name: 'out', dtype: 'f32', shape: ['B', 4, 'T'] }));
    const idf = g.op('Cast', [ids], { name: 'idf', dtype: 'f32', shape: ['B', 7] }, { to: int(1) });
    g.output(g.op('Identity', [idf], { name: 'ids_f', dtype: 'f32', shape: ['B', 7] }));
    s = await createSession(g.build(), { tensors: new Map() }, { device: 'cpu' });
  });
  afterAll(async () => {
    await s.release();
  });
  const good = (): Record<string, HostTensor> => ({
    latents: { dtype: 'f32', shape: [2, 4, 3], data: new Float32Array(24).fill(1) },
    timestep: { dtype: 'f32', shape: [2], data: new Float32Array([10, 20]) },
    ids: { dtype: 'i64', shape: [2, 7], data: new BigInt64Array(14) },
  });

  it('runs good inputs', async () => {
    const out = await s.run(good());
    expect(Array.from(out.get('out')!.data as Float32Array).slice(0, 13)).toEqual([...Array(12).fill(11), 21]);
  });

  it('unknown and missing names list the expected inputs', async () => {
    const i = good();
    delete (i as Record<string, unknown>).timestep;
    (i as Record<string, HostTensor>).t = { dtype: 'f32', shape: [2], data: new Float32Array(2) };
    await expect(s.run(i)).rejects.toThrow(
      'unknown input "t"; missing input "timestep". The model expects:\n  latents: f32[B, 4, T]\n  timestep: f32[B]\n  ids: i64[B, 7]',
    );
  });

  it('wrong dtype, wrong typed array, wrong rank, wrong static dim, inconsistent symbol, wrong data length', async () => {
    const cases: [Record<string, HostTensor>, RegExp][] = [
      [{ ...good(), ids: { dtype: 'i32', shape: [2, 7], data: new Int32Array(14) } }, /ids: dtype i32, expected i64\[B, 7\]/],
      [{ ...good(), timestep: { dtype: 'f32', shape: [2], data: new Float64Array(2) as never } }, /timestep: f32 data must be a Float32Array, got Float64Array/],
      [{ ...good(), timestep: { dtype: 'f32', shape: [2, 1], data: new Float32Array(2) } }, /timestep: got rank 2 \[2, 1\], expected rank 1 f32\[B\]/],
      [{ ...good(), latents: { dtype: 'f32', shape: [2, 5, 3], data: new Float32Array(30) } }, /latents: dim 1 is 5, expected 4/],
      [{ ...good(), timestep: { dtype: 'f32', shape: [3], data: new Float32Array(3) } }, /timestep: dim 0 \(B\) is 3, but B = 2 from latents dim 0/],
      [{ ...good(), latents: { dtype: 'f32', shape: [2, 4, 3], data: new Float32Array(23) } }, /latents: shape \[2, 4, 3\] has 24 elements but data has 23/],
    ];
    for (const [inputs, re] of cases) {
      const err = await s.run(inputs).catch((e) => e);
      expect(err).toBeInstanceOf(SoracError);
      expect(err.message).toMatch(re);
      expect(err.message).toContain('The model expects:');
    }
  });
});

describe('CUDA attempt when the provider libraries are assumed present', () => {
  it("'auto' catches onnxruntime's throw and falls back with one line; 'cuda' reports the fix", async () => {
    const w = sampleWeights('f32');
    const auto = await runSample(sampleGraph({ projDtype: 'f32' }), w, { device: 'auto', skipCudaLibraryCheck: true });
    expect(auto.device).toBe('cpu');
    expect(auto.lines).toHaveLength(1);
    expect(auto.lines[0]).toMatch(/^note: CUDA unavailable \(.+\); running on CPU$/);
    const err = await runSample(sampleGraph({ projDtype: 'f32' }), w, { device: 'cuda', skipCudaLibraryCheck: true }).catch((e) => e);
    expect(err).toBeInstanceOf(SoracError);
    expect(err.message).toMatch(/^--device cuda: cannot create a CUDA session: /);
    expect(err.hint).toContain('sorac setup cuda');
  });
});

describe('more binding shapes', () => {
  it('sharded checkpoints: one hardlink per file; f16 graph inputs cross as Uint16Array', async () => {
    const w = sampleWeights('bf16');
    const keys = [...w.keys()];
    const a = await checkpoint(new Map(keys.slice(0, 3).map((k) => [k, w.get(k)!])), 'shards');
    const b = await checkpoint(new Map(keys.slice(3).map((k) => [k, w.get(k)!])), 'shards');
    await a.source.close();
    await b.source.close();
    const source = await safetensorsWeightSource([a.path, b.path]);
    const r = await runGraph(sampleGraph(), source, xIn(), { device: 'cpu', keepTempDir: true });
    await source.close();
    expect(r.binding.external).toBe(6);
    expect((await readdir(r.binding.dir)).filter((f) => f.endsWith('.safetensors'))).toHaveLength(2);
    await rm(r.binding.dir, { recursive: true });
    expect(maxAbsDiff(r.outputs.get('y')!.data as Float32Array, sampleReference(X, XS, w).data)).toBeLessThan(1e-6);

    const g = new GraphBuilder('f16io');
    const x = g.input('x', 'f16', [3]);
    g.output(g.op('Neg', [x], { name: 'y', dtype: 'f16', shape: [3] }));
    const s = await createSession(g.build(), { tensors: new Map() }, { device: 'cpu' });
    const out = (await s.run({ x: { dtype: 'f16', shape: [3], data: Uint16Array.from([0x3c00, 0x0001, 0xfc00]) } })).get('y')!;
    expect(Array.from(out.data as Uint16Array)).toEqual([0xbc00, 0x8001, 0x7c00]);
    await s.release();
  });
});

describe('temp dirs never leak', () => {
  it('on errors, including after moving next to the checkpoint', async () => {
    const tmpParent = await mkdtemp(join(tmpdir(), 'sorac-leak-'));
    const w = sampleWeights('f32');
    const big = new Float32Array(64).fill(1e6);
    w.set('proj.weight', { dtype: 'f32', shape: [8, 8], data: new Uint8Array(big.buffer) });
    const { path, source } = await checkpoint(w, 'leak');
    const ckptDir = join(dir, 'leak');
    const shm = (await stat('/dev/shm').catch(() => undefined))?.dev !== (await stat(dir)).dev ? '/dev/shm' : tmpParent;
    for (const tempDir of [tmpParent, shm]) {
      const err = await createSession(sampleGraph({ projDtype: 'f16' }), source, { device: 'cpu', tempDir }).catch((e) => e);
      expect(err.code).toBe('SORA5507');
      expect((await readdir(tempDir)).filter((f) => f.startsWith('sorac-session-'))).toEqual([]);
      expect((await readdir(ckptDir)).filter((f) => f.includes('sorac-session'))).toEqual([]);
    }
    await source.close();
    expect(path.startsWith(ckptDir)).toBe(true);
    await rm(tmpParent, { recursive: true });
  });
});

describe('output discipline', () => {
  it('a failing session prints no notes, only the error', async () => {
    const w = sampleWeights('bf16');
    w.delete('proj.bias');
    const lines: string[] = [];
    const { source } = await checkpoint(w);
    await expect(createSession(sampleGraph(), source, { device: 'auto', onInfo: (m) => lines.push(m) })).rejects.toThrow(SoracError);
    await source.close();
    expect(lines).toEqual([]);
  });
});

describe('process exit during session creation', () => {
  it('removes the temp dir in an exit hook', async () => {
    const { execFileSync } = await import('node:child_process');
    const { writeFile } = await import('node:fs/promises');
    const parent = await mkdtemp(join(tmpdir(), 'sorac-exit-'));
    const scriptDir = await mkdtemp(join(tmpdir(), 'sorac-exit-script-'));
    const root = process.cwd();
    const script = [
      `import { createSession } from ${JSON.stringify(join(root, 'api/session.ts'))};`,
      `import { sampleGraph } from ${JSON.stringify(join(root, 'tests/helpers/sample-model.ts'))};`,
      // exit while the weights are being read (the read never finishes)
      'const w = { read: () => { setTimeout(() => process.exit(3), 50); return new Promise(() => {}); } };',
      "const g = sampleGraph({ projDtype: 'f32' });",
      'const tensors = new Map(g.weights.map((x) => [x.key, { ...w, dtype: x.value.dtype, shape: x.value.shape, byteLength: x.value.shape.reduce((a, b) => a * b, 1) * 4 }]));',
      `await createSession(g, { tensors }, { device: 'cpu', tempDir: ${JSON.stringify(parent)} });`,
    ].join('\n');
    const file = join(scriptDir, 'probe.mts'); // outside the package: .mts for ESM (top-level await)
    await writeFile(file, script);
    let code = 0;
    try {
      try {
        execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [file], { stdio: 'pipe' });
      } catch (e) {
        code = (e as { status: number }).status;
        if (code !== 3) console.log(String((e as { stderr: Buffer }).stderr));
      }
      expect(code).toBe(3);
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await rm(parent, { recursive: true, force: true });
      await rm(scriptDir, { recursive: true, force: true });
    }
  });
});
