/**
 * The ground truth of `sorac doctor`: create a real CUDA session for a tiny model (a convolution,
 * so cuDNN is exercised, and a matmul for cuBLAS), run it, and compare with the CPU provider, in a
 * child node process.
 *
 * A child process because (1) glibc reads LD_LIBRARY_PATH only when a process starts, so testing
 * "would it work with this LD_LIBRARY_PATH" needs a new process; (2) ORT states the reason for a
 * failed provider load (the missing soname) only in its own log on stderr, which a child lets us
 * capture; (3) a broken driver or provider may crash, and it must not take sorac down.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmokeModel {
  readonly onnx: Uint8Array;
  readonly input: { readonly name: string; readonly dims: readonly number[]; readonly data: readonly number[] };
}

export interface SmokeOptions {
  /** The environment of the child (LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES, NVIDIA_TF32_OVERRIDE ...). */
  readonly env?: NodeJS.ProcessEnv;
  readonly deviceId?: number;
  readonly timeoutMs?: number;
  /** Largest |cuda - cpu| accepted (TF32 may be on). Default 1e-2. */
  readonly tolerance?: number;
}

export interface SmokeResult {
  readonly ok: boolean;
  /** Where it stopped: creating the session, running it, comparing with the CPU, or the child itself. */
  readonly stage?: 'create' | 'run' | 'compare' | 'child' | 'timeout';
  readonly error?: string;
  /** The soname the loader could not find (from ORT's log). */
  readonly missingLibrary?: string;
  /** A CUDA runtime error from ORT's log, e.g. "100: no CUDA-capable device is detected". */
  readonly cudaError?: string;
  readonly maxAbsDiff?: number;
  readonly ms: number;
  /** The last lines of the child's stderr (ORT's own log at severity error). */
  readonly log?: string;
}

const CHILD = `
const [ortEntry, modelPath, specJson] = process.argv.slice(1);
const spec = JSON.parse(specJson);
const out = (o) => process.stdout.write('@@SMOKE ' + JSON.stringify(o) + '\\n');
let stage = 'create';
(async () => {
  try {
    const ort = require(ortEntry);
    ort.env.logLevel = 'error';
    const opts = { logSeverityLevel: 3, graphOptimizationLevel: 'disabled' };
    const cuda = await ort.InferenceSession.create(modelPath, { ...opts, executionProviders: [{ name: 'cuda', deviceId: spec.deviceId }] });
    stage = 'run';
    const feeds = { [spec.input.name]: new ort.Tensor('float32', Float32Array.from(spec.input.data), spec.input.dims) };
    const a = await cuda.run(feeds);
    stage = 'compare';
    const cpu = await ort.InferenceSession.create(modelPath, { ...opts, executionProviders: ['cpu'] });
    const b = await cpu.run(feeds);
    let m = 0;
    for (const k of Object.keys(b)) {
      const x = a[k].data, y = b[k].data;
      for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
    }
    out({ ok: true, maxAbsDiff: m });
  } catch (e) {
    out({ ok: false, stage, error: String(e && e.message || e).split('\\n')[0] });
  }
})();
`;

/** The onnxruntime-node entry the child requires (the same installation sorac uses). */
export function ortEntryPath(): string {
  return createRequire(import.meta.url).resolve('onnxruntime-node');
}

/** Parse ORT's stderr log for the reason of a failure. */
export function smokeReasons(log: string): { missingLibrary?: string; cudaError?: string } {
  const clean = log.replace(/\x1b\[[0-9;]*m/g, '');
  const lib = /with error: ([^\s:]+): cannot open shared object file/.exec(clean)?.[1] ?? /dlopen failed for ([^\s:]+)/.exec(clean)?.[1] ?? /(libcudnn[^\s:]*)[^\n]*(?:cannot open|No such file)/.exec(clean)?.[1];
  const cuda = /CUDA failure (\d+): ([^;\n]+)/.exec(clean) ?? /CUDA error (\w+):([^;\n]+)/.exec(clean);
  return { ...(lib ? { missingLibrary: lib } : {}), ...(cuda ? { cudaError: `${cuda[1]}: ${cuda[2]!.trim()}` } : {}) };
}

export async function cudaSmokeTest(model: SmokeModel, opts: SmokeOptions = {}): Promise<SmokeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sorac-smoke-'));
  const modelPath = join(dir, 'smoke.onnx');
  writeFileSync(modelPath, model.onnx);
  const t0 = performance.now();
  try {
    const spec = JSON.stringify({ deviceId: opts.deviceId ?? 0, input: model.input });
    const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }>((res) => {
      const p = spawn(process.execPath, ['-e', CHILD, ortEntryPath(), modelPath, spec], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        p.kill('SIGKILL');
      }, opts.timeoutMs ?? 120_000);
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code, signal) => {
        clearTimeout(timer);
        res({ code, signal, stdout, stderr, timedOut });
      });
    });
    const ms = performance.now() - t0;
    const log = r.stderr.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n').slice(-8).join('\n');
    const reasons = smokeReasons(r.stderr);
    if (r.timedOut) return { ok: false, stage: 'timeout', error: `no answer within ${((opts.timeoutMs ?? 120_000) / 1000).toFixed(0)} s`, ms, ...reasons, ...(log ? { log } : {}) };
    const line = r.stdout.split('\n').find((l) => l.startsWith('@@SMOKE '));
    if (!line) return { ok: false, stage: 'child', error: `the test process ended without an answer (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`})`, ms, ...reasons, ...(log ? { log } : {}) };
    const o = JSON.parse(line.slice(8)) as { ok: boolean; stage?: SmokeResult['stage']; error?: string; maxAbsDiff?: number };
    if (o.ok) {
      const tol = opts.tolerance ?? 1e-2;
      if (!(o.maxAbsDiff! <= tol)) return { ok: false, stage: 'compare', error: `CUDA and CPU results differ by ${o.maxAbsDiff} (more than ${tol}): the CUDA libraries on the loader path do not compute (stand-ins?)`, maxAbsDiff: o.maxAbsDiff!, ms };
      return { ok: true, maxAbsDiff: o.maxAbsDiff!, ms };
    }
    return { ok: false, stage: o.stage ?? 'create', error: o.error ?? 'unknown error', ms, ...reasons, ...(log ? { log } : {}) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
